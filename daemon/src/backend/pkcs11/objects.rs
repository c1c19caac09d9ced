//! Attribute templates for the key objects trustd creates, and reading public keys back.

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::{Decode, Encode};

use crate::algorithm::{self, KeyAlgorithm};
use crate::private_key::PrivateKey;

use super::OpError;

/// DER OID 1.2.840.10045.3.1.7 (prime256v1), as CKA_EC_PARAMS wants it.
const EC_PARAMS_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER OID 1.3.101.112 (id-Ed25519).
const EC_PARAMS_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const RSA_PUBLIC_EXPONENT: &[u8] = &[0x01, 0x00, 0x01];

pub fn key_pair_mechanism(algorithm: KeyAlgorithm) -> Mechanism<'static> {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => Mechanism::EccKeyPairGen,
        KeyAlgorithm::Ed25519 => Mechanism::EccEdwardsKeyPairGen,
        _ => Mechanism::RsaPkcsKeyPairGen,
    }
}

/// The mechanisms a token must offer to generate and use keys of `algorithm`.
pub fn required_mechanisms(algorithm: KeyAlgorithm) -> [(MechanismType, &'static str); 2] {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => [
            (MechanismType::ECC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"),
            (MechanismType::ECDSA, "CKM_ECDSA"),
        ],
        KeyAlgorithm::Ed25519 => [
            (
                MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
                "CKM_EC_EDWARDS_KEY_PAIR_GEN",
            ),
            (MechanismType::EDDSA, "CKM_EDDSA"),
        ],
        _ => [
            (
                MechanismType::RSA_PKCS_KEY_PAIR_GEN,
                "CKM_RSA_PKCS_KEY_PAIR_GEN",
            ),
            (MechanismType::RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS"),
        ],
    }
}

fn common(id: &[u8], label: &str) -> [Attribute; 3] {
    [
        Attribute::Token(true),
        Attribute::Id(id.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

/// The private half: on the token, behind login, never readable, never exportable.
fn private_policy() -> [Attribute; 4] {
    [
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ]
}

fn curve_params(algorithm: KeyAlgorithm) -> Option<&'static [u8]> {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => Some(EC_PARAMS_P256),
        KeyAlgorithm::Ed25519 => Some(EC_PARAMS_ED25519),
        _ => None,
    }
}

pub fn generation_templates(
    algorithm: KeyAlgorithm,
    id: &[u8],
    label: &str,
) -> (Vec<Attribute>, Vec<Attribute>) {
    let mut public = common(id, label).to_vec();
    public.extend([Attribute::Private(false), Attribute::Verify(true)]);
    match (curve_params(algorithm), algorithm.rsa_bits()) {
        (Some(params), _) => public.push(Attribute::EcParams(params.to_vec())),
        (None, Some(bits)) => public.extend([
            Attribute::ModulusBits((bits as u64).into()),
            Attribute::PublicExponent(RSA_PUBLIC_EXPONENT.to_vec()),
        ]),
        (None, None) => unreachable!("every algorithm is EC or RSA"),
    }
    let mut private = common(id, label).to_vec();
    private.extend(private_policy());
    (public, private)
}

/// Templates that create the objects for an imported key. The caller zeroizes them.
pub fn import_templates(
    key: &PrivateKey,
    id: &[u8],
    label: &str,
) -> Result<(Vec<Attribute>, Vec<Attribute>), OpError> {
    let mut public = common(id, label).to_vec();
    public.extend([
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Private(false),
        Attribute::Verify(true),
    ]);
    let mut private = common(id, label).to_vec();
    private.push(Attribute::Class(ObjectClass::PRIVATE_KEY));
    private.extend(private_policy());
    match key {
        PrivateKey::EcdsaP256 {
            scalar,
            public_point,
        } => {
            let point = octet_string(public_point)?;
            public.extend([
                Attribute::KeyType(KeyType::EC),
                Attribute::EcParams(EC_PARAMS_P256.to_vec()),
                Attribute::EcPoint(point),
            ]);
            private.extend([
                Attribute::KeyType(KeyType::EC),
                Attribute::EcParams(EC_PARAMS_P256.to_vec()),
                Attribute::Value(scalar.to_vec()),
            ]);
        }
        PrivateKey::Ed25519 { seed, public: raw } => {
            public.extend([
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::EcParams(EC_PARAMS_ED25519.to_vec()),
                Attribute::EcPoint(octet_string(raw)?),
            ]);
            private.extend([
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::EcParams(EC_PARAMS_ED25519.to_vec()),
                Attribute::Value(seed.to_vec()),
            ]);
        }
        PrivateKey::Rsa {
            modulus,
            public_exponent,
            private_exponent,
            prime1,
            prime2,
            exponent1,
            exponent2,
            coefficient,
            ..
        } => {
            public.extend([
                Attribute::KeyType(KeyType::RSA),
                Attribute::Modulus(modulus.clone()),
                Attribute::PublicExponent(public_exponent.clone()),
            ]);
            private.extend([
                Attribute::KeyType(KeyType::RSA),
                Attribute::Modulus(modulus.clone()),
                Attribute::PublicExponent(public_exponent.clone()),
                Attribute::PrivateExponent(private_exponent.to_vec()),
                Attribute::Prime1(prime1.to_vec()),
                Attribute::Prime2(prime2.to_vec()),
                Attribute::Exponent1(exponent1.to_vec()),
                Attribute::Exponent2(exponent2.to_vec()),
                Attribute::Coefficient(coefficient.to_vec()),
            ]);
        }
    }
    Ok((public, private))
}

/// Overwrites every secret value a template holds.
pub fn zeroize_template(template: &mut [Attribute]) {
    use zeroize::Zeroize;
    for attribute in template {
        match attribute {
            Attribute::Value(v)
            | Attribute::PrivateExponent(v)
            | Attribute::Prime1(v)
            | Attribute::Prime2(v)
            | Attribute::Exponent1(v)
            | Attribute::Exponent2(v)
            | Attribute::Coefficient(v) => v.zeroize(),
            _ => {}
        }
    }
}

fn octet_string(bytes: &[u8]) -> Result<Vec<u8>, OpError> {
    der::asn1::OctetString::new(bytes)
        .and_then(|o| o.to_der())
        .map_err(|e| OpError::Invalid(format!("cannot encode EC point: {e}")))
}

/// Reads the public key object back as a DER SubjectPublicKeyInfo.
pub fn read_public_key(
    session: &Session,
    public: ObjectHandle,
    algorithm: KeyAlgorithm,
) -> Result<(Vec<u8>, KeyAlgorithm), OpError> {
    let device = |msg: String| OpError::Invalid(format!("token returned a bad public key: {msg}"));
    match algorithm {
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Ed25519 => {
            let attrs = session.get_attributes(public, &[AttributeType::EcPoint])?;
            let Some(Attribute::EcPoint(point)) = attrs.into_iter().next() else {
                return Err(device("no CKA_EC_POINT".into()));
            };
            let expected = if algorithm == KeyAlgorithm::EcdsaP256 {
                65
            } else {
                32
            };
            let raw = unwrap_ec_point(&point, expected);
            let spki = if algorithm == KeyAlgorithm::EcdsaP256 {
                algorithm::p256_spki(raw)
            } else {
                algorithm::ed25519_spki(raw)
            };
            Ok((spki.map_err(device)?, algorithm))
        }
        _ => {
            let attrs = session.get_attributes(
                public,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )?;
            let (mut modulus, mut exponent) = (None, None);
            for attr in attrs {
                match attr {
                    Attribute::Modulus(m) => modulus = Some(m),
                    Attribute::PublicExponent(e) => exponent = Some(e),
                    _ => {}
                }
            }
            let (Some(modulus), Some(exponent)) = (modulus, exponent) else {
                return Err(device("no CKA_MODULUS / CKA_PUBLIC_EXPONENT".into()));
            };
            let (spki, bits) = algorithm::rsa_spki(&modulus, &exponent).map_err(device)?;
            let actual = KeyAlgorithm::rsa_for_bits(bits)
                .ok_or_else(|| device(format!("RSA modulus of {bits} bits")))?;
            Ok((spki, actual))
        }
    }
}

/// CKA_EC_POINT is specified as a DER OCTET STRING around the point, but some modules return
/// the bare point: accept both.
fn unwrap_ec_point(value: &[u8], expected_len: usize) -> &[u8] {
    if value.len() == expected_len {
        return value;
    }
    match der::asn1::OctetStringRef::from_der(value) {
        Ok(inner) if inner.as_bytes().len() == expected_len => &value[value.len() - expected_len..],
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_accepts_wrapped_and_bare() {
        let mut bare = vec![0x04];
        bare.extend([7u8; 64]);
        let wrapped = octet_string(&bare).unwrap();
        assert_eq!(wrapped.len(), 67);
        assert_eq!(unwrap_ec_point(&wrapped, 65), bare.as_slice());
        assert_eq!(unwrap_ec_point(&bare, 65), bare.as_slice());
    }

    #[test]
    fn private_template_is_sensitive_and_not_extractable() {
        let (_, private) = generation_templates(KeyAlgorithm::EcdsaP256, b"id", "k");
        assert!(private.contains(&Attribute::Sensitive(true)));
        assert!(private.contains(&Attribute::Extractable(false)));
        assert!(private.contains(&Attribute::Private(true)));
        assert!(private.contains(&Attribute::Token(true)));
    }
}
