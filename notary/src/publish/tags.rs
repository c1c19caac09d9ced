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

/// Who signs: whoever the signer holds keys for, one named signer, or the repository admin.
#[derive(Clone, Copy, Default)]
pub enum SignAs<'a> {
    #[default]
    /// Every signer role the signer holds a key of whose paths cover the tag (docker's
    /// choice); the repository admin (`targets`) for a tag no such role covers.
    Auto,
    /// Only `targets/NAME`.
    Signer(&'a str),
    /// Only `targets` itself, with the repository's targets key.
    Admin,
}

impl<'a> SignAs<'a> {
    /// What a `--signer` option chooses: nothing is [`SignAs::Auto`], `targets` (the admin
    /// role's own name; no signer can be called that, as `targets/targets` would be a
    /// delegation of the admin role to itself) is [`SignAs::Admin`], anything else that signer.
    pub fn from_option(signer: Option<&'a str>) -> SignAs<'a> {
        match signer {
            None => SignAs::Auto,
            Some("targets") => SignAs::Admin,
            Some(name) => SignAs::Signer(name),
        }
    }
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
            SignAs::Admin => return Ok(vec!["targets".to_owned()]),
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
            // No such signer is not found (as `signer remove` says it); a signer whose key
            // trustd does not hold is a refusal.
            return Err(if delegated {
                PublishError::NotASigner(format!(
                    "trustd holds no key of signer {name} of {}",
                    repo.gun
                ))
            } else {
                PublishError::NotFound(format!(
                    "{name} is not a signer of {} (trustctl signer add adds one)",
                    repo.gun
                ))
            });
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

/// What signing tags did.
#[derive(Debug)]
pub struct SignedTargets {
    /// The repository as published (unchanged when every tag was already signed).
    pub repo: VerifiedRepository,
    /// Per target, in the order given.
    pub tags: Vec<TagSigned>,
    /// A role that needs more signatures than the signer holds (a k-of-n release): signed as
    /// far as the signer can and not published; the caller starts a ceremony with it.
    pub pending: Option<draft::Pending>,
}

/// What signing did for one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSigned {
    /// The roles that sign it.
    pub roles: Vec<String>,
    /// Whether every one of them already said exactly this, so nothing was signed for it.
    pub already_signed: bool,
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
) -> Result<SignedTargets, PublishError> {
    let candidates = signable_roles(signer, repo, sign_as).await?;
    let plan = plan_roles(signer, repo, &candidates, new, sign_as).await?;
    let mut draft = Draft::new(repo);
    let mut already_signed = vec![true; new.len()];
    for ((target, roles), unchanged) in new.iter().zip(&plan).zip(&mut already_signed) {
        for role in roles {
            let meta = FileMeta {
                custom: None,
                hashes: [("sha256".to_owned(), Base64Bytes(target.sha256.to_vec()))].into(),
                length: target.size,
            };
            // A role that already says exactly this is left alone (and not re-signed).
            if current_targets(&draft, role).and_then(|t| t.get(target.tag)) == Some(&meta) {
                continue;
            }
            *unchanged = false;
            role_targets(&mut draft, role).insert(target.tag.to_owned(), meta);
        }
    }
    let published = if draft.is_changed() {
        draft::publish_or_pending(server, store, signer, draft).await?
    } else {
        draft::Published::Repository(Box::new(repo.clone()))
    };
    let updated = match published {
        draft::Published::Repository(updated) => *updated,
        draft::Published::Pending(pending) => {
            // Nothing is published with fewer signatures than the role needs: its tags (and
            // only its) wait for the other signers.
            let tags = plan
                .iter()
                .zip(already_signed)
                .map(|(roles, already_signed)| TagSigned {
                    roles: roles
                        .iter()
                        .filter(|r| **r == pending.role)
                        .cloned()
                        .collect(),
                    already_signed,
                })
                .collect();
            return Ok(SignedTargets {
                repo: repo.clone(),
                tags,
                pending: Some(pending),
            });
        }
    };
    for (target, roles) in new.iter().zip(&plan) {
        for role in roles {
            let published = if role == "targets" {
                Some(&updated.targets)
            } else {
                updated.delegations.get(role)
            };
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
    let tags = plan
        .into_iter()
        .zip(already_signed)
        .map(|(roles, already_signed)| TagSigned {
            roles,
            already_signed,
        })
        .collect();
    Ok(SignedTargets {
        repo: updated,
        tags,
        pending: None,
    })
}

/// The paths a delegated role may sign, as its parent lists them.
fn role_paths<'r>(repo: &'r VerifiedRepository, role: &str) -> &'r [String] {
    repo.targets
        .delegations
        .roles
        .iter()
        .find(|r| r.name == role)
        .map_or(&[], |r| r.paths.as_slice())
}

fn covers(repo: &VerifiedRepository, role: &str, tag: &str) -> bool {
    role == "targets" || crate::delegation::paths_cover(role_paths(repo, role), tag)
}

/// For each tag, the roles it is signed into: the candidates whose delegated paths cover it
/// (a delegated role may only sign the paths delegated to it, and every reader rejects what
/// it signs outside them). A tag no candidate covers goes to the repository admin when the
/// signer holds the targets key; otherwise nothing is signed and the caller is told why,
/// before anything is sent.
async fn plan_roles(
    signer: &mut dyn RoleSigner,
    repo: &VerifiedRepository,
    candidates: &[String],
    new: &[Target<'_>],
    sign_as: SignAs<'_>,
) -> Result<Vec<Vec<String>>, PublishError> {
    let mut admin: Option<bool> = None;
    let mut plan = Vec::with_capacity(new.len());
    for target in new {
        // A signer asked for by name must itself be allowed the tag (its companion
        // `targets/releases` does not stand in for it).
        if let SignAs::Signer(name) = sign_as {
            let role = format!("targets/{name}");
            if !covers(repo, &role, target.tag) {
                let paths = quoted(role_paths(repo, &role));
                return Err(PublishError::Refused(format!(
                    "{role} may only sign tags starting with {paths}, not {:?}",
                    target.tag
                )));
            }
        }
        let covering: Vec<String> = candidates
            .iter()
            .filter(|role| covers(repo, role, target.tag))
            .cloned()
            .collect();
        if !covering.is_empty() {
            plan.push(covering);
            continue;
        }
        let limits = candidates
            .iter()
            .map(|role| {
                let paths = quoted(role_paths(repo, role));
                format!("{role} may only sign tags starting with {paths}")
            })
            .collect::<Vec<_>>()
            .join("; ");
        let holds_admin = match admin {
            Some(known) => known,
            None => *admin.insert(draft::role_key(signer, repo, "targets").await?.is_some()),
        };
        if !holds_admin {
            return Err(PublishError::NotASigner(format!(
                "no role you hold a key for may sign {:?} in {}: {limits}; the repository admin (the targets key) can sign any tag",
                target.tag, repo.gun
            )));
        }
        plan.push(vec!["targets".to_owned()]);
    }
    Ok(plan)
}

/// Path prefixes as a reader expects them: "ci-", "rc-". The server chose them, so at most
/// a few are shown, each cut short, with how many more there are.
fn quoted(paths: &[String]) -> String {
    const SHOWN: usize = 5;
    if paths.is_empty() {
        return "(no paths delegated)".to_owned();
    }
    let mut text = paths
        .iter()
        .take(SHOWN)
        .map(|p| format!("\"{}\"", crate::text::excerpt(p, 64)))
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        text.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    text
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use async_trait::async_trait;

    use super::*;
    use crate::envelope::Signature;
    use crate::keys::{KeyType, PublicKey};
    use crate::model::{
        DelegatedRole, Delegations, RoleKeys, RoleType, Root, Snapshot, Targets, Timestamp,
    };
    use crate::publish::{HeldKey, SignerError};

    /// A signer that holds the keys with these IDs and is never asked to sign here.
    struct Holds(&'static [&'static str]);

    #[async_trait]
    impl RoleSigner for Holds {
        async fn held(
            &mut self,
            _keys: &BTreeMap<String, PublicKey>,
            keyids: &[String],
        ) -> Result<Vec<HeldKey>, SignerError> {
            Ok(keyids
                .iter()
                .filter(|id| self.0.contains(&id.as_str()))
                .map(|id| HeldKey {
                    name: format!("key {id}"),
                    keyid: id.clone(),
                })
                .collect())
        }
        async fn public_key(&mut self, _: &str) -> Result<PublicKey, SignerError> {
            unreachable!("planning needs no public key")
        }
        async fn sign(&mut self, _: &str, _: &str, _: &[u8]) -> Result<Signature, SignerError> {
            unreachable!("planning signs nothing")
        }
    }

    /// A repository whose admin key is "admin" and whose signer ci ("ci" key) may sign `ci-*`.
    fn repository() -> VerifiedRepository {
        let key = || PublicKey::new(KeyType::Ecdsa, Vec::new());
        let meta = || Snapshot {
            role_type: RoleType::Snapshot,
            expires: String::new(),
            meta: BTreeMap::new(),
            version: 1,
        };
        VerifiedRepository {
            gun: "example.test/app".into(),
            root: Root {
                role_type: RoleType::Root,
                consistent_snapshot: false,
                expires: String::new(),
                keys: [("admin".to_owned(), key())].into(),
                roles: [(
                    "targets".to_owned(),
                    RoleKeys {
                        keyids: vec!["admin".into()],
                        threshold: 1,
                    },
                )]
                .into(),
                version: 1,
            },
            targets: Targets {
                role_type: RoleType::Targets,
                delegations: Delegations {
                    keys: [("ci".to_owned(), key())].into(),
                    roles: vec![DelegatedRole {
                        keyids: vec!["ci".into()],
                        name: "targets/ci".into(),
                        paths: vec!["ci-".into()],
                        threshold: 1,
                    }],
                },
                expires: String::new(),
                targets: BTreeMap::new(),
                version: 1,
            },
            snapshot: meta(),
            timestamp: Timestamp {
                role_type: RoleType::Timestamp,
                expires: String::new(),
                meta: BTreeMap::new(),
                version: 1,
            },
            delegations: BTreeMap::new(),
            delegation_order: Vec::new(),
            skipped: Vec::new(),
            files: BTreeMap::new(),
        }
    }

    fn tag(tag: &str) -> Target<'_> {
        Target {
            tag,
            sha256: [0; 32],
            size: 1,
        }
    }

    async fn plan(
        holds: &'static [&'static str],
        tags: &[&str],
        sign_as: SignAs<'_>,
    ) -> Result<Vec<Vec<String>>, PublishError> {
        let repo = repository();
        let mut signer = Holds(holds);
        let candidates = signable_roles(&mut signer, &repo, sign_as).await?;
        let new: Vec<Target> = tags.iter().map(|t| tag(t)).collect();
        plan_roles(&mut signer, &repo, &candidates, &new, sign_as).await
    }

    #[tokio::test]
    async fn a_tag_outside_a_signers_paths_goes_to_the_admin_when_the_admin_key_is_held() {
        let planned = plan(&["admin", "ci"], &["ci-1", "v2"], SignAs::Auto)
            .await
            .unwrap();
        assert_eq!(planned, [vec!["targets/ci"], vec!["targets"]]);
    }

    #[tokio::test]
    async fn without_the_admin_key_such_a_tag_is_refused_before_anything_is_signed() {
        let error = plan(&["ci"], &["ci-1", "v2"], SignAs::Auto)
            .await
            .unwrap_err();
        let PublishError::NotASigner(message) = error else {
            panic!("not NotASigner: {error:?}");
        };
        assert!(message.contains("\"v2\""), "{message}");
        assert!(
            message.contains("targets/ci may only sign tags starting with \"ci-\""),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_named_signer_must_cover_the_tag_and_targets_names_the_admin() {
        let error = plan(&["admin", "ci"], &["v2"], SignAs::from_option(Some("ci")))
            .await
            .unwrap_err();
        assert!(matches!(error, PublishError::Refused(_)), "{error:?}");
        let planned = plan(
            &["admin", "ci"],
            &["ci-1"],
            SignAs::from_option(Some("targets")),
        )
        .await
        .unwrap();
        assert_eq!(planned, [vec!["targets"]]);
    }

    #[test]
    fn path_lists_from_a_server_are_shown_bounded() {
        let many: Vec<String> = (0..1000)
            .map(|i| format!("p{i}-{}", "x".repeat(500)))
            .collect();
        let shown = quoted(&many);
        assert!(shown.len() < 1000, "{}", shown.len());
        assert!(shown.ends_with(" and 995 more"), "{shown}");
        assert_eq!(quoted(&["ci-".to_owned()]), "\"ci-\"");
    }
}
