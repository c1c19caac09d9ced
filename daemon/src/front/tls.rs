//! The mutual-TLS listener: callers on other machines (notary-server, CI runners), each known
//! by its client certificate.
//!
//! Every connection must present a certificate that chains to the configured client CA, is
//! within its validity dates and names clientAuth; the certificate's subject CN and DNS/URI
//! names become the connection's [`Caller`], which the same policy, bounds and audit trail
//! as the Unix socket's take. Connections are admitted per remote host before the handshake
//! (so one host cannot hold every slot with handshakes it never finishes), handshakes run
//! concurrently under the handshake timeout, and a finished connection that goes quiet is
//! closed by the idle timeout like any other.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::admission::{CallerKey, ConnectionGate, RateLimitedLog};
use super::client_certificate;
use super::stream::{CallerStream, Timeouts};
use super::Caller;
use crate::config::TlsListenerConfig;

/// Why the TLS listener could not start; each names the setting and file to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("tls_listener.{setting} {path}: cannot read it: {error}")]
    Read {
        setting: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("tls_listener.{setting} {path}: {problem}")]
    Content {
        setting: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("tls_listener: {0}")]
    Rejected(String),
    #[error("tls_listener.address {address}: cannot listen: {error}")]
    Bind {
        address: SocketAddr,
        error: io::Error,
    },
}

/// A TLS connection ready for gRPC, with its caller.
pub type TlsCallerStream = CallerStream<TlsStream<TcpStream>>;

/// The bound listener and what accepts TLS on it.
pub struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    /// Loads the certificates and key and binds the address: every problem shows at startup.
    pub async fn bind(config: &TlsListenerConfig) -> Result<TlsListener, TlsSetupError> {
        let acceptor = TlsAcceptor::from(server_config(config)?);
        let listener =
            TcpListener::bind(config.address)
                .await
                .map_err(|error| TlsSetupError::Bind {
                    address: config.address,
                    error,
                })?;
        Ok(TlsListener { listener, acceptor })
    }

    /// The address bound (the port the system chose when the config said 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Connections whose handshake finished with a verified client certificate. Accepting
    /// stops when the stream is dropped (the server shutting down).
    pub fn incoming(
        self,
        gate: Arc<ConnectionGate>,
        timeouts: Timeouts,
    ) -> ReceiverStream<io::Result<TlsCallerStream>> {
        let (sender, receiver) = mpsc::channel(64);
        tokio::spawn(accept_loop(self, gate, timeouts, sender));
        ReceiverStream::new(receiver)
    }
}

static ACCEPT_FAILED: RateLimitedLog = RateLimitedLog::new(Duration::from_secs(10));
static HANDSHAKE_FAILED: RateLimitedLog = RateLimitedLog::new(Duration::from_secs(10));

async fn accept_loop(
    listener: TlsListener,
    gate: Arc<ConnectionGate>,
    timeouts: Timeouts,
    sender: mpsc::Sender<io::Result<TlsCallerStream>>,
) {
    loop {
        let accepted = tokio::select! {
            () = sender.closed() => return,
            accepted = listener.listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                ACCEPT_FAILED.log(|suppressed| {
                    tracing::warn!(%error, suppressed, "TLS accept failed; retrying shortly (at the descriptor limit? see limits.max_connections and LimitNOFILE=)")
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over its limit, the connection is closed at once (dropped here).
        let Some(slot) = gate.admit(CallerKey::Host(peer.ip())) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = listener.acceptor.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(timeouts.handshake, acceptor.accept(stream));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => return handshake_failed(peer, &error.to_string()),
                Err(_) => {
                    return handshake_failed(peer, "no handshake within the handshake timeout")
                }
            };
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .ok_or(client_certificate::ClientCertificateError::Anonymous)
                .and_then(|certificate| client_certificate::identity(certificate));
            match identity {
                Ok(identity) => {
                    let caller = Arc::new(Caller::Remote(identity));
                    let _ = sender
                        .send(Ok(CallerStream::new(tls, caller, slot, timeouts)))
                        .await;
                }
                Err(error) => handshake_failed(peer, &error.to_string()),
            }
        });
    }
}

fn handshake_failed(peer: SocketAddr, why: &str) {
    HANDSHAKE_FAILED.log(|suppressed| {
        tracing::warn!(%peer, reason = why, suppressed, "closing a TLS connection whose handshake failed")
    });
}

/// Loads the certificates and key as startup would, without binding: `trustd --check-config`.
pub fn check(config: &TlsListenerConfig) -> Result<(), TlsSetupError> {
    server_config(config).map(drop)
}

/// rustls's server configuration: the server certificate chain and key, client certificates
/// required and verified against the client CA, HTTP/2 only (gRPC clients require ALPN h2).
fn server_config(config: &TlsListenerConfig) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let chain = read_certificates("certificate", &config.certificate)?;
    let key = read_key(&config.key)?;
    let client_cas = read_certificates("client_ca", &config.client_ca)?;
    let mut roots = RootCertStore::empty();
    for ca in client_cas {
        roots.add(ca).map_err(|e| TlsSetupError::Content {
            setting: "client_ca",
            path: config.client_ca.clone(),
            problem: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::Content {
            setting: "client_ca",
            path: config.client_ca.clone(),
            problem: e.to_string(),
        })?;
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rejected(e.to_string()))?
        .with_client_cert_verifier(Arc::new(ClientAuthOnly { webpki }))
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsSetupError::Rejected(format!(
                "the certificate and key do not make a usable server identity: {e}"
            ))
        })?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(server))
}

fn read_file(
    setting: &'static str,
    path: &Path,
) -> Result<zeroize::Zeroizing<Vec<u8>>, TlsSetupError> {
    std::fs::read(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|error| TlsSetupError::Read {
            setting,
            path: path.to_owned(),
            error,
        })
}

fn read_certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read_file(setting, path)?;
    let problem = |problem: String| TlsSetupError::Content {
        setting,
        path: path.to_owned(),
        problem,
    };
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(problem("holds no PEM CERTIFICATE block".into()));
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let pem = read_file("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsSetupError::Content {
        setting: "key",
        path: path.to_owned(),
        problem: format!("holds no PEM private key: {e}"),
    })
}

/// webpki's client verification plus trustd's own demand that the certificate names
/// clientAuth (see `client_certificate`): a refusal ends the handshake with a TLS alert, so
/// the client learns why.
#[derive(Debug)]
struct ClientAuthOnly {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for ClientAuthOnly {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        client_certificate::check_client_auth(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::InvalidPurpose)
        })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
