//! TPM 2.0 backend: keys generated inside the machine's TPM, driven natively through tpm2-tss.
//!
//! A TPM executes one command at a time and real ones sign 15-40 times a second, so one thread
//! owns the ESAPI context and takes work from a bounded queue. Callers wait for room in the
//! queue at most `queue_wait_ms` and then get Busy (ResourceExhausted), instead of piling up
//! without bound behind a slow device; nothing here ever blocks the async runtime. Requests
//! whose caller has gone (deadline, disconnect) are dropped before they reach the TPM.

mod ak_store;
mod device;
mod error;
mod templates;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use self::device::{Device, KeyBlobs};
use super::{Backend, BackendError, BackendKind, BackendState, BackendStatus, NewKey, SignInput};
use crate::algorithm::KeyAlgorithm;
use crate::config::TpmConfig;
use crate::inventory::{Attestation, DeviceHandle};
use crate::private_key::PrivateKey;

type Job = Box<dyn FnOnce(&mut Device) + Send>;

pub struct TpmBackend {
    name: String,
    tcti: String,
    queue: mpsc::Sender<Job>,
    queue_depth: usize,
    queue_wait: Duration,
}

impl TpmBackend {
    /// Starts the thread that owns the TPM; it connects on the first request.
    pub fn new(config: TpmConfig, state_dir: PathBuf) -> TpmBackend {
        let (queue, mut jobs) = mpsc::channel::<Job>(config.queue_depth);
        let name = config.name.clone();
        let backend = TpmBackend {
            name: name.clone(),
            tcti: config.tcti.clone(),
            queue,
            queue_depth: config.queue_depth,
            queue_wait: Duration::from_millis(config.queue_wait_ms),
        };
        let mut device = Device::new(config, state_dir);
        std::thread::Builder::new()
            .name(format!("tpm-{name}"))
            .spawn(move || {
                while let Some(job) = jobs.blocking_recv() {
                    let run = std::panic::AssertUnwindSafe(|| job(&mut device));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("a TPM call panicked; its caller gets an error");
                    }
                }
            })
            .expect("spawn the TPM thread");
        backend
    }

    /// Runs `op` on the TPM thread, waiting for queue room at most `queue_wait`.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Device) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |device| {
            // The caller gave up while queued: do not spend the TPM's time on it.
            if !reply.is_closed() {
                let _ = reply.send(op(device));
            }
        });
        let gone = || BackendError::Device("the TPM thread stopped (see trustd's log)".into());
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(gone()),
            Err(mpsc::error::TrySendError::Full(job)) => {
                match tokio::time::timeout(self.queue_wait, self.queue.send(job)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(gone()),
                    Err(_) => {
                        return Err(BackendError::Busy(format!(
                            "the TPM of backend {:?} is busy: {} requests are queued and none finished within {} ms (a TPM signs roughly 15-40 times a second); retry later, or raise queue_depth/queue_wait_ms",
                            self.name,
                            self.queue_depth,
                            self.queue_wait.as_millis()
                        )))
                    }
                }
            }
        }
        answer.await.map_err(|_| gone())?
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

    async fn status(&self) -> BackendStatus {
        match self.run(|device| Ok(device.status())).await {
            Ok(status) => status,
            Err(error) => BackendStatus {
                state: match error {
                    BackendError::Busy(_) => BackendState::Ready,
                    _ => BackendState::Unavailable,
                },
                detail: error.to_string(),
                device: format!("TPM at {}", self.tcti),
                algorithms: Vec::new(),
            },
        }
    }

    async fn generate(
        &self,
        _label: &str,
        algorithm: KeyAlgorithm,
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
