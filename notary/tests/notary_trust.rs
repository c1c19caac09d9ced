//! Verification on read, against real notary metadata served from memory: good data is
//! trusted and cached; tampered, truncated, oversized, expired, rolled-back data and a wrong
//! repository name are refused, and the cache keeps its last good state.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use time::macros::datetime;
use trustd_notary::client::server::ServerError;
use trustd_notary::trust::{self, RoleSource, TrustError, TrustStore};

const GUN: &str = "127.0.0.1:5000/demo";
/// Shortly after the fixtures were made: everything in them is valid then.
const NOW: time::OffsetDateTime = datetime!(2026-11-22 06:00 UTC);

/// Serves a fixture repository state like notary-server: by role name and by checksum.
struct Memory {
    files: BTreeMap<String, Vec<u8>>,
}

impl Memory {
    fn state(name: &str) -> Memory {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/notary")
            .join(name);
        let mut roles = BTreeMap::new();
        for role in ["root", "targets", "snapshot", "timestamp"] {
            roles.insert(
                role.to_owned(),
                std::fs::read(dir.join(format!("{role}.json"))).unwrap(),
            );
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("targets")) {
            for entry in entries {
                let path = entry.unwrap().path();
                let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
                roles.insert(format!("targets/{stem}"), std::fs::read(path).unwrap());
            }
        }
        let mut memory = Memory {
            files: BTreeMap::new(),
        };
        for (role, bytes) in roles {
            memory.put(&role, bytes);
        }
        memory
    }

    /// Serves `bytes` for `role`, both by name and under the checksum of the original file.
    fn put(&mut self, role: &str, bytes: Vec<u8>) {
        let sum = hex::encode(Sha256::digest(&bytes));
        self.files
            .insert(format!("{role}.{sum}.json"), bytes.clone());
        self.files.insert(format!("{role}.json"), bytes);
    }

    /// Replaces what is served for `role` everywhere (name and existing checksum entries).
    fn replace(&mut self, role: &str, bytes: Vec<u8>) {
        for (name, value) in self.files.iter_mut() {
            if name == &format!("{role}.json")
                || (name.starts_with(&format!("{role}.")) && name.matches('.').count() == 2)
            {
                *value = bytes.clone();
            }
        }
    }
}

impl RoleSource for Memory {
    async fn fetch(
        &self,
        _gun: &str,
        file: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, ServerError> {
        match self.files.get(file) {
            Some(bytes) if bytes.len() as u64 > limit => Err(ServerError::TooLarge {
                url: "memory".into(),
                what: file.to_owned(),
                limit,
            }),
            Some(bytes) => Ok(Some(bytes.clone())),
            None => Ok(None),
        }
    }
}

fn cache_snapshot(store: &TrustStore) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in walk(store.dir()) {
        files.insert(entry.display().to_string(), std::fs::read(&entry).unwrap());
    }
    files
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test]
async fn verifies_delegations_and_caches_what_it_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::new(dir.path());
    let repo = trust::update(&Memory::state("03-delegated-targets"), &store, GUN, NOW)
        .await
        .unwrap();
    assert_eq!(repo.root.version, 1);
    let names: Vec<_> = repo.delegations.keys().cloned().collect();
    assert_eq!(names, ["targets/alice", "targets/bob", "targets/releases"]);
    assert!(!repo.delegations["targets/releases"].targets.is_empty());
    for role in [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "targets/releases",
    ] {
        assert_eq!(store.cached(GUN, role).unwrap(), repo.files[role], "{role}");
    }
}

#[tokio::test]
async fn follows_a_root_rotation_signed_by_the_trusted_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::new(dir.path());
    trust::update(&Memory::state("03-delegated-targets"), &store, GUN, NOW)
        .await
        .unwrap();
    let repo = trust::update(&Memory::state("07-after-remove"), &store, GUN, NOW)
        .await
        .unwrap();
    assert_eq!(repo.root.version, 2);
    assert_eq!(repo.timestamp.version, 5);
}

#[tokio::test]
async fn refuses_rollback_and_keeps_the_newer_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::new(dir.path());
    trust::update(&Memory::state("07-after-remove"), &store, GUN, NOW)
        .await
        .unwrap();
    let before = cache_snapshot(&store);
    let err = trust::update(&Memory::state("03-delegated-targets"), &store, GUN, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, TrustError::Rollback { .. }), "{err}");
    assert_eq!(cache_snapshot(&store), before);

    // Same root, older timestamp: refused too.
    let mut old_timestamp = Memory::state("07-after-remove");
    let older = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/notary/04-snapshot-server-managed/timestamp.json"),
    )
    .unwrap();
    old_timestamp.replace("timestamp", older);
    let err = trust::update(&old_timestamp, &store, GUN, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrustError::Rollback { ref role, trusted: 5, offered: 4 } if role == "timestamp"),
        "{err}"
    );
    assert_eq!(cache_snapshot(&store), before);
}

#[tokio::test]
async fn tampered_truncated_and_oversized_files_are_refused_without_touching_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::new(dir.path());
    trust::update(&Memory::state("02-delegations"), &store, GUN, NOW)
        .await
        .unwrap();
    let before = cache_snapshot(&store);
    let good = Memory::state("03-delegated-targets");

    // A changed byte in the delegated role: its hash no longer matches the snapshot.
    let mut tampered = Memory::state("03-delegated-targets");
    let mut bytes = good.files["targets/alice.json"].clone();
    let at = bytes.iter().position(|b| *b == b'1').unwrap();
    bytes[at] = b'2';
    tampered.replace("targets/alice", bytes);
    let err = trust::update(&tampered, &store, GUN, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, TrustError::Mismatch { .. }), "{err}");

    // A truncated snapshot.
    let mut truncated = Memory::state("03-delegated-targets");
    let snap = good.files["snapshot.json"].clone();
    truncated.replace("snapshot", snap[..snap.len() - 10].to_vec());
    let err = trust::update(&truncated, &store, GUN, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, TrustError::Mismatch { .. }), "{err}");

    // A snapshot longer than the timestamp says: never downloaded past the stated length.
    let mut oversized = Memory::state("03-delegated-targets");
    let mut long = snap.clone();
    long.extend_from_slice(&[b' '; 4096]);
    oversized.replace("snapshot", long);
    let err = trust::update(&oversized, &store, GUN, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrustError::Server(ServerError::TooLarge { .. })),
        "{err}"
    );

    // A timestamp signed by another repository's key.
    let mut foreign = Memory::state("03-delegated-targets");
    let other = Memory::state("06-docker-signed-demo2");
    foreign.replace("timestamp", other.files["timestamp.json"].clone());
    let err = trust::update(&foreign, &store, GUN, NOW).await.unwrap_err();
    assert!(matches!(err, TrustError::Signatures(_)), "{err}");

    assert_eq!(
        cache_snapshot(&store),
        before,
        "failed updates must not touch the cache"
    );
}

#[tokio::test]
async fn expired_metadata_and_a_wrong_repository_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::new(dir.path());
    let later = datetime!(2030-01-01 00:00 UTC);
    let err = trust::update(&Memory::state("03-delegated-targets"), &store, GUN, later)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrustError::Expired { ref role, .. } if role == "timestamp"),
        "{err}"
    );

    let err = trust::update(
        &Memory::state("03-delegated-targets"),
        &store,
        "127.0.0.1:5000/other",
        NOW,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TrustError::RootCertificate { .. }), "{err}");
    assert!(err.to_string().contains("common name"), "{err}");

    // Nothing was trusted from either attempt.
    assert!(cache_snapshot(&store).is_empty());

    // A repository with no trust data at all.
    let empty = Memory {
        files: BTreeMap::new(),
    };
    assert!(matches!(
        trust::update(&empty, &store, GUN, NOW).await,
        Err(TrustError::NoTrustData(_))
    ));
}

#[tokio::test]
async fn inspect_prints_what_docker_trust_inspect_printed_for_the_same_repository() {
    let dir = tempfile::tempdir().unwrap();
    let store = TrustStore::new(dir.path());
    let repo = trust::update(&Memory::state("03-delegated-targets"), &store, GUN, NOW)
        .await
        .unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notary");
    let all = trustd_notary::inspect::report(GUN, None, &repo);
    assert_eq!(
        trustd_notary::inspect::to_json(&[all]),
        std::fs::read_to_string(fixtures.join("docker-trust-inspect-all.json"))
            .unwrap()
            .trim_end()
    );
    let v1 = trustd_notary::inspect::report(&format!("{GUN}:v1"), Some("v1"), &repo);
    assert_eq!(
        trustd_notary::inspect::to_json(&[v1]),
        std::fs::read_to_string(fixtures.join("docker-trust-inspect-v1.json"))
            .unwrap()
            .trim_end()
    );
}

#[tokio::test]
async fn a_role_written_in_another_json_layout_verifies_over_its_canonical_form() {
    let mut memory = Memory::state("03-delegated-targets");
    let original = memory.files["timestamp.json"].clone();
    let value: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    assert_ne!(pretty, original);
    memory.replace("timestamp", pretty);
    let dir = tempfile::tempdir().unwrap();
    trust::update(&memory, &TrustStore::new(dir.path()), GUN, NOW)
        .await
        .expect("the signature covers the canonical form, whatever the layout");

    let mut changed = value;
    changed["signed"]["version"] = serde_json::json!(99);
    memory.replace("timestamp", serde_json::to_vec_pretty(&changed).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let result = trust::update(&memory, &TrustStore::new(dir.path()), GUN, NOW).await;
    assert!(
        matches!(result, Err(trust::TrustError::Signatures(_))),
        "{:?}",
        result.err()
    );
}

#[test]
fn the_trust_store_refuses_any_path_that_leaves_its_directory() {
    let parent = tempfile::tempdir().unwrap();
    let trust_dir = parent.path().join("trust");
    let victim = parent.path().join("victim");
    std::fs::create_dir_all(trust_dir.join("tuf/localhost:1")).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    let store = TrustStore::new(&trust_dir);
    for gun in [
        "localhost:1/../../../victim",
        "/abs/path",
        "localhost:1/./x",
        "a//b",
        "",
        "a\\..\\b",
    ] {
        assert!(
            matches!(store.delete(gun), Err(TrustError::UnsafePath { .. })),
            "{gun}"
        );
        assert!(store.cached(gun, "root").is_none());
    }
    assert!(victim.is_dir());
    assert!(store
        .cached("localhost:1/app", "targets/../../../x")
        .is_none());
    assert!(store.delete("localhost:1").is_ok());
    assert!(!trust_dir.join("tuf/localhost:1").exists());
}
