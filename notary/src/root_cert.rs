//! The self-signed X.509 certificate notary requires around every root key.
//!
//! Notary clients and notary-server refuse a root key whose certificate is a CA, whose CN is
//! not the GUN, or that is outside its validity. The certificate here is built field for field
//! as notary's Go code builds it (random 128-bit serial, CN = GUN as PrintableString when it
//! can be, 3650 days from now, KeyUsage digitalSignature+keyEncipherment critical, ExtKeyUsage
//! codeSigning, BasicConstraints CA:FALSE critical, ECDSA with SHA-256), and the TBS part is
//! signed elsewhere, by trustd, with the root key that never leaves its device.

use std::time::Duration;

use x509_cert::der::asn1::{
    Any, BitString, GeneralizedTime, PrintableStringRef, SetOfVec, UtcTime, Utf8StringRef,
};
use x509_cert::der::oid::db::{rfc4519, rfc5912};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

/// Notary's root certificate lifetime: 10 years of 365 days.
pub const VALIDITY_DAYS: u64 = 3650;

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot build the root certificate: {0}")]
    Der(#[from] x509_cert::der::Error),
    #[error("the root key is not an ECDSA P-256 key")]
    NotEcdsa,
}

/// What goes into a root certificate.
pub struct RootCertSpec<'a> {
    /// The repository the certificate is for (its common name).
    pub gun: &'a str,
    /// DER SubjectPublicKeyInfo of the root key.
    pub public_key: &'a [u8],
    /// Seconds since the Unix epoch (notary starts validity at creation time).
    pub not_before: u64,
    /// Big-endian, positive.
    pub serial: [u8; 16],
}

impl RootCertSpec<'_> {
    /// A spec starting now with a fresh random serial.
    pub fn now<'a>(gun: &'a str, public_key: &'a [u8]) -> RootCertSpec<'a> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let mut serial: [u8; 16] = rand::random();
        // rand.Int(2^128) in Go; keep it non-zero.
        if serial == [0; 16] {
            serial[15] = 1;
        }
        RootCertSpec {
            gun,
            public_key,
            not_before: now,
            serial,
        }
    }

    /// The DER TBSCertificate the root key must sign.
    pub fn tbs(&self) -> Result<TbsCertificate, CertError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(self.public_key)?;
        if spki.algorithm.oid != rfc5912::ID_EC_PUBLIC_KEY {
            return Err(CertError::NotEcdsa);
        }
        let name = common_name(self.gun)?;
        let not_after = self.not_before + VALIDITY_DAYS * 24 * 3600;
        let extensions = vec![
            extension(
                &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
                &name,
                true,
            )?,
            extension(
                &ExtendedKeyUsage(vec![rfc5912::ID_KP_CODE_SIGNING]),
                &name,
                false,
            )?,
            extension(
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
                &name,
                true,
            )?,
        ];
        Ok(TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(&self.serial)?,
            signature: ecdsa_with_sha256(),
            issuer: name.clone(),
            validity: Validity {
                not_before: go_time(self.not_before)?,
                not_after: go_time(not_after)?,
            },
            subject: name,
            subject_public_key_info: spki,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(extensions),
        })
    }
}

/// The certificate from its TBS part and a DER ECDSA signature over the TBS DER.
pub fn assemble(tbs: TbsCertificate, der_signature: &[u8]) -> Result<Certificate, CertError> {
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa_with_sha256(),
        signature: BitString::from_bytes(der_signature)?,
    })
}

/// PEM as Go's `pem.Encode` writes it: 64-column lines, `\n`, final newline.
pub fn to_pem(certificate: &Certificate) -> Result<String, CertError> {
    let der = certificate.to_der()?;
    Ok(pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

fn ecdsa_with_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: rfc5912::ECDSA_WITH_SHA_256,
        parameters: None,
    }
}

/// CN = `gun`, as a PrintableString when every character allows it (Go's choice), else UTF-8.
fn common_name(gun: &str) -> Result<Name, CertError> {
    let value = match PrintableStringRef::new(gun) {
        Ok(printable) => Any::encode_from(&printable)?,
        Err(_) => Any::encode_from(&Utf8StringRef::new(gun)?)?,
    };
    let attribute = x509_cert::attr::AttributeTypeAndValue {
        oid: rfc4519::CN,
        value,
    };
    let rdn = RelativeDistinguishedName(SetOfVec::try_from(vec![attribute])?);
    Ok(RdnSequence(vec![rdn]))
}

fn extension<E: AsExtension>(
    value: &E,
    subject: &Name,
    critical: bool,
) -> Result<Extension, CertError> {
    let mut extension = value.to_extension(subject, &[])?;
    extension.critical = critical;
    Ok(extension)
}

/// UTCTime before 2050 and GeneralizedTime from then on, as RFC 5280 and Go do.
fn go_time(unix_seconds: u64) -> Result<Time, CertError> {
    let duration = Duration::from_secs(unix_seconds);
    // 2050-01-01T00:00:00Z
    if unix_seconds < 2_524_608_000 {
        Ok(Time::UtcTime(UtcTime::from_unix_duration(duration)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(
            duration,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root certificate notary 0.7 wrote in notary/tests/fixtures/notary/01-init-v1-root.pem (the certificate in 01-init-v1/root.json).
    const FIXTURE_ROOT_CERT: &str = include_str!("../tests/fixtures/notary/01-init-v1-root.pem");

    #[test]
    fn tbs_equals_what_notary_wrote_for_the_same_inputs() {
        let fixture =
            Certificate::from_der(pem::parse(FIXTURE_ROOT_CERT).unwrap().contents()).unwrap();
        let tbs = &fixture.tbs_certificate;
        let serial: [u8; 16] = tbs.serial_number.as_bytes().try_into().unwrap();
        let not_before = tbs.validity.not_before.to_unix_duration().as_secs();
        let spki = tbs.subject_public_key_info.to_der().unwrap();
        let ours = RootCertSpec {
            gun: "127.0.0.1:5000/demo",
            public_key: &spki,
            not_before,
            serial,
        }
        .tbs()
        .unwrap();
        assert_eq!(ours.to_der().unwrap(), tbs.to_der().unwrap());
        // And the whole certificate, given notary's signature, is the same PEM text.
        let rebuilt = assemble(ours, fixture.signature.raw_bytes()).unwrap();
        assert_eq!(to_pem(&rebuilt).unwrap(), FIXTURE_ROOT_CERT);
    }

    #[test]
    fn dates_from_2050_are_generalized_time_and_odd_guns_utf8() {
        assert!(matches!(go_time(2_524_607_999).unwrap(), Time::UtcTime(_)));
        assert!(matches!(
            go_time(2_524_608_000).unwrap(),
            Time::GeneralTime(_)
        ));
        let name = common_name("registry.example.com/team_app").unwrap();
        assert!(name.to_string().contains("team_app"));
    }

    #[test]
    fn refuses_keys_that_are_not_ecdsa() {
        let ed = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let spki =
            ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_der(&ed.verifying_key()).unwrap();
        let spec = RootCertSpec::now("g", spki.as_bytes());
        assert!(matches!(spec.tbs(), Err(CertError::NotEcdsa)));
    }
}
