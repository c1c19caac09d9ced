//! `trustctl key attest NAME`, and the attestation column of `trustctl key list`.

use std::path::PathBuf;
use trustctl::client::Trustd;

use clap::Args;
use trustctl::attestation::{
    PivReport, PivTrust, Report, TpmReport, TpmTrust, Verifier, VerifyError,
};
use trustctl::client;
use trustctl::error::CliError;
use trustd_proto as pb;

use super::config;

/// The trust anchors attestations are checked against.
#[derive(Args)]
pub struct TrustArgs {
    /// PEM certificates (TPM vendor roots and intermediates) TPM endorsement key certificates
    /// must chain to [default: the config's [attestation] tpm_ca]
    #[arg(long)]
    tpm_ca: Option<PathBuf>,
    /// PEM roots YubiKey PIV attestations must chain to [default: the config's
    /// [attestation] piv_ca, else the built-in Yubico PIV root]
    #[arg(long)]
    piv_ca: Option<PathBuf>,
}

pub struct Trust {
    pub tpm: Option<TpmTrust>,
    pub piv: PivTrust,
}

impl TrustArgs {
    pub fn load(self) -> Result<Trust, CliError> {
        let usage = |e: trustctl::attestation::AttestationError| CliError::Usage(e.to_string());
        let tpm = match self.tpm_ca.or_else(|| config().attestation.tpm_ca.clone()) {
            Some(path) => Some(TpmTrust::from_pem_file(&path).map_err(usage)?),
            None => None,
        };
        let piv = match self.piv_ca.or_else(|| config().attestation.piv_ca.clone()) {
            Some(path) => PivTrust::from_pem_file(&path).map_err(usage)?,
            None => PivTrust::yubico(),
        };
        Ok(Trust { tpm, piv })
    }
}

/// Fetches fresh evidence for one key, verifies it and prints what it proved.
pub async fn attest(
    trustd: &Trustd,
    name: &str,
    trust: TrustArgs,
    json: bool,
) -> Result<(), CliError> {
    let trust = trust.load()?;
    let mut client = client::connect(trustd).await?;
    let key = client
        .get_public_key(pb::GetPublicKeyRequest {
            key: Some(pb::KeySelector {
                selector: Some(pb::key_selector::Selector::Name(name.to_owned())),
            }),
        })
        .await
        .map_err(|s| CliError::from_status(&format!("cannot attest key {name:?}"), s))?
        .into_inner()
        .key
        .ok_or_else(|| CliError::Failed("trustd returned no key".into()))?;
    let mut verifier = Verifier::new(&mut client, trust.tpm.as_ref(), &trust.piv);
    let report = verifier.attest(&key).await.map_err(|error| match error {
        VerifyError::Trustd(status) => {
            CliError::from_status(&format!("cannot attest key {name:?}"), status)
        }
        VerifyError::Rejected(reason) => {
            CliError::Failed(format!("key {name:?}: attestation NOT verified: {reason}"))
        }
    })?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON serializes")
        );
    } else {
        match &report {
            Report::Tpm(report) => print_tpm_report(report),
            Report::Piv(report) => print_piv_report(report),
        }
    }
    Ok(())
}

fn print_piv_report(report: &PivReport) {
    println!(
        "Key {:?} on backend {:?}: attestation VERIFIED (YubiKey PIV)",
        report.key, report.backend
    );
    let rows = [
        ("key ID", report.key_id.clone()),
        (
            "generated on the card",
            format!(
                "yes, in slot {} (the card attests only keys it generated)",
                report.slot
            ),
        ),
        ("card serial", report.serial.to_string()),
        ("firmware", report.firmware.clone()),
        ("PIN policy", report.pin_policy.to_owned()),
        ("touch policy", report.touch_policy.to_owned()),
        ("trusted because", format!("it chains to {}", report.anchor)),
    ];
    for (label, value) in rows {
        println!("  {label:<22}{value}");
    }
}

fn print_tpm_report(report: &TpmReport) {
    println!(
        "Key {:?} on backend {:?}: attestation VERIFIED (TPM 2.0)",
        report.key, report.backend
    );
    let rows = [
        ("key ID", report.key_id.clone()),
        (
            "generated in the TPM",
            "yes (sensitiveDataOrigin: the TPM made the private key)".into(),
        ),
        (
            "cannot leave the TPM",
            "yes (fixedTPM, fixedParent: not duplicable, not exportable)".into(),
        ),
        ("attributes", report.key_attributes.join(", ")),
        (
            "certified by",
            format!(
                "attestation key {} (restricted signing key){}",
                report.attestation_key,
                if report.fresh_nonce {
                    ", over this request's nonce"
                } else {
                    ""
                }
            ),
        ),
        (
            "attestation key",
            "in the same TPM as the endorsement key (it answered a credential sealed to both)"
                .into(),
        ),
        (
            "endorsement cert",
            format!(
                "serial {}, issued by {}",
                report.endorsement_certificate.serial, report.endorsement_certificate.issuer
            ),
        ),
        (
            "trusted because",
            format!("it chains to {}", report.endorsement_certificate.anchor),
        ),
        ("TPM firmware", report.firmware_version.clone()),
    ];
    for (label, value) in rows {
        println!("  {label:<22}{value}");
    }
}

/// What `key list` shows about a key's attestation (verified from the evidence trustd kept
/// when the key was generated), and the same as JSON.
pub async fn list_column(
    verifier: &mut Verifier<'_>,
    key: &pb::KeyInfo,
    trust: &Trust,
) -> (String, serde_json::Value) {
    let kind = match key.attestation.as_ref().and_then(|a| a.evidence.as_ref()) {
        Some(pb::attestation::Evidence::Tpm(_)) => "tpm",
        Some(pb::attestation::Evidence::Piv(_)) => "piv",
        None => return ("-".into(), serde_json::json!({"status": "none"})),
    };
    match verifier.check_stored(key).await {
        None => ("-".into(), serde_json::json!({"status": "none"})),
        Some(Ok(_)) => (
            format!("verified ({kind})"),
            serde_json::json!({"status": "verified", "kind": kind}),
        ),
        Some(Err(VerifyError::Rejected(reason))) if kind == "tpm" && trust.tpm.is_none() => (
            "unverified (no tpm_ca)".into(),
            serde_json::json!({"status": "unverified", "kind": kind, "detail": reason.to_string()}),
        ),
        Some(Err(error)) => (
            format!("FAILED ({kind}): see `key attest`"),
            serde_json::json!({"status": "failed", "kind": kind, "detail": error.to_string()}),
        ),
    }
}
