//! Certificates kept with imported keys (a UCP/DTR client bundle's `cert.pem` with its
//! `key.pem`): trustd only checks that the certificate is one and is for that very key.

use der::{Decode, Encode};

use crate::private_key::PrivateKey;

/// Checks that `cert_der` is an X.509 certificate whose public key is `key`'s.
pub fn check_matches(cert_der: &[u8], key: &PrivateKey) -> Result<(), String> {
    if cert_der.len() > 64 * 1024 {
        return Err("the certificate is larger than 64 KiB".into());
    }
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| format!("not an X.509 certificate (DER): {e}"))?;
    let cert_spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    if cert_spki != key.public_spki()? {
        return Err("the certificate is for another key than the one being loaded".into());
    }
    Ok(())
}
