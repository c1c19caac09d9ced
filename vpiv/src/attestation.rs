//! The card's attestation PKI, shaped like Yubico's: a root CA (a test root here, which tests
//! configure as the trust anchor), the device's f9 certificate issued by it, and per-slot
//! attestation certificates the f9 key issues, carrying Yubico's extensions (firmware,
//! serial, PIN and touch policy, form factor).

use std::str::FromStr;
use std::time::Duration;

use der::asn1::OctetString;
use der::oid::{AssociatedOid, ObjectIdentifier};
use der::{Encode, Length, Writer};
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::AsExtension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

/// What a slot's attestation states besides its public key.
pub struct SlotFacts {
    pub slot: u8,
    pub firmware: [u8; 3],
    pub serial: u32,
    pub pin_policy: u8,
    pub touch_policy: u8,
}

pub struct AttestationCa {
    pub root_der: Vec<u8>,
    f9_key: SigningKey,
    f9_name: Name,
    pub f9_der: Vec<u8>,
}

impl AttestationCa {
    pub fn new() -> AttestationCa {
        let root_key = SigningKey::random(&mut rand::rngs::OsRng);
        let root_name = Name::from_str("CN=trustd test PIV Root CA").expect("a valid name");
        let root = CertificateBuilder::new(
            Profile::Root,
            serial(),
            validity(),
            root_name.clone(),
            spki_of(&root_key),
            &root_key,
        )
        .expect("root builder")
        .build::<DerSignature>()
        .expect("root certificate");
        let f9_key = SigningKey::random(&mut rand::rngs::OsRng);
        let f9_name = Name::from_str("CN=Yubico PIV Attestation").expect("a valid name");
        let f9 = CertificateBuilder::new(
            Profile::SubCA {
                issuer: root_name,
                path_len_constraint: Some(0),
            },
            serial(),
            validity(),
            f9_name.clone(),
            spki_of(&f9_key),
            &root_key,
        )
        .expect("f9 builder")
        .build::<DerSignature>()
        .expect("f9 certificate");
        AttestationCa {
            root_der: root.to_der().expect("DER"),
            f9_der: f9.to_der().expect("DER"),
            f9_key,
            f9_name,
        }
    }

    /// The root certificate as PEM, for a verifier's trust anchor.
    pub fn root_pem(&self) -> String {
        let body = base64_lines(&self.root_der);
        format!("-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
    }

    /// A YubiKey-style attestation certificate for the key `public` (DER SPKI) in a slot.
    pub fn attest(&self, public: &[u8], facts: &SlotFacts) -> Vec<u8> {
        use der::Decode;
        let subject = Name::from_str(&format!("CN=YubiKey PIV Attestation {:02x}", facts.slot))
            .expect("a valid name");
        let mut builder = CertificateBuilder::new(
            Profile::Manual {
                issuer: Some(self.f9_name.clone()),
            },
            serial(),
            validity(),
            subject,
            SubjectPublicKeyInfoOwned::from_der(public).expect("the slot's public key"),
            &self.f9_key,
        )
        .expect("attestation builder");
        builder
            .add_extension(&Firmware(facts.firmware.to_vec()))
            .expect("extension");
        builder
            .add_extension(&SerialExt(
                der::asn1::Uint::new(&facts.serial.to_be_bytes())
                    .expect("serial")
                    .to_der()
                    .expect("DER"),
            ))
            .expect("extension");
        builder
            .add_extension(&Policy(vec![facts.pin_policy, facts.touch_policy]))
            .expect("extension");
        builder
            .add_extension(&FormFactor(vec![0x01]))
            .expect("extension");
        let certificate = builder.build::<DerSignature>().expect("attestation");
        certificate.to_der().expect("DER")
    }
}

impl Default for AttestationCa {
    fn default() -> Self {
        Self::new()
    }
}

fn spki_of(key: &SigningKey) -> SubjectPublicKeyInfoOwned {
    use der::Decode;
    let der = key
        .verifying_key()
        .to_public_key_der()
        .expect("public key DER");
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("SPKI")
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::new(&bytes).expect("serial")
}

fn validity() -> Validity {
    Validity::from_now(Duration::from_secs(20 * 365 * 24 * 3600)).expect("validity")
}

fn base64_lines(der: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    let mut out = String::new();
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ASCII"));
        out.push('\n');
    }
    out
}

/// Yubico's attestation extensions carry raw bytes in extnValue (the firmware version is three
/// bytes, not a DER value), so each is a type that encodes its bytes as they are.
macro_rules! raw_extension {
    ($name:ident, $oid:literal) => {
        struct $name(Vec<u8>);

        impl AssociatedOid for $name {
            const OID: ObjectIdentifier = ObjectIdentifier::new_unwrap($oid);
        }

        impl Encode for $name {
            fn encoded_len(&self) -> der::Result<Length> {
                Length::try_from(self.0.len())
            }

            fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
                writer.write(&self.0)
            }
        }

        impl AsExtension for $name {
            fn critical(&self, _: &Name, _: &[x509_cert::ext::Extension]) -> bool {
                false
            }

            fn to_extension(
                &self,
                _: &Name,
                _: &[x509_cert::ext::Extension],
            ) -> Result<x509_cert::ext::Extension, der::Error> {
                Ok(x509_cert::ext::Extension {
                    extn_id: Self::OID,
                    critical: false,
                    extn_value: OctetString::new(self.0.clone())?,
                })
            }
        }
    };
}

raw_extension!(Firmware, "1.3.6.1.4.1.41482.3.3");
raw_extension!(SerialExt, "1.3.6.1.4.1.41482.3.7");
raw_extension!(Policy, "1.3.6.1.4.1.41482.3.8");
raw_extension!(FormFactor, "1.3.6.1.4.1.41482.3.9");
