//! A notary server that serves tampered, truncated, oversized, replayed or foreign trust
//! data over HTTPS: trustctl refuses each with a clear message and a non-zero exit, and the
//! local trust cache keeps its last good state, byte for byte.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use trustd_e2e::hostile::HostileNotary;
use trustd_e2e::http::Response;
use trustd_e2e::notary::NotaryServer;
use trustd_e2e::*;

const GUN: &str = "registry.example.test/team/target";
const OTHER: &str = "registry.example.test/team/other";
const DIGEST_A: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_B: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// What a case is called, how the server lies, the exit code and the message expected.
type Case<'a> = (&'a str, Box<dyn Fn(&HostileNotary) + 'a>, i32, &'a str);

struct Setup {
    _hsm: SoftHsm,
    trustd: Trustd,
    real: NotaryServer,
    hostile: HostileNotary,
}

impl Setup {
    fn trustctl(&self, url: &str, trust_dir: &Path, args: &[&str], ca: bool) -> Output {
        let mut cmd = self.trustd.trustctl();
        cmd.args(args)
            .arg("--server")
            .arg(url)
            .arg("--trust-dir")
            .arg(trust_dir);
        if ca {
            cmd.arg("--tls-ca").arg(self.real.ca.ca_cert());
        }
        cmd.output().unwrap()
    }

    fn real_ok(&self, args: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let out = self.trustctl(&self.real.url, dir.path(), args, true);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }

    fn role(&self, gun: &str, role: &str) -> Vec<u8> {
        self.real.get(&format!("/v2/{gun}/_trust/tuf/{role}.json"))
    }
}

#[test]
fn tampered_trust_data_is_refused_and_the_cache_keeps_its_last_good_state() {
    let hsm = SoftHsm::new("hostile");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let real = NotaryServer::start();
    let hostile = HostileNotary::start(&real);
    let setup = Setup {
        _hsm: hsm,
        trustd,
        real,
        hostile,
    };
    setup.real_ok(&["init", GUN]);
    setup.real_ok(&["sign", &format!("{GUN}:v1@{DIGEST_A}"), "--size", "1"]);
    let old: BTreeMap<&str, Vec<u8>> = ["timestamp", "snapshot", "targets"]
        .into_iter()
        .map(|r| (r, setup.role(GUN, r)))
        .collect();
    setup.real_ok(&["sign", &format!("{GUN}:v2@{DIGEST_B}"), "--size", "2"]);
    setup.real_ok(&["init", OTHER]);

    // A good first read through the proxy fills the cache.
    let trust_dir = tempfile::tempdir().unwrap();
    let url = setup.hostile.url.clone();
    let inspect = |dir: &Path| setup.trustctl(&url, dir, &["inspect", GUN], true);
    let good = inspect(trust_dir.path());
    assert!(good.status.success(), "{}", stderr(&good));
    let cached = files_under(trust_dir.path());
    assert!(cached.len() >= 4, "{cached:?}");

    let flip = |body: Option<Vec<u8>>| {
        let mut body = body.unwrap();
        let i = body.len() / 2;
        body[i] ^= 0x01;
        Response::new(200, body)
    };
    let old_role = |role: &'static str| {
        let bytes = old[role].clone();
        move |_: Option<Vec<u8>>| Response::new(200, bytes.clone())
    };
    let cases: Vec<Case> = vec![
        (
            "truncated timestamp",
            Box::new(|h| {
                h.tamper("timestamp", |b| {
                    let b = b.unwrap();
                    Response::new(200, b[..b.len() / 2].to_vec())
                })
            }),
            1,
            "timestamp",
        ),
        (
            "corrupted targets",
            Box::new(move |h| h.tamper("targets", flip)),
            1,
            "does not match the sha256 hash",
        ),
        (
            "oversized timestamp",
            Box::new(|h| h.tamper("timestamp", |_| Response::new(200, vec![b' '; 6 << 20]))),
            1,
            "refusing it",
        ),
        (
            "replayed older timestamp, snapshot and targets",
            Box::new(move |h| {
                h.tamper("timestamp", old_role("timestamp"));
                h.tamper("snapshot", old_role("snapshot"));
                h.tamper("targets", old_role("targets"));
            }),
            1,
            "older than the trusted version",
        ),
        (
            "server error",
            Box::new(|h| {
                h.tamper("timestamp", |_| {
                    Response::new(
                        500,
                        r#"{"errors":[{"code":"UNKNOWN","message":"database is down","detail":null}]}"#,
                    )
                })
            }),
            1,
            "database is down",
        ),
        (
            "the timestamp vanished",
            Box::new(|h| h.tamper("timestamp", |_| Response::new(404, "{}"))),
            1,
            "no longer has timestamp",
        ),
    ];
    for (what, tamper, code, text) in cases {
        tamper(&setup.hostile);
        let out = inspect(trust_dir.path());
        setup.hostile.honest();
        assert_eq!(out.status.code(), Some(code), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(text), "{what}: {}", stderr(&out));
        assert_eq!(
            files_under(trust_dir.path()),
            cached,
            "{what}: the cache changed"
        );
    }

    // Another repository's root served for this one: refused on first use (nothing cached).
    let other_root = setup.role(OTHER, "root");
    setup
        .hostile
        .tamper("root", move |_| Response::new(200, other_root.clone()));
    let fresh = tempfile::tempdir().unwrap();
    let out = inspect(fresh.path());
    setup.hostile.honest();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("common name"), "{}", stderr(&out));
    assert!(files_under(fresh.path()).is_empty());

    // Signing through a lying server publishes nothing.
    setup.hostile.tamper("targets", flip);
    let out = setup.trustctl(
        &url,
        trust_dir.path(),
        &["sign", &format!("{GUN}:v3@{DIGEST_A}"), "--size", "3"],
        true,
    );
    setup.hostile.honest();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(files_under(trust_dir.path()), cached);
    let targets: serde_json::Value = serde_json::from_slice(&setup.role(GUN, "targets")).unwrap();
    assert!(targets["signed"]["targets"].get("v3").is_none());

    // A server certificate nobody vouches for: a TLS error, exit 3, nothing cached.
    let out = setup.trustctl(&url, fresh.path(), &["inspect", GUN], false);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );

    // And the honest server is still believed.
    assert!(inspect(trust_dir.path()).status.success());
}
