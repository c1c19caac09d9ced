//! Roots of trust held by several hardware keys (issue 15): a 2-of-3 root made by
//! `trustctl init --root-key ... --root-threshold 2`, rotated to other keys and renewed, and
//! each version checked by the real notary client, docker CLI and notary-server, by clients
//! that cached earlier versions, and by trustctl's own cache walking every version.

use trustd_e2e::dct::Dct;
use trustd_e2e::*;

const DIGEST: &str = "sha256:5c3a2f3bd7e1f2e5b5c3f1e9f4a7b2c8d6e0a1b3c5d7e9f1a3b5c7d9e1f3a5b7";

fn server_root(setup: &Dct, gun: &str) -> serde_json::Value {
    serde_json::from_slice(&setup.server.get(&format!("/v2/{gun}/_trust/tuf/root.json"))).unwrap()
}

fn root_keyids(root: &serde_json::Value) -> Vec<String> {
    root["signed"]["roles"]["root"]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

/// A second officer's machine: its own token, trustd, socket and trust cache, reaching the
/// same notary server.
struct OtherMachine {
    _hsm: SoftHsm,
    trustd: Trustd,
    cache: tempfile::TempDir,
}

impl OtherMachine {
    fn start(label: &str) -> OtherMachine {
        let hsm = SoftHsm::new(label);
        let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
        OtherMachine {
            _hsm: hsm,
            trustd,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// trustctl on this machine against `setup`'s notary server.
    fn trustctl(&self, setup: &Dct, args: &[&str]) -> std::process::Output {
        self.trustd
            .trustctl()
            .args(args)
            .args(["--server", &setup.server.url, "--tls-ca"])
            .arg(setup.server.ca.ca_cert())
            .arg("--trust-dir")
            .arg(self.cache.path())
            .output()
            .unwrap()
    }
}

fn fails(setup: &Dct, args: &[String], code: i32, says: &str) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = setup.trustctl(&args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
}

#[test]
fn a_two_of_three_root_is_trusted_rotated_and_renewed_by_every_client() {
    let setup = Dct::new("root-2of3");
    let gun = "registry.example.test/team/vault";
    for officer in ["officer-a", "officer-b", "officer-c", "officer-d"] {
        setup.trustd.ok(&["key", "generate", officer]);
    }
    let init = |extra: &[&str]| -> Vec<String> {
        ["init", gun]
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    let three = [
        "--root-key",
        "officer-a",
        "--root-key",
        "officer-b",
        "--root-key",
        "officer-c",
    ];

    // What no client could use is refused before anything is made or sent.
    let mut too_high = three.to_vec();
    too_high.extend(["--root-threshold", "4"]);
    fails(&setup, &init(&too_high), 2, "it must be from 1 to 3");
    fails(
        &setup,
        &init(&["--root-key", "officer-a", "--root-key", "officer-a"]),
        2,
        "named twice",
    );
    fails(
        &setup,
        &init(&["--root-key", "officer-a", "--root-key", "officer-x"]),
        5,
        "root key \"officer-x\" is not in trustd",
    );
    fails(&setup, &init(&["--root-threshold", "2"]), 2, "from 1 to 1");
    // One key under two names (loaded twice): notary would count it twice.
    let ca = &setup.server.ca;
    ca.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "twice.pem",
    ]);
    let pem = ca.dir.path().join("twice.pem");
    for name in ["twice-1", "twice-2"] {
        setup
            .trustd
            .ok(&["key", "load", pem.to_str().unwrap(), "--name", name]);
    }
    fails(
        &setup,
        &init(&["--root-key", "twice-1", "--root-key", "twice-2"]),
        2,
        "are the same key",
    );
    let out = setup.trustctl(&["inspect", gun]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "nothing was published: {}",
        stderr(&out)
    );

    // 2 of 3: three certificates, each signed by its own key; the root signed by all three.
    let mut two_of_three = three.to_vec();
    two_of_three.extend(["--root-threshold", "2"]);
    let args = init(&two_of_three);
    let said = setup.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(said.contains("(2 of 3 must sign)"), "{said}");
    let v1 = server_root(&setup, gun);
    assert_eq!(v1["signed"]["roles"]["root"]["threshold"], 2);
    let v1_ids = root_keyids(&v1);
    assert_eq!(v1_ids.len(), 3);
    for id in &v1_ids {
        assert_eq!(v1["signed"]["keys"][id]["keytype"], "ecdsa-x509");
    }
    assert_eq!(v1["signatures"].as_array().unwrap().len(), 3);
    setup.ok(&["sign", &format!("{gun}:v1@{DIGEST}"), "--size", "10"]);

    // Clients that cache version 1: a notary client, the docker CLI, a second trustctl.
    let notary_v1 = tempfile::tempdir().unwrap();
    let listed =
        String::from_utf8(setup.server.notary(notary_v1.path(), &["list", gun]).stdout).unwrap();
    assert!(listed.contains("v1"), "{listed}");
    let docker_v1 = setup.docker_inspect(gun);
    assert_eq!(docker_v1[0]["SignedTags"][0]["SignedTag"], "v1");
    assert_eq!(
        docker_v1[0]["AdministrativeKeys"][0]["Keys"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let trustctl_v1 = tempfile::tempdir().unwrap();
    let with_cache = |cache: &std::path::Path, args: &[&str]| {
        let out = setup
            .trustd
            .trustctl()
            .args(args)
            .args(["--server", &setup.server.url, "--tls-ca"])
            .arg(setup.server.ca.ca_cert())
            .arg("--trust-dir")
            .arg(cache)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    with_cache(trustctl_v1.path(), &["inspect", gun]);

    // Rotation: officer-c's token is lost; officer-d replaces it. Version 2 is signed by the
    // old root's keys held here and by the new ones; a and b keep their certificates.
    let said = setup.ok(&[
        "key",
        "rotate",
        gun,
        "root",
        "--root-key",
        "officer-a",
        "--root-key",
        "officer-b",
        "--root-key",
        "officer-d",
    ]);
    assert!(
        said.contains("root version 2, 2 of 3 keys must sign"),
        "{said}"
    );
    let v2 = server_root(&setup, gun);
    let v2_ids = root_keyids(&v2);
    assert_eq!(
        v2_ids[..2],
        v1_ids[..2],
        "kept keys keep their certificates"
    );
    assert_ne!(v2_ids[2], v1_ids[2]);
    assert!(
        v2["signed"]["keys"].get(&v1_ids[2]).is_none(),
        "officer-c's certificate is gone"
    );
    let notary_v2 = tempfile::tempdir().unwrap();
    setup.server.notary(notary_v2.path(), &["list", gun]);

    // Renewal: the same keys, new certificates, signed under the old and the new key IDs.
    let said = setup.ok(&["key", "rotate", gun, "root", "--renew-certificates"]);
    assert!(said.contains("root version 3"), "{said}");
    let v3 = server_root(&setup, gun);
    let v3_ids = root_keyids(&v3);
    assert!(
        v3_ids.iter().all(|id| !v2_ids.contains(id)),
        "every certificate is new"
    );
    assert_eq!(v3["signatures"].as_array().unwrap().len(), 6);
    // A threshold is never lowered by leaving it out: one key cannot carry a 2-of-3 root.
    fails(
        &setup,
        &["key", "rotate", gun, "root", "--root-key", "officer-a"].map(String::from),
        2,
        "lower it with --root-threshold",
    );
    assert_eq!(server_root(&setup, gun), v3);

    // Every client that cached an older root follows, version by version, and still sees v1.
    for cache in [&notary_v1, &notary_v2] {
        let listed =
            String::from_utf8(setup.server.notary(cache.path(), &["list", gun]).stdout).unwrap();
        assert!(listed.contains("v1"), "{listed}");
    }
    let docker_now = setup.docker_inspect(gun);
    assert_eq!(docker_now[0]["SignedTags"], docker_v1[0]["SignedTags"]);
    let ours = with_cache(trustctl_v1.path(), &["inspect", gun]);
    assert_eq!(ours, docker_now, "trustctl walked from version 1 to 3");
    setup.ok(&["sign", &format!("{gun}:v2@{DIGEST}"), "--size", "10"]);
    assert!(setup.notary_list(gun).contains("v2"));

    // Monitoring: nothing expires soon; each root certificate has its ten years.
    let document = setup.ok(&["check", gun, "--json"]);
    assert_matches_schema("check.schema.json", &document);
    let checked: serde_json::Value = serde_json::from_str(&document).unwrap();
    assert_eq!(checked["repositories"][0]["ok"], true);
    let items = checked["repositories"][0]["items"].as_array().unwrap();
    let certificates: Vec<&serde_json::Value> = items
        .iter()
        .filter(|i| i["what"].as_str().unwrap().starts_with("root certificate"))
        .collect();
    assert_eq!(certificates.len(), 3, "{document}");
    assert!(certificates
        .iter()
        .all(|c| c["days_left"].as_i64().unwrap() >= 3648));
    assert!(items.iter().all(|i| i["soon"] == false));
    let out = setup.trustctl(&["check", gun, "registry.example.test/team/none"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{gun}: ok")));

    // Too few current root keys here: refused, naming the missing ones; nothing sent.
    setup.trustd.ok(&["key", "delete", "officer-a", "--yes"]);
    setup.trustd.ok(&["key", "delete", "officer-b", "--yes"]);
    let out = setup.trustctl(&["key", "rotate", gun, "root", "--root-key", "officer-d"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("needs 2 of the current 3 root keys; trustd holds 1"),
        "{err}"
    );
    assert!(
        err.contains(&v3_ids[0]) && err.contains(&v3_ids[1]),
        "{err}"
    );
    assert_eq!(server_root(&setup, gun), v3, "nothing was published");
}

/// Officers on two machines, each with their own token and trustd: officer B hands over a
/// root certificate, A starts a rotation to a 2-of-3 root, each signs the file on their own
/// machine, and it is published once; what must be refused on the way is, and nothing is sent.
#[test]
fn officers_on_two_machines_sign_a_ceremony_file_in_turn() {
    let setup = Dct::new("ceremony-a");
    let gun = "registry.example.test/team/keep";
    setup.trustd.ok(&["key", "generate", "officer-a"]);
    setup.trustd.ok(&["key", "generate", "officer-c"]);
    setup.ok(&["init", gun, "--root-key", "officer-a"]);
    setup.ok(&["sign", &format!("{gun}:v1@{DIGEST}"), "--size", "10"]);
    let notary_v1 = tempfile::tempdir().unwrap();
    setup.server.notary(notary_v1.path(), &["list", gun]);
    let v1 = server_root(&setup, gun);
    let officer_a_id = root_keyids(&v1)[0].clone();

    // Machine B: its own token, trustd, socket and trust cache.
    let machine_b = OtherMachine::start("ceremony-b");
    let trustd_b = &machine_b.trustd;
    let on_b = |args: &[&str]| machine_b.trustctl(&setup, args);
    trustd_b.ok(&["key", "generate", "officer-b"]);
    trustd_b.ok(&["key", "generate", "stranger"]);
    let handover = tempfile::tempdir().unwrap();
    let cert_b = handover.path().join("officer-b.pem");
    let wrong_cn = handover.path().join("wrong-cn.pem");
    for (for_gun, out) in [(gun, &cert_b), ("registry.example.test/other", &wrong_cn)] {
        let out = out.to_str().unwrap();
        trustd_b.ok(&[
            "key",
            "root-cert",
            "officer-b",
            "--gun",
            for_gun,
            "--out",
            out,
        ]);
    }

    // Machine A starts: keep officer-a, add B's certificate and officer-c, 2 of 3.
    let ceremony = handover.path().join("rotation.json");
    let start = |cert: &std::path::Path, out: &std::path::Path| {
        setup.trustctl(&[
            "ceremony",
            "start",
            gun,
            "root-rotation",
            "--keep",
            &officer_a_id,
            "--root-cert",
            cert.to_str().unwrap(),
            "--root-key",
            "officer-c",
            "--root-threshold",
            "2",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    // An officer's certificate for another repository, a CA's, or an expired one is refused.
    let refused = handover.path().join("refused.json");
    let subject = format!("/CN={}", gun.replace('/', "\\/"));
    setup.server.ca.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &subject,
        "-days",
        "2",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-keyout",
        "officer-ca.key",
        "-out",
        "officer-ca.pem",
    ]);
    let ca_cert = setup.server.ca.dir.path().join("officer-ca.pem");
    let expired = handover.path().join("expired.pem");
    std::fs::write(&expired, root_certificate_ending_in(gun, -1)).unwrap();
    for (cert, says) in [
        (wrong_cn.clone(), "not registry.example.test/team/keep"),
        (ca_cert, "CA certificate"),
        (expired, "outside its validity period"),
    ] {
        let out = start(&cert, &refused);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(!refused.exists());
    }
    let out = start(&cert_b, &ceremony);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("threshold: 1 of 1 -> 2 of 3"), "{said}");
    assert!(said.contains("Fingerprint (read it aloud): "), "{said}");
    let out = start(&cert_b, &ceremony);
    assert_eq!(
        out.status.code(),
        Some(2),
        "never overwritten: {}",
        stderr(&out)
    );

    // Below both thresholds: refused locally, saying who may still sign; nothing sent.
    let path = ceremony.to_str().unwrap();
    let out = setup.trustctl(&["ceremony", "publish", path]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was sent"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&officer_a_id), "{}", stderr(&out));
    assert_eq!(server_root(&setup, gun), v1);

    // A signs; signing twice is refused.
    let said = setup.ok(&["ceremony", "sign", path, "--key", "officer-a", "--yes"]);
    assert!(
        said.contains("current root 1 of 1, new root 1 of 2"),
        "{said}"
    );
    let out = setup.trustctl(&["ceremony", "sign", path, "--key", "officer-a", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("already signed"), "{}", stderr(&out));

    // The file travels to B. A key that is not a signer is refused; an edited root is found out.
    let out = on_b(&["ceremony", "sign", path, "--key", "stranger", "--yes"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let mut edited: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ceremony).unwrap()).unwrap();
    let body = base64_decode(edited["signed"].as_str().unwrap());
    let mut root: serde_json::Value = serde_json::from_slice(&body).unwrap();
    root["roles"]["root"]["threshold"] = 1.into();
    edited["signed"] = base64_encode(&canonical(&root)).into();
    let tampered = handover.path().join("tampered.json");
    std::fs::write(&tampered, edited.to_string()).unwrap();
    let out = on_b(&["ceremony", "show", tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("changed after it was signed"),
        "{}",
        stderr(&out)
    );

    // Not signed, but checked: an expiry in the past, and another repository.
    for (field, value, says) in [
        ("expires", "2020-01-01T00:00:00Z", "this ceremony expired"),
        (
            "gun",
            "registry.example.test/team/other",
            "registry.example.test/team/other",
        ),
    ] {
        let mut edited: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&ceremony).unwrap()).unwrap();
        edited[field] = value.into();
        std::fs::write(&tampered, edited.to_string()).unwrap();
        let out = on_b(&[
            "ceremony",
            "sign",
            tampered.to_str().unwrap(),
            "--key",
            "officer-b",
            "--yes",
        ]);
        assert_ne!(out.status.code(), Some(0), "{field}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{field}: {}", stderr(&out));
    }

    let out = on_b(&["ceremony", "show", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("may sign: "),
        "{}",
        stderr(&out)
    );
    let out = on_b(&["ceremony", "sign", path, "--key", "officer-b", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ready to publish"));

    // Published from B, in one upload; every client trusts the 2-of-3 root.
    let out = on_b(&["ceremony", "publish", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v2 = server_root(&setup, gun);
    assert_eq!(v2["signed"]["version"], 2);
    assert_eq!(v2["signed"]["roles"]["root"]["threshold"], 2);
    let listed =
        String::from_utf8(setup.server.notary(notary_v1.path(), &["list", gun]).stdout).unwrap();
    assert!(
        listed.contains("v1"),
        "the client that cached version 1 follows: {listed}"
    );
    assert_eq!(
        setup.docker_inspect(gun)[0]["SignedTags"][0]["SignedTag"],
        "v1"
    );
    setup.ok(&["inspect", gun]);

    // The same file again: the repository moved on.
    let out = setup.trustctl(&["ceremony", "publish", path]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("the repository changed since this ceremony started"));
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Canonical JSON as notary signs it (sorted keys, no spaces), for an edited root.
fn canonical(value: &serde_json::Value) -> Vec<u8> {
    trustd_notary::canonical::to_vec(value).unwrap()
}

/// A root certificate for `gun` whose ten years end `days_left` days from now (negative: it
/// has expired), around a fresh key held only here, signed by that key.
fn root_certificate_ending_in(gun: &str, days_left: i64) -> String {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;
    use trustd_notary::root_cert::{self, RootCertSpec, VALIDITY_DAYS};
    let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let spki = key.verifying_key().to_public_key_der().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let spec = RootCertSpec {
        gun,
        public_key: spki.as_bytes(),
        not_before: (now - (VALIDITY_DAYS as i64 - days_left) * 86400) as u64,
        serial: [9; 16],
    };
    let tbs = spec.tbs().unwrap();
    let der = der::Encode::to_der(&tbs).unwrap();
    let signature: p256::ecdsa::Signature = key.sign(&der);
    let cert = root_cert::assemble(tbs, signature.to_der().as_bytes()).unwrap();
    root_cert::to_pem(&cert).unwrap()
}

/// A root certificate 99 days from its end, brought in through a ceremony: `inspect` warns
/// with the command that renews it, and `check` exits 1 for monitoring.
#[test]
fn a_root_certificate_near_its_end_is_warned_about_and_fails_check() {
    let setup = Dct::new("root-expiry");
    let gun = "registry.example.test/team/aging";
    setup.trustd.ok(&["key", "generate", "officer-a"]);
    setup.ok(&["init", gun, "--root-key", "officer-a"]);
    setup.ok(&["sign", &format!("{gun}:v1@{DIGEST}"), "--size", "10"]);
    let officer_a = root_keyids(&server_root(&setup, gun))[0].clone();
    let work = tempfile::tempdir().unwrap();
    let aging = work.path().join("aging.pem");
    std::fs::write(&aging, root_certificate_ending_in(gun, 99)).unwrap();
    let file = work.path().join("rotation.json");
    let file_arg = file.to_str().unwrap();
    setup.ok(&[
        "ceremony",
        "start",
        gun,
        "root-rotation",
        "--keep",
        &officer_a,
        "--root-cert",
        aging.to_str().unwrap(),
        "--root-threshold",
        "1",
        "--out",
        file_arg,
    ]);
    setup.ok(&["ceremony", "sign", file_arg, "--key", "officer-a", "--yes"]);
    setup.ok(&["ceremony", "publish", file_arg]);
    let aging_id = root_keyids(&server_root(&setup, gun))
        .into_iter()
        .find(|id| *id != officer_a)
        .unwrap();

    let out = setup.trustctl(&["inspect", gun]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warned = stderr(&out);
    assert!(
        warned.contains(&format!(
            "the root certificate {aging_id} expires in 98 days"
        )) || warned.contains(&format!(
            "the root certificate {aging_id} expires in 99 days"
        )),
        "{warned}"
    );
    assert!(
        warned.contains("--renew-certificates") && warned.contains("cannot recover"),
        "{warned}"
    );
    assert!(
        !warned.contains(&officer_a),
        "only what expires soon: {warned}"
    );

    let out = setup.trustctl(&["check", gun, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let document = String::from_utf8(out.stdout).unwrap();
    assert_matches_schema("check.schema.json", &document);
    let checked: serde_json::Value = serde_json::from_str(&document).unwrap();
    assert_eq!(checked["repositories"][0]["ok"], false);
    let soon: Vec<&serde_json::Value> = checked["repositories"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["soon"] == true)
        .collect();
    assert_eq!(soon.len(), 1, "{document}");
    assert_eq!(soon[0]["what"], format!("root certificate {aging_id}"));
}

/// A k-of-n release: targets/releases needs 2 signatures; alice (machine A) signs a tag and,
/// holding one key, starts a release ceremony instead of publishing; bob (machine B) signs
/// the file and publishes it. Nothing shows the tag before; docker and notary show it after.
/// A ceremony whose role moved on meanwhile is refused and sends nothing.
#[test]
fn a_release_needing_two_signers_is_published_only_with_both() {
    let setup = Dct::new("release-a");
    let gun = "registry.example.test/team/release";
    let machine_b = OtherMachine::start("release-b");
    let trustd_b = &machine_b.trustd;
    let on_b = |args: &[&str]| machine_b.trustctl(&setup, args);
    setup.trustd.ok(&["key", "generate", "alice"]);
    trustd_b.ok(&["key", "generate", "bob"]);
    std::fs::copy(
        trustd_b.cwd().join("bob.pub"),
        setup.trustd.cwd().join("bob.pub"),
    )
    .unwrap();
    setup.ok(&["init", gun]);
    setup.ok(&["signer", "add", "--key", "alice.pub", "alice", gun]);
    let out = setup.trustctl(&[
        "signer",
        "add",
        "--key",
        "bob.pub",
        "bob",
        gun,
        "--threshold",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("it must be from 1 to 2"),
        "{}",
        stderr(&out)
    );
    setup.ok(&[
        "signer",
        "add",
        "--key",
        "bob.pub",
        "bob",
        gun,
        "--threshold",
        "2",
    ]);
    let listed: serde_json::Value =
        serde_json::from_str(&setup.ok(&["delegation", "list", gun, "--json"])).unwrap();
    let releases = listed["delegations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "targets/releases")
        .unwrap()
        .clone();
    assert_eq!(releases["threshold"], 2);

    // Alice signs: one key of two, so a release ceremony starts and nothing is published.
    let start = |tag: &str, digest: &str| -> String {
        let document = setup.ok(&[
            "sign",
            &format!("{gun}:{tag}@{digest}"),
            "--size",
            "10",
            "--signer",
            "alice",
            "--json",
        ]);
        assert_matches_schema("batch.schema.json", &document);
        let parsed: serde_json::Value = serde_json::from_str(&document).unwrap();
        assert_eq!(parsed["images"][0]["result"], "pending", "{document}");
        let pending = &parsed["images"][0]["notary"]["pending"];
        assert_eq!(
            (&pending["signed"], &pending["threshold"]),
            (&1.into(), &2.into())
        );
        setup
            .trustd
            .cwd()
            .join(pending["ceremony"].as_str().unwrap())
            .to_str()
            .unwrap()
            .to_owned()
    };
    let first = start("v1", DIGEST);
    // Nothing is published with one signature: targets/releases was never uploaded.
    let curl = std::process::Command::new("curl")
        .args([
            "--silent",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(setup.server.ca.ca_cert())
        .arg(format!(
            "{}/v2/{gun}/_trust/tuf/targets/releases.json",
            setup.server.url
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "404");
    assert!(!setup.notary_list(gun).contains("v1"));
    assert!(setup.docker_inspect(gun)[0]["SignedTags"]
        .as_array()
        .unwrap()
        .is_empty());

    // Bob, on machine B, sees what he signs, signs, and publishes.
    let out = on_b(&["ceremony", "show", &first]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        shown.contains(&format!("+ tag v1 {DIGEST} (10 bytes)")),
        "{shown}"
    );
    assert!(
        shown.contains("Signed for the release: 1 of 2 needed (not met)"),
        "{shown}"
    );
    let out = on_b(&["ceremony", "sign", &first, "--key", "bob", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("release 2 of 2; ready to publish"));
    let out = on_b(&["ceremony", "publish", &first]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(setup.notary_list(gun).contains("v1"));
    let docker = setup.docker_inspect(gun);
    let signed: Vec<&str> = docker[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["SignedTag"].as_str().unwrap())
        .collect();
    assert_eq!(signed, ["v1"]);

    // Two ceremonies from the same base: once one is published, the other is refused.
    let stale = start("v2", DIGEST);
    let fresh = start("v3", DIGEST);
    for file in [&stale, &fresh] {
        let out = on_b(&["ceremony", "sign", file, "--key", "bob", "--yes"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = on_b(&["ceremony", "publish", &fresh]);
    assert!(out.status.success(), "{}", stderr(&out));
    let releases_now = setup
        .server
        .get(&format!("/v2/{gun}/_trust/tuf/targets/releases.json"));
    let out = setup.trustctl(&["ceremony", "publish", &stale]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the repository changed since this ceremony started"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        setup
            .server
            .get(&format!("/v2/{gun}/_trust/tuf/targets/releases.json")),
        releases_now,
        "nothing was sent"
    );
    assert!(setup.notary_list(gun).contains("v3") && !setup.notary_list(gun).contains("v2"));
}

/// The threshold is enforced by everyone, not only by trustctl: a root version signed by one
/// of its three keys (threshold 2), made outside trustctl with `trustctl sign-blob`, is
/// refused by notary-server on upload, and, served to fresh clients by a server that lies,
/// by the notary client, docker and trustctl; the same root signed by two is accepted.
#[test]
fn a_root_below_its_threshold_is_refused_by_the_server_and_every_client() {
    use std::sync::{Arc, Mutex};
    use trustd_e2e::http::{HttpServer, Response};

    let setup = Dct::new("root-threshold");
    let gun = "registry.example.test/team/strict";
    for officer in ["officer-a", "officer-b", "officer-c"] {
        setup.trustd.ok(&["key", "generate", officer]);
    }
    setup.ok(&[
        "init",
        gun,
        "--root-key",
        "officer-a",
        "--root-key",
        "officer-b",
        "--root-key",
        "officer-c",
        "--root-threshold",
        "2",
    ]);
    setup.ok(&["sign", &format!("{gun}:v1@{DIGEST}"), "--size", "10"]);
    let v1 = server_root(&setup, gun);
    let ids = root_keyids(&v1);

    // Version 2 of the same root, signed outside trustctl's publishing code.
    let mut body = v1["signed"].clone();
    body["version"] = 2.into();
    let body = canonical(&body);
    let work = tempfile::tempdir().unwrap();
    let body_file = work.path().join("root.v2");
    std::fs::write(&body_file, &body).unwrap();
    let signature = |officer: &str, keyid: &str| {
        let b64 = setup
            .trustd
            .ok(&["sign-blob", "--key", officer, body_file.to_str().unwrap()]);
        let der = base64_decode(b64.trim());
        let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        serde_json::json!({"keyid": keyid, "method": "ecdsa", "sig": base64_encode(&raw)})
    };
    let signed_by = |signatures: Vec<serde_json::Value>| {
        let text = format!(
            "{{\"signed\":{},\"signatures\":{}}}",
            String::from_utf8(body.clone()).unwrap(),
            serde_json::Value::Array(signatures)
        );
        text.into_bytes()
    };
    let one = signed_by(vec![signature("officer-a", &ids[0])]);
    let two = signed_by(vec![
        signature("officer-a", &ids[0]),
        signature("officer-b", &ids[1]),
    ]);
    let upload = |root: &[u8]| {
        let server = trustd_notary::client::server::NotaryServer::new(
            &setup.server.url,
            Some(&setup.server.ca.ca_cert()),
            None,
        )
        .unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(server.publish(gun, &[("root".to_owned(), root.to_vec())]))
    };

    // notary-server refuses one signature, and takes two.
    let refused = upload(&one).unwrap_err().to_string();
    assert!(refused.contains("400"), "{refused}");
    assert_eq!(server_root(&setup, gun), v1);
    upload(&two).unwrap();
    assert_eq!(server_root(&setup, gun)["signed"]["version"], 2);

    // A server that lies: the real one's files, but root.json signed by one key.
    let lie: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let lying = lie.clone();
    let upstream = setup.server.url.clone();
    let ca = setup.server.ca.ca_cert();
    let (cert, key) = setup.server.ca.server_cert();
    let proxy = HttpServer::start(Some((&cert, &key)), move |request| {
        if request.path().ends_with("/root.json") {
            if let Some(root) = lying.lock().unwrap().clone() {
                return Response::new(200, root);
            }
        }
        let out = std::process::Command::new("curl")
            .args(["--silent", "--cacert"])
            .arg(&ca)
            .args(["--write-out", "\n%{http_code}"])
            .arg(format!("{upstream}{}", request.target))
            .output()
            .unwrap();
        let text = out.stdout;
        let split = text.iter().rposition(|b| *b == b'\n').unwrap();
        let status: u16 = String::from_utf8_lossy(&text[split + 1..]).parse().unwrap();
        Response::new(status, text[..split].to_vec())
    });
    // Fresh clients each time: nothing cached from an earlier run.
    let clients = |expect_ok: bool| {
        let docker_config = tempfile::tempdir().unwrap();
        let tls = docker_config
            .path()
            .join("tls")
            .join(format!("127.0.0.1:{}", proxy.port));
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::copy(setup.server.ca.ca_cert(), tls.join("ca.crt")).unwrap();
        let notary_dir = tempfile::tempdir().unwrap();
        let notary = setup
            .server
            .client(notary_dir.path())
            .args(["-s", &proxy.url, "list", gun])
            .output()
            .unwrap();
        let docker = std::process::Command::new("docker")
            .args(["trust", "inspect", gun])
            .env("DOCKER_CONFIG", docker_config.path())
            .env("DOCKER_CONTENT_TRUST_SERVER", &proxy.url)
            .output()
            .unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let ours = setup
            .trustd
            .trustctl()
            .args(["inspect", gun, "--server", &proxy.url, "--tls-ca"])
            .arg(setup.server.ca.ca_cert())
            .arg("--trust-dir")
            .arg(fresh.path())
            .output()
            .unwrap();
        for (who, out) in [
            ("notary", &notary),
            ("docker", &docker),
            ("trustctl", &ours),
        ] {
            assert_eq!(
                out.status.success(),
                expect_ok,
                "{who}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                stderr(out)
            );
        }
        stderr(&ours)
    };
    // The control: through the proxy, the genuine root is trusted by all three.
    clients(true);
    *lie.lock().unwrap() = Some(one.clone());
    let said = clients(false);
    assert!(
        said.contains("1 valid signature(s) from its keys, 2 required"),
        "{said}"
    );
}

/// A 2-of-3 root whose keys sit on three kinds of device behind one trustd: a PKCS#11 token
/// (SoftHSM), a TPM (swtpm) and a YubiKey slot with touch policy always (the virtual card);
/// then a rotation that replaces the TPM key. A root key whose device is gone is named with
/// its device.
#[test]
fn a_root_on_a_token_a_tpm_and_a_yubikey_rotates_its_tpm_key() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use trustd_e2e::notary::NotaryServer;
    use trustd_e2e::piv::PivRig;
    use trustd_e2e::tpm::{secret_file, Swtpm};

    const SERIAL: u32 = 24681357;
    const PIV_PIN: &str = "135792";
    let rig = PivRig::start(SERIAL);
    let tpm = Swtpm::start();
    let hsm = SoftHsm::new("root-devices");
    let secrets = tempfile::tempdir().unwrap();
    let hsm_pin = secret_file(secrets.path(), "hsm.pin", USER_PIN);
    let piv_pin = secret_file(secrets.path(), "piv.pin", PIV_PIN);
    let mut options = Options::for_token(&hsm);
    options.backends = Some(format!(
        "[[backend]]\ntype = \"pkcs11\"\nname = \"hsm\"\nmodule = \"{}\"\ntoken_label = \"{}\"\npin = {{ file = \"{}\" }}\n\n\
         [[backend]]\ntype = \"tpm\"\nname = \"tpm\"\ntcti = \"{}\"\n\n\
         [[backend]]\ntype = \"piv\"\nname = \"yubikey\"\nserial = {SERIAL}\npin = {{ file = \"{}\" }}\n",
        options.module,
        options.token_label,
        hsm_pin.display(),
        tpm.tcti(),
        piv_pin.display()
    ));
    let trustd = Trustd::start(&hsm, &options);
    let out = trustd.run_with_stdin(
        &["token", "piv", "init", "--backend", "yubikey", "--stdin"],
        &format!("{PIV_PIN}\n97531086\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let setup = Dct::assemble(hsm, trustd, NotaryServer::start());
    let gun = "registry.example.test/team/devices";

    // Someone touches the card whenever it asks, for the whole test.
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                rig.card.touch();
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            setup
                .trustd
                .ok(&["key", "generate", "officer-hsm", "--backend", "hsm"]);
            setup
                .trustd
                .ok(&["key", "generate", "officer-tpm", "--backend", "tpm"]);
            setup.trustd.ok(&[
                "key",
                "generate",
                "officer-yk",
                "--backend",
                "yubikey",
                "--slot",
                "9c",
                "--touch-policy",
                "always",
            ]);
            let out = setup.trustctl(&[
                "init",
                gun,
                "--root-key",
                "officer-hsm",
                "--root-key",
                "officer-tpm",
                "--root-key",
                "officer-yk",
                "--root-threshold",
                "2",
                "--targets-backend",
                "hsm",
            ]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(
                stderr(&out).contains("Touch the YubiKey"),
                "{}",
                stderr(&out)
            );
            setup.ok(&["sign", &format!("{gun}:v1@{DIGEST}"), "--size", "10"]);
            let cached = tempfile::tempdir().unwrap();
            let listed =
                String::from_utf8(setup.server.notary(cached.path(), &["list", gun]).stdout)
                    .unwrap();
            assert!(listed.contains("v1"), "{listed}");
            let v1_ids = root_keyids(&server_root(&setup, gun));

            // The TPM key is replaced by a new TPM key; the token's and the card's stay.
            setup
                .trustd
                .ok(&["key", "generate", "officer-tpm2", "--backend", "tpm"]);
            setup.ok(&[
                "key",
                "rotate",
                gun,
                "root",
                "--root-key",
                "officer-hsm",
                "--root-key",
                "officer-yk",
                "--root-key",
                "officer-tpm2",
            ]);
            let v2_ids = root_keyids(&server_root(&setup, gun));
            assert_eq!(v2_ids[..2], [v1_ids[0].clone(), v1_ids[2].clone()]);
            assert!(!v2_ids.contains(&v1_ids[1]));
            let listed =
                String::from_utf8(setup.server.notary(cached.path(), &["list", gun]).stdout)
                    .unwrap();
            assert!(listed.contains("v1"), "{listed}");
            assert_eq!(
                setup.docker_inspect(gun)[0]["SignedTags"][0]["SignedTag"],
                "v1"
            );

            // The card is pulled out: renewing needs every root key, and says which is gone.
            rig.remove_card();
            let out = setup.trustctl(&["key", "rotate", gun, "root", "--renew-certificates"]);
            assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains("officer-yk") && err.contains("YubiKey"),
                "{err}"
            );
            assert_eq!(
                root_keyids(&server_root(&setup, gun)),
                v2_ids,
                "nothing sent"
            );
        }));
        stop.store(true, Ordering::SeqCst);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
}
