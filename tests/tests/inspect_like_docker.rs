//! `trustctl inspect` prints what `docker trust inspect` prints, with the same exit code, for
//! the cases docker users meet first: an unsigned tag of a signed repository, and a
//! repository with trust data but no signed tag (the real docker CLI is the reference).

use trustd_e2e::dct::Dct;

const DIGEST: &str = "sha256:5c3a2f3bd7e1f2e5b5c3f1e9f4a7b2c8d6e0a1b3c5d7e9f1a3b5c7d9e1f3a5b7";

/// trustctl's and docker's stdout and exit code for the same arguments.
fn both(dct: &Dct, args: &[&str]) -> ((String, Option<i32>), (String, Option<i32>)) {
    let ours = dct.trustctl(&[&["inspect"], args].concat());
    let docker = dct.docker(&[&["trust", "inspect"], args].concat());
    (
        (
            String::from_utf8_lossy(&ours.stdout).into_owned(),
            ours.status.code(),
        ),
        (
            String::from_utf8_lossy(&docker.stdout).into_owned(),
            docker.status.code(),
        ),
    )
}

#[test]
fn an_unsigned_tag_and_an_empty_repository_are_reported_as_docker_reports_them() {
    let dct = Dct::new("inspect-like-docker");
    let signed = "registry.example.test/team/signed";
    dct.ok(&["sign", &format!("{signed}:v1@{DIGEST}"), "--size", "5"]);
    let empty = "registry.example.test/team/empty";
    dct.ok(&["init", empty]);

    for args in [
        vec![format!("{signed}:unsigned")],
        vec!["--pretty".to_owned(), format!("{signed}:unsigned")],
        vec![empty.to_owned()],
        vec!["--pretty".to_owned(), empty.to_owned()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ours, docker) = both(&dct, &args);
        assert_eq!(ours, docker, "inspect {args:?}");
    }
}

#[test]
fn each_image_that_fails_is_reported_once() {
    let trust_dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(trustd_e2e::bin("trustctl"))
        .args([
            "inspect",
            "registry.example.test/a",
            "registry.example.test/b",
        ])
        .args(["--server", "https://127.0.0.1:1", "--trust-dir"])
        .arg(trust_dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(lines.len(), 2, "one line per failing image: {stderr}");
    assert!(lines[0].contains("registry.example.test/a"), "{stderr}");
    assert!(lines[1].contains("registry.example.test/b"), "{stderr}");
}

#[test]
fn a_tls_ca_file_that_holds_no_certificate_is_refused_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let out = std::process::Command::new(trustd_e2e::bin("trustctl"))
        .args(["inspect", "registry.example.test/a"])
        // Nothing listens there: exit 2 (not 3) shows the file was checked first.
        .args(["--server", "https://127.0.0.1:1", "--tls-ca"])
        .arg(&junk)
        .arg("--trust-dir")
        .arg(dir.path().join("trust"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&junk.display().to_string()) && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}

#[test]
fn a_server_that_fails_is_named_with_where_its_url_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: Option<(&str, &str)>| {
        let mut command = std::process::Command::new(trustd_e2e::bin("trustctl"));
        command
            .args(args)
            .arg("--trust-dir")
            .arg(dir.path())
            .env_remove("TRUSTCTL_SERVER")
            .env_remove("DOCKER_CONTENT_TRUST_SERVER")
            // No config file, whatever the user running the tests has.
            .env("XDG_CONFIG_HOME", dir.path());
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    // No server set: the registry's host is tried, as docker does, and the message says so.
    let out = run(&["inspect", "127.0.0.1:1/team/app"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("https://127.0.0.1:1") && stderr.contains("no notary server was set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing is listening there") && !stderr.contains("os error"),
        "one sentence, not the transport's chain: {stderr}"
    );
    // Set by a variable: the variable is named.
    let out = run(
        &["inspect", "registry.example.test/team/app"],
        Some(("TRUSTCTL_SERVER", "https://127.0.0.1:1")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("(from $TRUSTCTL_SERVER)"), "{stderr}");
}

#[test]
fn a_server_certificate_from_an_unknown_ca_says_to_give_the_ca() {
    let ca = trustd_e2e::notary::TestCa::new();
    let (cert, key) = ca.server_cert();
    let server = trustd_e2e::http::HttpServer::start(Some((&cert, &key)), |_| {
        trustd_e2e::http::Response::new(404, "")
    });
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(trustd_e2e::bin("trustctl"))
        .args([
            "inspect",
            "registry.example.test/team/app",
            "--server",
            &server.url,
        ])
        .arg("--trust-dir")
        .arg(dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr
            .contains("not issued by a CA this machine trusts: give the server's CA with --tls-ca"),
        "{stderr}"
    );
    assert!(!stderr.contains("UnknownIssuer"), "{stderr}");
}
