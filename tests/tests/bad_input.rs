//! Bad input gets a precise gRPC status, a clear CLI message and a non-zero exit code, and
//! trustd keeps serving everyone else.

use std::io::Write;

use trustd_e2e::*;
use trustd_proto::{self as pb, KeyAlgorithm, SignatureAlgorithm, SignatureEncoding};

/// Proves the daemon still serves: a fresh connection gets a good signature.
async fn still_serves(trustd: &Trustd, key: &str) {
    let mut client = trustd.client().await;
    let reply = client
        .sign(sign_request(
            key,
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureEncoding::Raw,
            b"still here".to_vec(),
        ))
        .await
        .expect("trustd keeps serving after bad input");
    assert_eq!(reply.into_inner().signature.len(), 64);
}

async fn started_with_key(label: &str, options: impl FnOnce(&mut Options)) -> (SoftHsm, Trustd) {
    let hsm = SoftHsm::new(label);
    let mut opts = Options::for_token(&hsm);
    options(&mut opts);
    let trustd = Trustd::start(&hsm, &opts);
    trustd
        .client()
        .await
        .generate_key(generate_request("good", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap();
    (hsm, trustd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_is_not_found() {
    let (_hsm, trustd) = started_with_key("unknown-key", |_| {}).await;
    let err = trustd
        .client()
        .await
        .sign(sign_request(
            "nope",
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureEncoding::Raw,
            b"m".to_vec(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        err.message().contains("trustctl key list"),
        "{}",
        err.message()
    );
    let out = trustd.run(&[
        "sign-blob",
        "--key",
        "nope",
        trustd.config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("no key \"nope\""), "{}", stderr(&out));
    // Unknown keys are audited too.
    let records = trustd.audit_records();
    assert!(records
        .iter()
        .any(|r| r["key_name"] == "nope" && r["result"] == "failed"));
    still_serves(&trustd, "good").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn algorithm_the_key_cannot_do_is_invalid_argument() {
    let (_hsm, trustd) = started_with_key("wrong-alg", |_| {}).await;
    let mut client = trustd.client().await;
    for (algorithm, encoding, expect) in [
        (
            SignatureAlgorithm::Ed25519,
            SignatureEncoding::Raw,
            "cannot make ed25519",
        ),
        (
            SignatureAlgorithm::RsaPssSha256,
            SignatureEncoding::Raw,
            "cannot make rsa-pss",
        ),
        (
            SignatureAlgorithm::Unspecified,
            SignatureEncoding::Raw,
            "set the signature algorithm",
        ),
    ] {
        let err = client
            .sign(sign_request("good", algorithm, encoding, b"m".to_vec()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(expect), "{}", err.message());
    }
    // DER applies to ECDSA only.
    client
        .generate_key(generate_request("ed", KeyAlgorithm::Ed25519))
        .await
        .unwrap();
    let err = client
        .sign(sign_request(
            "ed",
            SignatureAlgorithm::Ed25519,
            SignatureEncoding::Der,
            b"m".to_vec(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // Ed25519 cannot sign a digest; a digest must be 32 bytes.
    let mut digest_request = sign_request(
        "ed",
        SignatureAlgorithm::Ed25519,
        SignatureEncoding::Raw,
        vec![],
    );
    digest_request.payload = Some(pb::sign_request::Payload::Sha256Digest(vec![0; 32]));
    let err = client.sign(digest_request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err
        .message()
        .contains("Ed25519 cannot sign a pre-computed digest"));
    let mut short = sign_request(
        "good",
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureEncoding::Raw,
        vec![],
    );
    short.payload = Some(pb::sign_request::Payload::Sha256Digest(vec![0; 31]));
    let err = client.sign(short).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("32 bytes, not 31"));
    // Generating with an unspecified algorithm or a bad name.
    let err = client
        .generate_key(generate_request("x", KeyAlgorithm::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .generate_key(generate_request("../etc", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .generate_key(generate_request("good", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    still_serves(&trustd, "good").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_the_limit_is_refused() {
    let (_hsm, trustd) = started_with_key("big-payload", |o| o.max_payload_bytes = 1024).await;
    let mut client = trustd.client().await;
    let err = client
        .sign(sign_request(
            "good",
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureEncoding::Raw,
            vec![7; 1025],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message()
            .contains("exceeds trustd's limit of 1024 bytes"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("SHA-256 digest"));
    // Past the transport limit the daemon refuses to decode the message at all.
    let mut client = client.max_encoding_message_size(usize::MAX);
    let err = client
        .sign(sign_request(
            "good",
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureEncoding::Raw,
            vec![7; pb::MAX_MESSAGE_BYTES + 1],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted | tonic::Code::InvalidArgument
        ),
        "{err:?}"
    );
    still_serves(&trustd, "good").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_is_failed_precondition_and_never_retried() {
    let hsm = SoftHsm::new("wrong-pin");
    let mut options = Options::for_token(&hsm);
    options.pin = Some("000000".into());
    let trustd = Trustd::start(&hsm, &options);
    let mut client = trustd.client().await;
    for _ in 0..3 {
        let err = client
            .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("locked"), "{}", err.message());
        assert!(err.message().contains("PIN"), "{}", err.message());
    }
    // The token saw the wrong PIN once (at startup); later requests were refused without
    // trying it again.
    let tries = trustd
        .log_text()
        .lines()
        .filter(|l| l.contains("token not usable") && l.contains("CKR_PIN_INCORRECT"))
        .count();
    assert_eq!(tries, 1, "{}", trustd.log_text());
    // The PIN never appears in the log.
    assert!(!trustd.log_text().contains("000000"));
    // A locked token is there but unusable: 1, as the README's exit code table says.
    let out = trustd.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("locked"));

    // Fixing the PIN file is enough: no restart.
    std::fs::write(trustd.pin_file(), format!("{USER_PIN}\n")).unwrap();
    client
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .expect("the right PIN unlocks the token");
    still_serves(&trustd, "k").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pin_is_failed_precondition() {
    let hsm = SoftHsm::new("no-pin");
    let mut options = Options::for_token(&hsm);
    options.pin = None;
    let trustd = Trustd::start(&hsm, &options);
    let err = trustd
        .client()
        .await
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("cannot read the PIN"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_is_not_pkcs11_is_reported_precisely() {
    let hsm = SoftHsm::new("bad-module");
    let mut options = Options::for_token(&hsm);
    // A real shared library that is not a PKCS#11 module.
    options.module = find_libz();
    let trustd = Trustd::start(&hsm, &options);
    let err = trustd
        .client()
        .await
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("is not a loadable PKCS#11 module"),
        "{}",
        err.message()
    );
    let out = trustd.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("misconfigured"));
}

fn find_libz() -> String {
    for dir in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib",
    ] {
        let path = format!("{dir}/libz.so.1");
        if std::path::Path::new(&path).exists() {
            return path;
        }
    }
    panic!("libz.so.1 not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_label_not_found_is_unavailable_and_lists_what_is_there() {
    let hsm = SoftHsm::new("present");
    let mut options = Options::for_token(&hsm);
    options.token_label = "absent".into();
    let trustd = Trustd::start(&hsm, &options);
    let err = trustd
        .client()
        .await
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("\"absent\" not found"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("\"present\""), "{}", err.message());
    let out = trustd.run(&["key", "generate", "k"]);
    assert_eq!(out.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_socket_does_not_disturb_other_callers() {
    let (_hsm, trustd) = started_with_key("garbage", |_| {}).await;
    for garbage in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 4096],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\x00\x00\x00\x00garbage".to_vec(),
    ] {
        let mut stream = std::os::unix::net::UnixStream::connect(&trustd.socket).unwrap();
        let _ = stream.write_all(&garbage);
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // The daemon answers with an error frame or closes; either way it must not hang us.
        let mut buf = [0u8; 1024];
        let _ = std::io::Read::read(&mut stream, &mut buf);
    }
    // A connection that sends nothing and stays open does not block others either.
    let _idle = std::os::unix::net::UnixStream::connect(&trustd.socket).unwrap();
    still_serves(&trustd, "good").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // No daemon at the socket.
    let out = std::process::Command::new(bin("trustctl"))
        .args(["--socket"])
        .arg(dir.path().join("none.sock"))
        .args(["key", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("trustd is not running"),
        "{}",
        stderr(&out)
    );

    let (_hsm, trustd) = started_with_key("cli-errors", |_| {}).await;
    // A file that is not a key.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a key").unwrap();
    let out = trustd.run(&["key", "load", junk.to_str().unwrap(), "--name", "j"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no PEM private key") || stderr(&out).contains("not a PEM"),
        "{}",
        stderr(&out)
    );
    // A key of a curve trustd does not keep.
    let p384 = dir.path().join("p384.pem");
    assert!(std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out"
        ])
        .arg(&p384)
        .status()
        .unwrap()
        .success());
    let out = trustd.run(&["key", "load", p384.to_str().unwrap(), "--name", "p384"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("P-256"), "{}", stderr(&out));
    // A signature file that is not base64.
    let out = trustd.run(&[
        "verify-blob",
        "--key",
        "good",
        "--signature",
        junk.to_str().unwrap(),
        junk.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a base64 signature"));
    still_serves(&trustd, "good").await;
}

#[test]
fn key_generate_checks_where_the_public_key_goes_before_making_the_key() {
    let hsm = SoftHsm::new("generate-dir");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let out = trustd.run(&["key", "generate", "bob", "--dir", "/nonexistent/keys"]);
    assert_exit(&out, 2, "directory /nonexistent/keys does not exist");
    let listed: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "list", "--json"])).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    // A key trustd refuses to make leaves no empty NAME.pub behind.
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let out = trustd.run(&[
        "key",
        "generate",
        "bob",
        "--backend",
        "nope",
        "--dir",
        dir_arg,
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(!dir.path().join("bob.pub").exists());
    trustd.ok(&["key", "generate", "bob", "--dir", dir_arg]);
    assert!(std::fs::read_to_string(dir.path().join("bob.pub"))
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));
}

/// The README's exit-code table, one command per row, against one trustd.
#[test]
fn the_exit_code_table_holds() {
    let hsm = SoftHsm::new("exit-codes");
    let mut options = Options::for_token(&hsm);
    options.socket_mode = "0666".into();
    let trustd = Trustd::start(&hsm, &options);
    trustd.ok(&["key", "generate", "alice"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, b"signed bytes").unwrap();
    let data = data.to_str().unwrap();
    let signature = dir.path().join("data.sig");
    std::fs::write(
        &signature,
        trustd.ok(&["sign-blob", "--key", "alice", data]),
    )
    .unwrap();
    let forged = dir.path().join("forged.sig");
    std::fs::write(&forged, format!("{}\n", "A".repeat(88))).unwrap();
    let verify = |sig: &std::path::Path| {
        trustd.run(&[
            "verify-blob",
            "--key",
            "alice",
            "--signature",
            sig.to_str().unwrap(),
            data,
        ])
    };

    // 0 success.
    assert_eq!(verify(&signature).status.code(), Some(0));
    // 1 failure: a signature that does not verify.
    assert_eq!(
        verify(&forged).status.code(),
        Some(1),
        "{}",
        stderr(&verify(&forged))
    );
    // 2 bad usage or input: an invalid image reference, before any connection.
    assert_exit(
        &trustd.run(&["inspect", "registry.example.test/App:v1"]),
        2,
        "",
    );
    // 3 trustd unreachable: no socket there.
    let out = std::process::Command::new(bin("trustctl"))
        .args(["--socket", "/nonexistent/trustd.sock", "key", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // 4 permission denied: a uid no policy rule names.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin("trustctl"))
        .arg("--socket")
        .arg(&trustd.socket)
        .args(["key", "public", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // 5 not found: no such key.
    assert_eq!(trustd.run(&["key", "public", "bob"]).status.code(), Some(5));
}
