//! The keys notary-server keeps in trustd (through notary-signer's API): named and scoped by
//! GUN and role, found by Notary key ID, signing the canonical JSON it sends.
//!
//! notary-server names keys only by key ID and asks for one per GUN and role whenever it has
//! none; trustd names them `notary/<gun>/<role>/<random>` so the policy can grant
//! notary-server exactly its own keys (`keys = ["notary/*"]`) and the inventory shows what each
//! key is for.

use std::sync::Arc;

use super::{
    KeySelector, KeyService, KeySource, NewKeyRequest, Payload, ServiceError, SignRequest,
};
use super::{Signature, SignatureEncoding};
use crate::algorithm::KeyAlgorithm;
use crate::audit::AuditRecord;
use crate::backend::GenerateOptions;
use crate::front::Caller;
use crate::inventory::{KeyRecord, KeyScope};
use crate::policy::Operation;

/// Where the names of notary-server's keys start.
const NOTARY_KEY_PREFIX: &str = "notary/";

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

    /// The key with Notary key ID `key_id`, if the caller may do `op` with it.
    pub fn notary_key(
        &self,
        caller: &Caller,
        op: Operation,
        key_id: &str,
    ) -> Result<Arc<KeyRecord>, ServiceError> {
        self.resolve_for(caller, op, Some(&KeySelector::KeyId(key_id.to_owned())))
    }

    /// Signs `content` (canonical JSON) with the key `key_id` in the key's own scheme: ECDSA
    /// over SHA-256 as fixed-width r||s, Ed25519 over the message.
    pub async fn sign_for_notary(
        &self,
        caller: &Caller,
        key_id: &str,
        content: Vec<u8>,
        audit: &mut AuditRecord,
    ) -> Result<(Arc<KeyRecord>, Signature), ServiceError> {
        let key = self.notary_key(caller, Operation::Sign, key_id)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
