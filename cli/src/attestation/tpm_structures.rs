//! The two TPM 2.0 structures a verifier reads (TPM 2.0 Library, Part 2): TPMT_PUBLIC, the
//! public area that names an object, and TPMS_ATTEST, what TPM2_Certify signs.
//!
//! Parsed by hand: they are short, big-endian and fully specified, and the alternative
//! (tpm2-tss's marshalling library) would tie a CLI that never talks to a TPM to C libraries.

use sha2::{Digest, Sha256};

const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_SHA256: u16 = 0x000B;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ALG_ECC: u16 = 0x0023;
const TPM_ECC_NIST_P256: u16 = 0x0003;
const TPM_ALG_ECDAA: u16 = 0x001A;

/// TPM_GENERATED_VALUE: only the TPM puts this in front of data a restricted key signs.
const TPM_GENERATED: u32 = 0xff54_4347;
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;

/// TPMA_OBJECT bits.
pub mod attributes {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN: u32 = 1 << 18;
}

#[derive(Debug, thiserror::Error)]
#[error("malformed {structure}: {reason}")]
pub struct ParseError {
    structure: &'static str,
    reason: String,
}

/// A parsed TPMT_PUBLIC.
#[derive(Debug, Clone)]
pub struct PublicArea {
    pub name_alg: u16,
    pub object_attributes: u32,
    pub key: PublicKey,
    /// The TPM name: nameAlg || SHA-256(TPMT_PUBLIC).
    pub name: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Uncompressed SEC1 point on P-256.
    EccP256(Vec<u8>),
    Rsa {
        modulus: Vec<u8>,
        exponent: u32,
    },
}

impl PublicArea {
    pub fn parse(bytes: &[u8]) -> Result<PublicArea, ParseError> {
        let mut r = Reader::new(bytes, "TPMT_PUBLIC");
        let kind = r.u16()?;
        let name_alg = r.u16()?;
        if name_alg != TPM_ALG_SHA256 {
            return Err(r.error(format!("name algorithm {name_alg:#06x} is not SHA-256")));
        }
        let object_attributes = r.u32()?;
        r.sized()?; // authPolicy
        let symmetric = r.u16()?;
        if symmetric != TPM_ALG_NULL {
            r.u16()?; // keyBits
            r.u16()?; // mode
        }
        let key = match kind {
            TPM_ALG_ECC => {
                let scheme = r.u16()?;
                if scheme != TPM_ALG_NULL {
                    r.u16()?; // hashAlg
                    if scheme == TPM_ALG_ECDAA {
                        r.u16()?; // count
                    }
                }
                let curve = r.u16()?;
                if curve != TPM_ECC_NIST_P256 {
                    return Err(r.error(format!("curve {curve:#06x} is not NIST P-256")));
                }
                if r.u16()? != TPM_ALG_NULL {
                    r.u16()?; // kdf hashAlg
                }
                let x = r.sized()?;
                let y = r.sized()?;
                if x.len() > 32 || y.len() > 32 {
                    return Err(r.error("the ECC point is too long for P-256".into()));
                }
                let mut point = vec![0x04];
                point.extend(std::iter::repeat_n(0, 32 - x.len()));
                point.extend_from_slice(x);
                point.extend(std::iter::repeat_n(0, 32 - y.len()));
                point.extend_from_slice(y);
                PublicKey::EccP256(point)
            }
            TPM_ALG_RSA => {
                if r.u16()? != TPM_ALG_NULL {
                    r.u16()?; // hashAlg
                }
                r.u16()?; // keyBits
                let exponent = match r.u32()? {
                    0 => 65537,
                    e => e,
                };
                PublicKey::Rsa {
                    modulus: r.sized()?.to_vec(),
                    exponent,
                }
            }
            other => return Err(r.error(format!("object type {other:#06x} is not ECC or RSA"))),
        };
        r.finish()?;
        let mut name = name_alg.to_be_bytes().to_vec();
        name.extend(Sha256::digest(bytes));
        Ok(PublicArea {
            name_alg,
            object_attributes,
            key,
            name,
        })
    }

    pub fn has(&self, bits: u32) -> bool {
        self.object_attributes & bits == bits
    }

    /// DER SubjectPublicKeyInfo of the key.
    pub fn spki(&self) -> Result<Vec<u8>, String> {
        use p256::pkcs8::EncodePublicKey;
        match &self.key {
            PublicKey::EccP256(point) => p256::PublicKey::from_sec1_bytes(point)
                .map_err(|_| "the ECC point is not on P-256".to_owned())?
                .to_public_key_der()
                .map(|d| d.into_vec())
                .map_err(|e| e.to_string()),
            PublicKey::Rsa { modulus, exponent } => rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(modulus),
                rsa::BigUint::from(*exponent),
            )
            .map_err(|e| e.to_string())?
            .to_public_key_der()
            .map(|d| d.into_vec())
            .map_err(|e| e.to_string()),
        }
    }
}

/// A parsed TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY.
#[derive(Debug, Clone)]
pub struct CertifyInfo {
    pub qualified_signer: Vec<u8>,
    pub extra_data: Vec<u8>,
    pub firmware_version: u64,
    /// Name of the certified object.
    pub name: Vec<u8>,
}

impl CertifyInfo {
    pub fn parse(bytes: &[u8]) -> Result<CertifyInfo, ParseError> {
        let mut r = Reader::new(bytes, "TPMS_ATTEST");
        if r.u32()? != TPM_GENERATED {
            return Err(r.error("it does not start with TPM_GENERATED_VALUE".into()));
        }
        let kind = r.u16()?;
        if kind != TPM_ST_ATTEST_CERTIFY {
            return Err(r.error(format!("type {kind:#06x} is not a certification")));
        }
        let qualified_signer = r.sized()?.to_vec();
        let extra_data = r.sized()?.to_vec();
        r.take(17)?; // clockInfo: clock, resetCount, restartCount, safe
        let firmware_version = r.u64()?;
        let name = r.sized()?.to_vec();
        r.sized()?; // qualifiedName
        r.finish()?;
        Ok(CertifyInfo {
            qualified_signer,
            extra_data,
            firmware_version,
            name,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    structure: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], structure: &'static str) -> Self {
        Reader {
            bytes,
            at: 0,
            structure,
        }
    }

    fn error(&self, reason: String) -> ParseError {
        ParseError {
            structure: self.structure,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.error(format!("truncated at byte {}", self.at)));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// A TPM2B: a 16-bit size, then that many bytes.
    fn sized(&mut self) -> Result<&'a [u8], ParseError> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    fn finish(&self) -> Result<(), ParseError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(self.error(format!("{} bytes left over", self.bytes.len() - self.at)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 signing key's public area as tpm2-tss marshals it (scheme ECDSA/SHA-256).
    fn ecc_public(attributes: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(TPM_ALG_ECC.to_be_bytes());
        b.extend(TPM_ALG_SHA256.to_be_bytes());
        b.extend(attributes.to_be_bytes());
        b.extend(0u16.to_be_bytes()); // authPolicy
        b.extend(TPM_ALG_NULL.to_be_bytes()); // symmetric
        b.extend(0x0018u16.to_be_bytes()); // TPM_ALG_ECDSA
        b.extend(TPM_ALG_SHA256.to_be_bytes());
        b.extend(TPM_ECC_NIST_P256.to_be_bytes());
        b.extend(TPM_ALG_NULL.to_be_bytes()); // kdf
        let point = p256::SecretKey::from_slice(&[9u8; 32])
            .unwrap()
            .public_key()
            .to_sec1_bytes();
        for coordinate in [&point[1..33], &point[33..]] {
            b.extend(32u16.to_be_bytes());
            b.extend(coordinate);
        }
        b
    }

    #[test]
    fn parses_a_p256_public_area_and_names_it() {
        let bytes = ecc_public(attributes::FIXED_TPM | attributes::SIGN);
        let area = PublicArea::parse(&bytes).unwrap();
        assert!(area.has(attributes::FIXED_TPM | attributes::SIGN));
        assert!(!area.has(attributes::RESTRICTED));
        assert_eq!(&area.name[..2], &[0x00, 0x0B]);
        assert_eq!(&area.name[2..], Sha256::digest(&bytes).as_slice());
        assert!(area.spki().is_ok());
    }

    #[test]
    fn rejects_truncated_and_padded_structures() {
        let bytes = ecc_public(0);
        for cut in [0, 5, bytes.len() - 1] {
            assert!(PublicArea::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(PublicArea::parse(&padded)
            .unwrap_err()
            .to_string()
            .contains("left over"));
    }

    #[test]
    fn certify_info_needs_the_tpm_generated_magic() {
        let mut b = Vec::new();
        b.extend(0x1234_5678u32.to_be_bytes());
        b.extend(TPM_ST_ATTEST_CERTIFY.to_be_bytes());
        let err = CertifyInfo::parse(&b).unwrap_err();
        assert!(err.to_string().contains("TPM_GENERATED"), "{err}");
    }
}
