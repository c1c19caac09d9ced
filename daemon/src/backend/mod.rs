//! The device side: one small trait every kind of hardware implements.
//!
//! A backend owns its device I/O and keeps it off the async runtime; callers only see async
//! operations and a small error vocabulary that maps one-to-one onto gRPC status codes.
//!
//! [`Backend`] holds what every device does (status, generate, import, sign, delete). What only
//! some devices can do is a capability reached through an accessor that returns `None` when
//! the device lacks it: [`Attest`] (evidence that the device made a key), [`PinEntry`] (a PIN
//! handed over by a caller), [`PivAdmin`] (a fresh card's PIN, PUK and management key) and
//! [`CredentialActivation`] (a verifier's challenge to the attestation key) and
//! [`KeyDiscovery`] (keys another trustd made on a shared token). PKCS#11 tokens
//! are driven by a worker pool (`pkcs11`, `workers`); devices that run one command at a time
//! (`tpm`, `piv`) implement the synchronous [`serial::SerialDevice`] and share one adapter.

pub mod device_queue;
pub mod piv;
pub mod pkcs11;
pub mod serial;
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
    /// For a device behind a queue: requests waiting now, and the queue's depth.
    pub queue: Option<(usize, usize)>,
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

/// Where a key is made and under which use policies, for devices that have slots and
/// policies (a PIV card); devices without them ignore these.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
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
    /// Generates a non-extractable key pair on the device, labelled `label`.
    async fn generate(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        options: &GenerateOptions,
    ) -> Result<NewKey, BackendError>;
    /// Writes a private key to the device as non-extractable; the caller's copy is zeroized
    /// when `key` is dropped.
    async fn import(&self, label: &str, key: PrivateKey) -> Result<NewKey, BackendError>;
    /// Signs; ECDSA signatures come back as fixed-width r||s.
    async fn sign(
        &self,
        key: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: SignInput,
    ) -> Result<Vec<u8>, BackendError>;
    /// Removes the key from the device. Removing a key that is already gone succeeds.
    async fn delete(&self, key: &DeviceHandle) -> Result<(), BackendError>;

    fn attestation(&self) -> Option<&dyn Attest> {
        None
    }
    fn pin_entry(&self) -> Option<&dyn PinEntry> {
        None
    }
    fn piv_admin(&self) -> Option<&dyn PivAdmin> {
        None
    }
    fn credential_activation(&self) -> Option<&dyn CredentialActivation> {
        None
    }
    fn key_discovery(&self) -> Option<&dyn KeyDiscovery> {
        None
    }
}

/// A device several trustd share (a network HSM): keys another trustd generated there are
/// found by their label, so any of them can serve any key.
#[async_trait]
pub trait KeyDiscovery: Send + Sync {
    /// The keys on the device whose label starts with `label_prefix`, with their labels (at
    /// most `limit`).
    async fn find_keys(
        &self,
        label_prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, NewKey)>, BackendError>;
}

/// Fresh evidence from the device that it generated a key.
#[async_trait]
pub trait Attest: Send + Sync {
    /// Evidence for `key`, bound to the caller's nonce where the device can bind one.
    async fn attest(&self, key: &DeviceHandle, nonce: Vec<u8>)
        -> Result<Attestation, BackendError>;
}

/// A device unlocked by a PIN that an authorized caller hands over (kept in memory only).
#[async_trait]
pub trait PinEntry: Send + Sync {
    /// Checks the PIN on the device and keeps it.
    async fn unlock(&self, pin: zeroize::Zeroizing<String>) -> Result<(), BackendError>;
}

/// A PIV card's own administration.
#[async_trait]
pub trait PivAdmin: Send + Sync {
    /// Replaces the card's factory PIN, PUK and management key; returns the card's serial.
    async fn provision(&self, request: PivProvisioning) -> Result<u32, BackendError>;
}

/// A device with an attestation key that answers a verifier's MakeCredential challenge.
#[async_trait]
pub trait CredentialActivation: Send + Sync {
    async fn activate_credential(
        &self,
        credential_blob: Vec<u8>,
        encrypted_secret: Vec<u8>,
    ) -> Result<Vec<u8>, BackendError>;
}

/// Unsupported, for a capability `backend` lacks: "backend \"x\" (pkcs11) {lacks}".
pub fn lacks(backend: &dyn Backend, lacks: &str) -> BackendError {
    BackendError::Unsupported(format!(
        "backend {:?} ({}) {lacks}",
        backend.name(),
        backend.kind().as_str()
    ))
}
