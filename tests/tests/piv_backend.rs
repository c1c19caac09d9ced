//! trustd's YubiKey PIV backend against a virtual YubiKey (trustd-vpiv) in pcscd's vpcd reader:
//! the `yubikey` crate in trustd talks PC/SC to it exactly as to a real card.
//!
//! One pcscd and one vpcd reader per machine: the tests take turns (PivRig holds a lock).

use std::path::{Path, PathBuf};
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

fn provision(trustd: &Trustd) {
    let out = trustd.run_with_stdin(
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
    let again = trustd.run_with_stdin(
        &["token", "piv", "init", "--backend", "yubikey", "--stdin"],
        "11112222\n33334444\n",
    );
    assert_refused(&again, "already provisioned");

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
    assert_refused(&out, "holds trustd's key \"signer\"");

    // The PIN lived in trustd's memory only: after a restart trustd asks for it again.
    trustd.restart();
    let out = trustd.run(&["sign-blob", "--key", "signer", data.to_str().unwrap()]);
    assert_refused(&out, "token piv unlock");
    let out = trustd.run_with_stdin(
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

/// trustd on a provisioned card with the PIN in a file, and one key "k" in slot `slot`.
fn provisioned_with_pin_file(rig: &PivRig, pin: &str, generate: &[&str]) -> Trustd {
    let pin_file = secret_file(rig.dir.path(), "pin", pin);
    let trustd = trustd_with(&format!("pin = {{ file = \"{}\" }}", pin_file.display()));
    provision(&trustd);
    if !generate.is_empty() {
        let mut args = vec!["key", "generate", "k", "--backend", "yubikey"];
        args.extend_from_slice(generate);
        trustd.ok(&args);
    }
    trustd
}

#[test]
fn a_wrong_pin_says_how_many_tries_are_left_and_is_not_tried_again() {
    let rig = PivRig::start(SERIAL);
    let trustd = provisioned_with_pin_file(&rig, PIN, &["--slot", "9a"]);
    let data = data_file(rig.dir.path());
    sign_and_openssl_verify(&trustd, "k", &data, "sha256");

    // The PIN file changes to a wrong value (a botched rotation); trustd restarts.
    secret_file(rig.dir.path(), "pin", "000000");
    let mut trustd = trustd;
    trustd.restart();
    let out = trustd.run(&["sign-blob", "--key", "k", data.to_str().unwrap()]);
    assert_exit(&out, 1, "wrong PIN for the YubiKey: 2 tries left");
    // Asked again, trustd does not spend another try.
    let out = trustd.run(&["sign-blob", "--key", "k", data.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("will not try it again"),
        "{}",
        stderr(&out)
    );
    let status = trustd.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("2 PIN tries left"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    // Fixed, it signs again without a restart.
    secret_file(rig.dir.path(), "pin", PIN);
    sign_and_openssl_verify(&trustd, "k", &data, "sha256");

    // Three wrong PINs through unlock block it; trustd says so and how to recover.
    let unlock = |pin: &str| {
        trustd.run_with_stdin(
            &["token", "piv", "unlock", "--backend", "yubikey", "--stdin"],
            &format!("{pin}\n"),
        )
    };
    for (pin, expected) in [
        ("111111", "2 tries left"),
        ("222222", "1 tries left"),
        ("333333", "blocked"),
    ] {
        let out = unlock(pin);
        assert_ne!(out.status.code(), Some(0));
        assert!(stderr(&out).contains(expected), "{pin}: {}", stderr(&out));
    }
    let status = String::from_utf8_lossy(&trustd.run(&["status"]).stdout).into_owned();
    assert!(status.contains("the PIN is blocked"), "{status}");
}

#[test]
fn pin_policy_always_verifies_the_pin_for_every_signature() {
    let rig = PivRig::start(SERIAL);
    let trustd = provisioned_with_pin_file(&rig, PIN, &["--slot", "9c", "--pin-policy", "always"]);
    let data = data_file(rig.dir.path());
    // The card forgets the PIN after each signature with this key: each of these needs its
    // own VERIFY, which trustd sends.
    for _ in 0..3 {
        sign_and_openssl_verify(&trustd, "k", &data, "sha256");
    }
    let listed: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["backend"], "yubikey");
}

#[test]
fn a_touch_policy_key_waits_for_the_touch_and_times_out_cleanly() {
    let rig = PivRig::start(SERIAL);
    rig.card.set_touch_timeout(Duration::from_millis(700));
    let trustd = provisioned_with_pin_file(&rig, PIN, &[]);
    // Generating self-signs the slot's certificate: that takes a touch too.
    let toucher = {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop2, card) = (stop.clone(), &rig.card);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    card.touch();
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let out = trustd.run(&[
                "key",
                "generate",
                "k",
                "--backend",
                "yubikey",
                "--slot",
                "82",
                "--touch-policy",
                "always",
            ]);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            out
        })
    };
    assert!(toucher.status.success(), "{}", stderr(&toucher));
    assert!(
        stderr(&toucher).contains("Touch the YubiKey"),
        "{}",
        stderr(&toucher)
    );

    let data = data_file(rig.dir.path());
    let out = trustd.run(&["sign-blob", "--key", "k", data.to_str().unwrap()]);
    assert_refused(&out, "Touch the YubiKey (serial");
    assert!(
        stderr(&out).contains("nobody touched the YubiKey"),
        "{}",
        stderr(&out)
    );
    // The daemon is not stuck: with a touch, the same key signs.
    let signed = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            rig.card.touch();
        });
        trustd.run(&["sign-blob", "--key", "k", data.to_str().unwrap()])
    });
    assert!(signed.status.success(), "{}", stderr(&signed));
}

#[test]
fn a_card_pulled_out_gives_unavailable_and_works_again_when_it_is_back() {
    let rig = PivRig::start(SERIAL);
    let trustd = provisioned_with_pin_file(&rig, PIN, &["--slot", "9a"]);
    let data = data_file(rig.dir.path());
    sign_and_openssl_verify(&trustd, "k", &data, "sha256");

    rig.remove_card();
    let out = trustd.run(&["sign-blob", "--key", "k", data.to_str().unwrap()]);
    assert_exit(&out, 3, "YubiKey serial");
    let status = trustd.run(&["status"]);
    assert_eq!(status.status.code(), Some(3));

    rig.reinsert_card();
    let mut signed = None;
    for _ in 0..30 {
        let out = trustd.run(&["sign-blob", "--key", "k", data.to_str().unwrap()]);
        if out.status.success() {
            signed = Some(out);
            break;
        }
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        signed.is_some(),
        "trustd did not recover:\n{}",
        trustd.log_text()
    );
    sign_and_openssl_verify(&trustd, "k", &data, "sha256");
}

#[test]
fn a_card_held_exclusively_by_another_program_is_reported_as_such() {
    let rig = PivRig::start(SERIAL);
    let mut trustd = provisioned_with_pin_file(&rig, PIN, &["--slot", "9a"]);
    let data = data_file(rig.dir.path());
    trustd.stop(); // trustd lets go of the card

    let context = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let reader = context
        .list_readers_owned()
        .unwrap()
        .into_iter()
        .find(|r| r.to_string_lossy().contains("Virtual PCD"))
        .unwrap();
    // pcscd releases a stopped client's handle shortly after it exits.
    let mut exclusive = None;
    for _ in 0..50 {
        match context.connect(&reader, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY) {
            Ok(card) => {
                exclusive = Some(card);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let exclusive = exclusive.expect("hold the card exclusively, as scdaemon does");
    trustd.spawn();
    trustd.wait_ready();
    let out = trustd.run(&["sign-blob", "--key", "k", data.to_str().unwrap()]);
    assert_exit(&out, 3, "held exclusively by another program");

    drop(exclusive);
    std::thread::sleep(Duration::from_millis(600)); // past trustd's reconnect interval
    sign_and_openssl_verify(&trustd, "k", &data, "sha256");
}

#[test]
fn what_the_card_or_its_config_cannot_do_is_refused_precisely() {
    let rig = PivRig::start(SERIAL);
    let trustd = provisioned_with_pin_file(&rig, PIN, &[]);
    let out = trustd.run(&[
        "key",
        "generate",
        "ed",
        "--backend",
        "yubikey",
        "--algorithm",
        "ed25519",
    ]);
    assert_exit(&out, 1, "generates ecdsa-p256 and ecdsa-p384");
    let out = trustd.run(&[
        "key",
        "generate",
        "x",
        "--backend",
        "yubikey",
        "--slot",
        "9e",
    ]);
    assert_refused(&out, "is not one this backend may use");
    let out = trustd.run(&[
        "key",
        "load",
        trustd.config.to_str().unwrap(),
        "--name",
        "imp",
        "--backend",
        "yubikey",
    ]);
    assert_ne!(out.status.code(), Some(0));
    drop(trustd);

    // A management key in the config that the card does not have.
    let pin_file = secret_file(rig.dir.path(), "pin", PIN);
    let mgm = secret_file(rig.dir.path(), "mgm", &"ab".repeat(24));
    let trustd = trustd_with(&format!(
        "pin = {{ file = \"{}\" }}\nmanagement_key = {{ file = \"{}\" }}",
        pin_file.display(),
        mgm.display()
    ));
    let out = trustd.run(&["key", "generate", "k", "--backend", "yubikey"]);
    assert_exit(&out, 1, "refused the management key");
}

#[test]
fn opensc_sees_the_key_and_certificate_trustd_generated() {
    let rig = PivRig::start(SERIAL);
    let mut trustd = provisioned_with_pin_file(&rig, PIN, &["--slot", "9a"]);
    let ours = trustd.ok(&["key", "public", "k"]);
    trustd.stop(); // let go of the card, as PIV tools expect
    let module = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
    let listing = std::process::Command::new("pkcs11-tool")
        .args(["--module", module, "--list-objects"])
        .output()
        .expect("pkcs11-tool runs (apt-get install opensc)");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{text}{}", stderr(&listing));
    assert!(text.contains("Certificate Object"), "{text}");
    assert!(text.contains("trustd k"), "{text}");
    // The public key OpenSC reads for slot 9a (PIV ID 01) is trustd's.
    let der = rig.dir.path().join("opensc.der");
    let out = std::process::Command::new("pkcs11-tool")
        .args([
            "--module",
            module,
            "--read-object",
            "--type",
            "pubkey",
            "--id",
            "01",
            "--output-file",
        ])
        .arg(&der)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let theirs = std::process::Command::new("openssl")
        .args(["pkey", "-pubin", "-inform", "DER", "-in"])
        .arg(&der)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&theirs.stdout), ours);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_altered_piv_attestations_are_rejected() {
    use trustctl::attestation::{piv, AttestationError, PivTrust};
    let rig = PivRig::start(SERIAL);
    let trustd = provisioned_with_pin_file(&rig, PIN, &["--slot", "9a"]);
    let trust = PivTrust::from_pem_file(&rig.attestation_root()).unwrap();
    let mut client = trustd.client().await;
    let key = client
        .get_public_key(trustd_proto::GetPublicKeyRequest {
            key: Some(trustd_proto::KeySelector {
                selector: Some(trustd_proto::key_selector::Selector::Name("k".into())),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    let Some(trustd_proto::attestation::Evidence::Piv(genuine)) =
        key.attestation.clone().and_then(|a| a.evidence)
    else {
        panic!("no PIV attestation kept for the key");
    };
    piv::verify(&key, &genuine, &trust).expect("the genuine attestation verifies");
    // A digest of the wrong kind for the key is refused before the card is asked.
    let wrong = client
        .sign(trustd_proto::SignRequest {
            key: Some(trustd_proto::KeySelector {
                selector: Some(trustd_proto::key_selector::Selector::Name("k".into())),
            }),
            algorithm: trustd_proto::SignatureAlgorithm::EcdsaP256Sha256 as i32,
            encoding: 0,
            payload: Some(trustd_proto::sign_request::Payload::Sha384Digest(vec![
                0;
                48
            ])),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::InvalidArgument, "{wrong:?}");
    assert!(wrong.message().contains("not SHA-384"), "{wrong:?}");

    // The same statements about the same key, issued by an attestation CA that is not the
    // card's (what a forger with their own "f9" key would make).
    let forger = trustd_vpiv::attestation::AttestationCa::new();
    let forged = trustd_proto::PivAttestation {
        attestation_certificate_der: forger.attest(
            &key.public_key_der,
            &trustd_vpiv::attestation::SlotFacts {
                slot: 0x9a,
                firmware: [5, 4, 3],
                serial: SERIAL,
                pin_policy: 2,
                touch_policy: 1,
            },
        ),
        intermediate_certificate_der: forger.f9_der.clone(),
    };
    assert!(matches!(
        piv::verify(&key, &forged, &trust),
        Err(AttestationError::UntrustedPiv(_))
    ));
    // The genuine f9 certificate with the forger's leaf: the signature does not match.
    let mixed = trustd_proto::PivAttestation {
        intermediate_certificate_der: genuine.intermediate_certificate_der.clone(),
        ..forged
    };
    assert!(matches!(
        piv::verify(&key, &mixed, &trust),
        Err(AttestationError::UntrustedPiv(_))
    ));
    // One byte of the genuine certificate's signature changed.
    let mut altered = genuine.clone();
    let last = altered.attestation_certificate_der.len() - 3;
    altered.attestation_certificate_der[last] ^= 0x01;
    assert!(piv::verify(&key, &altered, &trust).is_err());
    // A genuine attestation of another key is not one of this key.
    let mut other_key = key.clone();
    other_key.public_key_der = forger_key_der();
    assert!(matches!(
        piv::verify(&other_key, &genuine, &trust),
        Err(AttestationError::KeyMismatch)
    ));
    // trustd's record must say what the card attests.
    let mut misrecorded = key.clone();
    misrecorded.piv.as_mut().unwrap().pin_policy = trustd_proto::PinPolicy::Never as i32;
    assert!(matches!(
        piv::verify(&misrecorded, &genuine, &trust),
        Err(AttestationError::PolicyMismatch(_))
    ));
}

fn forger_key_der() -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey;
    p256::SecretKey::random(&mut rand::thread_rng())
        .public_key()
        .to_public_key_der()
        .unwrap()
        .into_vec()
}

#[test]
fn a_deleted_key_leaves_its_slot_guarded_until_forced() {
    let rig = PivRig::start(SERIAL);
    let trustd = provisioned_with_pin_file(&rig, PIN, &["--slot", "83"]);
    trustd.ok(&["key", "delete", "k", "--yes"]);
    assert!(trustd.ok(&["key", "list"]).contains("No keys"));
    // The card still holds the key (firmware 5.4 cannot delete keys): no silent overwrite.
    let out = trustd.run(&[
        "key",
        "generate",
        "again",
        "--backend",
        "yubikey",
        "--slot",
        "83",
    ]);
    assert_refused(&out, "already holds a key: pass --force");
    // Without --slot, trustd skips it and takes the next free slot it may use.
    let out = trustd.ok(&["key", "generate", "elsewhere", "--backend", "yubikey"]);
    assert!(out.contains("Slot: 9c "), "{out}");
    let out = trustd.ok(&[
        "key",
        "generate",
        "again",
        "--backend",
        "yubikey",
        "--slot",
        "83",
        "--force",
    ]);
    assert!(out.contains("Slot: 83 "), "{out}");
    let data = data_file(rig.dir.path());
    sign_and_openssl_verify(&trustd, "again", &data, "sha256");
}
