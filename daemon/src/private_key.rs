//! Private keys passing through trustd on their way to a device (`key load`).
//!
//! The PKCS#8 bytes are parsed into the fields a device needs and every buffer holding secret
//! material is zeroized when dropped. Nothing here is ever written anywhere but to the device.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use pkcs8::der::Decode;
use zeroize::Zeroizing;

use crate::algorithm::KeyAlgorithm;

const OID_EC: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A private key ready to be written to a device.
pub enum PrivateKey {
    EcdsaP256 {
        scalar: Zeroizing<Vec<u8>>,
        /// SEC1 uncompressed public point.
        public_point: Vec<u8>,
    },
    Ed25519 {
        seed: Zeroizing<Vec<u8>>,
        public: Vec<u8>,
    },
    Rsa {
        algorithm: KeyAlgorithm,
        modulus: Vec<u8>,
        public_exponent: Vec<u8>,
        private_exponent: Zeroizing<Vec<u8>>,
        prime1: Zeroizing<Vec<u8>>,
        prime2: Zeroizing<Vec<u8>>,
        exponent1: Zeroizing<Vec<u8>>,
        exponent2: Zeroizing<Vec<u8>>,
        coefficient: Zeroizing<Vec<u8>>,
    },
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.algorithm().as_str())
    }
}

impl PrivateKey {
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PrivateKey::EcdsaP256 { .. } => KeyAlgorithm::EcdsaP256,
            PrivateKey::Ed25519 { .. } => KeyAlgorithm::Ed25519,
            PrivateKey::Rsa { algorithm, .. } => *algorithm,
        }
    }

    /// The DER SubjectPublicKeyInfo of the key's public half.
    pub fn public_spki(&self) -> Result<Vec<u8>, String> {
        match self {
            PrivateKey::EcdsaP256 { public_point, .. } => crate::algorithm::p256_spki(public_point),
            PrivateKey::Ed25519 { public, .. } => crate::algorithm::ed25519_spki(public),
            PrivateKey::Rsa {
                modulus,
                public_exponent,
                ..
            } => crate::algorithm::rsa_spki(modulus, public_exponent).map(|(spki, _)| spki),
        }
    }

    /// Parses an unencrypted PKCS#8 PrivateKeyInfo (DER).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, String> {
        let info = pkcs8::PrivateKeyInfo::from_der(der)
            .map_err(|e| format!("not a PKCS#8 private key: {e}"))?;
        let oid = info.algorithm.oid;
        if oid == OID_EC {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| "EC key without a named curve".to_owned())?;
            if curve != OID_P256 {
                return Err(format!(
                    "EC curve {curve} is not supported: trustd keeps P-256 keys"
                ));
            }
            let secret = p256::SecretKey::try_from(info)
                .map_err(|e| format!("invalid P-256 private key: {e}"))?;
            let public_point = secret
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec();
            Ok(PrivateKey::EcdsaP256 {
                scalar: Zeroizing::new(secret.to_bytes().to_vec()),
                public_point,
            })
        } else if oid == OID_ED25519 {
            let key = ed25519_dalek::SigningKey::try_from(info)
                .map_err(|e| format!("invalid Ed25519 private key: {e}"))?;
            Ok(PrivateKey::Ed25519 {
                seed: Zeroizing::new(key.to_bytes().to_vec()),
                public: key.verifying_key().to_bytes().to_vec(),
            })
        } else if oid == OID_RSA {
            use rsa::traits::{PrivateKeyParts, PublicKeyParts};
            let key = rsa::RsaPrivateKey::try_from(info)
                .map_err(|e| format!("invalid RSA private key: {e}"))?;
            let bits = key.n().bits();
            let algorithm = KeyAlgorithm::rsa_for_bits(bits).ok_or_else(|| {
                format!("RSA keys of {bits} bits are not supported: use 2048, 3072 or 4096")
            })?;
            let primes = key.primes();
            if primes.len() != 2 {
                return Err("multi-prime RSA keys are not supported".into());
            }
            let secret = |n: &rsa::BigUint| Zeroizing::new(n.to_bytes_be());
            let exponent1 = key.dp().ok_or("RSA key lacks CRT parameters")?;
            let exponent2 = key.dq().ok_or("RSA key lacks CRT parameters")?;
            let coefficient = key
                .crt_coefficient()
                .ok_or("RSA key lacks CRT parameters")?;
            Ok(PrivateKey::Rsa {
                algorithm,
                modulus: key.n().to_bytes_be(),
                public_exponent: key.e().to_bytes_be(),
                private_exponent: secret(key.d()),
                prime1: secret(&primes[0]),
                prime2: secret(&primes[1]),
                exponent1: secret(exponent1),
                exponent2: secret(exponent2),
                coefficient: Zeroizing::new(coefficient.to_bytes_be()),
            })
        } else {
            Err(format!(
                "key algorithm {oid} is not supported: use ECDSA P-256, Ed25519 or RSA"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkcs8::EncodePrivateKey;

    #[test]
    fn parses_p256() {
        let secret = p256::SecretKey::from_slice(&[9u8; 32]).unwrap();
        let der = secret.to_pkcs8_der().unwrap();
        let key = PrivateKey::from_pkcs8_der(der.as_bytes()).unwrap();
        match key {
            PrivateKey::EcdsaP256 {
                scalar,
                public_point,
            } => {
                assert_eq!(scalar.as_slice(), &[9u8; 32]);
                assert_eq!(public_point.len(), 65);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_ed25519() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let der = key.to_pkcs8_der().unwrap();
        let parsed = PrivateKey::from_pkcs8_der(der.as_bytes()).unwrap();
        assert_eq!(parsed.algorithm(), KeyAlgorithm::Ed25519);
    }

    #[test]
    fn rejects_other_curves_and_garbage() {
        let p384 = "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCsV6COSkey+/5Cbnl5kaC/ZtZ4W9MUh1X+D9g+EOVvxQdopO0mpChAosqqwyU0wB2hZANiAAQ66N9ETMURZNYQnaJQ1r9MCv0XFoCTR9jjIPZAi6noDsTFpMMM92vI99idkuZVvVcn8XP1BE3/WZM/0EFal6gHEqlpOHt0morBUwd7ewmg79fbcRrRRMnnFCqhw4m0UpI=";
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, p384).unwrap();
        let err = PrivateKey::from_pkcs8_der(&der).unwrap_err();
        assert!(err.contains("P-256"), "{err}");
        assert!(PrivateKey::from_pkcs8_der(b"garbage").is_err());
    }
}
