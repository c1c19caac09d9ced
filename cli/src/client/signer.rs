//! Signing TUF roles and root certificates with keys held by trustd: the Notary library's
//! [`RoleSigner`] over trustd's gRPC API.
//!
//! trustctl only ever sends trustd the bytes to sign (the canonical role body, or the DER
//! TBSCertificate) and gets a signature back; the private keys stay on their devices.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use trustd_proto as pb;

use super::{self as client, Client};
use crate::error::CliError;
use trustd_notary::envelope::Signature;
use trustd_notary::keys::{KeyType, PublicKey};
use trustd_notary::publish::{HeldKey, RoleSigner, SignerError};

/// Signs with keys in trustd; remembers each key's public information for its lifetime so a
/// publish asks trustd about a key once, not once per signature.
pub struct TrustdSigner {
    client: Client,
    keys: HashMap<String, pb::KeyInfo>,
}

/// The TUF signature method and trustd algorithm for a key.
fn method_of(algorithm: i32) -> Result<(&'static str, pb::SignatureAlgorithm), CliError> {
    let signature = client::signature_algorithm(algorithm)
        .ok_or_else(|| CliError::Failed("trustd reported an unknown key algorithm".into()))?;
    let method = match signature {
        pb::SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa",
        pb::SignatureAlgorithm::Ed25519 => "eddsa",
        pb::SignatureAlgorithm::RsaPssSha256 => "rsapss",
        _ => return Err(CliError::Usage(
            "Notary v1 trust data takes ECDSA P-256, Ed25519 and RSA keys: this key cannot sign it"
                .into(),
        )),
    };
    Ok((method, signature))
}

impl TrustdSigner {
    pub fn new(client: Client) -> TrustdSigner {
        TrustdSigner {
            client,
            keys: HashMap::new(),
        }
    }

    pub async fn key(&mut self, name: &str) -> Result<pb::KeyInfo, CliError> {
        if let Some(info) = self.keys.get(name) {
            return Ok(info.clone());
        }
        let info = client::key_info(&mut self.client, name).await?;
        self.keys.insert(name.to_owned(), info.clone());
        Ok(info)
    }

    /// Which of `keyids` (looked up in `keys`) trustd holds: (trustd name, listed key ID)
    /// for each, in the order listed.
    pub async fn keys_in_trustd(
        &mut self,
        keys: &BTreeMap<String, PublicKey>,
        keyids: &[String],
    ) -> Result<Vec<(String, String)>, CliError> {
        let mut found = Vec::new();
        for keyid in keyids {
            let Some(key) = keys.get(keyid) else {
                continue;
            };
            let Ok(trustd_id) = key.canonical_id() else {
                continue;
            };
            let request = pb::GetPublicKeyRequest {
                key: Some(pb::KeySelector {
                    selector: Some(pb::key_selector::Selector::KeyId(trustd_id)),
                }),
            };
            match self.client.get_public_key(request).await {
                Ok(response) => {
                    let info = response
                        .into_inner()
                        .key
                        .ok_or_else(|| CliError::Failed("trustd returned no key".into()))?;
                    let name = info.name.clone();
                    self.keys.insert(name.clone(), info);
                    found.push((name, keyid.clone()));
                }
                Err(status) if status.code() == tonic::Code::NotFound => continue,
                Err(status) => return Err(CliError::from_status("cannot look up a key", status)),
            }
        }
        Ok(found)
    }

    /// The key as it appears in TUF metadata (plain form: `ecdsa`, `ed25519`, `rsa`).
    pub async fn tuf_key(&mut self, name: &str) -> Result<PublicKey, CliError> {
        let info = self.key(name).await?;
        let (method, _) = method_of(info.algorithm)?;
        Ok(match method {
            "ecdsa" => PublicKey::new(KeyType::Ecdsa, info.public_key_der),
            "rsapss" => PublicKey::new(KeyType::Rsa, info.public_key_der),
            _ => {
                use spki::der::Decode;
                let spki = spki::SubjectPublicKeyInfoRef::from_der(&info.public_key_der)
                    .map_err(|e| CliError::Failed(format!("trustd sent a bad public key: {e}")))?;
                PublicKey::new(
                    KeyType::Ed25519,
                    spki.subject_public_key.raw_bytes().to_vec(),
                )
            }
        })
    }

    async fn sign_bytes(
        &mut self,
        name: &str,
        algorithm: pb::SignatureAlgorithm,
        encoding: pb::SignatureEncoding,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, CliError> {
        Ok(self
            .client
            .sign(pb::SignRequest {
                key: client::key_selector(name),
                algorithm: algorithm as i32,
                encoding: encoding as i32,
                payload: Some(pb::sign_request::Payload::Message(message)),
            })
            .await
            .map_err(|s| CliError::from_status(&format!("cannot sign with {name:?}"), s))?
            .into_inner()
            .signature)
    }

    /// Signs a role's canonical body with the trustd key `name`, listed in the role as
    /// `keyid`.
    pub async fn sign_canonical(
        &mut self,
        name: &str,
        keyid: &str,
        canonical_body: &[u8],
    ) -> Result<Signature, CliError> {
        let info = self.key(name).await?;
        let (method, algorithm) = method_of(info.algorithm)?;
        client::announce_touch(&info);
        let sig = self
            .sign_bytes(
                name,
                algorithm,
                pb::SignatureEncoding::Raw,
                canonical_body.to_vec(),
            )
            .await?;
        Ok(Signature {
            keyid: keyid.to_owned(),
            method: method.to_owned(),
            sig,
        })
    }

    /// An ECDSA P-256 signature (DER) over `message` with the trustd key `name`: the form
    /// cosign and X.509 use.
    pub async fn sign_ecdsa_der(
        &mut self,
        name: &str,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, CliError> {
        let info = self.key(name).await?;
        if info.algorithm != pb::KeyAlgorithm::EcdsaP256 as i32 {
            return Err(CliError::Usage(format!(
                "key {name:?} is not ECDSA P-256: cosign signatures need one"
            )));
        }
        self.sign_bytes(
            name,
            pb::SignatureAlgorithm::EcdsaP256Sha256,
            pb::SignatureEncoding::Der,
            message,
        )
        .await
    }
}

fn signer_error(error: CliError) -> SignerError {
    SignerError(Box::new(error))
}

#[async_trait]
impl RoleSigner for TrustdSigner {
    async fn held(
        &mut self,
        keys: &BTreeMap<String, PublicKey>,
        keyids: &[String],
    ) -> Result<Vec<HeldKey>, SignerError> {
        Ok(self
            .keys_in_trustd(keys, keyids)
            .await
            .map_err(signer_error)?
            .into_iter()
            .map(|(name, keyid)| HeldKey { name, keyid })
            .collect())
    }

    async fn public_key(&mut self, name: &str) -> Result<PublicKey, SignerError> {
        self.tuf_key(name).await.map_err(signer_error)
    }

    async fn sign(
        &mut self,
        name: &str,
        keyid: &str,
        message: &[u8],
    ) -> Result<Signature, SignerError> {
        self.sign_canonical(name, keyid, message)
            .await
            .map_err(signer_error)
    }
}
