//! Fuzz targets for every parser that reads what someone else wrote: what notary servers and
//! registries send, what TPMs and smart cards answer, what a caller of trustd asks, and what
//! lies in files an attacker may edit.
//!
//! Each target is a plain function of bytes, so the same code runs under libFuzzer
//! (`scripts/fuzz`, feature `libfuzzer`) and in `cargo test`, which replays every committed
//! corpus input (`fuzz/corpus/<target>/`) and every input that once crashed a target
//! (`fuzz/regressions/<target>/`). A target asserts the laws its parser must keep (round trips,
//! "nothing unverified is trusted"), not only that nothing panics.

pub mod framing;
pub mod targets;

/// A fuzz target: its name (the corpus directory) and what it runs on one input.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// What the target feeds, for `scripts/fuzz --list`.
    pub about: &'static str,
}

/// Every target, in the order `scripts/fuzz all` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "canonical_json",
        run: targets::canonical_json::run,
        about: "Notary canonical JSON: serialization laws on any JSON value",
    },
    Target {
        name: "notary_envelope",
        run: targets::notary_envelope::run,
        about: "a role file's envelope, each role's fields, expiry times",
    },
    Target {
        name: "notary_trust",
        run: targets::notary_trust::run,
        about: "a notary server's role files verified from a trusted (or first) root",
    },
    Target {
        name: "root_certificate",
        run: targets::root_certificate::run,
        about: "root certificates and certificate chains (DER and PEM)",
    },
    Target {
        name: "tpm_attestation",
        run: targets::tpm_attestation::run,
        about: "TPMT_PUBLIC, TPMS_ATTEST and a whole TPM attestation as trustd sends it",
    },
    Target {
        name: "piv_attestation",
        run: targets::piv_attestation::run,
        about: "a PIV attestation certificate chain and its YubiKey extensions",
    },
    Target {
        name: "registry",
        run: targets::registry::run,
        about: "registry manifests and indexes, error bodies, auth challenges, image references",
    },
    Target {
        name: "cosign",
        run: targets::cosign::run,
        about: "cosign signature manifests, signatures and simple-signing payloads",
    },
    Target {
        name: "docker_credentials",
        run: targets::docker_credentials::run,
        about: "docker config.json and a credential helper's answer",
    },
    Target {
        name: "service_requests",
        run: targets::service_requests::run,
        about: "trustd's handlers after protobuf decoding, from three callers, on SoftHSM2",
    },
    Target {
        name: "piv_apdu",
        run: targets::piv_apdu::run,
        about: "the virtual PIV card's APDU and TLV parsing",
    },
    Target {
        name: "audit_log",
        run: targets::audit_log::run,
        about: "trustctl audit verify on an edited audit log",
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
