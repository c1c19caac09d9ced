//! Trust pinning from trustctl's config file, with the notary client's semantics, against a
//! repository the real notary client created with a CA-issued root certificate.

use std::process::{Command, Output};
use std::sync::Arc;

use trustd_e2e::notary::{NotaryServer, TestCa};
use trustd_e2e::*;

const GUN: &str = "registry.example.test/pinned/app";

fn trustctl(config: &str, trust_dir: &std::path::Path, server: &NotaryServer) -> Output {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("trustctl")).unwrap();
    std::fs::write(home.path().join("trustctl/config.toml"), config).unwrap();
    Command::new(bin("trustctl"))
        .args(["inspect", GUN, "--server", &server.url, "--tls-ca"])
        .arg(server.ca.ca_cert())
        .arg("--trust-dir")
        .arg(trust_dir)
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap()
}

#[test]
fn first_roots_are_decided_by_pinned_certificates_and_cas() {
    let ca = Arc::new(TestCa::new());
    let server = NotaryServer::start_with(ca.clone(), None);
    // A root key and a root certificate for the GUN issued by the test CA.
    ca.openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "root.key",
        "-out",
        "root.csr",
        "-subj",
        &format!("/CN={}", GUN.replace('/', "\\/")),
    ]);
    std::fs::write(
        ca.dir.path().join("root.cnf"),
        "basicConstraints=CA:FALSE\n",
    )
    .unwrap();
    ca.openssl(&[
        "x509",
        "-req",
        "-in",
        "root.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "root.crt",
        "-days",
        "2",
        "-extfile",
        "root.cnf",
    ]);
    // The notary client imports only encrypted root keys (PBES2 with SHA-1 PRF, as it reads
    // them), with the passphrase the harness gives it.
    ca.openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-v2prf",
        "hmacWithSHA1",
        "-in",
        "root.key",
        "-out",
        "root.enc.key",
        "-passout",
        "pass:test root passphrase",
    ]);
    let notary_dir = tempfile::tempdir().unwrap();
    let root_key = ca.dir.path().join("root.enc.key");
    let root_cert = ca.dir.path().join("root.crt");
    server.notary(
        notary_dir.path(),
        &[
            "init",
            GUN,
            "--rootkey",
            root_key.to_str().unwrap(),
            "--rootcert",
            root_cert.to_str().unwrap(),
            "-p",
        ],
    );
    let root: serde_json::Value =
        serde_json::from_slice(&server.get(&format!("/v2/{GUN}/_trust/tuf/root.json"))).unwrap();
    let root_id = root["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let other_ca = TestCa::new();

    let refused = [
        (
            format!("[trust_pinning]\ncerts = {{ \"{GUN}\" = [\"{}\"] }}\n", "ab".repeat(32)),
            "no root certificate has a key ID pinned",
        ),
        (
            format!(
                "[trust_pinning]\nca = {{ \"registry.example.test/\" = \"{}\" }}\n",
                other_ca.ca_cert().display()
            ),
            "no root certificate was issued by the pinned CA",
        ),
        (
            "[trust_pinning]\ndisable_tofu = true\nca = { \"elsewhere.example/\" = \"/nonexistent\" }\n"
                .to_owned(),
            "trust on first use is disabled",
        ),
        (
            "[trust_pinning]\ndisable_tofus = true\n".to_owned(),
            "bad configuration file",
        ),
    ];
    for (config, text) in refused {
        let trust_dir = tempfile::tempdir().unwrap();
        let out = trustctl(&config, trust_dir.path(), &server);
        assert!(!out.status.success(), "{config}");
        assert!(stderr(&out).contains(text), "{config}: {}", stderr(&out));
        assert!(
            !trust_dir.path().join("tuf").exists(),
            "nothing is cached from a refused root"
        );
    }

    let accepted = [
        format!("[trust_pinning]\ncerts = {{ \"{GUN}\" = [\"{root_id}\"] }}\n"),
        // The longest prefix wins: the CA pinned for the narrower prefix issued the root.
        format!(
            "[trust_pinning]\nca = {{ \"registry.example.test/\" = \"{}\", \"registry.example.test/pinned/\" = \"{}\" }}\n",
            other_ca.ca_cert().display(),
            ca.ca_cert().display()
        ),
        String::new(),
    ];
    for config in accepted {
        let trust_dir = tempfile::tempdir().unwrap();
        let out = trustctl(&config, trust_dir.path(), &server);
        assert!(out.status.success(), "{config}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report[0]["AdministrativeKeys"][0]["Keys"][0]["ID"], root_id);
    }
}

#[test]
fn a_new_repository_the_pinning_would_refuse_is_not_created_or_sent() {
    let dct = trustd_e2e::dct::Dct::new("pinning-new");
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("trustctl")).unwrap();
    std::fs::write(
        home.path().join("trustctl/config.toml"),
        "[trust_pinning]\ndisable_tofu = true\n",
    )
    .unwrap();
    let gun = "registry.example.test/pinned/new";
    let digest = format!("sha256:{}", "ab".repeat(32));
    let out = dct
        .command(
            &["sign", &format!("{gun}:v1@{digest}"), "--size", "5"],
            &dct.server.url,
        )
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("disable_tofu")
            && stderr(&out).contains("nothing was created or sent"),
        "{}",
        stderr(&out)
    );
    // The server has no trust data for it, and trustd made no key for it.
    let probe = dct.trustctl(&["inspect", gun]);
    assert_eq!(probe.status.code(), Some(5), "{}", stderr(&probe));
    let keys = dct.trustd.ok(&["key", "list", "--json"]);
    assert!(!keys.contains(gun), "{keys}");
}
