//! Checkpoints: trustd signs the audit chain's head with a key on hardware, every
//! `checkpoint_every_records` records or `checkpoint_every_secs` seconds, and at shutdown.
//!
//! The hash chain alone shows an edit only to someone who trusts the rest of the file: whoever
//! can edit the log can also rebuild every hash after the edit. A checkpoint names a record's
//! number and line hash and is signed by a key that never leaves the device, so a rebuilt
//! chain no longer matches it. The checkpoint is itself a record in the chain; its statement
//! covers the head at the moment trustd asked the writer for it (records written while the
//! device signs are covered by the next one).

use std::time::Duration;

use base64::Engine;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use trustd_proto::audit_chain::{checkpoint_statement, CHECKPOINT_EVENT};

use super::AuditRecord;
use crate::config::AuditConfig;
use crate::keys::KeyService;

/// The running checkpoint task.
pub struct Checkpointer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing when `[audit] checkpoint_key` is set.
    pub fn spawn(keys: KeyService, config: &AuditConfig) -> Option<Checkpointer> {
        let key = config.checkpoint_key.clone()?;
        if keys.state().inventory.by_name(&key).is_none() {
            tracing::warn!(key = %key, "the audit checkpoint key does not exist yet: create it with `trustctl key generate {key}`; until then checkpoints are recorded as failed");
        }
        let every = Duration::from_secs(config.checkpoint_every_secs);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(keys, key, every, stopped));
        Some(Checkpointer { stop, task })
    }

    /// Writes the last checkpoint (covering everything written so far) and stops.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn run(keys: KeyService, key: String, every: Duration, mut stop: oneshot::Receiver<()>) {
    let due = keys.state().audit.checkpoint_due();
    let mut covered = 0;
    loop {
        let last = tokio::select! {
            () = due.notified() => false,
            () = tokio::time::sleep(every) => false,
            _ = &mut stop => true,
        };
        if let Some(seq) = checkpoint(&keys, &key, covered).await {
            covered = seq;
        }
        if last {
            return;
        }
    }
}

/// Signs the chain head unless every record up to it is already covered by checkpoint
/// `covered`; the seq it covered when it wrote one.
async fn checkpoint(keys: &KeyService, key: &str, covered: u64) -> Option<u64> {
    let audit = &keys.state().audit;
    let report = audit.head().await?;
    if report.last_event_seq <= covered {
        return None;
    }
    let head = report.head;
    let statement = checkpoint_statement(head.seq, &head.hex(), &crate::time::now_rfc3339());
    let mut record = AuditRecord::by_trustd(CHECKPOINT_EVENT);
    record.key_name = Some(key.to_owned());
    let signed = match keys.sign_checkpoint(key, statement.as_bytes()).await {
        Ok((key, signature)) => {
            record.key_id = Some(key.key_id.clone());
            record.algorithm = Some(key.algorithm.signature_algorithm().as_str());
            record.signature = Some(base64::engine::general_purpose::STANDARD.encode(signature));
            true
        }
        Err(error) => {
            tracing::error!(%error, "cannot sign an audit checkpoint; the records since the last one stay uncovered");
            record.result = "failed";
            record.detail = Some(error.to_string());
            false
        }
    };
    record.statement = Some(statement);
    audit.record_own(record).await;
    signed.then_some(head.seq)
}
