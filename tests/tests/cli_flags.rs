//! trustctl's flags as hangar and notary users type them (issue: "hangar's habits"): short
//! flags, Go-style durations, and a repeatable `--paths` that leaves positionals alone.

use std::process::{Command, Output};

use trustd_e2e::*;

fn trustctl(args: &[&str]) -> Output {
    Command::new(bin("trustctl"))
        .args(["--socket", "/nonexistent/trustd.sock"])
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap()
}

#[test]
fn a_bare_number_is_not_a_timeout() {
    for args in [
        &["sign", "--timeout", "5", "reg.test/app:v1"][..],
        &["validate", "--timeout", "90", "reg.test/app:v1"][..],
        &["sign", "--timeout", "1.5m", "reg.test/app:v1"][..],
    ] {
        let out = trustctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("give a number with a unit, like 30s, 5m or 1m30s"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn hangar_short_flags_and_compound_durations_are_accepted() {
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), "reg.test/app:v1\n").unwrap();
    let out = trustctl(&[
        "sign",
        "-f",
        list.path().to_str().unwrap(),
        "-j",
        "2",
        "-a",
        "amd64,arm64",
        "-o",
        "linux",
        "--timeout",
        "1m30s",
        "--format",
        "cosign",
        "--key",
        "k",
    ]);
    // Parsed: it gets as far as trustd, which is not there (exit 3), not a usage error.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("unexpected argument"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn paths_takes_one_value_so_positionals_may_follow_it() {
    let out = trustctl(&[
        "delegation",
        "add",
        "--paths",
        "ci-,nightly-",
        "reg.test/team/app",
        "targets/ci",
        "--key",
        "/nonexistent/ci.pub",
    ]);
    let message = stderr(&out);
    assert!(
        !message.contains("required arguments were not provided"),
        "{message}"
    );
    // It got past parsing to the key file.
    assert!(message.contains("/nonexistent/ci.pub"), "{message}");
}
