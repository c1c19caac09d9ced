//! Timestamps as the audit log and inventory write them.

/// Current UTC time in RFC 3339 with nanoseconds (`2026-11-22T04:17:31.786507813Z`).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("UTC time formats as RFC 3339")
}
