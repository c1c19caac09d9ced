//! `trustctl key attest NAME`, and the attestation column of `trustctl key list`.

use std::path::{Path, PathBuf};

use trustctl::attestation::{TpmReport, TpmTrust, Verifier, VerifyError};
use trustctl::client;
use trustctl::error::CliError;
use trustd_proto as pb;

use super::config;

/// The TPM CA file from --tpm-ca, else from the config file; None when neither names one.
pub fn tpm_trust(flag: Option<PathBuf>) -> Result<Option<TpmTrust>, CliError> {
    let Some(path) = flag.or_else(|| config().attestation.tpm_ca.clone()) else {
        return Ok(None);
    };
    TpmTrust::from_pem_file(&path)
        .map(Some)
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// Fetches fresh evidence for one key, verifies it and prints what it proved.
pub async fn attest(
    socket: &Path,
    name: &str,
    tpm_ca: Option<PathBuf>,
    json: bool,
) -> Result<(), CliError> {
    let trust = tpm_trust(tpm_ca)?;
    let mut client = client::connect(socket).await?;
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
    let mut verifier = Verifier::new(&mut client, trust.as_ref());
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
        print_report(&report);
    }
    Ok(())
}

fn print_report(report: &TpmReport) {
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
    have_trust: bool,
) -> (String, serde_json::Value) {
    match verifier.check_stored(key).await {
        None => ("-".into(), serde_json::json!({"status": "none"})),
        Some(Ok(_)) => (
            "verified (tpm)".into(),
            serde_json::json!({"status": "verified", "kind": "tpm"}),
        ),
        Some(Err(VerifyError::Rejected(reason))) if !have_trust => (
            "unverified (no tpm_ca)".into(),
            serde_json::json!({"status": "unverified", "kind": "tpm", "detail": reason.to_string()}),
        ),
        Some(Err(error)) => (
            "FAILED (tpm): see `key attest`".into(),
            serde_json::json!({"status": "failed", "kind": "tpm", "detail": error.to_string()}),
        ),
    }
}
