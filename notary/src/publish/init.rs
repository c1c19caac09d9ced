//! A new repository: root and targets keys the signer holds, a root certificate signed by the
//! root key, the timestamp (and by default snapshot) key on the server.

use std::collections::BTreeMap;

use super::roles::{
    expires_in, file_meta, publish_and_verify, signed_file, ROOT_DAYS, TARGETS_DAYS,
};
use super::{HeldKey, PublishError, RoleSigner};
use crate::client::server::{NotaryServer, ServerError};
use crate::keys::PublicKey;
use crate::model::{Delegations, RoleKeys, RoleType, Root, Snapshot, Targets};
use crate::trust::{TrustStore, VerifiedRepository};

/// The signer's keys for a new repository, by name (the caller creates them).
pub struct InitKeys {
    /// The root keys (ECDSA P-256: a certificate is made here around each).
    pub root: Vec<String>,
    /// How many of them must sign a root (1 to their number).
    pub root_threshold: u32,
    /// The targets key.
    pub targets: String,
    /// `None` to have the server hold the snapshot key (docker's default).
    pub snapshot: Option<String>,
}

fn unreachable(error: ServerError) -> PublishError {
    PublishError::Unreachable(error.to_string())
}

/// A GUN [`check_new`] found free to create, with the timestamp key its server handed out:
/// [`init`] takes one, so the checks cannot be skipped and the key is fetched once.
pub struct NewRepository {
    timestamp_key: PublicKey,
}

/// Refuses a GUN that already has trust data, or whose new root the trust pinning would
/// reject: checked before any key is made for it or anything is sent.
pub async fn check_new(
    server: &NotaryServer,
    store: &TrustStore,
    gun: &str,
) -> Result<NewRepository, PublishError> {
    store
        .pinning()
        .check_new_root(gun)
        .map_err(|e| PublishError::Refused(e.to_string()))?;
    if server
        .get(gun, "root.json", 1024 * 1024)
        .await
        .map_err(unreachable)?
        .is_some()
    {
        return Err(PublishError::AlreadyExists(format!(
            "{gun} already has trust data on {}; use `trustctl sign` to add tags",
            server.url()
        )));
    }
    // A notary server hands out the timestamp key it will sign with (init needs it anyway);
    // anything else (a registry, a typo) is found out here, before a key is made for it.
    let timestamp_key = server.key(gun, "timestamp").await.map_err(unreachable)?;
    Ok(NewRepository { timestamp_key })
}

/// Creates the repository's trust data with the signer's keys `names` and publishes it.
pub async fn init(
    server: &NotaryServer,
    store: &TrustStore,
    signer: &mut dyn RoleSigner,
    gun: &str,
    checked: NewRepository,
    names: &InitKeys,
) -> Result<VerifiedRepository, PublishError> {
    super::root::check_threshold(names.root_threshold, names.root.len())?;
    let root_keys = super::root::root_keys(signer, gun, &names.root, &BTreeMap::new()).await?;
    let targets_key = signer.public_key(&names.targets).await?;
    let timestamp_key = checked.timestamp_key;
    let snapshot_key = match &names.snapshot {
        Some(name) => signer.public_key(name).await?,
        None => server.key(gun, "snapshot").await.map_err(unreachable)?,
    };
    let keys: BTreeMap<&str, PublicKey> = [
        ("targets", targets_key),
        ("snapshot", snapshot_key),
        ("timestamp", timestamp_key),
    ]
    .into();
    let mut roles: BTreeMap<String, RoleKeys> = keys
        .iter()
        .map(|(role, key)| {
            (
                role.to_string(),
                RoleKeys {
                    keyids: vec![key.id()],
                    threshold: 1,
                },
            )
        })
        .collect();
    roles.insert(
        "root".to_owned(),
        super::root::root_role(&root_keys, names.root_threshold),
    );
    let root = Root {
        role_type: RoleType::Root,
        consistent_snapshot: false,
        expires: expires_in(ROOT_DAYS),
        keys: keys
            .values()
            .chain(root_keys.iter().map(|k| &k.certificate))
            .map(|k| (k.id(), k.clone()))
            .collect(),
        roles,
        version: 1,
    };
    let targets = Targets {
        role_type: RoleType::Targets,
        delegations: Delegations::default(),
        expires: expires_in(TARGETS_DAYS),
        targets: BTreeMap::new(),
        version: 1,
    };
    let held = |name: &str, role: &str| HeldKey {
        name: name.to_owned(),
        keyid: keys[role].id(),
    };
    let root_signers: Vec<HeldKey> = root_keys.iter().map(|k| k.held()).collect();
    let root_bytes = signed_file(signer, &root_signers, &root).await?;
    let targets_bytes = signed_file(signer, &[held(&names.targets, "targets")], &targets).await?;
    let mut files = vec![
        ("root".to_owned(), root_bytes.clone()),
        ("targets".to_owned(), targets_bytes.clone()),
    ];
    if let Some(name) = &names.snapshot {
        let snapshot = Snapshot {
            role_type: RoleType::Snapshot,
            expires: expires_in(TARGETS_DAYS),
            meta: [
                ("root".to_owned(), file_meta(&root_bytes)),
                ("targets".to_owned(), file_meta(&targets_bytes)),
            ]
            .into(),
            version: 1,
        };
        files.push((
            "snapshot".to_owned(),
            signed_file(signer, &[held(name, "snapshot")], &snapshot).await?,
        ));
    }
    publish_and_verify(server, store, gun, &files).await
}
