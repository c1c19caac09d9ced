//! The Signer gRPC service: authorize, validate, call the backend, audit, answer.
//!
//! Every request is authorized on the kernel peer credentials of its connection. Errors map to
//! precise gRPC codes: NotFound (no such key or backend), PermissionDenied (policy),
//! InvalidArgument (bad request), FailedPrecondition (token locked, misconfigured or lacking a
//! mechanism), Unavailable (device missing, audit sink broken), AlreadyExists (name taken).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use trustd_proto as pb;
use zeroize::Zeroizing;

use crate::admission::{ByteBudget, ConnectionGate, RateLimitedLog};
use crate::algorithm::{self, KeyAlgorithm, SignatureAlgorithm};
use crate::audit::{AuditLog, AuditRecord};
use crate::backend::{
    Backend, BackendError, BackendKind, BackendState, PivGenerate, PivProvisioning, SignInput,
};
use crate::certificate;
use crate::config::Limits;
use crate::inventory::{
    Attestation, DeviceHandle, Inventory, KeyOrigin, KeyRecord, KeyScope, PinPolicy, TouchPolicy,
};
use crate::key_locks::KeyLocks;
use crate::peer::PeerCredentials;
use crate::policy::{Operation, Policy};
use crate::private_key::PrivateKey;

/// Everything a request handler needs, shared across connections.
pub struct DaemonState {
    pub inventory: Inventory,
    pub backends: Vec<Arc<dyn Backend>>,
    pub policy: RwLock<Arc<Policy>>,
    pub audit: AuditLog,
    pub limits: Limits,
    pub in_flight: AtomicU32,
    /// Serializes generate, import and delete per key name.
    pub key_locks: KeyLocks,
    /// The bounds on what callers make trustd hold, and what they refused.
    pub guards: Guards,
}

/// Connection and buffered-byte bounds (see `admission`), shared by the listener, the request
/// limits layer and Status.
pub struct Guards {
    pub connections: Arc<ConnectionGate>,
    pub bytes: Arc<ByteBudget>,
    pub refused_requests: std::sync::atomic::AtomicU64,
}

impl Guards {
    pub fn new(limits: &Limits) -> Guards {
        Guards {
            connections: ConnectionGate::new(limits),
            bytes: ByteBudget::new(limits),
            refused_requests: Default::default(),
        }
    }
}

impl DaemonState {
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("policy lock").clone()
    }

    fn backend(&self, name: &str) -> Option<&Arc<dyn Backend>> {
        self.backends.iter().find(|b| b.name() == name)
    }

    /// Backend by name or kind ("pkcs11"); the first configured one when `wanted` is empty.
    fn select_backend(&self, wanted: &str) -> Result<&Arc<dyn Backend>, Status> {
        let configured = || {
            self.backends
                .iter()
                .map(|b| b.name().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.backends.is_empty() {
            return Err(Status::failed_precondition(
                "no backends are configured: add a [[backend]] section to trustd's config",
            ));
        }
        if wanted.is_empty() {
            return Ok(&self.backends[0]);
        }
        self.backends
            .iter()
            .find(|b| b.name() == wanted)
            .or_else(|| self.backends.iter().find(|b| b.kind().as_str() == wanted))
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no backend named {}; configured: {}",
                    shown(wanted),
                    configured()
                ))
            })
    }
}

#[derive(Clone)]
pub struct SignerService {
    state: Arc<DaemonState>,
}

impl SignerService {
    pub fn new(state: Arc<DaemonState>) -> Self {
        SignerService { state }
    }

    /// The key a request names, if the caller may do `op` with it. A caller who may not is
    /// told so in the words it used (the name or key ID it sent), whether or not the key
    /// exists: existence is only revealed to callers who could list the key anyway.
    fn resolve_for(
        &self,
        caller: &PeerCredentials,
        op: Operation,
        selector: Option<&pb::KeySelector>,
    ) -> Result<Arc<KeyRecord>, Status> {
        let Some(selector) = selector.and_then(|s| s.selector.as_ref()) else {
            return Err(Status::invalid_argument("name the key (by name or key ID)"));
        };
        let policy = self.state.policy();
        let (record, asked, may_know) = match selector {
            pb::key_selector::Selector::Name(name) => (
                self.state.inventory.by_name(name),
                name,
                policy.decide(caller, op, name).is_allowed()
                    || policy.decide(caller, Operation::List, name).is_allowed(),
            ),
            pb::key_selector::Selector::KeyId(id) => (
                self.state.inventory.by_key_id(id),
                id,
                policy.grants_any(caller, Operation::List),
            ),
        };
        match record {
            Some(key) if policy.decide(caller, op, &key.name).is_allowed() => Ok(key),
            None if may_know => Err(Status::not_found(format!(
                "no key {} in trustd; `trustctl key list` shows the keys you may use",
                shown(asked)
            ))),
            _ => Err(self.denied(caller, op, asked)),
        }
    }

    fn authorize(
        &self,
        caller: &PeerCredentials,
        op: Operation,
        key_name: &str,
    ) -> Result<(), Status> {
        if self
            .state
            .policy()
            .decide(caller, op, key_name)
            .is_allowed()
        {
            return Ok(());
        }
        Err(self.denied(caller, op, key_name))
    }

    /// PermissionDenied for `op` on `object` (as the caller named it), logged at a bounded
    /// rate: a caller with no rule can make many of these.
    fn denied(&self, caller: &PeerCredentials, op: Operation, object: &str) -> Status {
        DENIED_LOG.log(|suppressed| {
            tracing::warn!(
                uid = caller.uid,
                pid = caller.pid,
                op = op.as_str(),
                key = %shown(object),
                suppressed,
                "denied by policy"
            )
        });
        let kind = match op {
            Operation::Unlock | Operation::Provision => "backend",
            _ => "key",
        };
        Status::permission_denied(format!(
            "uid {} may not {} {kind} {}: no policy rule grants it (ask the trustd administrator for a [[policy.rule]])",
            caller.uid,
            op.as_str(),
            shown(object)
        ))
    }

    async fn audit(
        &self,
        mut record: AuditRecord,
        result: &Result<impl Sized, Status>,
    ) -> Result<(), Status> {
        match result {
            Ok(_) => record.result = "allowed",
            Err(status) => {
                record.result = if status.code() == tonic::Code::PermissionDenied {
                    "denied"
                } else {
                    "failed"
                };
                record.detail = Some(status.message().to_owned());
            }
        }
        self.state
            .audit
            .record(record)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    async fn sign_checked(
        &self,
        caller: &PeerCredentials,
        request: pb::SignRequest,
        audit: &mut AuditRecord,
    ) -> Result<pb::SignResponse, Status> {
        // Record what was asked before anything can fail, so every request is traceable.
        let (input_digest, payload_bytes) = match &request.payload {
            Some(pb::sign_request::Payload::Message(m)) => {
                (Some(<[u8; 32]>::from(Sha256::digest(m))), Some(m.len()))
            }
            Some(pb::sign_request::Payload::Sha256Digest(d)) => {
                (<[u8; 32]>::try_from(d.as_slice()).ok(), None)
            }
            Some(pb::sign_request::Payload::Sha384Digest(d)) => {
                audit.payload_sha384 = (d.len() == 48).then(|| hex::encode(d));
                (None, None)
            }
            None => (None, None),
        };
        audit.payload_sha256 = input_digest.map(hex::encode);
        audit.payload_bytes = payload_bytes;
        let key = match self.resolve_for(caller, Operation::Sign, request.key.as_ref()) {
            Ok(key) => key,
            Err(status) => {
                // Record what the caller asked for (when it could be a key's name or ID: the
                // trail is no place for arbitrary input), even though it was refused.
                if let Some(
                    pb::key_selector::Selector::Name(n) | pb::key_selector::Selector::KeyId(n),
                ) = request.key.as_ref().and_then(|k| k.selector.as_ref())
                {
                    audit.key_name = validate_key_name(n).is_ok().then(|| n.clone());
                }
                return Err(status);
            }
        };
        audit.key_name = Some(key.name.clone());
        audit.key_id = Some(key.key_id.clone());

        let wanted = SignatureAlgorithm::from_proto(request.algorithm).ok_or_else(|| {
            Status::invalid_argument(format!(
                "set the signature algorithm; key {:?} makes {} signatures",
                key.name,
                key.algorithm.signature_algorithm().as_str()
            ))
        })?;
        audit.algorithm = Some(wanted.as_str());
        let natural = key.algorithm.signature_algorithm();
        if wanted != natural {
            return Err(Status::invalid_argument(format!(
                "key {:?} is {} and cannot make {} signatures (it makes {})",
                key.name,
                key.algorithm.as_str(),
                wanted.as_str(),
                natural.as_str()
            )));
        }
        let encoding = match pb::SignatureEncoding::try_from(request.encoding) {
            Ok(pb::SignatureEncoding::Unspecified | pb::SignatureEncoding::Raw) => {
                pb::SignatureEncoding::Raw
            }
            Ok(pb::SignatureEncoding::Der) if wanted.is_ecdsa() => pb::SignatureEncoding::Der,
            Ok(pb::SignatureEncoding::Der) => {
                return Err(Status::invalid_argument(format!(
                    "DER encoding applies to ECDSA signatures only, not {}",
                    wanted.as_str()
                )))
            }
            Err(_) => return Err(Status::invalid_argument("unknown signature encoding")),
        };
        let input = self.sign_input(wanted, request.payload, input_digest)?;
        self.state
            .audit
            .check_healthy()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let backend = self.key_backend(&key)?;
        let raw = backend
            .sign(&key.device, key.algorithm, input)
            .await
            .map_err(|e| backend_status(&e))?;
        let signature = if encoding == pb::SignatureEncoding::Der {
            algorithm::ecdsa_raw_to_der(&raw).map_err(Status::internal)?
        } else {
            raw
        };
        Ok(pb::SignResponse {
            signature,
            key_id: key.key_id.clone(),
            algorithm: wanted.to_proto() as i32,
            encoding: encoding as i32,
        })
    }

    /// What the device signs: the digest its algorithm wants, or the whole message.
    fn sign_input(
        &self,
        wanted: SignatureAlgorithm,
        payload: Option<pb::sign_request::Payload>,
        message_sha256: Option<[u8; 32]>,
    ) -> Result<SignInput, Status> {
        use pb::sign_request::Payload;
        let digest_length = |digest: &[u8], want: usize, name: &str| {
            if digest.len() == want {
                Ok(())
            } else {
                Err(Status::invalid_argument(format!(
                    "a {name} digest has {want} bytes, not {}",
                    digest.len()
                )))
            }
        };
        let wrong_digest = |sent: &str| {
            Status::invalid_argument(match wanted {
                SignatureAlgorithm::Ed25519 => {
                    "Ed25519 cannot sign a pre-computed digest: send the message".to_owned()
                }
                SignatureAlgorithm::EcdsaP384Sha384 => {
                    format!("ECDSA P-384 keys sign SHA-384 digests, not {sent}: send sha384_digest or the message")
                }
                _ => format!("{} signs SHA-256 digests, not {sent}", wanted.as_str()),
            })
        };
        match payload {
            None => Err(Status::invalid_argument(
                "nothing to sign: send a message or a digest",
            )),
            Some(Payload::Message(message)) => {
                let limit = self.state.limits.max_payload_bytes;
                if message.len() > limit {
                    let hint = match wanted {
                        SignatureAlgorithm::Ed25519 => {
                            "Ed25519 signs whole messages, so this payload cannot be signed here"
                        }
                        SignatureAlgorithm::EcdsaP384Sha384 => {
                            "send its SHA-384 digest instead (trustctl does this for large files)"
                        }
                        _ => "send its SHA-256 digest instead (trustctl does this for large files)",
                    };
                    return Err(Status::invalid_argument(format!(
                        "payload of {} bytes exceeds trustd's limit of {limit} bytes: {hint}",
                        message.len()
                    )));
                }
                Ok(match wanted {
                    SignatureAlgorithm::Ed25519 => SignInput::Message(message),
                    SignatureAlgorithm::EcdsaP384Sha384 => {
                        SignInput::Sha384(sha2::Sha384::digest(&message).into())
                    }
                    _ => SignInput::Sha256(message_sha256.expect("computed for every message")),
                })
            }
            Some(Payload::Sha256Digest(digest)) => {
                if !wanted.accepts_prehashed() || wanted == SignatureAlgorithm::EcdsaP384Sha384 {
                    return Err(wrong_digest("SHA-256"));
                }
                digest_length(&digest, 32, "SHA-256")?;
                Ok(SignInput::Sha256(
                    digest.try_into().expect("length checked"),
                ))
            }
            Some(Payload::Sha384Digest(digest)) => {
                if wanted != SignatureAlgorithm::EcdsaP384Sha384 {
                    return Err(wrong_digest("SHA-384"));
                }
                digest_length(&digest, 48, "SHA-384")?;
                Ok(SignInput::Sha384(
                    digest.try_into().expect("length checked"),
                ))
            }
        }
    }

    fn key_backend(&self, key: &KeyRecord) -> Result<&Arc<dyn Backend>, Status> {
        self.state.backend(&key.backend).ok_or_else(|| {
            Status::failed_precondition(format!(
                "key {:?} lives on backend {:?}, which is not in trustd's config any more",
                key.name, key.backend
            ))
        })
    }

    /// Records a key the backend just created; removes it from the device again if the
    /// inventory cannot be written, so no key exists that trustd does not know about.
    async fn record_new_key(
        &self,
        backend: &Arc<dyn Backend>,
        name: String,
        scope: Option<pb::KeyScope>,
        origin: KeyOrigin,
        new: crate::backend::NewKey,
        certificate: Vec<u8>,
    ) -> Result<KeyRecord, Status> {
        let key_id = algorithm::notary_key_id(new.algorithm, &new.public_key)
            .map_err(|e| Status::internal(format!("cannot compute the key ID: {e}")))?;
        let scope = scope.unwrap_or_default();
        let record = KeyRecord {
            name,
            key_id,
            algorithm: new.algorithm,
            backend: backend.name().to_owned(),
            device: new.device.clone(),
            public_key: new.public_key,
            scope: KeyScope {
                gun: scope.gun,
                role: scope.role,
            },
            origin,
            created: crate::time::now_rfc3339(),
            certificate,
            attestation: new.attestation,
        };
        let state = self.state.clone();
        let to_insert = record.clone();
        let inserted = tokio::task::spawn_blocking(move || state.inventory.insert(to_insert))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Err(error) = inserted {
            let rollback = backend.delete(&new.device).await;
            if let Err(rollback_error) = &rollback {
                tracing::error!(%rollback_error, "could not remove an unrecorded key from the device");
            }
            return Err(match error {
                crate::inventory::InventoryError::NameTaken(name) => {
                    Status::already_exists(format!("a key named {name:?} already exists"))
                }
                other => Status::internal(format!(
                    "could not record the key ({other}); {}",
                    if rollback.is_ok() {
                        "it was removed from the device again"
                    } else {
                        "removing it from the device failed too: see trustd's log"
                    }
                )),
            });
        }
        Ok(record)
    }

    /// Generates or imports a key, records it (rolling back on failure) and audits the
    /// outcome.
    async fn create_key(
        &self,
        caller: &PeerCredentials,
        name: String,
        backend: &str,
        scope: Option<pb::KeyScope>,
        source: KeySource,
    ) -> Result<KeyRecord, Status> {
        let (event, operation, origin) = match &source {
            KeySource::Generate { .. } => ("generate", Operation::Generate, KeyOrigin::Generated),
            KeySource::Import { .. } => ("import", Operation::Import, KeyOrigin::Imported),
        };
        let mut audit = AuditRecord::new(event, caller);
        let result = async {
            validate_key_name(&name)?;
            audit.key_name = Some(name.clone());
            self.authorize(caller, operation, &name)?;
            let _lifecycle = self.state.key_locks.lock(&name).await;
            self.check_name_free(&name)?;
            let backend = self.state.select_backend(backend)?;
            let mut certificate = Vec::new();
            let created = match source {
                KeySource::Generate { algorithm, piv } => {
                    let algorithm = KeyAlgorithm::from_proto(algorithm).ok_or_else(|| {
                        Status::invalid_argument(
                            "choose a key algorithm (ecdsa-p256, ecdsa-p384, ed25519, rsa-3072)",
                        )
                    })?;
                    let piv = piv_generate(piv)?;
                    self.check_slot_free(backend.name(), &piv)?;
                    backend.generate(&name, algorithm, &piv).await
                }
                KeySource::Import { pkcs8, cert } => {
                    let key = PrivateKey::from_pkcs8_der(&pkcs8)
                        .map_err(|e| Status::invalid_argument(format!("cannot import: {e}")))?;
                    drop(pkcs8);
                    if !cert.is_empty() {
                        certificate::check_matches(&cert, &key)
                            .map_err(|e| Status::invalid_argument(format!("cannot import: {e}")))?;
                        certificate = cert;
                    }
                    backend.import(&name, key).await
                }
            };
            let new = created.map_err(|e| backend_status(&e))?;
            self.record_new_key(backend, name.clone(), scope, origin, new, certificate)
                .await
        }
        .await;
        if let Ok(record) = &result {
            audit.key_id = Some(record.key_id.clone());
            audit.algorithm = Some(record.algorithm.as_str());
            tracing::info!(key = %record.name, key_id = %record.key_id, backend = %record.backend, event, "key created");
        }
        self.audit(audit, &result).await?;
        result
    }

    /// [`Self::create_key`] run to its end whether or not the caller waits for it, and
    /// counted in flight until then.
    async fn create_detached(
        &self,
        caller: PeerCredentials,
        name: String,
        backend: String,
        scope: Option<pb::KeyScope>,
        source: KeySource,
    ) -> Result<KeyRecord, Status> {
        let in_flight = InFlight::new(&self.state);
        let service = self.clone();
        run_detached(async move {
            let _in_flight = in_flight;
            service
                .create_key(&caller, name, &backend, scope, source)
                .await
        })
        .await
    }

    /// Deletes a key from its device and the inventory, under the name's lifecycle lock, and
    /// audits the outcome. The record removed is the one whose key was deleted (not whatever
    /// holds the name by then), and a key already gone is NotFound.
    async fn delete_checked(
        &self,
        caller: &PeerCredentials,
        selector: Option<pb::KeySelector>,
    ) -> Result<Arc<KeyRecord>, Status> {
        let mut audit = AuditRecord::new("delete", caller);
        let result = async {
            let found = self.resolve_for(caller, Operation::Delete, selector.as_ref())?;
            audit.key_name = Some(found.name.clone());
            audit.key_id = Some(found.key_id.clone());
            let _lifecycle = self.state.key_locks.lock(&found.name).await;
            // Another delete may have run while this one waited for the lock.
            let key = self
                .state
                .inventory
                .by_name(&found.name)
                .filter(|current| current.key_id == found.key_id)
                .ok_or_else(|| {
                    Status::not_found(format!("key {} was deleted meanwhile", shown(&found.name)))
                })?;
            self.key_backend(&key)?
                .delete(&key.device)
                .await
                .map_err(|e| backend_status(&e))?;
            let state = self.state.clone();
            let exact = key.clone();
            tokio::task::spawn_blocking(move || state.inventory.remove_exact(&exact))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::internal(format!("the key was removed from the device but the inventory could not be updated: {e}")))?;
            tracing::info!(key = %key.name, key_id = %key.key_id, "key deleted");
            Ok(key)
        }
        .await;
        self.audit(audit, &result).await?;
        result
    }

    /// A slot holding a key trustd knows is never overwritten, even with --force: the key's
    /// record would point at a key that no longer exists. Delete the key first.
    fn check_slot_free(&self, backend: &str, piv: &PivGenerate) -> Result<(), Status> {
        let Some(wanted) = &piv.slot else {
            return Ok(());
        };
        let holder = self.state.inventory.list().into_iter().find(|k| {
            k.backend == backend
                && matches!(&k.device, DeviceHandle::Piv { slot, .. } if slot == wanted)
        });
        match holder {
            Some(key) => Err(Status::already_exists(format!(
                "slot {wanted} holds trustd's key {:?}: delete that key first (`trustctl key delete {}`)",
                key.name, key.name
            ))),
            None => Ok(()),
        }
    }

    fn check_name_free(&self, name: &str) -> Result<(), Status> {
        if self.state.inventory.by_name(name).is_some() {
            return Err(Status::already_exists(format!(
                "a key named {name:?} already exists; pick another name or delete it first"
            )));
        }
        Ok(())
    }
}

/// Where a new key comes from.
enum KeySource {
    /// Generated on the device, with this (proto) algorithm and PIV options.
    Generate {
        algorithm: i32,
        piv: Option<pb::PivOptions>,
    },
    /// Imported from PKCS#8 DER (zeroized on drop), with an optional certificate (DER).
    Import {
        pkcs8: Zeroizing<Vec<u8>>,
        cert: Vec<u8>,
    },
}

fn caller<T>(request: &Request<T>) -> Result<PeerCredentials, Status> {
    request
        .extensions()
        .get::<PeerCredentials>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the connection carries no peer credentials"))
}

/// Counts a request as in flight until dropped; owned, so work that outlives its caller (a
/// key being generated for a caller who left) still counts, and shutdown waits for it.
struct InFlight(Arc<DaemonState>);

impl InFlight {
    fn new(state: &Arc<DaemonState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs a key's lifecycle work (generate, import, delete) to its end even when the caller
/// goes away (deadline, disconnect): dropping a device operation halfway would leave a key on
/// the device that the inventory does not know, unaudited.
async fn run_detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, Status>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(work)
        .await
        .map_err(|e| Status::internal(format!("key operation failed: {e}")))?
}

static DENIED_LOG: RateLimitedLog = RateLimitedLog::new(std::time::Duration::from_secs(10));

/// At most 64 characters of `text` (a name from a request), quoted and escaped, with its
/// length when cut: what a message may echo of a caller's input.
pub fn shown(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{:?}… ({} bytes)", &text[..at], text.len()),
        None => format!("{text:?}"),
    }
}

pub fn validate_key_name(name: &str) -> Result<(), Status> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "key name {} is not valid: use 1-128 letters, digits and . _ - / : @, starting with a letter or digit",
            shown(name)
        )))
    }
}

pub fn backend_status(error: &BackendError) -> Status {
    let message = error.to_string();
    match error {
        BackendError::Unavailable(_) => Status::unavailable(message),
        BackendError::Locked(_) | BackendError::Misconfigured(_) | BackendError::Unsupported(_) => {
            Status::failed_precondition(message)
        }
        BackendError::KeyMissing(_) => Status::not_found(message),
        BackendError::Busy(_) => Status::resource_exhausted(message),
        BackendError::Conflict(_) => Status::already_exists(message),
        BackendError::TouchTimeout(_) => Status::deadline_exceeded(message),
        BackendError::Device(_) => Status::internal(message),
    }
}

fn kind_proto(kind: BackendKind) -> pb::BackendKind {
    match kind {
        BackendKind::Pkcs11 => pb::BackendKind::Pkcs11,
        BackendKind::Tpm => pb::BackendKind::Tpm,
        BackendKind::Piv => pb::BackendKind::YubikeyPiv,
    }
}

/// The PIV part of a generate request, checked.
fn piv_generate(options: Option<pb::PivOptions>) -> Result<PivGenerate, Status> {
    let Some(options) = options else {
        return Ok(PivGenerate::default());
    };
    let pin_policy = match pb::PinPolicy::try_from(options.pin_policy) {
        Ok(pb::PinPolicy::Unspecified) => None,
        Ok(pb::PinPolicy::Never) => Some(PinPolicy::Never),
        Ok(pb::PinPolicy::Once) => Some(PinPolicy::Once),
        Ok(pb::PinPolicy::Always) => Some(PinPolicy::Always),
        Err(_) => return Err(Status::invalid_argument("unknown PIN policy")),
    };
    let touch_policy = match pb::TouchPolicy::try_from(options.touch_policy) {
        Ok(pb::TouchPolicy::Unspecified) => None,
        Ok(pb::TouchPolicy::Never) => Some(TouchPolicy::Never),
        Ok(pb::TouchPolicy::Always) => Some(TouchPolicy::Always),
        Ok(pb::TouchPolicy::Cached) => Some(TouchPolicy::Cached),
        Err(_) => return Err(Status::invalid_argument("unknown touch policy")),
    };
    let slot = (!options.slot.is_empty()).then(|| options.slot.to_ascii_lowercase());
    Ok(PivGenerate {
        slot,
        pin_policy,
        touch_policy,
        force: options.force,
    })
}

fn piv_slot_proto(device: &DeviceHandle) -> Option<pb::PivSlot> {
    let DeviceHandle::Piv {
        serial,
        slot,
        pin_policy,
        touch_policy,
    } = device
    else {
        return None;
    };
    Some(pb::PivSlot {
        serial: *serial,
        slot: slot.clone(),
        pin_policy: match pin_policy {
            PinPolicy::Never => pb::PinPolicy::Never,
            PinPolicy::Once => pb::PinPolicy::Once,
            PinPolicy::Always => pb::PinPolicy::Always,
        } as i32,
        touch_policy: match touch_policy {
            TouchPolicy::Never => pb::TouchPolicy::Never,
            TouchPolicy::Always => pb::TouchPolicy::Always,
            TouchPolicy::Cached => pb::TouchPolicy::Cached,
        } as i32,
    })
}

fn attestation_proto(attestation: &Attestation) -> pb::Attestation {
    match attestation {
        Attestation::Tpm(tpm) => pb::Attestation {
            evidence: Some(pb::attestation::Evidence::Tpm(pb::TpmAttestation {
                key_public_area: tpm.key_public_area.clone(),
                certify_info: tpm.certify_info.clone(),
                signature: tpm.signature.clone(),
                ak_public_area: tpm.ak_public_area.clone(),
                ek_certificate_der: tpm.ek_certificate.clone(),
            })),
        },
        Attestation::Piv(piv) => pb::Attestation {
            evidence: Some(pb::attestation::Evidence::Piv(pb::PivAttestation {
                attestation_certificate_der: piv.attestation_certificate.clone(),
                intermediate_certificate_der: piv.intermediate_certificate.clone(),
            })),
        },
    }
}

fn key_info(state: &DaemonState, record: &KeyRecord) -> pb::KeyInfo {
    let created = time::OffsetDateTime::parse(
        &record.created,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
    .map(|t| prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    });
    pb::KeyInfo {
        name: record.name.clone(),
        key_id: record.key_id.clone(),
        algorithm: record.algorithm.to_proto() as i32,
        backend: record.backend.clone(),
        backend_kind: state
            .backend(&record.backend)
            .map(|b| kind_proto(b.kind()))
            .unwrap_or(pb::BackendKind::Unspecified) as i32,
        public_key_der: record.public_key.clone(),
        scope: Some(pb::KeyScope {
            gun: record.scope.gun.clone(),
            role: record.scope.role.clone(),
        }),
        created,
        generated_on_device: record.origin == KeyOrigin::Generated,
        certificate_der: record.certificate.clone(),
        attestation: record.attestation.as_ref().map(attestation_proto),
        piv: piv_slot_proto(&record.device),
    }
}

#[tonic::async_trait]
impl pb::signer_server::Signer for SignerService {
    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let _in_flight = InFlight::new(&self.state);
        let caller = caller(&request)?;
        let policy = self.state.policy();
        if !policy.grants_any(&caller, Operation::List) {
            return Err(Status::permission_denied(format!(
                "uid {} may not list keys: no policy rule grants it",
                caller.uid
            )));
        }
        let keys = self
            .state
            .inventory
            .list()
            .iter()
            .filter(|k| {
                policy
                    .decide(&caller, Operation::List, &k.name)
                    .is_allowed()
            })
            .map(|k| key_info(&self.state, k))
            .collect();
        Ok(Response::new(pb::ListKeysResponse { keys }))
    }

    async fn generate_key(
        &self,
        request: Request<pb::GenerateKeyRequest>,
    ) -> Result<Response<pb::GenerateKeyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let source = KeySource::Generate {
            algorithm: req.algorithm,
            piv: req.piv,
        };
        let record = self
            .create_detached(caller, req.name, req.backend, req.scope, source)
            .await?;
        Ok(Response::new(pb::GenerateKeyResponse {
            key: Some(key_info(&self.state, &record)),
        }))
    }

    async fn import_key(
        &self,
        request: Request<pb::ImportKeyRequest>,
    ) -> Result<Response<pb::ImportKeyResponse>, Status> {
        let caller = caller(&request)?;
        let mut req = request.into_inner();
        let source = KeySource::Import {
            pkcs8: Zeroizing::new(std::mem::take(&mut req.pkcs8_der)),
            cert: std::mem::take(&mut req.certificate_der),
        };
        // The request zeroizes itself on drop (it carried a private key): take, not move.
        let (name, backend) = (
            std::mem::take(&mut req.name),
            std::mem::take(&mut req.backend),
        );
        let record = self
            .create_detached(caller, name, backend, req.scope.take(), source)
            .await?;
        Ok(Response::new(pb::ImportKeyResponse {
            key: Some(key_info(&self.state, &record)),
        }))
    }

    async fn get_public_key(
        &self,
        request: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::GetPublicKeyResponse>, Status> {
        let _in_flight = InFlight::new(&self.state);
        let caller = caller(&request)?;
        let key = self.resolve_for(&caller, Operation::List, request.get_ref().key.as_ref())?;
        Ok(Response::new(pb::GetPublicKeyResponse {
            key: Some(key_info(&self.state, &key)),
        }))
    }

    async fn delete_key(
        &self,
        request: Request<pb::DeleteKeyRequest>,
    ) -> Result<Response<pb::DeleteKeyResponse>, Status> {
        let in_flight = InFlight::new(&self.state);
        let caller = caller(&request)?;
        let selector = request.into_inner().key;
        let service = self.clone();
        let deleted = run_detached(async move {
            let _in_flight = in_flight;
            service.delete_checked(&caller, selector).await
        })
        .await?;
        Ok(Response::new(pb::DeleteKeyResponse {
            key: Some(key_info(&self.state, &deleted)),
        }))
    }

    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let _in_flight = InFlight::new(&self.state);
        let caller = caller(&request)?;
        let mut audit = AuditRecord::new("sign", &caller);
        let result = self
            .sign_checked(&caller, request.into_inner(), &mut audit)
            .await;
        // A signature is only handed out once its audit record is queued.
        self.audit(audit, &result).await?;
        result.map(Response::new)
    }

    async fn attest_key(
        &self,
        request: Request<pb::AttestKeyRequest>,
    ) -> Result<Response<pb::AttestKeyResponse>, Status> {
        let _in_flight = InFlight::new(&self.state);
        let caller = caller(&request)?;
        let request = request.into_inner();
        let key = self.resolve_for(&caller, Operation::List, request.key.as_ref())?;
        if !(8..=32).contains(&request.nonce.len()) {
            return Err(Status::invalid_argument(format!(
                "the nonce must have 8 to 32 bytes, not {}",
                request.nonce.len()
            )));
        }
        if key.origin != KeyOrigin::Generated {
            return Err(Status::failed_precondition(format!(
                "key {:?} was imported: no device can attest that it was generated inside it",
                key.name
            )));
        }
        let attestation = self
            .key_backend(&key)?
            .attest(&key.device, request.nonce)
            .await
            .map_err(|e| backend_status(&e))?;
        Ok(Response::new(pb::AttestKeyResponse {
            key: Some(key_info(&self.state, &key)),
            attestation: Some(attestation_proto(&attestation)),
        }))
    }

    async fn activate_credential(
        &self,
        request: Request<pb::ActivateCredentialRequest>,
    ) -> Result<Response<pb::ActivateCredentialResponse>, Status> {
        let _in_flight = InFlight::new(&self.state);
        let caller = caller(&request)?;
        if !self.state.policy().grants_any(&caller, Operation::List) {
            return Err(Status::permission_denied(format!(
                "uid {} may not challenge trustd's attestation keys: no policy rule grants `list`",
                caller.uid
            )));
        }
        let request = request.into_inner();
        let backend = self.state.backend(&request.backend).ok_or_else(|| {
            Status::not_found(format!("no backend named {}", shown(&request.backend)))
        })?;
        let credential = backend
            .activate_credential(request.credential_blob, request.encrypted_secret)
            .await
            .map_err(|e| backend_status(&e))?;
        Ok(Response::new(pb::ActivateCredentialResponse { credential }))
    }

    async fn unlock_backend(
        &self,
        request: Request<pb::UnlockBackendRequest>,
    ) -> Result<Response<pb::UnlockBackendResponse>, Status> {
        let _in_flight = InFlight::new(&self.state);
        let caller = caller(&request)?;
        let mut request = request.into_inner();
        let pin = Zeroizing::new(std::mem::take(&mut request.pin));
        let mut audit = AuditRecord::new("unlock", &caller);
        audit.key_name = Some(request.backend.clone());
        let result = async {
            self.authorize(&caller, Operation::Unlock, &request.backend)?;
            let backend = self.state.backend(&request.backend).ok_or_else(|| {
                Status::not_found(format!("no backend named {}", shown(&request.backend)))
            })?;
            backend.unlock(pin).await.map_err(|e| backend_status(&e))
        }
        .await;
        self.audit(audit, &result).await?;
        result.map(|()| Response::new(pb::UnlockBackendResponse {}))
    }

    async fn provision_piv(
        &self,
        request: Request<pb::ProvisionPivRequest>,
    ) -> Result<Response<pb::ProvisionPivResponse>, Status> {
        let _in_flight = InFlight::new(&self.state);
        let caller = caller(&request)?;
        let mut request = request.into_inner();
        let secret = |s: &mut String| Zeroizing::new(std::mem::take(s));
        let optional = |s: &mut String| (!s.is_empty()).then(|| Zeroizing::new(std::mem::take(s)));
        let provisioning = PivProvisioning {
            new_pin: secret(&mut request.new_pin),
            new_puk: secret(&mut request.new_puk),
            current_pin: optional(&mut request.current_pin),
            current_puk: optional(&mut request.current_puk),
            current_management_key: optional(&mut request.current_management_key),
            force: request.force,
        };
        let mut audit = AuditRecord::new("provision", &caller);
        audit.key_name = Some(request.backend.clone());
        let result = async {
            self.authorize(&caller, Operation::Provision, &request.backend)?;
            let backend = self.state.backend(&request.backend).ok_or_else(|| {
                Status::not_found(format!("no backend named {}", shown(&request.backend)))
            })?;
            backend
                .provision_piv(provisioning)
                .await
                .map_err(|e| backend_status(&e))
        }
        .await;
        self.audit(audit, &result).await?;
        let serial = result?;
        tracing::info!(backend = %request.backend, serial, "PIV card provisioned");
        Ok(Response::new(pb::ProvisionPivResponse { serial }))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let _in_flight = InFlight::new(&self.state);
        let caller = caller(&request)?;
        if !self.state.policy().grants_any(&caller, Operation::List) {
            return Err(Status::permission_denied(format!(
                "uid {} may not read trustd's status: no policy rule grants `list`",
                caller.uid
            )));
        }
        let mut backends = Vec::new();
        for backend in &self.state.backends {
            let status = backend.status().await;
            backends.push(pb::BackendStatus {
                name: backend.name().to_owned(),
                kind: kind_proto(backend.kind()) as i32,
                state: match status.state {
                    BackendState::Ready => pb::BackendState::Ready,
                    BackendState::Locked => pb::BackendState::Locked,
                    BackendState::Unavailable => pb::BackendState::Unavailable,
                    BackendState::Misconfigured => pb::BackendState::Misconfigured,
                } as i32,
                detail: status.detail,
                device: status.device,
                algorithms: status
                    .algorithms
                    .iter()
                    .map(|a| a.to_proto() as i32)
                    .collect(),
                queued: backend.queue_load().map_or(0, |(queued, _)| queued as u32),
                queue_depth: backend.queue_load().map_or(0, |(_, depth)| depth as u32),
            });
        }
        Ok(Response::new(pb::StatusResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            backends,
            // Not counting this Status request itself.
            requests_in_flight: self
                .state
                .in_flight
                .load(Ordering::Relaxed)
                .saturating_sub(1),
            keys: self.state.inventory.len() as u32,
            protection: Some({
                let guards = &self.state.guards;
                let (open, refused) = guards.connections.counts();
                pb::Protection {
                    connections_open: open as u32,
                    connections_refused: refused,
                    requests_refused: guards.refused_requests.load(Ordering::Relaxed),
                    buffered_bytes: guards.bytes.held() as u64,
                }
            }),
        }))
    }
}
