//! What the benchmarks share: a measured run of signatures, its median over rounds, and how
//! a row is printed.

use std::time::{Duration, Instant};

use trustd_proto::{SignatureAlgorithm, SignatureEncoding};

use crate::{sign_request, Client};

/// About the size of a small TUF targets role: what trustctl signs most.
pub const PAYLOAD_BYTES: usize = 512;

/// `--seconds S --rounds R` from the command line (defaults 2 s, 3 rounds).
pub fn seconds_and_rounds(usage: &str) -> (f64, usize) {
    let (mut seconds, mut rounds) = (2.0, 3);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => seconds = value.parse().expect("--seconds takes a number"),
            "--rounds" => rounds = value.parse().expect("--rounds takes a number"),
            _ => {
                eprintln!("usage: {usage} [--seconds S] [--rounds R]");
                std::process::exit(2);
            }
        }
    }
    (seconds, rounds)
}

/// One measured run: signatures and their latencies.
pub struct Run {
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
    }
}

pub fn median_run(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    runs.swap_remove(runs.len() / 2)
}

pub fn print_row(mode: &str, run: &Run) {
    println!(
        "{mode:<34} {:>9.0}/s   p50 {:>7.1} us   p99 {:>7.1} us",
        run.per_second(),
        run.percentile(0.50).as_secs_f64() * 1e6,
        run.percentile(0.99).as_secs_f64() * 1e6,
    );
}

/// What one client does per iteration over the socket.
#[derive(Clone, Copy)]
pub enum Call {
    /// Sign a payload with the named key (ECDSA P-256).
    Sign(&'static str),
    /// A device-free call (ListKeys): the transport alone.
    ListKeys,
}

/// Each client has its own connection and repeats `call` until the deadline.
pub async fn run_socket(clients: &[Client], seconds: f64, call: Call) -> Run {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match call {
                        Call::Sign(key) => {
                            let reply = client
                                .sign(sign_request(
                                    key,
                                    SignatureAlgorithm::EcdsaP256Sha256,
                                    SignatureEncoding::Raw,
                                    vec![0x5a; PAYLOAD_BYTES],
                                ))
                                .await
                                .unwrap();
                            assert_eq!(reply.get_ref().signature.len(), 64);
                        }
                        Call::ListKeys => {
                            client
                                .list_keys(trustd_proto::ListKeysRequest {})
                                .await
                                .unwrap();
                        }
                    }
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Run {
        elapsed: start.elapsed(),
        latencies,
    }
}

/// One socket round of a device benchmark: a short warm-up (the device connects, the key
/// loads), then signing with 1 client and with `many` clients, each on its own connection.
pub async fn socket_round(
    trustd: &crate::Trustd,
    key: &'static str,
    many: usize,
    seconds: f64,
) -> (Run, Run) {
    let one = vec![trustd.client().await];
    let mut clients = Vec::new();
    for _ in 0..many {
        clients.push(trustd.client().await);
    }
    run_socket(&one, 0.2, Call::Sign(key)).await;
    (
        run_socket(&one, seconds, Call::Sign(key)).await,
        run_socket(&clients, seconds, Call::Sign(key)).await,
    )
}

/// The machine's CPU time counters, to tell how busy a run kept the cores: a parallel run
/// cannot beat a serial one by more than the idle share the serial run left.
#[derive(Clone, Copy)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    /// The aggregate line of /proc/stat (zero on systems without it).
    pub fn now() -> CpuTimes {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let total = fields.iter().take(8).sum();
        // idle and iowait are the 4th and 5th fields.
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        CpuTimes {
            busy: total - idle,
            total,
        }
    }

    /// The share of all cores that was busy since `self`, in percent.
    pub fn busy_percent_since(self) -> f64 {
        let now = CpuTimes::now();
        let total = now.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        100.0 * now.busy.saturating_sub(self.busy) as f64 / total as f64
    }
}
