//! One thread that owns a device which executes one command at a time (a TPM, a smart card),
//! fed by a bounded queue.
//!
//! Such devices sign 5-40 times a second, so a burst of callers must not pile up without bound
//! behind them: when the queue is full a caller waits for room at most `wait` and then gets
//! Busy (ResourceExhausted). A request whose caller has gone (deadline, disconnect) is dropped
//! before it reaches the device. Nothing here blocks the async runtime.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{BackendError, BackendState, BackendStatus};

type Job<D> = Box<dyn FnOnce(&mut D) + Send>;

pub struct DeviceQueue<D> {
    /// For messages: "the TPM of backend \"tpm\"".
    what: String,
    queue: mpsc::Sender<Job<D>>,
    depth: usize,
    wait: Duration,
}

impl<D: Send + 'static> DeviceQueue<D> {
    /// Starts the thread that owns `device`; it exits when the queue is dropped.
    pub fn start(
        what: String,
        thread_name: String,
        depth: usize,
        wait: Duration,
        mut device: D,
    ) -> Self {
        let (queue, mut jobs) = mpsc::channel::<Job<D>>(depth);
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                while let Some(job) = jobs.blocking_recv() {
                    let run = std::panic::AssertUnwindSafe(|| job(&mut device));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("a device call panicked; its caller gets an error");
                    }
                }
            })
            .expect("spawn the device thread");
        DeviceQueue {
            what,
            queue,
            depth,
            wait,
        }
    }

    /// The device's own status report, or, when the device thread cannot answer (a full
    /// queue means a busy device, not a broken one), what can be said without it.
    pub async fn status(
        &self,
        report: impl FnOnce(&mut D) -> BackendStatus + Send + 'static,
        device: String,
    ) -> BackendStatus {
        match self.run(|d| Ok(report(d))).await {
            Ok(status) => status,
            Err(error) => BackendStatus {
                state: match error {
                    BackendError::Busy(_) => BackendState::Ready,
                    _ => BackendState::Unavailable,
                },
                detail: error.to_string(),
                device,
                algorithms: Vec::new(),
                queue: None,
            },
        }
    }

    /// Requests waiting now, and how many may wait.
    pub fn load(&self) -> (usize, usize) {
        (self.depth - self.queue.capacity(), self.depth)
    }

    /// Runs `op` on the device thread, waiting for queue room at most the configured wait.
    pub async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut D) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (reply, answer) = oneshot::channel();
        let job: Job<D> = Box::new(move |device| {
            // The caller gave up while queued: do not spend the device's time on it.
            if !reply.is_closed() {
                let _ = reply.send(op(device));
            }
        });
        let gone = || {
            BackendError::Device(format!(
                "the thread driving {} stopped (see trustd's log)",
                self.what
            ))
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(gone()),
            Err(mpsc::error::TrySendError::Full(job)) => {
                match tokio::time::timeout(self.wait, self.queue.send(job)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(gone()),
                    Err(_) => {
                        return Err(BackendError::Busy(format!(
                            "{} is busy: {} requests are queued and none finished within {} ms (such a device signs a few dozen times a second at most); retry later, or raise queue_depth/queue_wait_ms",
                            self.what,
                            self.depth,
                            self.wait.as_millis()
                        )))
                    }
                }
            }
        }
        answer.await.map_err(|_| gone())?
    }
}
