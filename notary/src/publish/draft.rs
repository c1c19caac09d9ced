//! A change to a repository's targets and delegated roles, published as one atomic update.
//!
//! Commands edit a [`Draft`] (tags, delegations, signer roles); [`publish`] then raises the
//! version of every role that changed, has the signer sign each with the keys its parent
//! lists for it (the root's targets key for `targets`, the delegation keys for
//! `targets/NAME`), signs the snapshot too when the signer holds its key, publishes, and reads the result back
//! verified. Nothing is sent unless every changed role could be signed.

use std::collections::{BTreeMap, BTreeSet};

use super::roles::{
    canonical_body, expires_in, file_meta, publish_and_verify, signed_file, TARGETS_DAYS,
};
use super::{PublishError, RoleSigner};
use crate::client::server::NotaryServer;
use crate::model::{DelegatedRole, Delegations, RoleType, Targets};
use crate::trust::{TrustStore, VerifiedRepository};

/// A change being made to a verified repository's targets and delegated roles.
pub struct Draft<'a> {
    /// The repository the change applies to.
    pub repo: &'a VerifiedRepository,
    targets: Targets,
    delegated: BTreeMap<String, Targets>,
    changed: BTreeSet<String>,
}

/// A delegated role that has never been published.
fn empty_role() -> Targets {
    Targets {
        role_type: RoleType::Targets,
        delegations: Delegations::default(),
        expires: String::new(),
        targets: BTreeMap::new(),
        version: 0,
    }
}

impl<'a> Draft<'a> {
    /// An empty change to `repo`.
    pub fn new(repo: &'a VerifiedRepository) -> Draft<'a> {
        Draft {
            repo,
            targets: repo.targets.clone(),
            delegated: repo.delegations.clone(),
            changed: BTreeSet::new(),
        }
    }

    /// The targets role as it will be published.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The targets role, to change.
    pub fn targets_mut(&mut self) -> &mut Targets {
        self.changed.insert("targets".to_owned());
        &mut self.targets
    }

    /// A delegated role as published (or empty when it never was).
    pub fn delegated(&self, role: &str) -> Option<&Targets> {
        self.delegated.get(role)
    }

    /// A delegated role, to change; created empty when it was never published (or when
    /// what was published is not trusted, keeping its version so the new one exceeds it).
    pub fn delegated_mut(&mut self, role: &str) -> &mut Targets {
        self.changed.insert(role.to_owned());
        let untrusted_version = self
            .repo
            .skipped
            .iter()
            .find(|s| s.role == role)
            .map_or(0, |s| s.version);
        self.delegated
            .entry(role.to_owned())
            .or_insert_with(|| Targets {
                version: untrusted_version,
                ..empty_role()
            })
    }

    /// The delegation entry for `role` in its parent, with the parent's keys.
    fn delegation(&self, role: &str) -> Option<(&DelegatedRole, &Delegations)> {
        let parent = match role.rsplit_once('/') {
            Some(("targets", _)) => &self.targets,
            Some((parent, _)) => self.delegated.get(parent)?,
            None => return None,
        };
        let entry = parent.delegations.roles.iter().find(|r| r.name == role)?;
        Some((entry, &parent.delegations))
    }

    /// Whether any role was changed (an unchanged draft publishes nothing).
    pub fn is_changed(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// A delegated role the draft changed whose threshold the signer's keys do not meet, signed
/// by the keys it does hold: where a release ceremony starts. Nothing of the draft is sent.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The role (`targets/releases`).
    pub role: String,
    /// Its next version's canonical body: what every signer signs.
    pub body: Vec<u8>,
    /// The signatures of the keys held here.
    pub signatures: Vec<crate::envelope::Signature>,
    /// How many signatures it needs.
    pub threshold: u32,
}

/// What publishing a draft did.
#[derive(Debug)]
pub enum Published {
    /// Published and read back verified.
    Repository(Box<VerifiedRepository>),
    /// Nothing sent: a changed role needs more signatures than the signer holds.
    Pending(Pending),
}

/// Publishes every role the draft changed; see the module documentation. A changed role
/// the signer holds too few keys of is refused.
pub async fn publish(
    server: &NotaryServer,
    store: &TrustStore,
    signer: &mut dyn RoleSigner,
    draft: Draft<'_>,
) -> Result<VerifiedRepository, PublishError> {
    match publish_changes(server, store, signer, draft, false).await? {
        Published::Repository(repo) => Ok(*repo),
        Published::Pending(_) => unreachable!("pending only when asked for"),
    }
}

/// [`publish`], except that a changed delegated role the signer holds some but too few keys
/// of (a k-of-n release) is signed as far as the signer can and returned, with nothing sent.
pub async fn publish_or_pending(
    server: &NotaryServer,
    store: &TrustStore,
    signer: &mut dyn RoleSigner,
    draft: Draft<'_>,
) -> Result<Published, PublishError> {
    publish_changes(server, store, signer, draft, true).await
}

async fn publish_changes(
    server: &NotaryServer,
    store: &TrustStore,
    signer: &mut dyn RoleSigner,
    mut draft: Draft<'_>,
    pending_allowed: bool,
) -> Result<Published, PublishError> {
    let repo = draft.repo;
    let gun = &repo.gun;

    // Every changed delegated role's keys are looked up once, and checked against its
    // threshold before anything is signed.
    let delegated: Vec<String> = draft
        .changed
        .iter()
        .filter(|r| r.as_str() != "targets")
        .cloned()
        .collect();
    let mut signers = Vec::with_capacity(delegated.len());
    for role in delegated {
        let (entry, parent) = draft
            .delegation(&role)
            .ok_or_else(|| PublishError::NotFound(format!("{gun} does not delegate {role}")))?;
        let threshold = entry.threshold;
        let keys = signer.held(&parent.keys, &entry.keyids).await?;
        if keys.len() < threshold.max(1) as usize {
            if pending_allowed && !keys.is_empty() {
                let body =
                    next_version(draft.delegated.get_mut(&role).expect("changed roles exist"));
                let canonical = canonical_body(&*body)?;
                let mut signatures = Vec::with_capacity(keys.len());
                for key in &keys {
                    signatures.push(signer.sign(&key.name, &key.keyid, &canonical).await?);
                }
                return Ok(Published::Pending(Pending {
                    role,
                    body: canonical,
                    signatures,
                    threshold,
                }));
            }
            return Err(PublishError::NotASigner(format!(
                "trustd holds {} of the keys {role} of {gun} needs ({threshold} required): you are not a signer of that role",
                keys.len()
            )));
        }
        signers.push((role, keys));
    }

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if draft.changed.contains("targets") {
        let key = role_key(signer, repo, "targets").await?.ok_or_else(|| {
            PublishError::NotASigner(format!(
                "trustd holds none of the targets keys of {gun}: only the repository's admin can change its targets and delegations \
                 (trustctl key load KEYFILE --name NAME puts a notary client's targets key there)"
            ))
        })?;
        next_version(&mut draft.targets);
        files.push((
            "targets".to_owned(),
            signed_file(signer, &[key], &draft.targets).await?,
        ));
    }
    for (role, keys) in signers {
        let body = next_version(draft.delegated.get_mut(&role).expect("changed roles exist"));
        let bytes = signed_file(signer, &keys, &*body).await?;
        files.push((role, bytes));
    }

    with_snapshot(signer, repo, &mut files).await?;
    publish_and_verify(server, store, gun, &files)
        .await
        .map(|repo| Published::Repository(Box::new(repo)))
}

/// Adds the next snapshot, listing `files`, when the signer holds the snapshot key; otherwise
/// the server, which holds it, makes it.
pub async fn with_snapshot(
    signer: &mut dyn RoleSigner,
    repo: &VerifiedRepository,
    files: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), PublishError> {
    let Some(key) = role_key(signer, repo, "snapshot").await? else {
        return Ok(());
    };
    let mut snapshot = repo.snapshot.clone();
    for (role, bytes) in files.iter() {
        snapshot.meta.insert(role.clone(), file_meta(bytes));
    }
    snapshot.version += 1;
    snapshot.expires = expires_in(TARGETS_DAYS);
    let bytes = signed_file(signer, &[key], &snapshot).await?;
    files.push(("snapshot".to_owned(), bytes));
    Ok(())
}

/// Raises a role's version and renews its expiry, as every publish of it does.
fn next_version(role: &mut Targets) -> &mut Targets {
    role.version += 1;
    role.expires = expires_in(TARGETS_DAYS);
    role
}

/// The signer's key for one of `role`'s keys in the repository's root, if it holds one.
pub async fn role_key(
    signer: &mut dyn RoleSigner,
    repo: &VerifiedRepository,
    role: &str,
) -> Result<Option<super::HeldKey>, PublishError> {
    let Some(listed) = repo.root.roles.get(role) else {
        return Ok(None);
    };
    Ok(signer
        .held(&repo.root.keys, &listed.keyids)
        .await?
        .into_iter()
        .next())
}
