//! `trustd-bench-batch [--images N] [--indexes M] [--tags-per-repo T] [--rounds R]`: batch
//! signing on a loopback docker-registry (basic auth, TLS) and notary-server. One list of N
//! single-arch images and M two-platform indexes is signed with `--jobs 1` and `--jobs 8`,
//! in cosign and Notary formats, R rounds each (jobs 1 and 8 alternating, so a noisy moment
//! of the machine hits both alike). Every run signs fresh images (its own namespace), so
//! each does the same work. Prints images per second, the share of the CPUs in use, and the
//! registry requests per image (every line of the registry's access log, authentication
//! checks included, by repository); the last
//! line is the speed-up of 8 jobs over 1, from the median round of each. Notary
//! repositories are initialized before the timed runs, as in a pipeline that signs new tags
//! of existing repositories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trustd_e2e::bench::CpuTimes;
use trustd_e2e::notary::{NotaryServer, TestCa};
use trustd_e2e::registry::{Access, DockerConfig, Registry};
use trustd_e2e::*;

const USER: &str = "bench";
const PASSWORD: &str = "bench password";
const FORMATS: [&str; 2] = ["cosign", "notary"];
const JOBS: [usize; 2] = [1, 8];

struct Args {
    images: usize,
    indexes: usize,
    tags_per_repo: usize,
    rounds: usize,
}

fn parse_args() -> Args {
    let mut parsed = Args {
        images: 200,
        indexes: 20,
        tags_per_repo: 5,
        rounds: 3,
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
            "--rounds" => parsed.rounds = value.max(1),
            _ => usage(),
        }
    }
    parsed
}

fn usage() -> ! {
    eprintln!(
        "usage: trustd-bench-batch [--images N] [--indexes M] [--tags-per-repo T] [--rounds R]"
    );
    std::process::exit(2);
}

/// One signing run's list: its namespace in the registry and the file naming its images.
struct Workload {
    format: &'static str,
    jobs: usize,
    namespace: String,
    list: PathBuf,
}

/// The repositories of a namespace that hold indexes are named `multi-N`.
const INDEX_REPOSITORY: &str = "/multi-";

/// Pushes the run's images and writes its list: the single-arch images first, then the
/// indexes, as one release list would name them.
fn prepare(registry: &Registry, args: &Args, workload: &Workload) {
    let auth = Some((USER, PASSWORD));
    let ns = &workload.namespace;
    let mut list = String::new();
    for i in 0..args.images {
        let repo = format!("{ns}/app-{}", i / args.tags_per_repo);
        let tag = format!("v{}", i % args.tags_per_repo);
        registry.push_image(&repo, &tag, &format!("{ns}-{i}"), auth);
        list.push_str(&format!("{}/{repo}:{tag}\n", registry.host));
    }
    for i in 0..args.indexes {
        let repo = format!("{ns}{INDEX_REPOSITORY}{i}");
        let platforms = [("linux", "amd64"), ("linux", "arm64")];
        registry.push_index_as(&repo, "1.0", &platforms, auth);
        list.push_str(&format!("{}/{repo}:1.0\n", registry.host));
    }
    std::fs::write(&workload.list, list).unwrap();
}

/// Requests the registry answered since its log was `skip` bytes long, from its access log
/// (one line per request, authentication checks included): those for the namespace's
/// single-arch image repositories, for its index repositories, and the authentication
/// checks (`/v2/`), which name no repository.
fn requests(registry: &Registry, skip: usize, namespace: &str) -> Requests {
    let log = registry.log();
    let mut counted = Requests::default();
    for line in log[skip..].lines() {
        // 127.0.0.1 - - [22/Nov/2026:13:32:50 +0000] "GET /v2/ HTTP/2.0" 401 87 "" "trustctl/0.1.0"
        let Some((_, request)) = line.split_once("] \"") else {
            continue;
        };
        let Some(uri) = request.split_whitespace().nth(1) else {
            continue;
        };
        if uri == "/v2/" {
            counted.authentication += 1;
        } else if let Some(path) = uri.strip_prefix(&format!("/v2/{namespace}/")) {
            if path.starts_with(INDEX_REPOSITORY.trim_start_matches('/')) {
                counted.indexes += 1;
            } else {
                counted.singles += 1;
            }
        }
    }
    counted
}

#[derive(Default)]
struct Requests {
    singles: usize,
    indexes: usize,
    authentication: usize,
}

impl Requests {
    /// Per single-arch image and per index, each repository charged an equal share of the
    /// authentication checks (trustctl makes one per repository and operation).
    fn per_image(&self, args: &Args) -> (f64, f64) {
        let single_repositories = args.images.div_ceil(args.tags_per_repo);
        let repositories = (single_repositories + args.indexes).max(1);
        let per_repository = self.authentication as f64 / repositories as f64;
        let singles = self.singles as f64 + per_repository * single_repositories as f64;
        let indexes = self.indexes as f64 + per_repository * args.indexes as f64;
        (
            singles / args.images.max(1) as f64,
            indexes / args.indexes.max(1) as f64,
        )
    }
}

struct Run {
    elapsed: Duration,
    cpu_busy: f64,
    requests: Requests,
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.elapsed);
    runs.swap_remove(runs.len() / 2)
}

/// What every `trustctl` of the benchmark is pointed at.
struct Setup {
    trustd: Trustd,
    registry: Registry,
    server: NotaryServer,
    docker: DockerConfig,
    trust_dir: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Setup {
    fn trustctl(&self, args: &[&str]) -> std::process::Output {
        self.trustd
            .trustctl()
            .args(args)
            .args(["--server", &self.server.url, "--tls-ca"])
            .arg(self.server.ca.ca_cert())
            .arg("--trust-dir")
            .arg(self.trust_dir.path())
            .env("DOCKER_CONFIG", self.docker.path())
            .output()
            .unwrap()
    }

    /// Release pipelines sign into repositories that exist: each Notary repository is
    /// initialized beforehand (root and targets keys made once), outside the timed runs.
    fn init_repositories(&self, list: &Path) {
        let text = std::fs::read_to_string(list).unwrap();
        let mut guns: Vec<&str> = text
            .lines()
            .map(|image| image.rsplit_once(':').unwrap().0)
            .collect();
        guns.dedup();
        for gun in guns {
            let out = self.trustctl(&["init", gun]);
            assert!(out.status.success(), "init {gun}: {}", stderr(&out));
        }
    }

    fn sign(&self, workload: &Workload) -> Run {
        let list = workload.list.to_str().unwrap();
        let failed = self.work.path().join("failed.txt");
        let jobs = workload.jobs.to_string();
        let log_before = self.registry.log().len();
        let cpu = CpuTimes::now();
        let start = Instant::now();
        let out = self.trustctl(&[
            "sign",
            "--file",
            list,
            "--format",
            workload.format,
            "--jobs",
            &jobs,
            "--key",
            "bench",
            "--failed",
            failed.to_str().unwrap(),
        ]);
        let elapsed = start.elapsed();
        let cpu_busy = cpu.busy_percent_since();
        assert!(
            out.status.success(),
            "trustctl sign {} --jobs {jobs}: {}",
            workload.format,
            stderr(&out)
        );
        Run {
            elapsed,
            cpu_busy,
            requests: requests(&self.registry, log_before, &workload.namespace),
        }
    }
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
    let setup = Setup {
        trustd,
        registry,
        server,
        docker,
        trust_dir: tempfile::tempdir().unwrap(),
        work: tempfile::tempdir().unwrap(),
    };

    let mut workloads = Vec::new();
    for round in 0..args.rounds {
        for format in FORMATS {
            for jobs in JOBS {
                let namespace = format!("{format}-j{jobs}-r{round}");
                let list = setup.work.path().join(format!("{namespace}.txt"));
                workloads.push(Workload {
                    format,
                    jobs,
                    namespace,
                    list,
                });
            }
        }
    }
    eprintln!(
        "pushing {} images and {} two-platform indexes for each of {} runs...",
        args.images,
        args.indexes,
        workloads.len()
    );
    for workload in &workloads {
        prepare(&setup.registry, &args, workload);
        if workload.format == "notary" {
            setup.init_repositories(&workload.list);
        }
    }

    let mut runs: BTreeMap<(&str, usize), Vec<Run>> = BTreeMap::new();
    for workload in &workloads {
        let run = setup.sign(workload);
        eprintln!(
            "  {} --jobs {}: {:.2}s",
            workload.format,
            workload.jobs,
            run.elapsed.as_secs_f64()
        );
        runs.entry((workload.format, workload.jobs))
            .or_default()
            .push(run);
    }

    let total = (args.images + args.indexes) as f64;
    println!(
        "Batch signing: one list of {} single-arch images (repositories of {} tags) and {} two-platform indexes, loopback registry (basic auth, TLS); Notary repositories initialized beforehand; median of {} rounds",
        args.images, args.tags_per_repo, args.indexes, args.rounds
    );
    let mut medians = BTreeMap::new();
    for ((format, jobs), of_kind) in runs {
        let run = median(of_kind);
        let (per_single, per_index) = run.requests.per_image(&args);
        println!(
                "  {format:<6} --jobs {jobs}: {:7.1} images/s  ({:5.2}s, CPUs {:3.0}% busy)  registry requests: {:4.2} per single-arch image, {:5.2} per index",
                total / run.elapsed.as_secs_f64(),
                run.elapsed.as_secs_f64(),
                run.cpu_busy,
                per_single,
                per_index,
            );
        medians.insert((format, jobs), run.elapsed.as_secs_f64());
    }
    let speedup = |format| medians[&(format, 1)] / medians[&(format, 8)];
    println!(
        "speed-up of --jobs 8 over --jobs 1: cosign {:.2}x, notary {:.2}x",
        speedup("cosign"),
        speedup("notary")
    );
}
