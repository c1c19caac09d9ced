//! trustd's TPM backend against a real software TPM (swtpm, manufactured with EK certificates
//! by swtpm_setup), driven through trustctl and the gRPC API.

use der::Decode;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use trustctl::attestation::{check_tpm_evidence, AttestationError};
use trustd_e2e::tpm::{secret_file, Swtpm};
use trustd_e2e::*;
use trustd_proto::{KeyAlgorithm, SignatureAlgorithm, SignatureEncoding};

/// trustd with one TPM backend named "tpm"; `extra` adds TOML lines to the backend table.
fn trustd_on(tpm: &Swtpm, extra: &str) -> Trustd {
    Trustd::launch(&Options::with_backends(format!(
        "[[backend]]\ntype = \"tpm\"\nname = \"tpm\"\ntcti = \"{}\"\n{extra}\n",
        tpm.tcti()
    )))
}

fn ecdsa_sign(message: &[u8]) -> trustd_proto::SignRequest {
    sign_request(
        "k",
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureEncoding::Raw,
        message.to_vec(),
    )
}

fn verify(public_key_der: &[u8], message: &[u8], raw: &[u8]) {
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(public_key_der).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(raw).unwrap();
    key.verify_prehash(&Sha256::digest(message), &signature)
        .expect("the TPM's signature verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generates_signs_and_signs_again_after_a_restart() {
    let tpm = Swtpm::start();
    let mut trustd = trustd_on(&tpm, "");
    let mut client = trustd.client().await;
    let key = generate_key(&mut client, "k", KeyAlgorithm::EcdsaP256).await;
    assert_eq!(key.backend_kind, trustd_proto::BackendKind::Tpm as i32);
    let signature = client
        .sign(ecdsa_sign(b"hello"))
        .await
        .unwrap()
        .into_inner();
    verify(&key.public_key_der, b"hello", &signature.signature);
    // The same key in DER, as X.509 and cosign want it.
    let mut der = ecdsa_sign(b"hello");
    der.encoding = SignatureEncoding::Der as i32;
    let der = client.sign(der).await.unwrap().into_inner().signature;
    let der = p256::ecdsa::Signature::from_der(&der).unwrap();
    verify(&key.public_key_der, b"hello", &der.to_bytes());
    let status = trustd.ok(&["status"]);
    assert!(status.contains("TPM 2.0"), "{status}");
    assert!(status.contains("ecdsa-p256, rsa-3072"), "{status}");
    assert!(status.contains("queue:      0 of 32 waiting"), "{status}");

    // The inventory holds the TPM-wrapped blobs and public data only.
    let inventory = std::fs::read_to_string(trustd.state_dir.join("inventory.json")).unwrap();
    assert!(inventory.contains("\"type\": \"tpm\""), "{inventory}");

    trustd.restart();
    let mut client = trustd.client().await;
    let again = client
        .sign(ecdsa_sign(b"after"))
        .await
        .unwrap()
        .into_inner();
    verify(&key.public_key_der, b"after", &again.signature);

    // A crashed trustd leaves its objects in a TPM without a resource manager; the next one
    // clears them instead of running out of object slots.
    trustd.signal(nix::sys::signal::Signal::SIGKILL);
    trustd.stop();
    trustd.spawn();
    trustd.wait_ready();
    let mut client = trustd.client().await;
    let crashed = client
        .sign(ecdsa_sign(b"crash"))
        .await
        .unwrap()
        .into_inner();
    verify(&key.public_key_der, b"crash", &crashed.signature);
    assert!(trustd.log_text().contains("flushed transient objects"));
}

/// The swtpm-localca root and intermediate, as a user would configure them.
fn ek_ca_bundle(tpm: &Swtpm, dir: &std::path::Path) -> std::path::PathBuf {
    let bundle = dir.join("tpm-ca.pem");
    let mut text = std::fs::read_to_string(tpm.ek_root_ca()).unwrap();
    text.push_str(&std::fs::read_to_string(tpm.ek_issuer_ca()).unwrap());
    std::fs::write(&bundle, text).unwrap();
    bundle
}

#[test]
fn attestation_is_verified_end_to_end_and_listed() {
    let tpm = Swtpm::start();
    let trustd = trustd_on(&tpm, "");
    let ca = ek_ca_bundle(&tpm, trustd.work.path());
    let ca = ca.to_str().unwrap();
    trustd.ok(&["key", "generate", "release", "--backend", "tpm"]);

    let out = trustd.ok(&["key", "attest", "release", "--tpm-ca", ca]);
    assert!(out.contains("attestation VERIFIED"), "{out}");
    assert!(out.contains("over this request's nonce"), "{out}");
    assert!(out.contains("swtpm-localca"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "attest", "release", "--tpm-ca", ca, "--json"]))
            .unwrap();
    assert_eq!(report["ak_activated"], true);
    assert_eq!(report["fresh_nonce"], true);
    let attributes = report["key_attributes"].as_array().unwrap();
    for wanted in ["fixedTPM", "fixedParent", "sensitiveDataOrigin"] {
        assert!(attributes.iter().any(|a| a == wanted), "{report}");
    }

    // key list verifies the evidence kept from generation.
    let listed: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "list", "--json", "--tpm-ca", ca])).unwrap();
    assert_eq!(listed[0]["attestation"]["status"], "verified", "{listed}");
    let table = trustd.ok(&["key", "list", "--tpm-ca", ca]);
    assert!(table.contains("verified (tpm)"), "{table}");
    // Without a CA nothing ties the TPM to a vendor: not shown as verified.
    let table = trustd.ok(&["key", "list"]);
    assert!(table.contains("unverified (no tpm_ca)"), "{table}");
    let out = trustd.run(&["key", "attest", "release"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tpm-ca"), "{}", stderr(&out));

    // A CA that did not issue the EK certificate is refused.
    let other = trustd_e2e::notary::TestCa::new();
    let out = trustd.run(&[
        "key",
        "attest",
        "release",
        "--tpm-ca",
        other.ca_cert().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not chain to a trusted CA"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_replayed_evidence_is_rejected() {
    let tpm = Swtpm::start();
    let trustd = trustd_on(&tpm, "");
    let mut client = trustd.client().await;
    let key = generate_key(&mut client, "k", KeyAlgorithm::EcdsaP256).await;
    let nonce = b"a fresh nonce, 32 bytes long...!".to_vec();
    let reply = client
        .attest_key(trustd_proto::AttestKeyRequest {
            key: Some(trustd_proto::KeySelector {
                selector: Some(trustd_proto::key_selector::Selector::Name("k".into())),
            }),
            nonce: nonce.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(trustd_proto::attestation::Evidence::Tpm(evidence)) =
        reply.attestation.unwrap().evidence
    else {
        panic!("no TPM evidence");
    };
    check_tpm_evidence(&key, &evidence, &nonce).expect("genuine evidence verifies");

    // One flipped bit anywhere in the signed structure breaks the AK's signature.
    let mut forged = evidence.clone();
    let last = forged.certify_info.len() - 1;
    forged.certify_info[last] ^= 1;
    assert!(matches!(
        check_tpm_evidence(&key, &forged, &nonce),
        Err(AttestationError::BadSignature)
    ));
    // Replayed under another request's nonce.
    assert!(matches!(
        check_tpm_evidence(&key, &evidence, b"another nonce of 32 bytes length"),
        Err(AttestationError::StaleNonce)
    ));
    // Someone else's key presented with this certification.
    let other = generate_key(&mut client, "other", KeyAlgorithm::EcdsaP256).await;
    let mut swapped = evidence.clone();
    swapped.key_public_area = match other.attestation.clone().unwrap().evidence.unwrap() {
        trustd_proto::attestation::Evidence::Tpm(e) => e.key_public_area,
        other => panic!("not TPM evidence: {other:?}"),
    };
    assert!(matches!(
        check_tpm_evidence(&key, &swapped, &nonce),
        Err(AttestationError::WrongObject)
    ));
    assert!(matches!(
        check_tpm_evidence(&other, &evidence, &nonce),
        Err(AttestationError::KeyMismatch)
    ));
    // A credential sealed to a name other than the AK's does not come back.
    let ek = x509_cert::Certificate::from_der(&evidence.ek_certificate_der).unwrap();
    let ek = rsa::RsaPublicKey::from_public_key_der(
        &der::Encode::to_der(&ek.tbs_certificate.subject_public_key_info).unwrap(),
    )
    .unwrap();
    let mut wrong_name = vec![0x00, 0x0b];
    wrong_name.extend([0x5a; 32]);
    let challenge =
        trustctl::attestation::make_credential::make_credential(&ek, &wrong_name).unwrap();
    let refused = client
        .activate_credential(trustd_proto::ActivateCredentialRequest {
            backend: "tpm".into(),
            credential_blob: challenge.credential_blob,
            encrypted_secret: challenge.encrypted_secret,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Internal, "{refused:?}");
    assert!(
        refused.message().contains("rejected the credential"),
        "{refused:?}"
    );

    // Evidence kept in the inventory and altered there shows up as failed in `key list`.
    drop(client);
    let ca = ek_ca_bundle(&tpm, trustd.work.path());
    let inventory_path = trustd.state_dir.join("inventory.json");
    let mut inventory: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&inventory_path).unwrap()).unwrap();
    let stored = &mut inventory["keys"][0]["attestation"]["signature"];
    let mut signature = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        stored.as_str().unwrap(),
    )
    .unwrap();
    signature[10] ^= 0x40;
    *stored = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &signature).into();
    std::fs::write(&inventory_path, serde_json::to_vec(&inventory).unwrap()).unwrap();
    let mut trustd = trustd;
    trustd.restart();
    let listed: serde_json::Value = serde_json::from_str(&trustd.ok(&[
        "key",
        "list",
        "--json",
        "--tpm-ca",
        ca.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(listed[0]["attestation"]["status"], "failed", "{listed}");
    assert_eq!(listed[1]["attestation"]["status"], "verified", "{listed}");
}

/// Signs `message` with key "k" once trustd has reconnected to a restarted TPM (5 s at most);
/// until then every answer must be Unavailable. None if it never signed.
async fn sign_once_the_tpm_is_back(
    client: &mut trustctl::client::Client,
    message: &[u8],
    context: &str,
) -> Option<trustd_proto::SignResponse> {
    for _ in 0..50 {
        match client.sign(ecdsa_sign(message)).await {
            Ok(reply) => return Some(reply.into_inner()),
            Err(status) => {
                assert_eq!(
                    status.code(),
                    tonic::Code::Unavailable,
                    "{context}: {status:?}"
                )
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_tpm_gives_unavailable_and_trustd_recovers_without_a_restart() {
    let mut tpm = Swtpm::start();
    let mut trustd = trustd_on(&tpm, "");
    let mut client = trustd.client().await;
    let key = generate_key(&mut client, "k", KeyAlgorithm::EcdsaP256).await;
    client.sign(ecdsa_sign(b"before")).await.unwrap();

    tpm.kill();
    for _ in 0..2 {
        let err = client.sign(ecdsa_sign(b"gone")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(err.message().contains("TPM"), "{err:?}");
    }
    let out = trustd.run(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(trustd.is_running());

    tpm.resume();
    let signed = sign_once_the_tpm_is_back(&mut client, b"back", "after the restart")
        .await
        .unwrap_or_else(|| panic!("trustd did not recover:\n{}", trustd.log_text()));
    verify(&key.public_key_der, b"back", &signed.signature);
    assert!(trustd.log_text().contains("TPM connection lost"));
}

/// A TPM that loses power while a dictionary-attack-protected key is loaded counts it as a
/// failed authorization at the next start: a few crashes would lock every key out (the 30-minute
/// soak found it, after seven swtpm kills). Keys without key_auth are made noDA, so any number
/// of unorderly restarts leave them usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_without_an_auth_value_survive_unorderly_tpm_restarts() {
    let mut tpm = Swtpm::start();
    let trustd = trustd_on(&tpm, "");
    let mut client = trustd.client().await;
    let key = generate_key(&mut client, "k", KeyAlgorithm::EcdsaP256).await;
    for round in 0..10 {
        client.sign(ecdsa_sign(b"before the crash")).await.unwrap();
        tpm.kill();
        tpm.resume();
        let context = format!("after {} unorderly restarts", round + 1);
        let signed = sign_once_the_tpm_is_back(&mut client, b"after the crash", &context)
            .await
            .unwrap_or_else(|| panic!("no signature {context}"));
        verify(&key.public_key_der, b"after the crash", &signed.signature);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_callers_all_finish_signed_or_told_the_tpm_is_busy() {
    let tpm = Swtpm::start();
    // A one-deep queue and no waiting: a burst of 16 must overflow it.
    let trustd = trustd_on(&tpm, "queue_depth = 1\nqueue_wait_ms = 0");
    let mut client = trustd.client().await;
    let key = generate_key(&mut client, "k", KeyAlgorithm::EcdsaP256).await;
    let mut busy_seen = 0;
    let mut signed = 0;
    for round in 0..20 {
        let mut tasks = Vec::new();
        for caller in 0..16 {
            let mut client = trustd.client().await;
            tasks.push(tokio::spawn(async move {
                let message = format!("round {round} caller {caller}").into_bytes();
                let reply = client.sign(ecdsa_sign(&message)).await;
                (message, reply)
            }));
        }
        for task in tasks {
            let (message, reply) = tokio::time::timeout(std::time::Duration::from_secs(30), task)
                .await
                .expect("a caller hung")
                .unwrap();
            match reply {
                Ok(reply) => {
                    verify(&key.public_key_der, &message, &reply.into_inner().signature);
                    signed += 1;
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                    assert!(status.message().contains("queue_depth"), "{status:?}");
                    busy_seen += 1;
                }
            }
        }
        if busy_seen > 0 && round >= 2 {
            break;
        }
    }
    assert!(signed > 0);
    assert!(
        busy_seen > 0,
        "16 concurrent callers never overflowed a one-deep queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_queue_sixteen_concurrent_callers_all_sign() {
    let tpm = Swtpm::start();
    let trustd = trustd_on(&tpm, "");
    let mut client = trustd.client().await;
    let key = generate_key(&mut client, "k", KeyAlgorithm::EcdsaP256).await;
    let mut tasks = Vec::new();
    for caller in 0..16 {
        let mut client = trustd.client().await;
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..20 {
                let message = format!("caller {caller} message {i}").into_bytes();
                let reply = client
                    .sign(ecdsa_sign(&message))
                    .await
                    .unwrap()
                    .into_inner();
                out.push((message, reply.signature));
            }
            out
        }));
    }
    for task in tasks {
        for (message, signature) in task.await.unwrap() {
            verify(&key.public_key_der, &message, &signature);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_auth_value_is_refused_once_and_not_retried() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let auth = secret_file(dir.path(), "key.auth", "correct horse\n");
    let mut trustd = trustd_on(
        &tpm,
        &format!("key_auth = {{ file = \"{}\" }}", auth.display()),
    );
    let mut client = trustd.client().await;
    let key = generate_key(&mut client, "k", KeyAlgorithm::EcdsaP256).await;
    client.sign(ecdsa_sign(b"right")).await.unwrap();

    // The value changes under trustd (a botched credential rotation).
    secret_file(dir.path(), "key.auth", "battery staple\n");
    trustd.restart();
    let mut client = trustd.client().await;
    let err = client.sign(ecdsa_sign(b"wrong")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("refused the key's auth value"),
        "{err:?}"
    );
    assert!(err.message().contains("lock the TPM out"), "{err:?}");
    let counter = || {
        let out = tpm.tpm2("tpm2_getcap", &["properties-variable"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.contains("TPM2_PT_LOCKOUT_COUNTER"))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no lockout counter in:\n{text}"))
    };
    let after_first = counter();
    assert!(after_first.contains("0x1"), "{after_first}");
    // Asked again, trustd refuses without spending another try of the TPM's.
    let again = client.sign(ecdsa_sign(b"wrong")).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert!(
        again.message().contains("will not send it again"),
        "{again:?}"
    );
    assert_eq!(counter(), after_first);

    // The right value back in place works without a restart.
    secret_file(dir.path(), "key.auth", "correct horse\n");
    let reply = client
        .sign(ecdsa_sign(b"fixed"))
        .await
        .unwrap()
        .into_inner();
    verify(&key.public_key_der, b"fixed", &reply.signature);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_hierarchy_with_an_auth_value_needs_owner_auth() {
    let tpm = Swtpm::start();
    let out = tpm.tpm2("tpm2_changeauth", &["-c", "owner", "owner-secret"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let trustd = trustd_on(&tpm, "");
    let mut client = trustd.client().await;
    let err = client
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("set owner_auth"), "{err:?}");
    drop(trustd);

    let dir = tempfile::tempdir().unwrap();
    let owner = secret_file(dir.path(), "owner.auth", "owner-secret");
    let trustd = trustd_on(
        &tpm,
        &format!("owner_auth = {{ file = \"{}\" }}", owner.display()),
    );
    let mut client = trustd.client().await;
    let key = generate_key(&mut client, "k", KeyAlgorithm::EcdsaP256).await;
    let reply = client
        .sign(ecdsa_sign(b"owned"))
        .await
        .unwrap()
        .into_inner();
    verify(&key.public_key_der, b"owned", &reply.signature);
}

#[test]
fn rsa_3072_keys_make_pss_signatures_that_openssl_verifies() {
    let tpm = Swtpm::start();
    let trustd = trustd_on(&tpm, "");
    let dir = tempfile::tempdir().unwrap();
    trustd.ok(&[
        "key",
        "generate",
        "rsa",
        "--backend",
        "tpm",
        "--algorithm",
        "rsa-3072",
    ]);
    let public = dir.path().join("rsa.pem");
    trustd.ok(&["key", "public", "rsa", "--output", public.to_str().unwrap()]);
    let data = dir.path().join("data");
    std::fs::write(&data, b"signed by a TPM RSA key").unwrap();
    let signature = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        trustd
            .ok(&["sign-blob", "--key", "rsa", data.to_str().unwrap()])
            .trim(),
    )
    .unwrap();
    let sig_file = dir.path().join("sig");
    std::fs::write(&sig_file, signature).unwrap();
    // RSASSA-PSS with SHA-256 and a 32-byte salt, as TUF's "rsapss" verifiers expect.
    let out = std::process::Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-verify",
        ])
        .arg(&public)
        .arg("-signature")
        .arg(&sig_file)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Ed25519 is not a TPM algorithm: a precise refusal, not an obscure TPM error.
    let out = trustd.run(&[
        "key",
        "generate",
        "ed",
        "--backend",
        "tpm",
        "--algorithm",
        "ed25519",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("generates ecdsa-p256 and rsa-3072, not ed25519"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestations_are_audited_like_every_other_use_of_a_key() {
    let tpm = Swtpm::start();
    let trustd = trustd_on(&tpm, "");
    let mut client = trustd.client().await;
    let key = generate_key(&mut client, "k", KeyAlgorithm::EcdsaP256).await;
    let attest = |nonce: &[u8]| trustd_proto::AttestKeyRequest {
        key: Some(trustd_proto::KeySelector {
            selector: Some(trustd_proto::key_selector::Selector::Name("k".into())),
        }),
        nonce: nonce.to_vec(),
    };
    client
        .attest_key(attest(b"sixteen byte nce"))
        .await
        .unwrap();
    let err = client.attest_key(attest(b"short")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

    let records: Vec<_> = trustd
        .audit_records()
        .into_iter()
        .filter(|r| r["event"] == "attest")
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_eq!(record["key_name"], "k");
        assert_eq!(record["key_id"], key.key_id.as_str());
        assert_eq!(record["caller_uid"], nix::unistd::getuid().as_raw());
    }
    assert_eq!(records[0]["result"], "allowed");
    assert_eq!(records[1]["result"], "failed");
    assert!(
        records[1]["detail"].as_str().unwrap().contains("nonce"),
        "{records:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_a_status_call_held_up_by_the_tpm() {
    let tpm = Swtpm::start();
    let mut trustd = trustd_on(&tpm, "");
    let mut client = trustd.client().await;
    client.status(trustd_proto::StatusRequest {}).await.unwrap();

    tpm.freeze();
    let slow = tokio::spawn(async move { client.status(trustd_proto::StatusRequest {}).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    if slow.is_finished() {
        panic!("Status did not wait for the frozen TPM: {:?}", slow.await);
    }
    trustd.signal(nix::sys::signal::Signal::SIGTERM);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        trustd.is_running(),
        "trustd exited while a Status call was still in flight:\n{}",
        trustd.log_text()
    );

    tpm.thaw();
    let reply = slow
        .await
        .unwrap()
        .expect("the Status call in flight is answered")
        .into_inner();
    assert_eq!(
        reply.backends[0].state,
        trustd_proto::BackendState::Ready as i32,
        "{reply:?}"
    );
    let exit = tokio::task::spawn_blocking(move || trustd.stop())
        .await
        .unwrap();
    assert!(exit.success(), "trustd exited with {exit}");
}
