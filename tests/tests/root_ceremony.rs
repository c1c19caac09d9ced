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
    assert!(certificates.iter().all(|c| c["days_left"].as_i64().unwrap() >= 3648));
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
