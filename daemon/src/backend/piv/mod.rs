//! YubiKey PIV backend: keys generated in the card's slots with the PIN and touch policies
//! chosen at generation, signing on the card, and Yubico's attestation of each key.
//!
//! A card does one thing at a time, so one thread owns the connection and requests queue in
//! front of it (see `device_queue`). The `yubikey` crate talks to the card through pcscd.

mod card;

use std::time::Duration;

use async_trait::async_trait;
use zeroize::Zeroizing;

use self::card::PivCard;
use super::device_queue::DeviceQueue;
use super::{
    Backend, BackendError, BackendKind, BackendStatus, NewKey, PivGenerate, PivProvisioning,
    SignInput,
};
use crate::algorithm::KeyAlgorithm;
use crate::config::PivConfig;
use crate::inventory::{Attestation, DeviceHandle};
use crate::private_key::PrivateKey;

pub struct PivBackend {
    name: String,
    queue: DeviceQueue<PivCard>,
}

impl PivBackend {
    pub fn new(config: PivConfig) -> PivBackend {
        let name = config.name.clone();
        let queue = DeviceQueue::start(
            format!("the YubiKey of backend {name:?}"),
            format!("piv-{name}"),
            config.queue_depth,
            Duration::from_millis(config.queue_wait_ms),
            PivCard::new(config),
        );
        PivBackend { name, queue }
    }
}

#[async_trait]
impl Backend for PivBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Piv
    }

    fn queue_load(&self) -> Option<(usize, usize)> {
        Some(self.queue.load())
    }

    async fn status(&self) -> BackendStatus {
        self.queue
            .status(|card| card.status(), format!("backend {:?}", self.name))
            .await
    }

    async fn generate(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        piv: &PivGenerate,
    ) -> Result<NewKey, BackendError> {
        let (label, piv) = (label.to_owned(), piv.clone());
        self.queue
            .run(move |card| card.generate(&label, algorithm, &piv))
            .await
    }

    async fn import(&self, _label: &str, _key: PrivateKey) -> Result<NewKey, BackendError> {
        Err(BackendError::Unsupported(format!(
            "backend {:?} is a YubiKey: trustd generates keys on it (an imported key could not be attested); load the key into a PKCS#11 backend instead",
            self.name
        )))
    }

    async fn sign(
        &self,
        device: &DeviceHandle,
        algorithm: KeyAlgorithm,
        input: SignInput,
    ) -> Result<Vec<u8>, BackendError> {
        let device = device.clone();
        self.queue
            .run(move |card| card.sign(&device, algorithm, &input))
            .await
    }

    async fn delete(&self, device: &DeviceHandle) -> Result<(), BackendError> {
        let device = device.clone();
        self.queue.run(move |card| card.delete(&device)).await
    }

    async fn attest(
        &self,
        device: &DeviceHandle,
        _nonce: Vec<u8>,
    ) -> Result<Attestation, BackendError> {
        // A PIV attestation certificate is made fresh by the card on each request but carries
        // no verifier nonce: it proves where the key was born, not that the card is here now.
        let device = device.clone();
        self.queue
            .run(move |card| card.attest(&device).map(Attestation::Piv))
            .await
    }

    async fn unlock(&self, pin: Zeroizing<String>) -> Result<(), BackendError> {
        self.queue.run(move |card| card.unlock(pin)).await
    }

    async fn provision_piv(&self, request: PivProvisioning) -> Result<u32, BackendError> {
        self.queue.run(move |card| card.provision(request)).await
    }
}
