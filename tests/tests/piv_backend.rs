//! trustd's YubiKey PIV backend against a virtual YubiKey (trustd-vpiv) in pcscd's vpcd reader:
//! the `yubikey` crate in trustd talks PC/SC to it exactly as to a real card.
//!
//! One pcscd and one vpcd reader per machine: the tests take turns (PivRig holds a lock).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use trustd_e2e::piv::PivRig;
use trustd_e2e::tpm::secret_file;
use trustd_e2e::*;

const SERIAL: u32 = 13572468;
const PIN: &str = "246810";
const PUK: &str = "97531086";

/// trustd with one PIV backend "yubikey"; `extra` adds lines to the backend table.
fn trustd_with(extra: &str) -> Trustd {
    Trustd::launch(&Options::with_backends(format!(
        "[[backend]]\ntype = \"piv\"\nname = \"yubikey\"\nserial = {SERIAL}\n{extra}\n"
    )))
}

/// Runs trustctl with `input` on stdin; returns the output.
fn with_stdin(trustd: &Trustd, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = trustd
        .trustctl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn provision(trustd: &Trustd) {
    let out = with_stdin(
        trustd,
        &["token", "piv", "init", "--backend", "yubikey", "--stdin"],
        &format!("{PIN}\n{PUK}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("serial {SERIAL} provisioned")));
}

/// Signs `data` with key `name` through trustctl and checks the signature with openssl.
fn sign_and_openssl_verify(trustd: &Trustd, name: &str, data: &Path, sha: &str) {
    let dir = data.parent().unwrap();
    let public = dir.join(format!("{name}.pem"));
    trustd.ok(&["key", "public", name, "--output", public.to_str().unwrap()]);
    let signature = dir.join(format!("{name}.sig"));
    trustd.ok(&[
        "sign-blob",
        "--key",
        name,
        "--output",
        signature.to_str().unwrap(),
        data.to_str().unwrap(),
    ]);
    let der = dir.join(format!("{name}.der"));
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read_to_string(&signature).unwrap().trim(),
    )
    .unwrap();
    std::fs::write(&der, raw).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", &format!("-{sha}"), "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&der)
        .arg(data)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "openssl: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn data_file(dir: &Path) -> PathBuf {
    let data = dir.join("release.tar");
    std::fs::write(&data, b"bytes signed on a YubiKey").unwrap();
    data
}

#[test]
fn a_provisioned_card_generates_signs_attests_and_survives_a_restart() {
    let rig = PivRig::start(SERIAL);
    let mut trustd = trustd_with("");
    provision(&trustd);
    // The card is no longer in its factory state: a second init is refused without --force.
    let again = with_stdin(
        &trustd,
        &["token", "piv", "init", "--backend", "yubikey", "--stdin"],
        "11112222\n33334444\n",
    );
    assert_ne!(again.status.code(), Some(0));
    assert!(
        stderr(&again).contains("already provisioned"),
        "{}",
        stderr(&again)
    );

    let out = trustd.ok(&[
        "key",
        "generate",
        "signer",
        "--backend",
        "yubikey",
        "--slot",
        "9c",
        "--pin-policy",
        "once",
    ]);
    assert!(
        out.contains(&format!(
            "Slot: 9c of YubiKey serial {SERIAL} (PIN policy once, touch policy never)"
        )),
        "{out}"
    );
    trustd.ok(&[
        "key",
        "generate",
        "archive",
        "--backend",
        "yubikey",
        "--slot",
        "82",
        "--algorithm",
        "ecdsa-p384",
    ]);
    let data = data_file(rig.dir.path());
    sign_and_openssl_verify(&trustd, "signer", &data, "sha256");
    sign_and_openssl_verify(&trustd, "archive", &data, "sha384");

    // Attestation: the chain to the card's root, the attested key, the card's statements.
    let root = rig.attestation_root();
    let root = root.to_str().unwrap();
    let report = trustd.ok(&["key", "attest", "signer", "--piv-ca", root]);
    assert!(
        report.contains("attestation VERIFIED (YubiKey PIV)"),
        "{report}"
    );
    assert!(
        report.contains(&SERIAL.to_string()) && report.contains("5.4.3"),
        "{report}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "attest", "archive", "--piv-ca", root, "--json"]))
            .unwrap();
    assert_eq!(json["slot"], "82", "{json}");
    assert_eq!(json["pin_policy"], "once");
    assert_eq!(json["touch_policy"], "never");
    // A test card does not chain to Yubico's root.
    let out = trustd.run(&["key", "attest", "signer"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not chain to a trusted root"),
        "{}",
        stderr(&out)
    );
    let listed: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "list", "--json", "--piv-ca", root])).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["attestation"]["status"] == "verified"),
        "{listed}"
    );

    // A slot holding one of trustd's keys is never overwritten.
    let out = trustd.run(&[
        "key",
        "generate",
        "other",
        "--backend",
        "yubikey",
        "--slot",
        "9c",
        "--force",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("holds trustd's key \"signer\""),
        "{}",
        stderr(&out)
    );

    // The PIN lived in trustd's memory only: after a restart trustd asks for it again.
    trustd.restart();
    let out = trustd.run(&["sign-blob", "--key", "signer", data.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("token piv unlock"),
        "{}",
        stderr(&out)
    );
    let out = with_stdin(
        &trustd,
        &["token", "piv", "unlock", "--backend", "yubikey", "--stdin"],
        &format!("{PIN}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    sign_and_openssl_verify(&trustd, "signer", &data, "sha256");
    // Nothing secret in trustd's files.
    for file in [
        trustd.log.clone(),
        trustd.audit.clone(),
        trustd.state_dir.join("inventory.json"),
    ] {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !text.contains(PIN) && !text.contains(PUK),
            "{} holds a secret",
            file.display()
        );
    }
}
