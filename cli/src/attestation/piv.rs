//! YubiKey PIV attestation: the card issues, with its attestation key (slot f9), a
//! certificate for a slot's key; Yubico's PIV root issued the f9 certificate at manufacture.
//! A chain from the slot certificate through f9 to the root proves the key was generated on a
//! genuine card, and Yubico's extensions in it state the card's serial, firmware and the key's
//! PIN and touch policies.
//!
//! The built-in root is "Yubico PIV Root CA Serial 263751" (firmware before 5.7.4). Cards with
//! newer firmware, and test cards, need their root given with `--piv-ca`.

use std::path::{Path, PathBuf};

use der::{Decode, Encode};
use serde::Serialize;
use x509_cert::Certificate;

use super::AttestationError;
use trustd_notary::x509_chain::chains_to;
use trustd_proto as pb;

const YUBICO_PIV_ROOT: &str = include_str!("yubico-piv-root-ca.pem");

const OID_FIRMWARE: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const OID_SERIAL: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const OID_POLICY: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");

/// The roots PIV attestations may chain to.
pub struct PivTrust {
    roots: Vec<Certificate>,
    source: String,
}

impl PivTrust {
    /// Yubico's PIV attestation root, built in.
    pub fn yubico() -> PivTrust {
        PivTrust {
            roots: parse_pem(YUBICO_PIV_ROOT.as_bytes()).expect("the built-in root parses"),
            source: "the built-in Yubico PIV root".into(),
        }
    }

    pub fn from_pem_file(path: &Path) -> Result<PivTrust, AttestationError> {
        let error = |reason: String| AttestationError::TrustAnchorFile {
            path: PathBuf::from(path),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        PivTrust::from_pem(&text, &path.display().to_string()).map_err(error)
    }

    /// The roots in PEM `text`, which came from `source` (how reports name it).
    pub fn from_pem(text: &[u8], source: &str) -> Result<PivTrust, String> {
        Ok(PivTrust {
            roots: parse_pem(text)?,
            source: source.to_owned(),
        })
    }
}

fn parse_pem(text: &[u8]) -> Result<Vec<Certificate>, String> {
    let certificates = pem::parse_many(text)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| Certificate::from_der(p.contents()).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if certificates.is_empty() {
        return Err("it holds no PEM certificate".into());
    }
    Ok(certificates)
}

/// What a verified PIV attestation proved.
#[derive(Debug, Clone, Serialize)]
pub struct PivReport {
    pub key: String,
    pub key_id: String,
    pub backend: String,
    pub slot: String,
    pub serial: u32,
    pub firmware: String,
    pub pin_policy: &'static str,
    pub touch_policy: &'static str,
    /// The trusted root it chains to, and where that root came from.
    pub anchor: String,
}

/// Verifies a YubiKey attestation of `key` against `trust`.
pub fn verify(
    key: &pb::KeyInfo,
    evidence: &pb::PivAttestation,
    trust: &PivTrust,
) -> Result<PivReport, AttestationError> {
    let malformed = |what: &str, e: der::Error| AttestationError::Malformed(format!("{what}: {e}"));
    let leaf = Certificate::from_der(&evidence.attestation_certificate_der)
        .map_err(|e| malformed("the attestation certificate", e))?;
    let intermediate = Certificate::from_der(&evidence.intermediate_certificate_der)
        .map_err(|e| malformed("the f9 certificate", e))?;
    let now = time::OffsetDateTime::now_utc();
    let bundle = [leaf.clone(), intermediate];
    let mut last = "no root".to_owned();
    let anchor = trust
        .roots
        .iter()
        .find_map(|root| match chains_to(&bundle, root, now) {
            Ok(()) => Some(root.tbs_certificate.subject.to_string()),
            Err(e) => {
                last = e;
                None
            }
        });
    let Some(anchor) = anchor else {
        return Err(AttestationError::UntrustedPiv(format!(
            "{last}; checked against {}",
            trust.source
        )));
    };
    // The attested key is the key trustd reports.
    let attested = leaf
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| malformed("the attested key", e))?;
    let reported = spki::SubjectPublicKeyInfoRef::try_from(key.public_key_der.as_slice())
        .ok()
        .and_then(|s| s.to_der().ok());
    if reported.as_deref() != Some(attested.as_slice()) {
        return Err(AttestationError::KeyMismatch);
    }
    let facts = AttestedFacts::of(&leaf)?;
    let report = PivReport {
        key: key.name.clone(),
        key_id: key.key_id.clone(),
        backend: key.backend.clone(),
        slot: facts.slot,
        serial: facts.serial,
        firmware: format!(
            "{}.{}.{}",
            facts.firmware[0], facts.firmware[1], facts.firmware[2]
        ),
        pin_policy: pin_policy_name(facts.pin_policy),
        touch_policy: touch_policy_name(facts.touch_policy),
        anchor: format!("{anchor} ({})", trust.source),
    };
    // What trustd recorded must be what the card attests.
    if let Some(recorded) = &key.piv {
        let recorded_pin = pin_policy_name(recorded.pin_policy as u8);
        let recorded_touch = touch_policy_name(recorded.touch_policy as u8);
        let mismatch = if recorded.serial != report.serial {
            Some(format!(
                "card serial {}, trustd says {}",
                report.serial, recorded.serial
            ))
        } else if recorded.slot != report.slot {
            Some(format!(
                "slot {}, trustd says {}",
                report.slot, recorded.slot
            ))
        } else if recorded_pin != report.pin_policy || recorded_touch != report.touch_policy {
            Some(format!(
                "PIN/touch policy {}/{}, trustd says {recorded_pin}/{recorded_touch}",
                report.pin_policy, report.touch_policy
            ))
        } else {
            None
        };
        if let Some(mismatch) = mismatch {
            return Err(AttestationError::PolicyMismatch(mismatch));
        }
    }
    Ok(report)
}

/// What a YubiKey attestation certificate says about its slot, from Yubico's extensions and
/// the subject ("CN=YubiKey PIV Attestation 9c"). Read only once the chain is verified; kept
/// apart so the fuzzer reaches it without forging a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedFacts {
    pub serial: u32,
    pub firmware: [u8; 3],
    pub pin_policy: u8,
    pub touch_policy: u8,
    pub slot: String,
}

impl AttestedFacts {
    pub fn of(leaf: &Certificate) -> Result<AttestedFacts, AttestationError> {
        let malformed =
            |what: &str, e: der::Error| AttestationError::Malformed(format!("{what}: {e}"));
        let extension = |oid| {
            leaf.tbs_certificate
                .extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == oid)
                .map(|e| e.extn_value.as_bytes().to_vec())
                .ok_or(AttestationError::NotYubicoAttestation)
        };
        let firmware = extension(OID_FIRMWARE)?;
        let serial = der::asn1::Uint::from_der(&extension(OID_SERIAL)?)
            .map_err(|e| malformed("the serial extension", e))?;
        let serial = serial
            .as_bytes()
            .iter()
            .try_fold(0u32, |n, b| n.checked_mul(256).map(|n| n + *b as u32))
            .ok_or(AttestationError::NotYubicoAttestation)?;
        let policy = extension(OID_POLICY)?;
        let (Some(&pin_policy), Some(&touch_policy), &[major, minor, patch]) =
            (policy.first(), policy.get(1), firmware.as_slice())
        else {
            return Err(AttestationError::NotYubicoAttestation);
        };
        let slot = leaf
            .tbs_certificate
            .subject
            .to_string()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Ok(AttestedFacts {
            serial,
            firmware: [major, minor, patch],
            pin_policy,
            touch_policy,
            slot,
        })
    }
}

fn pin_policy_name(value: u8) -> &'static str {
    match value {
        1 => "never",
        2 => "once",
        3 => "always",
        _ => "unknown",
    }
}

fn touch_policy_name(value: u8) -> &'static str {
    match value {
        1 => "never",
        2 => "always",
        3 => "cached",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_root_is_yubicos() {
        let trust = PivTrust::yubico();
        assert_eq!(trust.roots.len(), 1);
        let root = &trust.roots[0];
        assert_eq!(
            root.tbs_certificate.subject.to_string(),
            "CN=Yubico PIV Root CA Serial 263751"
        );
        use sha2::Digest;
        let fingerprint = hex::encode_upper(sha2::Sha256::digest(root.to_der().unwrap()));
        assert_eq!(
            fingerprint,
            "63ECE914E54DD87915F34033C85AF4C0696BA1512F8ADD66CED7383312 07B546".replace(' ', "")
        );
    }
}
