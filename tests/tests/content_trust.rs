//! trustctl init / sign / inspect with every key in trustd (SoftHSM), against a live
//! notary-server, read by the real notary client and docker trust inspect.

use trustd_e2e::dct::Dct;
use trustd_e2e::notary::NotaryServer;
use trustd_e2e::stderr;

const DIGEST_A: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_B: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

#[test]
fn init_sign_and_resign_are_seen_by_notary_and_docker() {
    let setup = Dct::new("content-trust");
    let gun = "registry.example.test/team/app";
    let out = setup.ok(&["init", gun]);
    assert!(out.contains("Initialized"), "{out}");

    setup.ok(&[
        "sign",
        &format!("{gun}:1.0"),
        "--digest",
        DIGEST_A,
        "--size",
        "1234",
    ]);
    setup.ok(&["sign", &format!("{gun}:2.0@{DIGEST_B}"), "--size", "99"]);
    let tags = setup.notary_tags(gun);
    assert_eq!(tags["1.0"].digest, DIGEST_A[7..], "{tags:?}");
    assert_eq!(tags["1.0"].size, 1234, "{tags:?}");
    assert_eq!(tags["2.0"].digest, DIGEST_B[7..], "{tags:?}");
    assert_eq!(tags["2.0"].size, 99, "{tags:?}");

    // Re-signing a tag with a new digest replaces it.
    setup.ok(&[
        "sign",
        &format!("{gun}:1.0"),
        "--digest",
        DIGEST_B,
        "--size",
        "99",
    ]);
    let docker = setup.docker_inspect(gun);
    let tags = docker[0]["SignedTags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    assert!(tags
        .iter()
        .all(|t| t["Digest"] == DIGEST_B[7..] && t["Signers"][0] == "Repo Admin"));
    // trustctl's own view agrees with docker's, byte for byte.
    let ours: serde_json::Value = serde_json::from_str(&setup.ok(&["inspect", gun])).unwrap();
    assert_eq!(ours, docker);

    // Every signature was made in trustd, and audited there.
    let audited: Vec<_> = setup
        .trustd
        .audit_records()
        .into_iter()
        .filter(|r| r["event"] == "sign" && r["result"] == "allowed")
        .map(|r| r["key_name"].as_str().unwrap().to_owned())
        .collect();
    assert!(audited.contains(&format!("{gun}/root")), "{audited:?}");
    assert_eq!(
        audited
            .iter()
            .filter(|k| **k == format!("{gun}/targets"))
            .count(),
        4,
        "init + three signs: {audited:?}"
    );

    // A second init is refused and changes nothing.
    let again = setup.trustctl(&["init", gun]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has trust data"));
    assert_eq!(setup.docker_inspect(gun), docker);
}

#[test]
fn sign_initializes_a_new_repository_and_a_local_snapshot_key_works() {
    let setup = Dct::new("auto-init");
    let fresh = "registry.example.test/team/fresh";
    let out = setup.trustctl(&[
        "sign",
        &format!("{fresh}:v1"),
        "--digest",
        DIGEST_A,
        "--size",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("initializing"));
    assert!(setup.notary_tags(fresh).contains_key("v1"));

    let local = "registry.example.test/team/local-snapshot";
    setup.ok(&["init", local, "--local-snapshot"]);
    setup.ok(&[
        "sign",
        &format!("{local}:v1"),
        "--digest",
        DIGEST_B,
        "--size",
        "10",
    ]);
    assert_eq!(setup.notary_tags(local)["v1"].digest, DIGEST_B[7..]);
    let keys = setup.trustd.ok(&["key", "list"]);
    assert!(keys.contains(&format!("{local}/snapshot")), "{keys}");
}

#[test]
fn bad_input_gets_clear_errors() {
    let setup = Dct::new("cli-bad-input");
    let gun = "registry.example.test/team/app";
    for (args, code, text) in [
        (
            vec![
                "sign",
                "registry.example.test/team/app:1",
                "--digest",
                "sha256:xyz",
                "--size",
                "1",
            ],
            2,
            "64 hex",
        ),
        (
            vec![
                "sign",
                "registry.example.test/team/app",
                "--digest",
                DIGEST_A,
                "--size",
                "1",
            ],
            2,
            "name the tag",
        ),
        (
            vec!["sign", "registry.example.test/team/app:1", "--size", "1"],
            2,
            "--size goes with a digest",
        ),
        (
            vec![
                "sign",
                "Registry/App:1",
                "--digest",
                DIGEST_A,
                "--size",
                "1",
            ],
            2,
            "lower case",
        ),
    ] {
        let out = setup.trustctl(&args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(text),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Nothing was published by any of them.
    let out = setup.trustctl(&["inspect", gun]);
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn revoke_and_delete() {
    let setup = Dct::new("revoke-delete");
    let gun = "registry.example.test/team/app";
    setup.ok(&["init", gun]);
    for tag in ["1.0", "2.0", "3.0"] {
        setup.ok(&[
            "sign",
            &format!("{gun}:{tag}"),
            "--digest",
            DIGEST_A,
            "--size",
            "10",
        ]);
    }
    // Without --yes and without a terminal, nothing is revoked.
    let out = setup.trustctl(&["revoke", &format!("{gun}:1.0")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(setup.notary_tags(gun).contains_key("1.0"));

    setup.ok(&["revoke", &format!("{gun}:1.0"), "--yes"]);
    let tags = setup.notary_tags(gun);
    assert_eq!(tags.keys().collect::<Vec<_>>(), ["2.0", "3.0"], "{tags:?}");
    // Revoking a tag that is not signed says so.
    let out = setup.trustctl(&["revoke", &format!("{gun}:9.9"), "-y"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every tag.
    setup.ok(&["revoke", gun, "-y"]);
    let docker = setup.docker_inspect(gun);
    assert_eq!(docker[0]["SignedTags"].as_array().unwrap().len(), 0);

    // delete: local only keeps the server's data; --remote removes it.
    setup.ok(&["delete", gun]);
    assert!(!setup.trust_dir.path().join("tuf").join(gun).exists());
    setup.ok(&["inspect", gun]);
    // --remote asks first; with no terminal to ask on it needs --yes, and nothing is deleted.
    let out = setup.trustctl(&["delete", gun, "--remote"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pass --yes to confirm"),
        "{}",
        stderr(&out)
    );
    setup.ok(&["inspect", gun]);
    setup.ok(&["delete", gun, "--remote", "--yes"]);
    let out = setup.trustctl(&["inspect", gun]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A repository the server never had is not reported as deleted.
    let out = setup.trustctl(&["delete", gun, "--remote", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "has no trust data for {gun}: nothing to delete there"
        )),
        "{}",
        stderr(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Deleted the trust data"));
}

#[test]
fn key_rotation_is_followed_by_notary_docker_and_trustctl() {
    let setup = Dct::new("rotation");
    let gun = "registry.example.test/team/rotating";
    setup.ok(&["init", gun]);
    setup.ok(&["sign", &format!("{gun}:v1@{DIGEST_A}"), "--size", "10"]);
    // A notary client that trusts the repository as it was before the rotations.
    let notary_cache = tempfile::tempdir().unwrap();
    setup.server.notary(notary_cache.path(), &["list", gun]);
    let before = setup.docker_inspect(gun);
    let old_targets = before[0]["AdministrativeKeys"][1]["Keys"][0]["ID"].clone();

    // Targets: a new key in trustd; the root re-signed; the tag still signed.
    let out = setup.ok(&["key", "rotate", gun, "targets"]);
    assert!(out.contains(&format!("\"{gun}/targets.2\"")), "{out}");
    assert!(
        out.contains(&format!("trustctl key delete {gun}/targets")),
        "{out}"
    );
    let after = setup.docker_inspect(gun);
    let new_targets = after[0]["AdministrativeKeys"][1]["Keys"][0]["ID"].clone();
    assert_ne!(new_targets, old_targets);
    assert_eq!(after[0]["SignedTags"], before[0]["SignedTags"]);
    let ours: serde_json::Value = serde_json::from_str(&setup.ok(&["inspect", gun])).unwrap();
    assert_eq!(ours, after);
    // Signing goes on with the new key, found by its key ID.
    setup.ok(&["sign", &format!("{gun}:v2@{DIGEST_B}"), "--size", "20"]);
    let listing = String::from_utf8(
        setup
            .server
            .notary(notary_cache.path(), &["list", gun])
            .stdout,
    )
    .unwrap();
    assert!(
        listing.contains("v1") && listing.contains("v2"),
        "{listing}"
    );

    // Snapshot: into trustd, then back to the server; timestamp: a new server key.
    setup.ok(&["key", "rotate", gun, "snapshot"]);
    let keys = setup.trustd.ok(&["key", "list"]);
    assert!(keys.contains(&format!("{gun}/snapshot")), "{keys}");
    setup.ok(&["sign", &format!("{gun}:v3@{DIGEST_A}"), "--size", "30"]);
    setup.ok(&["key", "rotate", gun, "snapshot", "--server-managed"]);
    setup.ok(&["key", "rotate", gun, "timestamp", "-r"]);
    setup.ok(&["sign", &format!("{gun}:v4@{DIGEST_B}"), "--size", "40"]);
    let listing = String::from_utf8(
        setup
            .server
            .notary(notary_cache.path(), &["list", gun])
            .stdout,
    )
    .unwrap();
    for tag in ["v1", "v2", "v3", "v4"] {
        assert!(listing.contains(tag), "{listing}");
    }
    let root: serde_json::Value =
        serde_json::from_slice(&setup.server.get(&format!("/v2/{gun}/_trust/tuf/root.json")))
            .unwrap();
    assert_eq!(
        root["signed"]["version"], 5,
        "four rotations, four new roots"
    );
    assert_eq!(root["signed"]["keys"].as_object().unwrap().len(), 4);

    // What cannot be rotated that way is refused before anything changes.
    for (args, text) in [
        (
            vec!["key", "rotate", gun, "targets", "--server-managed"],
            "cannot be held by the server",
        ),
        (
            vec!["key", "rotate", gun, "timestamp"],
            "always the server's",
        ),
    ] {
        let out = setup.trustctl(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(text));
    }
    let unchanged: serde_json::Value =
        serde_json::from_slice(&setup.server.get(&format!("/v2/{gun}/_trust/tuf/root.json")))
            .unwrap();
    assert_eq!(unchanged["signed"]["version"], 5);
}

#[test]
fn trustctl_signs_into_a_repository_the_notary_client_made() {
    let setup = Dct::new("notary-made");
    let gun = "registry.example.test/team/notary-made";
    let notary_dir = tempfile::tempdir().unwrap();
    let artifact = notary_dir.path().join("artifact");
    std::fs::write(&artifact, b"manifest stand-in").unwrap();
    let notary = |args: &[&str]| {
        String::from_utf8(setup.server.notary(notary_dir.path(), args).stdout).unwrap()
    };
    notary(&["init", gun]);
    notary(&["add", gun, "v1", artifact.to_str().unwrap()]);
    notary(&["publish", gun]);

    // The notary client holds targets and snapshot keys; give both to trustd.
    for (role, passphrase) in [
        ("targets", "test targets passphrase"),
        ("snapshot", "test snapshot passphrase"),
    ] {
        let file = NotaryServer::key_file(notary_dir.path(), gun, role);
        setup
            .trustd
            .load_encrypted_key(&file, &format!("imported/{role}"), passphrase);
    }
    // trustctl finds them by key ID, whatever they are called in trustd.
    setup.ok(&["sign", &format!("{gun}:v2@{DIGEST_A}"), "--size", "7"]);

    // The notary client keeps reading the repository, and keeps signing into it.
    let listing = notary(&["list", gun]);
    assert!(
        listing.contains("v1") && listing.contains(&DIGEST_A[7..]),
        "{listing}"
    );
    notary(&["add", gun, "v3", artifact.to_str().unwrap()]);
    notary(&["publish", gun]);
    let ours: serde_json::Value = serde_json::from_str(&setup.ok(&["inspect", gun])).unwrap();
    let tags: Vec<&str> = ours[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["SignedTag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    assert_eq!(ours, setup.docker_inspect(gun));
    let audited = setup.trustd.audit_records();
    assert!(audited
        .iter()
        .any(|r| r["event"] == "sign" && r["key_name"] == "imported/snapshot"));
}

#[test]
fn a_server_that_is_not_a_notary_server_is_found_out_before_any_key_is_made() {
    let dct = trustd_e2e::dct::Dct::new("not-notary");
    // An HTTPS server with the same CA that answers 404 to everything, as a registry does
    // for notary's paths.
    let (cert, key) = dct.server.ca.server_cert();
    let elsewhere = trustd_e2e::http::HttpServer::start(Some((&cert, &key)), |_| {
        trustd_e2e::http::Response::new(404, "404 page not found\n")
    });
    let gun = "registry.example.test/team/elsewhere";
    let digest = format!("sha256:{}", "cd".repeat(32));
    let out = dct
        .command(
            &["sign", &format!("{gun}:v1@{digest}"), "--size", "5"],
            &elsewhere.url,
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", trustd_e2e::stderr(&out));
    assert!(
        trustd_e2e::stderr(&out).contains(&elsewhere.url)
            && trustd_e2e::stderr(&out).contains("is it a notary server?")
            && trustd_e2e::stderr(&out).contains("(from --server)"),
        "{}",
        trustd_e2e::stderr(&out)
    );
    let keys = dct.trustd.ok(&["key", "list", "--json"]);
    assert!(!keys.contains(gun), "no key was made for it: {keys}");
}
