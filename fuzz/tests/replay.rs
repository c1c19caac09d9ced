//! Every committed corpus input and every input that once crashed a target, replayed through
//! its target: what the fuzzer found stays fixed, and the laws each target asserts hold on
//! the whole corpus (a corpus that stops reaching a parser shows up as a coverage drop when
//! the fuzzer runs, and an empty corpus fails here).

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Some targets set process-wide state once (`SOFTHSM2_CONF`, `DOCKER_CONFIG`, `PATH`), which
/// C code in another test's thread may be reading: one target at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn replay(name: &str) {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let target = trustd_fuzz::target(name).expect("a target");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = inputs(&root.join("corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{name} is empty: run `scripts/fuzz {name} --seed`"
    );
    let regressions = inputs(&root.join("regressions").join(name));
    for input in corpus.iter().chain(&regressions) {
        let data = std::fs::read(input).unwrap();
        // A panic names the input, so it can be run alone: scripts/fuzz NAME --replay FILE.
        eprintln!("replaying {}", input.display());
        (target.run)(&data);
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        /// `scripts/fuzz` reads the target names out of `fuzz/src/lib.rs` with sed: it must
        /// find every one.
        #[test]
        fn scripts_fuzz_lists_every_target() {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let out = std::process::Command::new("bash")
                .arg(root.join("scripts/fuzz"))
                .arg("--list")
                .output()
                .expect("bash runs scripts/fuzz");
            assert!(out.status.success());
            let listed: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
            let targets: Vec<&str> = trustd_fuzz::TARGETS.iter().map(|t| t.name).collect();
            assert_eq!(listed, targets);
        }

        #[test]
        fn every_target_is_replayed() {
            let mut replayed = vec![$(stringify!($name)),*];
            let mut targets: Vec<&str> = trustd_fuzz::TARGETS.iter().map(|t| t.name).collect();
            replayed.sort_unstable();
            targets.sort_unstable();
            assert_eq!(replayed, targets);
        }
    };
}

replay_tests!(
    canonical_json,
    notary_envelope,
    notary_trust,
    root_certificate,
    tpm_attestation,
    piv_attestation,
    registry,
    cosign,
    docker_credentials,
    service_requests,
    piv_apdu,
    audit_log,
);
