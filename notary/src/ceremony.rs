//! Ceremony files: a change to a repository's root of trust that keys on several machines
//! sign in turn (one officer, one token, one workstation, possibly offline), then one upload.
//!
//! The file is a plain JSON document handed from officer to officer, so nothing in it is
//! trusted: every check is redone from what it holds against the repository's current trust
//! data, verified on read. It names the exact bytes to be signed (the new root's canonical
//! body), the base it applies to (the current root's version and SHA-256: if the repository
//! moved, the ceremony is void), an expiry, and the signatures gathered so far. Who may sign
//! and how many are needed is never taken from the file: it is the current root's root role
//! (a rotation must be signed by its threshold) and the new root's (and by its threshold).
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
    #[error(
        "the ceremony holds a signature by key {0}, which is neither a current nor a new root key"
    )]
    NotASigner(String),
    #[error("the signature by key {0} does not verify: the file was changed after it was signed")]
    BadSignature(String),
    #[error("key {0} signed twice")]
    SignedTwice(String),
    #[error("the new root is not acceptable: {0}")]
    BadRoot(String),
}

/// What a ceremony changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// New root keys (some may stay), or a new threshold.
    RootRotation,
    /// The same root keys with new certificates.
    RootRenewal,
}

impl Kind {
    /// The name on the command line and in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RootRotation => "root-rotation",
            Kind::RootRenewal => "root-renewal",
        }
    }
}

/// The root a ceremony applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// The current root's version.
    pub root_version: u64,
    /// SHA-256 (hex) of the current root.json as the server serves it.
    pub root_sha256: String,
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
    /// When it started (RFC 3339, UTC).
    pub created: String,
    /// After this, nothing is signed or published from it.
    pub expires: String,
    /// The root it applies to.
    pub base: Base,
    /// The new root's canonical body (the exact bytes every key signs), base64.
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

/// A ceremony checked against the repository's current root.
#[derive(Debug, Clone)]
pub struct Review {
    /// The root the ceremony would publish.
    pub new_root: Root,
    /// The current root, its base.
    pub current: Root,
    /// The current root's threshold: a rotation needs it.
    pub old: Progress,
    /// The new root's own threshold.
    pub new: Progress,
    /// What officers read aloud.
    pub fingerprint: String,
}

impl Review {
    /// Whether both thresholds are met.
    pub fn complete(&self) -> bool {
        self.old.met() && self.new.met()
    }

    /// Root keys (key ID) the new root adds, and those it drops.
    pub fn key_changes(&self) -> (Vec<&str>, Vec<&str>) {
        let old = &self.current.roles["root"].keyids;
        let new = &self.new_root.roles["root"].keyids;
        let added = new.iter().filter(|k| !old.contains(k)).map(String::as_str);
        let removed = old.iter().filter(|k| !new.contains(k)).map(String::as_str);
        (added.collect(), removed.collect())
    }

    /// Every key ID that may sign, with the public key it must verify under.
    pub fn signer_keys(&self) -> BTreeMap<String, PublicKey> {
        let mut keys = BTreeMap::new();
        for (root, progress) in [(&self.current, &self.old), (&self.new_root, &self.new)] {
            for id in &progress.keyids {
                if let Some(key) = root.keys.get(id) {
                    keys.insert(id.clone(), key.clone());
                }
            }
        }
        keys
    }
}

/// What a new ceremony proposes.
pub struct Proposal<'a> {
    /// What it changes.
    pub kind: Kind,
    /// The repository.
    pub gun: &'a str,
    /// The root to publish.
    pub new_root: &'a Root,
    /// Labels for the new keys, by key ID.
    pub names: BTreeMap<String, String>,
    /// Days it stays open.
    pub days: i64,
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
    /// A new ceremony for `proposal` over the current root (`current_bytes` as served).
    pub fn start(
        proposal: Proposal<'_>,
        current_bytes: &[u8],
        current: &Root,
        now: OffsetDateTime,
    ) -> Result<CeremonyFile, CeremonyError> {
        let days = proposal.days;
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(CeremonyError::Malformed(format!(
                "a ceremony stays open 1 to {MAX_DAYS} days, not {days}"
            )));
        }
        let value = serde_json::to_value(proposal.new_root).expect("roles serialize");
        let signed =
            crate::canonical::to_vec(&value).map_err(|e| CeremonyError::BadRoot(e.to_string()))?;
        Ok(CeremonyFile {
            trustctl_ceremony: FORMAT,
            kind: proposal.kind,
            gun: proposal.gun.to_owned(),
            created: model::format_expires(now),
            expires: model::format_expires(now + time::Duration::days(days)),
            base: Base {
                root_version: current.version,
                root_sha256: sha256_hex(current_bytes),
            },
            signed,
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

    /// Checks the ceremony against the repository's current root (`current_bytes` as the
    /// server serves it now, already verified by the caller) at `now`.
    pub fn review(
        &self,
        gun: &str,
        current_bytes: &[u8],
        current: &Root,
        now: OffsetDateTime,
    ) -> Result<Review, CeremonyError> {
        if self.gun != gun {
            return Err(CeremonyError::OtherRepository {
                file: self.gun.clone(),
                expected: gun.to_owned(),
            });
        }
        let expires = model::parse_expires(&self.expires)
            .map_err(|e| CeremonyError::Malformed(format!("bad expiry: {e}")))?;
        if expires <= now {
            return Err(CeremonyError::Expired(self.expires.clone()));
        }
        if current.version != self.base.root_version
            || sha256_hex(current_bytes) != self.base.root_sha256
        {
            return Err(CeremonyError::BaseMoved {
                was: self.base.root_version,
                now: current.version,
            });
        }
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
        crate::trust::check_root_certificates(gun, &new_root, now, false)
            .map_err(|e| CeremonyError::BadRoot(e.to_string()))?;
        if model::parse_expires(&new_root.expires).map_or(true, |at| at <= now) {
            return Err(CeremonyError::BadRoot("it has already expired".into()));
        }
        let mut review = Review {
            old: progress("current root", root_role(current)?),
            new: progress("new root", own),
            current: current.clone(),
            new_root,
            fingerprint: fingerprint(&self.signed),
        };
        let keys = review.signer_keys();
        let mut seen = BTreeSet::new();
        for signature in &self.signatures {
            if !seen.insert(signature.keyid.clone()) {
                return Err(CeremonyError::SignedTwice(signature.keyid.clone()));
            }
            let key = keys
                .get(&signature.keyid)
                .ok_or_else(|| CeremonyError::NotASigner(signature.keyid.clone()))?;
            key.verify(&signature.method, &self.signed, &signature.sig)
                .map_err(|_| CeremonyError::BadSignature(signature.keyid.clone()))?;
            for progress in [&mut review.old, &mut review.new] {
                if progress.keyids.contains(&signature.keyid) {
                    progress.signed.insert(signature.keyid.clone());
                }
            }
        }
        Ok(review)
    }

    /// The new root the file proposes, read from the bytes that are signed.
    pub fn new_root(&self) -> Result<Root, CeremonyError> {
        let value: serde_json::Value = serde_json::from_slice(&self.signed)
            .map_err(|e| CeremonyError::Malformed(format!("the signed root: {e}")))?;
        let canonical = crate::canonical::to_vec(&value)
            .map_err(|e| CeremonyError::Malformed(format!("the signed root: {e}")))?;
        if canonical != self.signed {
            return Err(CeremonyError::Malformed(
                "the signed root is not canonical JSON".into(),
            ));
        }
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

    /// The root file to publish: the signed body with every signature gathered.
    pub fn root_file(&self) -> Vec<u8> {
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
            created: "2026-12-01T00:00:00Z".into(),
            expires: "2026-12-08T00:00:00Z".into(),
            base: Base {
                root_version: 1,
                root_sha256: "00".into(),
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
