//! Reading, adding to and verifying an image's `sha256-D.sig` signature manifest.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{signature_tag, Payload, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
use crate::client::signer::TrustdSigner;
use crate::error::CliError;
use crate::once::OncePerKey;
use crate::reference::ImageRef;
use crate::registry::{reference, RegistryClient, RegistryError};
use trustd_notary::verify::{self, Signed};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Payloads are a few hundred bytes; anything far larger is not one.
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// The config blob of every signature manifest trustctl writes. It is the same for all, so a
/// batch uploads it once per repository; verifiers never read it.
const CONFIG: &[u8] = br#"{"architecture":"","config":{},"created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":[]}}"#;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub size: i64,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image manifest holding signatures as layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl SignatureManifest {
    fn empty() -> SignatureManifest {
        SignatureManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_owned()),
            config: Descriptor {
                media_type: OCI_CONFIG.to_owned(),
                size: CONFIG.len() as i64,
                digest: digest_of(CONFIG),
                annotations: None,
            },
            layers: Vec::new(),
            annotations: None,
        }
    }

    /// The signatures: (payload digest, base64 signature) of each simple-signing layer.
    pub fn signatures(&self) -> impl Iterator<Item = (&Descriptor, &str)> {
        self.layers.iter().filter_map(|layer| {
            if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
                return None;
            }
            let signature = layer.annotations.as_ref()?.get(SIGNATURE_ANNOTATION)?;
            Some((layer, signature.as_str()))
        })
    }
}

/// What signing one digest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutcome {
    Added,
    /// This key had signed it already: nothing was written.
    AlreadySigned,
}

/// Repositories this run has put the shared config blob into: once each, even when
/// parallel jobs sign images of the same repository.
#[derive(Clone, Default)]
pub struct UploadedConfigs(OncePerKey<String>);

fn registry_failure(error: RegistryError) -> CliError {
    CliError::Failed(error.to_string())
}

/// Whether one simple-signing layer (its payload and base64 signature) is a signature by
/// `spki` of `digest`; the error says why not.
pub fn check_signature(
    spki: &[u8],
    payload: &[u8],
    signature_b64: &str,
    digest: &str,
) -> Result<(), String> {
    if !signature_valid(spki, payload, signature_b64) {
        return Err("signed by another key".to_owned());
    }
    let payload = Payload::parse(payload)?;
    if payload.critical.image.docker_manifest_digest != digest {
        return Err(format!(
            "the signed payload is for {}, not {digest}",
            payload.critical.image.docker_manifest_digest
        ));
    }
    Ok(())
}

fn signature_valid(spki: &[u8], payload: &[u8], signature_b64: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(signature_b64)
        .ok()
        .is_some_and(|sig| verify::verify(spki, Signed::Message(payload), &sig).is_ok())
}

async fn signature_manifest(
    client: &RegistryClient,
    image: &ImageRef,
    digest: &str,
) -> Result<Option<SignatureManifest>, CliError> {
    let sig_ref = reference(image, &signature_tag(digest));
    match client.manifest(&sig_ref).await.map_err(registry_failure)? {
        None => Ok(None),
        Some(fetched) => serde_json::from_slice(&fetched.body)
            .map(Some)
            .map_err(|e| {
                CliError::Failed(format!(
                    "{}:{}: the signature manifest is malformed: {e}",
                    image.gun,
                    signature_tag(digest)
                ))
            }),
    }
}

/// Signs `image@digest` with the trustd key `key` (ECDSA P-256, public key `spki`), adding
/// a layer to its signature manifest unless this key signed it already.
pub async fn sign_digest(
    client: &RegistryClient,
    configs: &UploadedConfigs,
    signer: &mut TrustdSigner,
    key: &str,
    spki: &[u8],
    image: &ImageRef,
    digest: &str,
) -> Result<SignOutcome, CliError> {
    let payload = Payload::new(&image.gun, digest).to_bytes();
    let payload_digest = digest_of(&payload);
    let existing = signature_manifest(client, image, digest).await?;
    let mut manifest = existing.clone().unwrap_or_else(SignatureManifest::empty);
    let mut payload_stored = false;
    for (layer, signature) in manifest.signatures() {
        if layer.digest == payload_digest {
            payload_stored = true;
            // Same payload bytes: the signature can be checked without fetching them.
            if signature_valid(spki, &payload, signature) {
                return Ok(SignOutcome::AlreadySigned);
            }
        }
    }
    let signature = signer.sign_ecdsa_der(key, payload.clone()).await?;
    let repo_ref = reference(image, &signature_tag(digest));
    if !payload_stored {
        client
            .push_blob(&repo_ref, &payload)
            .await
            .map_err(registry_failure)?;
    }
    // An existing manifest's config is in the repository already; a new manifest uses the
    // shared config, uploaded once per repository in this run.
    if existing.is_none() {
        configs
            .0
            .run(&image.gun, || async {
                client
                    .push_blob(&repo_ref, CONFIG)
                    .await
                    .map_err(registry_failure)
            })
            .await?;
    }
    manifest.layers.push(Descriptor {
        media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
        size: payload.len() as i64,
        digest: payload_digest,
        annotations: Some(
            [(
                SIGNATURE_ANNOTATION.to_owned(),
                base64::engine::general_purpose::STANDARD.encode(&signature),
            )]
            .into(),
        ),
    });
    let body = serde_json::to_vec(&manifest).expect("manifests serialize");
    client
        .push_manifest(&repo_ref, body, OCI_MANIFEST)
        .await
        .map_err(registry_failure)?;
    Ok(SignOutcome::Added)
}

/// Checks that `image@digest` carries a cosign signature by the key `spki` whose payload
/// names that digest; the error says why not.
pub async fn verify_digest(
    client: &RegistryClient,
    spki: &[u8],
    image: &ImageRef,
    digest: &str,
) -> Result<(), String> {
    let manifest = signature_manifest(client, image, digest)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no cosign signature ({} is missing)", signature_tag(digest)))?;
    let sig_ref = reference(image, &signature_tag(digest));
    let mut reasons = Vec::new();
    for (layer, signature) in manifest.signatures() {
        let payload = match client
            .blob(&sig_ref, &layer.digest, MAX_PAYLOAD_BYTES)
            .await
        {
            Ok(payload) => payload,
            Err(e) => {
                reasons.push(e.to_string());
                continue;
            }
        };
        match check_signature(spki, &payload, signature, digest) {
            Ok(()) => return Ok(()),
            Err(reason) => reasons.push(reason),
        }
    }
    if reasons.is_empty() {
        return Err("the signature manifest holds no cosign signature".to_owned());
    }
    reasons.sort();
    reasons.dedup();
    Err(reasons.join("; "))
}
