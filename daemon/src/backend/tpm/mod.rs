//! TPM 2.0 backend: keys generated inside the machine's TPM, driven natively through tpm2-tss.
//!
//! A TPM executes one command at a time and real ones sign 15-40 times a second, so it is a
//! [`SerialDevice`] behind the shared queued adapter.

mod ak_store;
mod device;
mod error;
mod templates;

use std::path::PathBuf;
use std::time::Duration;

use self::device::{Device, KeyBlobs};
use super::serial::{QueueSettings, SerialBackend, SerialDevice};
use super::{BackendError, BackendKind, BackendStatus, GenerateOptions, NewKey, SignInput};
use crate::algorithm::KeyAlgorithm;
use crate::config::TpmConfig;
use crate::inventory::{Attestation, DeviceHandle};

pub type TpmBackend = SerialBackend<Device>;

/// The backend for the TPM `config` names; it connects on the first request.
pub fn backend(config: TpmConfig, state_dir: PathBuf) -> TpmBackend {
    let settings = QueueSettings {
        name: config.name.clone(),
        what: format!("the TPM of backend {:?}", config.name),
        device: format!("TPM at {}", config.tcti),
        depth: config.queue_depth,
        wait: Duration::from_millis(config.queue_wait_ms),
    };
    SerialBackend::start(settings, Device::new(config, state_dir))
}

impl SerialDevice for Device {
    const KIND: BackendKind = BackendKind::Tpm;
    const ATTESTS: bool = true;
    const ACTIVATES_CREDENTIALS: bool = true;

    fn status(&mut self) -> BackendStatus {
        Device::status(self)
    }

    fn generate(
        &mut self,
        _label: &str,
        algorithm: KeyAlgorithm,
        _options: &GenerateOptions,
    ) -> Result<NewKey, BackendError> {
        Device::generate(self, algorithm)
    }

    fn import_refusal(&self) -> String {
        format!(
            "backend {:?} is a TPM: it generates its keys and does not import them (TPM2_Import of an outside key would not be sensitiveDataOrigin, so it could not be attested); load the key into a PKCS#11 backend instead",
            self.name()
        )
    }

    fn sign(
        &mut self,
        key: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: &SignInput,
    ) -> Result<Vec<u8>, BackendError> {
        let key = KeyBlobs::from_handle(key)?;
        Device::sign(self, &key, algorithm, input)
    }

    fn delete(&mut self, key: &DeviceHandle) -> Result<(), BackendError> {
        // The key exists only as blobs in trustd's inventory; removing the record removes the
        // key. (A copy of inventory.json could still be loaded into this TPM: it is public
        // data, but a TPM key's auth value is what guards it then.)
        KeyBlobs::from_handle(key).map(|_| ())
    }

    fn attest(&mut self, key: &DeviceHandle, nonce: &[u8]) -> Result<Attestation, BackendError> {
        let key = KeyBlobs::from_handle(key)?;
        self.certify(&key, nonce).map(Attestation::Tpm)
    }

    fn activate_credential(
        &mut self,
        credential_blob: Vec<u8>,
        encrypted_secret: Vec<u8>,
    ) -> Result<Vec<u8>, BackendError> {
        Device::activate_credential(self, credential_blob, encrypted_secret)
    }
}
