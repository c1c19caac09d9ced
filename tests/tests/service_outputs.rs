//! What tools and admins read from trustd and trustctl besides signatures: the JSON of
//! `status` and `key list` against their published schemas (checked by Python's jsonschema,
//! not by our code), trustd's JSON log lines, and the completions and man pages generated from
//! the clap definitions.

use std::process::Command;

use trustd_e2e::*;

#[test]
fn status_and_key_list_json_match_their_published_schemas() {
    let hsm = SoftHsm::new("schemas");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    trustd.ok(&["key", "generate", "alice"]);
    trustd.ok(&[
        "key",
        "generate",
        "repo-root",
        "--gun",
        "registry.example/app",
        "--role",
        "root",
    ]);

    let status = trustd.ok(&["status", "--json"]);
    assert_matches_schema("status.schema.json", &status);
    let parsed: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(parsed["keys"], 2);
    assert_eq!(parsed["backends"][0]["name"], "hsm");
    assert_eq!(parsed["backends"][0]["state"], "ready");

    let keys = trustd.ok(&["key", "list", "--json"]);
    assert_matches_schema("key-list.schema.json", &keys);
    let parsed: serde_json::Value = serde_json::from_str(&keys).unwrap();
    let root = parsed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "repo-root")
        .unwrap();
    assert_eq!(root["gun"], "registry.example/app");
    assert_eq!(root["role"], "root");

    // The schema check is not vacuous: a document missing a required field fails it.
    let broken = status.replace("\"requests_in_flight\"", "\"requests_flying\"");
    let caught = std::panic::catch_unwind(|| assert_matches_schema("status.schema.json", &broken));
    assert!(
        caught.is_err(),
        "the schema accepted a status without requests_in_flight"
    );
}

#[test]
fn trustd_logs_one_json_object_per_line_when_asked_and_refuses_unknown_formats() {
    let hsm = SoftHsm::new("json-logs");
    let mut options = Options::for_token(&hsm);
    options
        .env
        .push(("TRUSTD_LOG_FORMAT".into(), "json".into()));
    let mut trustd = Trustd::start(&hsm, &options);
    trustd.ok(&["key", "generate", "k"]);
    assert!(trustd.stop().success());
    let log = trustd.log_text();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let created = events
        .iter()
        .find(|e| e["message"] == "key created")
        .expect("a key created event");
    assert_eq!(created["level"], "INFO");
    assert_eq!(created["key"], "k");
    assert_eq!(created["backend"], "hsm");
    assert!(events.iter().any(|e| e["message"] == "trustd stopped"));

    let out = Command::new(bin("trustd"))
        .arg("--config")
        .arg(&trustd.config)
        .env("TRUSTD_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("TRUSTD_LOG_FORMAT=\"xml\" is not a log format: use text, json or journald"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    let run = |args: &[&str]| {
        let out = Command::new(bin("trustctl")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.contains("complete -F _trustctl"), "{bash}");
    // Nested subcommands and their flags are completed.
    assert!(
        bash.contains("trustctl__subcmd__key__subcmd__generate"),
        "no key generate in bash completion"
    );
    assert!(bash.contains("--touch-policy"));
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef trustctl"), "{}", &zsh[..40]);
    let fish = run(&["completions", "fish"]);
    assert!(fish.contains("complete -c trustctl"));
    // No trustd, no configuration needed: completions work before anything is set up.
    let out = Command::new(bin("trustctl"))
        .args(["--socket", "/nonexistent.sock", "completions", "bash"])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(bin("trustctl"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    run(&["man-pages", "--out", dir.path().to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.path().join("trustctl-key-generate.1")).unwrap();
    assert!(page.contains(".TH trustctl-key-generate 1"), "{page}");
    assert!(page.contains("touch\\-policy"), "{page}");
    for name in [
        "trustctl.1",
        "trustctl-sign.1",
        "trustctl-audit-verify.1",
        "trustctl-completions.1",
    ] {
        assert!(dir.path().join(name).is_file(), "no {name}");
    }
    // Hidden commands get no page.
    assert!(!dir.path().join("trustctl-man-pages.1").exists());
    // man itself renders them without warnings.
    let rendered = Command::new("man")
        .arg("--warnings")
        .arg("-l")
        .arg(dir.path().join("trustctl-sign.1"))
        .env("MANWIDTH", "80")
        .output();
    if let Ok(rendered) = rendered {
        assert!(rendered.status.success());
        assert!(String::from_utf8_lossy(&rendered.stdout).contains("trustctl-sign"));
    }

    let out = Command::new(bin("trustd"))
        .arg("--write-man-page")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let trustd_page = std::fs::read_to_string(dir.path().join("trustd.8")).unwrap();
    assert!(trustd_page.contains(".SH SIGNALS") && trustd_page.contains("SIGHUP"));
    let config_page = std::fs::read_to_string(dir.path().join("trustd.toml.5")).unwrap();
    // The page shows the packaged example, every line of it.
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/trustd.example.toml"),
    )
    .unwrap();
    for line in example
        .lines()
        .filter(|l| l.starts_with("[") || l.contains(" = "))
    {
        let escaped = line.replace('\\', "\\\\").replace('-', "\\-");
        assert!(
            config_page.contains(line) || config_page.contains(&escaped),
            "trustd.toml(5) lacks {line:?}"
        );
    }
}
