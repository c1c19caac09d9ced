//! A notary server's answers, verified from a trusted root (or trusted on first use), as
//! `trustctl` does before it believes a single tag.
//!
//! Parts: `gun` (the repository), optionally `trusted-root` (what the cache already trusts),
//! then the role files the server serves by role name (`root`, `timestamp`, `snapshot`,
//! `targets`, `targets/releases`, ...). The laws: whatever fails leaves the cached trust data
//! as it was; whatever succeeds is exactly what the server served, and a new root is only
//! accepted as a newer version.

use std::sync::OnceLock;

use trustd_notary::client::server::ServerError;
use trustd_notary::model::Root;
use trustd_notary::trust::{self, RoleSource, TrustStore};

use crate::framing;

struct Served<'a> {
    files: Vec<(String, &'a [u8])>,
}

impl RoleSource for Served<'_> {
    async fn fetch(
        &self,
        _gun: &str,
        file: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, ServerError> {
        // `snapshot.<sha256>.json` and `snapshot.json` both name the role `snapshot`.
        let stem = file.strip_suffix(".json").unwrap_or(file);
        let role = match stem.rsplit_once('.') {
            Some((role, hash)) if hash.len() == 64 => role,
            _ => stem,
        };
        let Some((_, bytes)) = self.files.iter().find(|(name, _)| name == role) else {
            return Ok(None);
        };
        if bytes.len() as u64 > limit {
            return Err(ServerError::TooLarge {
                url: "fuzz".into(),
                what: file.into(),
                limit,
            });
        }
        Ok(Some(bytes.to_vec()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime")
    })
}

fn store() -> &'static (tempfile::TempDir, TrustStore) {
    static STORE: OnceLock<(tempfile::TempDir, TrustStore)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = TrustStore::new(dir.path());
        (dir, store)
    })
}

fn version(root: &[u8]) -> Option<u64> {
    let raw = trustd_notary::envelope::RawEnvelope::parse(root).ok()?;
    let root: Root = trustd_notary::model::from_signed_text(raw.signed_text()).ok()?;
    Some(root.version)
}

pub fn run(data: &[u8]) {
    let parts = framing::split(data);
    let Some(((b"gun", gun), rest)) = parts.split_first().map(|(f, r)| (*f, r)) else {
        return;
    };
    let Ok(gun) = std::str::from_utf8(gun) else {
        return;
    };
    let (dir, store) = store();
    // A GUN the store refuses (one that would leave its directory) is refused by update too.
    if store.delete(gun).is_err() {
        assert!(runtime()
            .block_on(trust::update(
                &Served { files: vec![] },
                store,
                gun,
                super::corpus_time()
            ))
            .is_err());
        return;
    }
    let mut trusted_root = None;
    let mut files = Vec::new();
    for (name, bytes) in rest {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name == "trusted-root" {
            trusted_root = Some(*bytes);
        } else {
            files.push((name.to_owned(), *bytes));
        }
    }
    if let Some(root) = trusted_root {
        let metadata = dir.path().join("tuf").join(gun).join("metadata");
        // A GUN the file system cannot hold (a name too long) cannot have a cached root.
        if std::fs::create_dir_all(&metadata).is_err()
            || std::fs::write(metadata.join("root.json"), root).is_err()
        {
            return;
        }
    }
    let served = Served { files };
    let result = runtime().block_on(trust::update(&served, store, gun, super::corpus_time()));
    let cached = store.cached(gun, "root");
    match result {
        Err(_) => assert_eq!(
            cached.as_deref(),
            trusted_root,
            "a failed update changed the trusted root"
        ),
        Ok(repository) => {
            let served_root = served.files.iter().find(|(n, _)| n == "root").map(|f| f.1);
            assert_eq!(repository.files.get("root").map(Vec::as_slice), served_root);
            assert_eq!(
                cached.as_deref(),
                served_root,
                "the cache holds another root"
            );
            if let Some(old) = trusted_root.filter(|old| Some(*old) != served_root) {
                assert!(
                    version(served_root.unwrap()) > version(old),
                    "a root rotation went back in versions"
                );
            }
        }
    }
}
