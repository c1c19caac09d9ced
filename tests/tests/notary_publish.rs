//! A repository whose root and targets keys live in trustd, built with trustctl's Notary format
//! layer, is accepted by notary-server and read by the real notary client.

use std::collections::BTreeMap;
use std::process::Command;

use sha2::{Digest, Sha256};
use trustctl::client::signer::TrustdSigner;
use trustd_e2e::notary::NotaryServer;
use trustd_e2e::*;
use trustd_notary::client::server::{NotaryServer as ApiClient, ServerError, MAX_SMALL_ROLE_BYTES};
use trustd_notary::envelope::Envelope;
use trustd_notary::keys::PublicKey;
use trustd_notary::model::{
    self, Base64Bytes, Delegations, FileMeta, RoleKeys, RoleType, Root, Targets,
};
use trustd_notary::threshold;
use trustd_proto::KeyAlgorithm;

const GUN: &str = "registry.example.test/team/hardware-signed";

fn days_from_now(days: i64) -> String {
    model::format_expires(time::OffsetDateTime::now_utc() + time::Duration::days(days))
}

fn role_keys(id: &str) -> RoleKeys {
    RoleKeys {
        keyids: vec![id.to_owned()],
        threshold: 1,
    }
}

async fn server_key(server: &NotaryServer, role: &str) -> PublicKey {
    ApiClient::new(&server.url, Some(&server.ca.ca_cert()), None)
        .unwrap()
        .key(GUN, role)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_server_accepts_and_the_notary_client_lists_a_repository_signed_in_trustd() {
    let hsm = SoftHsm::new("notary-publish");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let mut client = trustd.client().await;
    for name in ["app-root", "app-targets"] {
        client
            .generate_key(generate_request(name, KeyAlgorithm::EcdsaP256))
            .await
            .unwrap();
    }
    let server = NotaryServer::start();
    let mut signer = TrustdSigner::new(trustd.client().await);

    // Keys: the root certificate signed in trustd, targets in trustd, snapshot and timestamp
    // held by the server (as `docker trust` sets repositories up).
    let root_key = trustd_notary::publish::root::root_certificate(&mut signer, "app-root", GUN)
        .await
        .unwrap();
    let targets_key = signer.tuf_key("app-targets").await.unwrap();
    let snapshot_key = server_key(&server, "snapshot").await;
    let timestamp_key = server_key(&server, "timestamp").await;
    let ids: BTreeMap<&str, String> = [
        ("root", root_key.id()),
        ("targets", targets_key.id()),
        ("snapshot", snapshot_key.id()),
        ("timestamp", timestamp_key.id()),
    ]
    .into();
    let root = Root {
        role_type: RoleType::Root,
        consistent_snapshot: false,
        expires: days_from_now(3650),
        keys: [
            (ids["root"].clone(), root_key.clone()),
            (ids["targets"].clone(), targets_key.clone()),
            (ids["snapshot"].clone(), snapshot_key.clone()),
            (ids["timestamp"].clone(), timestamp_key.clone()),
        ]
        .into(),
        roles: ids
            .iter()
            .map(|(r, id)| (r.to_string(), role_keys(id)))
            .collect(),
        version: 1,
    };
    let manifest = b"{\"schemaVersion\":2}";
    let targets = Targets {
        role_type: RoleType::Targets,
        delegations: Delegations::default(),
        expires: days_from_now(3 * 365),
        targets: [(
            "1.0".to_owned(),
            FileMeta {
                custom: None,
                hashes: [(
                    "sha256".to_owned(),
                    Base64Bytes(Sha256::digest(manifest).to_vec()),
                )]
                .into(),
                length: manifest.len() as i64,
            },
        )]
        .into(),
        version: 1,
    };

    let mut files = BTreeMap::new();
    for (role, key, keyid, signed) in [
        (
            "root",
            "app-root",
            &ids["root"],
            serde_json::to_value(&root).unwrap(),
        ),
        (
            "targets",
            "app-targets",
            &ids["targets"],
            serde_json::to_value(&targets).unwrap(),
        ),
    ] {
        let body = trustd_notary::canonical::to_vec(&signed).unwrap();
        let signature = signer.sign_canonical(key, keyid, &body).await.unwrap();
        let envelope = Envelope {
            signed,
            signatures: vec![signature],
        };
        threshold::check(role, &envelope, &root.keys, &root.roles[role]).unwrap();
        files.insert(role, envelope.to_wire().unwrap());
    }

    // Publish through trustctl's notary client: root and targets in one update. No snapshot:
    // the server signs it with the key it holds.
    let api = ApiClient::new(&server.url, Some(&server.ca.ca_cert()), None).unwrap();
    let upload: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(role, bytes)| (role.to_string(), bytes.clone()))
        .collect();
    api.publish(GUN, &upload)
        .await
        .unwrap_or_else(|e| panic!("publish refused: {e}\n{}", server.log()));

    // The server stores exactly the bytes trustctl wrote.
    for (role, bytes) in &files {
        assert_eq!(
            &server.get(&format!("/v2/{GUN}/_trust/tuf/{role}.json")),
            bytes,
            "{role}"
        );
    }

    // The real notary client trusts it on first use and lists the tag with its digest.
    let trust_dir = tempfile::tempdir().unwrap();
    let out = server.notary(trust_dir.path(), &["list", GUN]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("1.0"), "{listing}");
    assert!(
        listing.contains(&hex::encode(Sha256::digest(manifest))),
        "{listing}"
    );
    assert!(listing.contains("targets"), "{listing}");
    // And it pinned the root certificate trustd signed.
    let out = server.notary(trust_dir.path(), &["lookup", GUN, "1.0"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&hex::encode(Sha256::digest(manifest))));

    // docker trust inspect (the docker CLI alone, no engine) shows the tag as signed by the
    // repository admin, with trustd's root and targets keys as the administrative keys.
    let docker_config = tempfile::tempdir().unwrap();
    let host = server.url.trim_start_matches("https://").to_owned();
    let tls = docker_config.path().join("tls").join(&host);
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(server.ca.ca_cert(), tls.join("ca.crt")).unwrap();
    let out = Command::new("docker")
        .args(["trust", "inspect", GUN])
        .env("DOCKER_CONFIG", docker_config.path())
        .env("DOCKER_CONTENT_TRUST_SERVER", &server.url)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker trust inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let repo = &inspect[0];
    assert_eq!(repo["Name"], GUN);
    assert_eq!(repo["SignedTags"][0]["SignedTag"], "1.0");
    assert_eq!(
        repo["SignedTags"][0]["Digest"],
        hex::encode(Sha256::digest(manifest))
    );
    assert_eq!(repo["SignedTags"][0]["Signers"][0], "Repo Admin");
    let admin: BTreeMap<String, String> = repo["AdministrativeKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["Name"].as_str().unwrap().to_owned(),
                k["Keys"][0]["ID"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        admin["Root"], ids["root"],
        "docker shows the certificate-form root key ID"
    );
    assert_eq!(admin["Repository"], ids["targets"]);

    // trustctl inspect prints exactly what docker printed, in both forms.
    let trust_dir = tempfile::tempdir().unwrap();
    let trustctl_inspect = |extra: &[&str]| {
        Command::new(bin("trustctl"))
            .args(["inspect", "--server", &server.url, "--tls-ca"])
            .arg(server.ca.ca_cert())
            .arg("--trust-dir")
            .arg(trust_dir.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let ours = trustctl_inspect(&[GUN]);
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&out.stdout)
    );
    let docker_pretty = Command::new("docker")
        .args(["trust", "inspect", "--pretty", GUN])
        .env("DOCKER_CONFIG", docker_config.path())
        .env("DOCKER_CONTENT_TRUST_SERVER", &server.url)
        .output()
        .unwrap();
    let ours_pretty = trustctl_inspect(&["--pretty", GUN]);
    assert_eq!(
        String::from_utf8_lossy(&ours_pretty.stdout),
        String::from_utf8_lossy(&docker_pretty.stdout)
    );
}

#[test]
fn inspect_of_a_repository_without_trust_data_is_not_found() {
    let server = NotaryServer::start();
    let trust_dir = tempfile::tempdir().unwrap();
    let none = Command::new(bin("trustctl"))
        .args(["inspect", "--server", &server.url, "--tls-ca"])
        .arg(server.ca.ca_cert())
        .arg("--trust-dir")
        .arg(trust_dir.path())
        .arg("registry.example.test/team/unsigned")
        .output()
        .unwrap();
    assert_eq!(
        none.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    assert!(String::from_utf8_lossy(&none.stderr).contains("no signatures"));
    assert!(
        std::fs::read_dir(trust_dir.path())
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(true),
        "nothing is cached for a repository that has no trust data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_reported_with_the_servers_own_words() {
    let server = NotaryServer::start();
    let api = ApiClient::new(&server.url, Some(&server.ca.ca_cert()), None).unwrap();
    // Nothing published yet: no role, not an error.
    assert_eq!(
        api.get(GUN, "root.json", MAX_SMALL_ROLE_BYTES)
            .await
            .unwrap(),
        None
    );
    // A malformed upload: the server's error code and message come through.
    let err = api
        .publish(GUN, &[("root".to_owned(), b"{not json".to_vec())])
        .await
        .unwrap_err();
    match &err {
        ServerError::Refused { status, code, .. } => {
            assert_eq!(*status, 400, "{err}");
            assert!(
                code == "MALFORMED_JSON" || code == "INVALID_UPDATE",
                "{err}"
            );
        }
        other => panic!("expected the server's refusal, got {other}"),
    }
    // Oversized answers are cut off.
    api.key(GUN, "timestamp").await.unwrap();
    let err = api.get(GUN, "timestamp.key", 10).await.unwrap_err();
    assert!(
        matches!(err, ServerError::TooLarge { limit: 10, .. }),
        "{err}"
    );
    // Without the test CA, TLS verification fails and says so.
    let untrusting = ApiClient::new(&server.url, None, None).unwrap();
    let err = untrusting.key(GUN, "timestamp").await.unwrap_err();
    assert!(matches!(err, ServerError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // Nobody listening.
    let port = trustd_e2e::notary::free_port();
    let gone = ApiClient::new(&format!("https://127.0.0.1:{port}"), None, None).unwrap();
    assert!(matches!(
        gone.get(GUN, "root.json", 100).await,
        Err(ServerError::Unreachable { .. })
    ));
}
