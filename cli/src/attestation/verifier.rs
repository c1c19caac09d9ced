//! The interactive half of TPM attestation: fresh evidence from trustd, and the credential
//! challenge that proves the attestation key shares a TPM with the certified EK.

use std::collections::HashMap;

use rand::RngCore;
use trustd_proto as pb;

use super::make_credential::make_credential;
use super::piv::{self, PivReport, PivTrust};
use super::{check_ek_certificate, check_tpm_evidence, AttestationError, TpmReport, TpmTrust};
use crate::client::Client;

/// What a verified attestation proved, per kind of device.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "device", rename_all = "lowercase")]
pub enum Report {
    Tpm(TpmReport),
    Piv(PivReport),
}

/// Why a key's attestation could not be shown verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// trustd (or the device behind it) could not produce the evidence.
    #[error("{}", .0.message())]
    Trustd(tonic::Status),
    /// The evidence did not prove what it claims.
    #[error(transparent)]
    Rejected(#[from] AttestationError),
}

/// Verifies keys' attestations, challenging each attestation key once per run.
pub struct Verifier<'a> {
    client: &'a mut Client,
    trust: Option<&'a TpmTrust>,
    piv_trust: &'a PivTrust,
    /// (backend, AK name) -> the outcome of its credential challenge.
    challenged: HashMap<(String, Vec<u8>), Result<(), String>>,
}

impl<'a> Verifier<'a> {
    pub fn new(
        client: &'a mut Client,
        trust: Option<&'a TpmTrust>,
        piv_trust: &'a PivTrust,
    ) -> Self {
        Verifier {
            client,
            trust,
            piv_trust,
            challenged: HashMap::new(),
        }
    }

    /// Asks the device for fresh evidence (bound to a random nonce where the device takes
    /// one), and verifies it.
    pub async fn attest(&mut self, key: &pb::KeyInfo) -> Result<Report, VerifyError> {
        let mut nonce = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let reply = self
            .client
            .attest_key(pb::AttestKeyRequest {
                key: Some(pb::KeySelector {
                    selector: Some(pb::key_selector::Selector::Name(key.name.clone())),
                }),
                nonce: nonce.to_vec(),
            })
            .await
            .map_err(VerifyError::Trustd)?
            .into_inner();
        self.verify_any(key, reply.attestation.as_ref(), &nonce)
            .await
            .unwrap_or_else(|| {
                Err(AttestationError::Malformed("trustd returned no evidence".into()).into())
            })
    }

    /// Verifies the evidence trustd kept from the key's generation; None when there is none.
    pub async fn check_stored(&mut self, key: &pb::KeyInfo) -> Option<Result<Report, VerifyError>> {
        self.verify_any(key, key.attestation.as_ref(), &[]).await
    }

    async fn verify_any(
        &mut self,
        key: &pb::KeyInfo,
        attestation: Option<&pb::Attestation>,
        nonce: &[u8],
    ) -> Option<Result<Report, VerifyError>> {
        Some(match attestation?.evidence.as_ref()? {
            pb::attestation::Evidence::Tpm(tpm) => {
                self.verify(key, tpm, nonce).await.map(Report::Tpm)
            }
            pb::attestation::Evidence::Piv(evidence) => piv::verify(key, evidence, self.piv_trust)
                .map(Report::Piv)
                .map_err(VerifyError::from),
        })
    }

    async fn verify(
        &mut self,
        key: &pb::KeyInfo,
        evidence: &pb::TpmAttestation,
        nonce: &[u8],
    ) -> Result<TpmReport, VerifyError> {
        let checked = check_tpm_evidence(key, evidence, nonce)?;
        let (ek_public, ek_facts) = check_ek_certificate(&checked, self.trust)?;
        let slot = (key.backend.clone(), checked.ak_name.clone());
        if !self.challenged.contains_key(&slot) {
            let outcome = self
                .challenge(&key.backend, &ek_public, &checked.ak_name)
                .await?;
            self.challenged.insert(slot.clone(), outcome);
        }
        if let Err(reason) = &self.challenged[&slot] {
            return Err(AttestationError::Activation(reason.clone()).into());
        }
        Ok(TpmReport::new(key, &checked, ek_facts, !nonce.is_empty()))
    }

    /// Seals a random credential to the EK and the AK's name; the TPM must give it back.
    /// Err is for trustd failures; Ok(Err) is a TPM that failed the challenge.
    async fn challenge(
        &mut self,
        backend: &str,
        ek: &rsa::RsaPublicKey,
        ak_name: &[u8],
    ) -> Result<Result<(), String>, VerifyError> {
        let challenge = make_credential(ek, ak_name).map_err(AttestationError::Activation)?;
        let reply = self
            .client
            .activate_credential(pb::ActivateCredentialRequest {
                backend: backend.to_owned(),
                credential_blob: challenge.credential_blob.clone(),
                encrypted_secret: challenge.encrypted_secret.clone(),
            })
            .await;
        Ok(match reply {
            Ok(reply) if reply.get_ref().credential == challenge.credential.as_slice() => Ok(()),
            Ok(_) => Err("the TPM returned a different credential".into()),
            // A TPM that cannot unseal the credential answers with an error of its own.
            Err(status) if status.code() == tonic::Code::Internal => {
                Err(status.message().to_owned())
            }
            Err(status) => return Err(VerifyError::Trustd(status)),
        })
    }
}
