//! What every publish shares: notary's lifetimes, trustctl's names for a repository's keys,
//! role files signed by trustd and their metadata, and publishing followed by a verified
//! read. Its own module so that drafts, new repositories and rotations use it without
//! importing each other.

use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;
use trustd_proto as pb;

use crate::client::signer::TrustdSigner;
use crate::error::CliError;
use trustd_notary::client::server::NotaryServer;
use trustd_notary::envelope::Envelope;
use trustd_notary::model::{self, Base64Bytes, FileMeta};
use trustd_notary::trust::{self, TrustError, TrustStore, VerifiedRepository};

/// Notary's default lifetimes.
pub(super) const ROOT_DAYS: i64 = 3650;
pub(super) const TARGETS_DAYS: i64 = 3 * 365;

/// The trustd key names trustctl uses for a repository's roles.
pub fn key_name(gun: &str, role: &str) -> String {
    format!("{gun}/{role}")
}

pub(super) fn expires_in(days: i64) -> String {
    model::format_expires(OffsetDateTime::now_utc() + time::Duration::days(days))
}

/// Publishes role files, then reads the repository back through full verification: a
/// publish the server accepted but that does not verify is reported, not trusted.
pub(super) async fn publish_and_verify(
    server: &NotaryServer,
    store: &TrustStore,
    gun: &str,
    files: &[(String, Vec<u8>)],
) -> Result<VerifiedRepository, CliError> {
    server
        .publish(gun, files)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let source = trust::WithKnownFiles::new(server, files);
    trust::update(&source, store, gun, OffsetDateTime::now_utc())
        .await
        .map_err(|e: TrustError| {
            CliError::Failed(format!("the published trust data does not verify: {e}"))
        })
}

pub(super) async fn ensure_key(
    signer: &mut TrustdSigner,
    client: &mut crate::client::Client,
    gun: &str,
    role: &str,
    backend: &str,
) -> Result<String, CliError> {
    let name = key_name(gun, role);
    if signer.key(&name).await.is_ok() {
        return Ok(name);
    }
    generate_key(client, &name, gun, role, backend).await?;
    Ok(name)
}

/// A new ECDSA P-256 key in trustd, recorded as `role`'s key of `gun`.
pub(super) async fn generate_key(
    client: &mut crate::client::Client,
    name: &str,
    gun: &str,
    role: &str,
    backend: &str,
) -> Result<(), CliError> {
    client
        .generate_key(pb::GenerateKeyRequest {
            name: name.to_owned(),
            backend: backend.to_owned(),
            algorithm: pb::KeyAlgorithm::EcdsaP256 as i32,
            scope: Some(pb::KeyScope {
                gun: gun.to_owned(),
                role: role.to_owned(),
            }),
            piv: None,
        })
        .await
        .map_err(|s| CliError::from_status(&format!("cannot generate the {role} key"), s))?;
    Ok(())
}

pub(super) async fn signed_file(
    signer: &mut TrustdSigner,
    key: &str,
    keyid: &str,
    role: &impl serde::Serialize,
) -> Result<Vec<u8>, CliError> {
    let value: Value = serde_json::to_value(role).expect("roles serialize");
    // Canonicalized once: the same bytes are signed and written.
    let body = trustd_notary::canonical::to_vec(&value)
        .map_err(|e| CliError::Failed(format!("cannot write the role: {e}")))?;
    let signature = signer.sign_canonical(key, keyid, &body).await?;
    Ok(Envelope::wire(&body, &[signature]))
}

pub(super) fn file_meta(bytes: &[u8]) -> FileMeta {
    FileMeta {
        custom: None,
        hashes: [
            (
                "sha256".to_owned(),
                Base64Bytes(Sha256::digest(bytes).to_vec()),
            ),
            (
                "sha512".to_owned(),
                Base64Bytes(Sha512::digest(bytes).to_vec()),
            ),
        ]
        .into(),
        length: bytes.len() as i64,
    }
}
