//! The hash chain that makes the audit log tamper-evident (format: `trustd_proto::audit_chain`).
//!
//! The writer thread links each record to the one before it as it serializes it. The chain
//! goes on across restarts and rotated files: at startup it resumes from the last line of the
//! log, or, when the log is new (rotated away), from the head trustd saved next to it when it
//! reopened or closed the file.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use trustd_proto::audit_chain::GENESIS_PREV;

/// How much of the log's end is read to find its last record; records are bounded far below.
const TAIL_BYTES: u64 = 64 * 1024;
/// How much of a saved head file is read.
const HEAD_BYTES: u64 = 256;

/// The last record written: its number and the SHA-256 of its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub sha256: [u8; 32],
}

impl ChainHead {
    /// Before the first record ever written.
    pub const GENESIS: ChainHead = ChainHead {
        seq: 0,
        sha256: [0; 32],
    };

    /// The hex form records carry in `prev_sha256`.
    pub fn hex(&self) -> String {
        if self.sha256 == [0; 32] {
            GENESIS_PREV.to_owned()
        } else {
            hex::encode(self.sha256)
        }
    }

    /// The head after `line` (a record's exact bytes, no newline) numbered `seq`.
    pub fn after(seq: u64, line: &[u8]) -> ChainHead {
        ChainHead {
            seq,
            sha256: Sha256::digest(line).into(),
        }
    }
}

/// Where the head is saved when the log file is reopened or closed: beside the log.
pub fn head_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

/// Saves `head` so a fresh log file after rotation continues the chain.
pub fn save_head(log: &Path, head: ChainHead) -> std::io::Result<()> {
    let body = format!("{} {}\n", head.seq, head.hex());
    crate::atomic_file::replace(&head_path(log), body.as_bytes(), 0o640)
}

/// Where the chain stands for the log at `path`, and whether the log ends in a cut-off line
/// (trustd stopped mid-write) that needs a newline before the next record.
pub fn resume(path: &Path) -> std::io::Result<(ChainHead, bool)> {
    match last_line(path)? {
        Some((line, cut_off)) => Ok((head_of_line(&line), cut_off)),
        None => Ok((saved_head(path)?, false)),
    }
}

/// The head a record line leaves: its own seq, or 0 for a record an older trustd wrote without
/// one (the chain then starts after it).
fn head_of_line(line: &[u8]) -> ChainHead {
    let seq = serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("seq").and_then(|s| s.as_u64()))
        .unwrap_or(0);
    ChainHead::after(seq, line)
}

fn saved_head(log: &Path) -> std::io::Result<ChainHead> {
    let path = head_path(log);
    let mut text = String::new();
    match std::fs::File::open(&path) {
        // "SEQ SHA256\n" is under 100 bytes; whatever is longer is not a head.
        Ok(file) => file.take(HEAD_BYTES).read_to_string(&mut text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ChainHead::GENESIS),
        Err(e) => return Err(e),
    };
    let invalid = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} does not hold an audit chain head (\"SEQ SHA256\"); restore it, or remove it to start a new chain",
                path.display()
            ),
        )
    };
    let (seq, hash) = text.trim().split_once(' ').ok_or_else(invalid)?;
    let seq = seq.parse().map_err(|_| invalid())?;
    let mut sha256 = [0; 32];
    hex::decode_to_slice(hash, &mut sha256).map_err(|_| invalid())?;
    Ok(ChainHead { seq, sha256 })
}

/// The last complete line of the file, and whether a cut-off line follows it; None when the
/// file is missing or holds no complete line.
fn last_line(path: &Path) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let length = file.metadata()?.len();
    let start = length.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut tail)?;
    let cut_off = !tail.is_empty() && !tail.ends_with(b"\n");
    let complete = match tail.iter().rposition(|&b| b == b'\n') {
        Some(end) => &tail[..end],
        None => return Ok(None),
    };
    let line = match complete.iter().rposition(|&b| b == b'\n') {
        Some(at) => &complete[at + 1..],
        None if start == 0 => complete,
        // One line longer than the tail: not a record trustd wrote.
        None => return Ok(None),
    };
    Ok(Some((line.to_vec(), cut_off)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_from_the_last_line_or_the_saved_head() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        assert_eq!(resume(&log).unwrap(), (ChainHead::GENESIS, false));

        let first = br#"{"event":"sign","seq":7,"prev_sha256":"00"}"#;
        let second = br#"{"event":"sign","seq":8,"prev_sha256":"11"}"#;
        let mut body = [&first[..], b"\n", &second[..], b"\n"].concat();
        std::fs::write(&log, &body).unwrap();
        assert_eq!(resume(&log).unwrap(), (ChainHead::after(8, second), false));

        body.extend_from_slice(b"{\"event\":\"si");
        std::fs::write(&log, &body).unwrap();
        assert_eq!(resume(&log).unwrap(), (ChainHead::after(8, second), true));

        // Rotated away: the new file is empty and the head saved beside it continues.
        save_head(&log, ChainHead::after(8, second)).unwrap();
        std::fs::write(&log, b"").unwrap();
        assert_eq!(resume(&log).unwrap(), (ChainHead::after(8, second), false));

        std::fs::write(head_path(&log), "garbage").unwrap();
        let error = resume(&log).unwrap_err().to_string();
        assert!(error.contains("audit.jsonl.head"), "{error}");
    }

    #[test]
    fn a_record_without_seq_starts_the_chain_after_it() {
        let line = br#"{"event":"sign"}"#;
        assert_eq!(head_of_line(line).seq, 0);
        assert_eq!(ChainHead::GENESIS.hex(), GENESIS_PREV);
    }
}
