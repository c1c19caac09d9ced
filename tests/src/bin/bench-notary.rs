//! `trustd-bench-notary [--sizes 100,1000,10000] [--rounds R]`: Docker Content Trust at scale,
//! trustctl against the real notary client and docker CLI on the same notary-server, in the
//! same run.
//!
//! For each N, a repository is made by `notary init`, its snapshot key handed to the server
//! (as docker does) and its targets key loaded into trustd; N tags are signed into it. Then,
//! alternating over R rounds on that same repository:
//! - publish one more tag: `notary addhash ... -p` against `trustctl sign IMAGE:TAG@DIGEST`;
//! - read it all: `notary list` against `trustctl inspect`, with a cold (empty) and a warm
//!   local cache, and `docker trust inspect` (warm).
//!
//! Every figure is the median wall time of whole commands; the ratio is the other client's
//! time over trustctl's (above 1: trustctl is faster).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trustctl::notary::publish::{self, Target};
use trustd_e2e::notary::NotaryServer;
use trustd_e2e::*;
use trustd_notary::client::server::NotaryServer as ApiClient;
use trustd_notary::trust::{self, TrustStore};

struct Args {
    sizes: Vec<usize>,
    rounds: usize,
}

fn parse_args() -> Args {
    let mut parsed = Args {
        sizes: vec![100, 1000, 10000],
        rounds: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--sizes" => {
                parsed.sizes = value
                    .split(',')
                    .map(|n| n.parse().expect("--sizes takes numbers"))
                    .collect()
            }
            "--rounds" => parsed.rounds = value.parse().expect("--rounds takes a number"),
            _ => {
                eprintln!("usage: trustd-bench-notary [--sizes 100,1000,10000] [--rounds R]");
                std::process::exit(2);
            }
        }
    }
    parsed
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Runs a command to success and returns its wall time.
fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().expect("command runs");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn digest_for(label: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(label.as_bytes()))
}

struct Bench {
    trustd: Trustd,
    server: NotaryServer,
    notary_dir: tempfile::TempDir,
    docker_config: tempfile::TempDir,
}

impl Bench {
    fn notary(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = self.server.client(dir);
        cmd.args(args);
        cmd
    }

    fn trustctl(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = self.trustd.trustctl();
        cmd.args(args)
            .arg("--server")
            .arg(&self.server.url)
            .arg("--tls-ca")
            .arg(self.server.ca.ca_cert())
            .arg("--trust-dir")
            .arg(dir);
        cmd
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_CONFIG", self.docker_config.path())
            .env("DOCKER_CONTENT_TRUST_SERVER", &self.server.url);
        cmd
    }

    /// A notary-made repository with N tags, its targets key in trustd.
    fn repository(&self, runtime: &tokio::runtime::Runtime, gun: &str, n: usize) {
        let dir = self.notary_dir.path();
        timed(&mut self.notary(dir, &["init", gun, "-p"]));
        timed(&mut self.notary(dir, &["key", "rotate", gun, "snapshot", "-r"]));
        let key = NotaryServer::key_file(dir, gun, "targets");
        self.trustd
            .load_encrypted_key(&key, &format!("{gun}/targets"), "test targets passphrase");

        runtime.block_on(async {
            let api =
                ApiClient::new(&self.server.url, Some(&self.server.ca.ca_cert()), None).unwrap();
            let cache = tempfile::tempdir().unwrap();
            let store = TrustStore::new(cache.path());
            let repo = trust::update(&api, &store, gun, time::OffsetDateTime::now_utc())
                .await
                .unwrap();
            let tags: Vec<String> = (0..n).map(|i| format!("tag-{i:05}")).collect();
            let targets: Vec<Target> = tags
                .iter()
                .map(|tag| Target {
                    tag,
                    sha256: hex::decode(digest_for(tag)).unwrap().try_into().unwrap(),
                    size: 1000 + tag.len() as i64,
                })
                .collect();
            publish::sign_targets(
                &api,
                &store,
                self.trustd.client().await,
                &repo,
                &targets,
                Default::default(),
            )
            .await
            .unwrap();
        });
    }
}

fn ms(d: Duration) -> String {
    format!("{:8.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args = parse_args();
    let hsm = SoftHsm::new("bench-notary");
    let bench = Bench {
        trustd: Trustd::start(&hsm, &Options::for_token(&hsm)),
        server: NotaryServer::start(),
        notary_dir: tempfile::tempdir().unwrap(),
        docker_config: tempfile::tempdir().unwrap(),
    };
    let tls = bench
        .docker_config
        .path()
        .join("tls")
        .join(bench.server.url.trim_start_matches("https://"));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(bench.server.ca.ca_cert(), tls.join("ca.crt")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    println!(
        "Docker Content Trust at scale: median of {} rounds, whole commands, same notary-server",
        args.rounds
    );
    let mut summary = Vec::new();
    for &n in &args.sizes {
        let gun = format!("registry.example.test/bench/n{n}");
        bench.repository(&runtime, &gun, n);
        let notary_dir = bench.notary_dir.path();
        let trustctl_warm = tempfile::tempdir().unwrap();
        // Fill both warm caches (and docker's) once before measuring.
        timed(&mut bench.notary(notary_dir, &["list", &gun]));
        timed(&mut bench.trustctl(trustctl_warm.path(), &["inspect", &gun]));
        timed(&mut bench.docker(&["trust", "inspect", &gun]));

        let mut times: [Vec<Duration>; 7] = Default::default();
        for round in 0..args.rounds {
            let notary_tag = format!("notary-{round}");
            let trustctl_tag = format!("trustctl-{round}");
            times[0].push(timed(&mut bench.notary(
                notary_dir,
                &[
                    "addhash",
                    &gun,
                    &notary_tag,
                    "1234",
                    "--sha256",
                    &digest_for(&notary_tag),
                    "-p",
                ],
            )));
            let image = format!("{gun}:{trustctl_tag}@sha256:{}", digest_for(&trustctl_tag));
            times[1].push(timed(
                &mut bench.trustctl(trustctl_warm.path(), &["sign", &image, "--size", "1234"]),
            ));
            let cold_notary = tempfile::tempdir().unwrap();
            times[2].push(timed(
                &mut bench.notary(cold_notary.path(), &["list", &gun]),
            ));
            let cold_trustctl = tempfile::tempdir().unwrap();
            times[3].push(timed(
                &mut bench.trustctl(cold_trustctl.path(), &["inspect", &gun]),
            ));
            times[4].push(timed(&mut bench.notary(notary_dir, &["list", &gun])));
            times[5].push(timed(
                &mut bench.trustctl(trustctl_warm.path(), &["inspect", &gun]),
            ));
            times[6].push(timed(&mut bench.docker(&["trust", "inspect", &gun])));
        }
        let [publish_notary, publish_trustctl, cold_notary, cold_trustctl, warm_notary, warm_trustctl, docker] =
            times.map(median);
        let ratio = |other: Duration, ours: Duration| other.as_secs_f64() / ours.as_secs_f64();
        println!("\nN = {n} tags");
        println!(
            "  publish one tag   notary addhash -p {}   trustctl sign    {}   ratio {:5.2}x",
            ms(publish_notary),
            ms(publish_trustctl),
            ratio(publish_notary, publish_trustctl)
        );
        println!(
            "  read, cold cache  notary list       {}   trustctl inspect {}   ratio {:5.2}x",
            ms(cold_notary),
            ms(cold_trustctl),
            ratio(cold_notary, cold_trustctl)
        );
        println!(
            "  read, warm cache  notary list       {}   trustctl inspect {}   ratio {:5.2}x",
            ms(warm_notary),
            ms(warm_trustctl),
            ratio(warm_notary, warm_trustctl)
        );
        println!(
            "  read, warm cache  docker trust insp {}   trustctl inspect {}   ratio {:5.2}x",
            ms(docker),
            ms(warm_trustctl),
            ratio(docker, warm_trustctl)
        );
        summary.push(format!(
            "N={n}: publish {:.2}x, inspect cold {:.2}x, warm {:.2}x, vs docker {:.2}x",
            ratio(publish_notary, publish_trustctl),
            ratio(cold_notary, cold_trustctl),
            ratio(warm_notary, warm_trustctl),
            ratio(docker, warm_trustctl)
        ));
    }
    println!(
        "\nratios (notary or docker time / trustctl time): {}",
        summary.join("; ")
    );
}
