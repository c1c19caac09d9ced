//! Signing from another machine over trustd's mutual-TLS listener: CI runners known by their
//! client certificates (a SPIFFE ID here), trustctl's `--trustd https://...`, and every way a
//! connection can be wrong, each refused while trustd keeps serving the others.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trustd_e2e::ca::TestCa;
use trustd_e2e::dct::Dct;
use trustd_e2e::notary::NotaryServer;
use trustd_e2e::signer_bench::{TlsEndpoint, NOTARY_SERVER_RULE};
use trustd_e2e::*;
use trustd_proto::notary_signer as ns;

const GUN: &str = "registry.example.test/team/app";

/// The CI fleet may sign with its release key and its repository's targets key.
const FLEET_RULE: &str = r#"
[[policy.rule]]
description = "CI fleet"
clients = ["spiffe://example.org/ci/*"]
keys = ["ci-release", "registry.example.test/team/app/targets"]
operations = ["sign", "list"]
"#;

struct Fleet {
    endpoint: TlsEndpoint,
    bench: Dct,
    runner: (PathBuf, PathBuf),
}

impl Fleet {
    fn start(label: &str) -> Fleet {
        let ca = Arc::new(TestCa::new());
        let hsm = SoftHsm::new(label);
        let endpoint = TlsEndpoint::new(ca.clone());
        let mut options = Options::for_token(&hsm);
        options.extra = endpoint.trustd_tables("hsm");
        options.policy = format!("{ROOT_ONLY}{FLEET_RULE}{NOTARY_SERVER_RULE}");
        options.limits = "handshake_timeout_secs = 2".into();
        let trustd = Trustd::start(&hsm, &options);
        let server = NotaryServer::start_with(ca.clone(), None);
        let runner = ca.issue(
            "runner",
            "/CN=runner-7",
            "extendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://example.org/ci/runner-7",
            2,
        );
        Fleet {
            endpoint,
            bench: Dct::assemble(hsm, trustd, server),
            runner,
        }
    }

    /// trustctl on a "remote" machine: no socket, the runner's certificate (or `cert`).
    fn remote(&self, cert: &(PathBuf, PathBuf), args: &[&str]) -> Output {
        Command::new(bin("trustctl"))
            .args(self.endpoint.trustctl_args(&cert.0, &cert.1))
            .args(args)
            .env_remove("TRUSTD_SOCKET")
            .env("XDG_CONFIG_HOME", self.bench.trust_dir.path())
            .current_dir(self.bench.trust_dir.path())
            .output()
            .unwrap()
    }

    fn remote_ok(&self, args: &[&str]) -> String {
        let out = self.remote(&self.runner, args);
        assert!(out.status.success(), "trustctl {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    async fn notary_signer(&self, cert: &(PathBuf, PathBuf)) -> tonic::transport::Channel {
        self.endpoint
            .remote(&cert.0, &cert.1)
            .channel()
            .await
            .expect("a TLS channel to trustd")
    }
}

#[test]
fn a_ci_runner_signs_blobs_and_tags_with_its_certificate() {
    let fleet = Fleet::start("remote-sign");
    let trustd = &fleet.bench.trustd;
    trustd.ok(&["key", "generate", "ci-release"]);
    fleet.bench.ok(&["init", GUN]);

    let blob = fleet.bench.trust_dir.path().join("artifact.bin");
    std::fs::write(&blob, b"release artifact").unwrap();
    let signature = fleet.remote_ok(&["sign-blob", "--key", "ci-release", blob.to_str().unwrap()]);
    let signature_file = fleet.bench.trust_dir.path().join("artifact.sig");
    std::fs::write(&signature_file, signature.trim()).unwrap();
    trustd.ok(&[
        "verify-blob",
        "--key",
        "ci-release",
        "--signature",
        signature_file.to_str().unwrap(),
        blob.to_str().unwrap(),
    ]);

    // A tag signed remotely (notary-server and trust cache as any workstation has them).
    let digest = format!("sha256:{}", "cd".repeat(32));
    let sign = vec![
        "sign".to_owned(),
        format!("{GUN}:2.0@{digest}"),
        "--size".into(),
        "42".into(),
        "--server".into(),
        fleet.bench.server.url.clone(),
        "--tls-ca".into(),
        fleet.bench.server.ca.ca_cert().display().to_string(),
        "--trust-dir".into(),
        fleet.bench.trust_dir.path().display().to_string(),
    ];
    let args: Vec<&str> = sign.iter().map(String::as_str).collect();
    fleet.remote_ok(&args);
    let tags = fleet.bench.notary_tags(GUN);
    assert_eq!(tags["2.0"].digest, digest[7..], "{tags:?}");

    // The audit trail names the runner by its certificate, and only the runner's records
    // carry a remote identity.
    let remote: Vec<_> = trustd
        .audit_records()
        .into_iter()
        .filter(|r| r["event"] == "sign" && r["caller_identity"] == "CN=runner-7")
        .collect();
    let keys: Vec<_> = remote
        .iter()
        .map(|r| r["key_name"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"ci-release"), "{remote:?}");
    assert!(
        keys.contains(&"registry.example.test/team/app/targets"),
        "{remote:?}"
    );
    assert!(remote
        .iter()
        .all(|r| r["result"] == "allowed" && r["caller_uid"].is_null()));

    // What the fleet may not do: another key (and the denial is audited with its name).
    let out = fleet.remote(
        &fleet.runner,
        &[
            "sign-blob",
            "--key",
            "registry.example.test/team/app/root",
            blob.to_str().unwrap(),
        ],
    );
    assert_exit(&out, 4, "client CN=runner-7 may not");
}

/// Waits up to `within` for the server to close `stream` (EOF or an error).
fn closed_within(stream: &mut std::net::TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_connection_is_refused_and_trustd_keeps_serving() {
    let fleet = Fleet::start("remote-refusals");
    let trustd = &fleet.bench.trustd;
    trustd.ok(&["key", "generate", "ci-release"]);
    let ca = &fleet.endpoint.ca;
    let blob = fleet.bench.trust_dir.path().join("blob");
    std::fs::write(&blob, b"x").unwrap();
    let sign_blob = ["sign-blob", "--key", "ci-release", blob.to_str().unwrap()];

    // Certificates trustd must refuse in the handshake: another CA's, an expired one, one
    // not for client authentication. trustctl says it could not talk to trustd (exit 3).
    let other_ca = TestCa::new();
    let foreign = other_ca.client_cert("foreign", "/CN=runner-7");
    let expired = ca.issue(
        "expired",
        "/CN=runner-7",
        "extendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://example.org/ci/runner-7",
        -1,
    );
    let server_only = ca.issue(
        "server-only",
        "/CN=runner-7",
        "extendedKeyUsage=serverAuth\nsubjectAltName=URI:spiffe://example.org/ci/runner-7",
        2,
    );
    for (what, cert, alert) in [
        ("another CA", &foreign, "refused this client"),
        ("expired", &expired, "CertificateExpired"),
        ("no clientAuth", &server_only, "UnsupportedCertificate"),
    ] {
        let out = fleet.remote(cert, &sign_blob);
        assert_eq!(out.status.code(), Some(3), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(alert), "{what}: {}", stderr(&out));
    }
    // No certificate at all (curl, which can leave it out): the handshake fails.
    let curl = Command::new("curl")
        .args(["--silent", "--http2", "--cacert"])
        .arg(ca.ca_cert())
        .arg(format!("{}/", fleet.endpoint.url()))
        .output()
        .unwrap();
    assert!(
        !curl.status.success(),
        "a client without a certificate got an answer"
    );

    // A client no rule names: PermissionDenied, audited with its identity.
    let stranger = ca.client_cert("stranger", "/CN=stranger");
    let out = fleet.remote(&stranger, &sign_blob);
    assert_exit(&out, 4, "client CN=stranger may not");
    let denied = trustd
        .audit_records()
        .into_iter()
        .any(|r| r["caller_identity"] == "CN=stranger" && r["result"] == "denied");
    assert!(denied, "the stranger's denial is not in the audit trail");

    // notary-signer's API: an algorithm trustd does not make, an unknown key, a payload over
    // the limit.
    let notary_server = ca.client_cert("notary-server-client", "/CN=notary-server");
    let channel = fleet.notary_signer(&notary_server).await;
    let mut keys = ns::key_management_client::KeyManagementClient::new(channel.clone());
    let mut signer = ns::signer_client::SignerClient::new(channel);
    let rsa = keys
        .create_key(ns::CreateKeyRequest {
            algorithm: "rsa".into(),
            gun: GUN.into(),
            role: "timestamp".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(rsa.code(), tonic::Code::InvalidArgument);
    assert!(rsa.message().contains("key_algorithm"), "{}", rsa.message());
    let unknown = signer
        .sign(ns::SignatureRequest {
            key_id: Some(ns::KeyId {
                id: "ab".repeat(32),
            }),
            content: b"{}".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    let created = keys
        .create_key(ns::CreateKeyRequest {
            algorithm: "ed25519".into(),
            gun: GUN.into(),
            role: "timestamp".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        created.public_key.len(),
        32,
        "Ed25519 keys go as 32 raw bytes"
    );
    let key_id = created.key_info.unwrap().key_id.unwrap();
    let signed = signer
        .sign(ns::SignatureRequest {
            key_id: Some(key_id.clone()),
            content: b"{\"signed\":{}}".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.algorithm.unwrap().algorithm, "eddsa");
    let verifying =
        ed25519_dalek::VerifyingKey::from_bytes(&created.public_key.try_into().unwrap()).unwrap();
    verifying
        .verify_strict(
            b"{\"signed\":{}}",
            &ed25519_dalek::Signature::from_slice(&signed.content).unwrap(),
        )
        .expect("the Ed25519 signature verifies");
    let oversized = signer
        .sign(ns::SignatureRequest {
            key_id: Some(key_id),
            content: vec![b'a'; 2 * 1024 * 1024],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            oversized.code(),
            tonic::Code::ResourceExhausted | tonic::Code::InvalidArgument
        ),
        "{oversized:?}"
    );

    // A connection that never starts its handshake, and one that finishes it and then sends
    // nothing: both closed within the handshake timeout (2 s here), not held forever.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", fleet.endpoint.port)).unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(6)),
        "a silent TCP connection stayed open"
    );
    let runner = fleet.endpoint.remote(&fleet.runner.0, &fleet.runner.1);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(runner.tls_config().unwrap()));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", fleet.endpoint.port))
        .await
        .unwrap();
    let mut tls = connector
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .expect("the handshake succeeds");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(6), async {
        use tokio::io::AsyncReadExt;
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "a TLS connection that sent nothing stayed open"
    );

    // Through all of it, the runner is served.
    fleet.remote_ok(&sign_blob);
}

#[test]
fn a_missing_server_certificate_stops_trustd_at_startup_naming_the_file() {
    let hsm = SoftHsm::new("remote-missing-cert");
    let endpoint = TlsEndpoint::new(Arc::new(TestCa::new()));
    let mut options = Options::for_token(&hsm);
    options.extra = endpoint
        .listener_table()
        .replace("server.crt", "no-such-server.crt");
    let mut trustd = Trustd::configure(&hsm, &options);
    let check = Command::new(bin("trustd"))
        .arg("--config")
        .arg(&trustd.config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(2),
        "--check-config passed a missing certificate"
    );
    assert!(
        stderr(&check).contains("no-such-server.crt"),
        "{}",
        stderr(&check)
    );
    trustd.spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while trustd.is_running() {
        assert!(
            Instant::now() < deadline,
            "trustd kept running without its certificate"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = trustd.log_text();
    assert!(
        log.contains("tls_listener.certificate") && log.contains("no-such-server.crt"),
        "{log}"
    );
}
