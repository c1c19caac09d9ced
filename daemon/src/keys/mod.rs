//! The key service: what trustd does with keys, whoever asks and however they ask.
//!
//! Generate, import and delete run under the key name's lifecycle lock with one rule: no key
//! exists on a device that the inventory does not record (a key whose record cannot be written
//! is removed from the device again). Sign checks the request against the key and hands the
//! device exactly what it signs. Everything here is authorized by `policy` on a `Caller` and
//! returns a [`ServiceError`]; the front ends' handlers (`rpc`) translate requests and errors.

mod access;
mod error;
mod names;
mod notary;
mod sign;

use std::sync::Arc;

pub use error::ServiceError;
pub use names::{shown, validate_key_name};
pub use notary::notary_algorithm;
pub use sign::{Payload, SignRequest, Signature, SignatureEncoding};

use crate::algorithm::{self, KeyAlgorithm};
use crate::audit::AuditRecord;
use crate::backend::{Backend, GenerateOptions, NewKey};
use crate::certificate;
use crate::front::Caller;
use crate::inventory::{DeviceHandle, InventoryError, KeyOrigin, KeyRecord, KeyScope};
use crate::policy::Operation;
use crate::private_key::PrivateKey;
use crate::state::DaemonState;

/// How a request names a key.
#[derive(Debug, Clone)]
pub enum KeySelector {
    Name(String),
    KeyId(String),
}

/// Where a new key comes from.
pub enum KeySource {
    /// Generated on the device; `None` when the request named no algorithm trustd knows.
    Generate {
        algorithm: Option<KeyAlgorithm>,
        options: GenerateOptions,
    },
    /// Imported from PKCS#8 DER (zeroized on drop), with an optional certificate (DER).
    Import {
        pkcs8: zeroize::Zeroizing<Vec<u8>>,
        certificate: Vec<u8>,
    },
}

/// A key to create: its name, the backend asked for (name, kind or empty for the first), the
/// GUN and role it serves, and where it comes from.
pub struct NewKeyRequest {
    pub name: String,
    pub backend: String,
    pub scope: KeyScope,
    pub source: KeySource,
}

#[derive(Clone)]
pub struct KeyService {
    state: Arc<DaemonState>,
}

impl KeyService {
    pub fn new(state: Arc<DaemonState>) -> Self {
        KeyService { state }
    }

    pub fn state(&self) -> &Arc<DaemonState> {
        &self.state
    }

    /// Backend by name or kind ("pkcs11"); the first configured one when `wanted` is empty.
    pub fn select_backend(&self, wanted: &str) -> Result<&Arc<dyn Backend>, ServiceError> {
        let backends = &self.state.backends;
        if backends.is_empty() {
            return Err(ServiceError::NotPossible(
                "no backends are configured: add a [[backend]] section to trustd's config".into(),
            ));
        }
        if wanted.is_empty() {
            return Ok(&backends[0]);
        }
        backends
            .iter()
            .find(|b| b.name() == wanted)
            .or_else(|| backends.iter().find(|b| b.kind().as_str() == wanted))
            .ok_or_else(|| {
                let configured = backends
                    .iter()
                    .map(|b| b.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                ServiceError::NotFound(format!(
                    "no backend named {}; configured: {configured}",
                    shown(wanted)
                ))
            })
    }

    /// The configured backend called exactly `name` (no kind, no default).
    pub fn named_backend(&self, name: &str) -> Result<&Arc<dyn Backend>, ServiceError> {
        self.state
            .backend(name)
            .ok_or_else(|| ServiceError::NotFound(format!("no backend named {}", shown(name))))
    }

    /// The backend holding `key`.
    pub fn key_backend(&self, key: &KeyRecord) -> Result<&Arc<dyn Backend>, ServiceError> {
        self.state.backend(&key.backend).ok_or_else(|| {
            ServiceError::NotPossible(format!(
                "key {:?} lives on backend {:?}, which is not in trustd's config any more",
                key.name, key.backend
            ))
        })
    }

    /// Generates or imports a key and records it, noting in `audit` what was created.
    pub async fn create(
        &self,
        caller: &Caller,
        request: NewKeyRequest,
        audit: &mut AuditRecord,
    ) -> Result<KeyRecord, ServiceError> {
        let NewKeyRequest {
            name,
            backend,
            scope,
            source,
        } = request;
        let (operation, origin) = match &source {
            KeySource::Generate { .. } => (Operation::Generate, KeyOrigin::Generated),
            KeySource::Import { .. } => (Operation::Import, KeyOrigin::Imported),
        };
        validate_key_name(&name)?;
        audit.key_name = Some(name.clone());
        self.authorize(caller, operation, &name)?;
        let _lifecycle = self.state.key_locks.lock(&name).await;
        self.check_name_free(&name)?;
        let backend = self.select_backend(&backend)?;
        audit.backend = Some(backend.name().to_owned());
        let mut certificate = Vec::new();
        let created = match source {
            KeySource::Generate { algorithm, options } => {
                let algorithm = algorithm.ok_or_else(|| {
                    ServiceError::InvalidRequest(
                        "choose a key algorithm (ecdsa-p256, ecdsa-p384, ed25519, rsa-3072)".into(),
                    )
                })?;
                self.check_slot_free(backend.name(), &options)?;
                backend.generate(&name, algorithm, &options).await
            }
            KeySource::Import {
                pkcs8,
                certificate: cert,
            } => {
                let key = PrivateKey::from_pkcs8_der(&pkcs8)
                    .map_err(|e| ServiceError::InvalidRequest(format!("cannot import: {e}")))?;
                drop(pkcs8);
                if !cert.is_empty() {
                    certificate::check_matches(&cert, &key)
                        .map_err(|e| ServiceError::InvalidRequest(format!("cannot import: {e}")))?;
                    certificate = cert;
                }
                backend.import(&name, key).await
            }
        };
        let record = self
            .record_new_key(backend, name, scope, origin, created?, certificate)
            .await?;
        audit.key_id = Some(record.key_id.clone());
        audit.algorithm = Some(record.algorithm.as_str());
        tracing::info!(key = %record.name, key_id = %record.key_id, backend = %record.backend, event = audit.event, "key created");
        Ok(record)
    }

    /// Records a key the backend just created; removes it from the device again if the
    /// inventory cannot be written, so no key exists that trustd does not know about.
    async fn record_new_key(
        &self,
        backend: &Arc<dyn Backend>,
        name: String,
        scope: KeyScope,
        origin: KeyOrigin,
        new: NewKey,
        certificate: Vec<u8>,
    ) -> Result<KeyRecord, ServiceError> {
        let key_id = algorithm::notary_key_id(new.algorithm, &new.public_key)
            .map_err(|e| ServiceError::Internal(format!("cannot compute the key ID: {e}")))?;
        let record = KeyRecord {
            name,
            key_id,
            algorithm: new.algorithm,
            backend: backend.name().to_owned(),
            device: new.device.clone(),
            public_key: new.public_key,
            scope,
            origin,
            created: crate::time::now_rfc3339(),
            certificate,
            attestation: new.attestation,
        };
        let state = self.state.clone();
        let to_insert = record.clone();
        let inserted = tokio::task::spawn_blocking(move || state.inventory.insert(to_insert))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        if let Err(error) = inserted {
            let rollback = backend.delete(&new.device).await;
            if let Err(rollback_error) = &rollback {
                tracing::error!(%rollback_error, "could not remove an unrecorded key from the device");
            }
            return Err(match error {
                InventoryError::NameTaken(name) => {
                    ServiceError::AlreadyExists(format!("a key named {name:?} already exists"))
                }
                other => ServiceError::Internal(format!(
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

    /// Deletes a key from its device and the inventory, under the name's lifecycle lock. The
    /// record removed is the one whose key was deleted (not whatever holds the name by then),
    /// and a key already gone is NotFound.
    pub async fn delete(
        &self,
        caller: &Caller,
        selector: Option<&KeySelector>,
        audit: &mut AuditRecord,
    ) -> Result<Arc<KeyRecord>, ServiceError> {
        let found = self.resolve_for(caller, Operation::Delete, selector)?;
        audit.key_name = Some(found.name.clone());
        audit.key_id = Some(found.key_id.clone());
        audit.backend = Some(found.backend.clone());
        let _lifecycle = self.state.key_locks.lock(&found.name).await;
        // Another delete may have run while this one waited for the lock.
        let key = self
            .state
            .inventory
            .by_name(&found.name)
            .filter(|current| current.key_id == found.key_id)
            .ok_or_else(|| {
                ServiceError::NotFound(format!("key {} was deleted meanwhile", shown(&found.name)))
            })?;
        self.key_backend(&key)?.delete(&key.device).await?;
        let state = self.state.clone();
        let exact = key.clone();
        tokio::task::spawn_blocking(move || state.inventory.remove_exact(&exact))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(format!("the key was removed from the device but the inventory could not be updated: {e}")))?;
        tracing::info!(key = %key.name, key_id = %key.key_id, "key deleted");
        Ok(key)
    }

    /// A slot holding a key trustd knows is never overwritten, even with --force: the key's
    /// record would point at a key that no longer exists. Delete the key first.
    fn check_slot_free(&self, backend: &str, piv: &GenerateOptions) -> Result<(), ServiceError> {
        let Some(wanted) = &piv.slot else {
            return Ok(());
        };
        let holder = self.state.inventory.list().into_iter().find(|k| {
            k.backend == backend
                && matches!(&k.device, DeviceHandle::Piv { slot, .. } if slot == wanted)
        });
        match holder {
            Some(key) => Err(ServiceError::AlreadyExists(format!(
                "slot {wanted} holds trustd's key {:?}: delete that key first (`trustctl key delete {}`)",
                key.name, key.name
            ))),
            None => Ok(()),
        }
    }

    fn check_name_free(&self, name: &str) -> Result<(), ServiceError> {
        if self.state.inventory.by_name(name).is_some() {
            return Err(ServiceError::AlreadyExists(format!(
                "a key named {name:?} already exists; pick another name or delete it first"
            )));
        }
        Ok(())
    }
}
