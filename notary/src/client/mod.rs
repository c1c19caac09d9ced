//! A notary-server's HTTP API as Docker Content Trust uses it.
//!
//! - [`server`]: fetching and publishing role files, with every body bounded.
//! - [`auth`]: docker's token authentication (the 401 challenge flow), shared with registries.
//! - [`credentials`]: the user's registry credentials, as the docker CLI finds them.
//! - [`http_limits`]: how much of any response is read, and same-origin redirects.

pub mod auth;
pub mod credentials;
pub mod http_limits;
pub mod server;

/// An error and its sources, in one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

/// The CA certificates in the PEM file at `path`, each checked to be a certificate: reqwest
/// accepts any bytes and only fails at the first connection, with a TLS error that never
/// names the file.
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        _ => e.to_string(),
    })?;
    let parsed = x509_cert::Certificate::load_pem_chain(&pem)
        .map_err(|_| "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned())?;
    if parsed.is_empty() {
        return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    parsed
        .iter()
        .map(|certificate| {
            use der::Encode;
            let der = certificate.to_der().map_err(|e| e.to_string())?;
            reqwest::Certificate::from_der(&der).map_err(|e| e.to_string())
        })
        .collect()
}

/// Whether `error` is a server answering a TLS handshake with something that is not TLS:
/// most often a plain HTTP server.
pub fn answered_without_tls(error: &reqwest::Error) -> bool {
    rustls_error(error).is_some_and(|tls| matches!(tls, rustls::Error::InvalidMessage(_)))
}

/// The rustls error behind a failed request, if one is. It travels inside io::Errors
/// (nested, too), whose source() skips it.
fn rustls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        let mut wrapped: &(dyn std::error::Error + 'static) = current;
        while let Some(inner) = wrapped
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            wrapped = inner;
        }
        if let Some(tls) = wrapped.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        source = current.source();
    }
    None
}

/// A failed request in one sentence a user can act on, instead of the transport's chain
/// ("error sending request for url (…): client error (Connect): tcp connect error: …").
/// `ca_flag` names where a CA can be given (`--tls-ca`), for certificate failures.
pub fn transport_failure(error: &reqwest::Error, ca_flag: &str) -> String {
    if let Some(tls) = rustls_error(error) {
        return match tls {
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                    format!("its TLS certificate is not issued by a CA this machine trusts: give the server's CA with {ca_flag}")
                }
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ) => "its TLS certificate is for another host name: use the name the certificate was issued for".to_owned(),
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired
                    | rustls::CertificateError::ExpiredContext { .. },
                ) => "its TLS certificate has expired".to_owned(),
                rustls::Error::InvalidMessage(_) => {
                    "it does not answer in TLS there (is it a plain HTTP server?)".to_owned()
                }
                other => format!("the TLS handshake failed: {other}"),
            };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            match io.kind() {
                ErrorKind::ConnectionRefused => {
                    return "nothing is listening there (connection refused): check the host and port, and that the server runs".to_owned()
                }
                ErrorKind::TimedOut => return "the connection timed out".to_owned(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                    return "the server closed the connection (is it speaking HTTPS?)".to_owned()
                }
                _ => {}
            }
        }
        source = current.source();
    }
    if error.is_timeout() {
        return "it did not answer in time".to_owned();
    }
    if error.is_builder() {
        return "that is not a usable URL: write https://HOST[:PORT]".to_owned();
    }
    let chain = error_chain(error);
    if chain.contains("dns error") || chain.contains("failed to lookup address") {
        return "its host name does not resolve".to_owned();
    }
    chain
}
