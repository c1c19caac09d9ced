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
