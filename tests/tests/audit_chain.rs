//! The audit log as evidence, against a real trustd on SoftHSM2: every record is chained to the
//! one before, checkpoints of the chain are signed by a key on the token, and `trustctl audit
//! verify` names each kind of tampering precisely (edited, removed, inserted, moved and cut-off
//! records, a forged checkpoint, a chain rebuilt after an edit). The chain goes on across a
//! restart and a rotated file, and no caller may sign with the checkpoint key.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use trustd_e2e::*;

const CHECKPOINTS: &str = "checkpoint_key = \"audit-checkpoint\"\ncheckpoint_every_records = 5\ncheckpoint_every_secs = 3600\n";

struct Verdict {
    code: i32,
    report: serde_json::Value,
}

fn verify(trustd: &Trustd, files: &[&Path], key: &[&str]) -> Verdict {
    let mut command = trustd.trustctl();
    command.args(["audit", "verify", "--json"]).args(key);
    for file in files {
        command.arg(file);
    }
    let out = command.output().unwrap();
    Verdict {
        code: out.status.code().unwrap_or(-1),
        report: serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("no JSON report: {}", String::from_utf8_lossy(&out.stderr))),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A copy of the log with `lines`, in the test's own directory.
fn tampered(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn field(line: &str, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(line).unwrap()[name].clone()
}

#[test]
fn checkpoints_signed_on_the_token_show_every_kind_of_tampering() {
    let hsm = SoftHsm::new("audit-chain");
    let mut options = Options::for_token(&hsm);
    options.audit_settings = CHECKPOINTS.into();
    let mut trustd = Trustd::start(&hsm, &options);
    assert!(
        trustd
            .log_text()
            .contains("trustctl key generate audit-checkpoint"),
        "trustd says how to create the missing checkpoint key:\n{}",
        trustd.log_text()
    );
    trustd.ok(&["key", "generate", "audit-checkpoint"]);
    trustd.ok(&["key", "generate", "release"]);
    let work = tempfile::tempdir().unwrap();
    let blob = work.path().join("blob");
    std::fs::write(&blob, b"artifact").unwrap();
    for _ in 0..12 {
        trustd.ok(&["sign-blob", "--key", "release", blob.to_str().unwrap()]);
    }

    // The checkpoint key signs checkpoints and nothing else, even for root with keys = ["*"].
    let refused = trustd.run(&[
        "sign-blob",
        "--key",
        "audit-checkpoint",
        blob.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("audit checkpoints"));

    // Checked against trustd's key while it runs.
    let live = verify(&trustd, &[&trustd.audit], &["--key", "audit-checkpoint"]);
    assert_eq!(live.code, 0, "{}", live.report);
    assert!(live.report["checkpoints_verified"].as_u64().unwrap() >= 2);

    let public_key = work.path().join("checkpoint.pem");
    std::fs::write(
        &public_key,
        trustd.ok(&["key", "public", "audit-checkpoint"]),
    )
    .unwrap();
    let key_args = ["--public-key", public_key.to_str().unwrap()];
    assert!(trustd.stop().success());

    // At shutdown the last checkpoint covers every record.
    let log = lines(&trustd.audit);
    let report = verify(&trustd, &[&trustd.audit], &key_args).report;
    assert_eq!(report["broken"], serde_json::Value::Null, "{report}");
    assert_eq!(report["uncovered_records"], 0, "{report}");
    assert_eq!(report["first_seq"], 1);
    assert_eq!(report["records"], log.len());
    assert_eq!(field(log.last().unwrap(), "event"), "checkpoint");

    let human = trustd
        .trustctl()
        .args(["audit", "verify"])
        .args(key_args)
        .arg(&trustd.audit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success());
    assert!(text.contains("chain intact"), "{text}");

    // Without a key the chain is checked and the checkpoints are counted as unchecked.
    let unchecked = verify(&trustd, &[&trustd.audit], &[]);
    assert_eq!(unchecked.code, 0);
    assert!(unchecked.report["checkpoints_unchecked"].as_u64().unwrap() >= 3);

    let broken = |name: &str, lines: &[String]| {
        let path = tampered(work.path(), name, lines);
        let verdict = verify(&trustd, &[&path], &key_args);
        assert_eq!(verdict.code, 1, "{name}: {}", verdict.report);
        let broken = verdict.report["broken"].clone();
        (
            broken["line"].as_u64().unwrap() as usize,
            broken["reason"].as_str().unwrap().to_owned(),
        )
    };
    let sign_line = log
        .iter()
        .position(|l| field(l, "event") == "sign")
        .unwrap();

    let mut edited = log.clone();
    edited[sign_line] = edited[sign_line].replace("\"allowed\"", "\"denied\"");
    let (line, reason) = broken("edited", &edited);
    assert_eq!(line, sign_line + 2, "{reason}");
    assert!(
        reason.contains(&format!("line {}", sign_line + 1)),
        "{reason}"
    );

    let mut removed = log.clone();
    removed.remove(sign_line);
    let (line, reason) = broken("removed", &removed);
    assert_eq!(line, sign_line + 1, "{reason}");
    assert!(reason.contains("missing"), "{reason}");

    let mut inserted = log.clone();
    inserted.insert(sign_line + 3, log[sign_line].clone());
    let (line, reason) = broken("inserted", &inserted);
    assert_eq!(line, sign_line + 4, "{reason}");
    assert!(reason.contains("inserted"), "{reason}");

    let mut moved = log.clone();
    moved.swap(sign_line, sign_line + 1);
    assert_eq!(broken("moved", &moved).0, sign_line + 1);

    let mut cut = log.join("\n");
    cut.truncate(cut.len() - 20);
    let cut_path = work.path().join("cut");
    std::fs::write(&cut_path, cut).unwrap();
    let verdict = verify(&trustd, &[&cut_path], &key_args);
    assert_eq!(verdict.code, 1);
    assert_eq!(verdict.report["broken"]["line"], log.len());
    assert!(verdict.report["broken"]["reason"]
        .as_str()
        .unwrap()
        .contains("cut-off"));

    // A checkpoint claiming more than was signed.
    let checkpoint_line = log
        .iter()
        .position(|l| field(l, "event") == "checkpoint" && field(l, "result") == "allowed")
        .unwrap();
    let mut forged = log.clone();
    let statement = field(&log[checkpoint_line], "statement");
    let covered = serde_json::from_str::<serde_json::Value>(statement.as_str().unwrap()).unwrap()
        ["covered_seq"]
        .as_u64()
        .unwrap();
    forged[checkpoint_line] = forged[checkpoint_line].replace(
        &format!("\\\"covered_seq\\\":{covered}"),
        &format!("\\\"covered_seq\\\":{}", covered + 1),
    );
    assert_ne!(forged[checkpoint_line], log[checkpoint_line]);
    let forged = rechain(&forged, checkpoint_line);
    let (line, reason) = broken("forged", &forged);
    assert_eq!(line, checkpoint_line + 1, "{reason}");
    assert!(reason.contains("does not verify"), "{reason}");

    // An edit with every hash after it recomputed: the chain holds, the checkpoint does not.
    let rebuilt = rechain(&edited, sign_line);
    let (line, reason) = broken("rebuilt", &rebuilt);
    let first_checkpoint_after = log
        .iter()
        .enumerate()
        .skip(sign_line)
        .find(|(_, l)| field(l, "event") == "checkpoint")
        .unwrap()
        .0;
    assert_eq!(line, first_checkpoint_after + 1, "{reason}");
    assert!(reason.contains("rewritten"), "{reason}");

    // Restart, then rotation: the chain goes on across both.
    trustd.spawn();
    trustd.wait_ready();
    trustd.ok(&["sign-blob", "--key", "release", blob.to_str().unwrap()]);
    let rotated = work.path().join("audit.1.jsonl");
    std::fs::rename(&trustd.audit, &rotated).unwrap();
    trustd.signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(std::time::Duration::from_millis(500));
    trustd.ok(&["sign-blob", "--key", "release", blob.to_str().unwrap()]);
    assert!(trustd.stop().success());
    let both = verify(&trustd, &[&rotated, &trustd.audit], &key_args).report;
    assert_eq!(both["broken"], serde_json::Value::Null, "{both}");
    assert_eq!(both["first_seq"], 1);
    assert_eq!(both["uncovered_records"], 0, "{both}");
    let newest = verify(&trustd, &[&trustd.audit], &key_args).report;
    assert_eq!(newest["broken"], serde_json::Value::Null, "{newest}");
    assert_eq!(
        newest["starts_after_seq"].as_u64().unwrap() + 1,
        newest["first_seq"].as_u64().unwrap()
    );
    assert_eq!(
        newest["starts_after_seq"],
        serde_json::json!(lines(&rotated).len())
    );
    // Given in the wrong order, the files do not chain.
    let swapped = verify(&trustd, &[&trustd.audit, &rotated], &key_args);
    assert_eq!(swapped.code, 1, "{}", swapped.report);
}

/// `lines` with every `prev_sha256` from line `from` on recomputed, as someone who edited line
/// `from` would do to hide it.
fn rechain(lines: &[String], from: usize) -> Vec<String> {
    let mut out = lines[..=from].to_vec();
    for line in &lines[from + 1..] {
        let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
        let prev = hex::encode(Sha256::digest(out.last().unwrap().as_bytes()));
        value["prev_sha256"] = prev.into();
        // serde_json keeps the key order of the input (preserve_order is not on, so the keys
        // come out sorted): either way a valid record line, chained afresh.
        out.push(value.to_string());
    }
    out
}
