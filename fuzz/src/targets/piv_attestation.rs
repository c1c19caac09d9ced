//! A YubiKey's PIV attestation as trustd relays it: the slot's certificate, the card's f9
//! certificate, and the facts Yubico's extensions carry.
//!
//! The first byte picks what the rest is: 0 one certificate (DER) whose extensions are read
//! as an attestation's facts; otherwise parts `trust` (PEM roots, the vpiv card's in the
//! seeds) and `response` (an AttestKeyResponse, protobuf), verified as `trustctl key attest`
//! does. The law: an attestation is only accepted for the key trustd reports.

use der::{Decode, Encode};
use prost::Message;
use trustctl::attestation::piv::{self, AttestedFacts, PivTrust};
use trustd_proto::v1 as pb;
use x509_cert::Certificate;

use crate::framing;

pub fn run(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    if *mode == 0 {
        if let Ok(certificate) = Certificate::from_der(rest) {
            let _ = AttestedFacts::of(&certificate);
        }
        return;
    }
    let mut trust = None;
    let mut response = None;
    for (name, bytes) in framing::split(rest) {
        match name {
            b"trust" => trust = PivTrust::from_pem(bytes, "fuzz").ok(),
            b"response" => response = pb::AttestKeyResponse::decode(bytes).ok(),
            _ => {}
        }
    }
    let Some(pb::AttestKeyResponse {
        key: Some(key),
        attestation: Some(attestation),
    }) = response
    else {
        return;
    };
    let Some(pb::attestation::Evidence::Piv(evidence)) = attestation.evidence else {
        return;
    };
    for trust in [Some(PivTrust::yubico()), trust].into_iter().flatten() {
        if let Ok(report) = piv::verify(&key, &evidence, &trust) {
            let leaf = Certificate::from_der(&evidence.attestation_certificate_der)
                .expect("an accepted attestation certificate parses");
            let attested = leaf
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .unwrap();
            let reported = spki_of(&key.public_key_der);
            assert_eq!(
                reported,
                Some(attested),
                "the attestation is for another key"
            );
            let facts = AttestedFacts::of(&leaf).expect("accepted facts read again");
            assert_eq!(report.serial, facts.serial);
            assert_eq!(report.slot, facts.slot);
        }
    }
}

fn spki_of(der: &[u8]) -> Option<Vec<u8>> {
    x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(der)
        .ok()?
        .to_der()
        .ok()
}
