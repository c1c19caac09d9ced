//! `trustd-bench-piv [--seconds S] [--rounds R]`: signing throughput with a key on a PIV card
//! (the virtual YubiKey in pcscd's vpcd reader), over trustd's socket against the `yubikey`
//! crate signing with the same key on the same card directly, in the same run.
//!
//! A card does one operation at a time, so the modes take turns: each round signs directly
//! (its own connection, PIN verified once, then dropped), then over the socket with 1 and 4
//! clients. The last line is the socket/direct ratio at 4 clients.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use trustd_e2e::bench::{
    median_run, print_row, seconds_and_rounds, socket_round, Run, PAYLOAD_BYTES,
};
use trustd_e2e::piv::PivRig;
use trustd_e2e::tpm::secret_file;
use trustd_e2e::*;
use yubikey::piv::{AlgorithmId, SlotId};
use yubikey::YubiKey;

const KEY: &str = "bench";
const SERIAL: u32 = 24681357;
const PIN: &str = "13579246";

/// Opens the card, verifies the PIN once and signs until the deadline; drops the connection.
fn run_direct(seconds: f64) -> Run {
    let mut yubikey = YubiKey::open_by_serial(SERIAL.into()).expect("open the card");
    yubikey.verify_pin(PIN.as_bytes()).expect("PIN");
    let payload = vec![0x5a; PAYLOAD_BYTES];
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        let digest = Sha256::digest(&payload);
        yubikey::piv::sign_data(
            &mut yubikey,
            &digest,
            AlgorithmId::EccP256,
            SlotId::Authentication,
        )
        .expect("sign");
        latencies.push(t.elapsed());
    }
    Run {
        elapsed: start.elapsed(),
        latencies,
    }
}

fn main() {
    let (seconds, rounds) = seconds_and_rounds("trustd-bench-piv");
    let rig = PivRig::start(SERIAL);
    let pin_file = secret_file(rig.dir.path(), "pin", PIN);
    let trustd = Trustd::launch(&Options::with_backends(format!(
        "[[backend]]\ntype = \"piv\"\nname = \"yubikey\"\nserial = {SERIAL}\npin = {{ file = \"{}\" }}\n",
        pin_file.display()
    )));
    let provision = {
        use std::io::Write;
        let mut child = trustd
            .trustctl()
            .args(["token", "piv", "init", "--backend", "yubikey", "--stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{PIN}\n{PIN}").unwrap();
        child.wait().unwrap()
    };
    assert!(provision.success(), "provisioning the card failed");
    trustd.ok(&[
        "key",
        "generate",
        KEY,
        "--backend",
        "yubikey",
        "--slot",
        "9a",
        "--pin-policy",
        "once",
    ]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!(
        "trustd PIV sign benchmark: ECDSA P-256 on the virtual YubiKey (pcscd + vpcd), {PAYLOAD_BYTES}-byte payloads, {rounds} rounds of {seconds}s per mode (median round shown)"
    );
    let (mut direct, mut one, mut four) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        direct.push(run_direct(seconds));
        // The warm-up also lets trustd reconnect after the direct round reset the card.
        let (s1, s4) = runtime.block_on(socket_round(&trustd, KEY, 4, seconds));
        one.push(s1);
        four.push(s4);
    }
    let (direct, one, four) = (median_run(direct), median_run(one), median_run(four));
    print_row("direct yubikey crate, PIN once", &direct);
    print_row("trustd socket, 1 client", &one);
    print_row("trustd socket, 4 clients", &four);
    println!("reference (DESIGN): virtual YubiKey PIV P-256 ~150/s; real YubiKey 5 PIV 5-40/s");
    println!(
        "socket/direct ratio (1 client): {:.2}",
        one.per_second() / direct.per_second()
    );
    println!(
        "socket/direct ratio (4 clients): {:.2}",
        four.per_second() / direct.per_second()
    );
}
