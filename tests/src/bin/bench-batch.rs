//! `trustd-bench-batch [--images N] [--indexes M] [--tags-per-repo T]`: batch signing on a
//! loopback docker-registry (basic auth, TLS) and notary-server, with `--jobs 1` and
//! `--jobs 8`, in cosign and Notary formats. Each run signs fresh images (its own
//! namespace), so every run does the same work. Prints images per second and the registry
//! requests per image (counted in the registry's own log); the last line is the speed-up of
//! 8 jobs over 1. Notary repositories are initialized before the timed runs, as in a
//! pipeline that signs new tags of existing repositories.

use std::sync::Arc;
use std::time::{Duration, Instant};

use trustd_e2e::notary::{NotaryServer, TestCa};
use trustd_e2e::registry::{Access, DockerConfig, Registry};
use trustd_e2e::*;

const USER: &str = "bench";
const PASSWORD: &str = "bench password";

struct Args {
    images: usize,
    indexes: usize,
    tags_per_repo: usize,
}

fn parse_args() -> Args {
    let mut parsed = Args {
        images: 200,
        indexes: 20,
        tags_per_repo: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: usize = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage());
        match flag.as_str() {
            "--images" => parsed.images = value,
            "--indexes" => parsed.indexes = value,
            "--tags-per-repo" => parsed.tags_per_repo = value.max(1),
            _ => usage(),
        }
    }
    parsed
}

fn usage() -> ! {
    eprintln!("usage: trustd-bench-batch [--images N] [--indexes M] [--tags-per-repo T]");
    std::process::exit(2);
}

fn requests(registry: &Registry) -> usize {
    registry.log().matches("response completed").count()
}

struct Run {
    elapsed: Duration,
    single_requests: usize,
    index_requests: usize,
}

fn main() {
    let args = parse_args();
    let hsm = SoftHsm::new("bench-batch");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let ca = Arc::new(TestCa::new());
    let registry = Registry::start(
        ca.clone(),
        Access::Basic {
            user: USER,
            password: PASSWORD,
        },
    );
    let server = NotaryServer::start_with(ca.clone(), None);
    let docker = DockerConfig::with_logins(&[(&registry.host, USER, PASSWORD)]);
    trustd.ok(&["key", "generate", "bench"]);
    let work = tempfile::tempdir().unwrap();

    let runs = [("cosign", 1), ("cosign", 8), ("notary", 1), ("notary", 8)];
    eprintln!(
        "pushing {} images and {} two-platform indexes for each of {} runs...",
        args.images,
        args.indexes,
        runs.len()
    );
    let auth = Some((USER, PASSWORD));
    let mut lists = Vec::new();
    for (format, jobs) in runs {
        let ns = format!("{format}-j{jobs}");
        let mut singles = String::new();
        for i in 0..args.images {
            let repo = format!("{ns}/app-{}", i / args.tags_per_repo);
            let tag = format!("v{}", i % args.tags_per_repo);
            registry.push_image(&repo, &tag, &format!("{ns}-{i}"), auth);
            singles.push_str(&format!("{}/{repo}:{tag}\n", registry.host));
        }
        let mut indexes = String::new();
        for i in 0..args.indexes {
            let repo = format!("{ns}/multi-{i}");
            registry.push_index_as(
                &repo,
                "1.0",
                &[("linux", "amd64"), ("linux", "arm64")],
                auth,
            );
            indexes.push_str(&format!("{}/{repo}:1.0\n", registry.host));
        }
        let singles_file = work.path().join(format!("{ns}-singles.txt"));
        let indexes_file = work.path().join(format!("{ns}-indexes.txt"));
        std::fs::write(&singles_file, singles).unwrap();
        std::fs::write(&indexes_file, indexes).unwrap();
        lists.push((format, jobs, singles_file, indexes_file));
    }

    let trust_dir = tempfile::tempdir().unwrap();
    let sign = |list: &std::path::Path, format: &str, jobs: usize| {
        let out = trustd
            .trustctl()
            .args(["sign", "--file"])
            .arg(list)
            .args([
                "--format",
                format,
                "--jobs",
                &jobs.to_string(),
                "--key",
                "bench",
            ])
            .args(["--server", &server.url, "--tls-ca"])
            .arg(server.ca.ca_cert())
            .arg("--trust-dir")
            .arg(trust_dir.path())
            .arg("--failed")
            .arg(work.path().join("failed.txt"))
            .env("DOCKER_CONFIG", docker.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "trustctl sign {format} --jobs {jobs}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Release pipelines sign into repositories that exist: each Notary repository is
    // initialized beforehand (root and targets keys made once), outside the timed runs.
    for (format, _, singles, indexes) in &lists {
        if *format != "notary" {
            continue;
        }
        let mut guns: Vec<String> = [singles, indexes]
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|image| image.rsplit_once(':').unwrap().0.to_owned())
            .collect();
        guns.dedup();
        for gun in guns {
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
                "init {gun}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    let mut results = Vec::new();
    for (format, jobs, singles, indexes) in &lists {
        let start = Instant::now();
        let before = requests(&registry);
        sign(singles, format, *jobs);
        let after_singles = requests(&registry);
        sign(indexes, format, *jobs);
        let after = requests(&registry);
        results.push((
            *format,
            *jobs,
            Run {
                elapsed: start.elapsed(),
                single_requests: after_singles - before,
                index_requests: after - after_singles,
            },
        ));
    }

    let total = (args.images + args.indexes) as f64;
    println!(
        "Batch signing: {} single-arch images in repositories of {} tags + {} two-platform indexes, loopback registry (basic auth, TLS); Notary repositories initialized beforehand",
        args.images, args.tags_per_repo, args.indexes
    );
    for (format, jobs, run) in &results {
        println!(
            "  {format:<6} --jobs {jobs}: {:7.1} images/s  ({:6.2}s)  registry requests: {:4.2} per single-arch image, {:4.2} per index",
            total / run.elapsed.as_secs_f64(),
            run.elapsed.as_secs_f64(),
            run.single_requests as f64 / args.images.max(1) as f64,
            run.index_requests as f64 / args.indexes.max(1) as f64,
        );
    }
    let speedup = |format: &str| {
        let time = |j| {
            results
                .iter()
                .find(|(f, jobs, _)| *f == format && *jobs == j)
                .map(|(_, _, r)| r.elapsed.as_secs_f64())
                .unwrap()
        };
        time(1) / time(8)
    };
    println!(
        "speed-up of --jobs 8 over --jobs 1: cosign {:.2}x, notary {:.2}x",
        speedup("cosign"),
        speedup("notary")
    );
}
