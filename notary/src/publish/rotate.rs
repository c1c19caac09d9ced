//! Key rotation: a repository's targets, snapshot or timestamp key replaced by a new one,
//! the root re-signed by the (unchanged) root key, and every role the new key signs
//! re-published, as `notary key rotate` does it.

use super::draft::role_key;
use super::roles::{
    expires_in, file_meta, publish_and_verify, signed_file, ROOT_DAYS, TARGETS_DAYS,
};
use super::{HeldKey, PublishError, RoleSigner};
use crate::client::server::NotaryServer;
use crate::keys::PublicKey;
use crate::model::RoleKeys;
use crate::trust::{TrustStore, VerifiedRepository};

/// Where the new key lives.
pub enum NewKey<'a> {
    /// The signer's key of this name (the caller created it).
    /// The signer's key of this name (the caller created it).
    Held {
        /// The key's name.
        name: &'a str,
    },
    /// Generated and held by the notary server (snapshot and timestamp only).
    Server,
}

/// Where the caller means to put the new key, before it makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A key the signer holds.
    Signer,
    /// A key the notary server generates and holds.
    Server,
}

/// The outcome: the new key and the repository as published and verified.
pub struct Rotated {
    /// The new key's ID.
    pub key_id: String,
    /// The signer's name for the new key (none when the server holds it).
    pub held_name: Option<String>,
    /// The signer's key the role used before (no longer trusted for the role).
    pub previous: Option<String>,
    /// The repository as published and read back verified.
    pub repo: VerifiedRepository,
}

/// Whether `role`'s key may be rotated to `holder`: checked before any key is made.
pub fn check(role: &str, holder: Holder) -> Result<(), PublishError> {
    match (role, holder) {
        ("targets", Holder::Signer) | ("snapshot", _) | ("timestamp", Holder::Server) => Ok(()),
        ("targets", Holder::Server) => Err(PublishError::Refused(
            "the targets key cannot be held by the server; rotate it into trustd (drop --server-managed)"
                .into(),
        )),
        ("timestamp", Holder::Signer) => Err(PublishError::Refused(
            "the timestamp key is always the server's: rotate it with --server-managed (-r)".into(),
        )),
        (other, _) => Err(PublishError::Refused(format!(
            "cannot rotate the {other:?} key: choose targets, snapshot or timestamp"
        ))),
    }
}

/// The signer's root keys, which must sign the new root: at least the root's threshold.
pub async fn root_keys(
    signer: &mut dyn RoleSigner,
    repo: &VerifiedRepository,
) -> Result<Vec<HeldKey>, PublishError> {
    let held = super::root::held_root_keys(signer, &repo.root).await?;
    if held.is_empty() {
        return Err(PublishError::NotASigner(format!(
            "trustd holds no root key of {}: only the root keys' holders can rotate keys",
            repo.gun
        )));
    }
    super::root::check_old_threshold(&repo.root, &held)?;
    Ok(held)
}

/// Replaces `role`'s key with `new_key`: a new root signed by the root key, and the roles the
/// new key signs re-published.
pub async fn rotate(
    server: &NotaryServer,
    store: &TrustStore,
    signer: &mut dyn RoleSigner,
    repo: &VerifiedRepository,
    role: &str,
    new_key: NewKey<'_>,
) -> Result<Rotated, PublishError> {
    let gun = &repo.gun;
    check(
        role,
        match new_key {
            NewKey::Held { .. } => Holder::Signer,
            NewKey::Server => Holder::Server,
        },
    )?;
    let root_signers = root_keys(signer, repo).await?;
    let old = role_key(signer, repo, role).await?;
    let (key, held_name): (PublicKey, Option<String>) = match new_key {
        NewKey::Server => (
            server
                .rotate_key(gun, role)
                .await
                .map_err(|e| PublishError::Unreachable(e.to_string()))?,
            None,
        ),
        NewKey::Held { name } => (signer.public_key(name).await?, Some(name.to_owned())),
    };
    // The root: the role's old keys out (unless another role still lists them), the new
    // one in, signed by the root key, valid for the full root lifetime again.
    let mut root = repo.root.clone();
    let previous = root
        .roles
        .insert(
            role.to_owned(),
            RoleKeys {
                keyids: vec![key.id()],
                threshold: 1,
            },
        )
        .map(|r| r.keyids)
        .unwrap_or_default();
    for keyid in previous {
        if !root.roles.values().any(|r| r.keyids.contains(&keyid)) {
            root.keys.remove(&keyid);
        }
    }
    root.keys.insert(key.id(), key.clone());
    root.version += 1;
    root.expires = expires_in(ROOT_DAYS);
    let root_bytes = signed_file(signer, &root_signers, &root).await?;
    let mut files = vec![("root".to_owned(), root_bytes.clone())];

    // A new targets key re-signs the targets; a snapshot in trustd (new or kept) signs a
    // snapshot that lists the new root (and targets).
    let mut targets_bytes = None;
    if role == "targets" {
        let name = held_name.clone().expect("targets keys are the signer's");
        let mut targets = repo.targets.clone();
        targets.version += 1;
        targets.expires = expires_in(TARGETS_DAYS);
        let new = HeldKey {
            name,
            keyid: key.id(),
        };
        let bytes = signed_file(signer, &[new], &targets).await?;
        files.push(("targets".to_owned(), bytes.clone()));
        targets_bytes = Some(bytes);
    }
    let snapshot_signer = match (role, &held_name) {
        ("snapshot", Some(name)) => Some(HeldKey {
            name: name.clone(),
            keyid: key.id(),
        }),
        ("snapshot", None) => None,
        _ => role_key(signer, repo, "snapshot").await?,
    };
    if let Some(snapshot_key) = snapshot_signer {
        let mut snapshot = repo.snapshot.clone();
        snapshot
            .meta
            .insert("root".to_owned(), file_meta(&root_bytes));
        if let Some(bytes) = &targets_bytes {
            snapshot.meta.insert("targets".to_owned(), file_meta(bytes));
        }
        snapshot.version += 1;
        snapshot.expires = expires_in(TARGETS_DAYS);
        files.push((
            "snapshot".to_owned(),
            signed_file(signer, &[snapshot_key], &snapshot).await?,
        ));
    }
    let repo = publish_and_verify(server, store, gun, &files).await?;
    Ok(Rotated {
        key_id: key.id(),
        held_name,
        previous: old.map(|key| key.name),
        repo,
    })
}
