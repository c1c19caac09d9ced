//! Reading key files the way docker, notary, openssl and cosign write them, and writing
//! public keys.
//!
//! Private keys are normalized to unencrypted PKCS#8 DER in zeroizing buffers: that is the only
//! form trustd accepts for `key load`, and the buffer is wiped as soon as it has been sent.

use pkcs8::der::Decode;
use pkcs8::{EncodePrivateKey, EncryptedPrivateKeyInfo};
use zeroize::Zeroizing;

use crate::error::CliError;

/// Whether the file's private key is passphrase-protected (decide before prompting).
pub fn is_encrypted(pem_text: &str) -> bool {
    pem_text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

/// Checks PKCS#8 DER and repairs the one quirk seen in the field: the notary client (and so
/// docker) writes keys with version 1 (RFC 5958 OneAsymmetricKey) but without the public key
/// that version announces. Such a key is the same key as version 0, and is re-labelled so.
fn normalized_pkcs8(mut der: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let first_error = match pkcs8::PrivateKeyInfo::from_der(&der) {
        Ok(_) => return Ok(der),
        Err(e) => e,
    };
    // SEQUENCE header (short or long length), then INTEGER 1.
    let header = match der.get(1) {
        Some(&len) if len < 0x80 => 2,
        Some(&len) => 2 + (len & 0x7f) as usize,
        None => 0,
    };
    if header > 0 && der.get(header..header + 3) == Some(&[0x02, 0x01, 0x01][..]) {
        der[header + 2] = 0;
        if pkcs8::PrivateKeyInfo::from_der(&der).is_ok() {
            return Ok(der);
        }
    }
    Err(CliError::Usage(format!(
        "invalid PKCS#8 private key: {first_error}"
    )))
}

/// Extracts the private key from PEM text as PKCS#8 DER.
///
/// Accepts PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, as docker and
/// notary write them), SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`); PEM headers such
/// as docker's `role: ...` are ignored.
pub fn private_key_pkcs8(
    pem_text: &str,
    passphrase: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let blocks = pem::parse_many(pem_text.as_bytes())
        .map_err(|e| CliError::Usage(format!("not a PEM file: {e}")))?;
    let block = blocks
        .into_iter()
        .find(|b| b.tag().ends_with("PRIVATE KEY"))
        .ok_or_else(|| {
            CliError::Usage(
                "the file holds no PEM private key (expected a PRIVATE KEY block)".into(),
            )
        })?;
    if block.headers().get("Proc-Type").is_some() {
        return Err(CliError::Usage(
            "legacy OpenSSL-encrypted PEM is not supported: convert it with `openssl pkcs8 -topk8 -in KEY -out KEY.p8`".into(),
        ));
    }
    let der = Zeroizing::new(block.contents().to_vec());
    let unsupported =
        |what: &str, e: &dyn std::fmt::Display| CliError::Usage(format!("{what}: {e}"));
    match block.tag() {
        "PRIVATE KEY" => normalized_pkcs8(der),
        "ENCRYPTED PRIVATE KEY" => {
            let passphrase = passphrase.ok_or_else(|| {
                CliError::Usage("the key is encrypted and no passphrase was given".into())
            })?;
            let info = EncryptedPrivateKeyInfo::from_der(&der)
                .map_err(|e| unsupported("invalid encrypted PKCS#8 key", &e))?;
            let document = info.decrypt(passphrase).map_err(|_| {
                CliError::Failed("cannot decrypt the key: wrong passphrase, or an encryption scheme trustctl does not know".into())
            })?;
            normalized_pkcs8(Zeroizing::new(document.as_bytes().to_vec()))
        }
        "EC PRIVATE KEY" => {
            let key = p256::SecretKey::from_sec1_der(&der).map_err(|e| {
                unsupported("not a P-256 EC private key (trustd keeps P-256 keys)", &e)
            })?;
            let doc = key
                .to_pkcs8_der()
                .map_err(|e| unsupported("cannot convert the EC key", &e))?;
            Ok(Zeroizing::new(doc.as_bytes().to_vec()))
        }
        "RSA PRIVATE KEY" => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            let key = rsa::RsaPrivateKey::from_pkcs1_der(&der)
                .map_err(|e| unsupported("invalid RSA private key", &e))?;
            let doc = key
                .to_pkcs8_der()
                .map_err(|e| unsupported("cannot convert the RSA key", &e))?;
            Ok(Zeroizing::new(doc.as_bytes().to_vec()))
        }
        other => Err(CliError::Usage(format!(
            "{other} keys are not supported: use a PKCS#8, SEC1 (EC) or PKCS#1 (RSA) key"
        ))),
    }
}

/// PEM `PUBLIC KEY` (SubjectPublicKeyInfo), 64-column lines, as openssl and cosign write it.
pub fn public_key_pem(spki_der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("PUBLIC KEY", spki_der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// An X.509 certificate as PEM (64-column lines).
pub fn certificate_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The DER of the first certificate in a PEM file.
pub fn certificate_der(pem_text: &[u8]) -> Result<Vec<u8>, String> {
    let blocks = pem::parse_many(pem_text).map_err(|e| format!("not a PEM file: {e}"))?;
    blocks
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .ok_or_else(|| "no CERTIFICATE block in the file".to_owned())
}

/// Reads a public key file: PEM `PUBLIC KEY` (headers allowed) or an X.509 certificate.
/// A public key as `docker trust key generate` writes `NAME.pub`: PEM with a `role` header
/// naming the signer, ready for `docker trust signer add --key` or `trustctl signer add`.
pub fn docker_public_key_pem(spki_der: &[u8], role: &str) -> String {
    let mut block = pem::Pem::new("PUBLIC KEY", spki_der.to_vec());
    block
        .headers_mut()
        .add("role", role)
        .expect("role names make valid PEM headers");
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

pub fn public_key_der(pem_text: &str) -> Result<Vec<u8>, CliError> {
    let blocks = pem::parse_many(pem_text.as_bytes())
        .map_err(|e| CliError::Usage(format!("not a PEM file: {e}")))?;
    for block in blocks {
        match block.tag() {
            "PUBLIC KEY" => return Ok(block.contents().to_vec()),
            t if t.ends_with("PRIVATE KEY") => {
                return Err(CliError::Usage(
                    "that is a private key; pass the public key (trustctl key public NAME)".into(),
                ))
            }
            _ => {}
        }
    }
    Err(CliError::Usage(
        "the file holds no PEM PUBLIC KEY block".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkcs8::EncodePublicKey;

    fn p256_key() -> p256::SecretKey {
        p256::SecretKey::from_slice(&[5u8; 32]).unwrap()
    }

    #[test]
    fn accepts_the_notary_clients_version_1_keys_without_a_public_key() {
        let key = p256_key();
        let good = key.to_pkcs8_der().unwrap().as_bytes().to_vec();
        // What the notary client writes: the same structure, labelled version 1.
        let mut notary = good.clone();
        let at = notary.windows(3).position(|w| w == [2, 1, 0]).unwrap();
        notary[at + 2] = 1;
        assert!(pkcs8::PrivateKeyInfo::from_der(&notary).is_err());
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", notary));
        assert_eq!(&private_key_pkcs8(&pem, None).unwrap()[..], &good[..]);
        // Anything else that fails to parse is still refused.
        let junk = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![0x30, 3, 2, 1, 1]));
        assert!(private_key_pkcs8(&junk, None).is_err());
    }

    #[test]
    fn reads_pkcs8_and_sec1_to_the_same_der() {
        let key = p256_key();
        let pkcs8 = key.to_pkcs8_pem(Default::default()).unwrap();
        let sec1 = key.to_sec1_pem(Default::default()).unwrap();
        let a = private_key_pkcs8(&pkcs8, None).unwrap();
        let b = private_key_pkcs8(&sec1, None).unwrap();
        assert_eq!(*a, *b);
    }

    #[test]
    fn decrypts_encrypted_pkcs8_and_rejects_a_wrong_passphrase() {
        let key = p256_key();
        let doc = key.to_pkcs8_der().unwrap();
        let info = pkcs8::PrivateKeyInfo::from_der(doc.as_bytes()).unwrap();
        // PBES2 with PBKDF2-SHA256 and AES-256-CBC, as openssl and docker write keys.
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7u8; 16], &[9u8; 16])
                .unwrap();
        let encrypted = info.encrypt_with_params(params, b"correct horse").unwrap();
        let pem_text = encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", Default::default())
            .unwrap();
        assert!(is_encrypted(&pem_text));
        let der = private_key_pkcs8(&pem_text, Some(b"correct horse")).unwrap();
        assert_eq!(der.as_slice(), doc.as_bytes());
        assert!(matches!(
            private_key_pkcs8(&pem_text, Some(b"wrong")),
            Err(CliError::Failed(_))
        ));
    }

    #[test]
    fn ignores_docker_role_headers() {
        let key = p256_key();
        let doc = key.to_pkcs8_der().unwrap();
        let mut block = pem::Pem::new("PRIVATE KEY", doc.as_bytes().to_vec());
        block.headers_mut().add("role", "alice").unwrap();
        let text = pem::encode(&block);
        assert!(text.contains("role: alice"));
        assert_eq!(
            private_key_pkcs8(&text, None).unwrap().as_slice(),
            doc.as_bytes()
        );
    }

    #[test]
    fn public_key_round_trips_and_private_key_is_refused() {
        let key = p256_key();
        let spki = key.public_key().to_public_key_der().unwrap();
        let text = public_key_pem(spki.as_bytes());
        assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(public_key_der(&text).unwrap(), spki.as_bytes());
        let private = key.to_pkcs8_pem(Default::default()).unwrap();
        assert!(public_key_der(&private).is_err());
    }

    #[test]
    fn garbage_is_a_usage_error() {
        assert!(matches!(
            private_key_pkcs8("hello", None),
            Err(CliError::Usage(_))
        ));
    }
}
