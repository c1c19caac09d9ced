//! The README's commands, run as written: a user copies them, so they must work.
//!
//! The blob-signing block (the one with `trustctl key generate alice`) is read from README.md
//! at test time and run by bash, line for line, against a trustd on a SoftHSM token; only
//! its `export TRUSTD_SOCKET=...` line is pointed at the test's socket.

use std::process::Command;

use trustd_e2e::*;

/// The ```sh block of README.md that contains `needle`.
fn readme_block(needle: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    readme
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default())
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("no sh block with {needle:?} in README.md"))
        .to_owned()
}

#[test]
fn the_blob_signing_commands_work_as_written() {
    let hsm = SoftHsm::new("readme");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let block = readme_block("trustctl key generate alice");
    let script: String = block
        .lines()
        .map(|line| {
            if line.starts_with("export TRUSTD_SOCKET=") {
                format!("export TRUSTD_SOCKET={}", trustd.socket.display())
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.pdf"), b"%PDF-1.4 the notes\n").unwrap();
    let bin_dir = bin("trustctl").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(work.path())
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the README's commands failed:\n{script}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "openssl verified the signature: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
