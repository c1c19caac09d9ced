//! Public keys as notary writes them, their IDs, and checking signatures with them.
//!
//! `{"keytype":T,"keyval":{"private":null,"public":B64}}`, where `public` is: the DER
//! SubjectPublicKeyInfo for `ecdsa` and `rsa`; the 32 raw bytes for `ed25519`; the PEM text of
//! an X.509 certificate for `ecdsa-x509` and `rsa-x509` (root keys, and signers added with a
//! certificate). The key ID is the hex SHA-256 of the key object's canonical JSON.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_cert::der::Encode;

use crate::canonical;
use crate::verify::{self, Signed, VerifyError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// The `keytype` of a Notary key object.
pub enum KeyType {
    #[serde(rename = "ecdsa")]
    /// An ECDSA key as DER SubjectPublicKeyInfo.
    Ecdsa,
    #[serde(rename = "ecdsa-x509")]
    /// An ECDSA key inside a PEM certificate (root keys, delegation keys).
    EcdsaX509,
    #[serde(rename = "rsa")]
    /// An RSA key as DER SubjectPublicKeyInfo.
    Rsa,
    #[serde(rename = "rsa-x509")]
    /// An RSA key inside a PEM certificate.
    RsaX509,
    #[serde(rename = "ed25519")]
    /// An Ed25519 key as its 32 raw bytes.
    Ed25519,
}

impl KeyType {
    /// The `keytype` string.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ecdsa => "ecdsa",
            KeyType::EcdsaX509 => "ecdsa-x509",
            KeyType::Rsa => "rsa",
            KeyType::RsaX509 => "rsa-x509",
            KeyType::Ed25519 => "ed25519",
        }
    }

    fn is_certificate(self) -> bool {
        matches!(self, KeyType::EcdsaX509 | KeyType::RsaX509)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// A key object's `keyval`.
pub struct KeyVal {
    /// Always null in published metadata; anything else is refused.
    pub private: Option<String>,
    #[serde(with = "super::encoding::base64_std")]
    /// The public part, in the encoding its key type uses.
    pub public: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// A public key as TUF metadata lists it; its ID is the hash of its canonical form.
pub struct PublicKey {
    /// How `keyval.public` is encoded.
    pub keytype: KeyType,
    /// The key material (public only: a private part is refused).
    pub keyval: KeyVal,
}

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key {0} carries private key material; refusing it")]
    PrivatePart(String),
    #[error("key {id} ({keytype}) cannot be read: {reason}")]
    Unreadable {
        id: String,
        keytype: &'static str,
        reason: String,
    },
    #[error("signature method {method:?} cannot be used with a {keytype} key")]
    MethodMismatch {
        method: String,
        keytype: &'static str,
    },
    #[error(
        "ECDSA signatures in TUF metadata are 64-byte r||s, not {0} bytes (DER is not accepted)"
    )]
    EcdsaNotRaw(usize),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

impl PublicKey {
    /// A key from its public bytes: DER SubjectPublicKeyInfo for `ecdsa`/`rsa`, the raw 32
    /// bytes for `ed25519`, PEM certificate text for the `-x509` types.
    pub fn new(keytype: KeyType, public: Vec<u8>) -> PublicKey {
        PublicKey {
            keytype,
            keyval: KeyVal {
                private: None,
                public,
            },
        }
    }

    /// The plain-form key (`ecdsa`, `rsa` or `ed25519`) of a DER SubjectPublicKeyInfo, as
    /// Notary writes it: ed25519 keys carry the 32 raw bytes, the others the DER itself.
    pub fn from_spki(keytype: KeyType, spki_der: &[u8]) -> Result<PublicKey, KeyError> {
        let unreadable = |reason: String| KeyError::Unreadable {
            id: String::new(),
            keytype: keytype.as_str(),
            reason,
        };
        match keytype {
            KeyType::Ecdsa | KeyType::Rsa => Ok(PublicKey::new(keytype, spki_der.to_vec())),
            KeyType::Ed25519 => {
                use spki::der::Decode;
                let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
                    .map_err(|e| unreadable(e.to_string()))?;
                let raw = info
                    .subject_public_key
                    .as_bytes()
                    .filter(|raw| raw.len() == 32)
                    .ok_or_else(|| unreadable("the Ed25519 key is not 32 bytes".into()))?;
                Ok(PublicKey::new(keytype, raw.to_vec()))
            }
            KeyType::EcdsaX509 | KeyType::RsaX509 => Err(unreadable(
                "a certificate key is made from a certificate, not a bare public key".into(),
            )),
        }
    }

    /// The key ID: hex SHA-256 of the canonical JSON of the key object.
    pub fn id(&self) -> String {
        let value = serde_json::to_value(self).expect("keys serialize");
        let canonical = canonical::to_vec(&value).expect("keys are canonical-safe");
        hex::encode(Sha256::digest(canonical))
    }

    /// The DER SubjectPublicKeyInfo that verifies this key's signatures.
    pub fn spki_der(&self) -> Result<Vec<u8>, KeyError> {
        if self.keyval.private.is_some() {
            return Err(KeyError::PrivatePart(self.id()));
        }
        let unreadable = |reason: String| KeyError::Unreadable {
            id: self.id(),
            keytype: self.keytype.as_str(),
            reason,
        };
        match self.keytype {
            KeyType::Ecdsa | KeyType::Rsa => Ok(self.keyval.public.clone()),
            KeyType::Ed25519 => {
                use ed25519_dalek::pkcs8::EncodePublicKey;
                let raw: [u8; 32] = self.keyval.public.as_slice().try_into().map_err(|_| {
                    unreadable(format!("{} bytes, not 32", self.keyval.public.len()))
                })?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map_err(|e| unreadable(e.to_string()))?;
                Ok(key
                    .to_public_key_der()
                    .map_err(|e| unreadable(e.to_string()))?
                    .into_vec())
            }
            KeyType::EcdsaX509 | KeyType::RsaX509 => {
                let cert = self.certificate().map_err(unreadable)?;
                cert.tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(|e| unreadable(e.to_string()))
            }
        }
    }

    /// The X.509 certificate of an `ecdsa-x509`/`rsa-x509` key.
    pub fn certificate(&self) -> Result<x509_cert::Certificate, String> {
        if !self.keytype.is_certificate() {
            return Err(format!(
                "a {} key has no certificate",
                self.keytype.as_str()
            ));
        }
        crate::certificate::from_pem(&self.keyval.public)
    }

    /// The ID notary shows as the "canonical" one for a certificate key: the same formula over
    /// the plain key form of the certificate's public key.
    pub fn canonical_id(&self) -> Result<String, KeyError> {
        let plain = match self.keytype {
            KeyType::EcdsaX509 => KeyType::Ecdsa,
            KeyType::RsaX509 => KeyType::Rsa,
            other => other,
        };
        if plain == self.keytype {
            return Ok(self.id());
        }
        Ok(PublicKey::new(plain, self.spki_der()?).id())
    }

    /// Checks a TUF signature (`method`) over `message` (the canonical `signed` bytes).
    pub fn verify(&self, method: &str, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let compatible = matches!(
            (method, self.keytype),
            ("ecdsa", KeyType::Ecdsa | KeyType::EcdsaX509)
                | ("eddsa", KeyType::Ed25519)
                | ("rsapss", KeyType::Rsa | KeyType::RsaX509)
        );
        if !compatible {
            return Err(KeyError::MethodMismatch {
                method: method.to_owned(),
                keytype: self.keytype.as_str(),
            });
        }
        if method == "ecdsa" && signature.len() != 64 {
            return Err(KeyError::EcdsaNotRaw(signature.len()));
        }
        verify::verify(&self.spki_der()?, Signed::Message(message), signature)?;
        Ok(())
    }
}
