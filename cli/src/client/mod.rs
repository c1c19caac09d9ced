//! trustd as trustctl and the tests reach it: the connection over its Unix socket (here) or
//! its mutual-TLS listener (`remote`), and the signer that puts trustd's keys behind the
//! Notary library's signing (`signer`).

pub mod remote;
pub mod signer;

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use trustd_proto::signer_client::SignerClient;

use crate::error::CliError;

/// Where trustd listens when nothing else says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/trustd/trustd.sock";

pub type Client = SignerClient<Channel>;

/// Where trustd is: its local socket, or a remote trustd's TLS listener.
#[derive(Debug, Clone)]
pub enum Trustd {
    Socket(PathBuf),
    Remote(remote::RemoteTrustd),
}

impl std::fmt::Display for Trustd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trustd::Socket(path) => write!(f, "{}", path.display()),
            Trustd::Remote(remote) => write!(f, "{remote}"),
        }
    }
}

/// What the command line and the environment said about where trustd is.
#[derive(Debug, Default)]
pub struct TrustdArgs {
    pub socket: Option<PathBuf>,
    pub url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub trustd_ca: Option<PathBuf>,
}

/// The trustd to use: a URL (`--trustd`/`$TRUSTD_URL`, else `[remote] url` in the config)
/// means the remote one, with its client certificate and key; otherwise the socket
/// (`--socket`/`$TRUSTD_SOCKET`, then `socket = ...`, then the default).
pub fn resolve(args: TrustdArgs, config: &crate::config::Config) -> Result<Trustd, CliError> {
    let remote = &config.remote;
    let url = args.url.or_else(|| remote.url.clone());
    let Some(url) = url.filter(|_| args.socket.is_none()) else {
        if args.tls_cert.is_some() || args.tls_key.is_some() {
            return Err(CliError::Usage(
                "--tls-cert and --tls-key are for a remote trustd: add --trustd https://host:port"
                    .into(),
            ));
        }
        return Ok(Trustd::Socket(
            args.socket
                .or_else(|| config.socket.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        ));
    };
    let missing = |what: &str| {
        CliError::Usage(format!(
            "trustd at {url} needs a client certificate: give {what} (or set it under [remote] in trustctl's config)"
        ))
    };
    Ok(Trustd::Remote(remote::RemoteTrustd {
        certificate: args
            .tls_cert
            .or_else(|| remote.tls_cert.clone())
            .ok_or_else(|| missing("--tls-cert FILE"))?,
        key: args
            .tls_key
            .or_else(|| remote.tls_key.clone())
            .ok_or_else(|| missing("--tls-key FILE"))?,
        ca: args.trustd_ca.or_else(|| remote.ca.clone()),
        url,
    }))
}

/// The user trustd runs as, besides root (`trustd_user` in trustctl's config; set once by
/// the binary before connecting).
pub static TRUSTD_USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The user the Debian package and the systemd unit run trustd as.
const DEFAULT_TRUSTD_USER: &str = "trustd";

/// Who may be at the other end of trustd's socket: root, the configured trustd user, or this
/// very user (a trustd of one's own, as the quickstart runs it).
fn trusted_server_uids() -> Vec<u32> {
    let name = TRUSTD_USER
        .get()
        .map(String::as_str)
        .unwrap_or(DEFAULT_TRUSTD_USER);
    let mut uids = vec![0, effective_uid()];
    if let Some(uid) = uid_of(name) {
        uids.push(uid);
    }
    uids
}

// unsafe_code allowed here: libc::geteuid (FFI).
#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid of user `name`, from the passwd database.
// unsafe_code allowed here: getpwnam_r (FFI).
#[allow(unsafe_code)]
fn uid_of(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: passwd is plain old data; all-zero is a valid value for getpwnam_r to fill.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `entry` and `result` are ours, `buf` has
    // the length passed, and `name` is NUL-terminated.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(entry.pw_uid)
}

/// Refuses a socket served by anyone but trustd: in a directory others can write, another
/// user can put their own socket in trustd's place and receive what trustctl sends (a key
/// for `key load`, a PIN). The kernel says who listens (SO_PEERCRED); nothing is sent first.
fn check_server(stream: &UnixStream, socket: &Path) -> std::io::Result<()> {
    let peer = stream.peer_cred()?;
    let trusted = trusted_server_uids();
    if trusted.contains(&peer.uid()) {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "the process serving {} runs as uid {}, which is neither root, trustd's user ({}) nor you: it is not trustd, and trustctl sends it nothing (if trustd does run as that user, set trustd_user in trustctl's config)",
            socket.display(),
            peer.uid(),
            TRUSTD_USER.get().map(String::as_str).unwrap_or(DEFAULT_TRUSTD_USER),
        ),
    ))
}

/// Opens a connection to trustd, local or remote; fails with a message that says how to fix
/// it.
pub async fn connect(trustd: &Trustd) -> Result<Client, CliError> {
    let channel = match trustd {
        Trustd::Socket(path) => return connect_socket(path).await,
        Trustd::Remote(remote) => remote.channel().await?,
    };
    Ok(SignerClient::new(channel)
        .max_decoding_message_size(trustd_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(trustd_proto::MAX_MESSAGE_BYTES))
}

/// Opens a connection to trustd's Unix socket at `socket`.
pub async fn connect_socket(socket: &Path) -> Result<Client, CliError> {
    // Connect once up front: the error for a missing or forbidden socket is clearer than the
    // transport error tonic would report.
    let first = UnixStream::connect(socket)
        .await
        .map_err(|e| CliError::connect(socket, e))?;
    check_server(&first, socket).map_err(|e| CliError::Unreachable(e.to_string()))?;
    drop(first);
    let path = socket.to_owned();
    let channel = Endpoint::from_static("http://trustd.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = UnixStream::connect(&path).await?;
                check_server(&stream, &path)?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| {
            CliError::Unreachable(format!(
                "cannot talk to trustd at {}: {e}",
                socket.display()
            ))
        })?;
    Ok(SignerClient::new(channel)
        .max_decoding_message_size(trustd_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(trustd_proto::MAX_MESSAGE_BYTES))
}

/// Selects a key in trustd by its name.
pub fn key_selector(name: &str) -> Option<trustd_proto::KeySelector> {
    Some(trustd_proto::KeySelector {
        selector: Some(trustd_proto::key_selector::Selector::Name(name.to_owned())),
    })
}

/// A key's public information: algorithm, ID, public key.
pub async fn key_info(client: &mut Client, name: &str) -> Result<trustd_proto::KeyInfo, CliError> {
    client
        .get_public_key(trustd_proto::GetPublicKeyRequest {
            key: key_selector(name),
        })
        .await
        .map_err(|s| CliError::from_status(&format!("cannot use key {name:?}"), s))?
        .into_inner()
        .key
        .ok_or_else(|| CliError::Failed("trustd returned no key".into()))
}

/// The one signature scheme a key of this algorithm makes.
pub fn signature_algorithm(key_algorithm: i32) -> Option<trustd_proto::SignatureAlgorithm> {
    use trustd_proto::{KeyAlgorithm, SignatureAlgorithm};
    match KeyAlgorithm::try_from(key_algorithm).ok()? {
        KeyAlgorithm::EcdsaP256 => Some(SignatureAlgorithm::EcdsaP256Sha256),
        KeyAlgorithm::EcdsaP384 => Some(SignatureAlgorithm::EcdsaP384Sha384),
        KeyAlgorithm::Ed25519 => Some(SignatureAlgorithm::Ed25519),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            Some(SignatureAlgorithm::RsaPssSha256)
        }
        KeyAlgorithm::Unspecified => None,
    }
}

/// Tells the person at the terminal to touch the card when the key's touch policy makes the
/// card wait for it (a YubiKey waits 15 s, then refuses).
pub fn announce_touch(key: &trustd_proto::KeyInfo) {
    use trustd_proto::TouchPolicy;
    let Some(piv) = &key.piv else { return };
    match TouchPolicy::try_from(piv.touch_policy) {
        Ok(TouchPolicy::Always) | Ok(TouchPolicy::Cached) => eprintln!(
            "Touch the YubiKey (serial {}, slot {}) to sign with key {:?}...",
            piv.serial, piv.slot, key.name
        ),
        _ => {}
    }
}
