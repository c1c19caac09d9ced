//! trustd's request handling after protobuf decoding: names, selectors, algorithms, payload
//! sizes, policy and the device, on a real SoftHSM2 token, for three callers (root, uid 1000
//! and a TLS client), through both of trustd's APIs (its own and notary-signer's).
//!
//! An input is `[method, caller, protobuf...]` (see `trustd::fuzzing`). The laws: an
//! unprivileged caller never changes the key set or unlocks anything; the audit checkpoint key
//! signs nothing a caller asks; and trustd answers Status after every request.

use std::sync::OnceLock;

use prost::Message;
use trustd::fuzzing::{ServiceHarness, METHODS};
use trustd_proto::notary_signer as notary_pb;
use trustd_proto::v1 as pb;

/// The checkpoint key named in the harness's `[audit]`.
const CHECKPOINT_KEY: &str = "audit-checkpoint";
/// Keys made at start-up, so that signing reaches the device.
const KEYS: [(&str, pb::KeyAlgorithm); 3] = [
    ("sign-ec", pb::KeyAlgorithm::EcdsaP256),
    ("sign-ed", pb::KeyAlgorithm::Ed25519),
    (CHECKPOINT_KEY, pb::KeyAlgorithm::EcdsaP256),
];

const POLICY: &str = r#"
[[policy.rule]]
description = "root manages a bounded set of keys (the fuzzer may not fill the token)"
users = ["root"]
keys = ["sign-*", "gen-?", "audit-checkpoint"]
operations = ["sign", "generate", "import", "delete", "list", "unlock", "provision"]

[[policy.rule]]
description = "an unprivileged CI user signs with one key"
users = ["1000"]
keys = ["sign-ec"]
operations = ["sign", "list"]

[[policy.rule]]
description = "a TLS client signs with the sign-* keys"
clients = ["CN=ci"]
keys = ["sign-*"]
operations = ["sign", "list"]
"#;

struct Harness {
    _dir: tempfile::TempDir,
    service: ServiceHarness,
    checkpoint_key_id: String,
}

fn method(name: &str) -> u8 {
    METHODS.iter().position(|m| *m == name).expect("a method") as u8
}

/// An input calling `method` as `caller` (0 root, 1 uid 1000, 2 the TLS client).
pub fn encode(method_name: &str, caller: u8, message: &impl Message) -> Vec<u8> {
    let mut input = vec![method(method_name), caller];
    input.extend(message.encode_to_vec());
    input
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let token = trustd_e2e::SoftHsm::new("fuzz");
        std::env::set_var("SOFTHSM2_CONF", &token.conf);
        let pin = dir.path().join("user.pin");
        std::fs::write(&pin, trustd_e2e::USER_PIN).unwrap();
        // trustd refuses a PIN file others may read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.path().join("trustd.toml");
        std::fs::write(
            &config,
            format!(
                r#"state_dir = "{state}"

[socket]
path = "{socket}"

# Never bound: the harness has no sockets, but a policy naming TLS clients needs one.
[tls_listener]
address = "127.0.0.1:1"
certificate = "{dir}/unused.crt"
key = "{dir}/unused.key"
client_ca = "{dir}/unused-ca.crt"

[notary_signer]
backend = "hsm"

[audit]
sink = "file"
path = "/dev/null"
checkpoint_key = "{CHECKPOINT_KEY}"

[[backend]]
type = "pkcs11"
name = "hsm"
module = "{module}"
token_label = "fuzz"
pin = {{ file = "{pin}" }}

{POLICY}
"#,
                dir = dir.path().display(),
                state = dir.path().join("state").display(),
                socket = dir.path().join("trustd.sock").display(),
                module = trustd_e2e::MODULE,
                pin = pin.display(),
            ),
        )
        .unwrap();
        // The token lives as long as the process: its directory is leaked on purpose, as
        // libFuzzer ends the process without running destructors.
        std::mem::forget(token);
        let service = ServiceHarness::start(&config).expect("the harness starts");
        for (name, algorithm) in KEYS {
            let request = pb::GenerateKeyRequest {
                name: name.into(),
                algorithm: algorithm.into(),
                ..Default::default()
            };
            let code = service.call(&encode("GenerateKey", 0, &request));
            assert_eq!(code, Some(tonic::Code::Ok), "the harness makes key {name}");
        }
        let checkpoint_key_id = service
            .public_key(CHECKPOINT_KEY)
            .expect("the checkpoint key exists");
        Harness {
            _dir: dir,
            service,
            checkpoint_key_id,
        }
    })
}

fn names_checkpoint_key(selector: Option<&pb::KeySelector>, key_id: &str) -> bool {
    use pb::key_selector::Selector;
    match selector.and_then(|s| s.selector.as_ref()) {
        Some(Selector::Name(name)) => name == CHECKPOINT_KEY,
        Some(Selector::KeyId(id)) => id == key_id,
        None => false,
    }
}

pub fn run(data: &[u8]) {
    let harness = harness();
    let Some(code) = harness.service.call(data) else {
        return;
    };
    let [method_index, caller, body @ ..] = data else {
        unreachable!("a decoded request has its two header bytes");
    };
    let method = METHODS[usize::from(*method_index) % METHODS.len()];
    let caller = caller % 3;
    if code == tonic::Code::Ok {
        let changes_keys = matches!(
            method,
            "GenerateKey"
                | "ImportKey"
                | "DeleteKey"
                | "UnlockBackend"
                | "ProvisionPiv"
                | "notary.CreateKey"
                | "notary.DeleteKey"
        );
        assert!(
            caller == 0 || !changes_keys,
            "caller {caller} was allowed {method}"
        );
        let signed_with_checkpoint_key = match method {
            "Sign" => {
                let request = pb::SignRequest::decode(body).expect("it decoded before");
                names_checkpoint_key(request.key.as_ref(), &harness.checkpoint_key_id)
            }
            "notary.Sign" => {
                let request = notary_pb::SignatureRequest::decode(body).expect("it decoded before");
                request
                    .key_id
                    .is_some_and(|k| k.id == harness.checkpoint_key_id)
            }
            _ => false,
        };
        assert!(
            !signed_with_checkpoint_key,
            "a caller signed with the audit checkpoint key"
        );
    }
    let status = encode("Status", 0, &pb::StatusRequest {});
    assert_eq!(
        harness.service.call(&status),
        Some(tonic::Code::Ok),
        "trustd stopped answering after {method}"
    );
}
