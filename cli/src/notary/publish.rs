//! Changing a repository's trust data: initializing it and signing tags, with every key in
//! trustd, then reading the result back through full verification.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;
use trustd_proto as pb;

use super::server::NotaryServer;
use super::trust::{self, TrustError, TrustStore, VerifiedRepository};
use crate::error::CliError;
use crate::tuf::envelope::Envelope;
use crate::tuf::keys::PublicKey;
use crate::tuf::model::{
    self, Base64Bytes, Delegations, FileMeta, Meta, RoleKeys, RoleType, Root, Targets,
};
use crate::tuf::signer::TrustdSigner;

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
    let body = crate::tuf::canonical::to_vec(&value)
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

/// Options for a new repository.
pub struct InitOptions<'a> {
    pub backend: &'a str,
    /// Keep the snapshot key in trustd instead of on the server.
    pub local_snapshot: bool,
}

/// Creates the repository's trust data: root and targets keys generated in trustd, the root
/// certificate signed by trustd, the timestamp (and by default snapshot) key on the server.
pub async fn init(
    server: &NotaryServer,
    store: &TrustStore,
    mut client: crate::client::Client,
    gun: &str,
    options: &InitOptions<'_>,
) -> Result<VerifiedRepository, CliError> {
    if server
        .get(gun, "root.json", 1024 * 1024)
        .await
        .map_err(|e| CliError::Unreachable(e.to_string()))?
        .is_some()
    {
        return Err(CliError::Failed(format!(
            "{gun} already has trust data on {}; use `trustctl sign` to add tags",
            server.url()
        )));
    }
    let mut signer = TrustdSigner::new(client.clone());
    let root_name = ensure_key(&mut signer, &mut client, gun, "root", options.backend).await?;
    let targets_name =
        ensure_key(&mut signer, &mut client, gun, "targets", options.backend).await?;
    let root_key = signer.root_certificate(&root_name, gun).await?;
    let targets_key = signer.tuf_key(&targets_name).await?;
    let unreachable = |e: super::server::ServerError| CliError::Unreachable(e.to_string());
    let timestamp_key = server.key(gun, "timestamp").await.map_err(unreachable)?;
    let (snapshot_key, snapshot_name) = if options.local_snapshot {
        let name = ensure_key(&mut signer, &mut client, gun, "snapshot", options.backend).await?;
        (signer.tuf_key(&name).await?, Some(name))
    } else {
        (
            server.key(gun, "snapshot").await.map_err(unreachable)?,
            None,
        )
    };

    let keys: BTreeMap<&str, PublicKey> = [
        ("root", root_key),
        ("targets", targets_key),
        ("snapshot", snapshot_key),
        ("timestamp", timestamp_key),
    ]
    .into();
    let root = Root {
        role_type: RoleType::Root,
        consistent_snapshot: false,
        expires: expires_in(ROOT_DAYS),
        keys: keys.values().map(|k| (k.id(), k.clone())).collect(),
        roles: keys
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
            .collect(),
        version: 1,
    };
    let targets = Targets {
        role_type: RoleType::Targets,
        delegations: Delegations::default(),
        expires: expires_in(TARGETS_DAYS),
        targets: BTreeMap::new(),
        version: 1,
    };
    let root_bytes = signed_file(&mut signer, &root_name, &keys["root"].id(), &root).await?;
    let targets_bytes =
        signed_file(&mut signer, &targets_name, &keys["targets"].id(), &targets).await?;
    let mut files = vec![
        ("root".to_owned(), root_bytes.clone()),
        ("targets".to_owned(), targets_bytes.clone()),
    ];
    if let Some(name) = &snapshot_name {
        let snapshot = Meta {
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
            signed_file(&mut signer, name, &keys["snapshot"].id(), &snapshot).await?,
        ));
    }
    publish_and_verify(server, store, gun, &files).await
}

/// A tag to sign: the manifest digest (hex SHA-256) and size.
pub struct Target<'a> {
    pub tag: &'a str,
    pub sha256: [u8; 32],
    pub size: i64,
}

/// Signs tags into the targets role (replacing a tag's previous digest) with the targets key
/// in trustd, one signature for the whole change, and publishes it.
pub async fn sign_targets(
    server: &NotaryServer,
    store: &TrustStore,
    client: crate::client::Client,
    repo: &VerifiedRepository,
    new: &[Target<'_>],
) -> Result<VerifiedRepository, CliError> {
    let updated = update_targets(server, store, client, repo, |targets| {
        for target in new {
            targets.insert(
                target.tag.to_owned(),
                FileMeta {
                    custom: None,
                    hashes: [("sha256".to_owned(), Base64Bytes(target.sha256.to_vec()))].into(),
                    length: target.size,
                },
            );
        }
        Ok(())
    })
    .await?;
    for target in new {
        let published = updated.targets.targets.get(target.tag);
        if published
            .and_then(|m| m.hashes.get("sha256"))
            .map(|h| h.0.as_slice())
            != Some(&target.sha256[..])
        {
            return Err(CliError::Failed(format!(
                "the server accepted the update but {} does not show the new digest for {}",
                repo.gun, target.tag
            )));
        }
    }
    Ok(updated)
}

/// Removes the signatures of `tags` (every tag when None) from the targets role.
pub async fn revoke_targets(
    server: &NotaryServer,
    store: &TrustStore,
    client: crate::client::Client,
    repo: &VerifiedRepository,
    tags: Option<&[String]>,
) -> Result<VerifiedRepository, CliError> {
    update_targets(server, store, client, repo, |targets| {
        match tags {
            None => targets.clear(),
            Some(tags) => {
                for tag in tags {
                    if targets.remove(tag).is_none() {
                        return Err(CliError::NotFound(format!(
                            "{}:{tag} is not signed in the targets role",
                            repo.gun
                        )));
                    }
                }
            }
        }
        Ok(())
    })
    .await
}

/// Applies `change` to the targets role, re-signs it (and the snapshot when its key is in
/// trustd) with one signature each, publishes, and reads the result back verified.
async fn update_targets(
    server: &NotaryServer,
    store: &TrustStore,
    client: crate::client::Client,
    repo: &VerifiedRepository,
    change: impl FnOnce(&mut BTreeMap<String, FileMeta>) -> Result<(), CliError>,
) -> Result<VerifiedRepository, CliError> {
    let gun = &repo.gun;
    let mut signer = TrustdSigner::new(client);
    let (targets_name, targets_keyid) = signer
        .role_key(&repo.root, "targets")
        .await?
        .ok_or_else(|| {
            CliError::Denied(format!(
                "trustd holds none of the targets keys of {gun}: you cannot sign this repository's targets \
                 (trustctl key load KEYFILE --name NAME puts a notary client's targets key there)"
            ))
        })?;
    let mut targets = repo.targets.clone();
    change(&mut targets.targets)?;
    targets.version += 1;
    targets.expires = expires_in(TARGETS_DAYS);
    let targets_bytes = signed_file(&mut signer, &targets_name, &targets_keyid, &targets).await?;
    let mut files = vec![("targets".to_owned(), targets_bytes.clone())];
    // With the snapshot key in trustd, sign the snapshot too; otherwise the server does.
    if let Some((snapshot_name, snapshot_keyid)) = signer.role_key(&repo.root, "snapshot").await? {
        let mut snapshot = repo.snapshot.clone();
        snapshot
            .meta
            .insert("targets".to_owned(), file_meta(&targets_bytes));
        snapshot.version += 1;
        snapshot.expires = expires_in(TARGETS_DAYS);
        files.push((
            "snapshot".to_owned(),
            signed_file(&mut signer, &snapshot_name, &snapshot_keyid, &snapshot).await?,
        ));
    }
    publish_and_verify(server, store, gun, &files).await
}
