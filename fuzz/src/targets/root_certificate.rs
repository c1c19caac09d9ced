//! Root certificates and certificate chains, as root.json carries them (PEM inside an
//! `ecdsa-x509` key) and as trust pinning and attestation chains use them (DER).
//!
//! Each part is one certificate, PEM or DER; the last is taken as the CA. The law: a
//! certificate is only "issued by" a CA whose subject is its issuer.

use der::Decode;
use trustd_notary::certificate;
use trustd_notary::keys::{KeyType, PublicKey};
use trustd_notary::x509_chain;
use x509_cert::Certificate;

use crate::framing;

fn certificate_of(bytes: &[u8]) -> Option<Certificate> {
    Certificate::from_der(bytes)
        .ok()
        .or_else(|| certificate::from_pem(bytes).ok())
}

pub fn run(data: &[u8]) {
    let now = super::corpus_time();
    let parts = framing::split(data);
    for (keytype, (_, bytes)) in [KeyType::EcdsaX509, KeyType::RsaX509]
        .into_iter()
        .zip(&parts)
    {
        // As a root.json key: its ID, and its ID as a plain key (how notary matches roots).
        let key = PublicKey::new(keytype, bytes.to_vec());
        let _ = key.id();
        let _ = key.certificate();
        let _ = key.canonical_id();
        let _ = key.spki_der();
    }
    let certificates: Vec<Certificate> = parts
        .iter()
        .filter_map(|(_, bytes)| certificate_of(bytes))
        .collect();
    for cert in &certificates {
        let _ = certificate::common_name(cert);
        let _ = certificate::is_ca(cert);
        let _ = certificate::is_valid_at(cert, now);
    }
    let Some((ca, bundle)) = certificates.split_last() else {
        return;
    };
    if let Some(leaf) = bundle.first() {
        if x509_chain::issued_by(leaf, ca, now).is_ok() {
            assert_eq!(
                leaf.tbs_certificate.issuer, ca.tbs_certificate.subject,
                "a certificate verified against a CA that did not issue it"
            );
        }
    }
    let _ = x509_chain::chains_to(bundle, ca, now);
}
