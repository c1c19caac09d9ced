//! Tags signed and revoked in every role the signer signs for, as `docker trust sign` and
//! `docker trust revoke` choose those roles.

use std::collections::{BTreeMap, BTreeSet};

use super::draft::{self, Draft};
use super::{PublishError, RoleSigner};
use crate::client::server::NotaryServer;
use crate::delegation::RELEASES;
use crate::model::{Base64Bytes, FileMeta};
use crate::trust::{TrustStore, VerifiedRepository};

/// A tag to sign: the manifest digest (hex SHA-256) and size.
pub struct Target<'a> {
    /// The tag.
    pub tag: &'a str,
    /// The manifest's SHA-256.
    pub sha256: [u8; 32],
    /// The manifest's size in bytes.
    pub size: i64,
}

/// Who signs: whoever the signer holds keys for, or one named signer.
#[derive(Clone, Copy, Default)]
pub enum SignAs<'a> {
    #[default]
    /// Every signer role the signer holds a key of (docker's choice).
    Auto,
    /// Only `targets/NAME`.
    Signer(&'a str),
}

/// The roles a change to tags goes into, as `docker trust sign` chooses them: each signer
/// role (`targets/NAME`) whose key trustd holds, plus `targets/releases` when trustd holds
/// one of its keys; or, for the repository admin with no signer key, `targets` itself.
async fn signable_roles(
    signer: &mut dyn RoleSigner,
    repo: &VerifiedRepository,
    sign_as: SignAs<'_>,
) -> Result<Vec<String>, PublishError> {
    let delegations = &repo.targets.delegations;
    let mut roles = Vec::new();
    for role in &delegations.roles {
        let wanted = match sign_as {
            SignAs::Auto => role.name != RELEASES,
            SignAs::Signer(name) => role.name == format!("targets/{name}"),
        };
        if wanted
            && !signer
                .held(&delegations.keys, &role.keyids)
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
            return Err(PublishError::NotASigner(if delegated {
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
            .held(&delegations.keys, &releases.keyids)
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
    signer: &mut dyn RoleSigner,
    repo: &VerifiedRepository,
    new: &[Target<'_>],
    sign_as: SignAs<'_>,
) -> Result<(VerifiedRepository, Vec<String>), PublishError> {
    let roles = signable_roles(signer, repo, sign_as).await?;
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
            return Err(PublishError::Refused(format!(
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
        draft::publish(server, store, signer, draft).await?
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
                return Err(PublishError::Failed(format!(
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
    signer: &mut dyn RoleSigner,
    repo: &VerifiedRepository,
    tags: Option<&[String]>,
) -> Result<VerifiedRepository, PublishError> {
    let roles = signable_roles(signer, repo, SignAs::Auto).await?;
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
            return Err(PublishError::NotFound(format!(
                "{}:{missing} is not signed in any role you sign for ({})",
                repo.gun,
                roles.join(", ")
            )));
        }
    }
    if !draft.is_changed() {
        return Ok(repo.clone());
    }
    draft::publish(server, store, signer, draft).await
}
