//! Changing a repository's trust data: new repositories, tags signed and revoked, delegated
//! roles, key rotation. Every change is signed by a [`RoleSigner`], published, then read back
//! through full verification (a publish the server accepted but that does not verify is
//! reported, never trusted).
//!
//! The signer is a trait so this code knows nothing of where keys live: trustctl implements it
//! over trustd's gRPC API, a test over keys in memory. Creating keys is the caller's business
//! (which device, which name); the functions here take the names of keys that exist.
//!
//! - [`roles`]: notary's lifetimes, signed role files, publish-and-verify.
//! - [`draft`]: a change to targets and delegated roles, published as one update.
//! - [`tags`]: signing and revoking tags in the roles the signer signs for.
//! - [`init`]: a new repository; [`rotate`]: a role's key replaced; [`root`]: K-of-N roots
//!   and their rotation.

pub mod draft;
pub mod init;
pub mod roles;
pub mod root;
pub mod rotate;
pub mod tags;

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::envelope::Signature;
use crate::keys::PublicKey;

/// What failed in the signer, kept whole so the caller can recover its own error type.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SignerError(pub Box<dyn std::error::Error + Send + Sync>);

/// A signer's key that a role lists: the signer's name for it, and the ID the role lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey {
    /// The signer's name for the key.
    pub name: String,
    /// The ID the role lists it under (a certificate key's, for root).
    pub keyid: String,
}

/// Keys that sign role files, wherever they are held.
#[async_trait]
pub trait RoleSigner: Send {
    /// Which of `keyids` (looked up in `keys`) this signer holds, in the order listed. Found
    /// by key ID, so whatever the signer calls a key, it is the one the repository trusts.
    async fn held(
        &mut self,
        keys: &BTreeMap<String, PublicKey>,
        keyids: &[String],
    ) -> Result<Vec<HeldKey>, SignerError>;

    /// The key `name` as TUF metadata lists it (plain form: `ecdsa`, `ed25519`, `rsa`).
    async fn public_key(&mut self, name: &str) -> Result<PublicKey, SignerError>;

    /// A signature by `name` over `message` (a role's canonical body, or a certificate's
    /// to-be-signed part), listed as `keyid`; ECDSA signatures are raw r||s.
    async fn sign(
        &mut self,
        name: &str,
        keyid: &str,
        message: &[u8],
    ) -> Result<Signature, SignerError>;
}

/// Why a change could not be made, by what the user can do about it.
#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The notary server could not be asked (network, TLS, an error answer to a read).
    #[error("{0}")]
    Unreachable(String),
    /// The change was sent and refused, or what came back does not verify.
    #[error("{0}")]
    Failed(String),
    /// The repository already has trust data.
    #[error("{0}")]
    AlreadyExists(String),
    /// The signer holds no key that may make this change.
    #[error("{0}")]
    NotASigner(String),
    /// A role or tag named is not there.
    #[error("{0}")]
    NotFound(String),
    /// The change asked for cannot be made as asked (a tag outside a role's paths, a key the
    /// server cannot hold).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Signer(#[from] SignerError),
}
