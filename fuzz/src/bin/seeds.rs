//! Writes the seed inputs of every fuzz target: `trustd-fuzz-seeds DIR [NOTARY_FIXTURES]`
//! makes `DIR/<target>/<seed>`.
//!
//! Seeds are real: role files written by the notary and docker tools (the shared fixtures),
//! a TPM attestation from swtpm through a real trustd, a PIV attestation from the virtual
//! card's CA, signatures made here with keys that exist only in this process's memory (only
//! their public halves are written). `scripts/fuzz --seed` runs this; the committed corpora
//! grew from its output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use der::{Decode, Encode};
use p256::ecdsa::signature::Signer;
use p256::pkcs8::EncodePublicKey;
use prost::Message;
use trustd_fuzz::framing::join;
use trustd_fuzz::targets::service_requests::encode;
use trustd_proto::v1 as pb;

type Seeds = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

fn add(seeds: &mut Seeds, target: &'static str, name: impl Into<String>, bytes: Vec<u8>) {
    seeds.entry(target).or_default().push((name.into(), bytes));
}

fn prefixed(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(rest);
    out
}

/// Role files of one fixture directory, by role name (`targets/releases` for delegations).
fn role_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let prefix = format!("{}/", dir.display());
    trustd_e2e::files_under(dir)
        .into_iter()
        .filter_map(|(path, bytes)| {
            let role = path.strip_prefix(&prefix)?.strip_suffix(".json")?;
            Some((role.to_owned(), bytes))
        })
        .collect()
}

/// The GUN a root's certificates name.
fn gun_of(root: &[u8]) -> String {
    use trustd_notary::model::Root;
    let raw = trustd_notary::envelope::RawEnvelope::parse(root).unwrap();
    let root: Root = trustd_notary::model::from_signed_text(raw.signed_text()).unwrap();
    let id = &root.roles["root"].keyids[0];
    let cert = root.keys[id].certificate().unwrap();
    trustd_notary::certificate::common_name(&cert).unwrap()
}

fn notary_seeds(seeds: &mut Seeds, fixtures: &Path) {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut roots = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let files = role_files(dir);
        let root = files.iter().find(|(r, _)| r == "root").unwrap().1.clone();
        let gun = gun_of(&root);
        for (role, bytes) in &files {
            let file = format!("{name}-{}", role.replace('/', "-"));
            add(seeds, "notary_envelope", &file, bytes.clone());
            add(seeds, "canonical_json", &file, bytes.clone());
        }
        let mut parts = vec![("gun".to_owned(), gun.clone().into_bytes())];
        parts.extend(files.iter().cloned());
        let framed = join(parts.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
        add(seeds, "notary_trust", &name, framed);
        roots.push((name, gun, root, parts));
    }
    // Rotations: each root trusted, the next one with the same GUN served.
    for pair in roots.windows(2) {
        let ((_, old_gun, old_root, _), (name, gun, _, parts)) = (&pair[0], &pair[1]);
        if old_gun == gun {
            let mut parts = parts.clone();
            parts.insert(1, ("trusted-root".into(), old_root.clone()));
            let framed = join(parts.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
            add(
                seeds,
                "notary_trust",
                format!("{name}-after-trusted-root"),
                framed,
            );
        }
    }
    if let Ok(pem) = std::fs::read(fixtures.join("root-cert.pem")) {
        add(seeds, "root_certificate", "notary-root-cert-pem", pem);
    }
    for (name, _, root, _) in &roots {
        use trustd_notary::model::Root;
        let raw = trustd_notary::envelope::RawEnvelope::parse(root).unwrap();
        let root: Root = trustd_notary::model::from_signed_text(raw.signed_text()).unwrap();
        for key in root.keys.values() {
            if let Ok(cert) = key.certificate() {
                add(
                    seeds,
                    "root_certificate",
                    format!("{name}-root-der"),
                    cert.to_der().unwrap(),
                );
            }
        }
    }
    for json in [
        &br#"{"b":1,"a":[true,false,null],"c":{"z":"<>&'\u2028\u0000"}}"#[..],
        br#""\u00e9\ud83d\ude00\\\"/""#,
        br#"[-9223372036854775808,18446744073709551615,0,1.5]"#,
        br#"{"":{"":{"":[[[[]]]]}}}"#,
    ] {
        add(
            seeds,
            "canonical_json",
            format!("value-{}", json.len()),
            json.to_vec(),
        );
    }
}

fn piv_seeds(seeds: &mut Seeds) {
    let ca = trustd_vpiv::attestation::AttestationCa::new();
    let key = p256::ecdsa::SigningKey::random(&mut rand_core());
    let public = key.verifying_key().to_public_key_der().unwrap().into_vec();
    let facts = trustd_vpiv::attestation::SlotFacts {
        slot: 0x9c,
        firmware: [5, 4, 3],
        serial: 12345678,
        pin_policy: 2,
        touch_policy: 3,
    };
    let leaf = ca.attest(&public, &facts);
    add(seeds, "piv_attestation", "certificate", prefixed(0, &leaf));
    add(
        seeds,
        "root_certificate",
        "piv-attestation-chain",
        join([
            ("leaf", &leaf[..]),
            ("f9", &ca.f9_der[..]),
            ("root", ca.root_pem().as_bytes()),
        ]),
    );
    let response = pb::AttestKeyResponse {
        key: Some(pb::KeyInfo {
            name: "release".into(),
            backend: "piv".into(),
            public_key_der: public,
            piv: Some(pb::PivSlot {
                serial: facts.serial,
                slot: "9c".into(),
                pin_policy: pb::PinPolicy::Once.into(),
                touch_policy: pb::TouchPolicy::Cached.into(),
            }),
            ..Default::default()
        }),
        attestation: Some(pb::Attestation {
            evidence: Some(pb::attestation::Evidence::Piv(pb::PivAttestation {
                attestation_certificate_der: leaf,
                intermediate_certificate_der: ca.f9_der.clone(),
            })),
        }),
    };
    let framed = join([
        ("trust", ca.root_pem().as_bytes()),
        ("response", &response.encode_to_vec()[..]),
    ]);
    add(
        seeds,
        "piv_attestation",
        "attestation",
        prefixed(1, &framed),
    );

    // APDUs: select, version, serial, verify the default PIN, metadata, attest, get data,
    // a chained command, and a GET RESPONSE.
    const SELECT: &[u8] = &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
    let sessions: [(&str, Vec<&[u8]>); 3] = [
        (
            "select-version-serial",
            vec![SELECT, &[0x00, 0xFD, 0, 0], &[0x00, 0xF8, 0, 0]],
        ),
        (
            "verify-pin-attest",
            vec![
                SELECT,
                &[
                    0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
                ],
                &[0x00, 0xF7, 0x00, 0x9C],
                &[0x00, 0xF9, 0x9C, 0x00],
                &[0x00, 0xC0, 0x00, 0x00],
            ],
        ),
        (
            "get-data-chained",
            vec![
                SELECT,
                &[0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02],
                &[0x10, 0xDB, 0x3F, 0xFF, 0x03, 0x5C, 0x03, 0x5F],
                &[0x00, 0xDB, 0x3F, 0xFF, 0x04, 0xC1, 0x05, 0x53, 0x00],
                &[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00],
            ],
        ),
    ];
    for (name, apdus) in sessions {
        let framed = join(apdus.iter().map(|apdu| ("apdu", *apdu)));
        add(seeds, "piv_apdu", name, framed);
    }
}

fn rand_core() -> impl p256::elliptic_curve::rand_core::CryptoRngCore {
    p256::elliptic_curve::rand_core::OsRng
}

fn registry_seeds(seeds: &mut Seeds) {
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f","size":7143,"platform":{"architecture":"arm","os":"linux","variant":"v7"}},{"digest":"sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270","size":7682,"platform":{"architecture":"amd64","os":"linux"}},{"digest":"sha256:00","size":1}]}"#;
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:feb5d9fea6a5e9606aa995e879d862b825965ba48de054caab5ef356dc6b3412"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2479,"digest":"sha256:2db29710123e3e53a794f2694094b9b4338aa9ee5c40b930cb8063a1be392c54"}]}"#;
    add(seeds, "registry", "index", prefixed(0, index));
    add(seeds, "registry", "manifest", prefixed(0, manifest));
    add(seeds, "registry", "error", prefixed(1, br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v1"}}]}"#));
    for (name, header) in [
        ("bearer", &br#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#[..]),
        ("basic", br#"Basic realm="Registry Realm""#),
        ("several", br#"Basic realm="a", Bearer realm="https://h/t\"x\"",service=s, error="insufficient_scope""#),
    ] {
        add(seeds, "registry", format!("challenge-{name}"), prefixed(2, header));
    }
    for reference in [
        "alpine",
        "docker.io/library/alpine:3.20",
        "localhost:5000/team/app@sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
        "[::1]:5000/a/b/c:tag",
    ] {
        add(seeds, "registry", format!("reference-{}", reference.len()), prefixed(3, reference.as_bytes()));
    }
}

fn cosign_seeds(seeds: &mut Seeds) {
    use trustctl::cosign::payload::Payload;
    use trustctl::cosign::signature::{Descriptor, SignatureManifest};
    use trustctl::cosign::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
    let key = p256::ecdsa::SigningKey::random(&mut rand_core());
    let spki = key.verifying_key().to_public_key_der().unwrap().into_vec();
    let digest = "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f";
    let payload = Payload::new("registry.example.com/team/app", digest).to_bytes();
    let signature: p256::ecdsa::DerSignature = key.sign(&payload);
    let layer = |payload: &[u8], signature: &[u8]| Descriptor {
        media_type: SIMPLE_SIGNING_MEDIA_TYPE.into(),
        size: payload.len() as i64,
        digest: format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(payload))
        ),
        annotations: Some(BTreeMap::from([(
            SIGNATURE_ANNOTATION.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(signature),
        )])),
    };
    let manifest = SignatureManifest {
        schema_version: 2,
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        config: Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            size: 2,
            digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
                .into(),
            annotations: None,
        },
        layers: vec![
            layer(&payload, signature.as_bytes()),
            layer(b"{}", b"not a signature"),
        ],
        annotations: None,
    };
    let manifest = serde_json::to_vec(&manifest).unwrap();
    add(
        seeds,
        "cosign",
        "signed",
        join([
            ("key", &spki[..]),
            ("digest", digest.as_bytes()),
            ("manifest", &manifest[..]),
            ("payload", &payload[..]),
            ("payload", b"{}"),
        ]),
    );
}

fn credential_seeds(seeds: &mut Seeds) {
    let configs = [
        (
            "auths",
            &br#"{"auths":{"registry.example.com:5000":{"auth":"Y2k6czNjcjN0"}}}"#[..],
        ),
        (
            "identity-token",
            br#"{"auths":{"registry.example.com:5000":{"identitytoken":"tok"}}}"#,
        ),
        (
            "cred-helpers",
            br#"{"credHelpers":{"registry.example.com:5000":"fuzz"},"auths":{}}"#,
        ),
        ("empty", b"{}"),
    ];
    for (name, config) in configs {
        add(
            seeds,
            "docker_credentials",
            format!("config-{name}"),
            prefixed(0, config),
        );
    }
    for (name, output) in [
        (
            "password",
            &br#"{"ServerURL":"registry.example.com:5000","Username":"ci","Secret":"s3cr3t"}"#[..],
        ),
        (
            "token",
            br#"{"ServerURL":"registry.example.com:5000","Username":"<token>","Secret":"t"}"#,
        ),
        ("not-found", b"credentials not found in native keychain\n"),
    ] {
        add(
            seeds,
            "docker_credentials",
            format!("helper-{name}"),
            prefixed(1, output),
        );
    }
}

fn service_seeds(seeds: &mut Seeds) {
    let name = |n: &str| {
        Some(pb::KeySelector {
            selector: Some(pb::key_selector::Selector::Name(n.into())),
        })
    };
    let sign = |key: &str, algorithm: pb::SignatureAlgorithm, message: &[u8]| pb::SignRequest {
        key: name(key),
        algorithm: algorithm.into(),
        encoding: pb::SignatureEncoding::Der.into(),
        payload: Some(pb::sign_request::Payload::Message(message.to_vec())),
    };
    for caller in 0..3u8 {
        let ec = sign("sign-ec", pb::SignatureAlgorithm::EcdsaP256Sha256, b"hello");
        add(
            seeds,
            "service_requests",
            format!("sign-ec-{caller}"),
            encode("Sign", caller, &ec),
        );
        add(
            seeds,
            "service_requests",
            format!("list-{caller}"),
            encode("ListKeys", caller, &pb::ListKeysRequest {}),
        );
    }
    let digest = pb::SignRequest {
        payload: Some(pb::sign_request::Payload::Sha256Digest(vec![7; 32])),
        ..sign("sign-ec", pb::SignatureAlgorithm::EcdsaP256Sha256, b"")
    };
    add(
        seeds,
        "service_requests",
        "sign-digest",
        encode("Sign", 0, &digest),
    );
    let ed = sign("sign-ed", pb::SignatureAlgorithm::Ed25519, b"hello");
    add(seeds, "service_requests", "sign-ed", encode("Sign", 2, &ed));
    let checkpoint = sign(
        "audit-checkpoint",
        pb::SignatureAlgorithm::EcdsaP256Sha256,
        b"x",
    );
    add(
        seeds,
        "service_requests",
        "sign-checkpoint-key",
        encode("Sign", 0, &checkpoint),
    );
    let generate = pb::GenerateKeyRequest {
        name: "gen-1".into(),
        algorithm: pb::KeyAlgorithm::EcdsaP256.into(),
        scope: Some(pb::KeyScope {
            gun: "registry.example.com/app".into(),
            role: "targets".into(),
        }),
        ..Default::default()
    };
    add(
        seeds,
        "service_requests",
        "generate",
        encode("GenerateKey", 0, &generate),
    );
    add(
        seeds,
        "service_requests",
        "generate-denied",
        encode("GenerateKey", 1, &generate),
    );
    let delete = pb::DeleteKeyRequest { key: name("gen-1") };
    add(
        seeds,
        "service_requests",
        "delete",
        encode("DeleteKey", 0, &delete),
    );
    let get = pb::GetPublicKeyRequest {
        key: name("sign-ec"),
    };
    add(
        seeds,
        "service_requests",
        "get-public-key",
        encode("GetPublicKey", 1, &get),
    );
    let attest = pb::AttestKeyRequest {
        key: name("sign-ec"),
        nonce: vec![1; 16],
    };
    add(
        seeds,
        "service_requests",
        "attest",
        encode("AttestKey", 0, &attest),
    );
    let unlock = pb::UnlockBackendRequest {
        backend: "hsm".into(),
        pin: "000000".into(),
    };
    add(
        seeds,
        "service_requests",
        "unlock",
        encode("UnlockBackend", 0, &unlock),
    );
    let activate = pb::ActivateCredentialRequest {
        backend: "hsm".into(),
        credential_blob: vec![0; 34],
        encrypted_secret: vec![0; 256],
    };
    add(
        seeds,
        "service_requests",
        "activate",
        encode("ActivateCredential", 0, &activate),
    );
    add(
        seeds,
        "service_requests",
        "status",
        encode("Status", 1, &pb::StatusRequest {}),
    );
    use trustd_proto::notary_signer as notary;
    let create = notary::CreateKeyRequest {
        algorithm: "ecdsa".into(),
        gun: "registry.example.com/app".into(),
        role: "timestamp".into(),
    };
    add(
        seeds,
        "service_requests",
        "notary-create",
        encode("notary.CreateKey", 2, &create),
    );
    let key_id = notary::KeyId { id: "0".repeat(64) };
    add(
        seeds,
        "service_requests",
        "notary-info",
        encode("notary.GetKeyInfo", 2, &key_id),
    );
    let notary_sign = notary::SignatureRequest {
        key_id: Some(key_id.clone()),
        content: b"{}".to_vec(),
    };
    add(
        seeds,
        "service_requests",
        "notary-sign",
        encode("notary.Sign", 2, &notary_sign),
    );
    add(
        seeds,
        "service_requests",
        "notary-delete",
        encode("notary.DeleteKey", 0, &key_id),
    );
}

/// A chained audit log of `records` records with a checkpoint signed by `key` after each
/// `every`, as trustd writes it.
fn audit_log(key: &p256::ecdsa::SigningKey, records: u64, every: u64) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    use trustd_proto::audit_chain::{checkpoint_statement, CHECKPOINT_EVENT, GENESIS_PREV};
    let mut log = Vec::new();
    let mut prev = GENESIS_PREV.to_owned();
    let mut seq = 0;
    for n in 1..=records {
        seq += 1;
        let line = serde_json::json!({
            "time": "2026-11-22T00:00:00Z", "seq": seq, "prev_sha256": prev, "event": "sign",
            "uid": 1000, "key": "release", "result": "ok", "sha256": hex::encode([n as u8; 32]),
        })
        .to_string();
        let covered = hex::encode(Sha256::digest(line.as_bytes()));
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
        prev = covered.clone();
        if n % every == 0 {
            seq += 1;
            let statement = checkpoint_statement(seq - 1, &covered, "2026-11-22T00:00:01Z");
            let signature: p256::ecdsa::DerSignature = key.sign(statement.as_bytes());
            let line = serde_json::json!({
                "time": "2026-11-22T00:00:01Z", "seq": seq, "prev_sha256": prev,
                "event": CHECKPOINT_EVENT, "result": "ok", "statement": statement,
                "signature": base64::engine::general_purpose::STANDARD.encode(signature.as_bytes()),
            })
            .to_string();
            prev = hex::encode(Sha256::digest(line.as_bytes()));
            log.extend_from_slice(line.as_bytes());
            log.push(b'\n');
        }
    }
    log
}

fn audit_seeds(seeds: &mut Seeds) {
    let key = p256::ecdsa::SigningKey::random(&mut rand_core());
    let spki = key.verifying_key().to_public_key_der().unwrap().into_vec();
    let log = audit_log(&key, 6, 3);
    add(
        seeds,
        "audit_log",
        "checkpointed",
        join([("key", &spki[..]), ("audit.jsonl", &log[..])]),
    );
    add(
        seeds,
        "audit_log",
        "unchecked",
        join([("audit.jsonl", &log[..])]),
    );
    let cut = log.iter().position(|&b| b == b'\n').unwrap() + 1;
    add(
        seeds,
        "audit_log",
        "rotated",
        join([
            ("key", &spki[..]),
            ("audit.jsonl.1", &log[..cut]),
            ("audit.jsonl", &log[cut..]),
        ]),
    );
}

/// A TPM attestation from swtpm through a real trustd (needs swtpm and the built binaries).
async fn tpm_seeds(seeds: &mut Seeds) {
    use trustd_e2e::tpm::Swtpm;
    use trustd_e2e::{Options, Trustd};
    let tpm = Swtpm::start();
    let trustd = Trustd::launch(&Options::with_backends(format!(
        "[[backend]]\ntype = \"tpm\"\nname = \"tpm\"\ntcti = \"{}\"\n",
        tpm.tcti()
    )));
    trustd.ok(&["key", "generate", "k", "--backend", "tpm"]);
    let mut client = trustd.client().await;
    let response = client
        .attest_key(pb::AttestKeyRequest {
            key: Some(pb::KeySelector {
                selector: Some(pb::key_selector::Selector::Name("k".into())),
            }),
            nonce: trustd_fuzz::targets::tpm_attestation::NONCE.to_vec(),
        })
        .await
        .expect("trustd attests a TPM key")
        .into_inner();
    let Some(pb::attestation::Evidence::Tpm(evidence)) = response
        .attestation
        .as_ref()
        .and_then(|a| a.evidence.clone())
    else {
        panic!("no TPM evidence");
    };
    add(
        seeds,
        "tpm_attestation",
        "key-public-area",
        prefixed(0, &evidence.key_public_area),
    );
    add(
        seeds,
        "tpm_attestation",
        "ak-public-area",
        prefixed(0, &evidence.ak_public_area),
    );
    add(
        seeds,
        "tpm_attestation",
        "certify-info",
        prefixed(1, &evidence.certify_info),
    );
    add(
        seeds,
        "tpm_attestation",
        "attestation",
        prefixed(2, &response.encode_to_vec()),
    );
    if let Ok(ek) = x509_cert::Certificate::from_der(&evidence.ek_certificate_der) {
        add(
            seeds,
            "root_certificate",
            "tpm-ek-certificate",
            ek.to_der().unwrap(),
        );
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: trustd-fuzz-seeds DIR [NOTARY_FIXTURES]");
        std::process::exit(2);
    };
    let fixtures = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/notary-fixtures"));
    let mut seeds = Seeds::new();
    notary_seeds(&mut seeds, &fixtures);
    piv_seeds(&mut seeds);
    registry_seeds(&mut seeds);
    cosign_seeds(&mut seeds);
    credential_seeds(&mut seeds);
    service_seeds(&mut seeds);
    audit_seeds(&mut seeds);
    tpm_seeds(&mut seeds).await;
    for (target, files) in &seeds {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
        println!("{target}: {} seeds", files.len());
    }
}
