//! TPM 2.0 backend: keys generated inside the machine's TPM, driven natively through tpm2-tss.
//!
//! A TPM executes one command at a time and real ones sign 15-40 times a second, so one thread
//! owns the ESAPI context and takes work from a bounded queue (see `device_queue`).

mod ak_store;
mod device;
mod error;
mod templates;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use self::device::{Device, KeyBlobs};
use super::device_queue::DeviceQueue;
use super::{Backend, BackendError, BackendKind, BackendStatus, NewKey, SignInput};
use crate::algorithm::KeyAlgorithm;
use crate::config::TpmConfig;
use crate::inventory::{Attestation, DeviceHandle};
use crate::private_key::PrivateKey;

pub struct TpmBackend {
    name: String,
    tcti: String,
    queue: DeviceQueue<Device>,
}

impl TpmBackend {
    /// Starts the thread that owns the TPM; it connects on the first request.
    pub fn new(config: TpmConfig, state_dir: PathBuf) -> TpmBackend {
        let name = config.name.clone();
        let tcti = config.tcti.clone();
        let queue = DeviceQueue::start(
            format!("the TPM of backend {name:?}"),
            format!("tpm-{name}"),
            config.queue_depth,
            Duration::from_millis(config.queue_wait_ms),
            Device::new(config, state_dir),
        );
        TpmBackend { name, tcti, queue }
    }

    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Device) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        self.queue.run(op).await
    }
}

#[async_trait]
impl Backend for TpmBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Tpm
    }

    fn queue_load(&self) -> Option<(usize, usize)> {
        Some(self.queue.load())
    }

    async fn status(&self) -> BackendStatus {
        self.queue
            .status(|device| device.status(), format!("TPM at {}", self.tcti))
            .await
    }

    async fn generate(
        &self,
        _label: &str,
        algorithm: KeyAlgorithm,
        _piv: &super::PivGenerate,
    ) -> Result<NewKey, BackendError> {
        self.run(move |device| device.generate(algorithm)).await
    }

    async fn import(&self, _label: &str, _key: PrivateKey) -> Result<NewKey, BackendError> {
        Err(BackendError::Unsupported(format!(
            "backend {:?} is a TPM: it generates its keys and does not import them (TPM2_Import of an outside key would not be sensitiveDataOrigin, so it could not be attested); load the key into a PKCS#11 backend instead",
            self.name
        )))
    }

    async fn sign(
        &self,
        device: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: SignInput,
    ) -> Result<Vec<u8>, BackendError> {
        let key = KeyBlobs::from_handle(device)?;
        self.run(move |device| device.sign(&key, algorithm, &input))
            .await
    }

    async fn delete(&self, device: &DeviceHandle) -> Result<(), BackendError> {
        // The key exists only as blobs in trustd's inventory; removing the record removes the
        // key. (A copy of inventory.json could still be loaded into this TPM: it is public
        // data, but a TPM key's auth value is what guards it then.)
        KeyBlobs::from_handle(device).map(|_| ())
    }

    async fn attest(
        &self,
        device: &DeviceHandle,
        nonce: Vec<u8>,
    ) -> Result<Attestation, BackendError> {
        let key = KeyBlobs::from_handle(device)?;
        self.run(move |device| device.certify(&key, &nonce).map(Attestation::Tpm))
            .await
    }

    async fn activate_credential(
        &self,
        credential_blob: Vec<u8>,
        encrypted_secret: Vec<u8>,
    ) -> Result<Vec<u8>, BackendError> {
        self.run(move |device| device.activate_credential(credential_blob, encrypted_secret))
            .await
    }
}
