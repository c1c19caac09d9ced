//! Ceremony files: a change that keys on several machines sign in turn (one officer, one
//! token, one workstation, possibly offline), then one upload: a new root (rotation, or
//! certificate renewal), or a release into a delegated role that needs K signatures.
//!
//! The file is a plain JSON document handed from officer to officer, so nothing in it is
//! trusted: every check is redone from what it holds against the repository's current trust
//! data, verified on read. It names the exact bytes to be signed (the new role's canonical
//! body), the base it applies to (the current role file's version and SHA-256: if the
//! repository moved, the ceremony is void), an expiry, and the signatures gathered so far.
//! Who may sign and how many are needed is never taken from the file: for a root, the current
//! root's root role (a rotation must be signed by its threshold) and the new root's (and by
//! its threshold); for a release, the role's delegation in the verified targets role.
//! A file edited after signing fails its signatures; a file for another repository, expired,
//! or whose base has moved is refused; a signature by a key that is neither is refused.
//!
//! The short fingerprint (80 bits of the body's SHA-256) is what officers read aloud to each
//! other to know they sign the same thing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::envelope::{Envelope, Signature};
use crate::keys::PublicKey;
use crate::model::{self, RoleKeys, Root};
use crate::trust::VerifiedRepository;

/// The ceremony file format this code writes and reads.
pub const FORMAT: u32 = 1;
/// Largest ceremony file read: a root with a few dozen certificates and signatures.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Longest a ceremony may stay open.
pub const MAX_DAYS: i64 = 90;

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    #[error("not a ceremony file: {0}")]
    Malformed(String),
    #[error("this ceremony is for {file}, not {expected}")]
    OtherRepository { file: String, expected: String },
    #[error("this ceremony expired at {0}: start again")]
    Expired(String),
    #[error(
        "the repository changed since this ceremony started (its root is version {now}, the \
         ceremony was for version {was}): start again"
    )]
    BaseMoved { was: u64, now: u64 },
    #[error("the ceremony holds a signature by key {0}, which is not one of its signers")]
    NotASigner(String),
    #[error("the signature by key {0} does not verify: the file was changed after it was signed")]
    BadSignature(String),
    #[error("key {0} signed twice")]
    SignedTwice(String),
    #[error("the new root is not acceptable: {0}")]
    BadRoot(String),
    #[error("the new {role} is not acceptable: {reason}")]
    BadRole { role: String, reason: String },
}

/// What a ceremony changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// New root keys (some may stay), or a new threshold.
    RootRotation,
    /// The same root keys with new certificates.
    RootRenewal,
    /// Tags signed into a delegated role (`targets/releases`) that needs K signatures.
    Release,
}

impl Kind {
    /// The name on the command line and in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RootRotation => "root-rotation",
            Kind::RootRenewal => "root-renewal",
            Kind::Release => "release",
        }
    }
}

/// The role file a ceremony replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// Its current version (0: never published).
    pub version: u64,
    /// SHA-256 (hex) of the file as the server serves it ("" when never published).
    pub sha256: String,
}

/// A ceremony file as written to disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonyFile {
    /// Always [`FORMAT`].
    pub trustctl_ceremony: u32,
    /// What it changes.
    pub kind: Kind,
    /// The repository.
    pub gun: String,
    /// The role it publishes: `root`, or a delegated role for a release.
    pub role: String,
    /// When it started (RFC 3339, UTC).
    pub created: String,
    /// After this, nothing is signed or published from it.
    pub expires: String,
    /// The role file it replaces.
    pub base: Base,
    /// The new role's canonical body (the exact bytes every key signs), base64.
    #[serde(with = "crate::encoding::base64_std")]
    pub signed: Vec<u8>,
    /// Names the officers gave their keys, by key ID: labels for people, never trusted.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    /// The signatures gathered so far.
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

/// One threshold a ceremony must meet, and how far it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// "current root" or "new root".
    pub label: &'static str,
    /// Signatures needed.
    pub threshold: u32,
    /// Every key that may sign for it.
    pub keyids: Vec<String>,
    /// Those whose valid signature the file holds.
    pub signed: BTreeSet<String>,
}

impl Progress {
    /// Whether the threshold is met.
    pub fn met(&self) -> bool {
        self.signed.len() >= self.threshold as usize
    }

    /// Keys that may still sign.
    pub fn missing(&self) -> Vec<&str> {
        self.keyids
            .iter()
            .filter(|k| !self.signed.contains(*k))
            .map(String::as_str)
            .collect()
    }
}

/// A ceremony checked against the repository's current trust data.
#[derive(Debug, Clone)]
pub struct Review {
    /// Every threshold to meet (a root rotation: the current root's and the new root's).
    pub thresholds: Vec<Progress>,
    /// What it changes, in plain words.
    pub changes: Vec<String>,
    /// The version it replaces and the one it publishes.
    pub versions: (u64, u64),
    /// Every key that may sign, by the ID signatures name, with the key they verify under.
    pub keys: BTreeMap<String, PublicKey>,
    /// What officers read aloud.
    pub fingerprint: String,
}

impl Review {
    /// Whether every threshold is met.
    pub fn complete(&self) -> bool {
        self.thresholds.iter().all(Progress::met)
    }
}

/// What a new ceremony proposes.
pub struct Proposal<'a> {
    /// What it changes.
    pub kind: Kind,
    /// The repository.
    pub gun: &'a str,
    /// The role it publishes.
    pub role: &'a str,
    /// The new role's canonical body.
    pub body: Vec<u8>,
    /// The role file it replaces.
    pub base: Base,
    /// Labels for keys, by key ID.
    pub names: BTreeMap<String, String>,
    /// Days it stays open.
    pub days: i64,
}

/// The base a role file is: its version and the SHA-256 of its bytes (none: version 0).
pub fn base_of(version: u64, bytes: Option<&[u8]>) -> Base {
    Base {
        version,
        sha256: bytes.map(sha256_hex).unwrap_or_default(),
    }
}

/// The version of delegated role `role` on the server: as trusted, else as published but
/// not trusted (a new version must exceed it either way), else 0 (never published).
pub fn delegated_version(repo: &VerifiedRepository, role: &str) -> u64 {
    match repo.delegations.get(role) {
        Some(trusted) => trusted.version,
        None => repo
            .skipped
            .iter()
            .find(|s| s.role == role)
            .map_or(0, |s| s.version),
    }
}

/// The short fingerprint of a body: 80 bits of its SHA-256, in five groups of four.
pub fn fingerprint(body: &[u8]) -> String {
    let digest = hex::encode_upper(Sha256::digest(body));
    digest.as_bytes()[..20]
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("hex is ASCII"))
        .collect::<Vec<_>>()
        .join("-")
}

/// SHA-256 (hex) of a file as served.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CeremonyFile {
    /// A new ceremony for `proposal`.
    pub fn start(
        proposal: Proposal<'_>,
        now: OffsetDateTime,
    ) -> Result<CeremonyFile, CeremonyError> {
        let days = proposal.days;
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(CeremonyError::Malformed(format!(
                "a ceremony stays open 1 to {MAX_DAYS} days, not {days}"
            )));
        }
        Ok(CeremonyFile {
            trustctl_ceremony: FORMAT,
            kind: proposal.kind,
            gun: proposal.gun.to_owned(),
            role: proposal.role.to_owned(),
            created: model::format_expires(now),
            expires: model::format_expires(now + time::Duration::days(days)),
            base: proposal.base,
            signed: proposal.body,
            names: proposal.names,
            signatures: Vec::new(),
        })
    }

    /// Reads a ceremony file: JSON of this format, nothing else.
    pub fn parse(bytes: &[u8]) -> Result<CeremonyFile, CeremonyError> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(CeremonyError::Malformed(format!(
                "larger than {MAX_FILE_BYTES} bytes"
            )));
        }
        let file: CeremonyFile =
            serde_json::from_slice(bytes).map_err(|e| CeremonyError::Malformed(e.to_string()))?;
        if file.trustctl_ceremony != FORMAT {
            return Err(CeremonyError::Malformed(format!(
                "format {} (this trustctl reads format {FORMAT})",
                file.trustctl_ceremony
            )));
        }
        Ok(file)
    }

    /// The file as written: pretty JSON, so a reviewer can read it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("ceremonies serialize");
        text.push(b'\n');
        text
    }

    /// Checks the ceremony against the repository's current trust data (verified by the
    /// caller) at `now`.
    pub fn review(
        &self,
        repo: &VerifiedRepository,
        now: OffsetDateTime,
    ) -> Result<Review, CeremonyError> {
        if self.gun != repo.gun {
            return Err(CeremonyError::OtherRepository {
                file: self.gun.clone(),
                expected: repo.gun.clone(),
            });
        }
        let expires = model::parse_expires(&self.expires)
            .map_err(|e| CeremonyError::Malformed(format!("bad expiry: {e}")))?;
        if expires <= now {
            return Err(CeremonyError::Expired(self.expires.clone()));
        }
        let mut review = match self.kind {
            Kind::RootRotation | Kind::RootRenewal => self.review_root(repo, now)?,
            Kind::Release => self.review_release(repo, now)?,
        };
        let mut seen = BTreeSet::new();
        for signature in &self.signatures {
            if !seen.insert(signature.keyid.clone()) {
                return Err(CeremonyError::SignedTwice(signature.keyid.clone()));
            }
            let key = review
                .keys
                .get(&signature.keyid)
                .ok_or_else(|| CeremonyError::NotASigner(signature.keyid.clone()))?;
            key.verify(&signature.method, &self.signed, &signature.sig)
                .map_err(|_| CeremonyError::BadSignature(signature.keyid.clone()))?;
            for progress in &mut review.thresholds {
                if progress.keyids.contains(&signature.keyid) {
                    progress.signed.insert(signature.keyid.clone());
                }
            }
        }
        Ok(review)
    }

    fn check_base(&self, version: u64, bytes: Option<&[u8]>) -> Result<(), CeremonyError> {
        if base_of(version, bytes) != self.base {
            return Err(CeremonyError::BaseMoved {
                was: self.base.version,
                now: version,
            });
        }
        Ok(())
    }

    /// A key ID with the label an officer gave it, for people.
    fn label(&self, id: &str) -> String {
        match self.names.get(id) {
            Some(name) => format!("{id} ({})", crate::text::sanitize(name)),
            None => id.to_owned(),
        }
    }

    fn review_root(
        &self,
        repo: &VerifiedRepository,
        now: OffsetDateTime,
    ) -> Result<Review, CeremonyError> {
        let current = &repo.root;
        if self.role != "root" {
            return Err(CeremonyError::Malformed(format!(
                "a {} ceremony publishes the root, not {}",
                self.kind.as_str(),
                self.role
            )));
        }
        self.check_base(current.version, repo.files.get("root").map(Vec::as_slice))?;
        let new_root = self.new_root()?;
        if new_root.version != current.version + 1 {
            return Err(CeremonyError::BadRoot(format!(
                "it is version {}, not {}",
                new_root.version,
                current.version + 1
            )));
        }
        let own = root_role(&new_root)?;
        if own.threshold == 0 || own.threshold as usize > own.keyids.len() {
            return Err(CeremonyError::BadRoot(format!(
                "its threshold {} is not from 1 to its {} keys",
                own.threshold,
                own.keyids.len()
            )));
        }
        crate::trust::check_root_certificates(&repo.gun, &new_root, now, false)
            .map_err(|e| CeremonyError::BadRoot(e.to_string()))?;
        if model::parse_expires(&new_root.expires).map_or(true, |at| at <= now) {
            return Err(CeremonyError::BadRoot("it has already expired".into()));
        }
        let old = root_role(current)?;
        let mut changes: Vec<String> = Vec::new();
        for id in own.keyids.iter().filter(|k| !old.keyids.contains(k)) {
            changes.push(format!("+ root key {}", self.label(id)));
        }
        for id in old.keyids.iter().filter(|k| !own.keyids.contains(k)) {
            changes.push(format!("- root key {}", self.label(id)));
        }
        changes.push(format!(
            "threshold: {} of {} -> {} of {}",
            old.threshold,
            old.keyids.len(),
            own.threshold,
            own.keyids.len()
        ));
        changes.push(format!("the new root expires {}", new_root.expires));
        let mut keys = BTreeMap::new();
        for (root, role) in [(current, &old), (&new_root, &own)] {
            for id in &role.keyids {
                if let Some(key) = root.keys.get(id) {
                    keys.insert(id.clone(), key.clone());
                }
            }
        }
        Ok(Review {
            thresholds: vec![progress("current root", old), progress("new root", own)],
            changes,
            versions: (current.version, new_root.version),
            keys,
            fingerprint: fingerprint(&self.signed),
        })
    }

    fn review_release(
        &self,
        repo: &VerifiedRepository,
        now: OffsetDateTime,
    ) -> Result<Review, CeremonyError> {
        let bad = |reason: String| CeremonyError::BadRole {
            role: self.role.clone(),
            reason,
        };
        let delegations = &repo.targets.delegations;
        let entry = delegations
            .roles
            .iter()
            .find(|r| r.name == self.role)
            .ok_or_else(|| bad(format!("{} does not delegate it", repo.gun)))?;
        let current = repo.delegations.get(&self.role);
        let current_version = delegated_version(repo, &self.role);
        self.check_base(
            current_version,
            repo.files.get(&self.role).map(Vec::as_slice),
        )?;
        let value = self.canonical_value()?;
        let role: model::Targets = model::from_signed(&value).map_err(|e| bad(e.to_string()))?;
        if role.version != current_version + 1 {
            return Err(bad(format!(
                "it is version {}, not {}",
                role.version,
                current_version + 1
            )));
        }
        if !role.delegations.roles.is_empty() {
            return Err(bad("a release delegates nothing further".into()));
        }
        if model::parse_expires(&role.expires).map_or(true, |at| at <= now) {
            return Err(bad("it has already expired".into()));
        }
        let mut changes = Vec::new();
        let before = current.map(|t| &t.targets);
        for (tag, meta) in &role.targets {
            if !crate::delegation::paths_cover(&entry.paths, tag) {
                return Err(bad(format!("{tag:?} is outside the role's paths")));
            }
            let digest = meta
                .hashes
                .get("sha256")
                .map_or_else(String::new, |h| hex::encode(&h.0));
            match before.and_then(|b| b.get(tag)) {
                None => changes.push(format!(
                    "+ tag {tag} sha256:{digest} ({} bytes)",
                    meta.length
                )),
                Some(old) if old != meta => changes.push(format!(
                    "~ tag {tag} now sha256:{digest} ({} bytes)",
                    meta.length
                )),
                Some(_) => {}
            }
        }
        for tag in before.into_iter().flat_map(|b| b.keys()) {
            if !role.targets.contains_key(tag) {
                changes.push(format!("- tag {tag}"));
            }
        }
        let keys = entry
            .keyids
            .iter()
            .filter_map(|id| delegations.keys.get(id).map(|k| (id.clone(), k.clone())))
            .collect();
        let needed = RoleKeys {
            keyids: entry.keyids.clone(),
            threshold: entry.threshold,
        };
        Ok(Review {
            thresholds: vec![progress("release", needed)],
            changes,
            versions: (current_version, role.version),
            keys,
            fingerprint: fingerprint(&self.signed),
        })
    }

    /// The signed body as JSON, checked to be canonical.
    fn canonical_value(&self) -> Result<serde_json::Value, CeremonyError> {
        let value: serde_json::Value = serde_json::from_slice(&self.signed)
            .map_err(|e| CeremonyError::Malformed(format!("the signed role: {e}")))?;
        let canonical = crate::canonical::to_vec(&value)
            .map_err(|e| CeremonyError::Malformed(format!("the signed role: {e}")))?;
        if canonical != self.signed {
            return Err(CeremonyError::Malformed(
                "the signed role is not canonical JSON".into(),
            ));
        }
        Ok(value)
    }

    /// The new root the file proposes, read from the bytes that are signed.
    pub fn new_root(&self) -> Result<Root, CeremonyError> {
        let value = self.canonical_value()?;
        model::from_signed(&value).map_err(|e| CeremonyError::Malformed(e.to_string()))
    }

    /// Adds signatures; refuses a key that already signed.
    pub fn add(&mut self, signatures: Vec<Signature>) -> Result<(), CeremonyError> {
        for signature in signatures {
            if self.signatures.iter().any(|s| s.keyid == signature.keyid) {
                return Err(CeremonyError::SignedTwice(signature.keyid));
            }
            self.signatures.push(signature);
        }
        Ok(())
    }

    /// The role file to publish: the signed body with every signature gathered.
    pub fn role_file(&self) -> Vec<u8> {
        Envelope::wire(&self.signed, &self.signatures)
    }
}

fn root_role(root: &Root) -> Result<RoleKeys, CeremonyError> {
    root.roles
        .get("root")
        .cloned()
        .ok_or_else(|| CeremonyError::BadRoot("it lists no root role".into()))
}

fn progress(label: &'static str, role: RoleKeys) -> Progress {
    Progress {
        label,
        threshold: role.threshold,
        keyids: role.keyids,
        signed: BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_five_groups_of_four() {
        let print = fingerprint(b"root");
        assert_eq!(print.len(), 24);
        assert_eq!(print.split('-').count(), 5);
        assert_ne!(print, fingerprint(b"root "));
    }

    #[test]
    fn files_of_another_format_or_with_unknown_fields_are_refused() {
        let file = CeremonyFile {
            trustctl_ceremony: FORMAT,
            kind: Kind::RootRotation,
            gun: "example.test/app".into(),
            role: "root".into(),
            created: "2026-12-01T00:00:00Z".into(),
            expires: "2026-12-08T00:00:00Z".into(),
            base: Base {
                version: 1,
                sha256: "00".into(),
            },
            signed: b"{}".to_vec(),
            names: BTreeMap::new(),
            signatures: Vec::new(),
        };
        let bytes = file.to_bytes();
        assert_eq!(CeremonyFile::parse(&bytes).unwrap(), file);
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        value["trustctl_ceremony"] = 2.into();
        assert!(CeremonyFile::parse(value.to_string().as_bytes()).is_err());
        value["trustctl_ceremony"] = 1.into();
        value["threshold_override"] = 1.into();
        assert!(CeremonyFile::parse(value.to_string().as_bytes()).is_err());
        assert!(CeremonyFile::parse(&vec![b' '; MAX_FILE_BYTES as usize + 1]).is_err());
    }
}
