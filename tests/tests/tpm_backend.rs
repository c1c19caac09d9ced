//! trustd's TPM backend against a real software TPM (swtpm, manufactured with EK certificates
//! by swtpm_setup), driven through trustctl and the gRPC API.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
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
