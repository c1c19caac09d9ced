//! The X.509 facts notary checks on the certificates in trust data (root keys, signer keys):
//! the common name, whether it is a CA, and its validity period.

use time::OffsetDateTime;
use x509_cert::der::Decode;
use x509_cert::Certificate;

/// The first certificate of PEM `text`.
///
/// Decoded in two steps, PEM with the `pem` crate and then DER, never with der's streaming
/// `DecodePem`: on a PEM body whose DER header announces more bytes than the body holds
/// (`-----BEGIN CERTIFICATE-----` `MIIB` `-----END CERTIFICATE-----`), der 0.7.10's PEM reader
/// loops forever, and a notary server chooses what a root.json's `ecdsa-x509` key holds.
/// Found by the `root_certificate` fuzz target.
pub fn from_pem(text: &[u8]) -> Result<Certificate, String> {
    let block = pem::parse(text).map_err(|e| format!("not PEM: {e}"))?;
    if block.tag() != "CERTIFICATE" {
        return Err(format!("a PEM {}, not a CERTIFICATE", block.tag()));
    }
    Certificate::from_der(block.contents()).map_err(|e| e.to_string())
}

/// The subject's common name (printable or UTF-8 string), if it has one.
pub fn common_name(cert: &Certificate) -> Option<String> {
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == x509_cert::der::oid::db::rfc4519::CN)
        .and_then(|atv| {
            x509_cert::der::asn1::PrintableStringRef::try_from(&atv.value)
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    x509_cert::der::asn1::Utf8StringRef::try_from(&atv.value)
                        .map(|s| s.as_str().to_owned())
                })
                .ok()
        })
}

/// Whether BasicConstraints marks it a CA (an unreadable extension counts as a CA).
pub fn is_ca(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == x509_cert::der::oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS)
        .map(|e| {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes())
                .map(|bc| bc.ca)
                .unwrap_or(true)
        })
        .unwrap_or(false)
}

/// Whether `now` is within the certificate's validity period.
pub fn is_valid_at(cert: &Certificate, now: OffsetDateTime) -> bool {
    let validity = &cert.tbs_certificate.validity;
    let not_before = validity.not_before.to_unix_duration().as_secs() as i64;
    let not_after = validity.not_after.to_unix_duration().as_secs() as i64;
    let now = now.unix_timestamp();
    not_before <= now && now <= not_after
}

/// When the certificate stops being valid.
pub fn not_after(cert: &Certificate) -> OffsetDateTime {
    let seconds = cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs() as i64;
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    /// The input that hung der's PEM reader (fuzz/regressions/root_certificate): now an error,
    /// at once.
    #[test]
    fn a_pem_certificate_shorter_than_its_header_says_is_refused() {
        let text = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(super::from_pem(text).is_err());
    }
}
