//! One module per fuzz target; each has `run(&[u8])`.

pub mod audit_log;
pub mod canonical_json;
pub mod cosign;
pub mod docker_credentials;
pub mod notary_envelope;
pub mod notary_trust;
pub mod piv_apdu;
pub mod piv_attestation;
pub mod registry;
pub mod root_certificate;
pub mod service_requests;
pub mod tpm_attestation;

/// A fixed "now" inside the validity of the committed corpora (role files written by notary,
/// whose root certificates are valid from 2026-11-22 04:17 and whose timestamps expire on
/// 2026-12-06), so that replays give the same result whatever the date.
pub fn corpus_time() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-22 12:00:00 UTC)
}
