//! What a TPM (through trustd) sends a verifier: TPMT_PUBLIC areas, the TPMS_ATTEST it
//! certified, and the whole attestation of a key as `trustctl key attest` checks it.
//!
//! The first byte picks what the rest is: 0 a TPMT_PUBLIC, 1 a TPMS_ATTEST, otherwise an
//! AttestKeyResponse (protobuf) whose TPM evidence is checked against its key with an empty
//! nonce (the evidence stored at generation) and with the nonce `fuzz-nonce`.

use prost::Message;
use sha2::{Digest, Sha256};
use trustctl::attestation::{self, tpm_structures};
use trustd_proto::v1 as pb;

pub const NONCE: &[u8] = b"fuzz-nonce";

pub fn run(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    match mode {
        0 => {
            if let Ok(area) = tpm_structures::PublicArea::parse(rest) {
                let _ = area.spki();
                // The name binds the whole structure: nameAlg (SHA-256) || SHA-256(bytes).
                assert_eq!(area.name.len(), 34, "a TPM name is 2 + 32 bytes");
                assert_eq!(area.name[..2], area.name_alg.to_be_bytes());
                assert_eq!(area.name[2..], Sha256::digest(rest)[..]);
            }
        }
        1 => {
            let _ = tpm_structures::CertifyInfo::parse(rest);
        }
        _ => {
            let Ok(response) = pb::AttestKeyResponse::decode(rest) else {
                return;
            };
            let (Some(key), Some(attestation)) = (response.key, response.attestation) else {
                return;
            };
            let Some(pb::attestation::Evidence::Tpm(evidence)) = attestation.evidence else {
                return;
            };
            for nonce in [&b""[..], NONCE] {
                if let Ok(checked) = attestation::check_tpm_evidence(&key, &evidence, nonce) {
                    assert!(
                        attestation::check_ek_certificate(&checked, None).is_err(),
                        "an EK certificate was accepted without a trust anchor"
                    );
                }
            }
        }
    }
}
