//! TPM2_MakeCredential done in software by the verifier (TPM 2.0 Library Part 1, 24 "Credential
//! Protection"), for an RSA 2048 endorsement key with the TCG default template.
//!
//! The credential is sealed to two things at once: the EK (only that TPM can recover the
//! seed) and the attestation key's name (the TPM releases it only if an object with that name
//! is loaded beside the EK). A TPM that returns the credential has thereby shown that the AK
//! lives in it. Doing this off the TPM matters: a TPM (or trustd) cannot vouch for itself.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;
type Aes128CfbEnc = cfb_mode::Encryptor<aes::Aes128>;

/// What the TPM gets (TPM2B contents, without the outer size) and what it must give back.
pub struct Challenge {
    /// TPM2B_ID_OBJECT contents: TPM2B integrity HMAC, then the encrypted credential.
    pub credential_blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET contents: the seed, RSA-OAEP encrypted to the EK.
    pub encrypted_secret: Vec<u8>,
    /// The credential the TPM must return.
    pub credential: Zeroizing<Vec<u8>>,
}

/// Seals a fresh random credential to `ek` and the AK's TPM name.
pub fn make_credential(ek: &rsa::RsaPublicKey, ak_name: &[u8]) -> Result<Challenge, String> {
    let mut rng = rand::rngs::OsRng;
    let mut credential = Zeroizing::new(vec![0u8; 32]);
    rng.fill_bytes(&mut credential);
    let mut seed = Zeroizing::new(vec![0u8; 32]);
    rng.fill_bytes(&mut seed);
    // The label includes its terminating NUL (Part 1, 11.4.10.3).
    let padding = rsa::Oaep::new_with_label::<Sha256, _>("IDENTITY\0");
    let encrypted_secret = ek
        .encrypt(&mut rng, padding, &seed)
        .map_err(|e| format!("RSA-OAEP to the endorsement key failed: {e}"))?;
    let credential_blob = seal(&seed, ak_name, &credential);
    Ok(Challenge {
        credential_blob,
        encrypted_secret,
        credential,
    })
}

/// The credential blob for a known seed (the deterministic half of MakeCredential).
fn seal(seed: &[u8], ak_name: &[u8], credential: &[u8]) -> Vec<u8> {
    // The EK template's symmetric algorithm: AES-128 in CFB mode, zero IV.
    let sym_key = Zeroizing::new(kdfa(seed, b"STORAGE", ak_name, &[], 128));
    let mut enc_identity = (credential.len() as u16).to_be_bytes().to_vec();
    enc_identity.extend_from_slice(credential);
    Aes128CfbEnc::new_from_slices(&sym_key, &[0u8; 16])
        .expect("16-byte key and IV")
        .encrypt(&mut enc_identity);
    let hmac_key = Zeroizing::new(kdfa(seed, b"INTEGRITY", &[], &[], 256));
    let mut mac = HmacSha256::new_from_slice(&hmac_key).expect("HMAC takes any key");
    mac.update(&enc_identity);
    mac.update(ak_name);
    let outer_hmac = mac.finalize().into_bytes();
    let mut blob = (outer_hmac.len() as u16).to_be_bytes().to_vec();
    blob.extend_from_slice(&outer_hmac);
    blob.extend_from_slice(&enc_identity);
    blob
}

/// KDFa with HMAC-SHA-256 (Part 1, 11.4.10.2): counter || label || 0 || contextU || contextV
/// || bits, repeated until `bits` are produced.
fn kdfa(key: &[u8], label: &[u8], context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + 32);
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key");
        mac.update(&counter.to_be_bytes());
        mac.update(label);
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_produces_the_requested_length_and_depends_on_every_input() {
        let a = kdfa(b"seed", b"STORAGE", b"name", &[], 128);
        assert_eq!(a.len(), 16);
        assert_eq!(kdfa(b"seed", b"STORAGE", b"name", &[], 512).len(), 64);
        assert_ne!(a, kdfa(b"seeD", b"STORAGE", b"name", &[], 128));
        assert_ne!(a, kdfa(b"seed", b"INTEGRITY", b"name", &[], 128));
        assert_ne!(a, kdfa(b"seed", b"STORAGE", b"namE", &[], 128));
        // The bit count is an input: a 128-bit key is not a prefix of a 256-bit one.
        assert_ne!(a, kdfa(b"seed", b"STORAGE", b"name", &[], 256)[..16]);
    }

    #[test]
    fn the_blob_is_bound_to_the_ak_name() {
        let seed = [7u8; 32];
        let blob = seal(&seed, b"\x00\x0bname-one", &[1u8; 32]);
        assert_eq!(&blob[..2], &[0, 32], "a TPM2B HMAC leads");
        assert_eq!(blob.len(), 2 + 32 + 2 + 32);
        assert_ne!(blob, seal(&seed, b"\x00\x0bname-two", &[1u8; 32]));
    }
}
