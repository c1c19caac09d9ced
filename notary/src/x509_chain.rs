//! Certificate chains, checked the way notary and TPM verifiers need: a leaf, the
//! intermediates that came with it, and one trust anchor the user configured.

use der::Encode;
use time::OffsetDateTime;
use x509_cert::Certificate;

use crate::verify::{self, Signed};

const OID_ECDSA_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_RSA_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// Checks that `issuer` signed `cert` (ECDSA P-256 or RSA PKCS#1 v1.5, SHA-256), named it
/// as issuer, and was valid at `now`.
pub fn issued_by(
    cert: &Certificate,
    issuer: &Certificate,
    now: OffsetDateTime,
) -> Result<(), String> {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err("its issuer is not the CA's subject".into());
    }
    let validity = &issuer.tbs_certificate.validity;
    let now_secs = now.unix_timestamp() as u64;
    if now_secs < validity.not_before.to_unix_duration().as_secs()
        || now_secs > validity.not_after.to_unix_duration().as_secs()
    {
        return Err("the issuing certificate is outside its validity period".into());
    }
    let tbs = cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let spki = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let signature = cert
        .signature
        .as_bytes()
        .ok_or("the signature is not whole bytes")?;
    match cert.signature_algorithm.oid {
        OID_ECDSA_SHA256 => {
            verify::verify(&spki, Signed::Message(&tbs), signature).map_err(|e| e.to_string())
        }
        OID_RSA_SHA256 => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::signature::Verifier;
            let key = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|e| e.to_string())?;
            let signature =
                rsa::pkcs1v15::Signature::try_from(signature).map_err(|e| e.to_string())?;
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key)
                .verify(&tbs, &signature)
                .map_err(|_| "the CA's signature does not verify".to_owned())
        }
        other => Err(format!("unsupported signature algorithm {other}")),
    }
}

/// Whether a certificate bundle (leaf first, then intermediates) chains to `ca`.
pub fn chains_to(
    bundle: &[Certificate],
    ca: &Certificate,
    now: OffsetDateTime,
) -> Result<(), String> {
    let mut current = bundle.first().ok_or("an empty certificate")?;
    let mut rest: Vec<&Certificate> = bundle[1..].iter().collect();
    loop {
        let direct = issued_by(current, ca, now);
        if direct.is_ok() {
            return direct;
        }
        match rest.iter().position(|c| issued_by(current, c, now).is_ok()) {
            Some(i) => current = rest.remove(i),
            None => return direct,
        }
    }
}
