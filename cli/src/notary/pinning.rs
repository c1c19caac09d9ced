//! Trust pinning, with the notary client's `trust_pinning` semantics: on first contact with
//! a repository, instead of trusting whatever root the server offers (TOFU), require
//!
//! - `certs`: for a GUN named exactly, a root certificate with one of the listed key IDs;
//! - `ca`: for the longest matching GUN prefix, root certificates issued by that CA (directly
//!   or through intermediates bundled with the certificate);
//! - `disable_tofu`: refuse repositories that neither rule covers.
//!
//! Once a root is trusted, its successors are accepted only as rotations it signed, so
//! pinning, like TOFU, decides the first root only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use der::{DecodePem, Encode};
use serde::Deserialize;
use time::OffsetDateTime;
use x509_cert::Certificate;

use crate::tuf::model::Root;
use crate::verify::{self, Signed};

/// The `[trust_pinning]` table of trustctl's config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPinning {
    /// GUN → root certificate key IDs (as the root lists them).
    #[serde(default)]
    pub certs: BTreeMap<String, Vec<String>>,
    /// GUN prefix → CA certificate file (PEM).
    #[serde(default)]
    pub ca: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub disable_tofu: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PinningError {
    #[error("{gun}: no root certificate has a key ID pinned for it ({pinned})")]
    CertNotPinned { gun: String, pinned: String },
    #[error("{gun}: no root certificate was issued by the pinned CA {ca}: {reason}")]
    NotIssuedByCa {
        gun: String,
        ca: String,
        reason: String,
    },
    #[error("cannot read the CA {path} pinned for {prefix}: {reason}")]
    BadCa {
        prefix: String,
        path: String,
        reason: String,
    },
    #[error("{gun}: trust on first use is disabled and no trust pinning covers it (add it to [trust_pinning] certs or ca)")]
    TofuDisabled { gun: String },
}

const OID_ECDSA_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_RSA_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// Checks that `issuer` signed `cert` (ECDSA P-256 or RSA PKCS#1 v1.5, SHA-256), named it
/// as issuer, and was valid at `now`.
fn issued_by(cert: &Certificate, issuer: &Certificate, now: OffsetDateTime) -> Result<(), String> {
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
fn chains_to(bundle: &[Certificate], ca: &Certificate, now: OffsetDateTime) -> Result<(), String> {
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

impl TrustPinning {
    /// Decides whether a first root for `gun` may be trusted.
    pub fn check_first_root(
        &self,
        gun: &str,
        root: &Root,
        now: OffsetDateTime,
    ) -> Result<(), PinningError> {
        let root_ids = root
            .roles
            .get("root")
            .map(|r| r.keyids.clone())
            .unwrap_or_default();
        if let Some(pinned) = self.certs.get(gun) {
            return if root_ids.iter().any(|id| pinned.contains(id)) {
                Ok(())
            } else {
                Err(PinningError::CertNotPinned {
                    gun: gun.to_owned(),
                    pinned: pinned.join(", "),
                })
            };
        }
        let prefix = self
            .ca
            .keys()
            .filter(|prefix| gun.starts_with(prefix.as_str()))
            .max_by_key(|prefix| prefix.len());
        if let Some(prefix) = prefix {
            let path = &self.ca[prefix];
            let ca = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| Certificate::from_pem(&pem).map_err(|e| e.to_string()))
                .map_err(|reason| PinningError::BadCa {
                    prefix: prefix.clone(),
                    path: path.display().to_string(),
                    reason,
                })?;
            let mut last = "the root lists no certificate".to_owned();
            for id in &root_ids {
                let Some(key) = root.keys.get(id) else {
                    continue;
                };
                let bundle = match Certificate::load_pem_chain(&key.keyval.public) {
                    Ok(bundle) => bundle,
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                };
                match chains_to(&bundle, &ca, now) {
                    Ok(()) => return Ok(()),
                    Err(reason) => last = reason,
                }
            }
            return Err(PinningError::NotIssuedByCa {
                gun: gun.to_owned(),
                ca: path.display().to_string(),
                reason: last,
            });
        }
        if self.disable_tofu {
            return Err(PinningError::TofuDisabled {
                gun: gun.to_owned(),
            });
        }
        Ok(())
    }
}
