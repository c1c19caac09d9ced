//! Batch and multi-platform signing in Notary and cosign formats against a real
//! docker-registry and notary-server, cosign signatures checked by an independent verifier
//! (the p256 crate over the raw registry API), and `trustctl validate`.

use std::sync::Arc;

use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::DecodePublicKey;
use trustd_e2e::assert_matches_schema;
use trustd_e2e::dct::Dct;
use trustd_e2e::notary::TestCa;
use trustd_e2e::registry::{Access, DockerConfig, Registry};
use trustd_e2e::token::TokenService;

struct Bench {
    dct: Dct,
    registry: Registry,
}

impl Bench {
    fn new(label: &str) -> Bench {
        let ca = Arc::new(TestCa::new());
        Bench {
            registry: Registry::start(ca.clone(), Access::Open),
            dct: Dct::with_ca(label, ca),
        }
    }

    fn trustctl(&self, args: &[&str]) -> std::process::Output {
        self.dct.trustctl(args)
    }

    /// The signature manifest of `repository@digest`, read with plain HTTP requests.
    fn signature_manifest(&self, repository: &str, digest: &str) -> serde_json::Value {
        let tag = format!("{}.sig", digest.replace(':', "-"));
        serde_json::from_slice(
            &self
                .registry
                .get(&format!("/v2/{repository}/manifests/{tag}")),
        )
        .unwrap()
    }

    /// Verifies every layer of the signature manifest independently of trustctl: the
    /// payload's digest, its claims, and the DER ECDSA signature with the p256 crate.
    /// Returns how many layers the key signed.
    fn independently_verified(
        &self,
        repository: &str,
        digest: &str,
        key: &p256::ecdsa::VerifyingKey,
    ) -> usize {
        let manifest = self.signature_manifest(repository, digest);
        let mut valid = 0;
        for layer in manifest["layers"].as_array().unwrap() {
            assert_eq!(
                layer["mediaType"],
                "application/vnd.dev.cosign.simplesigning.v1+json"
            );
            let payload = self.registry.get(&format!(
                "/v2/{repository}/blobs/{}",
                layer["digest"].as_str().unwrap()
            ));
            let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(
                claims["critical"]["image"]["docker-manifest-digest"],
                digest
            );
            assert_eq!(
                claims["critical"]["type"],
                "cosign container image signature"
            );
            assert_eq!(
                claims["critical"]["identity"]["docker-reference"],
                format!("{}/{repository}", self.registry.host)
            );
            let b64 = layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let signature = p256::ecdsa::DerSignature::try_from(der.as_slice()).unwrap();
            if key.verify(&payload, &signature).is_ok() {
                valid += 1;
            }
        }
        valid
    }
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_list_is_signed_in_both_formats_and_validated() {
    let bench = Bench::new("batch");
    let host = bench.registry.host.clone();
    let web = bench.registry.push_image("team/web", "1.0", "web", None);
    let api = bench.registry.push_image("team/api", "2.0", "api", None);
    let api2 = bench.registry.push_image("team/api", "2.1", "api2", None);
    let (index, platforms) = bench.registry.push_index(
        "team/multi",
        "3.0",
        &[("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")],
    );
    bench.dct.trustd.ok(&["key", "generate", "release"]);
    let spki = bench.dct.trustd.ok(&["key", "public", "release"]);
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(&spki).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("images.txt");
    std::fs::write(
        &list,
        format!(
            "# release 3.0\n{host}/team/web:1.0\n\n{host}/team/api:2.0\n{host}/team/api:2.1\n{host}/team/multi:3.0\nNot An Image\n{host}/team/web:missing\n127.0.0.1:1/team/gone:1\n"
        ),
    )
    .unwrap();
    let failed = dir.path().join("failed.txt");
    let out = bench.trustctl(&[
        "sign",
        "--file",
        list.to_str().unwrap(),
        "--format",
        "both",
        "--key",
        "release",
        "--jobs",
        "4",
        "--failed",
        failed.to_str().unwrap(),
    ]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Signed 4, failed 3 of 7"), "{err}");
    assert_eq!(
        err.matches("of 7 images").count(),
        1,
        "the result is said once: {err}"
    );
    assert!(err.contains("failed Not An Image"), "{err}");
    assert!(
        err.contains(&format!("failed {host}/team/web:missing: ")),
        "{err}"
    );
    assert!(err.contains("cannot reach registry 127.0.0.1:1"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        format!("Not An Image\n{host}/team/web:missing\n127.0.0.1:1/team/gone:1\n")
    );

    // cosign: the image (or index) and each selected platform, verified independently.
    for (repo, digest) in [
        ("team/web", &web.digest),
        ("team/api", &api.digest),
        ("team/api", &api2.digest),
        ("team/multi", &index.digest),
        ("team/multi", &platforms[0].digest),
        ("team/multi", &platforms[1].digest),
    ] {
        assert_eq!(
            bench.independently_verified(repo, digest, &key),
            1,
            "{repo}@{digest}"
        );
    }
    let unsigned = format!(
        "/v2/team/multi/manifests/{}.sig",
        platforms[2].digest.replace(':', "-")
    );
    let probe = std::process::Command::new("curl")
        .args(["--silent", "--fail", "--cacert"])
        .arg(bench.registry.ca.ca_cert())
        .arg(format!("https://{host}{unsigned}"))
        .status()
        .unwrap();
    assert!(!probe.success(), "s390x was not selected, so not signed");

    // Notary: one publish per repository, every tag listed by the notary client.
    let api_tags = bench.dct.notary_tags(&format!("{host}/team/api"));
    assert_eq!(api_tags["2.0"].digest, api.digest[7..], "{api_tags:?}");
    assert_eq!(api_tags["2.1"].digest, api2.digest[7..], "{api_tags:?}");
    let multi = bench.dct.notary_tags(&format!("{host}/team/multi"));
    assert_eq!(
        multi["3.0"].digest,
        index.digest[7..],
        "the index digest is what Notary signs: {multi:?}"
    );

    // Signing again adds nothing; validating finds everything valid (also as hangar spells it).
    let good = dir.path().join("good.txt");
    std::fs::write(
        &good,
        format!("{host}/team/web:1.0\n{host}/team/api:2.0\n{host}/team/multi:3.0\n"),
    )
    .unwrap();
    let out = bench.trustctl(&[
        "sign",
        "--file",
        good.to_str().unwrap(),
        "--format",
        "cosign",
        "--key",
        "release",
        "--failed",
        failed.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already signed"));
    assert_eq!(
        bench.signature_manifest("team/web", &web.digest)["layers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for spelling in [&["validate"][..], &["sign", "validate"][..]] {
        let mut args = spelling.to_vec();
        args.extend([
            "--file",
            good.to_str().unwrap(),
            "--format",
            "both",
            "--key",
            "release",
        ]);
        let out = bench.trustctl(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("(cosign: 3 manifests; notary: "),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // An index with no selected platform, and a tight timeout, fail with their reasons (the
    // timeout leaves room for the other image even on a loaded machine).
    let out = bench.trustctl(&[
        "sign",
        "--format",
        "cosign",
        "--key",
        "release",
        "--arch",
        "ppc64le",
        &format!("{host}/team/multi:3.0"),
        "--failed",
        failed.to_str().unwrap(),
    ]);
    assert!(
        stderr_of(&out).contains("the index has no manifest for linux / ppc64le"),
        "{}",
        stderr_of(&out)
    );
    let slow = trustd_e2e::http::HttpServer::start(
        Some((
            &bench.registry.ca.server_cert().0,
            &bench.registry.ca.server_cert().1,
        )),
        |_| {
            std::thread::sleep(std::time::Duration::from_secs(10));
            trustd_e2e::http::Response::new(404, "{}")
        },
    );
    let out = bench.trustctl(&[
        "sign",
        "--format",
        "cosign",
        "--key",
        "release",
        "--timeout",
        "3s",
        &format!("127.0.0.1:{}/team/slow:1", slow.port),
        &format!("{host}/team/web:1.0"),
        "--failed",
        failed.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("timed out after 3s"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        stderr_of(&out).contains("Signed 1, failed 1 of 2"),
        "{}",
        stderr_of(&out)
    );

    // In Notary format too the timeout is each image's: two tags of a repository on the slow
    // registry fail, each with its reason, and the other repository's new tag is published.
    let web11 = bench
        .registry
        .push_image("team/web", "1.1", "web 1.1", None);
    let slow_list = dir.path().join("slow.txt");
    let slow_images = [
        format!("127.0.0.1:{}/team/slow:1", slow.port),
        format!("{host}/team/web:1.1"),
        format!("127.0.0.1:{}/team/slow:2", slow.port),
    ];
    std::fs::write(&slow_list, slow_images.join("\n")).unwrap();
    let out = bench.trustctl(&[
        "sign",
        "--file",
        slow_list.to_str().unwrap(),
        "--timeout",
        "3s",
        "--failed",
        failed.to_str().unwrap(),
    ]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Signed 1, failed 2 of 3"), "{err}");
    for slow_image in [&slow_images[0], &slow_images[2]] {
        assert!(
            err.contains(&format!("failed {slow_image}: timed out after 3s")),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        format!("{}\n{}\n", slow_images[0], slow_images[2])
    );
    let web_tags = bench.dct.notary_tags(&format!("{host}/team/web"));
    assert_eq!(web_tags["1.1"].digest, web11.digest[7..], "{web_tags:?}");
}

#[test]
fn signatures_by_other_keys_are_kept_reported_and_validated_with_their_key() {
    let bench = Bench::new("cosign-others");
    let host = bench.registry.host.clone();
    let image = bench.registry.push_image("team/app", "1", "app", None);
    // An independent signer (the p256 crate, not trustctl) signs first.
    let other = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{host}/team/app"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        image.digest
    );
    let signature: p256::ecdsa::DerSignature = other.sign(payload.as_bytes());
    let payload_digest = bench.registry.put_blob("team/app", payload.as_bytes());
    let config =
        br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = bench.registry.put_blob("team/app", config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": payload.len(),
            "digest": payload_digest,
            "annotations": {"dev.cosignproject.cosign/signature": base64::engine::general_purpose::STANDARD.encode(signature.as_bytes())},
        }],
    });
    let sig_tag = format!("{}.sig", image.digest.replace(':', "-"));
    bench.registry.put_manifest(
        "team/app",
        &sig_tag,
        manifest.to_string().as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );

    // trustctl validates the independent signature with its public key...
    let dir = tempfile::tempdir().unwrap();
    let other_pem = dir.path().join("other.pem");
    use p256::pkcs8::EncodePublicKey;
    std::fs::write(
        &other_pem,
        other
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
    )
    .unwrap();
    let reference = format!("{host}/team/app:1");
    let failed = dir.path().join("failed.txt");
    let validate = |args: &[&str]| {
        let mut all = vec![
            "validate",
            "--format",
            "cosign",
            &reference,
            "--failed",
            failed.to_str().unwrap(),
        ];
        all.extend(args);
        bench.trustctl(&all)
    };
    let out = validate(&["--public-key", other_pem.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // ...and says a trustd key did not sign it.
    bench.dct.trustd.ok(&["key", "generate", "release"]);
    let out = validate(&["--key", "release"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("signed by another key"),
        "{}",
        stderr_of(&out)
    );

    // trustctl adds its signature as a second layer; the first stays.
    let out = bench.trustctl(&[
        "sign",
        "--format",
        "cosign",
        "--key",
        "release",
        &reference,
        "--failed",
        failed.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let spki = bench.dct.trustd.ok(&["key", "public", "release"]);
    let ours = p256::ecdsa::VerifyingKey::from_public_key_pem(&spki).unwrap();
    assert_eq!(
        bench.independently_verified("team/app", &image.digest, &ours),
        1
    );
    assert_eq!(
        bench.independently_verified("team/app", &image.digest, other.verifying_key()),
        1
    );
    assert!(validate(&["--key", "release"]).status.success());
    assert!(validate(&["--public-key", other_pem.to_str().unwrap()])
        .status
        .success());

    // An unreadable list stops before anything is signed.
    let out = bench.trustctl(&[
        "sign",
        "--file",
        "/nonexistent/list.txt",
        "--format",
        "cosign",
        "--key",
        "release",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("cannot read the image list"),
        "{}",
        stderr_of(&out)
    );

    // A signature manifest with no signature in it is reported as such.
    let empty = bench.registry.push_image("team/app", "2", "two", None);
    let bare = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
        "layers": [],
    });
    bench.registry.put_manifest(
        "team/app",
        &format!("{}.sig", empty.digest.replace(':', "-")),
        bare.to_string().as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let out = bench.trustctl(&[
        "validate",
        "--format",
        "cosign",
        "--key",
        "release",
        &format!("{host}/team/app:2"),
        "--failed",
        failed.to_str().unwrap(),
    ]);
    assert!(
        stderr_of(&out).contains("holds no cosign signature"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_registry_refusing_some_pushes_fails_those_images_alone_and_a_rerun_finishes_the_batch() {
    const USER: &str = "release-bot";
    const PASSWORD: &str = "release bot password";
    let ca = Arc::new(TestCa::new());
    let dct = Dct::with_ca("batch-refused", ca.clone());
    let tokens = TokenService::start(&ca, USER, PASSWORD);
    let registry = Registry::start(ca.clone(), Access::Token(&tokens));
    let docker = DockerConfig::with_logins(&[(&registry.host, USER, PASSWORD)]);
    let auth = Some((USER, PASSWORD));
    let images: Vec<String> = ["team/web:1", "team/locked:1", "team/web:2", "team/locked:2"]
        .iter()
        .map(|image| {
            let (repository, tag) = image.split_once(':').unwrap();
            registry.push_image(repository, tag, image, auth);
            format!("{}/{image}", registry.host)
        })
        .collect();
    dct.trustd.ok(&["key", "generate", "release"]);
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("images.txt");
    std::fs::write(&list, images.join("\n")).unwrap();
    let failed = dir.path().join("failed.txt");
    let sign = |list: &std::path::Path| {
        dct.trustd
            .trustctl()
            .args([
                "sign", "--format", "cosign", "--key", "release", "--jobs", "2",
            ])
            .arg("--file")
            .arg(list)
            .arg("--failed")
            .arg(&failed)
            .arg("--tls-ca")
            .arg(ca.ca_cert())
            .env("DOCKER_CONFIG", docker.path())
            .output()
            .unwrap()
    };

    // The registry lets the user read team/locked but not write to it: its images fail with
    // the registry's reason; team/web's are signed all the same.
    tokens.make_read_only("team/locked");
    let out = sign(&list);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Signed 2, failed 2 of 4"), "{err}");
    for locked in [&images[1], &images[3]] {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("failed {locked}: ")))
            .unwrap_or_else(|| panic!("no failure line for {locked}: {err}"));
        assert!(
            line.contains("does not let this account push to team/locked (401"),
            "{line}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        format!("{}\n{}\n", images[1], images[3])
    );

    // Once the registry allows it, the failed file is the next run's list: the two images
    // are signed, and what the first run signed was neither lost nor signed twice.
    tokens.make_writable("team/locked");
    let retry = dir.path().join("retry.txt");
    std::fs::copy(&failed, &retry).unwrap();
    let out = sign(&retry);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = sign(&list);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let unchanged = stdout
        .lines()
        .filter(|l| l.starts_with("already signed ") && l.contains("(cosign: "))
        .count();
    assert_eq!(unchanged, 4, "{stdout}");
}

/// Every way of signing and validating reports alike, in list order, and as JSON that
/// matches docs/json/batch.schema.json: `sign A bad B` signs A and B and says bad failed;
/// signing an unchanged tag says "already signed" in Notary format; one image's failure is
/// one line with its own exit code; the failed file never lists an earlier run's failures.
#[test]
fn results_come_in_list_order_alike_for_every_way_of_signing() {
    let bench = Bench::new("batch-json");
    let host = bench.registry.host.clone();
    let a = bench.registry.push_image("team/a", "1", "a", None);
    let b = bench.registry.push_image("team/b", "1", "b", None);
    let (image_a, image_b) = (format!("{host}/team/a:1"), format!("{host}/team/b:1"));
    let dir = tempfile::tempdir().unwrap();
    let failed = dir.path().join("failed.txt");
    let failed_arg = failed.to_str().unwrap();

    let out = bench.trustctl(&[
        "sign",
        &image_a,
        "Not An Image",
        &image_b,
        "--json",
        "--failed",
        failed_arg,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let document = String::from_utf8(out.stdout).unwrap();
    assert_matches_schema("batch.schema.json", &document);
    let parsed: serde_json::Value = serde_json::from_str(&document).unwrap();
    let images: Vec<&str> = parsed["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert_eq!(images, [image_a.as_str(), "Not An Image", image_b.as_str()]);
    assert_eq!(parsed["images"][0]["result"], "signed");
    assert_eq!(parsed["images"][0]["digest"], a.digest);
    assert_eq!(parsed["images"][0]["notary"]["new_repository"], true);
    assert_eq!(parsed["images"][1]["result"], "failed");
    assert_eq!(parsed["images"][1]["exit_code"], 2);
    assert_eq!(parsed["images"][2]["digest"], b.digest);
    assert_eq!(
        (&parsed["succeeded"], &parsed["failed"]),
        (&2.into(), &1.into())
    );
    assert_eq!(std::fs::read_to_string(&failed).unwrap(), "Not An Image\n");
    for (repo, pushed) in [("team/a", &a), ("team/b", &b)] {
        let tags = bench.dct.notary_tags(&format!("{host}/{repo}"));
        assert_eq!(tags["1"].digest, pushed.digest[7..]);
    }

    // Again, as people read it: in list order, and already signed in Notary format too.
    let out = bench.trustctl(&["sign", &image_b, &image_a, "--failed", failed_arg]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let said = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 2, "{said}");
    assert!(
        lines[0].starts_with(&format!(
            "already signed {image_b} {} (notary: targets)",
            b.digest
        )),
        "{said}"
    );
    assert!(
        lines[1].starts_with(&format!("already signed {image_a} ")),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        "",
        "a run without failures empties the failed file"
    );

    // One image: its failure is one line, with its own exit code, and no failed file.
    let missing = format!("{host}/team/a:missing");
    let out = bench.trustctl(&["sign", &missing]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("failed {missing}: ")), "{err}");
    assert!(!bench.dct.trustd.cwd().join("sign-failed.txt").exists());

    // validate --json, in the same shape.
    let out = bench.trustctl(&[
        "validate", &image_a, &missing, "--json", "--failed", failed_arg,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let document = String::from_utf8(out.stdout).unwrap();
    assert_matches_schema("batch.schema.json", &document);
    let parsed: serde_json::Value = serde_json::from_str(&document).unwrap();
    assert_eq!(parsed["command"], "validate");
    assert_eq!(parsed["images"][0]["result"], "valid");
    assert_eq!(parsed["images"][0]["notary"]["roles"][0], "Repo Admin");
    assert_eq!(parsed["images"][1]["result"], "not_valid");
    assert_eq!(parsed["images"][1]["exit_code"], 5);
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        format!("{missing}\n")
    );

    // delegation list --json.
    bench.dct.trustd.ok(&["key", "generate", "alice"]);
    let gun = format!("{host}/team/a");
    bench
        .dct
        .ok(&["signer", "add", "--key", "alice.pub", "alice", &gun]);
    let document = bench.dct.ok(&["delegation", "list", &gun, "--json"]);
    assert_matches_schema("delegation-list.schema.json", &document);
    let parsed: serde_json::Value = serde_json::from_str(&document).unwrap();
    let roles: Vec<&str> = parsed["delegations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"targets/alice") && roles.contains(&"targets/releases"),
        "{document}"
    );
    assert_eq!(parsed["repository"], gun);
}
