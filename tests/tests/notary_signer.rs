//! trustd as notary-server's notary-signer: the real notary-server keeps its timestamp and
//! snapshot keys on trustd's devices (SoftHSM, a TPM), over mutual TLS, and the real notary
//! client, docker and trustctl read what it signs.

use std::sync::Arc;

use trustd_e2e::ca::TestCa;
use trustd_e2e::dct::Dct;
use trustd_e2e::forwarder::Forwarder;
use trustd_e2e::notary::NotaryServer;
use trustd_e2e::signer_bench::{TlsEndpoint, NOTARY_SERVER_RULE};
use trustd_e2e::tpm::Swtpm;
use trustd_e2e::*;

const GUN: &str = "registry.example.test/team/app";

/// The key IDs root.json gives `role`.
fn root_key_ids(server: &NotaryServer, gun: &str, role: &str) -> Vec<String> {
    let root: serde_json::Value =
        serde_json::from_slice(&server.get(&format!("/v2/{gun}/_trust/tuf/root.json"))).unwrap();
    root["signed"]["roles"][role]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

/// trustd's keys for `role` of `gun`, by key ID.
fn trustd_key_ids(trustd: &Trustd, gun: &str, role: &str) -> Vec<String> {
    let keys: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "list", "--json"])).unwrap();
    keys.as_array()
        .unwrap()
        .iter()
        .filter(|k| k["gun"] == gun && k["role"] == role)
        .inspect(|k| {
            let name = k["name"].as_str().unwrap();
            assert!(name.starts_with(&format!("notary/{gun}/{role}/")), "{name}");
        })
        .map(|k| k["key_id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_published(out: &std::process::Output, server: &NotaryServer) {
    assert!(
        out.status.success(),
        "notary publish: {}{}\n--- notary-server ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
}

#[test]
fn notary_server_keeps_its_keys_in_trustd_across_restarts_and_outages() {
    let ca = Arc::new(TestCa::new());
    let hsm = SoftHsm::new("notary-signer");
    let endpoint = TlsEndpoint::new(ca.clone());
    let mut options = Options::for_token(&hsm);
    options.extra = endpoint.trustd_tables("hsm");
    options.policy = format!("{ROOT_ONLY}{NOTARY_SERVER_RULE}");
    let trustd = Trustd::start(&hsm, &options);
    let server = NotaryServer::start_with_trust_service(ca, None, endpoint.trust_service());
    let mut bench = Dct::assemble(hsm, trustd, server);
    bench.server.wait_for_health(200);

    // The notary client creates and publishes a repository; the timestamp key is trustd's.
    let client = tempfile::tempdir().unwrap();
    let dir = client.path();
    bench.server.notary(dir, &["init", GUN]);
    assert_published(&bench.server.publish_tag(dir, GUN, "v1"), &bench.server);
    let timestamp = root_key_ids(&bench.server, GUN, "timestamp");
    assert_eq!(timestamp, trustd_key_ids(&bench.trustd, GUN, "timestamp"));
    assert!(bench.notary_tags(GUN).contains_key("v1"));
    let inspected = bench.docker_inspect(GUN);
    assert_eq!(
        inspected[0]["SignedTags"][0]["SignedTag"], "v1",
        "{inspected}"
    );
    let ours = bench.ok(&["inspect", GUN]);
    assert!(ours.contains("v1"), "{ours}");

    // Both keys moved to trustd by the notary client's own rotations.
    bench
        .server
        .notary(dir, &["key", "rotate", GUN, "timestamp", "-r"]);
    bench
        .server
        .notary(dir, &["key", "rotate", GUN, "snapshot", "-r"]);
    assert_published(&bench.server.publish_tag(dir, GUN, "v2"), &bench.server);
    let rotated = root_key_ids(&bench.server, GUN, "timestamp");
    assert_ne!(rotated, timestamp);
    assert!(trustd_key_ids(&bench.trustd, GUN, "timestamp").contains(&rotated[0]));
    let snapshot = root_key_ids(&bench.server, GUN, "snapshot");
    assert_eq!(snapshot, trustd_key_ids(&bench.trustd, GUN, "snapshot"));
    let tags = bench.notary_tags(GUN);
    assert!(
        tags.contains_key("v1") && tags.contains_key("v2"),
        "{tags:?}"
    );

    // trustctl's own repositories (server-managed snapshot) work through it too.
    let ours = "registry.example.test/team/ours";
    bench.ok(&["init", ours]);
    bench.ok(&[
        "sign",
        &format!("{ours}:1.0@sha256:{}", "ab".repeat(32)),
        "--size",
        "7",
    ]);
    assert!(bench.notary_tags(ours).contains_key("1.0"));
    assert_eq!(
        root_key_ids(&bench.server, ours, "snapshot"),
        trustd_key_ids(&bench.trustd, ours, "snapshot")
    );

    // Restarted, trustd still holds the keys notary-server knows.
    bench.trustd.restart();
    let _ = bench.server.publish_tag(dir, GUN, "v3");
    bench.server.publish_after_signer_restart(dir, GUN);
    assert!(bench.notary_tags(GUN).contains_key("v3"));

    // Stopped: notary-server says it is unhealthy and publishes fail; back: they succeed
    // without restarting notary-server.
    assert!(bench.trustd.stop().success());
    bench.server.wait_for_health(503);
    let refused = bench.server.publish_tag(dir, GUN, "v4");
    assert!(!refused.status.success(), "published without its signer");
    bench.trustd.spawn();
    bench.trustd.wait_ready();
    bench.server.wait_for_health(200);
    bench.server.publish_after_signer_restart(dir, GUN);
    assert!(bench.notary_tags(GUN).contains_key("v4"));

    // Every signature is in trustd's audit trail under notary-server's certificate.
    let signs: Vec<_> = bench
        .trustd
        .audit_records()
        .into_iter()
        .filter(|r| r["event"] == "sign" && r["result"] == "allowed")
        .collect();
    assert!(signs.len() >= 5, "{signs:?}");
    assert!(signs
        .iter()
        .filter(|r| r["caller_identity"] == "CN=notary-server")
        .all(|r| r["key_name"].as_str().unwrap().starts_with("notary/")));
}

#[test]
fn the_timestamp_key_can_live_on_a_tpm() {
    let mut tpm = Swtpm::start();
    let ca = Arc::new(TestCa::new());
    let endpoint = TlsEndpoint::new(ca.clone());
    let mut options = Options::with_backends(format!(
        "[[backend]]\ntype = \"tpm\"\nname = \"tpm\"\ntcti = \"{}\"\n",
        tpm.tcti()
    ));
    options.extra = endpoint.trustd_tables("tpm");
    options.policy = format!("{ROOT_ONLY}{NOTARY_SERVER_RULE}");
    let mut trustd = Trustd::launch(&options);
    let server = NotaryServer::start_with_trust_service(ca, None, endpoint.trust_service());
    server.wait_for_health(200);
    let client = tempfile::tempdir().unwrap();
    let dir = client.path();
    server.notary(dir, &["init", GUN]);
    assert_published(&server.publish_tag(dir, GUN, "v1"), &server);
    assert_eq!(
        root_key_ids(&server, GUN, "timestamp"),
        trustd_key_ids(&trustd, GUN, "timestamp")
    );
    trustd.restart();
    let _ = server.publish_tag(dir, GUN, "v2");
    server.publish_after_signer_restart(dir, GUN);
    let fresh = tempfile::tempdir().unwrap();
    let listed = String::from_utf8(server.notary(fresh.path(), &["list", GUN]).stdout).unwrap();
    let tags = notary::parse_notary_list(&listed);
    assert!(
        tags.contains_key("v1") && tags.contains_key("v2"),
        "{listed}"
    );

    // The TPM gone: notary-server's health says so (trustd reports NOT_SERVING); back: healthy
    // and publishing again, nothing restarted.
    tpm.kill();
    server.wait_for_health(503);
    tpm.resume();
    server.wait_for_health(200);
    let _ = server.publish_tag(dir, GUN, "v3");
    server.publish_after_signer_restart(dir, GUN);

    // An algorithm the TPM backend lacks is refused with the backend's reason.
    let (cert, key) = endpoint.ca.client_cert("direct", "/CN=notary-server");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let refused = runtime.block_on(async {
        let channel = endpoint.remote(&cert, &key).channel().await.unwrap();
        trustd_proto::notary_signer::key_management_client::KeyManagementClient::new(channel)
            .create_key(trustd_proto::notary_signer::CreateKeyRequest {
                algorithm: "ed25519".into(),
                gun: GUN.into(),
                role: "timestamp".into(),
            })
            .await
            .unwrap_err()
    });
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("ed25519"),
        "{}",
        refused.message()
    );
}

#[test]
fn two_trustd_on_one_token_serve_the_same_keys() {
    let hsm = SoftHsm::new("shared-token");
    let ca = Arc::new(TestCa::new());
    let (first_end, second_end) = (TlsEndpoint::new(ca.clone()), TlsEndpoint::new(ca.clone()));
    let trustd_with = |endpoint: &TlsEndpoint| {
        let mut options = Options::for_token(&hsm);
        options.extra = endpoint.trustd_tables("hsm");
        options.policy = format!("{ROOT_ONLY}{NOTARY_SERVER_RULE}");
        Trustd::start(&hsm, &options)
    };
    let mut first = trustd_with(&first_end);
    let second = trustd_with(&second_end);
    // notary-server reaches "the signer" through a load balancer.
    let balancer = Forwarder::start(first_end.port);
    let behind = TlsEndpoint {
        ca: ca.clone(),
        port: balancer.port,
    };
    let server = NotaryServer::start_with_trust_service(ca, None, behind.trust_service());
    server.wait_for_health(200);

    let client = tempfile::tempdir().unwrap();
    let dir = client.path();
    server.notary(dir, &["init", GUN]);
    assert_published(&server.publish_tag(dir, GUN, "v1"), &server);
    let timestamp = root_key_ids(&server, GUN, "timestamp");
    assert!(trustd_key_ids(&second, GUN, "timestamp").is_empty());

    // The first trustd dies; the balancer sends notary-server to the second, which finds the
    // key the first generated on the token.
    assert!(first.stop().success());
    balancer.switch_to(second_end.port);
    let _ = server.publish_tag(dir, GUN, "v2");
    server.publish_after_signer_restart(dir, GUN);
    assert_eq!(trustd_key_ids(&second, GUN, "timestamp"), timestamp);
    let fresh = tempfile::tempdir().unwrap();
    let listed = String::from_utf8(server.notary(fresh.path(), &["list", GUN]).stdout).unwrap();
    let tags = notary::parse_notary_list(&listed);
    assert!(
        tags.contains_key("v1") && tags.contains_key("v2"),
        "{listed}"
    );
    assert!(
        second
            .log_text()
            .contains("found a key another trustd generated"),
        "{}",
        second.log_text()
    );
}
