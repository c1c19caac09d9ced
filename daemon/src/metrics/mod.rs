//! Prometheus metrics: what an operator alerts on without reading the audit log (denials and
//! failures by RPC and backend, how long devices take to sign, devices down, queues filling
//! up, a broken audit sink).
//!
//! The `metrics` facade records; `metrics-exporter-prometheus` renders the text format and
//! `metrics-process` the process metrics. trustd serves the text itself (`exporter`), so the
//! listener is bounded like every other one. Nothing is recorded until `[metrics]` is
//! configured: [`enabled`] keeps the label work off the signing path otherwise.
//!
//! Labels are a closed set by construction: RPC method names, the API, backend names from the
//! configuration, the audit vocabulary (allowed, denied, failed) and gRPC code names. No key
//! name, caller, payload hash or error text ever becomes a label, so a caller cannot grow the
//! series count, and nothing secret reaches a scraper.

pub mod exporter;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Counted per RPC: `api`, `rpc`, `backend`, `result`, `code`.
pub const REQUESTS: &str = "trustd_requests_total";
/// Device time per signature, by backend.
pub const SIGN_SECONDS: &str = "trustd_sign_duration_seconds";
/// 1 when a backend's device answers and is unlocked, else 0.
pub const BACKEND_UP: &str = "trustd_backend_up";
/// One series per state (ready, locked, unavailable, misconfigured, unresponsive); the
/// backend's present state is 1.
pub const BACKEND_STATE: &str = "trustd_backend_state";
/// Requests waiting for a queued device (TPM, PIV), and how many may wait.
pub const QUEUE_DEPTH: &str = "trustd_backend_queue_depth";
pub const QUEUE_CAPACITY: &str = "trustd_backend_queue_capacity";
/// 1 while audit records can be written; at 0 trustd refuses to sign.
pub const AUDIT_HEALTHY: &str = "trustd_audit_healthy";
/// Requests being handled now.
pub const IN_FLIGHT: &str = "trustd_requests_in_flight";
/// Open connections (local and TLS), and those refused since start for being over a bound.
pub const CONNECTIONS: &str = "trustd_connections_open";
/// What the front end refused before any handler ran (over a connection or buffer bound, a
/// message too large, no rule for the caller): floods show here, not in REQUESTS.
pub const CONNECTIONS_REFUSED: &str = "trustd_connections_refused_total";
pub const REQUESTS_REFUSED: &str = "trustd_requests_refused_total";
/// Keys in the inventory.
pub const KEYS: &str = "trustd_keys";
/// Always 1, with the version as a label.
pub const BUILD_INFO: &str = "trustd_build_info";

/// Histogram buckets for device signing, from a software token (well under a millisecond) to
/// a YubiKey waiting for a touch (up to 15 s).
pub const SIGN_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
];

/// Whether a recorder is installed (`[metrics]` is configured).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Counts one finished call: `api` ("trustd" or "notary-signer") and `rpc` (the method) as
/// the RPC layer names them, `result` in the audit vocabulary, `code` the gRPC code.
pub fn request_done(
    api: &'static str,
    rpc: &'static str,
    backend: Option<&str>,
    result: &'static str,
    code: tonic::Code,
) {
    if !enabled() {
        return;
    }
    ::metrics::counter!(
        REQUESTS,
        "api" => api,
        "rpc" => rpc,
        "backend" => backend.unwrap_or("").to_owned(),
        "result" => result,
        "code" => code_name(code),
    )
    .increment(1);
}

/// Records how long a device took for one signature (successful or not: a device that fails
/// slowly is worth seeing). Callers time only when [`enabled`].
pub fn sign_timed(backend: &str, took: Duration) {
    ::metrics::histogram!(SIGN_SECONDS, "backend" => backend.to_owned()).record(took);
}

/// The gRPC code as grpc-go and tonic spell it in their own metrics.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REQUESTS,
        "Calls to trustd's API and notary-signer's, by RPC, backend, result (allowed, denied, failed) and gRPC code"
    );
    describe_histogram!(
        SIGN_SECONDS,
        Unit::Seconds,
        "Time a backend's device took to sign, queueing included"
    );
    describe_gauge!(
        BACKEND_UP,
        "1 when the backend's device answers and is unlocked, else 0"
    );
    describe_gauge!(
        BACKEND_STATE,
        "1 for the backend's present state (ready, locked, unavailable, misconfigured, unresponsive)"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Requests waiting for a device that signs one at a time (TPM, PIV)"
    );
    describe_gauge!(QUEUE_CAPACITY, "How many requests may wait for the device");
    describe_gauge!(
        AUDIT_HEALTHY,
        "1 while audit records can be written; at 0 trustd refuses to sign"
    );
    describe_gauge!(IN_FLIGHT, "Requests being handled");
    describe_gauge!(CONNECTIONS, "Open connections, local and TLS");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed at once for being over limits.max_connections or max_connections_per_uid"
    );
    describe_counter!(
        REQUESTS_REFUSED,
        "Requests refused before any handler: too large, over the buffer budget, or from a caller no rule names"
    );
    describe_gauge!(KEYS, "Keys in trustd's inventory");
    describe_gauge!(BUILD_INFO, "trustd's version, as a label; always 1");
}
