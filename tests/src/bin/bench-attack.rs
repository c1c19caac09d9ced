//! `trustd-bench-attack [--seconds S]`: the attacks of the security review at their full
//! scale, each on a fresh trustd (SoftHSM token, default limits), with a legitimate caller
//! (root) signing over the socket throughout. Prints, per attack: trustd's peak and
//! after-attack RSS, its most descriptors, the audit bytes written, and the legitimate
//! signatures' latency (median and worst) and failures, next to the same figures with no
//! attack. `TRUSTD_BIN=/path/to/an/older/trustd` measures another build the same way.
//!
//! Runs attackers as other uids through setpriv, so it needs root.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trustd_e2e::*;

const POLICY: &str = r#"
[[policy.rule]]
users = ["root"]
keys = ["*"]
operations = ["sign", "generate", "import", "delete", "list", "unlock", "provision"]

[[policy.rule]]
users = ["nobody"]
keys = ["ci-*"]
operations = ["sign"]
"#;

struct Attack {
    name: &'static str,
    /// (uid, attack binary arguments after the socket).
    attackers: Vec<(&'static str, &'static str, Vec<String>)>,
}

fn attacks(seconds: u64) -> Vec<Attack> {
    let hold = seconds.to_string();
    let sign = "/trustd.v1.Signer/Sign".to_owned();
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        Attack {
            name: "none (baseline)",
            attackers: Vec::new(),
        },
        Attack {
            name: "20,200 idle connections (uid nobody)",
            attackers: vec![("65534", "idle", args(&["20200", &hold]))],
        },
        Attack {
            name: "10 conns x 64 streams x 7 MB unfinished, no rule (uid 4242)",
            attackers: vec![(
                "4242",
                "partial",
                vec![
                    sign.clone(),
                    "10".into(),
                    "64".into(),
                    "7000000".into(),
                    "7000000".into(),
                    hold.clone(),
                ],
            )],
        },
        Attack {
            name: "10 conns x 64 streams x 1 MB unfinished, with a rule (uid nobody)",
            attackers: vec![(
                "65534",
                "partial",
                vec![
                    sign,
                    "10".into(),
                    "64".into(),
                    "1000000".into(),
                    "999000".into(),
                    hold,
                ],
            )],
        },
        Attack {
            name: "300 Signs with 1 MB key names, denied (uid nobody)",
            attackers: vec![("65534", "client", args(&["@k:1000000", "300"]))],
        },
    ]
}

fn start_attacker(socket: &str, uid: &str, mode: &str, args: &[String]) -> Child {
    let (program, mut full): (&str, Vec<String>) = match mode {
        "client" => ("trustd-e2e-client", vec![socket.to_owned()]),
        _ => (
            "trustd-e2e-attack",
            vec![mode.to_owned(), socket.to_owned()],
        ),
    };
    full.extend(args.iter().cloned());
    Command::new("setpriv")
        .args(["--reuid", uid, "--regid", uid, "--clear-groups"])
        .arg(bin(program))
        .args(&full)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start an attacker")
}

fn proc_kib(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:")))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn descriptors(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// One signature over a fresh connection (what a CI job's trustctl does).
async fn legit_sign(socket: &std::path::Path) -> Result<Duration, String> {
    let started = Instant::now();
    let mut client = trustctl::client::connect_socket(socket)
        .await
        .map_err(|e| e.to_string())?;
    client
        .sign(sign_request(
            "release",
            trustd_proto::SignatureAlgorithm::EcdsaP256Sha256,
            trustd_proto::SignatureEncoding::Raw,
            b"legitimate".to_vec(),
        ))
        .await
        .map_err(|s| format!("{:?}", s.code()))?;
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "run as root: attackers run as other uids through setpriv"
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds = match args.as_slice() {
        [] => 8,
        [flag, s] if flag == "--seconds" => s.parse().expect("--seconds N"),
        _ => {
            eprintln!("usage: trustd-bench-attack [--seconds S]");
            std::process::exit(2);
        }
    };
    println!(
        "{:<70} {:>9} {:>9} {:>6} {:>11} {:>9} {:>9} {:>7}",
        "attack", "peak MiB", "after MiB", "fds", "their audit", "sign p50", "sign max", "failed"
    );
    for attack in attacks(seconds) {
        let hsm = SoftHsm::new("attack");
        let mut options = Options::for_token(&hsm);
        options.socket_mode = "0666".into();
        options.policy = POLICY.into();
        let trustd = Trustd::start(&hsm, &options);
        trustd.ok(&["key", "generate", "release"]);
        let pid = trustd.pid();
        let socket = trustd.socket.to_str().unwrap().to_owned();
        let children: Vec<Child> = attack
            .attackers
            .iter()
            .map(|(uid, mode, args)| start_attacker(&socket, uid, mode, args))
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut latencies = Vec::new();
        let mut failed = 0;
        let mut max_fds = 0;
        let until = Instant::now() + Duration::from_secs(seconds.saturating_sub(1).max(1));
        while Instant::now() < until {
            max_fds = max_fds.max(descriptors(pid));
            match tokio::time::timeout(Duration::from_secs(5), legit_sign(&trustd.socket)).await {
                Ok(Ok(took)) => latencies.push(took),
                _ => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for child in children {
            let _ = child.wait_with_output();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let peak = proc_kib(pid, "VmHWM") / 1024;
        let after = proc_kib(pid, "VmRSS") / 1024;
        // What the attackers' requests wrote (root's signatures are audited too).
        let audit: usize = std::fs::read(&trustd.audit)
            .unwrap_or_default()
            .split(|&b| b == b'\n')
            .filter(|l| !l.windows(15).any(|w| w == b"\"caller_uid\":0,"))
            .map(|l| l.len() + 1)
            .sum::<usize>()
            .saturating_sub(1);
        latencies.sort();
        println!(
            "{:<70} {:>9} {:>9} {:>6} {:>11} {:>9.2?} {:>9.2?} {:>7}",
            attack.name,
            peak,
            after,
            max_fds,
            audit,
            percentile(&latencies, 0.5),
            percentile(&latencies, 1.0),
            failed
        );
    }
}
