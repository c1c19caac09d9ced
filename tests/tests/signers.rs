//! Signers and delegations with keys in trustd: trustctl signer add/remove and delegation
//! commands, signing as a signer, and the real docker CLI and notary client on both sides.

use std::process::Output;

use trustd_e2e::dct::Dct;
use trustd_e2e::stderr;

const DIGEST_A: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_B: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn tags_and_signers(report: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    report[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["SignedTag"].as_str().unwrap().to_owned(),
                t["Signers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn fails(out: &Output, code: i32, text: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    assert!(
        stderr(out).contains(text),
        "wanted {text:?} in: {}",
        stderr(out)
    );
}

#[test]
fn a_signer_docker_added_signs_with_its_key_in_trustd() {
    let dct = Dct::new("docker-signers");
    let gun = "registry.example.test/team/signed";
    // Alice's key is made in trustd; docker's admin adds her with the public key file.
    let out = dct.trustd.ok(&["key", "generate", "alice"]);
    assert!(out.contains("alice.pub"), "{out}");
    let pub_file = std::fs::read_to_string(dct.trustd.cwd().join("alice.pub")).unwrap();
    assert!(
        pub_file.starts_with("-----BEGIN PUBLIC KEY-----\nrole: alice\n\n"),
        "{pub_file}"
    );
    dct.docker_ok(&["trust", "signer", "add", "--key", "alice.pub", "alice", gun]);

    let out = dct.ok(&["sign", &format!("{gun}:v1@{DIGEST_A}"), "--size", "10"]);
    assert!(out.contains("targets/releases, targets/alice"), "{out}");
    let docker = dct.docker_inspect(gun);
    assert_eq!(
        tags_and_signers(&docker),
        [("v1".to_owned(), vec!["alice".to_owned()])]
    );
    let ours: serde_json::Value = serde_json::from_str(&dct.ok(&["inspect", gun])).unwrap();
    assert_eq!(ours, docker);
    // The pretty tables too, signer section included.
    let docker_pretty = dct.docker_ok(&["trust", "inspect", "--pretty", gun]);
    let our_pretty = dct.ok(&["inspect", "--pretty", gun]);
    assert!(
        docker_pretty.contains("List of signers and their keys"),
        "{docker_pretty}"
    );
    assert_eq!(our_pretty.trim_end(), docker_pretty.trim_end());

    // A second signer in trustd signs the same digest: both show on the tag; releases,
    // unchanged, is not re-signed.
    dct.trustd.ok(&["key", "generate", "carol"]);
    dct.docker_ok(&["trust", "signer", "add", "--key", "carol.pub", "carol", gun]);
    let out = dct.ok(&[
        "sign",
        "--signer",
        "carol",
        &format!("{gun}:v1@{DIGEST_A}"),
        "--size",
        "10",
    ]);
    assert!(out.contains("targets/releases, targets/carol"), "{out}");
    let docker = dct.docker_inspect(gun);
    assert_eq!(
        tags_and_signers(&docker),
        [(
            "v1".to_owned(),
            vec!["alice".to_owned(), "carol".to_owned()]
        )]
    );

    // Signing as someone who is not a signer, or outside what trustd holds, is refused.
    fails(
        &dct.trustctl(&[
            "sign",
            "--signer",
            "zed",
            &format!("{gun}:v2@{DIGEST_B}"),
            "--size",
            "1",
        ]),
        5,
        "zed is not a signer of",
    );

    // The admin hands docker's repository key to trustd (docker keeps it encrypted in its
    // trust directory) so trustctl can change the delegations.
    let targets_key = trustd_e2e::notary::NotaryServer::key_file(
        &dct.docker_config.path().join("trust"),
        gun,
        "targets",
    );
    dct.trustd.load_encrypted_key(
        &targets_key,
        "docker-admin",
        trustd_e2e::dct::DOCKER_REPOSITORY_PASSPHRASE,
    );

    // docker's own signer remove "succeeds" and changes nothing; trustctl's really removes.
    // Alice signed the latest releases: without --force (and no terminal) it refuses.
    fails(
        &dct.trustctl(&["signer", "remove", "alice", gun]),
        2,
        "pass --force",
    );
    let before = dct.docker_inspect(gun);
    assert_eq!(before[0]["Signers"].as_array().unwrap().len(), 2);
    dct.ok(&["signer", "remove", "carol", gun]);
    let after = dct.docker_inspect(gun);
    let signers: Vec<&str> = after[0]["Signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap())
        .collect();
    assert_eq!(signers, ["alice"]);
    fails(
        &dct.trustctl(&["signer", "remove", "carol", gun]),
        5,
        "not a signer",
    );
    dct.ok(&["signer", "remove", "alice", gun, "--force"]);
    let listing = dct.ok(&["delegation", "list", gun]);
    assert!(!listing.contains("targets/alice"), "{listing}");
}

#[test]
fn a_certificate_signer_added_by_trustctl_is_used_by_the_notary_client() {
    let dct = Dct::new("cert-signers");
    let gun = "registry.example.test/team/bundle";
    dct.ok(&["init", gun]);
    // Bob's key and certificate, as in a UCP client bundle, made outside trustd.
    let dir = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "30",
        "-subj",
        "/CN=bob",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
    ]);
    let cert = dir.path().join("cert.pem");
    dct.ok(&["signer", "add", "--key", cert.to_str().unwrap(), "bob", gun]);

    // The notary client accepts the delegation and signs with bob's key from the bundle.
    let notary_dir = tempfile::tempdir().unwrap();
    dct.server
        .notary(notary_dir.path(), &["list", gun, "--roles", "targets/bob"]);
    let key = dir.path().join("key.pem");
    dct.server.notary(
        notary_dir.path(),
        &[
            "key",
            "import",
            key.to_str().unwrap(),
            "--role",
            "targets/bob",
        ],
    );
    let artifact = dir.path().join("artifact");
    std::fs::write(&artifact, b"manifest stand-in").unwrap();
    dct.server.notary(
        notary_dir.path(),
        &[
            "add",
            gun,
            "v7",
            artifact.to_str().unwrap(),
            "--roles",
            "targets/releases",
            "--roles",
            "targets/bob",
            "-p",
        ],
    );
    let ours: serde_json::Value = serde_json::from_str(&dct.ok(&["inspect", gun])).unwrap();
    assert_eq!(
        tags_and_signers(&ours),
        [("v7".to_owned(), vec!["bob".to_owned()])]
    );
    assert_eq!(ours, dct.docker_inspect(gun));
}

/// A signer certificate whose ten years of validity ended a year ago.
fn expired_certificate() -> String {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;
    use trustd_notary::root_cert::{self, RootCertSpec};
    use x509_cert::der::Encode;
    let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let spki = key.verifying_key().to_public_key_der().unwrap();
    let mut spec = RootCertSpec::now("old", spki.as_bytes());
    spec.not_before -= 11 * 365 * 24 * 3600;
    let tbs = spec.tbs().unwrap();
    let signature: p256::ecdsa::DerSignature = key.sign(&tbs.to_der().unwrap());
    root_cert::to_pem(&root_cert::assemble(tbs, signature.as_bytes()).unwrap()).unwrap()
}

#[test]
fn delegation_commands_and_bad_input() {
    let dct = Dct::new("delegations");
    let gun = "registry.example.test/team/deleg";
    dct.ok(&["init", gun]);
    dct.trustd.ok(&["key", "generate", "ci"]);
    let ci_pub = dct.trustd.cwd().join("ci.pub");
    let ci = ci_pub.to_str().unwrap();

    // ci signs "prod" while it may sign every path; then the admin narrows its paths to
    // "ci-": what it signed outside them is no longer believed, by trustctl as by docker.
    dct.ok(&["signer", "add", "--key", ci, "ci", gun]);
    dct.ok(&["sign", &format!("{gun}:prod@{DIGEST_B}"), "--size", "5"]);
    let report: serde_json::Value = serde_json::from_str(&dct.ok(&["inspect", gun])).unwrap();
    assert_eq!(
        tags_and_signers(&report),
        [("prod".to_owned(), vec!["ci".to_owned()])]
    );
    dct.ok(&["delegation", "remove", gun, "targets/ci", "--all-paths"]);
    dct.ok(&[
        "delegation",
        "add",
        gun,
        "targets/ci",
        "--key",
        ci,
        "--paths",
        "ci-",
    ]);
    let listing = dct.ok(&["delegation", "list", gun]);
    assert!(
        listing.contains("targets/ci") && listing.contains("ci-"),
        "{listing}"
    );
    let report: serde_json::Value = serde_json::from_str(&dct.ok(&["inspect", gun])).unwrap();
    assert_eq!(
        tags_and_signers(&report),
        [("prod".to_owned(), vec!["Repo Admin".to_owned()])]
    );
    // docker still names ci: notary's lookup by tag name walks every role without checking
    // delegated paths. trustctl enforces them, as the TUF rules (and this issue) require.
    assert_eq!(
        tags_and_signers(&dct.docker_inspect(gun)),
        [("prod".to_owned(), vec!["ci".to_owned()])]
    );
    let notary_listing = String::from_utf8(
        dct.server
            .notary(
                tempfile::tempdir().unwrap().path(),
                &["delegation", "list", gun],
            )
            .stdout,
    )
    .unwrap();
    assert!(notary_listing.contains("targets/ci"), "{notary_listing}");
    dct.ok(&[
        "sign",
        "--signer",
        "ci",
        &format!("{gun}:ci-42@{DIGEST_A}"),
        "--size",
        "5",
    ]);
    fails(
        &dct.trustctl(&[
            "sign",
            "--signer",
            "ci",
            &format!("{gun}:prod@{DIGEST_A}"),
            "--size",
            "5",
        ]),
        2,
        "targets/ci may only sign tags starting with \"ci-\", not \"prod\"",
    );
    // A tag outside the signer's paths goes to the repository admin (this trustd holds the
    // targets key too) instead of blocking the sign; `--signer targets` asks for the admin.
    dct.ok(&["sign", &format!("{gun}:v2@{DIGEST_A}"), "--size", "5"]);
    dct.ok(&[
        "sign",
        "--signer",
        "targets",
        &format!("{gun}:ci-admin@{DIGEST_B}"),
        "--size",
        "5",
    ]);
    let report: serde_json::Value = serde_json::from_str(&dct.ok(&["inspect", gun])).unwrap();
    let signed = tags_and_signers(&report);
    let signers_of = |tag: &str| {
        signed
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    assert_eq!(signers_of("v2"), ["Repo Admin"], "{signed:?}");
    assert_eq!(signers_of("ci-admin"), ["Repo Admin"], "{signed:?}");
    let roles = String::from_utf8(
        dct.server
            .notary(
                tempfile::tempdir().unwrap().path(),
                &["list", gun, "--roles", "targets/ci"],
            )
            .stdout,
    )
    .unwrap();
    assert!(
        roles.contains("ci-42") && !roles.contains("prod") && !roles.contains("v2"),
        "{roles}"
    );

    // signer add on a repository with no trust data initializes it first, as docker does.
    let fresh = "registry.example.test/team/fresh-signers";
    let out = dct.trustctl(&["signer", "add", "--key", ci, "ci", fresh]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("initializing"), "{}", stderr(&out));
    let fresh_report = dct.docker_inspect(fresh);
    assert_eq!(fresh_report[0]["Signers"][0]["Name"], "ci");

    // Paths and keys come off; the role goes.
    dct.ok(&[
        "delegation",
        "add",
        gun,
        "targets/ci",
        "--paths",
        "nightly-",
    ]);
    dct.ok(&[
        "delegation",
        "remove",
        gun,
        "targets/ci",
        "--paths",
        "nightly-",
    ]);
    dct.ok(&["delegation", "remove", gun, "targets/ci", "--yes"]);
    assert!(!dct.ok(&["delegation", "list", gun]).contains("targets/ci"));

    // Bad input: clear errors, nothing published.
    let before = dct
        .server
        .get(&format!("/v2/{gun}/_trust/tuf/targets.json"));
    let junk = dct.trustd.cwd().join("junk.pem");
    std::fs::write(&junk, "not a key").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        assert!(std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
            .status
            .success());
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "3", "-subj", "/CN=ca",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.path().join("old.pem"), expired_certificate()).unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    for (args, code, text) in [
        (
            vec!["signer", "add", "--key", ci, "Bob", gun],
            2,
            "not a signer name",
        ),
        (
            vec!["signer", "add", "--key", ci, "releases", gun],
            2,
            "not a signer name",
        ),
        (
            vec!["signer", "add", "--key", junk.to_str().unwrap(), "bob", gun],
            2,
            "neither a PEM public key nor a certificate",
        ),
        (
            vec!["signer", "add", "--key", &path("ca.key"), "bob", gun],
            2,
            "private key",
        ),
        (
            vec!["signer", "add", "--key", &path("ca.pem"), "bob", gun],
            2,
            "CA certificate",
        ),
        (
            vec!["signer", "add", "--key", &path("old.pem"), "bob", gun],
            2,
            "expired",
        ),
        (vec!["signer", "remove", "nobody", gun], 5, "not a signer"),
        (
            vec!["delegation", "add", gun, "targets/Bad", "--key", ci],
            2,
            "not a delegation role name",
        ),
        (
            vec!["delegation", "add", gun, "targets/new"],
            2,
            "give at least one --key",
        ),
        (
            vec!["delegation", "remove", gun, "targets/none", "--yes"],
            5,
            "not delegated",
        ),
    ] {
        fails(&dct.trustctl(&args), code, text);
    }
    assert_eq!(
        dct.server
            .get(&format!("/v2/{gun}/_trust/tuf/targets.json")),
        before
    );
}
