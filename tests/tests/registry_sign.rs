//! `trustctl sign IMAGE:TAG` against a real docker-registry: the tag resolved to its
//! manifest digest and size with the user's docker credentials (config.json auths and
//! credential helpers), basic and token authentication, and a notary-server that demands
//! tokens from the same token service, as Docker Hub's notary does.

use std::process::Output;
use std::sync::Arc;

use trustd_e2e::notary::{NotaryServer, TestCa};
use trustd_e2e::registry::{Access, DockerConfig, Registry, Transport};
use trustd_e2e::token::TokenService;
use trustd_e2e::*;

const USER: &str = "ci-runner";
const PASSWORD: &str = "correct horse battery staple";

struct Env<'a> {
    trustd: &'a Trustd,
    server: &'a NotaryServer,
    docker: &'a DockerConfig,
    trust_dir: tempfile::TempDir,
}

impl Env<'_> {
    fn trustctl(&self, args: &[&str]) -> Output {
        self.trustd
            .trustctl()
            .args(args)
            .env("XDG_CONFIG_HOME", self.trust_dir.path())
            .arg("--server")
            .arg(&self.server.url)
            .arg("--tls-ca")
            .arg(self.server.ca.ca_cert())
            .arg("--trust-dir")
            .arg(self.trust_dir.path())
            .env("DOCKER_CONFIG", self.docker.path())
            .env("PATH", self.docker.path_with_helpers())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.trustctl(args);
        assert!(
            out.status.success(),
            "trustctl {args:?}: {}\n--- notary-server ---\n{}",
            stderr(&out),
            self.server.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.trustctl(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "trustctl {args:?}: {}",
            stderr(&out)
        );
        stderr(&out)
    }

    fn inspect(&self, image: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", image])).unwrap()
    }
}

fn signed_digest(report: &serde_json::Value, tag: &str) -> String {
    report[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["SignedTag"] == tag)
        .unwrap_or_else(|| panic!("{tag} is not signed: {report}"))["Digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn sign_resolves_tags_in_a_registry_with_basic_auth() {
    let hsm = SoftHsm::new("registry-basic");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let ca = Arc::new(TestCa::new());
    let registry = Registry::start(
        ca.clone(),
        Access::Basic {
            user: USER,
            password: PASSWORD,
        },
    );
    let server = NotaryServer::start_with(ca.clone(), None);
    let docker = DockerConfig::with_logins(&[(&registry.host, USER, PASSWORD)]);
    let env = Env {
        trustd: &trustd,
        server: &server,
        docker: &docker,
        trust_dir: tempfile::tempdir().unwrap(),
    };
    let repo = format!("{}/team/app", registry.host);
    let v1 = registry.push_image("team/app", "v1", "first", None);

    // A repository with no trust data is initialized by its first signature.
    let out = env.ok(&["sign", &format!("{repo}:v1")]);
    assert!(out.contains(&v1.digest), "{out}");
    let report = env.inspect(&repo);
    assert_eq!(signed_digest(&report, "v1"), v1.digest[7..]);
    // The size in the targets role is the manifest's, as the notary client lists it.
    let listing = String::from_utf8(
        server
            .notary(tempfile::tempdir().unwrap().path(), &["list", &repo])
            .stdout,
    )
    .unwrap();
    let line = listing.lines().find(|l| l.starts_with("v1 ")).unwrap();
    assert!(line.contains(&format!(" {} ", v1.size)), "{listing}");

    // A pushed-over tag is re-signed with its new digest.
    let v1b = registry.push_image("team/app", "v1", "second", None);
    assert_ne!(v1b.digest, v1.digest);
    env.ok(&["sign", &format!("{repo}:v1")]);
    assert_eq!(signed_digest(&env.inspect(&repo), "v1"), v1b.digest[7..]);

    // A tag the registry does not have: not found, nothing signed.
    let err = env.fails(&["sign", &format!("{repo}:nope")], 5);
    assert!(err.contains("no such tag"), "{err}");

    // Wrong credentials: denied, with what to do.
    let wrong = DockerConfig::with_logins(&[(&registry.host, USER, "wrong")]);
    let env_wrong = Env {
        docker: &wrong,
        trust_dir: tempfile::tempdir().unwrap(),
        ..env
    };
    let err = env_wrong.fails(&["sign", &format!("{repo}:v1")], 4);
    assert!(err.contains("docker login"), "{err}");
    assert!(!err.contains("wrong"), "the password is never shown: {err}");

    // An unreachable registry.
    let err = env_wrong.fails(&["sign", "127.0.0.1:1/team/app:v1"], 3);
    assert!(err.contains("cannot reach registry 127.0.0.1:1"), "{err}");
}

#[test]
fn tokens_for_registry_and_notary_come_from_a_credential_helper() {
    let hsm = SoftHsm::new("registry-token");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let ca = Arc::new(TestCa::new());
    let tokens = TokenService::start(&ca, USER, PASSWORD);
    let registry = Registry::start(ca.clone(), Access::Token(&tokens));
    let server = NotaryServer::start_with(ca.clone(), Some(&tokens));
    let docker = DockerConfig::with_helper(&registry.host, USER, PASSWORD);
    let env = Env {
        trustd: &trustd,
        server: &server,
        docker: &docker,
        trust_dir: tempfile::tempdir().unwrap(),
    };
    let repo = format!("{}/team/api", registry.host);
    let auth = Some((USER, PASSWORD));
    let a = registry.push_image("team/api", "1.0", "a", auth);
    let b = registry.push_image("team/api", "2.0", "b", auth);

    // Two tags in one command: one new targets version, so one targets signature.
    env.ok(&["sign", &format!("{repo}:1.0"), &format!("{repo}:2.0")]);
    let report = env.inspect(&repo);
    assert_eq!(signed_digest(&report, "1.0"), a.digest[7..]);
    assert_eq!(signed_digest(&report, "2.0"), b.digest[7..]);
    let targets_signatures = trustd
        .audit_records()
        .into_iter()
        .filter(|r| {
            r["event"] == "sign"
                && r["result"] == "allowed"
                && r["key_name"] == format!("{repo}/targets")
        })
        .count();
    assert_eq!(targets_signatures, 2, "one at init, one for both tags");

    // The helper was asked for the registry's credentials; the token service issued
    // tokens for the registry and for notary, to the user, for push on the repository.
    assert!(docker.helper_requests().iter().all(|s| s == &registry.host));
    assert!(!docker.helper_requests().is_empty());
    let issued = tokens.requests();
    assert!(
        issued
            .iter()
            .any(|r| r.starts_with(&format!("{USER} repository:{repo}:")) && r.contains("push")),
        "{issued:?}"
    );

    // A batch over several repositories shares one notary client, whose tokens are kept per
    // repository: run in parallel, the repositories ask for no more tokens than one signed
    // alone, instead of displacing each other's token and asking again.
    let tokens_for = |name: &str| {
        let scope = format!("repository:{}/{name}:", registry.host);
        tokens
            .requests()
            .iter()
            .filter(|r| r.contains(&scope))
            .count()
    };
    for name in ["team/solo", "team/web", "team/db", "team/ui"] {
        registry.push_image(name, "1.0", name, auth);
    }
    env.ok(&["sign", &format!("{}/team/solo:1.0", registry.host)]);
    let alone = tokens_for("team/solo");
    let list = env.trust_dir.path().join("list.txt");
    let batch: Vec<String> = ["team/web", "team/db", "team/ui"]
        .iter()
        .map(|name| format!("{}/{name}:1.0", registry.host))
        .collect();
    std::fs::write(&list, batch.join("\n")).unwrap();
    env.ok(&["sign", "--file", list.to_str().unwrap(), "--jobs", "3"]);
    for name in ["team/web", "team/db", "team/ui"] {
        assert_eq!(tokens_for(name), alone, "{name}: {:?}", tokens.requests());
        let report = env.inspect(&format!("{}/{name}", registry.host));
        assert!(!signed_digest(&report, "1.0").is_empty());
    }

    // Without credentials, notary's token service gives no access: a clear refusal.
    let anonymous = DockerConfig::with_logins(&[]);
    let env_anonymous = Env {
        docker: &anonymous,
        trust_dir: tempfile::tempdir().unwrap(),
        ..env
    };
    let out = env_anonymous.trustctl(&["inspect", &repo]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("401") && err.contains("docker login"), "{err}");
}

/// A registry on plain HTTP (a lab's registry:2) is reached only when the user names it with
/// --insecure-registry or in the config, with a warning each run; never by fallback, never
/// for another registry, and never for the notary server.
#[test]
fn plain_http_registries_only_by_explicit_opt_in() {
    let hsm = SoftHsm::new("registry-plain");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    trustd.ok(&["key", "generate", "release"]);
    let ca = Arc::new(TestCa::new());
    let registry = Registry::start_with(ca.clone(), Access::Open, Transport::PlainHttp);
    let server = NotaryServer::start_with(ca.clone(), None);
    let docker = DockerConfig::with_logins(&[]);
    let env = Env {
        trustd: &trustd,
        server: &server,
        docker: &docker,
        trust_dir: tempfile::tempdir().unwrap(),
    };
    let host = registry.host.as_str();
    let image = format!("{host}/lab/app:v1");
    let pushed = registry.push_image("lab/app", "v1", "plain", None);
    let warning = "is reached over plain HTTP";

    // Not allowed: HTTPS is tried, fails, and the message says what the flag is.
    let err = env.fails(&["sign", &image], 3);
    assert!(
        err.contains(&format!("cannot reach registry {host}"))
            && err.contains("--insecure-registry"),
        "{err}"
    );
    // Allowing another registry downgrades nothing else.
    let err = env.fails(&["sign", &image, "--insecure-registry", "127.0.0.1:1"], 3);
    assert!(!err.contains(warning), "{err}");

    // Allowed: signed (Notary, whose server stays on TLS), with one warning for the run.
    let out = env.trustctl(&["sign", &image, "--insecure-registry", host]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches(warning).count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(host), "{}", stderr(&out));
    let report = env.inspect(&format!("{host}/lab/app"));
    assert_eq!(signed_digest(&report, "v1"), pushed.digest[7..]);

    // cosign signatures are written to it and read back; a batch warns before it starts.
    let out = env.trustctl(&[
        "sign",
        "--format",
        "cosign",
        "--key",
        "release",
        "--insecure-registry",
        host,
        &image,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches(warning).count(), 1, "{}", stderr(&out));
    let signature = registry.get(&format!(
        "/v2/lab/app/manifests/sha256-{}.sig",
        &pushed.digest[7..]
    ));
    assert!(String::from_utf8_lossy(&signature).contains("cosign"));

    // The same from trustctl's config file, for validation in both formats.
    let config_dir = env.trust_dir.path().join("trustctl");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.toml"),
        format!("insecure_registries = [\"{host}\"]\n"),
    )
    .unwrap();
    let out = env.trustctl(&["validate", "--format", "both", "--key", "release", &image]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("(cosign: 1 manifest; notary: "), "{said}");
    assert_eq!(stderr(&out).matches(warning).count(), 1, "{}", stderr(&out));
    std::fs::remove_file(config_dir.join("config.toml")).unwrap();

    // What is not HOST[:PORT] is refused before anything is sent.
    for bad in [format!("http://{host}"), format!("{host}/lab")] {
        let err = env.fails(&["sign", &image, "--insecure-registry", &bad], 2);
        assert!(err.contains("HOST:PORT"), "{err}");
    }

    // The notary server is never plain HTTP, whatever is allowed for registries.
    let plain_notary = server.url.replace("https://", "http://");
    let out = env
        .trustd
        .trustctl()
        .args([
            "inspect",
            &format!("{host}/lab/app"),
            "--insecure-registry",
            host,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "inspect has no registry to allow: {}",
        stderr(&out)
    );
    let with_server = |args: &[&str], server: &str| {
        let out = env
            .trustd
            .trustctl()
            .args(args)
            .args(["--server", server, "--trust-dir"])
            .arg(env.trust_dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        stderr(&out)
    };
    let err = with_server(
        &["sign", &image, "--insecure-registry", host],
        &plain_notary,
    );
    assert!(
        err.contains("only reached over HTTPS") && err.contains("--server"),
        "{err}"
    );
    let bare = server.url.replace("https://", "");
    let err = with_server(&["inspect", &format!("{host}/lab/app")], &bare);
    assert!(
        err.contains("no scheme") && err.contains("https://HOST"),
        "{err}"
    );
}
