//! Signing: the request checked against the key, and the exact input the device signs.

use sha2::{Digest, Sha256};

use super::{KeySelector, KeyService, ServiceError};
use crate::algorithm::{self, SignatureAlgorithm};
use crate::audit::AuditRecord;
use crate::backend::SignInput;
use crate::front::Caller;
use crate::policy::Operation;

/// What the caller sends to be signed.
pub enum Payload {
    /// The message itself (at most `limits.max_payload_bytes`).
    Message(Vec<u8>),
    /// A SHA-256 digest the caller computed (length not yet checked).
    Sha256Digest(Vec<u8>),
    /// A SHA-384 digest the caller computed (length not yet checked).
    Sha384Digest(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// Fixed-width r||s for ECDSA; the algorithm's own format otherwise.
    Raw,
    /// ASN.1 DER, for ECDSA only.
    Der,
}

/// A sign request; `None` fields are what the caller left out or sent in a form trustd does
/// not know, refused in the order a caller is best told about them.
pub struct SignRequest {
    pub key: Option<KeySelector>,
    pub algorithm: Option<SignatureAlgorithm>,
    pub encoding: Option<SignatureEncoding>,
    pub payload: Option<Payload>,
}

pub struct Signature {
    pub bytes: Vec<u8>,
    pub key_id: String,
    pub algorithm: SignatureAlgorithm,
    pub encoding: SignatureEncoding,
}

impl KeyService {
    /// Signs, noting in `audit` what was asked (the payload's hash first, so even a refused
    /// request is traceable) and with which key.
    pub async fn sign(
        &self,
        caller: &Caller,
        request: SignRequest,
        audit: &mut AuditRecord,
    ) -> Result<Signature, ServiceError> {
        let (input_digest, payload_bytes) = match &request.payload {
            Some(Payload::Message(m)) => (Some(<[u8; 32]>::from(Sha256::digest(m))), Some(m.len())),
            Some(Payload::Sha256Digest(d)) => (<[u8; 32]>::try_from(d.as_slice()).ok(), None),
            Some(Payload::Sha384Digest(d)) => {
                audit.payload_sha384 = (d.len() == 48).then(|| hex::encode(d));
                (None, None)
            }
            None => (None, None),
        };
        audit.payload_sha256 = input_digest.map(hex::encode);
        audit.payload_bytes = payload_bytes;
        let key = match self.resolve_for(caller, Operation::Sign, request.key.as_ref()) {
            Ok(key) => key,
            Err(error) => {
                // Record what the caller asked for (when it could be a key's name or ID: the
                // trail is no place for arbitrary input), even though it was refused.
                if let Some(KeySelector::Name(n) | KeySelector::KeyId(n)) = &request.key {
                    audit.key_name = super::validate_key_name(n).is_ok().then(|| n.clone());
                }
                return Err(error);
            }
        };
        audit.key_name = Some(key.name.clone());
        audit.key_id = Some(key.key_id.clone());
        audit.backend = Some(key.backend.clone());
        if self.state.audit_checkpoint_key.as_deref() == Some(key.name.as_str()) {
            // A caller's signature from this key could pass for a checkpoint.
            return Err(ServiceError::Denied(format!(
                "key {:?} signs trustd's audit checkpoints and nothing else",
                key.name
            )));
        }

        let wanted = request.algorithm.ok_or_else(|| {
            ServiceError::InvalidRequest(format!(
                "set the signature algorithm; key {:?} makes {} signatures",
                key.name,
                key.algorithm.signature_algorithm().as_str()
            ))
        })?;
        audit.algorithm = Some(wanted.as_str());
        let natural = key.algorithm.signature_algorithm();
        if wanted != natural {
            return Err(ServiceError::InvalidRequest(format!(
                "key {:?} is {} and cannot make {} signatures (it makes {})",
                key.name,
                key.algorithm.as_str(),
                wanted.as_str(),
                natural.as_str()
            )));
        }
        let encoding = match request.encoding {
            Some(SignatureEncoding::Raw) => SignatureEncoding::Raw,
            Some(SignatureEncoding::Der) if wanted.is_ecdsa() => SignatureEncoding::Der,
            Some(SignatureEncoding::Der) => {
                return Err(ServiceError::InvalidRequest(format!(
                    "DER encoding applies to ECDSA signatures only, not {}",
                    wanted.as_str()
                )))
            }
            None => {
                return Err(ServiceError::InvalidRequest(
                    "unknown signature encoding".into(),
                ))
            }
        };
        let input = self.sign_input(wanted, request.payload, input_digest)?;
        let bytes = self.device_sign(&key, input, encoding).await?;
        Ok(Signature {
            bytes,
            key_id: key.key_id.clone(),
            algorithm: wanted,
            encoding,
        })
    }

    /// Signs an audit checkpoint's statement with the checkpoint key: trustd's own signature,
    /// asked by no caller. ECDSA signatures are DER, as openssl and cosign-style tools read them.
    pub async fn sign_checkpoint(
        &self,
        key_name: &str,
        statement: &[u8],
    ) -> Result<(std::sync::Arc<crate::inventory::KeyRecord>, Vec<u8>), ServiceError> {
        let key = self.state.inventory.by_name(key_name).ok_or_else(|| {
            ServiceError::NotFound(format!(
                "the audit checkpoint key {key_name:?} does not exist: create it with `trustctl key generate {key_name}`"
            ))
        })?;
        let algorithm = key.algorithm.signature_algorithm();
        let digest = <[u8; 32]>::from(Sha256::digest(statement));
        let input = self.sign_input(
            algorithm,
            Some(Payload::Message(statement.to_vec())),
            Some(digest),
        )?;
        let encoding = if algorithm.is_ecdsa() {
            SignatureEncoding::Der
        } else {
            SignatureEncoding::Raw
        };
        let signature = self.device_sign(&key, input, encoding).await?;
        Ok((key, signature))
    }

    /// Has the key's device sign `input`, once the audit trail can take the record, and
    /// encodes the signature.
    async fn device_sign(
        &self,
        key: &crate::inventory::KeyRecord,
        input: SignInput,
        encoding: SignatureEncoding,
    ) -> Result<Vec<u8>, ServiceError> {
        self.state.audit.check_healthy()?;
        let backend = self.key_backend(key)?;
        // No clock read on the sign path unless metrics are on.
        let started = crate::metrics::enabled().then(std::time::Instant::now);
        let signed = backend.sign(&key.device, key.algorithm, input).await;
        if let Some(started) = started {
            crate::metrics::sign_timed(backend.name(), started.elapsed());
        }
        let raw = signed?;
        match encoding {
            SignatureEncoding::Der => {
                algorithm::ecdsa_raw_to_der(&raw).map_err(ServiceError::Internal)
            }
            SignatureEncoding::Raw => Ok(raw),
        }
    }

    /// What the device signs: the digest its algorithm wants, or the whole message.
    fn sign_input(
        &self,
        wanted: SignatureAlgorithm,
        payload: Option<Payload>,
        message_sha256: Option<[u8; 32]>,
    ) -> Result<SignInput, ServiceError> {
        let digest_length = |digest: &[u8], want: usize, name: &str| {
            if digest.len() == want {
                Ok(())
            } else {
                Err(ServiceError::InvalidRequest(format!(
                    "a {name} digest has {want} bytes, not {}",
                    digest.len()
                )))
            }
        };
        let wrong_digest = |sent: &str| {
            ServiceError::InvalidRequest(match wanted {
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
            None => Err(ServiceError::InvalidRequest(
                "nothing to sign: send a message or a digest".into(),
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
                    return Err(ServiceError::InvalidRequest(format!(
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
}
