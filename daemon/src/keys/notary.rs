//! The keys notary-server keeps in trustd (through notary-signer's API): named and scoped by
//! GUN and role, found by Notary key ID, signing the canonical JSON it sends.
//!
//! notary-server names keys only by key ID and asks for one per GUN and role whenever it has
//! none; trustd names them `notary/<gun>/<role>/<random>` (also their label on the device) so
//! the policy can grant notary-server exactly its own keys (`keys = ["notary/*"]`) and the
//! inventory shows what each key is for.
//!
//! Several trustd may serve one network HSM behind a load balancer: a key ID this trustd does
//! not know may be a key another one generated on the shared token. It is looked for there
//! (by label, its public key compared by key ID), recorded, and used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    KeySelector, KeyService, KeySource, NewKeyRequest, Payload, ServiceError, SignRequest,
};
use super::{Signature, SignatureEncoding};
use crate::algorithm::KeyAlgorithm;
use crate::audit::AuditRecord;
use crate::backend::GenerateOptions;
use crate::front::Caller;
use crate::inventory::{KeyOrigin, KeyRecord, KeyScope};
use crate::policy::Operation;

/// Where the names of notary-server's keys start.
const NOTARY_KEY_PREFIX: &str = "notary/";
/// Shared-token scans run at most this often: a caller asking for unknown key IDs in a loop
/// cannot keep the token busy listing objects.
const SCAN_INTERVAL: Duration = Duration::from_millis(200);
/// Keys looked at in one scan.
const SCAN_LIMIT: usize = 100_000;

/// The key algorithm notary-server asks for (its `trust_service.key_algorithm`).
pub fn notary_algorithm(name: &str) -> Result<KeyAlgorithm, ServiceError> {
    match name {
        "ecdsa" => Ok(KeyAlgorithm::EcdsaP256),
        "ed25519" => Ok(KeyAlgorithm::Ed25519),
        "rsa" => Err(ServiceError::InvalidRequest(
            "trustd's notary-signer makes ecdsa (P-256) and ed25519 keys, not rsa: set trust_service.key_algorithm to \"ecdsa\" in notary-server's config".into(),
        )),
        other => Err(ServiceError::InvalidRequest(format!(
            "unknown key algorithm {}: notary-server asks for \"ecdsa\" or \"ed25519\"",
            super::shown(other)
        ))),
    }
}

impl KeyService {
    /// Generates a key for `role` of repository `gun` on `backend`, as notary-server's
    /// CreateKey asks.
    pub async fn create_notary_key(
        &self,
        caller: &Caller,
        backend: &str,
        algorithm: KeyAlgorithm,
        scope: KeyScope,
        audit: &mut AuditRecord,
    ) -> Result<KeyRecord, ServiceError> {
        if scope.gun.is_empty() || scope.role.is_empty() {
            return Err(ServiceError::InvalidRequest(
                "CreateKey needs the repository (gun) and the role the key is for".into(),
            ));
        }
        let suffix: [u8; 4] = rand::random();
        let name = format!(
            "{NOTARY_KEY_PREFIX}{}/{}/{}",
            scope.gun,
            scope.role,
            hex::encode(suffix)
        );
        self.create(
            caller,
            NewKeyRequest {
                name,
                backend: backend.to_owned(),
                scope,
                source: KeySource::Generate {
                    algorithm: Some(algorithm),
                    options: GenerateOptions::default(),
                },
            },
            audit,
        )
        .await
    }

    /// The key with Notary key ID `key_id`, if the caller may do `op` with it; a key another
    /// trustd made on `backend` (a shared token) is found and recorded.
    pub async fn notary_key(
        &self,
        caller: &Caller,
        op: Operation,
        key_id: &str,
        backend: &str,
    ) -> Result<Arc<KeyRecord>, ServiceError> {
        let selector = KeySelector::KeyId(key_id.to_owned());
        match self.resolve_for(caller, op, Some(&selector)) {
            Err(ServiceError::NotFound(message)) => {
                if self.adopt_shared_key(key_id, backend).await? {
                    self.resolve_for(caller, op, Some(&selector))
                } else {
                    Err(ServiceError::NotFound(message))
                }
            }
            other => other,
        }
    }

    /// Looks on `backend`'s device for a notary key with ID `key_id` that another trustd
    /// generated, and records it; true when found.
    async fn adopt_shared_key(&self, key_id: &str, backend: &str) -> Result<bool, ServiceError> {
        let backend = self.select_backend(backend)?;
        let Some(discovery) = backend.key_discovery() else {
            return Ok(false);
        };
        let key_id = key_id.to_ascii_lowercase();
        let mut last_scan = self.state.guards.key_scan.lock().await;
        // Another request may have found it while this one waited.
        if self.state.inventory.by_key_id(&key_id).is_some() {
            return Ok(true);
        }
        if last_scan.is_some_and(|at| at.elapsed() < SCAN_INTERVAL) {
            return Ok(false);
        }
        let found = discovery.find_keys(NOTARY_KEY_PREFIX, SCAN_LIMIT).await;
        *last_scan = Some(Instant::now());
        let found = found?;
        let Some((label, key)) = found.into_iter().find(|(_, key)| {
            crate::algorithm::notary_key_id(key.algorithm, &key.public_key).as_deref()
                == Ok(key_id.as_str())
        }) else {
            return Ok(false);
        };
        let Some(scope) = scope_of(&label) else {
            return Ok(false);
        };
        super::validate_key_name(&label)?;
        let record = KeyRecord {
            name: label,
            key_id,
            algorithm: key.algorithm,
            backend: backend.name().to_owned(),
            device: key.device,
            public_key: key.public_key,
            scope,
            origin: KeyOrigin::Generated,
            created: crate::time::now_rfc3339(),
            certificate: Vec::new(),
            attestation: None,
        };
        tracing::info!(key = %record.name, key_id = %record.key_id, backend = %record.backend, "found a key another trustd generated on the shared token; recording it");
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.inventory.insert(record))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(format!("cannot record the key: {e}")))?;
        Ok(true)
    }

    /// Signs `content` (canonical JSON) with the key `key_id` in the key's own scheme: ECDSA
    /// over SHA-256 as fixed-width r||s, Ed25519 over the message.
    pub async fn sign_for_notary(
        &self,
        caller: &Caller,
        backend: &str,
        key_id: &str,
        content: Vec<u8>,
        audit: &mut AuditRecord,
    ) -> Result<(Arc<KeyRecord>, Signature), ServiceError> {
        let key = self
            .notary_key(caller, Operation::Sign, key_id, backend)
            .await?;
        let request = SignRequest {
            key: Some(KeySelector::Name(key.name.clone())),
            algorithm: Some(key.algorithm.signature_algorithm()),
            encoding: Some(SignatureEncoding::Raw),
            payload: Some(Payload::Message(content)),
        };
        let signature = self.sign(caller, request, audit).await?;
        Ok((key, signature))
    }
}

/// The GUN and role a notary key's name (`notary/<gun>/<role>/<suffix>`) says it serves.
fn scope_of(name: &str) -> Option<KeyScope> {
    let rest = name.strip_prefix(NOTARY_KEY_PREFIX)?;
    let (rest, _suffix) = rest.rsplit_once('/')?;
    let (gun, role) = rest.rsplit_once('/')?;
    (!gun.is_empty() && !role.is_empty()).then(|| KeyScope {
        gun: gun.to_owned(),
        role: role.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notary_key_name_gives_its_gun_and_role() {
        let scope =
            scope_of("notary/registry.example.com:5000/team/app/timestamp/0a1b2c3d").unwrap();
        assert_eq!(scope.gun, "registry.example.com:5000/team/app");
        assert_eq!(scope.role, "timestamp");
        assert!(scope_of("notary/timestamp/0a1b").is_none());
        assert!(scope_of("ci-release").is_none());
    }

    #[test]
    fn notary_algorithms_map_to_key_algorithms_and_rsa_says_what_to_do() {
        assert_eq!(notary_algorithm("ecdsa").unwrap(), KeyAlgorithm::EcdsaP256);
        assert_eq!(notary_algorithm("ed25519").unwrap(), KeyAlgorithm::Ed25519);
        let rsa = notary_algorithm("rsa").unwrap_err().to_string();
        assert!(rsa.contains("key_algorithm"), "{rsa}");
        assert!(matches!(
            notary_algorithm("ecdsa-x509"),
            Err(ServiceError::InvalidRequest(_))
        ));
    }
}
