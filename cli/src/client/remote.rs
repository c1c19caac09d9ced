//! trustd on another machine, over its mutual-TLS listener: the CI fleet's way in.
//!
//! trustctl presents a client certificate (its identity in trustd's policy and audit trail)
//! and verifies trustd's server certificate against the CA it is given, or the system's
//! roots. The client key is a file like any TLS client's; signing keys stay in trustd.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::CliError;

/// How to reach and authenticate to a remote trustd.
#[derive(Debug, Clone)]
pub struct RemoteTrustd {
    /// `https://host:port`.
    pub url: String,
    /// The client certificate chain (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA (PEM) trustd's certificate must chain to; the system's roots when unset.
    pub ca: Option<PathBuf>,
}

impl fmt::Display for RemoteTrustd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl RemoteTrustd {
    /// The host and port of the URL, which must be `https://host:port` (or `https://host`:
    /// port 443).
    fn authority(&self) -> Result<(String, u16), CliError> {
        let bad = || {
            CliError::Usage(format!(
                "--trustd {:?} is not an https://host:port URL",
                self.url
            ))
        };
        let uri: Uri = self.url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("https") || uri.path().len() > 1 {
            return Err(bad());
        }
        let host = uri.host().ok_or_else(bad)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok((host, uri.port_u16().unwrap_or(443)))
    }

    /// rustls's client configuration: trustd's CA, the client certificate, HTTP/2.
    pub fn tls_config(&self) -> Result<rustls::ClientConfig, CliError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                for certificate in read_certificates("--trustd-ca", ca)? {
                    roots.add(certificate).map_err(|e| {
                        CliError::Usage(format!(
                            "--trustd-ca {}: not a usable CA certificate: {e}",
                            ca.display()
                        ))
                    })?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        let chain = read_certificates("--tls-cert", &self.certificate)?;
        let key = read_key(&self.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CliError::Failed(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                CliError::Usage(format!(
                    "--tls-cert {} and --tls-key {} do not make a usable client identity: {e}",
                    self.certificate.display(),
                    self.key.display()
                ))
            })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// A gRPC channel to trustd over mutual TLS. The handshake happens here, so a refused
    /// certificate is reported now, in words.
    pub async fn channel(&self) -> Result<Channel, CliError> {
        let (host, port) = self.authority()?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.tls_config()?));
        let server_name = ServerName::try_from(host.clone()).map_err(|_| {
            CliError::Usage(format!(
                "--trustd {:?}: {host:?} is not a host name",
                self.url
            ))
        })?;
        let url = self.url.clone();
        let unreachable = move |e: &dyn fmt::Display| {
            CliError::Unreachable(format!("cannot talk to trustd at {url}: {e}"))
        };
        // Connect once up front: a refused certificate or an unknown CA reads better from the
        // handshake than from tonic's transport error.
        let first = handshake(&connector, &server_name, &host, port)
            .await
            .map_err(|e| unreachable(&e))?;
        accepted(first).await.map_err(|e| {
            CliError::Unreachable(format!(
                "trustd at {} refused this client (--tls-cert {}): {e}",
                self.url,
                self.certificate.display()
            ))
        })?;
        Endpoint::from_shared(format!("http://{host}:{port}"))
            .map_err(|e| unreachable(&e))?
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let (connector, server_name, host) =
                    (connector.clone(), server_name.clone(), host.clone());
                async move {
                    handshake(&connector, &server_name, &host, port)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await
            .map_err(|e| unreachable(&e))
    }
}

/// Waits for trustd to accept the client certificate. In TLS 1.3 the client's handshake ends
/// before the server has checked the certificate, so a refusal only shows as an alert on the
/// first read: send the HTTP/2 preface and an empty SETTINGS frame, and read until trustd's
/// own SETTINGS (accepted) or the alert (refused) arrives.
async fn accepted(mut tls: tokio_rustls::client::TlsStream<TcpStream>) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    tls.write_all(PREFACE).await?;
    tls.flush().await?;
    let mut frame = [0u8; 9];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), tls.read(&mut frame))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 10 s"))?;
    match read? {
        0 => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "it closed the connection",
        )),
        _ => Ok(()),
    }
}

async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    server_name: &ServerName<'static>,
    host: &str,
    port: u16,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "no connection within 10 s")
    })??;
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        connector.connect(server_name.clone(), tcp),
    )
    .await
    .map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "no TLS handshake within 10 s")
    })?
}

fn read_certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, CliError> {
    let pem = std::fs::read(path)
        .map_err(|e| CliError::Usage(format!("{flag} {}: {e}", path.display())))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            CliError::Usage(format!(
                "{flag} {}: not PEM certificates: {e}",
                path.display()
            ))
        })?;
    if certificates.is_empty() {
        return Err(CliError::Usage(format!(
            "{flag} {}: holds no PEM CERTIFICATE block",
            path.display()
        )));
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CliError> {
    let pem = zeroize::Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| CliError::Usage(format!("--tls-key {}: {e}", path.display())))?,
    );
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        CliError::Usage(format!(
            "--tls-key {}: holds no PEM private key: {e}",
            path.display()
        ))
    })
}
