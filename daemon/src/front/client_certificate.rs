//! What a verified client certificate says about its holder, and whether it was issued for
//! client authentication at all.
//!
//! rustls (webpki) checks the chain, the validity dates and the signatures; it accepts a
//! certificate without an ExtendedKeyUsage extension as good for any purpose. trustd asks
//! more: a client certificate must name clientAuth, as notary-signer demands, so a server
//! certificate issued by the same CA cannot be used to call trustd.

use der::asn1::Ia5String;
use der::oid::ObjectIdentifier;
use der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::Certificate;

use super::caller::RemoteIdentity;

/// id-kp-clientAuth (RFC 5280 4.2.1.12).
const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
/// id-ce-extKeyUsage.
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// id-ce-subjectAltName.
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// id-at-commonName.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Names beyond this many in one certificate are ignored (policy and audit need a few).
const MAX_NAMES: usize = 32;
/// Longer names are ignored rather than matched or logged.
const MAX_NAME_BYTES: usize = 512;

/// Why a certificate that chains to the client CA still cannot identify a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertificateError {
    #[error("the client certificate cannot be parsed: {0}")]
    Malformed(String),
    #[error("the client certificate is not for client authentication: its ExtendedKeyUsage must include clientAuth")]
    NotForClientAuth,
    #[error("the client certificate names nobody: it has no subject CN, DNS name or URI")]
    Anonymous,
}

/// Checks the purpose of a client certificate (DER), before the handshake completes.
pub fn check_client_auth(der: &[u8]) -> Result<(), ClientCertificateError> {
    let certificate = parse(der)?;
    let usages = extension(&certificate, EXT_KEY_USAGE)
        .map(ExtendedKeyUsage::from_der)
        .transpose()
        .map_err(|e| ClientCertificateError::Malformed(e.to_string()))?;
    match usages {
        Some(usages) if usages.0.contains(&CLIENT_AUTH) => Ok(()),
        _ => Err(ClientCertificateError::NotForClientAuth),
    }
}

/// The identity a verified client certificate (DER) carries: its subject CN and its DNS and
/// URI subject alternative names (SPIFFE IDs are URIs).
pub fn identity(der: &[u8]) -> Result<RemoteIdentity, ClientCertificateError> {
    let certificate = parse(der)?;
    let subject = certificate
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|attribute| attribute.oid == COMMON_NAME)
        .map(|cn| cn.to_string())
        .filter(|cn| cn.len() <= MAX_NAME_BYTES)
        .unwrap_or_default();
    let mut dns_names = Vec::new();
    let mut uris = Vec::new();
    if let Some(san) = extension(&certificate, SUBJECT_ALT_NAME) {
        let names = SubjectAltName::from_der(san)
            .map_err(|e| ClientCertificateError::Malformed(e.to_string()))?;
        for name in names.0.iter().take(MAX_NAMES) {
            let (list, text) = match name {
                GeneralName::DnsName(dns) => (&mut dns_names, ia5(dns)),
                GeneralName::UniformResourceIdentifier(uri) => (&mut uris, ia5(uri)),
                _ => continue,
            };
            if text.len() <= MAX_NAME_BYTES {
                list.push(text);
            }
        }
    }
    if subject.is_empty() && dns_names.is_empty() && uris.is_empty() {
        return Err(ClientCertificateError::Anonymous);
    }
    Ok(RemoteIdentity {
        subject,
        dns_names,
        uris,
    })
}

fn parse(der: &[u8]) -> Result<Certificate, ClientCertificateError> {
    Certificate::from_der(der).map_err(|e| ClientCertificateError::Malformed(e.to_string()))
}

fn extension(certificate: &Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|extension| extension.extn_id == oid)
        .map(|extension| extension.extn_value.as_bytes())
}

fn ia5(text: &Ia5String) -> String {
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A self-signed certificate made by openssl with the given extensions.
    fn certificate(subject: &str, extensions: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("openssl");
        command.current_dir(dir.path()).args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.der",
            "-outform",
            "DER",
            "-days",
            "1",
            "-subj",
            subject,
        ]);
        for extension in extensions {
            command.args(["-addext", extension]);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(dir.path().join("c.der")).unwrap()
    }

    #[test]
    fn names_come_from_the_cn_and_the_dns_and_uri_alternative_names() {
        let der = certificate(
            "/O=Example/CN=ci-runner-7",
            &[
                "extendedKeyUsage=clientAuth",
                "subjectAltName=DNS:runner7.example.org,URI:spiffe://example.org/ci/runner-7,IP:192.0.2.1",
            ],
        );
        check_client_auth(&der).unwrap();
        let id = identity(&der).unwrap();
        assert_eq!(id.subject, "CN=ci-runner-7");
        assert_eq!(id.dns_names, ["runner7.example.org"]);
        assert_eq!(id.uris, ["spiffe://example.org/ci/runner-7"]);
    }

    #[test]
    fn a_certificate_without_client_auth_is_refused() {
        let server_only = certificate("/CN=web", &["extendedKeyUsage=serverAuth"]);
        assert_eq!(
            check_client_auth(&server_only),
            Err(ClientCertificateError::NotForClientAuth)
        );
        // No ExtendedKeyUsage at all: webpki would take it for any purpose; trustd does not.
        let any_purpose = certificate("/CN=web", &[]);
        assert_eq!(
            check_client_auth(&any_purpose),
            Err(ClientCertificateError::NotForClientAuth)
        );
        assert!(check_client_auth(b"not a certificate").is_err());
    }
}
