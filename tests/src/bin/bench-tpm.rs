//! `trustd-bench-tpm [--seconds S] [--rounds R]`: signing throughput with a key in a TPM
//! (swtpm), over trustd's socket against the same key on the same swtpm driven directly
//! through tss-esapi (key loaded once, password session), in the same run.
//!
//! swtpm serves one connection at a time, so the modes take turns: each round signs directly
//! (then closes the TPM connection), then starts trustd and signs over its socket. The key is
//! trustd's own: the direct side loads the wrapped blob from trustd's inventory under the same
//! storage primary. The last line is the socket/direct ratio.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use trustd_e2e::bench::{
    median_run, print_row, seconds_and_rounds, socket_round, Run, PAYLOAD_BYTES,
};
use trustd_e2e::tpm::Swtpm;
use trustd_e2e::*;
use trustd_proto::KeyAlgorithm;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::{tss::TPM2_RH_NULL, StructureTag};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Digest, EccPoint, HashScheme, HashcheckTicket, Private, Public, PublicBuilder,
    PublicEccParametersBuilder, SignatureScheme, SymmetricDefinitionObject,
};
use tss_esapi::traits::UnMarshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::{Context, TctiNameConf};

const KEY: &str = "bench";

/// trustd's storage primary template (daemon/src/backend/tpm/templates.rs): the same seed and
/// template give the same key, so trustd's wrapped blobs load under it. A mismatch fails the
/// load with TPM_RC_INTEGRITY, never a wrong result.
fn storage_primary() -> Public {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .unwrap();
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()
            .unwrap(),
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .unwrap()
}

/// The bench key's wrapped blobs, from trustd's inventory.
fn key_blobs(trustd: &Trustd) -> (Vec<u8>, Vec<u8>) {
    let inventory: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trustd.state_dir.join("inventory.json")).unwrap())
            .unwrap();
    let device = &inventory["keys"][0]["device"];
    let decode = |field: &str| {
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            device[field].as_str().expect("a TPM key"),
        )
        .unwrap()
    };
    (decode("private"), decode("public"))
}

/// Opens the TPM, loads the key once and signs until the deadline, one signature at a time
/// (a TPM executes one command at a time); closes the connection at the end.
fn run_direct(tcti: &str, blobs: &(Vec<u8>, Vec<u8>), seconds: f64) -> Run {
    let mut context = Context::new(TctiNameConf::from_str(tcti).unwrap()).unwrap();
    let primary = context
        .execute_with_nullauth_session(|ctx| {
            ctx.create_primary(Hierarchy::Owner, storage_primary(), None, None, None, None)
        })
        .unwrap()
        .key_handle;
    let key = context
        .execute_with_nullauth_session(|ctx| {
            ctx.load(
                primary,
                Private::try_from(blobs.0.clone()).unwrap(),
                Public::unmarshall(&blobs.1).unwrap(),
            )
        })
        .expect("trustd's key loads under the same primary");
    let scheme = SignatureScheme::EcDsa {
        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
    };
    let payload = vec![0x5a; PAYLOAD_BYTES];
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        let digest = Digest::try_from(Sha256::digest(&payload).to_vec()).unwrap();
        let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: StructureTag::Hashcheck.into(),
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .unwrap();
        context
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.sign(key, digest, scheme, ticket)
            })
            .unwrap();
        latencies.push(t.elapsed());
    }
    let run = Run {
        elapsed: start.elapsed(),
        latencies,
    };
    context.flush_context(key.into()).unwrap();
    context.flush_context(primary.into()).unwrap();
    run
}

fn main() {
    let (seconds, rounds) = seconds_and_rounds("trustd-bench-tpm");
    let tpm = Swtpm::start();
    let mut trustd = Trustd::launch(&Options::with_backends(format!(
        "[[backend]]\ntype = \"tpm\"\nname = \"tpm\"\ntcti = \"{}\"\n",
        tpm.tcti()
    )));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        trustd
            .client()
            .await
            .generate_key(generate_request(KEY, KeyAlgorithm::EcdsaP256))
            .await
            .expect("generate the bench key")
    });
    let blobs = key_blobs(&trustd);
    trustd.stop();

    println!(
        "trustd TPM sign benchmark: ECDSA P-256 in swtpm, {PAYLOAD_BYTES}-byte payloads, {rounds} rounds of {seconds}s per mode (median round shown)"
    );
    let (mut direct, mut one, mut eight) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        direct.push(run_direct(&tpm.tcti(), &blobs, seconds));
        trustd.spawn();
        trustd.wait_ready();
        let (s1, s8) = runtime.block_on(socket_round(&trustd, KEY, 8, seconds));
        one.push(s1);
        eight.push(s8);
        trustd.stop();
    }
    let (direct, one, eight) = (median_run(direct), median_run(one), median_run(eight));
    print_row("direct tss-esapi, key loaded", &direct);
    print_row("trustd socket, 1 client", &one);
    print_row("trustd socket, 8 clients", &eight);
    println!("reference (DESIGN): swtpm ECDSA P-256, key loaded, password session 2,100-2,700/s");
    println!(
        "socket/direct ratio (1 client): {:.2}",
        one.per_second() / direct.per_second()
    );
    println!(
        "socket/direct ratio (8 clients): {:.2}",
        eight.per_second() / direct.per_second()
    );
}
