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

/// `--key` is a key in trustd on every command that signs or verifies; a PEM file is
/// `--public-key` (and `--key FILE` where docker spells it so: `signer add`, `delegation
/// add`); a key ID is `--key-id`. A flag that does not apply is refused, not ignored.
#[test]
fn key_flags_mean_one_thing_and_flags_that_do_not_apply_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("alice.pub");
    std::fs::write(
        &pem,
        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let blob = dir.path().join("notes.txt");
    std::fs::write(&blob, "notes").unwrap();
    let pem_arg = pem.to_str().unwrap();
    let blob_arg = blob.to_str().unwrap();

    // A cosign user's --key cosign.pub: told which flag takes a file.
    let out = trustctl(&[
        "verify-blob",
        "--key",
        pem_arg,
        "--signature",
        blob_arg,
        blob_arg,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("--public-key {pem_arg}")),
        "{}",
        stderr(&out)
    );
    let out = trustctl(&[
        "validate",
        "--format",
        "cosign",
        "--key",
        pem_arg,
        "reg.test/a:1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--public-key"), "{}", stderr(&out));

    // Flags for the other format are refused before anything is sent.
    for (args, says) in [
        (
            &["sign", "--key", "release", "reg.test/a:1"][..],
            "--format cosign",
        ),
        (
            &["validate", "--public-key", pem_arg, "reg.test/a:1"][..],
            "--format cosign",
        ),
        (
            &[
                "sign",
                "--format",
                "cosign",
                "--key",
                "k",
                "--signer",
                "alice",
                "reg.test/a:1",
            ][..],
            "do not apply to --format cosign",
        ),
    ] {
        let out = trustctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }

    // A key ID is --key-id; --key is a file everywhere in signer and delegation commands.
    let out = trustctl(&[
        "delegation",
        "remove",
        "reg.test/a",
        "targets/ci",
        "--key",
        "abc",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--key-id"),
        "clap suggests the flag: {}",
        stderr(&out)
    );
    let missing = dir.path().join("bob.pub");
    let out = trustctl(&[
        "signer",
        "add",
        "--key",
        missing.to_str().unwrap(),
        "bob",
        "reg.test/a",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no such file") && !err.contains("os error"),
        "{err}"
    );
}

/// Help and usage read alike everywhere: environment variables do not put flags into usage
/// lines, `key generate --help` has the one-line layout of the rest, and the options for
/// reaching trustd are grouped apart from each command's own.
#[test]
fn help_and_usage_lines_are_laid_out_alike() {
    let out = Command::new(bin("trustctl"))
        .args(["sign", "--size", "1"])
        .env("TRUSTCTL_TLS_CA", "/etc/ssl/certs/ca-certificates.crt")
        .env("TRUSTD_SOCKET", "/nonexistent/trustd.sock")
        .env("TRUSTCTL_TRUST_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let usage = stderr(&out)
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        usage,
        "Usage: trustctl sign --size <BYTES> <IMAGE:TAG>...",
        "{}",
        stderr(&out)
    );

    let help = String::from_utf8(trustctl(&["key", "generate", "--help"]).stdout).unwrap();
    let algorithm = help
        .lines()
        .find(|l| l.contains("--algorithm <ALGORITHM>"))
        .unwrap_or_else(|| panic!("{help}"));
    assert!(
        algorithm.contains("Key algorithm"),
        "the help is on the flag's line: {help}"
    );
    assert!(!help.contains("Possible values:"), "{help}");
    for command in [
        &["key", "generate"][..],
        &["sign"],
        &["validate"],
        &["inspect"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = String::from_utf8(trustctl(&args).stdout).unwrap();
        let heading = help
            .find("Reaching trustd:")
            .unwrap_or_else(|| panic!("{help}"));
        assert!(help[heading..].contains("--socket <PATH>"), "{help}");
        assert!(!help[..heading].contains("--socket <PATH>"), "{help}");
    }
}
