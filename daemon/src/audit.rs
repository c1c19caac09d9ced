//! The audit trail: one JSON line per sign request (allowed, denied or failed) and per key
//! lifecycle event.
//!
//! Records carry who asked (kernel peer credentials), which key, which algorithm, the SHA-256
//! of the payload and the result: never the payload, never a PIN. A dedicated thread writes
//! them so the async runtime never blocks on disk; a full queue slows signers down rather than
//! dropping records, and once a write fails trustd refuses to sign (fail closed) until it is
//! restarted with a working sink.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{AuditConfig, AuditSinkKind};
use crate::peer::PeerCredentials;

const QUEUE_DEPTH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {error}")]
    Open { path: String, error: std::io::Error },
    #[error("the audit log cannot be written (an earlier write failed); trustd refuses to sign without an audit trail: fix the audit sink and restart trustd")]
    Failed,
}

/// One audit record. Field names are the stable schema of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub time: String,
    pub event: &'static str,
    pub caller_uid: u32,
    pub caller_gid: u32,
    pub caller_pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_sha256: Option<String>,
    /// For callers that sent a SHA-384 digest (P-384 keys) instead of the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_sha384: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
    /// "allowed" (and done), "denied" by policy, or "failed".
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditRecord {
    pub fn new(event: &'static str, caller: &PeerCredentials) -> Self {
        AuditRecord {
            time: crate::time::now_rfc3339(),
            event,
            caller_uid: caller.uid,
            caller_gid: caller.gid,
            caller_pid: caller.pid,
            key_name: None,
            payload_sha384: None,
            key_id: None,
            algorithm: None,
            payload_sha256: None,
            payload_bytes: None,
            result: "allowed",
            detail: None,
        }
    }
}

/// Handle to the audit writer thread.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<AuditRecord>,
    failed: Arc<AtomicBool>,
}

impl AuditLog {
    pub fn open(config: &AuditConfig) -> Result<AuditLog, AuditError> {
        let sink: Box<dyn Write + Send> = match config.sink {
            AuditSinkKind::Stderr => Box::new(std::io::stderr()),
            AuditSinkKind::File => {
                let path = config.path.as_deref().expect("validated in config");
                Box::new(open_append(path)?)
            }
        };
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        std::thread::Builder::new()
            .name("trustd-audit".into())
            .spawn(move || write_loop(rx, sink, flag))
            .expect("spawn audit thread");
        Ok(AuditLog { queue, failed })
    }

    /// Fails when the sink is broken, so callers can refuse to sign before touching a key.
    pub fn check_healthy(&self) -> Result<(), AuditError> {
        if self.failed.load(Ordering::Acquire) {
            Err(AuditError::Failed)
        } else {
            Ok(())
        }
    }

    pub async fn record(&self, record: AuditRecord) -> Result<(), AuditError> {
        self.check_healthy()?;
        self.queue
            .send(record)
            .await
            .map_err(|_| AuditError::Failed)
    }
}

fn open_append(path: &Path) -> Result<std::fs::File, AuditError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| AuditError::Open {
            path: path.display().to_string(),
            error,
        })
}

fn write_loop(
    mut rx: mpsc::Receiver<AuditRecord>,
    mut sink: Box<dyn Write + Send>,
    failed: Arc<AtomicBool>,
) {
    let mut line = Vec::with_capacity(512);
    while let Some(record) = rx.blocking_recv() {
        line.clear();
        serde_json::to_writer(&mut line, &record).expect("audit records serialize");
        line.push(b'\n');
        // Drain what else is queued so a burst becomes one write.
        while let Ok(more) = rx.try_recv() {
            serde_json::to_writer(&mut line, &more).expect("audit records serialize");
            line.push(b'\n');
        }
        if let Err(error) = sink.write_all(&line).and_then(|()| sink.flush()) {
            tracing::error!(%error, "audit log write failed; refusing further signatures");
            failed.store(true, Ordering::Release);
            return;
        }
    }
}
