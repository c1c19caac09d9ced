//! trustd's Prometheus endpoint, scraped over HTTP and read with the Prometheus project's own
//! Python parser (Debian's python3-prometheus-client), not with trustd's code: the counts must
//! match what the test did, and no label may carry a key name or a payload hash.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use trustd_e2e::http::get;
use trustd_e2e::notary::free_port;
use trustd_e2e::*;

/// One sample: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// What the scrape says, through prometheus_client's text parser.
fn parse(exposition: &str) -> Vec<Sample> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let out = debian_python(script, &[], exposition.as_bytes());
    assert!(
        out.status.success(),
        "the parser refused the exposition ({}):\n{exposition}",
        stderr(&out)
    );
    let samples: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    samples
        .into_iter()
        .map(|s| Sample {
            name: s["name"].as_str().unwrap().to_owned(),
            labels: s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect(),
            value: s["value"].as_f64().unwrap(),
        })
        .collect()
}

fn scrape(port: u16) -> Vec<Sample> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (status, body) = get(&mut stream, "/metrics");
    assert!(status.contains("200"), "{status}");
    parse(&body)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn metrics_options(hsm: &SoftHsm, listen: &str) -> Options {
    let mut options = Options::for_token(hsm);
    options.socket_mode = "0666".into();
    options.extra = format!("[metrics]\nlisten = \"{listen}\"\n");
    options
}

#[test]
fn the_counts_match_what_callers_did_and_labels_carry_no_key_or_payload() {
    let hsm = SoftHsm::new("metrics");
    let port = free_port();
    let trustd = Trustd::start(&hsm, &metrics_options(&hsm, &format!("127.0.0.1:{port}")));

    trustd.ok(&["key", "generate", "release-key-7f3a"]);
    let blob = trustd.cwd().join("blob");
    std::fs::write(&blob, b"artifact").unwrap();
    for _ in 0..3 {
        trustd.ok(&[
            "sign-blob",
            "--key",
            "release-key-7f3a",
            blob.to_str().unwrap(),
        ]);
    }
    // Failed: no such key (NotFound), and never reaches a backend.
    let out = trustd.run(&["sign-blob", "--key", "missing", blob.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    // Denied: a uid the policy does not name.
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin("trustctl"))
        .arg("--socket")
        .arg(&trustd.socket)
        .args(["sign-blob", "--key", "release-key-7f3a"])
        .arg(&blob)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));

    let samples = scrape(port);
    let requests = |rpc: &str, backend: &str, result: &str, code: &str| {
        value(
            &samples,
            "trustd_requests_total",
            &[
                ("api", "trustd"),
                ("rpc", rpc),
                ("backend", backend),
                ("result", result),
                ("code", code),
            ],
        )
    };
    let seen: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "trustd_requests_total")
        .collect();
    assert_eq!(
        requests("GenerateKey", "hsm", "allowed", "OK"),
        Some(1.0),
        "{seen:#?}"
    );
    assert_eq!(
        requests("Sign", "hsm", "allowed", "OK"),
        Some(3.0),
        "{seen:#?}"
    );
    // trustctl looks the key up before it signs: the unknown key and the stranger stop there.
    assert_eq!(
        requests("GetPublicKey", "hsm", "allowed", "OK"),
        Some(3.0),
        "{seen:#?}"
    );
    assert_eq!(
        requests("GetPublicKey", "", "failed", "NotFound"),
        Some(1.0),
        "{seen:#?}"
    );
    assert_eq!(
        requests("GetPublicKey", "", "denied", "PermissionDenied"),
        Some(1.0),
        "{seen:#?}"
    );
    assert_eq!(
        seen.iter().filter(|s| s.labels["rpc"] == "Sign").count(),
        1,
        "{seen:#?}"
    );
    // Device time: one observation per signature the token made.
    assert_eq!(
        value(
            &samples,
            "trustd_sign_duration_seconds_count",
            &[("backend", "hsm")]
        ),
        Some(3.0)
    );
    let slowest_bucket = value(
        &samples,
        "trustd_sign_duration_seconds_bucket",
        &[("backend", "hsm"), ("le", "+Inf")],
    );
    assert_eq!(slowest_bucket, Some(3.0));
    assert_eq!(
        value(&samples, "trustd_backend_up", &[("backend", "hsm")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "trustd_backend_state",
            &[("backend", "hsm"), ("state", "ready")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "trustd_backend_state",
            &[("backend", "hsm"), ("state", "locked")]
        ),
        Some(0.0)
    );
    assert_eq!(value(&samples, "trustd_audit_healthy", &[]), Some(1.0));
    assert_eq!(value(&samples, "trustd_keys", &[]), Some(1.0));
    // Nothing was refused before a handler (the stranger was denied by the policy, above).
    assert_eq!(
        value(&samples, "trustd_requests_refused_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "trustd_connections_refused_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "trustd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(value(&samples, "process_resident_memory_bytes", &[]).unwrap_or(0.0) > 1e6);
    assert!(value(&samples, "process_open_fds", &[]).unwrap_or(0.0) > 3.0);

    // No label value names the key, its ID, the caller or the payload.
    let records = trustd.audit_records();
    let signed = records
        .iter()
        .find(|r| r["event"] == "sign" && r["result"] == "allowed")
        .unwrap();
    let secrets = [
        "release-key-7f3a".to_owned(),
        signed["key_id"].as_str().unwrap().to_owned(),
        signed["payload_sha256"].as_str().unwrap().to_owned(),
        "65534".to_owned(),
    ];
    for sample in &samples {
        for value in sample.labels.values() {
            for secret in &secrets {
                assert!(
                    !value.contains(secret.as_str()),
                    "{sample:?} carries {secret}"
                );
            }
        }
    }
}

#[test]
fn the_listener_is_bounded_and_an_address_in_use_stops_startup() {
    let hsm = SoftHsm::new("metrics-listener");
    // Someone already listens on the address: trustd says so and does not start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut blocked = Trustd::configure(
        &hsm,
        &metrics_options(&hsm, &format!("127.0.0.1:{taken_port}")),
    );
    let out = Command::new(bin("trustd"))
        .arg("--config")
        .arg(&blocked.config)
        .env("SOFTHSM2_CONF", &hsm.conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains(&format!("127.0.0.1:{taken_port}"))
            && message.contains("in use")
            && message.contains("metrics.listen"),
        "{message}"
    );
    assert!(
        !blocked.socket.exists(),
        "trustd must not serve half-started"
    );
    drop(taken);

    // A Unix socket listener, mode 0660.
    let socket = blocked.work.path().join("metrics.sock");
    blocked.write_config(
        &metrics_options(&hsm, socket.to_str().unwrap()),
        &blocked.pin_file(),
    );
    blocked.spawn();
    blocked.wait_ready();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);

    // Scrapers that connect and say nothing, up to the bound and beyond, hold nothing: a
    // scrape and a signature still get through.
    let idle: Vec<_> = (0..20)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).unwrap())
        .collect();
    blocked.ok(&["key", "generate", "k"]);
    std::thread::sleep(Duration::from_secs(6));
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (status, body) = get(&mut stream, "/metrics");
    assert!(status.contains("200"), "{status}");
    let samples = parse(&body);
    assert_eq!(
        value(
            &samples,
            "trustd_requests_total",
            &[("rpc", "GenerateKey"), ("result", "allowed")]
        ),
        Some(1.0)
    );
    // The idle ones were closed after the request-head timeout.
    for mut connection in idle {
        connection
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            connection.read(&mut buf).unwrap_or(0),
            0,
            "an idle scraper was kept open"
        );
    }
    // Only /metrics is served.
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let (status, _) = get(&mut stream, "/keys");
    assert!(status.contains("404"), "{status}");
    assert!(blocked.stop().success());
    assert!(!socket.exists(), "the metrics socket is removed at stop");
}
