//! Verifying signatures against a public key (SubjectPublicKeyInfo DER), independently of
//! trustd: the check a relying party makes.

use pkcs8::der::Decode;
use sha2::{Digest, Sha256, Sha384};

const OID_EC: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P384: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P256: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the signature does not match the data and key")]
    Mismatch,
    #[error("unusable public key: {0}")]
    BadKey(String),
    #[error("malformed signature: {0}")]
    BadSignature(String),
}

/// The message to check, whole or as digests (enough for ECDSA and RSA-PSS).
pub enum Signed<'a> {
    /// The whole message (Ed25519 signs messages).
    Message(&'a [u8]),
    /// A SHA-256 digest of the message.
    Sha256([u8; 32]),
    /// Both digests of a file, when the key that signed it is not known yet.
    Digests {
        /// Its SHA-256 digest.
        sha256: [u8; 32],
        /// Its SHA-384 digest.
        sha384: [u8; 48],
    },
}

impl Signed<'_> {
    fn sha256(&self) -> Result<[u8; 32], VerifyError> {
        match self {
            Signed::Message(m) => Ok(Sha256::digest(m).into()),
            Signed::Sha256(d) | Signed::Digests { sha256: d, .. } => Ok(*d),
        }
    }

    fn sha384(&self) -> Result<[u8; 48], VerifyError> {
        match self {
            Signed::Message(m) => Ok(Sha384::digest(m).into()),
            Signed::Digests { sha384, .. } => Ok(*sha384),
            Signed::Sha256(_) => Err(VerifyError::BadKey(
                "a P-384 signature covers the SHA-384 digest, not the SHA-256 one".into(),
            )),
        }
    }
}

/// Verifies ECDSA P-256/SHA-256 and P-384/SHA-384 (DER or raw r||s), Ed25519 and
/// RSA-PSS-SHA256 signatures.
pub fn verify(spki_der: &[u8], signed: Signed<'_>, signature: &[u8]) -> Result<(), VerifyError> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| VerifyError::BadKey(e.to_string()))?;
    let oid = info.algorithm.oid;
    let curve = info
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok());
    if let (Signed::Message(message), true) = (&signed, oid == OID_EC) {
        if ecdsa_message_verifies(curve, &info, message, signature) {
            return Ok(());
        }
        // Not verified: the portable path below says precisely why (key, encoding or
        // mismatch), which ring does not.
    }
    if oid == OID_EC && curve == Some(OID_P384) {
        use p384::ecdsa::signature::hazmat::PrehashVerifier;
        use p384::pkcs8::DecodePublicKey;
        let key = p384::ecdsa::VerifyingKey::from_public_key_der(spki_der)
            .map_err(|e| VerifyError::BadKey(format!("not a P-384 key: {e}")))?;
        let sig = if signature.len() == 96 {
            p384::ecdsa::Signature::from_slice(signature)
        } else {
            p384::ecdsa::Signature::from_der(signature)
        }
        .map_err(|e| VerifyError::BadSignature(e.to_string()))?;
        key.verify_prehash(&signed.sha384()?, &sig)
            .map_err(|_| VerifyError::Mismatch)
    } else if oid == OID_EC {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        use p256::pkcs8::DecodePublicKey;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki_der)
            .map_err(|e| VerifyError::BadKey(format!("not a P-256 key: {e}")))?;
        let sig = if signature.len() == 64 {
            p256::ecdsa::Signature::from_slice(signature)
        } else {
            p256::ecdsa::Signature::from_der(signature)
        }
        .map_err(|e| VerifyError::BadSignature(e.to_string()))?;
        key.verify_prehash(&signed.sha256()?, &sig)
            .map_err(|_| VerifyError::Mismatch)
    } else if oid == OID_ED25519 {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        let Signed::Message(message) = signed else {
            return Err(VerifyError::BadKey(
                "Ed25519 signatures cover whole messages, not digests".into(),
            ));
        };
        let key = ed25519_dalek::VerifyingKey::from_public_key_der(spki_der)
            .map_err(|e| VerifyError::BadKey(e.to_string()))?;
        let sig = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|e| VerifyError::BadSignature(e.to_string()))?;
        key.verify_strict(message, &sig)
            .map_err(|_| VerifyError::Mismatch)
    } else if oid == OID_RSA {
        use rsa::pkcs8::DecodePublicKey;
        let key = rsa::RsaPublicKey::from_public_key_der(spki_der)
            .map_err(|e| VerifyError::BadKey(e.to_string()))?;
        key.verify(
            rsa::Pss::new_with_salt::<Sha256>(32),
            &signed.sha256()?,
            signature,
        )
        .map_err(|_| VerifyError::Mismatch)
    } else {
        Err(VerifyError::BadKey(format!(
            "unsupported key algorithm {oid}"
        )))
    }
}

/// ECDSA over a whole message with ring's assembly-backed curves, about four times faster
/// than the portable arithmetic: every TUF role of every repository read passes through
/// here. False for anything ring does not verify, including keys it does not take (a
/// compressed point).
fn ecdsa_message_verifies(
    curve: Option<spki::ObjectIdentifier>,
    info: &spki::SubjectPublicKeyInfoRef<'_>,
    message: &[u8],
    signature: &[u8],
) -> bool {
    use ring::signature as ring_sig;
    let (raw_len, fixed, asn1) = match curve {
        Some(OID_P384) => (
            96,
            &ring_sig::ECDSA_P384_SHA384_FIXED,
            &ring_sig::ECDSA_P384_SHA384_ASN1,
        ),
        Some(OID_P256) => (
            64,
            &ring_sig::ECDSA_P256_SHA256_FIXED,
            &ring_sig::ECDSA_P256_SHA256_ASN1,
        ),
        _ => return false,
    };
    let Some(point) = info.subject_public_key.as_bytes() else {
        return false;
    };
    let algorithm = if signature.len() == raw_len {
        fixed
    } else {
        asn1
    };
    ring_sig::UnparsedPublicKey::new(algorithm, point)
        .verify(message, signature)
        .is_ok()
}

/// Whether a key can verify from a digest alone (so large files need not be held in memory).
pub fn verifies_prehashed(spki_der: &[u8]) -> bool {
    spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map(|info| info.algorithm.oid != OID_ED25519)
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;

    #[test]
    fn ecdsa_der_and_raw_verify_and_tampering_fails() {
        let key = p256::ecdsa::SigningKey::from_slice(&[1u8; 32]).unwrap();
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let sig: p256::ecdsa::Signature = key.sign(b"payload");
        let der = sig.to_der();
        verify(spki.as_bytes(), Signed::Message(b"payload"), der.as_bytes()).unwrap();
        verify(
            spki.as_bytes(),
            Signed::Message(b"payload"),
            &sig.to_bytes(),
        )
        .unwrap();
        let digest: [u8; 32] = Sha256::digest(b"payload").into();
        verify(spki.as_bytes(), Signed::Sha256(digest), der.as_bytes()).unwrap();
        assert_eq!(
            verify(spki.as_bytes(), Signed::Message(b"payloaD"), der.as_bytes()),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn p384_messages_verify_and_malformed_input_keeps_its_precise_error() {
        use p384::ecdsa::signature::Signer as _;
        use p384::pkcs8::EncodePublicKey as _;
        let key = p384::ecdsa::SigningKey::from_slice(&[3u8; 48]).unwrap();
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let sig: p384::ecdsa::Signature = key.sign(b"payload");
        for encoded in [sig.to_der().as_bytes().to_vec(), sig.to_bytes().to_vec()] {
            verify(spki.as_bytes(), Signed::Message(b"payload"), &encoded).unwrap();
            assert_eq!(
                verify(spki.as_bytes(), Signed::Message(b"other"), &encoded),
                Err(VerifyError::Mismatch)
            );
        }
        // Neither 96 raw bytes nor DER: the portable path names the encoding.
        assert!(matches!(
            verify(spki.as_bytes(), Signed::Message(b"payload"), &[0x30, 0x01]),
            Err(VerifyError::BadSignature(_))
        ));
        // A point that is not on the curve: an unusable key, not a mismatch.
        let mut bad_key = spki.as_bytes().to_vec();
        let last = bad_key.len() - 1;
        bad_key[last] ^= 1;
        assert!(matches!(
            verify(&bad_key, Signed::Message(b"payload"), &sig.to_bytes()),
            Err(VerifyError::BadKey(_))
        ));
    }

    #[test]
    fn ed25519_verifies() {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(&[2u8; 32]);
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let sig = key.sign(b"m");
        verify(spki.as_bytes(), Signed::Message(b"m"), &sig.to_bytes()).unwrap();
        assert!(!verifies_prehashed(spki.as_bytes()));
        assert_eq!(
            verify(spki.as_bytes(), Signed::Message(b"n"), &sig.to_bytes()),
            Err(VerifyError::Mismatch)
        );
    }
}
