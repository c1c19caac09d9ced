//! notary-signer's API (KeyManagement and Signer, package `proto`), served on the TLS listener
//! to notary-server: thin handlers on the key service, through the same path as trustd's own
//! API (caller, in-flight count, audit).
//!
//! What notary-server expects, each verified against it: public keys as DER SPKI (ecdsa) or
//! 32 raw bytes (ed25519), from which it recomputes the key ID; ECDSA signatures as fixed-
//! width r||s; NotFound for a key ID trustd does not hold; DeleteKey (which it never calls)
//! deleting the key when the policy allows. Health answers SERVING for the two service names
//! notary-server checks every 10 s.

use std::sync::Arc;

use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status};
use trustd_proto::notary_signer::{self as pb, key_management_server, signer_server};

use super::{handle, Call, Rpc};
use crate::algorithm::{KeyAlgorithm, SignatureAlgorithm};
use crate::config::NotarySignerConfig;
use crate::inventory::{KeyRecord, KeyScope};
use crate::keys::{notary_algorithm, KeySelector, KeyService};
use crate::policy::Operation;
use crate::state::DaemonState;

/// How often the health of notary-signer's services follows its backend's state.
const HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Adds notary-signer's services to `routes`; their health follows the backend that holds
/// notary-server's keys (SERVING while it is ready), so notary-server's own health check
/// reports a missing HSM rather than failing publishes one by one.
pub async fn add_services(
    routes: &mut RoutesBuilder,
    health: &tonic_health::server::HealthReporter,
    state: Arc<DaemonState>,
    config: &NotarySignerConfig,
) {
    let service = NotarySigner::new(state, &config.backend);
    if let Ok(backend) = service.keys.select_backend(&config.backend) {
        tokio::spawn(follow_backend_health(backend.clone(), health.clone()));
    }
    let limit = trustd_proto::MAX_MESSAGE_BYTES;
    routes
        .add_service(
            key_management_server::KeyManagementServer::new(service.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            signer_server::SignerServer::new(service)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        );
}

async fn follow_backend_health(
    backend: Arc<dyn crate::backend::Backend>,
    health: tonic_health::server::HealthReporter,
) {
    let mut last = None;
    loop {
        let ready = backend.status().await.state == crate::backend::BackendState::Ready;
        if last != Some(ready) {
            let status = match ready {
                true => tonic_health::ServingStatus::Serving,
                false => tonic_health::ServingStatus::NotServing,
            };
            if !ready {
                tracing::warn!(backend = backend.name(), "notary-signer reports NOT_SERVING: the backend holding notary-server's keys is not ready");
            }
            for name in [pb::HEALTH_KEY_MANAGEMENT, pb::HEALTH_SIGNER] {
                health.set_service_status(name, status).await;
            }
            last = Some(ready);
        }
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

/// Both notary-signer services, over one key service.
#[derive(Clone)]
pub struct NotarySigner {
    keys: KeyService,
    /// Where CreateKey makes keys (`[notary_signer] backend`).
    backend: Arc<str>,
}

impl NotarySigner {
    /// notary-signer's services over `state`, making keys on the backend named `backend`.
    pub fn new(state: Arc<DaemonState>, backend: &str) -> NotarySigner {
        NotarySigner {
            keys: KeyService::new(state),
            backend: Arc::from(backend),
        }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl key_management_server::KeyManagement for NotarySigner {
    async fn create_key(&self, request: Request<pb::CreateKeyRequest>) -> Answer<pb::PublicKey> {
        let backend = self.backend.clone();
        handle(
            &self.keys,
            Rpc::NotaryCreateKey,
            request,
            move |call, request| Box::pin(create_key(call, request, backend)),
        )
        .await
    }

    async fn delete_key(&self, request: Request<pb::KeyId>) -> Answer<pb::Void> {
        handle(
            &self.keys,
            Rpc::NotaryDeleteKey,
            request,
            |call, request| Box::pin(delete_key(call, request)),
        )
        .await
    }

    async fn get_key_info(&self, request: Request<pb::KeyId>) -> Answer<pb::GetKeyInfoResponse> {
        let backend = self.backend.clone();
        handle(
            &self.keys,
            Rpc::NotaryGetKeyInfo,
            request,
            move |call, request| Box::pin(get_key_info(call, request, backend)),
        )
        .await
    }
}

#[tonic::async_trait]
impl signer_server::Signer for NotarySigner {
    async fn sign(&self, request: Request<pb::SignatureRequest>) -> Answer<pb::Signature> {
        let backend = self.backend.clone();
        handle(
            &self.keys,
            Rpc::NotarySign,
            request,
            move |call, request| Box::pin(sign(call, request, backend)),
        )
        .await
    }
}

async fn create_key(
    call: Call<'_>,
    request: pb::CreateKeyRequest,
    backend: Arc<str>,
) -> Result<pb::PublicKey, Status> {
    let algorithm = notary_algorithm(&request.algorithm)?;
    let scope = KeyScope {
        gun: request.gun,
        role: request.role,
    };
    let key = call
        .keys
        .create_notary_key(call.caller, &backend, algorithm, scope, call.audit)
        .await?;
    Ok(pb::PublicKey {
        key_info: Some(key_info(&key)),
        public_key: notary_public_key(&key)?,
    })
}

async fn get_key_info(
    call: Call<'_>,
    request: pb::KeyId,
    backend: Arc<str>,
) -> Result<pb::GetKeyInfoResponse, Status> {
    let key = call
        .keys
        .notary_key(call.caller, Operation::List, &request.id, &backend)
        .await?;
    Ok(pb::GetKeyInfoResponse {
        key_info: Some(key_info(&key)),
        public_key: notary_public_key(&key)?,
        role: key.scope.role.clone(),
    })
}

async fn delete_key(call: Call<'_>, request: pb::KeyId) -> Result<pb::Void, Status> {
    let selector = KeySelector::KeyId(request.id);
    call.keys
        .delete(call.caller, Some(&selector), call.audit)
        .await?;
    Ok(pb::Void {})
}

async fn sign(
    call: Call<'_>,
    request: pb::SignatureRequest,
    backend: Arc<str>,
) -> Result<pb::Signature, Status> {
    let key_id = request.key_id.map(|k| k.id).unwrap_or_default();
    if key_id.is_empty() {
        return Err(Status::invalid_argument(
            "Sign needs the key ID to sign with",
        ));
    }
    let (key, signature) = call
        .keys
        .sign_for_notary(call.caller, &backend, &key_id, request.content, call.audit)
        .await?;
    Ok(pb::Signature {
        key_info: Some(key_info(&key)),
        algorithm: Some(pb::Algorithm {
            algorithm: notary_signature_algorithm(signature.algorithm).to_owned(),
        }),
        content: signature.bytes,
    })
}

fn key_info(key: &KeyRecord) -> pb::KeyInfo {
    pb::KeyInfo {
        key_id: Some(pb::KeyId {
            id: key.key_id.clone(),
        }),
        algorithm: Some(pb::Algorithm {
            algorithm: key.algorithm.notary_key_type().as_str().to_owned(),
        }),
    }
}

/// The public key as notary encodes it for the key's type: DER SPKI, or the raw 32 bytes of
/// an Ed25519 key.
fn notary_public_key(key: &KeyRecord) -> Result<Vec<u8>, Status> {
    if key.algorithm != KeyAlgorithm::Ed25519 {
        return Ok(key.public_key.clone());
    }
    use der::Decode;
    spki::SubjectPublicKeyInfoRef::from_der(&key.public_key)
        .ok()
        .and_then(|spki| spki.subject_public_key.as_bytes().map(<[u8]>::to_vec))
        .filter(|raw| raw.len() == 32)
        .ok_or_else(|| Status::internal(format!("key {:?} has an unreadable public key", key.name)))
}

/// notary's name for a signature scheme (`data.SigAlgorithm`).
fn notary_signature_algorithm(algorithm: SignatureAlgorithm) -> &'static str {
    match algorithm {
        SignatureAlgorithm::Ed25519 => "eddsa",
        SignatureAlgorithm::RsaPssSha256 => "rsapss",
        _ => "ecdsa",
    }
}
