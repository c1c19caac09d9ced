//! Key rotation: a repository's targets, snapshot or timestamp key replaced by a new one,
//! the root re-signed by the (unchanged) root key, and every role the new key signs
//! re-published, as `notary key rotate` does it.

use super::roles::{
    expires_in, file_meta, generate_key, key_name, publish_and_verify, signed_file, ROOT_DAYS,
    TARGETS_DAYS,
};
use crate::client::signer::TrustdSigner;
use crate::error::CliError;
use trustd_notary::client::server::NotaryServer;
use trustd_notary::keys::PublicKey;
use trustd_notary::model::RoleKeys;
use trustd_notary::trust::{TrustStore, VerifiedRepository};

/// Where the new key lives.
pub enum NewKey<'a> {
    /// Generated in trustd, on this backend ("" for the old key's backend or the first).
    Trustd { backend: &'a str },
    /// Generated and held by the notary server (snapshot and timestamp only).
    Server,
}

/// The outcome: the new key and the repository as published and verified.
pub struct Rotated {
    pub key_id: String,
    pub trustd_name: Option<String>,
    /// The trustd key the role used before, kept in trustd (no longer trusted for the role).
    pub previous: Option<String>,
    pub repo: VerifiedRepository,
}

/// A trustd name for a role's next key that no existing key has: `GUN/role` for the first,
/// then `GUN/role.2`, `GUN/role.3`, ...
async fn free_name(signer: &mut TrustdSigner, gun: &str, role: &str) -> Result<String, CliError> {
    let base = key_name(gun, role);
    if signer.key(&base).await.is_err() {
        return Ok(base);
    }
    for n in 2.. {
        let name = format!("{base}.{n}");
        if signer.key(&name).await.is_err() {
            return Ok(name);
        }
    }
    unreachable!("some name is free")
}

pub async fn rotate(
    server: &NotaryServer,
    store: &TrustStore,
    mut client: crate::client::Client,
    repo: &VerifiedRepository,
    role: &str,
    new_key: NewKey<'_>,
) -> Result<Rotated, CliError> {
    let gun = &repo.gun;
    let mut signer = TrustdSigner::new(client.clone());
    match (role, &new_key) {
        ("targets", NewKey::Trustd { .. }) | ("snapshot", _) | ("timestamp", NewKey::Server) => {}
        ("targets", NewKey::Server) => return Err(CliError::Usage(
            "the targets key cannot be held by the server; rotate it into trustd (drop --server)"
                .into(),
        )),
        ("timestamp", NewKey::Trustd { .. }) => {
            return Err(CliError::Usage(
                "the timestamp key is always the server's: rotate it with --server".into(),
            ))
        }
        (other, _) => {
            return Err(CliError::Usage(format!(
                "cannot rotate the {other:?} key: choose targets, snapshot or timestamp"
            )))
        }
    }
    let (root_name, root_keyid) = signer.role_key(&repo.root, "root").await?.ok_or_else(|| {
        CliError::Denied(format!(
            "trustd holds no root key of {gun}: only the root key's holder can rotate keys"
        ))
    })?;
    let old = signer.role_key(&repo.root, role).await?;

    let unreachable =
        |e: trustd_notary::client::server::ServerError| CliError::Unreachable(e.to_string());
    let (key, trustd_name): (PublicKey, Option<String>) = match new_key {
        NewKey::Server => (
            server.rotate_key(gun, role).await.map_err(unreachable)?,
            None,
        ),
        NewKey::Trustd { backend } => {
            let backend = match (backend, &old) {
                ("", Some((old_name, _))) => signer.key(old_name).await?.backend,
                (chosen, _) => chosen.to_owned(),
            };
            let name = free_name(&mut signer, gun, role).await?;
            generate_key(&mut client, &name, gun, role, &backend).await?;
            (signer.tuf_key(&name).await?, Some(name))
        }
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
    let root_bytes = signed_file(&mut signer, &root_name, &root_keyid, &root).await?;
    let mut files = vec![("root".to_owned(), root_bytes.clone())];

    // A new targets key re-signs the targets; a snapshot in trustd (new or kept) signs a
    // snapshot that lists the new root (and targets).
    let mut targets_bytes = None;
    if role == "targets" {
        let name = trustd_name.as_deref().expect("targets keys are in trustd");
        let mut targets = repo.targets.clone();
        targets.version += 1;
        targets.expires = expires_in(TARGETS_DAYS);
        let bytes = signed_file(&mut signer, name, &key.id(), &targets).await?;
        files.push(("targets".to_owned(), bytes.clone()));
        targets_bytes = Some(bytes);
    }
    let snapshot_signer = match (role, &trustd_name) {
        ("snapshot", Some(name)) => Some((name.clone(), key.id())),
        ("snapshot", None) => None,
        _ => signer.role_key(&repo.root, "snapshot").await?,
    };
    if let Some((name, keyid)) = snapshot_signer {
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
            signed_file(&mut signer, &name, &keyid, &snapshot).await?,
        ));
    }
    let repo = publish_and_verify(server, store, gun, &files).await?;
    Ok(Rotated {
        key_id: key.id(),
        trustd_name,
        previous: old.map(|(name, _)| name),
        repo,
    })
}
