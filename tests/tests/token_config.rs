//! How trustd finds its token and its PIN, and what it does when its own bookkeeping fails.

use trustd_e2e::*;
use trustd_proto::{KeyAlgorithm, SignatureAlgorithm, SignatureEncoding};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_from_a_systemd_credential_and_token_found_by_serial() {
    let hsm = SoftHsm::new("by-serial");
    let serial = hsm.serial();
    let mut options = Options::for_token(&hsm);
    options.token_serial = Some(serial.clone());
    options.pin_as_credential = true;
    let trustd = Trustd::start(&hsm, &options);
    let config = std::fs::read_to_string(&trustd.config).unwrap();
    assert!(config.contains("credential = \"token-pin\"") && !config.contains("token_label"));

    let mut client = trustd.client().await;
    client
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .expect("logged in with the credential");
    client
        .sign(sign_request(
            "k",
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureEncoding::Raw,
            b"m".to_vec(),
        ))
        .await
        .unwrap();
    let status = trustd.ok(&["status"]);
    assert!(status.contains(&format!("serial {serial}")), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_removes_the_key_from_the_token_when_the_inventory_cannot_be_written() {
    let hsm = SoftHsm::new("rollback");
    let mut trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    trustd.ok(&["key", "generate", "first"]);

    // Make the inventory impossible to replace: its path becomes a non-empty directory.
    let inventory = trustd.state_dir.join("inventory.json");
    std::fs::remove_file(&inventory).unwrap();
    std::fs::create_dir(&inventory).unwrap();
    std::fs::write(inventory.join("blocker"), b"x").unwrap();

    let err = trustd
        .client()
        .await
        .generate_key(generate_request("orphan", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Internal, "{err:?}");
    assert!(
        err.message()
            .contains("it was removed from the device again"),
        "{}",
        err.message()
    );
    let objects = hsm.pkcs11_tool(&["--list-objects"]);
    let objects = String::from_utf8_lossy(&objects.stdout);
    assert!(
        !objects.contains("orphan"),
        "the unrecorded key is still on the token:\n{objects}"
    );
    assert!(objects.contains("first"));
    let records = trustd.audit_records();
    assert!(records
        .iter()
        .any(|r| r["event"] == "generate" && r["key_name"] == "orphan" && r["result"] == "failed"));

    // Once the inventory can be written again, nothing was lost.
    std::fs::remove_dir_all(&inventory).unwrap();
    trustd.ok(&["key", "generate", "second"]);
    trustd.restart();
    let list = trustd.ok(&["key", "list"]);
    assert!(
        list.contains("first") && list.contains("second") && !list.contains("orphan"),
        "{list}"
    );
}
