//! Connecting to trustd over its Unix socket.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use trustd_proto::signer_client::SignerClient;

use crate::error::CliError;

/// Where trustd listens when nothing else says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/trustd/trustd.sock";

pub type Client = SignerClient<Channel>;

/// The socket to use: `--socket` or `$TRUSTD_SOCKET` (both handled by the caller and passed in
/// as `explicit`), then `socket = ...` in trustctl's config file, then the default.
pub fn resolve_socket(explicit: Option<PathBuf>, config: &crate::config::Config) -> PathBuf {
    explicit
        .or_else(|| config.socket.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Opens a connection to trustd; fails with a message that says how to fix it.
pub async fn connect(socket: &Path) -> Result<Client, CliError> {
    // Connect once up front: the error for a missing or forbidden socket is clearer than the
    // transport error tonic would report.
    UnixStream::connect(socket)
        .await
        .map_err(|e| CliError::connect(socket, e))?;
    let path = socket.to_owned();
    let channel = Endpoint::from_static("http://trustd.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
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
