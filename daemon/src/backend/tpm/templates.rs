//! The object templates trustd creates in a TPM, and how their public areas map to SPKI.
//!
//! The storage primary is derived from the owner hierarchy's seed and a fixed template, so it
//! comes out identical every time: it is re-created on each connection instead of occupying a
//! persistent handle, and every key blob wrapped under it loads again after a restart.

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{
    EccPoint, EccScheme, HashScheme, Public, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyRsa, PublicRsaParametersBuilder, RsaExponent, RsaScheme, SymmetricDefinitionObject,
};

use crate::algorithm::{self, KeyAlgorithm};

/// The algorithms trustd generates on a TPM.
pub const ALGORITHMS: [KeyAlgorithm; 2] = [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa3072];

/// An ECC P-256 restricted decryption key (the TCG provisioning guidance's SRK template).
pub fn storage_primary() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// A signing key that never leaves this TPM: fixedTPM, fixedParent, sensitiveDataOrigin
/// (the TPM made the secret), userWithAuth, sign; not restricted, so it signs any digest.
/// noDA unless `dictionary_attack_protected` (see `Device::generate`).
pub fn signing_key(
    algorithm: KeyAlgorithm,
    dictionary_attack_protected: bool,
) -> Option<tss_esapi::Result<Public>> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(!dictionary_attack_protected)
        .with_sign_encrypt(true)
        .build();
    let sha256 = HashScheme::new(HashingAlgorithm::Sha256);
    let build = |attributes| match algorithm {
        KeyAlgorithm::EcdsaP256 => PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_ecc_parameters(
                PublicEccParametersBuilder::new_unrestricted_signing_key(
                    EccScheme::EcDsa(sha256),
                    EccCurve::NistP256,
                )
                .build()?,
            )
            .with_ecc_unique_identifier(EccPoint::default())
            .build(),
        _ => PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Rsa)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_rsa_parameters(
                PublicRsaParametersBuilder::new_unrestricted_signing_key(
                    RsaScheme::RsaPss(sha256),
                    RsaKeyBits::Rsa3072,
                    RsaExponent::default(),
                )
                .build()?,
            )
            .with_rsa_unique_identifier(PublicKeyRsa::default())
            .build(),
    };
    match algorithm {
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Rsa3072 => Some(attributes.and_then(build)),
        _ => None,
    }
}

/// The key's algorithm and DER SubjectPublicKeyInfo, read from its TPM public area.
pub fn spki(public: &Public) -> Result<(KeyAlgorithm, Vec<u8>), String> {
    match public {
        Public::Ecc { unique, .. } => {
            let mut point = vec![0x04];
            point.extend(left_pad(unique.x().value(), 32)?);
            point.extend(left_pad(unique.y().value(), 32)?);
            Ok((KeyAlgorithm::EcdsaP256, algorithm::p256_spki(&point)?))
        }
        Public::Rsa {
            parameters, unique, ..
        } => {
            let exponent = match parameters.exponent().value() {
                0 => 65537,
                e => e,
            };
            let (der, bits) = algorithm::rsa_spki(unique.value(), &exponent.to_be_bytes())?;
            let algorithm = KeyAlgorithm::rsa_for_bits(bits)
                .ok_or_else(|| format!("the TPM made a {bits}-bit RSA key"))?;
            Ok((algorithm, der))
        }
        _ => Err("the TPM returned a public area that is neither ECC nor RSA".into()),
    }
}

/// A big-endian integer as exactly `width` bytes (TPMs may drop leading zeros).
pub fn left_pad(value: &[u8], width: usize) -> Result<Vec<u8>, String> {
    let value = {
        let first = value.iter().position(|b| *b != 0).unwrap_or(value.len());
        &value[first..]
    };
    if value.len() > width {
        return Err(format!(
            "the TPM returned a {}-byte value where {width} fit",
            value.len()
        ));
    }
    let mut out = vec![0u8; width - value.len()];
    out.extend_from_slice(value);
    Ok(out)
}
