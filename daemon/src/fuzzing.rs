//! trustd's service layer without its sockets, for the fuzzer (`fuzz/`, feature `fuzzing`).
//!
//! Whatever a caller sends reaches the handlers as a decoded protobuf message: tonic and prost
//! have turned bytes into fields, and everything after that (names, selectors, sizes, digests,
//! algorithms, policy, the device, the audit record) is trustd's own code. The harness builds
//! the daemon's state exactly as `server::run` does, from a configuration file, and feeds it
//! decoded requests from several callers, without the front end's connection bounds so that
//! the fuzzer spends its time in the handlers.

use std::path::Path;
use std::sync::Arc;

use prost::Message;
use tonic::Request;
use trustd_proto as pb;
use trustd_proto::notary_signer as notary_pb;

use crate::config::Config;
use crate::front::peer::PeerCredentials;
use crate::front::{Caller, RemoteIdentity};
use crate::rpc::notary_signer::NotarySigner;
use crate::rpc::SignerService;

/// The callers requests come from: root, an unprivileged local user, a remote client.
fn callers() -> Vec<Arc<Caller>> {
    let local = |uid: u32| {
        Arc::new(Caller::Local(PeerCredentials {
            uid,
            gid: uid,
            pid: 1,
            groups: vec![uid],
        }))
    };
    vec![
        local(0),
        local(1000),
        Arc::new(Caller::Remote(RemoteIdentity {
            subject: "CN=ci".into(),
            dns_names: vec!["ci.example.com".into()],
            uris: vec!["spiffe://example.com/ci".into()],
        })),
    ]
}

/// The methods a fuzz input can call, by its first byte.
pub const METHODS: [&str; 15] = [
    "ListKeys",
    "GetPublicKey",
    "GenerateKey",
    "ImportKey",
    "DeleteKey",
    "Sign",
    "AttestKey",
    "ActivateCredential",
    "UnlockBackend",
    "ProvisionPiv",
    "Status",
    "notary.CreateKey",
    "notary.GetKeyInfo",
    "notary.DeleteKey",
    "notary.Sign",
];

/// trustd's state and services, driven one request at a time.
pub struct ServiceHarness {
    runtime: tokio::runtime::Runtime,
    signer: SignerService,
    notary: NotarySigner,
    callers: Vec<Arc<Caller>>,
}

impl ServiceHarness {
    /// Builds the state from the configuration at `config_path` (its `[notary_signer]`
    /// backend, or the first backend, makes notary keys).
    pub fn start(config_path: &Path) -> anyhow::Result<ServiceHarness> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let config = Config::load(config_path)?;
        let state = crate::server::assemble(&config, config_path)?;
        let notary_backend = match &config.notary_signer {
            Some(notary) => notary.backend.clone(),
            None => state
                .backends
                .first()
                .map(|b| b.name().to_owned())
                .unwrap_or_default(),
        };
        Ok(ServiceHarness {
            runtime,
            signer: SignerService::new(state.clone()),
            notary: NotarySigner::new(state, &notary_backend),
            callers: callers(),
        })
    }

    /// Handles one request. `input[0]` picks the method ([`METHODS`], modulo their number),
    /// `input[1]` the caller, and the rest is the request's protobuf encoding. Returns None
    /// when those bytes do not decode (tonic refuses them before any handler), else the
    /// answer's status code.
    pub fn call(&self, input: &[u8]) -> Option<tonic::Code> {
        let [method, caller, body @ ..] = input else {
            return None;
        };
        let caller = self.callers[usize::from(*caller) % self.callers.len()].clone();
        let method = usize::from(*method) % METHODS.len();
        self.runtime.block_on(self.dispatch(method, caller, body))
    }

    /// The key ID of the key `name`, as root sees it.
    pub fn public_key(&self, name: &str) -> Option<String> {
        use pb::signer_server::Signer;
        let request = pb::GetPublicKeyRequest {
            key: Some(pb::KeySelector {
                selector: Some(pb::key_selector::Selector::Name(name.to_owned())),
            }),
        };
        let mut request = Request::new(request);
        request.extensions_mut().insert(self.callers[0].clone());
        let answer = self.runtime.block_on(self.signer.get_public_key(request));
        Some(answer.ok()?.into_inner().key?.key_id)
    }

    async fn dispatch(
        &self,
        method: usize,
        caller: Arc<Caller>,
        body: &[u8],
    ) -> Option<tonic::Code> {
        use notary_pb::key_management_server::KeyManagement;
        use notary_pb::signer_server::Signer as NotarySignerApi;
        use pb::signer_server::Signer;

        fn request<T>(message: T, caller: Arc<Caller>) -> Request<T> {
            let mut request = Request::new(message);
            request.extensions_mut().insert(caller);
            request
        }
        fn code<T>(answer: Result<T, tonic::Status>) -> tonic::Code {
            answer.err().map_or(tonic::Code::Ok, |status| status.code())
        }
        macro_rules! call {
            ($service:expr, $method:ident, $message:ty) => {{
                let message = <$message>::decode(body).ok()?;
                code($service.$method(request(message, caller)).await)
            }};
        }
        let signer = &self.signer;
        let notary = &self.notary;
        Some(match method {
            0 => call!(signer, list_keys, pb::ListKeysRequest),
            1 => call!(signer, get_public_key, pb::GetPublicKeyRequest),
            2 => call!(signer, generate_key, pb::GenerateKeyRequest),
            3 => call!(signer, import_key, pb::ImportKeyRequest),
            4 => call!(signer, delete_key, pb::DeleteKeyRequest),
            5 => call!(signer, sign, pb::SignRequest),
            6 => call!(signer, attest_key, pb::AttestKeyRequest),
            7 => call!(signer, activate_credential, pb::ActivateCredentialRequest),
            8 => call!(signer, unlock_backend, pb::UnlockBackendRequest),
            9 => call!(signer, provision_piv, pb::ProvisionPivRequest),
            10 => call!(signer, status, pb::StatusRequest),
            11 => call!(notary, create_key, notary_pb::CreateKeyRequest),
            12 => call!(notary, get_key_info, notary_pb::KeyId),
            13 => call!(notary, delete_key, notary_pb::KeyId),
            _ => call!(notary, sign, notary_pb::SignatureRequest),
        })
    }
}
