//! `trustd-bench-metrics [--seconds S] [--rounds R]`: what Prometheus metrics cost the signing
//! path. Two trustd on two SoftHSM2 tokens, the same configuration but one with `[metrics]`;
//! 8 clients sign in alternating rounds: without metrics, with metrics and no scraper (the
//! recording alone), and with a scraper reading /metrics ten times a second (150 times
//! Prometheus's default 15 s interval). The median round of each is reported; the last line
//! is the with/without ratio with the scraper.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use trustd_e2e::bench::{
    median_run, print_row, run_socket, seconds_and_rounds, Call, PAYLOAD_BYTES,
};
use trustd_e2e::notary::free_port;
use trustd_e2e::*;
use trustd_proto::KeyAlgorithm;

const KEY: &str = "bench";

fn start(label: &str, metrics_port: Option<u16>) -> (SoftHsm, Trustd) {
    let hsm = SoftHsm::new(label);
    let mut options = Options::for_token(&hsm);
    options.sessions = 8;
    if let Some(port) = metrics_port {
        options.extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    }
    let trustd = Trustd::start(&hsm, &options);
    (hsm, trustd)
}

/// Scrapes while `active`, until `stop`, counting scrapes.
fn scraper(port: u16, active: Arc<AtomicBool>, stop: Arc<AtomicBool>, scrapes: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        if !active.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_, body) = trustd_e2e::http::get(&mut stream, "/metrics");
        assert!(body.contains("trustd_requests_total"), "{body}");
        scrapes.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let (seconds, rounds) = seconds_and_rounds("trustd-bench-metrics");
    let port = free_port();
    let (_plain_hsm, plain) = start("bench-plain", None);
    let (_metered_hsm, metered) = start("bench-metered", Some(port));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (plain_clients, metered_clients) = runtime.block_on(async {
        let mut sets = Vec::new();
        for trustd in [&plain, &metered] {
            trustd
                .client()
                .await
                .generate_key(generate_request(KEY, KeyAlgorithm::EcdsaP256))
                .await
                .expect("generate the bench key");
            let mut clients = Vec::new();
            for _ in 0..8 {
                clients.push(trustd.client().await);
            }
            sets.push(clients);
        }
        let metered = sets.pop().unwrap();
        (sets.pop().unwrap(), metered)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicU64::new(0));
    let scraping = {
        let (active, stop, scrapes) = (active.clone(), stop.clone(), scrapes.clone());
        std::thread::spawn(move || scraper(port, active, stop, scrapes))
    };

    println!(
        "metrics overhead: ECDSA P-256 on SoftHSM2, {PAYLOAD_BYTES}-byte payloads, 8 clients, {rounds} rounds of {seconds}s per mode (median round shown)"
    );
    runtime.block_on(run_socket(&plain_clients, 0.3, Call::Sign(KEY)));
    runtime.block_on(run_socket(&metered_clients, 0.3, Call::Sign(KEY)));
    let (mut without, mut recording, mut with) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        without.push(runtime.block_on(run_socket(&plain_clients, seconds, Call::Sign(KEY))));
        recording.push(runtime.block_on(run_socket(&metered_clients, seconds, Call::Sign(KEY))));
        active.store(true, Ordering::Relaxed);
        with.push(runtime.block_on(run_socket(&metered_clients, seconds, Call::Sign(KEY))));
        active.store(false, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    scraping.join().unwrap();
    let (without, recording, with) = (median_run(without), median_run(recording), median_run(with));
    print_row("trustd, no metrics", &without);
    print_row("trustd, metrics, no scraper", &recording);
    print_row("trustd, metrics, 10 scrapes/s", &with);
    println!("scrapes served: {}", scrapes.load(Ordering::Relaxed));
    println!(
        "recording/without ratio (8 clients): {:.3}",
        recording.per_second() / without.per_second()
    );
    println!(
        "with 10 scrapes/s/without metrics ratio (8 clients): {:.3}",
        with.per_second() / without.per_second()
    );
}
