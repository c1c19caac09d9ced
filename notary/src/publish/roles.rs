//! What every change shares: notary's lifetimes, role files signed and framed, their
//! snapshot entries, and publishing followed by a verified read.

use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;

use super::{HeldKey, PublishError, RoleSigner};
use crate::client::server::NotaryServer;
use crate::envelope::Envelope;
use crate::model::{self, Base64Bytes, FileMeta};
use crate::trust::{self, TrustStore, VerifiedRepository};

/// Notary's default lifetimes.
pub const ROOT_DAYS: i64 = 3650;
/// Notary's default lifetime of targets, snapshot and delegated roles.
pub const TARGETS_DAYS: i64 = 3 * 365;

/// An expiry `days` from now, in notary's format.
pub fn expires_in(days: i64) -> String {
    model::format_expires(OffsetDateTime::now_utc() + time::Duration::days(days))
}

/// A role's canonical body: the exact bytes its keys sign.
pub fn canonical_body(role: &impl serde::Serialize) -> Result<Vec<u8>, PublishError> {
    let value = serde_json::to_value(role).expect("roles serialize");
    crate::canonical::to_vec(&value)
        .map_err(|e| PublishError::Failed(format!("cannot write the role: {e}")))
}

/// Serializes `role` canonically once, has every key in `keys` sign those bytes, and frames
/// the role file: the same bytes are signed and written.
pub async fn signed_file(
    signer: &mut dyn RoleSigner,
    keys: &[HeldKey],
    role: &impl serde::Serialize,
) -> Result<Vec<u8>, PublishError> {
    let body = canonical_body(role)?;
    let mut signatures = Vec::with_capacity(keys.len());
    for key in keys {
        signatures.push(signer.sign(&key.name, &key.keyid, &body).await?);
    }
    Ok(Envelope::wire(&body, &signatures))
}

/// The snapshot's entry for a role file.
pub fn file_meta(bytes: &[u8]) -> FileMeta {
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

/// Publishes role files, then reads the repository back through full verification.
pub async fn publish_and_verify(
    server: &NotaryServer,
    store: &TrustStore,
    gun: &str,
    files: &[(String, Vec<u8>)],
) -> Result<VerifiedRepository, PublishError> {
    server
        .publish(gun, files)
        .await
        .map_err(|e| PublishError::Failed(e.to_string()))?;
    let source = trust::WithKnownFiles::new(server, files);
    trust::update(&source, store, gun, OffsetDateTime::now_utc())
        .await
        .map_err(|e| PublishError::Failed(format!("the published trust data does not verify: {e}")))
}
