//! Reading a repository's trust data and believing it only once it verifies.
//!
//! The order is notary's: the root (trusted on first use, or a rotation of the cached root
//! signed by the cached root's keys and by its own), then the timestamp, the snapshot it names
//! (fetched by checksum, and vouching for that same root), the targets role and the delegated
//! roles the snapshot lists. Every role is checked for signatures and threshold, hashes and
//! length against its parent, expiry, and a version never lower than the cached one. Only when
//! everything verifies is the local cache replaced, so data that fails verification never
//! overwrites what was trusted before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;

use crate::certificate;
use crate::client::server::{NotaryServer, ServerError, MAX_ROLE_BYTES, MAX_SMALL_ROLE_BYTES};
use crate::delegation;
use crate::envelope::{Envelope, RawEnvelope};
use crate::keys::KeyType;
use crate::model::{self, FileMeta, RoleKeys, Root, Snapshot, Targets, Timestamp};
use crate::pinning::{PinningError, TrustPinning};
use crate::threshold::{self, ThresholdError};

/// Where role files come from: the notary server, or anything else that serves them.
#[allow(async_fn_in_trait)]
pub trait RoleSource {
    /// `file` is `root.json`, `snapshot.<sha256>.json`, ...; None when there is no such file.
    async fn fetch(
        &self,
        gun: &str,
        file: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, ServerError>;
}

impl RoleSource for NotaryServer {
    async fn fetch(
        &self,
        gun: &str,
        file: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, ServerError> {
        self.get(gun, file, limit).await
    }
}

/// A delegated role that was published but is not trusted: its signatures do not meet its
/// keys (typically, its signer was removed after signing it).
#[derive(Debug, Clone)]
pub struct SkippedRole {
    /// The role that was left out.
    pub role: String,
    /// Why it did not verify.
    pub reason: String,
    /// The version on the server, which a new publish of the role must exceed.
    pub version: u64,
}

/// A source that serves files it already holds when they are asked for by checksum
/// (`targets.<sha256>.json`), and everything else from `inner`. After a publish, the roles
/// just uploaded need not be downloaded again to be verified: a checksum-addressed file is
/// the same bytes wherever it comes from, and is verified all the same.
pub struct WithKnownFiles<'a, S> {
    inner: &'a S,
    /// (checksum file name, bytes)
    known: Vec<(String, &'a [u8])>,
}

impl<'a, S: RoleSource> WithKnownFiles<'a, S> {
    /// `files` are (role, bytes) pairs, as published.
    pub fn new(inner: &'a S, files: &'a [(String, Vec<u8>)]) -> Self {
        let known = files
            .iter()
            .map(|(role, bytes)| {
                (
                    format!("{role}.{}.json", hex::encode(Sha256::digest(bytes))),
                    bytes.as_slice(),
                )
            })
            .collect();
        WithKnownFiles { inner, known }
    }
}

impl<S: RoleSource> RoleSource for WithKnownFiles<'_, S> {
    async fn fetch(
        &self,
        gun: &str,
        file: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, ServerError> {
        match self.known.iter().find(|(name, _)| name == file) {
            Some((_, bytes)) if bytes.len() as u64 <= limit => Ok(Some(bytes.to_vec())),
            _ => self.inner.fetch(gun, file, limit).await,
        }
    }
}

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("{0} has no trust data on the server")]
    NoTrustData(String),
    #[error("the server no longer has {role} for {gun}, which was trusted before; it may have been deleted: refusing to trust anything less (delete the local trust data with `trustctl delete {gun}` to start over)")]
    Vanished { gun: String, role: String },
    #[error("{role}: {reason}")]
    Malformed { role: String, reason: String },
    #[error(transparent)]
    Signatures(#[from] ThresholdError),
    #[error("{role}: version {offered} is older than the trusted version {trusted} (rollback attack, or a server restored from an old backup)")]
    Rollback {
        role: String,
        trusted: u64,
        offered: u64,
    },
    #[error("{role} expired at {expires}")]
    Expired { role: String, expires: String },
    #[error("{role}: the file does not match the {hash} hash or length its parent role recorded")]
    Mismatch { role: String, hash: &'static str },
    #[error("{role}: its parent role does not list it")]
    Unlisted { role: String },
    #[error("root certificate for {gun}: {reason}")]
    RootCertificate { gun: String, reason: String },
    #[error("trust pinning: {0}")]
    Pinning(#[from] PinningError),
    #[error("local trust data in {path}: {error}")]
    Cache { path: String, error: std::io::Error },
    #[error("refusing to use {name:?} as a path in the trust directory: {reason}")]
    UnsafePath { name: String, reason: &'static str },
}

/// Most delegated roles a repository may have: each costs a download, and a server listing
/// millions would keep trustctl fetching for hours (docker and notary use a handful).
pub const MAX_DELEGATED_ROLES: usize = 1000;

/// The top-level roles; every other role name must pass notary's delegation rules.
const BASE_ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// `name` as a relative path of plain components only: what keeps a GUN or role name from a
/// server or a command line inside the trust directory whatever it holds.
fn contained(name: &str) -> Result<&Path, TrustError> {
    let unsafe_path = |reason| TrustError::UnsafePath {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.contains(['\\', '\0']) {
        return Err(unsafe_path("empty, or holds a backslash or NUL"));
    }
    if name
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(unsafe_path("it has an empty, '.' or '..' component"));
    }
    let path = Path::new(name);
    if !path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(unsafe_path("it does not stay inside the trust directory"));
    }
    Ok(path)
}

/// A role name read from a server or a caller: a top-level role or a delegation by notary's
/// rules (`targets/...`, lower case, no `.`/`..`).
fn check_role(role: &str) -> Result<(), TrustError> {
    if BASE_ROLES.contains(&role) || delegation::check_role_name(role).is_ok() {
        Ok(())
    } else {
        Err(TrustError::UnsafePath {
            name: role.to_owned(),
            reason: "it is not a role name (root, targets, snapshot, timestamp or targets/...)",
        })
    }
}

/// The local cache of verified trust data: `<dir>/tuf/<gun>/metadata/<role>.json`, the same
/// layout the notary client uses.
pub struct TrustStore {
    dir: PathBuf,
    pinning: TrustPinning,
}

impl TrustStore {
    /// A trust cache in `dir` (docker's is `~/.docker/trust`).
    pub fn new(dir: impl Into<PathBuf>) -> TrustStore {
        TrustStore {
            dir: dir.into(),
            pinning: TrustPinning::default(),
        }
    }

    /// How first roots are decided.
    pub fn pinning(&self) -> &TrustPinning {
        &self.pinning
    }

    /// Decides first roots by `pinning` instead of trusting them on first use.
    pub fn with_pinning(mut self, pinning: TrustPinning) -> TrustStore {
        self.pinning = pinning;
        self
    }

    /// `<dir>/tuf/<gun>`, refusing a GUN that would leave `<dir>/tuf`.
    fn repository_dir(&self, gun: &str) -> Result<PathBuf, TrustError> {
        Ok(self.dir.join("tuf").join(contained(gun)?))
    }

    /// `<dir>/tuf/<gun>/metadata/<role>.json`, for role names notary allows only.
    fn role_path(&self, gun: &str, role: &str) -> Result<PathBuf, TrustError> {
        check_role(role)?;
        let file = format!("{}.json", contained(role)?.display());
        Ok(self.repository_dir(gun)?.join("metadata").join(file))
    }

    /// The cached bytes of `role` of `gun`, if any.
    pub fn cached(&self, gun: &str, role: &str) -> Option<Vec<u8>> {
        std::fs::read(self.role_path(gun, role).ok()?).ok()
    }

    /// Replaces the cached files of `gun` with `files` (each written atomically). A file
    /// whose cached copy is already these bytes is left alone: most updates change only the
    /// timestamp, snapshot and targets, and a batch updates hundreds of repositories.
    fn save(&self, gun: &str, files: &BTreeMap<String, Vec<u8>>) -> Result<(), TrustError> {
        for (role, bytes) in files {
            let path = self.role_path(gun, role)?;
            if std::fs::read(&path).is_ok_and(|cached| &cached == bytes) {
                continue;
            }
            let err = |error| TrustError::Cache {
                path: path.display().to_string(),
                error,
            };
            let dir = path.parent().expect("role files have a directory");
            std::fs::create_dir_all(dir).map_err(err)?;
            let tmp = dir.join(format!(
                ".{}.tmp",
                path.file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&tmp, bytes).map_err(err)?;
            std::fs::rename(&tmp, &path).map_err(err)?;
        }
        Ok(())
    }

    /// Forgets everything about `gun`.
    pub fn delete(&self, gun: &str) -> Result<(), TrustError> {
        let path = self.repository_dir(gun)?;
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(TrustError::Cache {
                path: path.display().to_string(),
                error,
            }),
        }
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A repository's roles after verification, with the exact bytes each was read from.
#[derive(Debug, Clone)]
pub struct VerifiedRepository {
    /// The repository's GUN.
    pub gun: String,
    /// Its verified root.
    pub root: Root,
    /// Its verified targets role.
    pub targets: Targets,
    /// Its verified snapshot.
    pub snapshot: Snapshot,
    /// Its verified timestamp.
    pub timestamp: Timestamp,
    /// Delegated roles by name, their targets limited to the paths they were delegated.
    pub delegations: BTreeMap<String, Targets>,
    /// Delegated role names in the order notary walks them (breadth first, as listed).
    pub delegation_order: Vec<String>,
    /// Delegated roles left out because their signatures do not verify.
    pub skipped: Vec<SkippedRole>,
    /// The role files as fetched, by role name.
    pub files: BTreeMap<String, Vec<u8>>,
}

fn malformed(role: &str, reason: impl ToString) -> TrustError {
    TrustError::Malformed {
        role: role.to_owned(),
        reason: reason.to_string(),
    }
}

fn parse<T: serde::de::DeserializeOwned + model::Role>(
    role: &str,
    bytes: &[u8],
) -> Result<(Envelope, T), TrustError> {
    let envelope = Envelope::parse(bytes).map_err(|e| malformed(role, e))?;
    let typed = model::from_signed(&envelope.signed).map_err(|e| malformed(role, e))?;
    Ok((envelope, typed))
}

/// Parses a role and checks its signatures, reading the typed role straight from the file's
/// text. The signatures are checked over the body as notary writes it (canonical JSON, HTML
/// escapes undone) and, only if that fails, over the body canonicalized here: the same
/// guarantee for any writer, without re-serializing thousands of tags for notary's.
fn parse_verified<T: serde::de::DeserializeOwned + model::Role>(
    role: &str,
    bytes: &[u8],
    keys: &BTreeMap<String, crate::keys::PublicKey>,
    listed: &RoleKeys,
) -> Result<T, TrustError> {
    let raw = RawEnvelope::parse(bytes).map_err(|e| malformed(role, e))?;
    let typed = model::from_signed_text(raw.signed_text()).map_err(|e| malformed(role, e))?;
    let written = raw.signed_as_written();
    if let Err(error) = threshold::check_message(role, &written, &raw.signatures, keys, listed) {
        let canonical = raw.canonical_signed().map_err(|e| malformed(role, e))?;
        if canonical == written {
            return Err(error.into());
        }
        threshold::check_message(role, &canonical, &raw.signatures, keys, listed)?;
    }
    Ok(typed)
}

fn check_expiry(role: &str, expires: &str, now: OffsetDateTime) -> Result<(), TrustError> {
    let at =
        model::parse_expires(expires).map_err(|e| malformed(role, format!("bad expiry: {e}")))?;
    if at <= now {
        return Err(TrustError::Expired {
            role: role.to_owned(),
            expires: expires.to_owned(),
        });
    }
    Ok(())
}

fn check_meta(role: &str, meta: &FileMeta, bytes: &[u8]) -> Result<(), TrustError> {
    if meta.length != bytes.len() as i64 {
        return Err(TrustError::Mismatch {
            role: role.to_owned(),
            hash: "length",
        });
    }
    let sha256 = meta
        .hashes
        .get("sha256")
        .ok_or_else(|| malformed(role, "its parent records no sha256 hash"))?;
    if sha256.0 != Sha256::digest(bytes).as_slice() {
        return Err(TrustError::Mismatch {
            role: role.to_owned(),
            hash: "sha256",
        });
    }
    if let Some(sha512) = meta.hashes.get("sha512") {
        if sha512.0 != Sha512::digest(bytes).as_slice() {
            return Err(TrustError::Mismatch {
                role: role.to_owned(),
                hash: "sha512",
            });
        }
    }
    Ok(())
}

/// The version of a cached role, if there is one (it was verified when it was saved). Only
/// `signed.version` is read: the rest of a large targets file is skipped, not built.
fn cached_version(store: &TrustStore, gun: &str, role: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Signed {
        version: u64,
    }
    #[derive(serde::Deserialize)]
    struct File {
        signed: Signed,
    }
    let bytes = store.cached(gun, role)?;
    serde_json::from_slice::<File>(&bytes)
        .ok()
        .map(|f| f.signed.version)
}

fn check_version(
    store: &TrustStore,
    gun: &str,
    role: &str,
    offered: u64,
) -> Result<(), TrustError> {
    match cached_version(store, gun, role) {
        Some(trusted) if offered < trusted => Err(TrustError::Rollback {
            role: role.to_owned(),
            trusted,
            offered,
        }),
        _ => Ok(()),
    }
}

/// Notary's root certificate rules: CN is the GUN, not a CA, within its validity.
pub(crate) fn check_root_certificates(
    gun: &str,
    root: &Root,
    now: OffsetDateTime,
    expired_allowed: bool,
) -> Result<(), TrustError> {
    let bad = |reason: String| TrustError::RootCertificate {
        gun: gun.to_owned(),
        reason,
    };
    let mut valid = 0;
    let mut public_keys = std::collections::BTreeSet::new();
    for id in &root
        .roles
        .get("root")
        .ok_or_else(|| malformed("root", "no root role"))?
        .keyids
    {
        let Some(key) = root.keys.get(id) else {
            continue;
        };
        if !matches!(key.keytype, KeyType::EcdsaX509 | KeyType::RsaX509) {
            return Err(bad(format!(
                "root key {id} is a {} key, not a certificate",
                key.keytype.as_str()
            )));
        }
        let cert = key.certificate().map_err(bad)?;
        let cn = certificate::common_name(&cert);
        if cn.as_deref() != Some(gun) {
            return Err(bad(format!(
                "its common name is {cn:?}, not the repository name"
            )));
        }
        if certificate::is_ca(&cert) {
            return Err(bad("it is a CA certificate".into()));
        }
        if !expired_allowed && !certificate::is_valid_at(&cert, now) {
            return Err(bad("it is outside its validity period".into()));
        }
        let spki = key.spki_der().map_err(|e| bad(e.to_string()))?;
        if !public_keys.insert(spki) {
            return Err(bad(format!(
                "root key {id} wraps a key another root certificate also wraps: notary would count \
                 that one key twice"
            )));
        }
        valid += 1;
    }
    if valid == 0 {
        return Err(bad("the root role lists no usable certificate".into()));
    }
    Ok(())
}

/// Most root versions a cached root is walked forward through in one update.
pub const MAX_ROOT_ROTATIONS: u64 = 256;

/// Checks the chain of root versions from the trusted root to the server's newest, as a
/// notary client does: each version `N.root.json` must be signed by a threshold of its
/// predecessor's root keys and of its own, and the last one must be the server's root.
/// Versions in between may have expired (only the newest must be current).
async fn walk_rotations(
    source: &impl RoleSource,
    gun: &str,
    trusted: Root,
    newest_bytes: &[u8],
    newest: u64,
    now: OffsetDateTime,
) -> Result<(), TrustError> {
    if newest - trusted.version > MAX_ROOT_ROTATIONS {
        return Err(malformed(
            "root",
            format!(
                "the server's root is version {newest}, more than {MAX_ROOT_ROTATIONS} rotations past the trusted version {}",
                trusted.version
            ),
        ));
    }
    let mut previous = trusted;
    for version in previous.version + 1..=newest {
        let bytes = match version == newest {
            true => newest_bytes.to_vec(),
            false => source
                .fetch(gun, &format!("{version}.root.json"), MAX_SMALL_ROLE_BYTES)
                .await?
                .ok_or_else(|| TrustError::Vanished {
                    gun: gun.to_owned(),
                    role: format!("root version {version}"),
                })?,
        };
        let (envelope, root): (Envelope, Root) = parse("root", &bytes)?;
        if root.version != version {
            return Err(malformed(
                "root",
                format!("{version}.root.json says it is version {}", root.version),
            ));
        }
        threshold::check(
            "root rotation (signed by the previous root's keys)",
            &envelope,
            &previous.keys,
            role_keys(&previous, "root")?,
        )?;
        threshold::check("root", &envelope, &root.keys, role_keys(&root, "root")?)?;
        // Certificates of intermediate roots may have expired since; the newest root's are
        // checked at `now` by the caller.
        check_root_certificates(gun, &root, now, version != newest)?;
        previous = root;
    }
    Ok(())
}

/// Verifies a root: signed by enough of its own keys, with valid root certificates.
fn verify_root(
    gun: &str,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<(Envelope, Root), TrustError> {
    let (envelope, root): (Envelope, Root) = parse("root", bytes)?;
    let own = root
        .roles
        .get("root")
        .ok_or_else(|| malformed("root", "no root role"))?;
    threshold::check("root", &envelope, &root.keys, own)?;
    check_root_certificates(gun, &root, now, false)?;
    Ok((envelope, root))
}

/// The entry for `role` in a snapshot's or timestamp's `meta`.
fn listed<'a>(
    meta: &'a BTreeMap<String, FileMeta>,
    role: &str,
) -> Result<&'a FileMeta, TrustError> {
    meta.get(role)
        .ok_or_else(|| TrustError::Unlisted { role: role.into() })
}

fn role_keys<'a>(root: &'a Root, role: &str) -> Result<&'a RoleKeys, TrustError> {
    root.roles
        .get(role)
        .ok_or_else(|| malformed("root", format!("no {role} role")))
}

/// What every role must pass once fetched: schema, signatures from the keys its parent lists
/// (at least the threshold), expiry, and a version no lower than the cached one.
struct RoleCheck<'a> {
    store: &'a TrustStore,
    gun: &'a str,
    now: OffsetDateTime,
}

impl RoleCheck<'_> {
    fn verify<T>(
        &self,
        role: &str,
        bytes: &[u8],
        keys: &BTreeMap<String, crate::keys::PublicKey>,
        listed: &RoleKeys,
    ) -> Result<T, TrustError>
    where
        T: serde::de::DeserializeOwned + model::Role,
    {
        let typed: T = parse_verified(role, bytes, keys, listed)?;
        check_expiry(role, typed.expires(), self.now)?;
        check_version(self.store, self.gun, role, typed.version())?;
        Ok(typed)
    }
}

/// Fetches, verifies and caches the trust data of `gun`.
pub async fn update(
    source: &impl RoleSource,
    store: &TrustStore,
    gun: &str,
    now: OffsetDateTime,
) -> Result<VerifiedRepository, TrustError> {
    let mut files = BTreeMap::new();

    // The root: the server's latest, trusted on first use, or, when a root is cached and the
    // server's differs, accepted only as a rotation signed by the cached root's keys.
    let cached_root = store.cached(gun, "root");
    let server_root = source.fetch(gun, "root.json", MAX_SMALL_ROLE_BYTES).await?;
    let (root_bytes, root) = match (cached_root, server_root) {
        (None, None) => return Err(TrustError::NoTrustData(gun.to_owned())),
        (Some(_), None) => {
            return Err(TrustError::Vanished {
                gun: gun.to_owned(),
                role: "root".into(),
            })
        }
        (None, Some(offered)) => {
            let (_, root) = verify_root(gun, &offered, now)?;
            store.pinning.check_first_root(gun, &root, now)?;
            (offered, root)
        }
        (Some(trusted), Some(offered)) => {
            let (_, old) = verify_root(gun, &trusted, now)?;
            if offered == trusted {
                (trusted, old)
            } else {
                let (_, new) = verify_root(gun, &offered, now)?;
                if new.version <= old.version {
                    return Err(TrustError::Rollback {
                        role: "root".into(),
                        trusted: old.version,
                        offered: new.version,
                    });
                }
                walk_rotations(source, gun, old, &offered, new.version, now).await?;
                (offered, new)
            }
        }
    };
    check_expiry("root", &root.expires, now)?;

    let timestamp_bytes = source
        .fetch(gun, "timestamp.json", MAX_SMALL_ROLE_BYTES)
        .await?
        .ok_or_else(|| TrustError::Vanished {
            gun: gun.to_owned(),
            role: "timestamp".into(),
        })?;
    let check = RoleCheck { store, gun, now };
    let timestamp: Timestamp = check.verify(
        "timestamp",
        &timestamp_bytes,
        &root.keys,
        role_keys(&root, "timestamp")?,
    )?;

    let snapshot_meta = listed(&timestamp.meta, "snapshot")?;
    let snapshot_bytes =
        fetch_by_checksum(source, gun, "snapshot", snapshot_meta, MAX_SMALL_ROLE_BYTES).await?;
    let snapshot: Snapshot = check.verify(
        "snapshot",
        &snapshot_bytes,
        &root.keys,
        role_keys(&root, "snapshot")?,
    )?;
    // The snapshot must vouch for the very root the checks above used.
    let root_meta = listed(&snapshot.meta, "root")?;
    check_meta("root", root_meta, &root_bytes)?;

    // Targets, then delegated roles breadth first; each delegated role may only sign targets
    // under the paths it was delegated (and under its parent's).
    let targets_meta = listed(&snapshot.meta, "targets")?;
    let targets_bytes =
        fetch_by_checksum(source, gun, "targets", targets_meta, MAX_ROLE_BYTES).await?;
    let targets: Targets = check.verify(
        "targets",
        &targets_bytes,
        &root.keys,
        role_keys(&root, "targets")?,
    )?;

    let mut delegations = BTreeMap::new();
    let mut delegation_order = Vec::new();
    let mut skipped = Vec::new();
    let mut queue = std::collections::VecDeque::from([(
        "targets".to_owned(),
        targets.clone(),
        vec![String::new()],
    )]);
    while let Some((parent_name, parent, parent_paths)) = queue.pop_front() {
        if delegations.len() + parent.delegations.roles.len() > MAX_DELEGATED_ROLES {
            return Err(malformed(
                &parent_name,
                format!("the repository delegates to more than {MAX_DELEGATED_ROLES} roles; refusing to read them all"),
            ));
        }
        for role in &parent.delegations.roles {
            check_delegated_name(&parent_name, &role.name)?;
            let Some(meta) = snapshot.meta.get(&role.name) else {
                continue; // delegated but never published
            };
            if delegations.contains_key(&role.name) {
                continue;
            }
            let bytes = fetch_by_checksum(source, gun, &role.name, meta, MAX_ROLE_BYTES).await?;
            let verified: Result<Targets, TrustError> = check.verify(
                &role.name,
                &bytes,
                &parent.delegations.keys,
                &RoleKeys {
                    keyids: role.keyids.clone(),
                    threshold: role.threshold,
                },
            );
            // A delegated role whose signatures no longer meet its keys (a signer removed
            // after signing it) is not trusted, and not fatal: as notary, skip it and read
            // the rest. Anything else (tampering, rollback) still fails the whole read.
            let mut delegated = match verified {
                Err(TrustError::Signatures(error)) => {
                    // Its version still counts: a new publish of the role must exceed it.
                    let version = RawEnvelope::parse(&bytes)
                        .ok()
                        .and_then(|raw| model::from_signed_text::<Targets>(raw.signed_text()).ok())
                        .map_or(0, |t| t.version);
                    skipped.push(SkippedRole {
                        role: role.name.clone(),
                        reason: error.to_string(),
                        version,
                    });
                    continue;
                }
                other => other?,
            };
            delegated.targets.retain(|name, _| {
                delegation::paths_cover(&role.paths, name)
                    && delegation::paths_cover(&parent_paths, name)
            });
            files.insert(role.name.clone(), bytes);
            let paths = delegation::narrow_paths(&role.paths, &parent_paths);
            delegations.insert(role.name.clone(), delegated.clone());
            delegation_order.push(role.name.clone());
            queue.push_back((role.name.clone(), delegated, paths));
        }
    }

    files.insert("root".into(), root_bytes);
    files.insert("timestamp".into(), timestamp_bytes);
    files.insert("snapshot".into(), snapshot_bytes);
    files.insert("targets".into(), targets_bytes);
    store.save(gun, &files)?;
    Ok(VerifiedRepository {
        gun: gun.to_owned(),
        root,
        targets,
        snapshot,
        timestamp,
        delegations,
        delegation_order,
        skipped,
        files,
    })
}

/// Notary's rule for the roles a targets role delegates to (`isValidTargetsStructure`): a
/// valid delegation name whose parent is the delegating role. A role that breaks it makes the
/// delegating role invalid, as it does for notary; the name is never used in a path or URL.
fn check_delegated_name(parent: &str, name: &str) -> Result<(), TrustError> {
    let child = delegation::check_role_name(name).is_ok()
        && name.rsplit_once('/').is_some_and(|(dir, _)| dir == parent);
    if child {
        Ok(())
    } else {
        Err(malformed(
            parent,
            format!(
                "it delegates to \"{}\", which is not a delegation role directly under {parent}",
                crate::text::excerpt(name, 100)
            ),
        ))
    }
}

async fn fetch_by_checksum(
    source: &impl RoleSource,
    gun: &str,
    role: &str,
    meta: &FileMeta,
    limit: u64,
) -> Result<Vec<u8>, TrustError> {
    let sha256 = meta
        .hashes
        .get("sha256")
        .ok_or_else(|| malformed(role, "its parent records no sha256 hash"))?;
    let limit = limit.min(meta.length.max(0) as u64);
    let bytes = source
        .fetch(
            gun,
            &format!("{role}.{}.json", hex::encode(&sha256.0)),
            limit,
        )
        .await?
        .ok_or_else(|| TrustError::Vanished {
            gun: gun.to_owned(),
            role: role.to_owned(),
        })?;
    check_meta(role, meta, &bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;

    use super::*;
    use crate::keys::PublicKey;
    use crate::root_cert::{self, RootCertSpec};

    const GUN: &str = "example.test/app";

    /// A root certificate around `key` (each call a new serial, so a new certificate).
    fn certificate(key: &p256::ecdsa::SigningKey, serial: u8) -> PublicKey {
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let spec = RootCertSpec {
            serial: [serial; 16],
            ..RootCertSpec::now(GUN, spki.as_bytes())
        };
        let tbs = spec.tbs().unwrap();
        let signature: p256::ecdsa::Signature =
            key.sign(&x509_cert::der::Encode::to_der(&tbs).unwrap());
        let cert = root_cert::assemble(tbs, signature.to_der().as_bytes()).unwrap();
        PublicKey::new(
            KeyType::EcdsaX509,
            root_cert::to_pem(&cert).unwrap().into_bytes(),
        )
    }

    fn root(certs: &[PublicKey]) -> Root {
        Root {
            role_type: model::RoleType::Root,
            consistent_snapshot: false,
            expires: String::new(),
            keys: certs.iter().map(|c| (c.id(), c.clone())).collect(),
            roles: [(
                "root".to_owned(),
                RoleKeys {
                    keyids: certs.iter().map(PublicKey::id).collect(),
                    threshold: 2,
                },
            )]
            .into(),
            version: 1,
        }
    }

    /// One key behind two certificates would be two votes to notary: refused on read.
    #[test]
    fn a_root_listing_one_key_under_two_certificates_is_refused() {
        let now = OffsetDateTime::now_utc();
        let (a, b) = (
            p256::ecdsa::SigningKey::random(&mut rand::thread_rng()),
            p256::ecdsa::SigningKey::random(&mut rand::thread_rng()),
        );
        let distinct = root(&[certificate(&a, 1), certificate(&b, 2)]);
        check_root_certificates(GUN, &distinct, now, false).unwrap();
        let twice = root(&[certificate(&a, 1), certificate(&a, 2)]);
        let error = check_root_certificates(GUN, &twice, now, false).unwrap_err();
        assert!(
            error.to_string().contains("count that one key twice"),
            "{error}"
        );
    }
}
