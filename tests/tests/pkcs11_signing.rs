//! trustd's PKCS#11 backend on two real modules, SoftHSM2 and tpm2-pkcs11 (over swtpm): the
//! main path, driven through trustctl and the gRPC API, with every signature checked by an
//! implementation other than trustd's.

use std::io::Write;
use std::process::Stdio;

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use trustd_e2e::*;
use trustd_proto::{KeyAlgorithm, SignatureAlgorithm, SignatureEncoding};

/// Runs each named test body once on a SoftHSM2 token and once on a tpm2-pkcs11 token, as
/// `NAME::softhsm2` and `NAME::tpm2_pkcs11`.
macro_rules! on_both_modules {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn softhsm2() {
                super::$name(&trustd_e2e::SoftHsm::new("t"));
            }
            #[test]
            fn tpm2_pkcs11() {
                super::$name(&trustd_e2e::tpm::Tpm2Pkcs11::new("t"));
            }
        }
    )*};
}

on_both_modules!(
    generate_list_export_sign_and_verify_every_algorithm,
    large_files_are_signed_by_digest,
    generated_private_keys_cannot_leave_the_token,
    sixteen_concurrent_clients_sign_and_every_signature_verifies,
    restarted_trustd_signs_with_the_same_keys,
    delete_removes_the_key_from_token_and_inventory,
);

fn b64(data: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text.trim()).unwrap()
}

/// Verifies with openssl: a verifier that shares no code with trustd or trustctl.
fn openssl_verifies(
    pub_pem: &std::path::Path,
    sig_der: &[u8],
    data: &std::path::Path,
    pss: bool,
) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let sig = dir.path().join("sig.bin");
    std::fs::write(&sig, sig_der).unwrap();
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["dgst", "-sha256"]);
    if pss {
        cmd.args([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
        ]);
    }
    let out = cmd
        .arg("-verify")
        .arg(pub_pem)
        .arg("-signature")
        .arg(&sig)
        .arg(data)
        .output()
        .unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

fn generate_list_export_sign_and_verify_every_algorithm(hsm: &dyn Pkcs11Token) {
    let trustd = Trustd::start(hsm, &Options::for_token(hsm));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("artifact.tar");
    std::fs::write(&data, b"release artifact bytes").unwrap();

    let mut generated = Vec::new();
    for (name, algorithm, pss) in [
        ("ec", "ecdsa-p256", false),
        ("ed", "ed25519", false),
        ("rsa", "rsa-3072", true),
    ] {
        if !hsm.algorithms().contains(&algorithm) {
            // A mechanism the module lacks is named, not an obscure failure later.
            let out = trustd.run(&["key", "generate", name, "--algorithm", algorithm]);
            assert_eq!(out.status.code(), Some(1), "{algorithm}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("does not offer CKM_"),
                "{}",
                stderr(&out)
            );
            continue;
        }
        generated.push(algorithm);
        let out = trustd.ok(&["key", "generate", name, "--algorithm", algorithm]);
        assert!(out.contains("Key ID: "), "{out}");
        let pem_path = dir.path().join(format!("{name}.pub"));
        trustd.ok(&[
            "key",
            "public",
            name,
            "--output",
            pem_path.to_str().unwrap(),
        ]);
        let sig_path = dir.path().join(format!("{name}.sig"));
        trustd.ok(&[
            "sign-blob",
            "--key",
            name,
            "--output",
            sig_path.to_str().unwrap(),
            data.to_str().unwrap(),
        ]);
        let sig = unb64(&std::fs::read_to_string(&sig_path).unwrap());

        if algorithm == "ed25519" {
            // openssl dgst cannot do pure Ed25519: check with ed25519-dalek instead.
            use ed25519_dalek::pkcs8::DecodePublicKey as _;
            let pem = std::fs::read_to_string(&pem_path).unwrap();
            let key = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem).unwrap();
            let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
            key.verify_strict(b"release artifact bytes", &sig).unwrap();
        } else {
            assert!(
                openssl_verifies(&pem_path, &sig, &data, pss),
                "openssl rejects the {algorithm} signature"
            );
        }
        // trustctl's own verifier agrees, by key name and by PEM file...
        trustd.ok(&[
            "verify-blob",
            "--key",
            name,
            "--signature",
            sig_path.to_str().unwrap(),
            data.to_str().unwrap(),
        ]);
        trustd.ok(&[
            "verify-blob",
            "--public-key",
            pem_path.to_str().unwrap(),
            "--signature",
            sig_path.to_str().unwrap(),
            data.to_str().unwrap(),
        ]);
        // ...and refuses a tampered file with exit code 1.
        let tampered = dir.path().join("tampered");
        std::fs::write(&tampered, b"release artifact byteS").unwrap();
        let out = trustd.run(&[
            "verify-blob",
            "--key",
            name,
            "--signature",
            sig_path.to_str().unwrap(),
            tampered.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("verification failed"));
    }

    let listed: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "list", "--json"])).unwrap();
    let rows = listed.as_array().unwrap();
    let algorithms: Vec<_> = rows
        .iter()
        .map(|r| r["algorithm"].as_str().unwrap())
        .collect();
    assert_eq!(algorithms, generated);
    assert!(rows
        .iter()
        .all(|r| r["generated_on_device"] == true && r["backend"] == "hsm"));
    let table = trustd.ok(&["key", "list"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains(rows[0]["key_id"].as_str().unwrap()));
}

fn large_files_are_signed_by_digest(hsm: &dyn Pkcs11Token) {
    let mut options = Options::for_token(hsm);
    options.max_payload_bytes = 4096;
    let trustd = Trustd::start(hsm, &options);
    trustd.ok(&["key", "generate", "k"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("big");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&data, &bytes).unwrap();
    let sig = unb64(&trustd.ok(&["sign-blob", "--key", "k", data.to_str().unwrap()]));
    let pem = trustd.ok(&["key", "public", "k"]);
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).unwrap();
    let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
    key.verify_prehash(&Sha256::digest(&bytes), &sig).unwrap();
    // The audit log shows the digest of what was signed, not the data.
    let records = trustd.audit_records();
    let sign = records.iter().rev().find(|r| r["event"] == "sign").unwrap();
    assert_eq!(sign["payload_sha256"], hex::encode(Sha256::digest(&bytes)));
    assert!(sign.get("payload_bytes").is_none());
}

fn generated_private_keys_cannot_leave_the_token(hsm: &dyn Pkcs11Token) {
    let trustd = Trustd::start(hsm, &Options::for_token(hsm));
    trustd.ok(&["key", "generate", "sealed"]);

    // An independent PKCS#11 client sees the key as sensitive and never extractable...
    let listing = hsm.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    let listing_text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{}", stderr(&listing));
    assert!(
        listing_text.contains("label:      sealed"),
        "{listing_text}"
    );
    assert!(listing_text.contains("sensitive"), "{listing_text}");
    assert!(listing_text.contains("never extractable"), "{listing_text}");
    // ...and refuses to hand out the secret to a logged-in PKCS#11 application.
    for label in ["sealed", "sealed-rsa"] {
        if label == "sealed-rsa" {
            if !hsm.algorithms().contains(&"rsa-3072") {
                continue;
            }
            trustd.ok(&["key", "generate", label, "--algorithm", "rsa-3072"]);
        }
        let probe = hsm.probe_private_key(label);
        assert_eq!(probe["secret_bytes_returned"], 0, "{probe}");
        assert_ne!(probe["value"], serde_json::json!("available:32"), "{probe}");
        // SoftHSM keeps the value and refuses it (sensitive); tpm2-pkcs11's object has no
        // such attribute at all (the private key exists only wrapped by the TPM).
        let withheld = |v: &serde_json::Value| v == "sensitive" || v == "type-invalid";
        assert!(
            withheld(&probe["value"]) && withheld(&probe["private_exponent"]),
            "{probe}"
        );
        assert_eq!(probe["sensitive"], true, "{probe}");
        assert_eq!(probe["extractable"], false, "{probe}");
        assert_eq!(probe["never_extractable"], true, "{probe}");
        assert_eq!(probe["private"], true, "{probe}");
    }
}

#[test]
fn imported_keys_leave_no_trace_and_state_holds_only_public_data() {
    let hsm = SoftHsm::new("no-export");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    trustd.ok(&["key", "generate", "sealed"]);

    // Import a key whose private scalar we know, then search every file trustd wrote for it.
    let secret = p256::SecretKey::random(&mut rand::thread_rng());
    let scalar = secret.to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("known.pem");
    use p256::pkcs8::EncodePrivateKey;
    std::fs::write(
        &pem_path,
        secret.to_pkcs8_pem(Default::default()).unwrap().as_bytes(),
    )
    .unwrap();
    trustd.ok(&["key", "load", pem_path.to_str().unwrap(), "--name", "known"]);
    trustd.ok(&["sign-blob", "--key", "known", pem_path.to_str().unwrap()]);

    let needles = [
        scalar.to_vec(),
        hex::encode(scalar).into_bytes(),
        b64(&scalar).into_bytes(),
    ];
    let mut files = vec![
        trustd.audit.clone(),
        trustd.log.clone(),
        trustd.config.clone(),
    ];
    for entry in std::fs::read_dir(&trustd.state_dir).unwrap() {
        files.push(entry.unwrap().path());
    }
    for file in &files {
        let content = std::fs::read(file).unwrap();
        for needle in &needles {
            assert!(
                !content
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice()),
                "{} contains private key material",
                file.display()
            );
        }
    }
    // The inventory holds exactly the public fields.
    let inventory: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trustd.state_dir.join("inventory.json")).unwrap())
            .unwrap();
    for key in inventory["keys"].as_array().unwrap() {
        let mut fields: Vec<_> = key.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "algorithm",
                "backend",
                "created",
                "device",
                "key_id",
                "name",
                "origin",
                "public_key",
                "scope"
            ]
        );
    }
}

#[test]
fn another_uid_is_denied_and_audited_while_root_keeps_signing() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs trustctl as `nobody` through setpriv, which needs root (CI runs as root)"
    );
    let hsm = SoftHsm::new("authz");
    let mut options = Options::for_token(&hsm);
    options.socket_mode = "0666".into();
    let trustd = Trustd::start(&hsm, &options);
    trustd.ok(&["key", "generate", "release"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, b"x").unwrap();
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();

    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin("trustctl"))
        .arg("--socket")
        .arg(&trustd.socket)
        .args(["sign-blob", "--key", "release"])
        .arg(&data)
        .output()
        .unwrap();
    // trustctl first asks for the public key (a `list` operation): denied too.
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uid 65534 may not"),
        "{}",
        stderr(&out)
    );

    // The gRPC Sign call itself, as nobody, is denied and audited with the kernel's uid.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin("trustd-e2e-client"))
        .arg(&trustd.socket)
        .arg("release")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PermissionDenied"),
        "{} / {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let records = trustd.audit_records();
    let denied = records
        .iter()
        .find(|r| r["event"] == "sign" && r["caller_uid"] == 65534)
        .expect("denied sign request audited");
    assert_eq!(denied["result"], "denied");
    assert_eq!(denied["key_name"], "release");
    assert_eq!(
        denied["payload_sha256"],
        hex::encode(Sha256::digest(b"from nobody"))
    );

    // Root still signs.
    trustd.ok(&["sign-blob", "--key", "release", data.to_str().unwrap()]);
}

fn sixteen_concurrent_clients_sign_and_every_signature_verifies(hsm: &dyn Pkcs11Token) {
    // SoftHSM signs in microseconds; tpm2-pkcs11 goes to the TPM for every signature.
    let rounds = if hsm.module() == MODULE { 500 } else { 20 };
    let trustd = Trustd::start(hsm, &Options::for_token(hsm));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(sign_concurrently(&trustd, rounds));
    let signs = trustd
        .audit_records()
        .iter()
        .filter(|r| r["event"] == "sign" && r["result"] == "allowed")
        .count();
    assert_eq!(
        signs,
        16 * rounds as usize,
        "one audit record per signature"
    );
}

async fn sign_concurrently(trustd: &Trustd, rounds: u32) {
    let mut client = trustd.client().await;
    let key = client
        .generate_key(generate_request("ci", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    let verifying = p256::ecdsa::VerifyingKey::from_public_key_der(&key.public_key_der).unwrap();

    let mut tasks = Vec::new();
    for client_no in 0..16u32 {
        let mut client = trustd.client().await; // one connection per client
        let key_id = key.key_id.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..rounds {
                let message = format!("client {client_no} message {i}").into_bytes();
                let der = i % 2 == 0;
                let encoding = if der {
                    SignatureEncoding::Der
                } else {
                    SignatureEncoding::Raw
                };
                let reply = client
                    .sign(sign_request(
                        "ci",
                        SignatureAlgorithm::EcdsaP256Sha256,
                        encoding,
                        message.clone(),
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(reply.key_id, key_id);
                let sig = if der {
                    p256::ecdsa::Signature::from_der(&reply.signature).unwrap()
                } else {
                    assert_eq!(reply.signature.len(), 64);
                    p256::ecdsa::Signature::from_slice(&reply.signature).unwrap()
                };
                verifying
                    .verify_prehash(&Sha256::digest(&message), &sig)
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

fn restarted_trustd_signs_with_the_same_keys(hsm: &dyn Pkcs11Token) {
    let mut trustd = Trustd::start(hsm, &Options::for_token(hsm));
    trustd.ok(&["key", "generate", "persistent"]);
    let before = trustd.ok(&["key", "public", "persistent"]);
    let listed_before = trustd.ok(&["key", "list", "--json"]);

    trustd.restart();

    assert_eq!(trustd.ok(&["key", "public", "persistent"]), before);
    assert_eq!(trustd.ok(&["key", "list", "--json"]), listed_before);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    std::fs::write(&data, b"after restart").unwrap();
    let pem = dir.path().join("k.pub");
    std::fs::write(&pem, &before).unwrap();
    let sig = unb64(&trustd.ok(&["sign-blob", "--key", "persistent", data.to_str().unwrap()]));
    assert!(openssl_verifies(&pem, &sig, &data, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_removed_gives_unavailable_and_trustd_recovers_when_it_is_back() {
    let hsm = SoftHsm::new("removable");
    let mut trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let mut client = trustd.client().await;
    client
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap();
    let sign = || {
        sign_request(
            "k",
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureEncoding::Raw,
            b"m".to_vec(),
        )
    };
    client.sign(sign()).await.unwrap();

    let tokens = hsm.token_dir();
    let moved = hsm.dir.path().join("tokens.unplugged");
    std::fs::rename(&tokens, &moved).unwrap();
    std::fs::create_dir(&tokens).unwrap();

    let err = client.sign(sign()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let again = client.sign(sign()).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::Unavailable, "{again:?}");
    // The daemon is still there and says why.
    let out = trustd.run(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unavailable"));
    assert!(trustd.is_running());

    std::fs::remove_dir(&tokens).unwrap();
    std::fs::rename(&moved, &tokens).unwrap();
    // Reconnection is rate-limited to one attempt per 500 ms.
    let mut recovered = false;
    for _ in 0..50 {
        if client.sign(sign()).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "trustd did not recover:\n{}", trustd.log_text());
}

#[test]
fn imported_pem_keys_sign_and_verify() {
    use p256::pkcs8::EncodePrivateKey;
    let hsm = SoftHsm::new("import");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, b"imported key data").unwrap();

    let p256_key = p256::SecretKey::random(&mut rand::thread_rng());
    let verifying = p256::ecdsa::VerifyingKey::from(p256_key.public_key());
    let check_p256 = |name: &str| {
        let sig = unb64(&trustd.ok(&["sign-blob", "--key", name, data.to_str().unwrap()]));
        let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
        verifying
            .verify_prehash(&Sha256::digest(b"imported key data"), &sig)
            .unwrap();
    };

    // Unencrypted PKCS#8.
    let pkcs8 = dir.path().join("pkcs8.pem");
    std::fs::write(
        &pkcs8,
        p256_key
            .to_pkcs8_pem(Default::default())
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let out = trustd.ok(&["key", "load", pkcs8.to_str().unwrap(), "--name", "pkcs8"]);
    assert!(out.contains("non-extractable"), "{out}");
    check_p256("pkcs8");

    // SEC1 "EC PRIVATE KEY", as openssl ecparam writes it.
    let sec1 = dir.path().join("sec1.pem");
    std::fs::write(
        &sec1,
        p256_key.to_sec1_pem(Default::default()).unwrap().as_bytes(),
    )
    .unwrap();
    trustd.ok(&["key", "load", sec1.to_str().unwrap(), "--name", "sec1"]);
    check_p256("sec1");

    // Encrypted PKCS#8 written by openssl, passphrase on stdin (never in argv).
    let encrypted = dir.path().join("enc.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:s3cret phrase",
            "-in",
        ])
        .arg(&pkcs8)
        .arg("-out")
        .arg(&encrypted)
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = trustd
        .trustctl()
        .args([
            "key",
            "load",
            encrypted.to_str().unwrap(),
            "--name",
            "encrypted",
            "--passphrase-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret phrase\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    check_p256("encrypted");

    // A wrong passphrase is refused, and nothing is created.
    let mut child = trustd
        .trustctl()
        .args([
            "key",
            "load",
            encrypted.to_str().unwrap(),
            "--name",
            "wrong",
            "--passphrase-stdin",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"not it\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    assert!(!trustd.ok(&["key", "list"]).contains("wrong"));

    // Ed25519 PKCS#8 from openssl.
    let ed = dir.path().join("ed.pem");
    assert!(std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&ed)
        .status()
        .unwrap()
        .success());
    trustd.ok(&["key", "load", ed.to_str().unwrap(), "--name", "ed"]);
    let sig = dir.path().join("ed.sig");
    trustd.ok(&[
        "sign-blob",
        "--key",
        "ed",
        "-o",
        sig.to_str().unwrap(),
        data.to_str().unwrap(),
    ]);
    let pubkey = dir.path().join("ed.pub");
    assert!(std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&ed)
        .arg("-out")
        .arg(&pubkey)
        .status()
        .unwrap()
        .success());
    trustd.ok(&[
        "verify-blob",
        "--public-key",
        pubkey.to_str().unwrap(),
        "--signature",
        sig.to_str().unwrap(),
        data.to_str().unwrap(),
    ]);

    let listed: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "list", "--json"])).unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["generated_on_device"] == false));
}

fn delete_removes_the_key_from_token_and_inventory(hsm: &dyn Pkcs11Token) {
    let trustd = Trustd::start(hsm, &Options::for_token(hsm));
    trustd.ok(&["key", "generate", "doomed"]);
    trustd.ok(&["key", "generate", "kept"]);
    // Without --yes and without a terminal, nothing happens.
    let out = trustd
        .trustctl()
        .args(["key", "delete", "doomed"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(trustd.ok(&["key", "list"]).contains("doomed"));
    // A repository's key: the refusal says what deleting it would break.
    trustd.ok(&[
        "key",
        "generate",
        "app-targets",
        "--gun",
        "reg.test/app",
        "--role",
        "targets",
    ]);
    let out = trustd
        .trustctl()
        .args(["key", "delete", "app-targets"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the targets key of reg.test/app")
            && stderr(&out).contains("trustctl key rotate reg.test/app targets"),
        "{}",
        stderr(&out)
    );

    trustd.ok(&["key", "delete", "doomed", "--yes"]);
    let list = trustd.ok(&["key", "list"]);
    assert!(!list.contains("doomed") && list.contains("kept"), "{list}");
    let objects = hsm.pkcs11_tool(&["--list-objects"]);
    let objects = String::from_utf8_lossy(&objects.stdout);
    assert!(!objects.contains("doomed"), "{objects}");
    assert!(objects.contains("kept"), "{objects}");
    let out = trustd.run(&[
        "sign-blob",
        "--key",
        "doomed",
        trustd.config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}

#[test]
fn a_module_that_does_not_import_keys_says_so_and_keeps_nothing() {
    use p256::pkcs8::EncodePrivateKey;
    let hsm = trustd_e2e::tpm::Tpm2Pkcs11::new("t");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let secret = p256::SecretKey::random(&mut rand::thread_rng());
    let pem = trustd.work.path().join("key.pem");
    std::fs::write(
        &pem,
        secret.to_pkcs8_pem(Default::default()).unwrap().as_bytes(),
    )
    .unwrap();
    let out = trustd.run(&["key", "load", pem.to_str().unwrap(), "--name", "imported"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("does not import ecdsa-p256 private keys"),
        "{message}"
    );
    assert!(message.contains("CKR_"), "{message}");
    assert!(message.contains("trustctl key generate"), "{message}");
    assert!(trustd.ok(&["key", "list"]).contains("No keys"));
    let objects = hsm.pkcs11_tool(&["--list-objects"]);
    assert!(
        !String::from_utf8_lossy(&objects.stdout).contains("imported"),
        "{}",
        String::from_utf8_lossy(&objects.stdout)
    );
}
