//! trustctl's Notary v1 format layer against a live notary-server and the real notary client:
//! what they publish is read, rewritten byte for byte, and verified from the root down.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use trustd_e2e::notary::NotaryServer;
use trustd_notary::envelope::Envelope;
use trustd_notary::model::{self, RoleKeys, Root, Snapshot, Targets, Timestamp};
use trustd_notary::threshold;

const GUN: &str = "registry.example.test/team/app";

fn fetch(server: &NotaryServer, role: &str) -> Vec<u8> {
    server.get(&format!("/v2/{GUN}/_trust/tuf/{role}.json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_notary_client_publishes_is_rewritten_byte_for_byte_and_verifies() {
    let server = NotaryServer::start();
    let trust = tempfile::tempdir().unwrap();
    let dir = trust.path();
    let artifact = dir.join("artifact");
    std::fs::write(&artifact, b"image manifest stand-in").unwrap();

    // A repository with a tag in targets and one in a delegated role, as a team would set up.
    server.notary(dir, &["init", GUN]);
    server.notary(dir, &["add", GUN, "v1", artifact.to_str().unwrap()]);
    server.notary(dir, &["publish", GUN]);
    let key = dir.join("releases.key");
    let cert = dir.join("releases.crt");
    let openssl = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=releases",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(openssl.status.success());
    server.notary(
        dir,
        &[
            "delegation",
            "add",
            GUN,
            "targets/releases",
            cert.to_str().unwrap(),
            "--all-paths",
        ],
    );
    server.notary(dir, &["publish", GUN]);
    server.notary(
        dir,
        &[
            "key",
            "import",
            key.to_str().unwrap(),
            "--role",
            "targets/releases",
        ],
    );
    server.notary(
        dir,
        &[
            "add",
            GUN,
            "v2",
            artifact.to_str().unwrap(),
            "--roles",
            "targets/releases",
        ],
    );
    server.notary(dir, &["publish", GUN]);

    let mut files = BTreeMap::new();
    for role in [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "targets/releases",
    ] {
        files.insert(role, fetch(&server, role));
    }
    // Every file as served is exactly what trustctl would write for the same content.
    for (role, bytes) in &files {
        let envelope = Envelope::parse(bytes).unwrap();
        assert_eq!(envelope.to_wire().unwrap(), *bytes, "{role}");
    }

    let envelope = |role: &str| Envelope::parse(&files[role]).unwrap();
    let root: Root = model::from_signed(&envelope("root").signed).unwrap();
    for role in ["root", "targets", "snapshot", "timestamp"] {
        threshold::check(role, &envelope(role), &root.keys, &root.roles[role])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let targets: Targets = model::from_signed(&envelope("targets").signed).unwrap();
    let releases = targets
        .delegations
        .roles
        .iter()
        .find(|r| r.name == "targets/releases")
        .expect("delegation published");
    assert_eq!(releases.paths, [""], "--all-paths is the empty prefix");
    threshold::check(
        "targets/releases",
        &envelope("targets/releases"),
        &targets.delegations.keys,
        &RoleKeys {
            keyids: releases.keyids.clone(),
            threshold: releases.threshold,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // The tags point at the artifact.
    let artifact_hash = Sha256::digest(b"image manifest stand-in").to_vec();
    assert_eq!(targets.targets["v1"].hashes["sha256"].0, artifact_hash);
    let delegated: Targets = model::from_signed(&envelope("targets/releases").signed).unwrap();
    assert_eq!(delegated.targets["v2"].hashes["sha256"].0, artifact_hash);

    // Snapshot and timestamp vouch for the bytes as served, and the server hands out each file
    // by the checksum trustctl computes.
    let snapshot: Snapshot = model::from_signed(&envelope("snapshot").signed).unwrap();
    for role in ["root", "targets", "targets/releases"] {
        let meta = &snapshot.meta[role];
        assert_eq!(
            meta.hashes["sha256"].0,
            Sha256::digest(&files[role]).to_vec(),
            "{role}"
        );
        assert_eq!(meta.length, files[role].len() as i64, "{role}");
    }
    let timestamp: Timestamp = model::from_signed(&envelope("timestamp").signed).unwrap();
    let snapshot_sha = Sha256::digest(&files["snapshot"]);
    assert_eq!(
        timestamp.meta["snapshot"].hashes["sha256"].0,
        snapshot_sha.to_vec()
    );
    assert_eq!(
        server.get(&format!(
            "/v2/{GUN}/_trust/tuf/snapshot.{}.json",
            hex::encode(snapshot_sha)
        )),
        files["snapshot"]
    );
    // Versions after init and three publishes: root 1, targets raised by each change.
    assert_eq!(root.version, 1);
    assert!(targets.version >= 2);

    // The full verification on read, straight from the live server, trusts the same data.
    let api = trustd_notary::client::server::NotaryServer::new(
        &server.url,
        Some(&server.ca.ca_cert()),
        None,
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = trustd_notary::trust::TrustStore::new(cache.path());
    let verified = trustd_notary::trust::update(&api, &store, GUN, time::OffsetDateTime::now_utc())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(verified.targets.targets.contains_key("v1"));
    assert!(verified.delegations["targets/releases"]
        .targets
        .contains_key("v2"));
    assert_eq!(verified.files["snapshot"], files["snapshot"]);
    // Warm: a second read with the cache in place agrees.
    let again = trustd_notary::trust::update(&api, &store, GUN, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(again.timestamp.version, verified.timestamp.version);
}
