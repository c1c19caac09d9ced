//! Verifying what a device says about a key: that the key was generated inside it and cannot
//! leave it. trustd only relays the device's evidence; every check happens here.
//!
//! For a TPM, the chain of proof is:
//! 1. the key's public area has fixedTPM, fixedParent and sensitiveDataOrigin, and holds the
//!    same public key trustd reports;
//! 2. a TPM2_Certify over that public area's name, signed by an attestation key (AK) that is a
//!    restricted signing key, so the TPM signs only data it generated itself (the TPMS_ATTEST
//!    magic), with the verifier's fresh nonce when one was sent;
//! 3. the AK lives in the TPM that owns the endorsement key (EK): the verifier seals a random
//!    credential to the EK and the AK's name, and only that TPM can return it;
//! 4. the EK certificate chains to a CA the user trusts (the TPM vendor's, or a test CA).
//!
//! For a YubiKey see `piv`: a certificate chain from the slot's attestation to Yubico's root.

pub mod make_credential;
pub mod piv;
pub mod tpm_structures;
mod verifier;

pub use piv::{PivReport, PivTrust};
pub use verifier::{Report, Verifier, VerifyError};

use std::path::{Path, PathBuf};

use der::{Decode, Encode};
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey;
use serde::Serialize;
use x509_cert::Certificate;

use self::tpm_structures::{attributes, CertifyInfo, PublicArea, PublicKey};
use trustd_notary::x509_chain::chains_to;
use trustd_proto as pb;

/// Why evidence was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("the evidence is malformed: {0}")]
    Malformed(String),
    #[error("the attestation key's signature over the certification does not verify")]
    BadSignature,
    #[error("the attestation key is not a restricted ECDSA P-256 signing key fixed to its TPM, so what it signs proves nothing")]
    WeakAttestationKey,
    #[error("the certification is for another object than the key's public area")]
    WrongObject,
    #[error("the certified public key is not the key trustd reports")]
    KeyMismatch,
    #[error("the key lacks {0}: it may have been imported or may be exportable")]
    MissingAttribute(&'static str),
    #[error("the certification does not carry this request's nonce: it is not fresh")]
    StaleNonce,
    #[error(
        "the TPM has no RSA 2048 endorsement key certificate, so nothing ties it to a TPM vendor"
    )]
    NoEkCertificate,
    #[error("the endorsement key certificate does not chain to a trusted CA ({0})")]
    UntrustedEk(String),
    #[error("no TPM CA is configured to check the endorsement key certificate against: pass --tpm-ca FILE or set [attestation] tpm_ca in trustctl's config")]
    NoTrustAnchor,
    #[error("cannot read TPM CA {path}: {reason}")]
    TrustAnchorFile { path: PathBuf, reason: String },
    #[error("the attestation key failed the credential challenge: {0}")]
    Activation(String),
    #[error("the PIV attestation does not chain to a trusted root: {0} (a test card or a YubiKey with firmware 5.7.4 or later needs --piv-ca)")]
    UntrustedPiv(String),
    #[error("the attestation certificate lacks Yubico's firmware, serial or policy extensions")]
    NotYubicoAttestation,
    #[error("the card's attestation disagrees with trustd's record: {0}")]
    PolicyMismatch(String),
}

/// The certificates (PEM, roots and intermediates) a TPM's EK certificate may chain to.
pub struct TpmTrust {
    certificates: Vec<Certificate>,
    source: PathBuf,
}

impl TpmTrust {
    pub fn from_pem_file(path: &Path) -> Result<TpmTrust, AttestationError> {
        let error = |reason: String| AttestationError::TrustAnchorFile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        let certificates = pem::parse_many(&text)
            .map_err(|e| error(e.to_string()))?
            .into_iter()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(|p| Certificate::from_der(p.contents()).map_err(|e| error(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if certificates.is_empty() {
            return Err(error("it holds no PEM certificate".into()));
        }
        Ok(TpmTrust {
            certificates,
            source: path.to_owned(),
        })
    }

    /// Finds a chain from `ek` through the file's certificates to one of them.
    fn check(&self, ek: &Certificate) -> Result<String, AttestationError> {
        let now = time::OffsetDateTime::now_utc();
        let mut bundle = vec![ek.clone()];
        bundle.extend(self.certificates.iter().cloned());
        let mut last = String::from("no certificate in the file issued it");
        for anchor in &self.certificates {
            match chains_to(&bundle, anchor, now) {
                Ok(()) => {
                    return Ok(format!(
                        "{} ({})",
                        anchor.tbs_certificate.subject,
                        self.source.display()
                    ))
                }
                Err(e) => last = e,
            }
        }
        Err(AttestationError::UntrustedEk(last))
    }
}

/// What the offline checks established about one key's TPM evidence.
pub struct CheckedEvidence {
    pub ak_name: Vec<u8>,
    pub ek_certificate: Option<Certificate>,
    pub firmware_version: u64,
    pub key_attributes: Vec<&'static str>,
}

/// Steps 1 and 2: the key's attributes and public key, and the AK's certification of it.
/// `nonce` is the caller's fresh value, or empty for the evidence stored at generation.
pub fn check_tpm_evidence(
    key: &pb::KeyInfo,
    evidence: &pb::TpmAttestation,
    nonce: &[u8],
) -> Result<CheckedEvidence, AttestationError> {
    let malformed = |e: tpm_structures::ParseError| AttestationError::Malformed(e.to_string());
    let ak = PublicArea::parse(&evidence.ak_public_area).map_err(malformed)?;
    let ak_is_strong = ak.has(
        attributes::FIXED_TPM
            | attributes::FIXED_PARENT
            | attributes::SENSITIVE_DATA_ORIGIN
            | attributes::RESTRICTED
            | attributes::SIGN,
    ) && !ak.has(attributes::DECRYPT);
    let PublicKey::EccP256(ak_point) = &ak.key else {
        return Err(AttestationError::WeakAttestationKey);
    };
    if !ak_is_strong {
        return Err(AttestationError::WeakAttestationKey);
    }
    let ak_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(ak_point)
        .map_err(|_| AttestationError::Malformed("the AK's point is not on P-256".into()))?;
    let signature = p256::ecdsa::Signature::from_slice(&evidence.signature)
        .map_err(|_| AttestationError::BadSignature)?;
    ak_key
        .verify(&evidence.certify_info, &signature)
        .map_err(|_| AttestationError::BadSignature)?;

    let info = CertifyInfo::parse(&evidence.certify_info).map_err(malformed)?;
    if info.extra_data != nonce {
        return Err(AttestationError::StaleNonce);
    }
    let certified = PublicArea::parse(&evidence.key_public_area).map_err(malformed)?;
    if info.name != certified.name {
        return Err(AttestationError::WrongObject);
    }
    let spki = certified.spki().map_err(AttestationError::Malformed)?;
    let reported = spki::SubjectPublicKeyInfoRef::try_from(key.public_key_der.as_slice())
        .ok()
        .and_then(|s| s.to_der().ok());
    if reported.as_deref() != Some(spki.as_slice()) {
        return Err(AttestationError::KeyMismatch);
    }
    let required = [
        (attributes::FIXED_TPM, "fixedTPM"),
        (attributes::FIXED_PARENT, "fixedParent"),
        (attributes::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
        (attributes::SIGN, "sign"),
    ];
    for (bit, name) in required {
        if !certified.has(bit) {
            return Err(AttestationError::MissingAttribute(name));
        }
    }
    let mut key_attributes: Vec<_> = required.iter().map(|(_, n)| *n).collect();
    if certified.has(attributes::USER_WITH_AUTH) {
        key_attributes.push("userWithAuth");
    }
    let ek_certificate = if evidence.ek_certificate_der.is_empty() {
        None
    } else {
        Some(
            Certificate::from_der(&evidence.ek_certificate_der)
                .map_err(|e| AttestationError::Malformed(format!("the EK certificate: {e}")))?,
        )
    };
    Ok(CheckedEvidence {
        ak_name: ak.name,
        ek_certificate,
        firmware_version: info.firmware_version,
        key_attributes,
    })
}

/// Step 4, and the EK's public key for step 3's challenge.
pub fn check_ek_certificate(
    checked: &CheckedEvidence,
    trust: Option<&TpmTrust>,
) -> Result<(rsa::RsaPublicKey, EkFacts), AttestationError> {
    let ek = checked
        .ek_certificate
        .as_ref()
        .ok_or(AttestationError::NoEkCertificate)?;
    let trust = trust.ok_or(AttestationError::NoTrustAnchor)?;
    let anchor = trust.check(ek)?;
    let spki = ek
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| AttestationError::Malformed(e.to_string()))?;
    let public = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| {
        AttestationError::Malformed("the EK certificate does not hold an RSA key".into())
    })?;
    Ok((
        public,
        EkFacts {
            issuer: ek.tbs_certificate.issuer.to_string(),
            serial: hex::encode(ek.tbs_certificate.serial_number.as_bytes()),
            anchor,
        },
    ))
}

/// What the EK certificate says, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct EkFacts {
    pub issuer: String,
    pub serial: String,
    /// The trusted certificate it chains to, and the file it came from.
    pub anchor: String,
}

/// The outcome of a full verification, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct TpmReport {
    pub key: String,
    pub key_id: String,
    pub backend: String,
    pub attestation_key: String,
    pub key_attributes: Vec<&'static str>,
    pub fresh_nonce: bool,
    pub ak_activated: bool,
    pub endorsement_certificate: EkFacts,
    pub firmware_version: String,
}

impl TpmReport {
    pub fn new(
        key: &pb::KeyInfo,
        checked: &CheckedEvidence,
        ek: EkFacts,
        fresh_nonce: bool,
    ) -> TpmReport {
        TpmReport {
            key: key.name.clone(),
            key_id: key.key_id.clone(),
            backend: key.backend.clone(),
            attestation_key: hex::encode(&checked.ak_name),
            key_attributes: checked.key_attributes.clone(),
            fresh_nonce,
            ak_activated: true,
            endorsement_certificate: ek,
            firmware_version: format!(
                "{}.{}",
                checked.firmware_version >> 32,
                checked.firmware_version & 0xffff_ffff
            ),
        }
    }
}
