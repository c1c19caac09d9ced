//! Key and signature algorithms, and how their public keys and signatures are encoded.

use serde::{Deserialize, Serialize};
use trustd_notary::keys::{KeyType, PublicKey};

use trustd_proto as pb;

/// Algorithms a key can have. Each fixes exactly one signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgorithm {
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::KeyAlgorithm::try_from(value).ok()? {
            pb::KeyAlgorithm::EcdsaP256 => Some(Self::EcdsaP256),
            pb::KeyAlgorithm::EcdsaP384 => Some(Self::EcdsaP384),
            pb::KeyAlgorithm::Ed25519 => Some(Self::Ed25519),
            pb::KeyAlgorithm::Rsa2048 => Some(Self::Rsa2048),
            pb::KeyAlgorithm::Rsa3072 => Some(Self::Rsa3072),
            pb::KeyAlgorithm::Rsa4096 => Some(Self::Rsa4096),
            pb::KeyAlgorithm::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> pb::KeyAlgorithm {
        match self {
            Self::EcdsaP256 => pb::KeyAlgorithm::EcdsaP256,
            Self::EcdsaP384 => pb::KeyAlgorithm::EcdsaP384,
            Self::Ed25519 => pb::KeyAlgorithm::Ed25519,
            Self::Rsa2048 => pb::KeyAlgorithm::Rsa2048,
            Self::Rsa3072 => pb::KeyAlgorithm::Rsa3072,
            Self::Rsa4096 => pb::KeyAlgorithm::Rsa4096,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Ed25519 => "ed25519",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    pub fn rsa_for_bits(bits: usize) -> Option<Self> {
        match bits {
            2048 => Some(Self::Rsa2048),
            3072 => Some(Self::Rsa3072),
            4096 => Some(Self::Rsa4096),
            _ => None,
        }
    }

    /// The only signature scheme a key of this algorithm makes.
    pub fn signature_algorithm(self) -> SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => SignatureAlgorithm::EcdsaP256Sha256,
            Self::EcdsaP384 => SignatureAlgorithm::EcdsaP384Sha384,
            Self::Ed25519 => SignatureAlgorithm::Ed25519,
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => SignatureAlgorithm::RsaPssSha256,
        }
    }

    /// The Notary/TUF `keytype` of the public key (notary itself signs with P-256 only; a
    /// P-384 key still gets an ID computed the same way).
    pub fn notary_key_type(self) -> KeyType {
        match self {
            Self::EcdsaP256 | Self::EcdsaP384 => KeyType::Ecdsa,
            Self::Ed25519 => KeyType::Ed25519,
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => KeyType::Rsa,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    Ed25519,
    RsaPssSha256,
}

impl SignatureAlgorithm {
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::SignatureAlgorithm::try_from(value).ok()? {
            pb::SignatureAlgorithm::EcdsaP256Sha256 => Some(Self::EcdsaP256Sha256),
            pb::SignatureAlgorithm::EcdsaP384Sha384 => Some(Self::EcdsaP384Sha384),
            pb::SignatureAlgorithm::Ed25519 => Some(Self::Ed25519),
            pb::SignatureAlgorithm::RsaPssSha256 => Some(Self::RsaPssSha256),
            pb::SignatureAlgorithm::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> pb::SignatureAlgorithm {
        match self {
            Self::EcdsaP256Sha256 => pb::SignatureAlgorithm::EcdsaP256Sha256,
            Self::EcdsaP384Sha384 => pb::SignatureAlgorithm::EcdsaP384Sha384,
            Self::Ed25519 => pb::SignatureAlgorithm::Ed25519,
            Self::RsaPssSha256 => pb::SignatureAlgorithm::RsaPssSha256,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Self::EcdsaP384Sha384 => "ecdsa-p384-sha384",
            Self::Ed25519 => "ed25519",
            Self::RsaPssSha256 => "rsa-pss-sha256",
        }
    }

    /// Whether the device can sign a digest computed elsewhere (false for pure Ed25519).
    pub fn accepts_prehashed(self) -> bool {
        !matches!(self, Self::Ed25519)
    }

    /// ECDSA, whose signatures come as r||s and may be re-encoded as DER.
    pub fn is_ecdsa(self) -> bool {
        matches!(self, Self::EcdsaP256Sha256 | Self::EcdsaP384Sha384)
    }
}

/// The key's Notary key ID, by the Notary library's own rule (the one trustctl writes into
/// TUF metadata), so trustd and trustctl can never disagree on it.
pub fn notary_key_id(algorithm: KeyAlgorithm, spki_der: &[u8]) -> Result<String, String> {
    PublicKey::from_spki(algorithm.notary_key_type(), spki_der)
        .map(|key| key.id())
        .map_err(|e| e.to_string())
}

/// DER SubjectPublicKeyInfo of a P-256 point given in SEC1 uncompressed form.
pub fn p256_spki(point: &[u8]) -> Result<Vec<u8>, String> {
    use p256::pkcs8::EncodePublicKey;
    let key = p256::PublicKey::from_sec1_bytes(point)
        .map_err(|_| "the device returned an EC point that is not on P-256".to_owned())?;
    Ok(key
        .to_public_key_der()
        .map_err(|e| e.to_string())?
        .into_vec())
}

/// DER SubjectPublicKeyInfo of an Ed25519 public key.
pub fn ed25519_spki(raw: &[u8]) -> Result<Vec<u8>, String> {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    let bytes: [u8; 32] = raw
        .try_into()
        .map_err(|_| format!("Ed25519 public key has {} bytes, not 32", raw.len()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "the device returned an invalid Ed25519 public key".to_owned())?;
    Ok(key
        .to_public_key_der()
        .map_err(|e| e.to_string())?
        .into_vec())
}

/// DER SubjectPublicKeyInfo of an RSA key from its modulus and exponent (big-endian).
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Result<(Vec<u8>, usize), String> {
    use rsa::pkcs8::EncodePublicKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(modulus),
        rsa::BigUint::from_bytes_be(exponent),
    )
    .map_err(|e| format!("the device returned an invalid RSA public key: {e}"))?;
    let bits = key.n().bits();
    Ok((
        key.to_public_key_der()
            .map_err(|e| e.to_string())?
            .into_vec(),
        bits,
    ))
}

/// ASN.1 DER Ecdsa-Sig-Value from a fixed-width r||s signature (P-256: 64 bytes, P-384: 96).
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, String> {
    let malformed = || format!("device returned a {}-byte ECDSA signature", raw.len());
    if raw.len() == 96 {
        let signature = p384::ecdsa::Signature::from_slice(raw).map_err(|_| malformed())?;
        return Ok(signature.to_der().as_bytes().to_vec());
    }
    let signature = p256::ecdsa::Signature::from_slice(raw).map_err(|_| malformed())?;
    Ok(signature.to_der().as_bytes().to_vec())
}

/// Fixed-width r||s from a DER Ecdsa-Sig-Value, as smart cards return them.
pub fn ecdsa_der_to_raw(algorithm: KeyAlgorithm, der: &[u8]) -> Result<Vec<u8>, String> {
    let malformed =
        |e: ecdsa_error::Error| format!("the device returned a malformed ECDSA signature: {e}");
    match algorithm {
        KeyAlgorithm::EcdsaP256 => Ok(p256::ecdsa::Signature::from_der(der)
            .map_err(malformed)?
            .to_bytes()
            .to_vec()),
        KeyAlgorithm::EcdsaP384 => Ok(p384::ecdsa::Signature::from_der(der)
            .map_err(malformed)?
            .to_bytes()
            .to_vec()),
        other => Err(format!("{} keys make no ECDSA signatures", other.as_str())),
    }
}

mod ecdsa_error {
    pub use p256::ecdsa::Error;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).unwrap()
    }

    #[test]
    fn ecdsa_key_id_matches_notary_fixture() {
        // notary/tests/fixtures/notary/01-init-v1/root.json, written by notary 0.7.
        let spki = b64("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJV+I25S8tadUn+4kxLHbrkPrbzH32AxMWN5aI5e7Xq/lKUjJlzRoouo5IrCIj2ar5YggP3XFNWePRRUG92iH7A==");
        assert_eq!(
            notary_key_id(KeyAlgorithm::EcdsaP256, &spki).unwrap(),
            "2bb5cf4bbca5011a74ba04c4abcea24733eb9dd4f79e3708533583aa5e5208ff"
        );
    }

    #[test]
    fn ed25519_key_id_matches_notary_fixture() {
        let raw = b64("Ftd8fb5CbJREsAd2v4pU91/SlarWZvYvj9N/0Ks5NqY=");
        let spki = ed25519_spki(&raw).unwrap();
        assert_eq!(
            notary_key_id(KeyAlgorithm::Ed25519, &spki).unwrap(),
            "ff76ebffd9a970d9f13acd781a5b8aa021cdc06a640db78d57fab77aa1ba0bc4"
        );
    }

    #[test]
    fn raw_to_der_round_trips() {
        use p256::ecdsa::signature::Signer;
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let sig: p256::ecdsa::Signature = key.sign(b"hello");
        let der = ecdsa_raw_to_der(&sig.to_bytes()).unwrap();
        assert_eq!(der, sig.to_der().as_bytes());
        assert!(ecdsa_raw_to_der(&[0u8; 63]).is_err());
    }
}
