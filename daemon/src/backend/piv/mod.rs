//! YubiKey PIV backend: keys generated in the card's slots with the PIN and touch policies
//! chosen at generation, signing on the card, and Yubico's attestation of each key.
//!
//! A card does one thing at a time, so it is a [`SerialDevice`] behind the shared queued
//! adapter. The `yubikey` crate talks to the card through pcscd.

mod card;

use std::time::Duration;

use zeroize::Zeroizing;

use self::card::PivCard;
use super::serial::{QueueSettings, SerialBackend, SerialDevice};
use super::{
    BackendError, BackendKind, BackendStatus, GenerateOptions, NewKey, PivProvisioning, SignInput,
};
use crate::algorithm::KeyAlgorithm;
use crate::config::PivConfig;
use crate::inventory::{Attestation, DeviceHandle};

pub type PivBackend = SerialBackend<PivCard>;

/// The backend for the card `config` names; it connects on the first request.
pub fn backend(config: PivConfig) -> PivBackend {
    let settings = QueueSettings {
        name: config.name.clone(),
        what: format!("the YubiKey of backend {:?}", config.name),
        device: format!("backend {:?}", config.name),
        depth: config.queue_depth,
        wait: Duration::from_millis(config.queue_wait_ms),
    };
    SerialBackend::start(settings, PivCard::new(config))
}

impl SerialDevice for PivCard {
    const KIND: BackendKind = BackendKind::Piv;
    const ATTESTS: bool = true;
    const TAKES_PIN: bool = true;
    const PROVISIONS_PIV: bool = true;

    fn status(&mut self) -> BackendStatus {
        PivCard::status(self)
    }

    fn generate(
        &mut self,
        label: &str,
        algorithm: KeyAlgorithm,
        options: &GenerateOptions,
    ) -> Result<NewKey, BackendError> {
        PivCard::generate(self, label, algorithm, options)
    }

    fn import_refusal(&self) -> String {
        format!(
            "backend {:?} is a YubiKey: trustd generates keys on it (an imported key could not be attested); load the key into a PKCS#11 backend instead",
            self.name()
        )
    }

    fn sign(
        &mut self,
        key: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: &SignInput,
    ) -> Result<Vec<u8>, BackendError> {
        PivCard::sign(self, key, algorithm, input)
    }

    fn delete(&mut self, key: &DeviceHandle) -> Result<(), BackendError> {
        PivCard::delete(self, key)
    }

    fn attest(&mut self, key: &DeviceHandle, _nonce: &[u8]) -> Result<Attestation, BackendError> {
        // A PIV attestation certificate is made fresh by the card on each request but carries
        // no verifier nonce: it proves where the key was born, not that the card is here now.
        PivCard::attest(self, key).map(Attestation::Piv)
    }

    fn unlock(&mut self, pin: Zeroizing<String>) -> Result<(), BackendError> {
        PivCard::unlock(self, pin)
    }

    fn provision_piv(&mut self, request: PivProvisioning) -> Result<u32, BackendError> {
        PivCard::provision(self, request)
    }
}
