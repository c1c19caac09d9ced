//! trustd's TPM backend against a real software TPM (swtpm, manufactured with EK certificates
//! by swtpm_setup), driven through trustctl and the gRPC API.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use trustd_e2e::tpm::{secret_file, Swtpm};
use der::Decode;
use trustctl::attestation::{check_tpm_evidence, AttestationError};
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
    let key = client
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(key.backend_kind, trustd_proto::BackendKind::Tpm as i32);
    let signature = client
        .sign(ecdsa_sign(b"hello"))
        .await
        .unwrap()
        .into_inner();
    verify(&key.public_key_der, b"hello", &signature.signature);

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
    let out = trustd.run(&["key", "attest", "release", "--tpm-ca", other.ca_cert().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not chain to a trusted CA"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_replayed_evidence_is_rejected() {
    let tpm = Swtpm::start();
    let trustd = trustd_on(&tpm, "");
    let mut client = trustd.client().await;
    let key = client
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
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
    let other = client
        .generate_key(generate_request("other", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    let mut swapped = evidence.clone();
    swapped.key_public_area = match other.attestation.clone().unwrap().evidence.unwrap() {
        trustd_proto::attestation::Evidence::Tpm(e) => e.key_public_area,
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
    let challenge = trustctl::attestation::make_credential::make_credential(&ek, &wrong_name).unwrap();
    let refused = client
        .activate_credential(trustd_proto::ActivateCredentialRequest {
            backend: "tpm".into(),
            credential_blob: challenge.credential_blob,
            encrypted_secret: challenge.encrypted_secret,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Internal, "{refused:?}");
    assert!(refused.message().contains("rejected the credential"), "{refused:?}");

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
