//! The audit trail: one JSON line per sign request (allowed, denied or failed) and per key
//! lifecycle event.
//!
//! Records carry who asked (kernel peer credentials), which key, which algorithm, the SHA-256
//! of the payload and the result: never the payload, never a PIN. A dedicated thread writes
//! them so the async runtime never blocks on disk; a full queue slows signers down rather than
//! dropping records. Once a write fails trustd refuses to sign (fail closed), retries the
//! write every second, and signs again as soon as the sink takes it.
//!
//! The log is tamper-evident: each record carries its number and the hash of the record
//! before it (`chain`), and a key on hardware signs checkpoints of that chain (`checkpoint`).
//!
//! Whoever can reach the socket can make trustd write records, so the trail itself is
//! bounded: every field a caller chooses is cut to a fixed length, and denials are recorded at
//! most [`DENIALS_PER_WINDOW`] per caller per [`DENIAL_WINDOW`], the next record of that
//! caller saying how many were left out.

pub mod chain;
pub mod checkpoint;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Notify};
use trustd_proto::audit_chain::CHECKPOINT_EVENT;

use self::chain::ChainHead;

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
    /// The record's place in the chain (set by the writer).
    pub seq: u64,
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
    /// The configured backend the call used, once resolved: a metrics label, not logged.
    #[serde(skip)]
    pub backend: Option<String>,
    /// Whose denials this record counts against (the same key as the connection bounds).
    #[serde(skip)]
    caller_key: CallerKey,
    /// Denials of this caller left out of the log (rate limit) since its last record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denials_not_recorded: Option<u64>,
    /// A checkpoint's signed statement (`trustd_proto::audit_chain::checkpoint_statement`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// A checkpoint's signature over `statement`, base64 (DER for ECDSA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// SHA-256 of the previous record's line (set by the writer).
    pub prev_sha256: String,
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
            caller_uid: local.map(|peer| peer.uid),
            caller_gid: local.map(|peer| peer.gid),
            caller_pid: local.map(|peer| peer.pid),
            caller_identity: match caller {
                Caller::Remote(remote) => Some(remote.name().to_owned()),
                Caller::Local(_) => None,
            },
            ..AuditRecord::blank(event, caller.key())
        }
    }

    /// A record of trustd's own doing (a checkpoint), with no caller. It is written without
    /// denial accounting, so its caller key is never looked at.
    pub fn by_trustd(event: &'static str) -> Self {
        AuditRecord::blank(event, CallerKey::Uid(0))
    }

    fn blank(event: &'static str, caller_key: CallerKey) -> Self {
        AuditRecord {
            seq: 0,
            time: crate::time::now_rfc3339(),
            event,
            caller_uid: None,
            caller_gid: None,
            caller_pid: None,
            caller_key,
            backend: None,
            caller_identity: None,
            key_name: None,
            payload_sha384: None,
            key_id: None,
            algorithm: None,
            payload_sha256: None,
            payload_bytes: None,
            result: "allowed",
            detail: None,
            denials_not_recorded: None,
            statement: None,
            signature: None,
            prev_sha256: String::new(),
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

/// What the writer thread is asked to do, in queue order.
#[allow(
    clippy::large_enum_variant,
    reason = "records are nearly every message; boxing would allocate once more per signature"
)]
enum Message {
    Record(AuditRecord),
    /// Report the chain head once everything queued before is written.
    Head(oneshot::Sender<HeadReport>),
    /// Open the log file again (after it was moved away for rotation).
    Reopen,
    /// Write what is queued, save the head and stop.
    Close(oneshot::Sender<()>),
}

/// Where the chain stands, for a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct HeadReport {
    pub head: ChainHead,
    /// The last record that is not itself a checkpoint: nothing to cover when it is covered.
    pub last_event_seq: u64,
}

/// Handle to the audit writer thread.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Message>,
    failed: Arc<AtomicBool>,
    denials: Arc<Mutex<HashMap<CallerKey, DenialCount>>>,
    /// Whether any caller has denials left out: while none has, an allowed record (every
    /// signature) skips the denials table and its lock.
    left_out: Arc<AtomicBool>,
    /// Woken by the writer when `checkpoint_every_records` records await a checkpoint.
    checkpoint_due: Arc<Notify>,
}

impl AuditLog {
    pub fn open(config: &AuditConfig) -> Result<AuditLog, AuditError> {
        let (sink, head, cut_off) = match config.sink {
            AuditSinkKind::Stderr => (
                Sink {
                    out: Box::new(std::io::stderr()),
                    path: None,
                },
                ChainHead::GENESIS,
                false,
            ),
            AuditSinkKind::File => {
                let path = config.path.as_deref().expect("validated in config");
                let (head, cut_off) = chain::resume(path).map_err(|error| AuditError::Open {
                    path: path.display().to_string(),
                    error,
                })?;
                (
                    Sink {
                        out: Box::new(open_append(path)?),
                        path: Some(path.to_owned()),
                    },
                    head,
                    cut_off,
                )
            }
        };
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let failed = Arc::new(AtomicBool::new(false));
        let checkpoint_due = Arc::new(Notify::new());
        let writer = Writer {
            rx,
            sink,
            head,
            last_event_seq: 0,
            failed: failed.clone(),
            pending_newline: cut_off,
            due: config
                .checkpoint_key
                .is_some()
                .then(|| (config.checkpoint_every_records, checkpoint_due.clone())),
            since_due: 0,
        };
        std::thread::Builder::new()
            .name("trustd-audit".into())
            .spawn(move || writer.run())
            .expect("spawn audit thread");
        Ok(AuditLog {
            queue,
            failed,
            denials: Arc::default(),
            left_out: Arc::default(),
            checkpoint_due,
        })
    }

    /// Where the chain stands once what is queued now is written; None once the log is closed.
    pub async fn head(&self) -> Option<HeadReport> {
        let (reply, report) = oneshot::channel();
        self.queue.send(Message::Head(reply)).await.ok()?;
        report.await.ok()
    }

    /// Opens the log file again, so a file moved away by logrotate is closed; the chain goes on
    /// in the new file.
    pub async fn reopen(&self) {
        let _ = self.queue.send(Message::Reopen).await;
    }

    /// Writes everything queued, saves the chain head and stops the writer. Records sent later
    /// are lost, so this is the last thing trustd does.
    pub async fn close(&self) {
        let (ack, closed) = oneshot::channel();
        if self.queue.send(Message::Close(ack)).await.is_ok() {
            let _ = closed.await;
        }
    }

    pub fn checkpoint_due(&self) -> Arc<Notify> {
        self.checkpoint_due.clone()
    }

    /// Writes a record of trustd's own (no caller, so no denial accounting).
    pub async fn record_own(&self, record: AuditRecord) {
        let _ = self.queue.send(Message::Record(record.bounded())).await;
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
            .send(Message::Record(record.bounded()))
            .await
            .map_err(|_| AuditError::Failed)
    }

    /// Records without waiting, for places that cannot: dropped when the queue is full or
    /// the sink broken (the denial counts still apply).
    pub fn record_now(&self, mut record: AuditRecord) {
        if self.check_healthy().is_ok() && self.admit(&mut record) {
            let _ = self.queue.try_send(Message::Record(record.bounded()));
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

/// Where records go: stderr, or a file that can be reopened.
struct Sink {
    out: Box<dyn Write + Send>,
    path: Option<PathBuf>,
}

/// The writer thread: links each record into the chain as it serializes it, writes, and answers
/// the control messages in queue order.
struct Writer {
    rx: mpsc::Receiver<Message>,
    sink: Sink,
    head: ChainHead,
    last_event_seq: u64,
    failed: Arc<AtomicBool>,
    /// The log ended in a cut-off line: end it before the first record.
    pending_newline: bool,
    /// Every how many records the checkpoint task is woken, and how.
    due: Option<(u64, Arc<Notify>)>,
    since_due: u64,
}

impl Writer {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(512);
        while let Some(first) = self.rx.blocking_recv() {
            batch.clear();
            if std::mem::take(&mut self.pending_newline) {
                batch.push(b'\n');
            }
            // Drain what else is queued so a burst becomes one write; a control message ends
            // the batch and is answered once the records before it are written.
            let mut control = None;
            let mut next = Some(first);
            while let Some(message) = next {
                match message {
                    Message::Record(record) => self.link(record, &mut batch),
                    other => {
                        control = Some(other);
                        break;
                    }
                }
                next = self.rx.try_recv().ok();
            }
            self.write(&batch);
            self.wake_checkpoints();
            match control {
                None | Some(Message::Record(_)) => {}
                Some(Message::Head(reply)) => {
                    let _ = reply.send(HeadReport {
                        head: self.head,
                        last_event_seq: self.last_event_seq,
                    });
                }
                Some(Message::Reopen) => self.reopen(),
                Some(Message::Close(ack)) => {
                    self.save_head();
                    let _ = ack.send(());
                    return;
                }
            }
        }
    }

    /// Numbers `record`, links it to the head and appends its line to `batch`.
    fn link(&mut self, mut record: AuditRecord, batch: &mut Vec<u8>) {
        record.seq = self.head.seq + 1;
        record.prev_sha256 = self.head.hex();
        let start = batch.len();
        serde_json::to_writer(&mut *batch, &record).expect("audit records serialize");
        self.head = ChainHead::after(record.seq, &batch[start..]);
        batch.push(b'\n');
        if record.event != CHECKPOINT_EVENT {
            self.last_event_seq = record.seq;
            self.since_due += 1;
        }
    }

    fn wake_checkpoints(&mut self) {
        if let Some((every, due)) = &self.due {
            if self.since_due >= *every {
                self.since_due = 0;
                due.notify_one();
            }
        }
    }

    /// Writes `bytes` whole, retrying every second (and refusing signatures meanwhile) while
    /// the sink fails.
    fn write(&mut self, bytes: &[u8]) {
        let mut written = 0;
        let mut announced = false;
        while written < bytes.len() {
            match write_some(&mut *self.sink.out, &bytes[written..]) {
                Ok(n) => written += n,
                Err(error) => {
                    if !announced {
                        tracing::error!(%error, "audit log write failed; refusing signatures until it can be written again");
                        announced = true;
                    }
                    self.failed.store(true, Ordering::Release);
                    std::thread::sleep(RETRY_EVERY);
                }
            }
        }
        if announced {
            tracing::info!("audit log writable again; signing resumes");
            self.failed.store(false, Ordering::Release);
        }
    }

    fn reopen(&mut self) {
        let Some(path) = self.sink.path.clone() else {
            return;
        };
        // Saved first: if the new file is still empty at the next start, the chain resumes
        // from here.
        self.save_head();
        match open_append(&path) {
            Ok(file) => {
                self.sink.out = Box::new(file);
                tracing::info!(path = %path.display(), seq = self.head.seq, "audit log reopened");
            }
            Err(error) => {
                tracing::error!(%error, "cannot reopen the audit log; still writing to the file open before")
            }
        }
    }

    fn save_head(&self) {
        if let Some(path) = &self.sink.path {
            if let Err(error) = chain::save_head(path, self.head) {
                tracing::error!(%error, path = %chain::head_path(path).display(), "cannot save the audit chain head; a new log file will start a new chain");
            }
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
    use sha2::Digest;

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

    fn spawn_writer(
        out: Box<dyn Write + Send>,
    ) -> (
        mpsc::Sender<Message>,
        Arc<AtomicBool>,
        std::thread::JoinHandle<()>,
    ) {
        let (queue, rx) = mpsc::channel(8);
        let failed = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            rx,
            sink: Sink { out, path: None },
            head: ChainHead::GENESIS,
            last_event_seq: 0,
            failed: failed.clone(),
            pending_newline: false,
            due: None,
            since_due: 0,
        };
        (queue, failed, std::thread::spawn(move || writer.run()))
    }

    #[test]
    fn each_record_is_numbered_and_carries_the_hash_of_the_line_before() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = FillableSink {
            full: Arc::default(),
            out: out.clone(),
        };
        let (queue, _, writer) = spawn_writer(Box::new(sink));
        for uid in 1..=3 {
            queue.blocking_send(Message::Record(denied(uid))).unwrap();
        }
        let (reply, report) = oneshot::channel();
        queue.blocking_send(Message::Head(reply)).unwrap();
        let report = report.blocking_recv().unwrap();
        drop(queue);
        writer.join().unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let mut prev = trustd_proto::audit_chain::GENESIS_PREV.to_owned();
        for (i, line) in lines.iter().enumerate() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["seq"], i as u64 + 1);
            assert_eq!(value["prev_sha256"], prev.as_str());
            prev = hex::encode(sha2::Sha256::digest(line.as_bytes()));
        }
        assert_eq!(report.head.seq, 3);
        assert_eq!(report.head.hex(), prev);
        assert_eq!(report.last_event_seq, 3);
    }

    #[test]
    fn a_full_sink_fails_closed_and_recovers_without_losing_the_record() {
        let full = Arc::new(AtomicBool::new(true));
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = FillableSink {
            full: full.clone(),
            out: out.clone(),
        };
        let (queue, failed, writer) = spawn_writer(Box::new(sink));
        let mut record = denied(1);
        record.result = "allowed";
        queue.blocking_send(Message::Record(record)).unwrap();
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
