//! The device side: one trait every kind of hardware implements.
//!
//! A backend owns its device I/O and keeps it off the async runtime; callers only see async
//! operations and a small error vocabulary that maps one-to-one onto gRPC status codes.

pub mod device_queue;
pub mod piv;
pub mod pkcs11;
pub mod tpm;
pub mod workers;

use async_trait::async_trait;

use crate::algorithm::KeyAlgorithm;
use crate::inventory::{Attestation, DeviceHandle, PinPolicy, TouchPolicy};
use crate::private_key::PrivateKey;

/// What went wrong on a device, classified by what the caller can do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The device or token is not there (unplugged, removed, not found). Retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The device is there but unusable until a PIN or auth problem is fixed.
    #[error("{0}")]
    Locked(String),
    /// The configuration cannot work (module not loadable, ...).
    #[error("{0}")]
    Misconfigured(String),
    /// The device does not offer what was asked (mechanism, algorithm).
    #[error("{0}")]
    Unsupported(String),
    /// What was asked would destroy something (an occupied slot) or is already done.
    #[error("{0}")]
    Conflict(String),
    /// The device waited for a touch that did not come.
    #[error("{0}")]
    TouchTimeout(String),
    /// The inventory names a key that is not on the device.
    #[error("{0}")]
    KeyMissing(String),
    /// The device's queue is full and did not drain within the wait allowed. Retry later.
    #[error("{0}")]
    Busy(String),
    /// Anything else the device reported.
    #[error("{0}")]
    Device(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    Ready,
    Locked,
    Unavailable,
    Misconfigured,
}

#[derive(Debug, Clone)]
pub struct BackendStatus {
    pub state: BackendState,
    pub detail: String,
    pub device: String,
    pub algorithms: Vec<KeyAlgorithm>,
}

/// A key just created or imported on a device.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub device: DeviceHandle,
    pub algorithm: KeyAlgorithm,
    /// DER SubjectPublicKeyInfo, as read back from the device.
    pub public_key: Vec<u8>,
    /// The device's own evidence that it generated the key, when it can give one.
    pub attestation: Option<Attestation>,
}

/// What the device is asked to sign.
#[derive(Debug, Clone)]
pub enum SignInput {
    /// A SHA-256 digest (ECDSA P-256 and RSA-PSS sign digests).
    Sha256([u8; 32]),
    /// A SHA-384 digest (ECDSA P-384).
    Sha384([u8; 48]),
    /// The whole message (pure Ed25519 signs messages).
    Message(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Pkcs11,
    Tpm,
    Piv,
}

impl BackendKind {
    /// The name callers may use instead of a backend's configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Pkcs11 => "pkcs11",
            BackendKind::Tpm => "tpm",
            BackendKind::Piv => "piv",
        }
    }
}

/// Where and how a PIV key is generated (ignored by other backends).
#[derive(Debug, Clone, Default)]
pub struct PivGenerate {
    pub slot: Option<String>,
    pub pin_policy: Option<PinPolicy>,
    pub touch_policy: Option<TouchPolicy>,
    pub force: bool,
}

/// What the security officer sets on a fresh PIV card.
pub struct PivProvisioning {
    pub new_pin: zeroize::Zeroizing<String>,
    pub new_puk: zeroize::Zeroizing<String>,
    pub current_pin: Option<zeroize::Zeroizing<String>>,
    pub current_puk: Option<zeroize::Zeroizing<String>>,
    pub current_management_key: Option<zeroize::Zeroizing<String>>,
    pub force: bool,
}

#[async_trait]
pub trait Backend: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> BackendKind;
    async fn status(&self) -> BackendStatus;
    /// For a device behind a queue: requests waiting now, and the queue's depth.
    fn queue_load(&self) -> Option<(usize, usize)> {
        None
    }
    /// Generates a non-extractable key pair on the device, labelled `label`.
    async fn generate(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        piv: &PivGenerate,
    ) -> Result<NewKey, BackendError>;
    /// Writes a private key to the device as non-extractable; the caller's copy is zeroized
    /// when `key` is dropped.
    async fn import(&self, label: &str, key: PrivateKey) -> Result<NewKey, BackendError>;
    /// Signs; ECDSA signatures come back as fixed-width r||s.
    async fn sign(
        &self,
        device: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: SignInput,
    ) -> Result<Vec<u8>, BackendError>;
    /// Removes the key from the device. Removing a key that is already gone succeeds.
    async fn delete(&self, device: &DeviceHandle) -> Result<(), BackendError>;
    /// Fresh evidence from the device that it generated the key, bound to the caller's nonce.
    async fn attest(
        &self,
        _device: &DeviceHandle,
        _nonce: Vec<u8>,
    ) -> Result<Attestation, BackendError> {
        Err(BackendError::Unsupported(format!(
            "backend {:?} ({}) cannot attest its keys",
            self.name(),
            self.kind().as_str()
        )))
    }
    /// Keeps a PIN handed over by an authorized caller (in memory only), after checking it.
    async fn unlock(&self, _pin: zeroize::Zeroizing<String>) -> Result<(), BackendError> {
        Err(BackendError::Unsupported(format!(
            "backend {:?} ({}) takes no PIN from callers",
            self.name(),
            self.kind().as_str()
        )))
    }
    /// Replaces a PIV card's factory PIN, PUK and management key; returns the card's serial.
    async fn provision_piv(&self, _request: PivProvisioning) -> Result<u32, BackendError> {
        Err(BackendError::Unsupported(format!(
            "backend {:?} ({}) is not a PIV card",
            self.name(),
            self.kind().as_str()
        )))
    }
    /// Answers a verifier's MakeCredential challenge with the device's attestation key.
    async fn activate_credential(
        &self,
        _credential_blob: Vec<u8>,
        _encrypted_secret: Vec<u8>,
    ) -> Result<Vec<u8>, BackendError> {
        Err(BackendError::Unsupported(format!(
            "backend {:?} ({}) has no attestation key to activate a credential with",
            self.name(),
            self.kind().as_str()
        )))
    }
}
