//! trustd under load and faults for a while (`scripts/soak [--minutes N]`): a SoftHSM2 token
//! and a TPM (swtpm) behind one trustd, 8 signing clients, key generate/delete churn, a policy
//! reload with audit log rotation every 10 s, every minute (every quarter of a short run) the
//! token unplugged for 5 s or swtpm killed for 5 s and restarted, in turn, and clients that
//! hang up mid-request or right after connecting.
//!
//! It then checks what a user of a signing service needs to hold after hours: no request
//! failed except with Unavailable while its device was gone; the audit trail holds exactly one
//! record per signing request, and its chain verifies across every rotated file; memory grew
//! less than 10% after warm-up; descriptors and threads stayed flat; trustd never restarted.
//! It prints the figures and one PASS or FAIL line (exit code 0 or 1).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use trustd_e2e::tpm::Swtpm;
use trustd_e2e::{generate_request, sign_request, Options, SoftHsm, Trustd, ROOT_ONLY};
use trustd_proto::{KeyAlgorithm, SignatureAlgorithm, SignatureEncoding};

const CLIENTS: usize = 8;
const RELOAD_EVERY: Duration = Duration::from_secs(10);
const UNPLUG_EVERY: Duration = Duration::from_secs(60);
/// How long a device stays gone each time.
const OUTAGE: Duration = Duration::from_secs(5);
/// After a device is back, trustd reconnects at most every 500 ms and a request already
/// waiting on the dead device fails with Unavailable: failures this soon after are expected.
const RECOVERY_GRACE: Duration = Duration::from_secs(3);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Whether a device is gone now, or was within the grace period.
#[derive(Default)]
struct Outage {
    down: AtomicBool,
    back_at: Mutex<Option<Instant>>,
}

impl Outage {
    fn set_down(&self) {
        self.down.store(true, Ordering::SeqCst);
    }
    fn set_back(&self) {
        *self.back_at.lock().unwrap() = Some(Instant::now());
        self.down.store(false, Ordering::SeqCst);
    }
    /// Whether an Unavailable answer to a request started at `started` is explained.
    fn explains(&self, started: Instant) -> bool {
        if self.down.load(Ordering::SeqCst) {
            return true;
        }
        let back = *self.back_at.lock().unwrap();
        back.is_some_and(|back| {
            started < back + RECOVERY_GRACE && back.elapsed() < RECOVERY_GRACE * 2
        })
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unavailable_token: AtomicU64,
    unavailable_tpm: AtomicU64,
    /// Failures nothing explains, counted by what failed, code and message (a key name that
    /// changes each time is left out, so a failure that repeats is one entry).
    unexpected: Mutex<BTreeMap<String, u64>>,
    /// payload SHA-256 of every signing request a client made (each unique).
    requested: Mutex<Vec<[u8; 32]>>,
    churn_generated: AtomicU64,
    churn_deleted: AtomicU64,
    hangups: AtomicU64,
}

impl Tally {
    fn unexpected(&self, what: &str, status: &tonic::Status) {
        let failure = format!("{what}: {:?}: {}", status.code(), status.message());
        *self.unexpected.lock().unwrap().entry(failure).or_default() += 1;
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    threads: u64,
    fds: u64,
}

fn sample(pid: i32, start: Instant) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Sample {
        at: start.elapsed(),
        rss_kib: field("VmRSS:"),
        threads: field("Threads:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count() as u64)
            .unwrap_or(0),
    }
}

fn minutes_from_args() -> f64 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => 30.0,
        [flag, n] if flag == "--minutes" => n.parse().unwrap_or_else(|_| {
            eprintln!("trustd-soak: --minutes takes a number, not {n:?}");
            std::process::exit(2)
        }),
        _ => {
            eprintln!("usage: trustd-soak [--minutes N]");
            std::process::exit(2)
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let minutes = minutes_from_args();
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let warm_up = (run_for / 5).max(Duration::from_secs(20));
    // A short run still sees both devices go away (the token first, then the TPM).
    let unplug_every = UNPLUG_EVERY.min(run_for / 4);

    let hsm = SoftHsm::new("soak");
    let mut tpm = Swtpm::start();
    let mut options = Options::for_token(&hsm);
    options.backends = Some(format!(
        "[[backend]]\ntype = \"pkcs11\"\nname = \"hsm\"\nmodule = \"{module}\"\ntoken_label = \"soak\"\npin = {{ file = \"@PIN@\" }}\nsessions = 4\n\n[[backend]]\ntype = \"tpm\"\nname = \"tpm\"\ntcti = \"{tcti}\"\n",
        module = trustd_e2e::MODULE,
        tcti = tpm.tcti(),
    ));
    options.policy = ROOT_ONLY.into();
    let mut trustd = Trustd::configure(&hsm, &options);
    // The PIN file the harness wrote, named in the hand-written backend table.
    let config = std::fs::read_to_string(&trustd.config).unwrap();
    std::fs::write(
        &trustd.config,
        config.replace("@PIN@", &trustd.pin_file().display().to_string()),
    )
    .unwrap();
    trustd.spawn();
    trustd.wait_ready();
    let pid = trustd.pid();

    let mut setup = trustd.client().await;
    for (name, backend) in [
        ("soak-hsm-0", "hsm"),
        ("soak-hsm-1", "hsm"),
        ("soak-tpm", "tpm"),
        ("soak-drop", "hsm"),
    ] {
        let mut request = generate_request(name, KeyAlgorithm::EcdsaP256);
        request.backend = backend.into();
        setup
            .generate_key(request)
            .await
            .expect("the soak's keys are made");
    }

    let tally = Arc::new(Tally::default());
    let hsm_outage = Arc::new(Outage::default());
    let tpm_outage = Arc::new(Outage::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();

    for client_number in 0..CLIENTS {
        let mut client = trustd.client().await;
        let (tally, hsm_outage, tpm_outage, stop) = (
            tally.clone(),
            hsm_outage.clone(),
            tpm_outage.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let (key, outage) = match n % 3 {
                    0 => ("soak-tpm", &tpm_outage),
                    1 => ("soak-hsm-0", &hsm_outage),
                    _ => ("soak-hsm-1", &hsm_outage),
                };
                let message = format!("client {client_number} request {n}").into_bytes();
                tally
                    .requested
                    .lock()
                    .unwrap()
                    .push(Sha256::digest(&message).into());
                let request = sign_request(
                    key,
                    SignatureAlgorithm::EcdsaP256Sha256,
                    SignatureEncoding::Raw,
                    message,
                );
                let started = Instant::now();
                match client.sign(request).await {
                    Ok(_) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status)
                        if status.code() == tonic::Code::Unavailable
                            && outage.explains(started) =>
                    {
                        let counter = match key {
                            "soak-tpm" => &tally.unavailable_tpm,
                            _ => &tally.unavailable_token,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(status) => tally.unexpected(&format!("sign {key}"), &status),
                }
            }
        }));
    }

    // Key churn on the token.
    {
        let mut client = trustd.client().await;
        let (tally, hsm_outage, stop) = (tally.clone(), hsm_outage.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let name = format!("churn-{n}");
                let started = Instant::now();
                let explained = |status: &tonic::Status| {
                    status.code() == tonic::Code::Unavailable && hsm_outage.explains(started)
                };
                let mut request = generate_request(&name, KeyAlgorithm::EcdsaP256);
                request.backend = "hsm".into();
                match client.generate_key(request).await {
                    Ok(_) => {
                        tally.churn_generated.fetch_add(1, Ordering::Relaxed);
                        let delete = trustd_proto::DeleteKeyRequest {
                            key: Some(trustd_proto::KeySelector {
                                selector: Some(trustd_proto::key_selector::Selector::Name(
                                    name.clone(),
                                )),
                            }),
                        };
                        // A delete refused while the token is gone is retried until it is back.
                        loop {
                            let started = Instant::now();
                            match client.delete_key(delete.clone()).await {
                                Ok(_) => {
                                    tally.churn_deleted.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                                Err(status)
                                    if status.code() == tonic::Code::Unavailable
                                        && hsm_outage.explains(started) =>
                                {
                                    tokio::time::sleep(Duration::from_millis(200)).await
                                }
                                Err(status) => {
                                    tally.unexpected("delete a churn key", &status);
                                    break;
                                }
                            }
                        }
                    }
                    Err(status) if explained(&status) => {}
                    Err(status) => tally.unexpected("generate a churn key", &status),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    // Callers that hang up: mid-request, and right after connecting.
    for hangup in 0..2u64 {
        let socket = trustd.socket.clone();
        let (tally, stop) = (tally.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                if n.is_multiple_of(2) {
                    if let Ok(mut client) = trustctl::client::connect_socket(&socket).await {
                        let request = sign_request(
                            "soak-drop",
                            SignatureAlgorithm::EcdsaP256Sha256,
                            SignatureEncoding::Raw,
                            format!("hangup {hangup} {n}").into_bytes(),
                        );
                        let wait = Duration::from_micros(200 * (n % 25));
                        let _ = tokio::time::timeout(wait, client.sign(request)).await;
                    }
                } else if let Ok(mut stream) = tokio::net::UnixStream::connect(&socket).await {
                    use tokio::io::AsyncWriteExt;
                    let _ = stream
                        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00")
                        .await;
                }
                tally.hangups.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    // The faults, and the samples.
    let mut samples = Vec::new();
    let mut rotated: Vec<PathBuf> = Vec::new();
    let mut last_reload = Instant::now();
    let mut last_unplug = Instant::now();
    let mut tpm_turn = false;
    let tokens = hsm.token_dir();
    let unplugged = hsm.dir.path().join("tokens.unplugged");
    let mut restarts_seen = 0;
    while start.elapsed() < run_for {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if samples
            .last()
            .is_none_or(|s: &Sample| start.elapsed() >= s.at + SAMPLE_EVERY)
        {
            samples.push(sample(pid, start));
        }
        if last_reload.elapsed() >= RELOAD_EVERY {
            last_reload = Instant::now();
            let file = trustd
                .audit
                .with_extension(format!("jsonl.{}", rotated.len() + 1));
            std::fs::rename(&trustd.audit, &file).unwrap();
            rotated.push(file);
            trustd.signal(nix::sys::signal::Signal::SIGHUP);
        }
        if last_unplug.elapsed() >= unplug_every {
            last_unplug = Instant::now();
            if tpm_turn {
                tpm_outage.set_down();
                tpm.kill();
                tokio::time::sleep(OUTAGE).await;
                tpm.resume();
                tpm_outage.set_back();
            } else {
                hsm_outage.set_down();
                std::fs::rename(&tokens, &unplugged).unwrap();
                std::fs::create_dir(&tokens).unwrap();
                tokio::time::sleep(OUTAGE).await;
                std::fs::remove_dir(&tokens).unwrap();
                std::fs::rename(&unplugged, &tokens).unwrap();
                hsm_outage.set_back();
            }
            tpm_turn = !tpm_turn;
        }
        if !trustd.is_running() {
            restarts_seen += 1;
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
    }
    let still_running = trustd.is_running() && trustd.pid() == pid;
    let log = trustd.log_text();
    let ready_lines = log.matches("trustd ready").count();
    trustd.stop();

    // The audit trail: every file, oldest first.
    let mut files = rotated.clone();
    files.push(trustd.audit.clone());
    // Read one record at a time: a 30-minute run writes millions.
    let client_keys = ["soak-hsm-0", "soak-hsm-1", "soak-tpm"];
    let mut records = 0u64;
    let mut audited: HashMap<[u8; 32], u64> = HashMap::new();
    for file in &files {
        let Ok(file) = std::fs::File::open(file) else {
            continue;
        };
        for line in std::io::BufRead::lines(std::io::BufReader::new(file)) {
            let line = line.expect("the audit log reads");
            let record: serde_json::Value =
                serde_json::from_str(&line).expect("audit lines are JSON");
            records += 1;
            if record["event"] != "sign" || !client_keys.iter().any(|k| record["key_name"] == *k) {
                continue;
            }
            let digest = record["payload_sha256"]
                .as_str()
                .and_then(|d| <[u8; 32]>::try_from(hex::decode(d).ok()?).ok());
            if let Some(digest) = digest {
                *audited.entry(digest).or_default() += 1;
            }
        }
    }
    let requested = std::mem::take(&mut *tally.requested.lock().unwrap());
    let missing = requested
        .iter()
        .filter(|d| !audited.contains_key(*d))
        .count();
    let twice = audited.values().filter(|&&n| n > 1).count();
    let strays = audited.len() - (requested.len() - missing);
    let verify = std::process::Command::new(trustd_e2e::bin("trustctl"))
        .args(["audit", "verify", "--json"])
        .args(&files)
        .output()
        .expect("trustctl audit verify runs");
    let chain: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap_or_default();

    // Resources after warm-up.
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm_up).collect();
    let baseline = after.first().copied().copied();
    let last = samples.last().copied();
    let mut failures = Vec::new();
    let mut figures = BTreeMap::new();
    figures.insert("minutes", format!("{minutes}"));
    figures.insert("signatures", tally.ok.load(Ordering::Relaxed).to_string());
    figures.insert(
        "unavailable while the token / TPM was gone",
        format!(
            "{} / {}",
            tally.unavailable_token.load(Ordering::Relaxed),
            tally.unavailable_tpm.load(Ordering::Relaxed)
        ),
    );
    figures.insert(
        "keys generated and deleted",
        format!(
            "{} / {}",
            tally.churn_generated.load(Ordering::Relaxed),
            tally.churn_deleted.load(Ordering::Relaxed)
        ),
    );
    figures.insert(
        "hang-ups",
        tally.hangups.load(Ordering::Relaxed).to_string(),
    );
    figures.insert("audit files", files.len().to_string());
    figures.insert("audit records", records.to_string());
    figures.insert(
        "signing requests / audited once",
        format!("{} / {}", requested.len(), requested.len() - missing),
    );
    let unexpected = tally.unexpected.lock().unwrap().clone();
    if !unexpected.is_empty() {
        let total: u64 = unexpected.values().sum();
        failures.push(format!("{total} unexpected failures: {unexpected:?}"));
    }
    if missing > 0 || twice > 0 || strays > 0 {
        failures.push(format!(
            "audit: {missing} requests without a record, {twice} with more than one, {strays} records for no request"
        ));
    }
    figures.insert(
        "audit chain (trustctl audit verify)",
        match verify.status.code() {
            Some(0) => format!(
                "intact, seq {} to {}",
                chain["first_seq"], chain["last_seq"]
            ),
            _ => "BROKEN".into(),
        },
    );
    if !verify.status.success() {
        failures.push(format!(
            "audit chain: {} {}",
            chain["broken"],
            String::from_utf8_lossy(&verify.stderr)
        ));
    }
    if let (Some(base), Some(last)) = (baseline, last) {
        let peak_rss = after.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let growth = (last.rss_kib as f64 / base.rss_kib.max(1) as f64 - 1.0) * 100.0;
        figures.insert(
            "RSS KiB after warm-up / peak / end",
            format!(
                "{} / {peak_rss} / {} ({growth:+.1}%)",
                base.rss_kib, last.rss_kib
            ),
        );
        let (fd_min, fd_max) = min_max(after.iter().map(|s| s.fds));
        let (th_min, th_max) = min_max(after.iter().map(|s| s.threads));
        figures.insert("fds after warm-up (min-max)", format!("{fd_min}-{fd_max}"));
        figures.insert(
            "threads after warm-up (min-max)",
            format!("{th_min}-{th_max}"),
        );
        if growth >= 10.0 {
            failures.push(format!("RSS grew {growth:.1}% after warm-up"));
        }
        // Connections come and go (the hang-up callers): descriptors may vary by the few
        // they hold at a time, never climb.
        if last.fds > base.fds + 16 {
            failures.push(format!(
                "descriptors climbed from {} to {}",
                base.fds, last.fds
            ));
        }
        if th_max > th_min + 8 {
            failures.push(format!("threads ranged {th_min}-{th_max}"));
        }
    } else {
        failures.push("the run was too short to sample after warm-up".into());
    }
    if !still_running || ready_lines != 1 || restarts_seen > 0 {
        failures.push(format!(
            "trustd did not run throughout (running at the end: {still_running}, started {ready_lines} times)"
        ));
    }
    for (name, value) in &figures {
        println!("{name:>40}: {value}");
    }
    if failures.is_empty() {
        println!("soak: PASS");
    } else {
        for failure in &failures {
            println!("  FAIL {failure}");
        }
        println!("soak: FAIL");
        std::process::exit(1);
    }
}

fn min_max(values: impl Iterator<Item = u64>) -> (u64, u64) {
    values.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)))
}
