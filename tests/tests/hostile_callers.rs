//! trustd against hostile local users: anyone who can reach the socket, with or without a
//! policy rule. Connection floods, half-sent messages, oversized names, audit flooding, a full
//! audit filesystem, lifecycle races and cancelled generates, an impostor socket. Each attack
//! is bounded in time and count, runs on trustd's own socket, and a legitimate caller is
//! served (and timed) during it.
//!
//! Runs attackers as other uids through setpriv, so it needs root (CI runs as root).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use trustd_e2e::*;

const NOBODY: &str = "65534";
/// A uid no policy rule names.
const STRANGER: &str = "4242";

/// Root does everything; nobody may sign with ci-* keys (and nothing else).
const POLICY: &str = r#"
[[policy.rule]]
description = "test administrator"
users = ["root"]
keys = ["*"]
operations = ["sign", "generate", "import", "delete", "list", "unlock", "provision"]

[[policy.rule]]
description = "ci"
users = ["nobody"]
keys = ["ci-*"]
operations = ["sign"]
"#;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests run attackers as other uids through setpriv, which needs root (CI runs as root)"
    );
}

fn start(label: &str, limits: &str) -> (SoftHsm, Trustd) {
    require_root();
    let hsm = SoftHsm::new(label);
    let mut options = Options::for_token(&hsm);
    options.socket_mode = "0666".into();
    options.policy = POLICY.into();
    options.limits = limits.into();
    let trustd = Trustd::start(&hsm, &options);
    (hsm, trustd)
}

fn as_uid(uid: &str, program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid", uid, "--regid", uid, "--clear-groups"])
        .arg(bin(program));
    command
}

fn attack(uid: &str, args: &[&str]) -> Child {
    as_uid(uid, "trustd-e2e-attack")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the attacker")
}

fn report(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "attacker: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("attacker said: {}", String::from_utf8_lossy(&out.stdout)))
}

fn proc_status(pid: i32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn descriptors(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Signs a small file as root while an attack runs; returns how long it took.
fn timed_sign(trustd: &Trustd, data: &Path) -> Duration {
    let started = Instant::now();
    trustd.ok(&["sign-blob", "--key", "release", data.to_str().unwrap()]);
    started.elapsed()
}

/// The median of a few signatures with nothing else going on, to read the figures printed
/// during an attack against (printed only: the machine is too noisy to assert times).
fn baseline_sign(trustd: &Trustd, data: &Path) -> Duration {
    let mut times: Vec<_> = (0..5).map(|_| timed_sign(trustd, data)).collect();
    times.sort();
    times[2]
}

fn data_file(trustd: &Trustd) -> std::path::PathBuf {
    let path = trustd.work.path().join("data");
    std::fs::write(&path, b"signed during an attack").unwrap();
    path
}

fn status_json(trustd: &Trustd) -> serde_json::Value {
    serde_json::from_str(&trustd.ok(&["status", "--json"])).unwrap()
}

#[test]
fn a_connection_flood_from_one_uid_is_closed_and_others_are_served() {
    let (_hsm, trustd) = start(
        "conn-flood",
        "max_connections = 100\nmax_connections_per_uid = 20\nhandshake_timeout_secs = 2",
    );
    trustd.ok(&["key", "generate", "release"]);
    let data = data_file(&trustd);
    let baseline = baseline_sign(&trustd, &data);
    let baseline_fds = descriptors(trustd.pid());
    let socket = trustd.socket.to_str().unwrap().to_owned();
    let attacker = attack(NOBODY, &["idle", &socket, "600", "6"]);

    let mut worst = Duration::ZERO;
    let mut max_fds = 0;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        max_fds = max_fds.max(descriptors(trustd.pid()));
        worst = worst.max(timed_sign(&trustd, &data));
    }
    let seen = report(attacker);
    eprintln!("idle flood: {seen}; trustd descriptors {baseline_fds} -> at most {max_fds}; trustctl sign-blob {baseline:?} before, at worst {worst:?} during it");
    assert_eq!(
        seen["closed_by_server"], seen["connected"],
        "every idle connection is closed: {seen}"
    );
    assert!(
        seen["last_close_ms"].as_u64().unwrap() < 5000,
        "silent connections close after the handshake timeout: {seen}"
    );
    assert!(
        max_fds <= baseline_fds + 20 + 10,
        "trustd held {max_fds} descriptors (baseline {baseline_fds}, 20 allowed for the uid)"
    );
    let refusals = trustd.log_text().matches("refusing a connection").count();
    assert!(
        (1..=2).contains(&refusals),
        "the limit is logged, at a bounded rate: {refusals} lines"
    );
    let status = status_json(&trustd);
    assert!(
        status["protection"]["connections_refused"]
            .as_u64()
            .unwrap()
            >= 500,
        "{status}"
    );
}

#[test]
fn half_sent_messages_are_bounded_per_uid_and_memory_is_given_back() {
    let (_hsm, trustd) = start("mem-flood", "");
    trustd.ok(&["key", "generate", "release"]);
    let data = data_file(&trustd);
    let baseline = baseline_sign(&trustd, &data);
    let pid = trustd.pid();
    let rss_before = proc_status(pid, "VmRSS");
    let socket = trustd.socket.to_str().unwrap().to_owned();
    let sign = "/trustd.v1.Signer/Sign";
    // A uid with no rule declares 7 MB messages: refused from the frame header.
    let stranger = attack(
        STRANGER,
        &[
            "partial", &socket, sign, "10", "32", "7000000", "7000000", "4",
        ],
    );
    // A uid with a rule sends nearly whole 1 MB messages and never finishes them.
    let nobody = attack(
        NOBODY,
        &[
            "partial", &socket, sign, "10", "32", "1000000", "999000", "4",
        ],
    );
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        worst = worst.max(timed_sign(&trustd, &data));
    }
    let (stranger, nobody) = (report(stranger), report(nobody));
    let peak_mib = proc_status(pid, "VmHWM") / 1024;
    eprintln!("half-sent messages: stranger {stranger}, nobody {nobody}; trustd peak RSS {peak_mib} MiB; trustctl sign-blob {baseline:?} before, at worst {worst:?} during it");
    // Streams that got data out were refused at once; HTTP/2 flow control held the others
    // on the attacker's side (nothing of theirs is in trustd).
    let count = |seen: &serde_json::Value, what: &str| seen["statuses"][what].as_u64().unwrap_or(0);
    let total = |seen: &serde_json::Value| -> u64 {
        seen["statuses"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert!(
        count(&stranger, "grpc-status 7") >= 10 && count(&stranger, "held: sent") == 0,
        "no rule, large message: PermissionDenied from the frame header: {stranger}"
    );
    assert_eq!(total(&stranger), 320);
    assert!(
        count(&nobody, "grpc-status 8") >= 100,
        "beyond 16 MiB a uid's unfinished messages are refused (ResourceExhausted): {nobody}"
    );
    assert!(
        count(&nobody, "held: sent") <= 16,
        "at most 16 MiB of one uid's unfinished 1 MB messages are held: {nobody}"
    );
    assert!(peak_mib < 150, "trustd grew to {peak_mib} MiB");

    // A method that carries nothing refuses a large message outright.
    let listing = report(attack(
        NOBODY,
        &[
            "partial",
            &socket,
            "/trustd.v1.Signer/ListKeys",
            "1",
            "1",
            "1000000",
            "100000",
            "2",
        ],
    ));
    assert_eq!(listing["statuses"]["grpc-status 8"], 1, "{listing}");

    // Memory goes back once the attack is over.
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = proc_status(pid, "VmRSS");
    eprintln!(
        "trustd RSS {} MiB before, {} MiB after",
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        rss_after < rss_before + 40 * 1024,
        "RSS stayed at {} MiB after the attack (was {} MiB)",
        rss_after / 1024,
        rss_before / 1024
    );
    let status = status_json(&trustd);
    assert_eq!(status["protection"]["buffered_bytes"], 0, "{status}");
    assert_eq!(
        status["protection"]["requests_refused"].as_u64().unwrap(),
        count(&stranger, "grpc-status 7") + count(&nobody, "grpc-status 8") + 1,
        "every refusal before a handler is counted: {status}"
    );
}

#[test]
fn the_audit_trail_stays_small_under_a_flood_of_denials() {
    let (_hsm, trustd) = start("audit-flood", "");
    trustd.ok(&["key", "generate", "release"]);
    trustd.ok(&["key", "generate", "ci-build"]);
    let socket = trustd.socket.to_str().unwrap().to_owned();
    let flood = |uid: &str, key: &str, count: &str| -> serde_json::Value {
        let out = as_uid(uid, "trustd-e2e-client")
            .args([&socket, key, count])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{} {}", String::from_utf8_lossy(&out.stdout), stderr(&out)))
    };
    // 200 signatures with a 100 KB key name, denied: none of it is echoed or written in full.
    let seen = flood(NOBODY, "@k:100000", "200");
    assert_eq!(seen["codes"]["PermissionDenied"], 200, "{seen}");
    assert!(seen["longest_message"].as_u64().unwrap() < 400, "{seen}");
    // A uid with no rule and a 5 MB name: refused before it is read.
    let seen = flood(STRANGER, "@k:5000000", "20");
    assert_eq!(seen["codes"]["PermissionDenied"], 20, "{seen}");
    assert!(seen["longest_message"].as_u64().unwrap() < 400, "{seen}");
    // Then nobody signs what it may: that record says how many denials were left out.
    let out = as_uid(NOBODY, "trustd-e2e-client")
        .args([&socket, "ci-build"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "OK",
        "{}",
        stderr(&out)
    );

    let bytes = std::fs::metadata(&trustd.audit).unwrap().len();
    let records = trustd.audit_records();
    let of = |uid: u64| records.iter().filter(move |r| r["caller_uid"] == uid);
    let denied = of(65534).filter(|r| r["result"] == "denied").count();
    let allowed: Vec<_> = of(65534).filter(|r| r["result"] == "allowed").collect();
    eprintln!(
        "audit flood: {bytes} audit bytes in {} records",
        records.len()
    );
    assert_eq!(
        denied,
        audit_denials_per_window(),
        "denials past the rate are not written"
    );
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["denials_not_recorded"], 200 - denied as u64);
    assert!(of(4242).count() <= audit_denials_per_window());
    assert!(bytes < 64 * 1024, "the flood wrote {bytes} audit bytes");
    assert!(records
        .iter()
        .all(|r| serde_json::to_string(r).unwrap().len() < 2048));
}

fn audit_denials_per_window() -> usize {
    20
}

/// Mounts a tmpfs of `kib` KiB at `dir`; unmounted when dropped.
struct SmallFilesystem(std::path::PathBuf);

impl SmallFilesystem {
    fn mount(dir: &Path, kib: u32) -> SmallFilesystem {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount a small tmpfs: {}",
            stderr(&out)
        );
        SmallFilesystem(dir.to_owned())
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

#[test]
fn a_full_audit_filesystem_stops_signing_until_space_is_freed_without_a_restart() {
    require_root();
    let hsm = SoftHsm::new("audit-full");
    let small = tempfile::tempdir().unwrap();
    let _fs = SmallFilesystem::mount(small.path(), 64);
    let mut options = Options::for_token(&hsm);
    options.audit_path = Some(small.path().join("audit.jsonl"));
    let trustd = Trustd::start(&hsm, &options);
    trustd.ok(&["key", "generate", "release"]);
    let data = data_file(&trustd);
    // Fill the filesystem, leaving no room for a record.
    let filler = small.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=64"])
        .arg(format!("of={}", filler.display()))
        .output();
    let sign = || trustd.run(&["sign-blob", "--key", "release", data.to_str().unwrap()]);
    // The record of the first signature cannot be written: from then on trustd refuses.
    let mut refused = None;
    for _ in 0..20 {
        let out = sign();
        if !out.status.success() {
            refused = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = refused.expect("signing is refused once the audit log cannot be written");
    assert!(stderr(&refused).contains("audit"), "{}", stderr(&refused));
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    loop {
        if sign().status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "signing did not resume after space was freed: {}",
            trustd.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "signing resumed {:?} after space was freed",
        started.elapsed()
    );
    assert!(trustd.log_text().contains("audit log writable again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_and_cancelled_lifecycle_calls_leave_token_and_inventory_equal() {
    // 50 clients at once from one uid: room for all of them.
    let (hsm, trustd) = start("races", "max_connections_per_uid = 64");
    let mut generates = 0;
    let mut ok = (0, 0);
    for _round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..50 {
            let mut client = trustd.client().await;
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    let request = generate_request("race", trustd_proto::KeyAlgorithm::EcdsaP256);
                    (true, client.generate_key(request).await.is_ok())
                } else {
                    let request = trustd_proto::DeleteKeyRequest {
                        key: trustctl::client::key_selector("race"),
                    };
                    (false, client.delete_key(request).await.is_ok())
                }
            }));
        }
        for task in tasks {
            let (generate, succeeded) = task.await.unwrap();
            generates += generate as usize;
            if succeeded {
                if generate {
                    ok.0 += 1
                } else {
                    ok.1 += 1
                }
            }
        }
    }
    // Generates whose callers give up after 150 ms (RSA-3072 takes longer on SoftHSM).
    for i in 0..4 {
        let mut client = trustd.client().await;
        let mut request = tonic::Request::new(generate_request(
            &format!("cancelled-{i}"),
            trustd_proto::KeyAlgorithm::Rsa3072,
        ));
        request.set_timeout(Duration::from_millis(150));
        let _ = client.generate_key(request).await;
        generates += 1;
    }
    // Wait for trustd to finish what the callers left.
    let started = Instant::now();
    while status_json(&trustd)["requests_in_flight"] != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "work never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "list", "--json"])).unwrap();
    let mut inventory: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    inventory.sort();
    let objects = hsm.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    let mut on_token: Vec<String> = String::from_utf8_lossy(&objects.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("label:"))
        .map(|l| l.trim().to_owned())
        .collect();
    on_token.sort();
    eprintln!(
        "races: {} generates ({} ok), {} deletes ok; token {on_token:?}, inventory {inventory:?}",
        generates, ok.0, ok.1
    );
    assert_eq!(
        on_token, inventory,
        "every key on the token is in the inventory and back"
    );
    let race_left = inventory.iter().filter(|n| *n == "race").count();
    assert_eq!(
        ok.1 + race_left,
        ok.0,
        "a key is deleted once per time it was generated"
    );
    for i in 0..4 {
        assert!(
            inventory.contains(&format!("cancelled-{i}")),
            "{inventory:?}"
        );
    }
    let records = trustd.audit_records();
    assert_eq!(
        records.iter().filter(|r| r["event"] == "generate").count(),
        generates,
        "every generate is audited, cancelled or not"
    );
}

#[test]
fn a_caller_who_may_not_list_cannot_tell_which_keys_exist() {
    let (_hsm, trustd) = start("existence", "");
    trustd.ok(&["key", "generate", "prod"]);
    let listed: serde_json::Value =
        serde_json::from_str(&trustd.ok(&["key", "list", "--json"])).unwrap();
    let prod_id = listed[0]["key_id"].as_str().unwrap().to_owned();
    let socket = trustd.socket.to_str().unwrap().to_owned();
    let ask = |key: &str| -> String {
        let out: Output = as_uid(NOBODY, "trustd-e2e-client")
            .args([&socket, key])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let existing = ask("prod");
    let missing = ask("prof");
    assert!(existing.starts_with("PermissionDenied"), "{existing}");
    assert_eq!(existing.replace("prod", "prof"), missing);
    let by_id = ask(&format!("#{prod_id}"));
    assert!(by_id.starts_with("PermissionDenied"), "{by_id}");
    assert!(
        !by_id.contains("\"prod\""),
        "a key ID lookup reveals the name: {by_id}"
    );
}

#[test]
fn trustctl_sends_nothing_to_a_socket_another_user_serves() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let taken = dir.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    nix::unistd::chown(&taken, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let socket = taken.join("trustd.sock");
    let impostor = attack(NOBODY, &["impostor", socket.to_str().unwrap(), "3"]);
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "impostor never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let key = dir.path().join("key.pem");
    let pem = {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        p256::ecdsa::SigningKey::random(&mut rand::thread_rng())
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
    };
    std::fs::write(&key, pem.as_bytes()).unwrap();
    let out = Command::new(bin("trustctl"))
        .arg("--socket")
        .arg(&socket)
        .args(["key", "load", "--name", "stolen"])
        .arg(&key)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("runs as uid 65534"),
        "{}",
        stderr(&out)
    );
    let seen = report(impostor);
    assert_eq!(seen["bytes_received"], 0, "{seen}");
}
