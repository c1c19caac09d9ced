//! The audit trail: one JSON line per sign request (allowed, denied or failed) and per key
//! lifecycle event.
//!
//! Records carry who asked (kernel peer credentials), which key, which algorithm, the SHA-256
//! of the payload and the result: never the payload, never a PIN. A dedicated thread writes
//! them so the async runtime never blocks on disk; a full queue slows signers down rather than
//! dropping records. Once a write fails trustd refuses to sign (fail closed), retries the
//! write every second, and signs again as soon as the sink takes it.
//!
//! Whoever can reach the socket can make trustd write records, so the trail itself is
//! bounded: every field a caller chooses is cut to a fixed length, and denials are recorded at
//! most [`DENIALS_PER_WINDOW`] per caller per [`DENIAL_WINDOW`], the next record of that
//! caller saying how many were left out.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{AuditConfig, AuditSinkKind};
use crate::front::admission::CallerKey;
use crate::front::Caller;

const QUEUE_DEPTH: usize = 4096;
/// Denials (and refusals before a handler) recorded per caller (uid) per window; the rest
/// are counted, not written.
pub const DENIALS_PER_WINDOW: u32 = 20;
pub const DENIAL_WINDOW: Duration = Duration::from_secs(10);
/// How often a failed sink is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Longest key name, key ID and detail written; longer ones are cut with a marker.
const MAX_NAME_CHARS: usize = 256;
const MAX_DETAIL_CHARS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {error}")]
    Open { path: String, error: std::io::Error },
    #[error("the audit log cannot be written; trustd refuses to sign without an audit trail and retries every second: free space on (or fix) the audit sink")]
    Failed,
}

/// One audit record. Field names are the stable schema of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub time: String,
    pub event: &'static str,
    /// A local caller's kernel credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_pid: Option<i32>,
    /// A remote caller's certificate subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_identity: Option<String>,
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
    /// Whose denials this record counts against (the same key as the connection bounds).
    #[serde(skip)]
    caller_key: CallerKey,
    /// Denials of this caller left out of the log (rate limit) since its last record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denials_not_recorded: Option<u64>,
}

/// `text` cut to `max` characters, with a marker saying how long it was.
fn bound(text: &mut String, max: usize) {
    if let Some((at, _)) = text.char_indices().nth(max) {
        let total = text.len();
        text.truncate(at);
        text.push_str(&format!("…[truncated: {total} bytes]"));
    }
}

impl AuditRecord {
    pub fn new(event: &'static str, caller: &Caller) -> Self {
        let local = caller.local();
        AuditRecord {
            time: crate::time::now_rfc3339(),
            event,
            caller_uid: local.map(|peer| peer.uid),
            caller_gid: local.map(|peer| peer.gid),
            caller_pid: local.map(|peer| peer.pid),
            caller_key: caller.key(),
            caller_identity: match caller {
                Caller::Remote(remote) => Some(remote.name().to_owned()),
                Caller::Local(_) => None,
            },
            key_name: None,
            payload_sha384: None,
            key_id: None,
            algorithm: None,
            payload_sha256: None,
            payload_bytes: None,
            result: "allowed",
            detail: None,
            denials_not_recorded: None,
        }
    }

    /// Marks the record as the failure `status` reports: "denied" by policy or "failed".
    pub fn note_failure(&mut self, status: &tonic::Status) {
        self.result = if status.code() == tonic::Code::PermissionDenied {
            "denied"
        } else {
            "failed"
        };
        self.detail = Some(status.message().to_owned());
    }

    /// Cuts every field a caller can choose to its bound.
    fn bounded(mut self) -> Self {
        for text in [&mut self.key_name, &mut self.key_id].into_iter().flatten() {
            bound(text, MAX_NAME_CHARS);
        }
        if let Some(detail) = &mut self.detail {
            bound(detail, MAX_DETAIL_CHARS);
        }
        self
    }
}

/// Per caller: denials recorded in the current window, and left out since the last record.
#[derive(Default)]
struct DenialCount {
    window_start: Option<Instant>,
    in_window: u32,
    left_out: u64,
}

/// Handle to the audit writer thread.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<AuditRecord>,
    failed: Arc<AtomicBool>,
    denials: Arc<Mutex<HashMap<CallerKey, DenialCount>>>,
    /// Whether any caller has denials left out: while none has, an allowed record (every
    /// signature) skips the denials table and its lock.
    left_out: Arc<AtomicBool>,
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
        Ok(AuditLog {
            queue,
            failed,
            denials: Arc::default(),
            left_out: Arc::default(),
        })
    }

    /// Whether `record` is written: denials beyond the caller's rate are counted instead,
    /// and the count rides on the caller's next written record.
    fn admit(&self, record: &mut AuditRecord) -> bool {
        let refusal = record.result == "denied" || record.event == "request";
        if !refusal && !self.left_out.load(Ordering::Acquire) {
            return true;
        }
        let mut denials = self.denials.lock().expect("audit denials lock");
        let now = Instant::now();
        if denials.len() > 4096 {
            denials.retain(|_, d| {
                d.left_out > 0 || d.window_start.is_some_and(|t| now - t < DENIAL_WINDOW)
            });
        }
        let count = denials.entry(record.caller_key.clone()).or_default();
        // Denials, and requests refused before any handler (too large, over a budget): both
        // are made at will by whoever can reach the socket.
        if refusal {
            if count
                .window_start
                .is_none_or(|start| now - start >= DENIAL_WINDOW)
            {
                count.window_start = Some(now);
                count.in_window = 0;
            }
            if count.in_window >= DENIALS_PER_WINDOW {
                count.left_out += 1;
                self.left_out.store(true, Ordering::Release);
                return false;
            }
            count.in_window += 1;
        }
        if count.left_out > 0 {
            record.denials_not_recorded = Some(std::mem::take(&mut count.left_out));
            let any = denials.values().any(|d| d.left_out > 0);
            self.left_out.store(any, Ordering::Release);
        }
        true
    }

    /// Fails when the sink is broken, so callers can refuse to sign before touching a key.
    pub fn check_healthy(&self) -> Result<(), AuditError> {
        if self.failed.load(Ordering::Acquire) {
            Err(AuditError::Failed)
        } else {
            Ok(())
        }
    }

    pub async fn record(&self, mut record: AuditRecord) -> Result<(), AuditError> {
        self.check_healthy()?;
        if !self.admit(&mut record) {
            return Ok(());
        }
        self.queue
            .send(record.bounded())
            .await
            .map_err(|_| AuditError::Failed)
    }

    /// Records without waiting, for places that cannot: dropped when the queue is full or
    /// the sink broken (the denial counts still apply).
    pub fn record_now(&self, mut record: AuditRecord) {
        if self.check_healthy().is_ok() && self.admit(&mut record) {
            let _ = self.queue.try_send(record.bounded());
        }
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
        let mut written = 0;
        let mut announced = false;
        loop {
            match write_some(&mut *sink, &line[written..]) {
                Ok(n) => written += n,
                Err(error) => {
                    if !announced {
                        tracing::error!(%error, "audit log write failed; refusing signatures until it can be written again");
                        announced = true;
                    }
                    failed.store(true, Ordering::Release);
                    std::thread::sleep(RETRY_EVERY);
                    continue;
                }
            }
            if written == line.len() {
                break;
            }
        }
        if announced {
            tracing::info!("audit log writable again; signing resumes");
            failed.store(false, Ordering::Release);
        }
    }
}

/// One write and a flush; what a short write took is kept, so a retry after a failure
/// continues the same line instead of writing it twice or leaving half of it.
fn write_some(sink: &mut dyn Write, bytes: &[u8]) -> std::io::Result<usize> {
    let n = loop {
        match sink.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    sink.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(uid: u32) -> AuditRecord {
        let peer = Caller::Local(crate::front::peer::PeerCredentials {
            uid,
            gid: uid,
            pid: 1,
            groups: Vec::new(),
        });
        let mut record = AuditRecord::new("sign", &peer);
        record.result = "denied";
        record
    }

    #[test]
    fn caller_chosen_fields_are_cut_with_a_marker() {
        let mut record = denied(1);
        record.key_name = Some("k".repeat(5_000_000));
        record.detail = Some("d".repeat(10_000));
        let record = record.bounded();
        let name = record.key_name.unwrap();
        assert!(name.len() < 400, "{}", name.len());
        assert!(name.ends_with("…[truncated: 5000000 bytes]"));
        assert!(record.detail.unwrap().len() < 1100);
    }

    #[tokio::test]
    async fn denials_are_rate_limited_per_caller_and_counted_in_the_next_record() {
        let log = AuditLog::open(&AuditConfig::default()).unwrap();
        let mut written = 0;
        for _ in 0..100 {
            if log.admit(&mut denied(7)) {
                written += 1;
            }
        }
        assert_eq!(written, DENIALS_PER_WINDOW);
        assert!(log.admit(&mut denied(8)), "another caller is not affected");
        let mut allowed = denied(7);
        allowed.result = "allowed";
        assert!(log.admit(&mut allowed), "allowed records are never dropped");
        assert_eq!(
            allowed.denials_not_recorded,
            Some(100 - DENIALS_PER_WINDOW as u64)
        );
    }

    /// A sink that fails while "full" and takes bytes again once space is freed.
    struct FillableSink {
        full: Arc<AtomicBool>,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for FillableSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.full.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_sink_fails_closed_and_recovers_without_losing_the_record() {
        let full = Arc::new(AtomicBool::new(true));
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = FillableSink {
            full: full.clone(),
            out: out.clone(),
        };
        let (queue, rx) = mpsc::channel(8);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let writer = std::thread::spawn(move || write_loop(rx, Box::new(sink), flag));
        let mut record = denied(1);
        record.result = "allowed";
        queue.blocking_send(record).unwrap();
        let wait_for = |want: bool| {
            for _ in 0..500 {
                if failed.load(Ordering::SeqCst) == want {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("failed flag never became {want}");
        };
        wait_for(true);
        full.store(false, Ordering::SeqCst);
        wait_for(false);
        drop(queue);
        writer.join().unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"result\":\"allowed\""));
    }
}
