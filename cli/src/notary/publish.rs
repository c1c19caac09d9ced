//! Changing a repository's trust data: initializing it and signing tags, with every key in
//! trustd, then reading the result back through full verification.

use std::collections::{BTreeMap, BTreeSet};

use super::draft::{self, Draft};
pub use super::roles::key_name;
use super::roles::{
    ensure_key, expires_in, file_meta, publish_and_verify, signed_file, ROOT_DAYS, TARGETS_DAYS,
};
use crate::client::signer::TrustdSigner;
use crate::error::CliError;
use trustd_notary::client::server::NotaryServer;
use trustd_notary::delegation::RELEASES;
use trustd_notary::keys::PublicKey;
use trustd_notary::model::{
    Base64Bytes, Delegations, FileMeta, Meta, RoleKeys, RoleType, Root, Targets,
};
use trustd_notary::trust::{TrustStore, VerifiedRepository};

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
    let unreachable =
        |e: trustd_notary::client::server::ServerError| CliError::Unreachable(e.to_string());
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

/// Who signs: whoever trustd holds keys for, or one named signer.
#[derive(Clone, Copy, Default)]
pub enum SignAs<'a> {
    #[default]
    Auto,
    Signer(&'a str),
}

/// The roles a change to tags goes into, as `docker trust sign` chooses them: each signer
/// role (`targets/NAME`) whose key trustd holds, plus `targets/releases` when trustd holds
/// one of its keys; or, for the repository admin with no signer key, `targets` itself.
async fn signable_roles(
    signer: &mut TrustdSigner,
    repo: &VerifiedRepository,
    sign_as: SignAs<'_>,
) -> Result<Vec<String>, CliError> {
    let delegations = &repo.targets.delegations;
    let mut roles = Vec::new();
    for role in &delegations.roles {
        let wanted = match sign_as {
            SignAs::Auto => role.name != RELEASES,
            SignAs::Signer(name) => role.name == format!("targets/{name}"),
        };
        if wanted
            && !signer
                .keys_in_trustd(&delegations.keys, &role.keyids)
                .await?
                .is_empty()
        {
            roles.push(role.name.clone());
        }
    }
    if let SignAs::Signer(name) = sign_as {
        if roles.is_empty() {
            let delegated = delegations
                .roles
                .iter()
                .any(|r| r.name == format!("targets/{name}"));
            return Err(CliError::Denied(if delegated {
                format!("trustd holds no key of signer {name} of {}", repo.gun)
            } else {
                format!(
                    "{name} is not a signer of {} (trustctl signer add adds one)",
                    repo.gun
                )
            }));
        }
    }
    if roles.is_empty() {
        return Ok(vec!["targets".to_owned()]);
    }
    if let Some(releases) = delegations.roles.iter().find(|r| r.name == RELEASES) {
        if !signer
            .keys_in_trustd(&delegations.keys, &releases.keyids)
            .await?
            .is_empty()
        {
            roles.insert(0, RELEASES.to_owned());
        }
    }
    Ok(roles)
}

/// The targets of `role` in the draft, to change.
fn role_targets<'d>(draft: &'d mut Draft<'_>, role: &str) -> &'d mut BTreeMap<String, FileMeta> {
    if role == "targets" {
        &mut draft.targets_mut().targets
    } else {
        &mut draft.delegated_mut(role).targets
    }
}

fn current_targets<'d>(draft: &'d Draft<'_>, role: &str) -> Option<&'d BTreeMap<String, FileMeta>> {
    if role == "targets" {
        Some(&draft.targets().targets)
    } else {
        draft.delegated(role).map(|t| &t.targets)
    }
}

/// Signs tags (replacing a tag's previous digest) into every role the caller signs for, one
/// signature per changed role whatever the number of tags, and publishes them.
pub async fn sign_targets(
    server: &NotaryServer,
    store: &TrustStore,
    client: crate::client::Client,
    repo: &VerifiedRepository,
    new: &[Target<'_>],
    sign_as: SignAs<'_>,
) -> Result<(VerifiedRepository, Vec<String>), CliError> {
    let roles = signable_roles(&mut TrustdSigner::new(client.clone()), repo, sign_as).await?;
    // A delegated role may only sign the paths delegated to it; refuse before anything is
    // signed rather than publish what every reader would reject.
    for role in roles.iter().filter(|r| r.as_str() != "targets") {
        let paths = repo
            .targets
            .delegations
            .roles
            .iter()
            .find(|r| &r.name == role)
            .map(|r| r.paths.clone())
            .unwrap_or_default();
        if let Some(outside) = new
            .iter()
            .find(|t| !paths.iter().any(|p| t.tag.starts_with(p.as_str())))
        {
            return Err(CliError::Usage(format!(
                "{role} may only sign tags starting with {paths:?}, not {:?}",
                outside.tag
            )));
        }
    }
    let mut draft = Draft::new(repo);
    for role in &roles {
        for target in new {
            let meta = FileMeta {
                custom: None,
                hashes: [("sha256".to_owned(), Base64Bytes(target.sha256.to_vec()))].into(),
                length: target.size,
            };
            // A role that already says exactly this is left alone (and not re-signed).
            if current_targets(&draft, role).and_then(|t| t.get(target.tag)) == Some(&meta) {
                continue;
            }
            role_targets(&mut draft, role).insert(target.tag.to_owned(), meta);
        }
    }
    let updated = if draft.is_changed() {
        draft::publish(server, store, client, draft).await?
    } else {
        repo.clone()
    };
    for role in &roles {
        let published = if role == "targets" {
            Some(&updated.targets)
        } else {
            updated.delegations.get(role)
        };
        for target in new {
            let digest = published
                .and_then(|t| t.targets.get(target.tag))
                .and_then(|m| m.hashes.get("sha256"))
                .map(|h| h.0.as_slice());
            if digest != Some(&target.sha256[..]) {
                return Err(CliError::Failed(format!(
                    "the server accepted the update but {role} of {} does not show the new digest for {}",
                    repo.gun, target.tag
                )));
            }
        }
    }
    Ok((updated, roles))
}

/// Removes the signatures of `tags` (every tag when None) from every role the caller signs
/// for (as `docker trust revoke` does).
pub async fn revoke_targets(
    server: &NotaryServer,
    store: &TrustStore,
    client: crate::client::Client,
    repo: &VerifiedRepository,
    tags: Option<&[String]>,
) -> Result<VerifiedRepository, CliError> {
    let roles = signable_roles(&mut TrustdSigner::new(client.clone()), repo, SignAs::Auto).await?;
    let mut draft = Draft::new(repo);
    let mut removed = BTreeSet::new();
    for role in &roles {
        let Some(current) = current_targets(&draft, role) else {
            continue;
        };
        let doomed: Vec<String> = match tags {
            None => current.keys().cloned().collect(),
            Some(tags) => tags
                .iter()
                .filter(|t| current.contains_key(*t))
                .cloned()
                .collect(),
        };
        if doomed.is_empty() {
            continue;
        }
        let targets = role_targets(&mut draft, role);
        for tag in doomed {
            targets.remove(&tag);
            removed.insert(tag);
        }
    }
    if let Some(tags) = tags {
        if let Some(missing) = tags.iter().find(|t| !removed.contains(*t)) {
            return Err(CliError::NotFound(format!(
                "{}:{missing} is not signed in any role you sign for ({})",
                repo.gun,
                roles.join(", ")
            )));
        }
    }
    if !draft.is_changed() {
        return Ok(repo.clone());
    }
    draft::publish(server, store, client, draft).await
}
