//! Devices that execute one command at a time (a TPM, a smart card) as backends.
//!
//! Such a device is driven by plain blocking code ([`SerialDevice`]) on one thread that owns
//! it, fed by a bounded queue (`device_queue`). [`SerialBackend`] is the one adapter that turns
//! any such device into a [`Backend`], with its optional capabilities, so the TPM and the PIV
//! card share the queueing, cancellation and status rules instead of repeating them.

use std::time::Duration;

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::device_queue::DeviceQueue;
use super::{
    Attest, Backend, BackendError, BackendKind, BackendStatus, CredentialActivation,
    GenerateOptions, NewKey, PinEntry, PivAdmin, PivProvisioning, SignInput,
};
use crate::algorithm::KeyAlgorithm;
use crate::inventory::{Attestation, DeviceHandle};
use crate::private_key::PrivateKey;

/// A device driven synchronously on the thread that owns it. The optional capabilities are
/// declared by the constants and answered by the methods with the same name; a device that
/// does not declare one is never asked.
pub trait SerialDevice: Send + 'static {
    const KIND: BackendKind;
    const ATTESTS: bool = false;
    const TAKES_PIN: bool = false;
    const PROVISIONS_PIV: bool = false;
    const ACTIVATES_CREDENTIALS: bool = false;

    /// The device's state; a cheap round trip, so a device that vanished shows.
    fn status(&mut self) -> BackendStatus;
    fn generate(
        &mut self,
        label: &str,
        algorithm: KeyAlgorithm,
        options: &GenerateOptions,
    ) -> Result<NewKey, BackendError>;
    /// Why this device takes no outside keys: such devices generate their own, so each key
    /// can be attested. (No serial device imports; one that does would add it here.)
    fn import_refusal(&self) -> String;
    fn sign(
        &mut self,
        key: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: &SignInput,
    ) -> Result<Vec<u8>, BackendError>;
    fn delete(&mut self, key: &DeviceHandle) -> Result<(), BackendError>;

    fn attest(&mut self, _key: &DeviceHandle, _nonce: &[u8]) -> Result<Attestation, BackendError> {
        unreachable!("asked only when ATTESTS")
    }
    fn unlock(&mut self, _pin: Zeroizing<String>) -> Result<(), BackendError> {
        unreachable!("asked only when TAKES_PIN")
    }
    fn provision_piv(&mut self, _request: PivProvisioning) -> Result<u32, BackendError> {
        unreachable!("asked only when PROVISIONS_PIV")
    }
    fn activate_credential(
        &mut self,
        _credential_blob: Vec<u8>,
        _encrypted_secret: Vec<u8>,
    ) -> Result<Vec<u8>, BackendError> {
        unreachable!("asked only when ACTIVATES_CREDENTIALS")
    }
}

/// How a serial device is queued and named.
pub struct QueueSettings {
    /// The backend's configured name.
    pub name: String,
    /// For messages: "the TPM of backend \"tpm\"".
    pub what: String,
    /// What Status says the device is when the device thread cannot answer.
    pub device: String,
    pub depth: usize,
    pub wait: Duration,
}

pub struct SerialBackend<D> {
    name: String,
    device: String,
    /// Said without asking the device thread (which owns the device once started).
    import_refusal: String,
    queue: DeviceQueue<D>,
}

impl<D: SerialDevice> SerialBackend<D> {
    /// Starts the thread that owns `device`.
    pub fn start(settings: QueueSettings, device: D) -> SerialBackend<D> {
        let import_refusal = device.import_refusal();
        let queue = DeviceQueue::start(
            settings.what,
            format!("{}-{}", D::KIND.as_str(), settings.name),
            settings.depth,
            settings.wait,
            device,
        );
        SerialBackend {
            name: settings.name,
            device: settings.device,
            import_refusal,
            queue,
        }
    }
}

#[async_trait]
impl<D: SerialDevice> Backend for SerialBackend<D> {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> BackendKind {
        D::KIND
    }

    async fn status(&self) -> BackendStatus {
        let mut status = self
            .queue
            .status(|device| device.status(), self.device.clone())
            .await;
        status.queue = Some(self.queue.load());
        status
    }

    async fn generate(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        options: &GenerateOptions,
    ) -> Result<NewKey, BackendError> {
        let (label, options) = (label.to_owned(), options.clone());
        self.queue
            .run(move |device| device.generate(&label, algorithm, &options))
            .await
    }

    async fn import(&self, _label: &str, _key: PrivateKey) -> Result<NewKey, BackendError> {
        Err(BackendError::Unsupported(self.import_refusal.clone()))
    }

    async fn sign(
        &self,
        key: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: SignInput,
    ) -> Result<Vec<u8>, BackendError> {
        let key = key.clone();
        self.queue
            .run(move |device| device.sign(&key, algorithm, &input))
            .await
    }

    async fn delete(&self, key: &DeviceHandle) -> Result<(), BackendError> {
        let key = key.clone();
        self.queue.run(move |device| device.delete(&key)).await
    }

    fn attestation(&self) -> Option<&dyn Attest> {
        D::ATTESTS.then_some(self as &dyn Attest)
    }

    fn pin_entry(&self) -> Option<&dyn PinEntry> {
        D::TAKES_PIN.then_some(self as &dyn PinEntry)
    }

    fn piv_admin(&self) -> Option<&dyn PivAdmin> {
        D::PROVISIONS_PIV.then_some(self as &dyn PivAdmin)
    }

    fn credential_activation(&self) -> Option<&dyn CredentialActivation> {
        D::ACTIVATES_CREDENTIALS.then_some(self as &dyn CredentialActivation)
    }
}

#[async_trait]
impl<D: SerialDevice> Attest for SerialBackend<D> {
    async fn attest(
        &self,
        key: &DeviceHandle,
        nonce: Vec<u8>,
    ) -> Result<Attestation, BackendError> {
        let key = key.clone();
        self.queue
            .run(move |device| device.attest(&key, &nonce))
            .await
    }
}

#[async_trait]
impl<D: SerialDevice> PinEntry for SerialBackend<D> {
    async fn unlock(&self, pin: Zeroizing<String>) -> Result<(), BackendError> {
        self.queue.run(move |device| device.unlock(pin)).await
    }
}

#[async_trait]
impl<D: SerialDevice> PivAdmin for SerialBackend<D> {
    async fn provision(&self, request: PivProvisioning) -> Result<u32, BackendError> {
        self.queue
            .run(move |device| device.provision_piv(request))
            .await
    }
}

#[async_trait]
impl<D: SerialDevice> CredentialActivation for SerialBackend<D> {
    async fn activate_credential(
        &self,
        credential_blob: Vec<u8>,
        encrypted_secret: Vec<u8>,
    ) -> Result<Vec<u8>, BackendError> {
        self.queue
            .run(move |device| device.activate_credential(credential_blob, encrypted_secret))
            .await
    }
}
