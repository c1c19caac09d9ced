//! `trustd-bench sign [--seconds S] [--rounds R]`: signing throughput and latency over trustd's
//! socket against the same SoftHSM token signed directly with pooled cryptoki sessions, in the
//! same run. The machine is noisy, so the modes alternate over several rounds and the median
//! round is reported; the last line is the socket/direct ratio at 8 clients.

use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use sha2::{Digest, Sha256};
use trustd_e2e::bench::{median_run, print_row, run_socket, Call, Run, PAYLOAD_BYTES};
use trustd_e2e::*;
use trustd_proto::KeyAlgorithm;

const KEY: &str = "bench";

struct Args {
    seconds: f64,
    rounds: usize,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("sign") => {}
        _ => {
            eprintln!("usage: trustd-bench sign [--seconds S] [--rounds R]");
            std::process::exit(2);
        }
    }
    let mut parsed = Args {
        seconds: 2.0,
        rounds: 3,
    };
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => parsed.seconds = value.parse().expect("--seconds takes a number"),
            "--rounds" => parsed.rounds = value.parse().expect("--rounds takes a number"),
            other => panic!("unknown option {other}"),
        }
    }
    parsed
}

struct Direct {
    sessions: Vec<Session>,
    key: ObjectHandle,
}

fn open_direct(hsm: &SoftHsm, sessions: usize) -> Direct {
    std::env::set_var("SOFTHSM2_CONF", &hsm.conf);
    let ctx = Pkcs11::new(MODULE).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == hsm.label)
        .expect("bench token");
    let sessions: Vec<Session> = (0..sessions)
        .map(|_| ctx.open_ro_session(slot).unwrap())
        .collect();
    sessions[0]
        .login(UserType::User, Some(&USER_PIN.to_owned().into()))
        .unwrap();
    let key = sessions[0]
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(KEY.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    Direct { sessions, key }
}

/// Each thread owns one pooled, logged-in session and signs until the deadline.
fn run_direct(direct: &mut Direct, threads: usize, seconds: f64) -> Run {
    let payload = vec![0x5a; PAYLOAD_BYTES];
    let key = direct.key;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let latencies = std::thread::scope(|scope| {
        let handles: Vec<_> = direct.sessions[..threads]
            .iter_mut()
            .map(|session| {
                let payload = &payload;
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let digest = Sha256::digest(payload);
                        let sig = session.sign(&Mechanism::Ecdsa, key, &digest).unwrap();
                        assert_eq!(sig.len(), 64);
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    Run {
        elapsed: start.elapsed(),
        latencies,
    }
}

fn main() {
    let args = parse_args();
    let hsm = SoftHsm::new("bench");
    let mut options = Options::for_token(&hsm);
    options.sessions = 8;
    let trustd = Trustd::start(&hsm, &options);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (one, eight) = runtime.block_on(async {
        trustd
            .client()
            .await
            .generate_key(generate_request(KEY, KeyAlgorithm::EcdsaP256))
            .await
            .expect("generate the bench key");
        let one = vec![trustd.client().await];
        let mut eight = Vec::new();
        for _ in 0..8 {
            eight.push(trustd.client().await);
        }
        (one, eight)
    });
    let mut direct = open_direct(&hsm, 8);

    println!(
        "trustd sign benchmark: ECDSA P-256 on SoftHSM2, {PAYLOAD_BYTES}-byte payloads, {} rounds of {}s per mode (median round shown)",
        args.rounds, args.seconds
    );
    // Warm up both paths (sessions, handle caches, connections).
    run_direct(&mut direct, 8, 0.3);
    runtime.block_on(run_socket(&eight, 0.3, Call::Sign(KEY)));

    let (mut d1, mut s1, mut d8, mut s8) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        d1.push(run_direct(&mut direct, 1, args.seconds));
        s1.push(runtime.block_on(run_socket(&one, args.seconds, Call::Sign(KEY))));
        d8.push(run_direct(&mut direct, 8, args.seconds));
        s8.push(runtime.block_on(run_socket(&eight, args.seconds, Call::Sign(KEY))));
    }
    let (d1, s1, d8, s8) = (
        median_run(d1),
        median_run(s1),
        median_run(d8),
        median_run(s8),
    );
    print_row("direct cryptoki, 1 pooled session", &d1);
    print_row("trustd socket, 1 client", &s1);
    print_row("direct cryptoki, 8 pooled sessions", &d8);
    print_row("trustd socket, 8 clients", &s8);
    let transport = runtime.block_on(run_socket(&eight, args.seconds, Call::ListKeys));
    print_row("trustd socket, 8 clients, no device", &transport);
    println!(
        "reference (issue): notary-signer with keys in memory ~3,600/s sequential, ~9,000/s at 8 clients"
    );
    println!(
        "socket/direct ratio, same concurrency (8 clients vs 8 direct sessions): {:.2}",
        s8.per_second() / d8.per_second()
    );
    println!(
        "socket/direct ratio (1 client): {:.2}",
        s1.per_second() / d1.per_second()
    );
    // As the issue defines it: 8 clients over the socket against one pooled session signing
    // directly.
    println!(
        "socket/direct ratio (8 clients): {:.2}",
        s8.per_second() / d1.per_second()
    );
}
