//! `trustd-bench-notary-signer [--repos N] [--clients C] [--seconds S] [--rounds R]`: trustd
//! as notary-server's signer against the real notary-signer (memory storage), in the same run,
//! on the same machine:
//! 1. repositories initialized and published per second through one notary-server per signer
//!    (`trustctl init`, C at a time: each makes the server create a timestamp and a snapshot
//!    key and sign both);
//! 2. notary-signer `Sign` RPCs per second over mutual TLS, straight to each signer, with 1 and
//!    8 concurrent callers (each on its own connection);
//! 3. both signers' peak RSS (VmHWM);
//! 4. where publishes wait: notary-server's median time (its access log) for the requests that
//!    call the signer, `GET .../<role>.key` (CreateKey) and the publishing POST.
//!
//! Figures are medians over R rounds, each signer measured in turn within a round; the ratio
//! is trustd's figure over notary-signer's (above 1: trustd is faster). trustd's keys are on
//! SoftHSM2; the trustd run's client keys (root, targets) live in the same trustd.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trustd_e2e::ca::TestCa;
use trustd_e2e::notary::{spawn_server, NotaryServer};
use trustd_e2e::signer_bench::{TlsEndpoint, NOTARY_SERVER_RULE};
use trustd_e2e::*;
use trustd_proto::notary_signer as ns;

struct Args {
    repos: usize,
    clients: usize,
    seconds: f64,
    rounds: usize,
}

fn parse_args() -> Args {
    let mut parsed = Args {
        repos: 40,
        clients: 4,
        seconds: 3.0,
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--repos" => parsed.repos = value.parse().expect("--repos takes a number"),
            "--clients" => parsed.clients = value.parse().expect("--clients takes a number"),
            "--seconds" => parsed.seconds = value.parse().expect("--seconds takes a number"),
            "--rounds" => parsed.rounds = value.parse().expect("--rounds takes a number"),
            _ => {
                eprintln!("usage: trustd-bench-notary-signer [--repos N] [--clients C] [--seconds S] [--rounds R]");
                std::process::exit(2);
            }
        }
    }
    parsed
}

/// One signer under test: where it listens and the process to measure.
struct Signer {
    name: &'static str,
    endpoint: TlsEndpoint,
    pid: u32,
}

/// The real notary-signer, memory storage, TLS from `ca`, client certificates from `ca`.
fn start_notary_signer(ca: &Arc<TestCa>, work: &Path) -> (std::process::Child, TlsEndpoint) {
    let endpoint = TlsEndpoint::new(ca.clone());
    let (cert, key) = ca.server_cert();
    let config = serde_json::json!({
        "server": {
            "grpc_addr": format!("127.0.0.1:{}", endpoint.port),
            "tls_cert_file": cert,
            "tls_key_file": key,
            "client_ca_file": ca.ca_cert(),
        },
        "logging": {"level": "error"},
        "storage": {"backend": "memory"},
    });
    let path = work.join("signer.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut command = Command::new("notary-signer");
    command.arg("-config").arg(&path);
    let child = spawn_server(
        command,
        &work.join("signer.log"),
        endpoint.port,
        "notary-signer",
    );
    (child, endpoint)
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Sign RPCs per second from `callers` concurrent callers for `seconds`.
async fn sign_rate(signer: &Signer, callers: usize, seconds: f64) -> f64 {
    let (cert, key) = signer
        .endpoint
        .ca
        .client_cert("bench-client", "/CN=notary-server");
    let remote = signer.endpoint.remote(&cert, &key);
    let channel = remote.channel().await.expect("a channel to the signer");
    let created = ns::key_management_client::KeyManagementClient::new(channel)
        .create_key(ns::CreateKeyRequest {
            algorithm: "ecdsa".into(),
            gun: "bench.example/signer".into(),
            role: "timestamp".into(),
        })
        .await
        .expect("CreateKey")
        .into_inner();
    let key_id = created.key_info.unwrap().key_id.unwrap();
    let content = serde_json::json!({"signed": {"_type": "Timestamp", "padding": "x".repeat(400)}})
        .to_string()
        .into_bytes();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let channel = remote.channel().await.expect("a channel to the signer");
        let (done, key_id, content) = (done.clone(), key_id.clone(), content.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = ns::signer_client::SignerClient::new(channel);
            while Instant::now() < deadline {
                client
                    .sign(ns::SignatureRequest {
                        key_id: Some(key_id.clone()),
                        content: content.clone(),
                    })
                    .await
                    .expect("Sign");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// What one publishing run measured: repositories per second, and notary-server's own time
/// (from its access log, in ms) for the requests that wait on the signer: `GET .../<role>.key`
/// (a CreateKey) and the publishing POST (GetKeyInfo and Sign for snapshot and timestamp).
struct Publishing {
    per_second: f64,
    key_ms: Vec<f64>,
    post_ms: Vec<f64>,
}

/// A Go duration as notary-server logs it ("10.6ms", "183.7µs", "1.2s"), in ms.
fn go_duration_ms(text: &str) -> Option<f64> {
    for (unit, scale) in [("ms", 1.0), ("µs", 0.001), ("ns", 0.000_001), ("s", 1000.0)] {
        if let Some(number) = text.strip_suffix(unit) {
            return number.parse::<f64>().ok().map(|n| n * scale);
        }
    }
    None
}

/// The durations of notary-server's completed requests whose method and path match.
fn request_times(log: &str, method: &str, path_ends: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| {
            entry["msg"] == "response completed"
                && entry["http.request.method"] == method
                && entry["http.request.uri"]
                    .as_str()
                    .is_some_and(|uri| uri.ends_with(path_ends))
        })
        .filter_map(|entry| {
            entry["http.response.duration"]
                .as_str()
                .and_then(go_duration_ms)
        })
        .collect()
}

/// Repositories made and published per second through a notary-server whose signer is
/// `signer`, `clients` trustctl processes at a time.
fn publish_rate(signer: &Signer, trustd: &Trustd, args: &Args, round: usize) -> Publishing {
    let server = NotaryServer::start_with_trust_service(
        signer.endpoint.ca.clone(),
        None,
        signer.endpoint.trust_service(),
    );
    server.wait_for_health(200);
    let trust_dir = tempfile::tempdir().unwrap();
    let next = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..args.clients {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= args.repos {
                    return;
                }
                let gun = format!("bench.example/{}/r{round}/repo{n}", signer.name);
                let out = trustd
                    .trustctl()
                    .args(["init", &gun, "--server", &server.url, "--tls-ca"])
                    .arg(server.ca.ca_cert())
                    .arg("--trust-dir")
                    .arg(trust_dir.path())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "trustctl init {gun}: {}\n--- notary-server ---\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    server.log()
                );
            });
        }
    });
    let per_second = args.repos as f64 / started.elapsed().as_secs_f64();
    let log = server.log();
    Publishing {
        per_second,
        key_ms: request_times(&log, "GET", ".key"),
        post_ms: request_times(&log, "POST", "/_trust/tuf/"),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args = parse_args();
    let ca = Arc::new(TestCa::new());
    let work = tempfile::tempdir().unwrap();
    let (mut notary_signer, signer_endpoint) = start_notary_signer(&ca, work.path());
    let hsm = SoftHsm::new("bench-notary-signer");
    let trustd_endpoint = TlsEndpoint::new(ca.clone());
    let mut options = Options::for_token(&hsm);
    options.extra = trustd_endpoint.trustd_tables("hsm");
    options.policy = format!("{ROOT_ONLY}{NOTARY_SERVER_RULE}");
    options.audit_path = Some(work.path().join("audit.jsonl"));
    let trustd = Trustd::start(&hsm, &options);
    let signers = [
        Signer {
            name: "notary-signer",
            pid: notary_signer.id(),
            endpoint: signer_endpoint,
        },
        Signer {
            name: "trustd",
            pid: trustd.pid() as u32,
            endpoint: trustd_endpoint,
        },
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut rows: Vec<(String, [f64; 2])> = Vec::new();
    for callers in [1, 8] {
        let mut rates = [Vec::new(), Vec::new()];
        for _ in 0..args.rounds {
            for (i, signer) in signers.iter().enumerate() {
                rates[i].push(runtime.block_on(sign_rate(signer, callers, args.seconds)));
            }
        }
        rows.push((
            format!("Sign RPCs/s, {callers} caller(s)"),
            [median(rates[0].clone()), median(rates[1].clone())],
        ));
    }
    let (mut publishes, mut key_ms, mut post_ms) = (
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
    );
    for round in 0..args.rounds {
        for (i, signer) in signers.iter().enumerate() {
            let run = publish_rate(signer, &trustd, &args, round);
            publishes[i].push(run.per_second);
            key_ms[i].extend(run.key_ms);
            post_ms[i].extend(run.post_ms);
        }
    }
    rows.insert(
        0,
        (
            format!("repositories published/s ({} clients)", args.clients),
            [median(publishes[0].clone()), median(publishes[1].clone())],
        ),
    );
    // Where a publish waits: notary-server's own time per request (lower is better).
    let waits = [
        ("notary-server GET <role>.key (CreateKey), ms", key_ms),
        ("notary-server publishing POST, ms", post_ms),
    ];
    let rss = [peak_rss_mb(signers[0].pid), peak_rss_mb(signers[1].pid)];

    println!(
        "{:<40} {:>14} {:>14} {:>8}",
        "", "notary-signer", "trustd", "ratio"
    );
    for (what, [theirs, ours]) in &rows {
        println!(
            "{what:<40} {theirs:>14.1} {ours:>14.1} {:>7.2}x",
            ours / theirs
        );
    }
    for (what, [theirs, ours]) in waits {
        let (theirs, ours) = (median(theirs), median(ours));
        println!(
            "{what:<40} {theirs:>14.2} {ours:>14.2} {:>7.2}x",
            theirs / ours
        );
    }
    println!(
        "{:<40} {:>14.1} {:>14.1} {:>7.2}x",
        "peak RSS, MB (lower is better)",
        rss[0],
        rss[1],
        rss[0] / rss[1]
    );
    println!(
        "ratios (trustd/notary-signer): publish {:.2}x, sign@1 {:.2}x, sign@8 {:.2}x, memory {:.2}x less",
        rows[0].1[1] / rows[0].1[0],
        rows[1].1[1] / rows[1].1[0],
        rows[2].1[1] / rows[2].1[0],
        rss[0] / rss[1]
    );
    let _ = notary_signer.kill();
    let _ = notary_signer.wait();
}
