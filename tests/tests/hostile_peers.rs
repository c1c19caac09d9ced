//! trustctl against servers run by an attacker (who holds every key of what they serve, so
//! trust on first use believes it): role names that climb out of the trust directory, image
//! references that do, endless bodies from a notary server, its token service and a
//! registry, redirects to other hosts, and terminal escape sequences in tag names. Each is
//! refused with a clear error, within a bounded amount of memory, touching nothing outside
//! the trust directory.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use trustd_e2e::forged::{ForgedDelegation, ForgedNotary, ForgedRepository};
use trustd_e2e::http::{HttpServer, Response};
use trustd_e2e::notary::TestCa;
use trustd_e2e::*;

const DIGEST: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// A registry or notary server on HTTPS whose challenge names a token service on plain HTTP:
/// the credentials would travel unprotected, so the token service is never asked.
#[test]
fn token_services_on_plain_http_are_not_asked() {
    let ca = TestCa::new();
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = asked.clone();
    let plain_token = HttpServer::start(None, move |request| {
        log.lock().unwrap().push(request.path().to_owned());
        Response::new(200, r#"{"token":"t"}"#)
    });
    let realm = format!("{}/token", plain_token.url);
    assert!(realm.starts_with("http://"), "{realm}");
    let challenger = server(&ca, move |_| {
        let header =
            format!("Bearer realm=\"{realm}\",service=\"s\",scope=\"repository:team/app:pull\"");
        Response::new(401, "{}").header("WWW-Authenticate", &header)
    });
    let trust = tempfile::tempdir().unwrap();
    let gun = format!("127.0.0.1:{}/team/app", challenger.port);
    let run = inspect(&challenger.url, &ca.ca_cert(), trust.path(), &gun, &[]);
    assert_refused(&run, "notary token on plain HTTP", "it is on plain HTTP");
    let pem_path = trust.path().join("cosign.pub");
    let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let pem = {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        key.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    std::fs::write(&pem_path, pem).unwrap();
    let failed = trust.path().join("failed.txt");
    let run = trustctl(&[
        "validate",
        &format!("{gun}:v1"),
        "--format",
        "cosign",
        "--public-key",
        pem_path.to_str().unwrap(),
        "--tls-ca",
        ca.ca_cert().to_str().unwrap(),
        "--failed",
        failed.to_str().unwrap(),
    ]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    let said = String::from_utf8_lossy(&run.stdout).into_owned() + &run.stderr;
    assert!(said.contains("it is on plain HTTP"), "{said}");
    assert!(
        asked.lock().unwrap().is_empty(),
        "{:?}",
        asked.lock().unwrap()
    );
}

/// What a trustctl run did, and the most memory it ever held.
struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    max_rss_mib: u64,
}

/// Runs trustctl with `args` (no trustd: these commands only talk to servers) and measures
/// its peak resident memory with wait4.
// The child is reaped by wait4 (which also gives its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
// unsafe_code allowed here: wait4 for the child's rusage (FFI).
#[allow(unsafe_code)]
fn trustctl(args: &[&str]) -> Run {
    let mut child = Command::new(bin("trustctl"))
        .args(args)
        .env_remove("TRUSTCTL_SERVER")
        .env_remove("DOCKER_CONTENT_TRUST_SERVER")
        .env("DOCKER_CONFIG", "/nonexistent-docker-config")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run trustctl");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        out.read_to_end(&mut text).unwrap();
        text
    });
    let mut stderr = String::new();
    err.read_to_string(&mut stderr).unwrap();
    let stdout = reader.join().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers to a status and an rusage.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let exit = std::process::ExitStatus::from_raw(status);
    Run {
        code: exit.code(),
        signal: exit.signal(),
        stdout,
        stderr,
        max_rss_mib: usage.ru_maxrss as u64 / 1024,
    }
}

/// trustctl's memory reading a hostile body: far below what the server sent (it streams up
/// to 3 GiB), and near what trustctl needs for anything else.
const MAX_RSS_MIB: u64 = 200;

fn assert_refused(run: &Run, what: &str, expected: &str) {
    assert!(
        run.code.is_some_and(|c| c != 0),
        "{what}: exit {:?} signal {:?}: {}",
        run.code,
        run.signal,
        run.stderr
    );
    assert!(
        run.stderr.contains(expected),
        "{what}: expected {expected:?} in: {}",
        run.stderr
    );
    assert!(
        run.max_rss_mib < MAX_RSS_MIB,
        "{what}: trustctl grew to {} MiB",
        run.max_rss_mib
    );
    eprintln!("{what}: refused, peak RSS {} MiB", run.max_rss_mib);
}

/// `trustctl inspect [extra] GUN` against a notary server at `url` trusted through `ca`,
/// caching in `trust`.
fn inspect(url: &str, ca: &Path, trust: &Path, gun: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "inspect",
        gun,
        "--server",
        url,
        "--tls-ca",
        ca.to_str().unwrap(),
        "--trust-dir",
        trust.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    trustctl(&args)
}

#[test]
fn delegation_names_that_leave_the_trust_directory_are_refused_and_nothing_is_written() {
    let ca = TestCa::new();
    let victim = tempfile::tempdir().unwrap();
    // From <trust>/tuf/<gun>/metadata/, enough ".." to reach / and then into the victim.
    let climb = format!(
        "targets/{}{}",
        "../".repeat(32),
        victim.path().display().to_string().trim_start_matches('/')
    );
    let gun = "127.0.0.1:1/team/app";
    let escape = ForgedRepository {
        gun: gun.into(),
        tags: vec![("v1".into(), DIGEST.into())],
        delegations: vec![ForgedDelegation {
            name: format!("{climb}/x"),
            tags: vec![("v1".into(), DIGEST.into())],
        }],
    };
    // A valid name that is not a child of the role delegating it: notary refuses it too.
    let stranger = ForgedRepository {
        gun: "127.0.0.1:1/team/other".into(),
        tags: Vec::new(),
        delegations: vec![ForgedDelegation {
            name: "targets/a/b".into(),
            tags: Vec::new(),
        }],
    };
    // More delegated roles than anyone uses: refused before fetching any of them.
    let many = ForgedRepository {
        gun: "127.0.0.1:1/team/many".into(),
        tags: Vec::new(),
        delegations: (0..1001)
            .map(|i| ForgedDelegation {
                name: format!("targets/r{i}"),
                tags: Vec::new(),
            })
            .collect(),
    };
    let server = ForgedNotary::start(&ca, &[escape, stranger, many]);
    let trust = tempfile::tempdir().unwrap();
    let ca_path = ca.ca_cert();
    let inspect = |gun: &str| inspect(&server.url, &ca_path, trust.path(), gun, &[]);
    let run = inspect(gun);
    assert_refused(
        &run,
        "climbing delegation",
        "not a delegation role directly under targets",
    );
    assert_eq!(run.code, Some(1));
    assert!(
        files_under(victim.path()).is_empty(),
        "written outside the trust directory"
    );
    assert!(
        files_under(trust.path()).is_empty(),
        "unverified data cached"
    );
    let asked = server.requests.lock().unwrap().clone();
    assert!(
        asked.iter().all(|p| !p.contains("..")),
        "the hostile name reached a URL: {asked:?}"
    );

    let run = inspect("127.0.0.1:1/team/other");
    assert_refused(
        &run,
        "stranger delegation",
        "\"targets/a/b\", which is not a delegation role directly under targets",
    );
    assert!(files_under(trust.path()).is_empty());
}

#[test]
fn tag_names_with_terminal_escapes_are_shown_escaped() {
    let ca = TestCa::new();
    let gun = "127.0.0.1:1/team/app";
    let hostile_tag = "v1\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}";
    let server = ForgedNotary::start(
        &ca,
        &[ForgedRepository {
            gun: gun.into(),
            tags: vec![(hostile_tag.into(), DIGEST.into())],
            delegations: Vec::new(),
        }],
    );
    let trust = tempfile::tempdir().unwrap();
    let ca_path = ca.ca_cert();
    let inspect = |pretty: bool| {
        let extra: &[&str] = if pretty { &["--pretty"] } else { &[] };
        inspect(&server.url, &ca_path, trust.path(), gun, extra)
    };
    let pretty = inspect(true);
    assert_eq!(pretty.code, Some(0), "{}", pretty.stderr);
    let text = String::from_utf8(pretty.stdout).unwrap();
    assert!(
        !text.contains(['\u{1b}', '\u{7}', '\u{202e}']),
        "control characters reached the terminal: {text:?}"
    );
    assert!(
        text.contains("v1\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{202e}"),
        "{text}"
    );
    // JSON output carries the name exactly (escaped by JSON), as docker's does.
    let json = inspect(false);
    assert_eq!(json.code, Some(0), "{}", json.stderr);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed[0]["SignedTags"][0]["SignedTag"], hostile_tag);
}

#[test]
fn image_references_that_leave_the_trust_directory_are_refused() {
    let parent = tempfile::tempdir().unwrap();
    let trust = parent.path().join("trust");
    let victim = parent.path().join("victimdir");
    std::fs::create_dir_all(trust.join("tuf/localhost:1")).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious"), "keep me").unwrap();
    for reference in [
        "localhost:1/../../../victimdir",
        "localhost:1/a/../../../../victimdir",
        "localhost:1/./a",
        "localhost:1//a",
    ] {
        let run = trustctl(&["delete", reference, "--trust-dir", trust.to_str().unwrap()]);
        assert_eq!(run.code, Some(2), "{reference}: {}", run.stderr);
        assert!(
            run.stderr.contains("not a repository path component"),
            "{reference}: {}",
            run.stderr
        );
        assert_eq!(
            std::fs::read_to_string(victim.join("precious")).unwrap(),
            "keep me"
        );
    }
    assert!(trust.join("tuf/localhost:1").is_dir());
}

/// A TLS server from `ca` answering every request with `respond`.
fn server(ca: &TestCa, respond: impl Fn(&str) -> Response + Send + Sync + 'static) -> HttpServer {
    let (cert, key) = ca.server_cert();
    HttpServer::start(Some((&cert, &key)), move |request| respond(request.path()))
}

#[test]
fn endless_bodies_from_notary_servers_token_services_and_registries_are_cut_off() {
    let ca = TestCa::new();
    let ca_path = ca.ca_cert();
    let ca_arg = ca_path.to_str().unwrap().to_owned();
    let trust = tempfile::tempdir().unwrap();
    let chunk = vec![b'x'; 64 * 1024];

    // A notary server whose error never ends.
    let c = chunk.clone();
    let notary = server(&ca, move |_| Response::endless(500, c.clone()));
    let gun = format!("127.0.0.1:{}/team/app", notary.port);
    let inspect = |url: &str| inspect(url, &ca_path, trust.path(), &gun, &[]);
    assert_refused(&inspect(&notary.url), "endless error body", "answered 500");

    // A notary server that sends trustctl to a token service whose answer never ends.
    let realm: Arc<Mutex<String>> = Arc::default();
    let realm_of = realm.clone();
    let c = chunk.clone();
    let with_token = server(&ca, move |path| {
        if path == "/token" {
            Response::endless(200, c.clone())
        } else {
            let header = format!(
                "Bearer realm=\"{}/token\",service=\"notary\",scope=\"repository:x:pull\"",
                realm_of.lock().unwrap()
            );
            Response::new(401, "{}").header("WWW-Authenticate", &header)
        }
    });
    *realm.lock().unwrap() = with_token.url.clone();
    assert_refused(
        &inspect(&with_token.url),
        "endless token answer",
        "more than 1048576 bytes",
    );

    // Registries: an endless manifest, an endless error, an endless token answer.
    let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let pem = {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        key.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    let pem_path = trust.path().join("cosign.pub");
    std::fs::write(&pem_path, pem).unwrap();
    let failed = trust.path().join("failed.txt");
    let validate = |port: u16| {
        let run = trustctl(&[
            "validate",
            &format!("127.0.0.1:{port}/team/app:v1"),
            "--format",
            "cosign",
            "--public-key",
            pem_path.to_str().unwrap(),
            "--tls-ca",
            &ca_arg,
            "--failed",
            failed.to_str().unwrap(),
        ]);
        let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), run.stderr);
        (run, said)
    };
    let c = chunk.clone();
    let manifest = server(&ca, move |_| Response::endless(200, c.clone()));
    let c = chunk.clone();
    let error = server(&ca, move |_| Response::endless(500, c.clone()));
    let realm: Arc<Mutex<String>> = Arc::default();
    let realm_of = realm.clone();
    let c = chunk.clone();
    let token = server(&ca, move |path| {
        if path == "/token" {
            return Response::endless(200, c.clone());
        }
        let header = format!(
            "Bearer realm=\"{}/token\",service=\"registry\",scope=\"repository:team/app:pull\"",
            realm_of.lock().unwrap()
        );
        Response::new(401, "{}").header("WWW-Authenticate", &header)
    });
    *realm.lock().unwrap() = token.url.clone();
    for (what, port, expected) in [
        (
            "endless manifest",
            manifest.port,
            "sent more than 4194304 bytes",
        ),
        ("endless registry error", error.port, "answered 500"),
        (
            "endless registry token",
            token.port,
            "more than 1048576 bytes",
        ),
    ] {
        let (run, said) = validate(port);
        assert!(run.code.is_some_and(|c| c != 0), "{what}: {said}");
        assert!(said.contains(expected), "{what}: {said}");
        assert!(
            run.max_rss_mib < MAX_RSS_MIB,
            "{what}: {} MiB",
            run.max_rss_mib
        );
        eprintln!("{what}: refused, peak RSS {} MiB", run.max_rss_mib);
    }
}

#[test]
fn redirects_to_another_host_are_not_followed() {
    let ca = TestCa::new();
    let elsewhere_asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = elsewhere_asked.clone();
    let elsewhere = server(&ca, move |path| {
        log.lock().unwrap().push(path.to_owned());
        Response::new(404, "{}")
    });
    let target = format!("https://localhost:{}/stolen", elsewhere.port);
    let notary = server(&ca, move |_| {
        Response::new(302, "").header("Location", &target)
    });
    let trust = tempfile::tempdir().unwrap();
    let gun = format!("127.0.0.1:{}/team/app", notary.port);
    let run = inspect(&notary.url, &ca.ca_cert(), trust.path(), &gun, &[]);
    assert_refused(&run, "cross-host redirect", "redirected to another host");
    assert!(elsewhere_asked.lock().unwrap().is_empty());
}
