//! Checking trustd's audit log: the hash chain record by record, and the checkpoints trustd
//! signed on hardware (format: `trustd_proto::audit_chain`).
//!
//! The chain shows that no record was edited, removed, inserted or moved since the record
//! after it was written; a checkpoint whose signature verifies shows that nobody rebuilt the
//! chain up to the record it covers. Records after the last checkpoint are reported as not yet
//! covered: their chain is intact, but whoever can edit the file could have rewritten them.

use std::collections::VecDeque;
use std::io::{BufRead, Read};

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use trustd_notary::verify::{self, Signed};
use trustd_proto::audit_chain::{CHECKPOINT_EVENT, CHECKPOINT_TYPE, GENESIS_PREV};

/// Longest line read as a record; trustd's records are bounded far below this.
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// How many recent records' hashes are kept for the checkpoints that cover them; trustd covers
/// a record within its queue depth (4096) plus what arrives while one checkpoint is signed.
const RECENT_RECORDS: usize = 1 << 18;

/// What the walk found. Field names are the stable schema of `trustctl audit verify --json`.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub files: Vec<String>,
    /// Records in the chain (lines with a seq).
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The first record follows one in a file not given (an earlier, rotated log).
    pub starts_after_seq: Option<u64>,
    /// Lines before the chain began, written by a trustd without one.
    pub unchained_records: u64,
    /// Checkpoints whose signature verified and whose covered record matched.
    pub checkpoints_verified: u64,
    /// Checkpoints not checked because no key was given.
    pub checkpoints_unchecked: u64,
    /// Checkpoints trustd could not sign (it recorded why).
    pub checkpoints_failed: u64,
    /// The last record a verified checkpoint covers.
    pub covered_through_seq: Option<u64>,
    /// Records after that one, checkpoints aside (or all, without a verified checkpoint).
    pub uncovered_records: u64,
    pub broken: Option<Break>,
}

/// The first place the log stops being what trustd wrote.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Break {
    pub file: String,
    pub line: u64,
    pub seq: Option<u64>,
    pub reason: String,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// A record seen recently: where it is, its line hash, and how many records that are not
/// checkpoints the walk has seen up to it.
#[derive(Clone, Copy)]
struct Seen {
    seq: u64,
    sha256: [u8; 32],
    file: usize,
    line: u64,
    events: u64,
}

/// Walks audit log files in order (oldest first), checking the chain and, with a checkpoint
/// key's SubjectPublicKeyInfo, the checkpoints.
pub struct Walk<'k> {
    key: Option<&'k [u8]>,
    report: Report,
    /// The line before the chain began (an older trustd's record), which its first record
    /// links to.
    unchained_tail: Option<[u8; 32]>,
    /// The records most recently walked, the last one at the back.
    recent: VecDeque<Seen>,
    /// Records that are not checkpoints, in all, and up to the last covered one.
    events: u64,
    covered_events: u64,
}

impl<'k> Walk<'k> {
    pub fn new(checkpoint_key: Option<&'k [u8]>) -> Self {
        Walk {
            key: checkpoint_key,
            report: Report::default(),
            unchained_tail: None,
            recent: VecDeque::new(),
            events: 0,
            covered_events: 0,
        }
    }

    /// Reads one file; stops at the first break. An I/O error is the caller's to report.
    pub fn file(&mut self, name: &str, reader: impl Read) -> std::io::Result<()> {
        let file = self.report.files.len();
        self.report.files.push(name.to_owned());
        let mut reader = std::io::BufReader::new(reader);
        let mut line = Vec::new();
        let mut number = 0;
        while self.report.broken.is_none() {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if read == 0 {
                break;
            }
            number += 1;
            let complete = line.ends_with(b"\n");
            if complete {
                line.pop();
            }
            if let Err(reason) = self.record(file, number, &line, complete) {
                self.report.broken = Some(Break {
                    file: name.to_owned(),
                    line: number,
                    seq: serde_json::from_slice::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v["seq"].as_u64()),
                    reason,
                });
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Report {
        let report = &mut self.report;
        report.uncovered_records = self.events - self.covered_events;
        self.report
    }

    fn record(
        &mut self,
        file: usize,
        line: u64,
        bytes: &[u8],
        complete: bool,
    ) -> Result<(), String> {
        if bytes.len() > MAX_LINE_BYTES {
            return Err(format!(
                "the line is longer than {MAX_LINE_BYTES} bytes: trustd writes no such record"
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| {
            if complete {
                "not a JSON record: written by something other than trustd, or a cut-off record trustd continued after".to_owned()
            } else {
                "a cut-off record at the end of the file (trustd stopped mid-write, or the file was truncated)".to_owned()
            }
        })?;
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        let Some(seq) = value.get("seq").and_then(|s| s.as_u64()) else {
            if !self.recent.is_empty() {
                return Err(
                    "a record without seq inside the chain: added by hand, or by something other than trustd"
                        .into(),
                );
            }
            self.report.unchained_records += 1;
            self.unchained_tail = Some(sha256);
            return Ok(());
        };
        let prev = value
            .get("prev_sha256")
            .and_then(|p| p.as_str())
            .ok_or("a record without prev_sha256")?;
        self.link(seq, prev)?;
        if value.get("event").and_then(|e| e.as_str()) == Some(CHECKPOINT_EVENT) {
            self.checkpoint(&value)?;
        } else {
            self.events += 1;
        }
        self.report.records += 1;
        self.report.first_seq.get_or_insert(seq);
        self.report.last_seq = Some(seq);
        let seen = Seen {
            seq,
            sha256,
            file,
            line,
            events: self.events,
        };
        if self.recent.len() == RECENT_RECORDS {
            self.recent.pop_front();
        }
        self.recent.push_back(seen);
        Ok(())
    }

    /// Checks that record `seq` follows the last one and names its hash.
    fn link(&mut self, seq: u64, prev: &str) -> Result<(), String> {
        let Some(last) = self.recent.back() else {
            // The first record of the walk.
            return match self.unchained_tail {
                Some(tail) if prev != hex::encode(tail) => Err(
                    "the first chained record does not follow the line before it: a line was edited, removed or inserted there"
                        .into(),
                ),
                Some(_) => Ok(()),
                None if seq == 1 && prev == GENESIS_PREV => Ok(()),
                None if seq > 1 => {
                    self.report.starts_after_seq = Some(seq - 1);
                    Ok(())
                }
                None => Err(format!("seq {seq} with prev_sha256 {prev:?} cannot start a chain")),
            };
        };
        let files = &self.report.files;
        let before = format!("{} line {} (seq {})", files[last.file], last.line, last.seq);
        // trustd counts from 1 and never reaches u64::MAX: a record there was forged, and
        // nothing can follow it.
        let next = last.seq.checked_add(1).ok_or_else(|| {
            format!("nothing can follow {before}: its seq is the largest there is")
        })?;
        if seq > next {
            return Err(format!(
                "records {next} to {} are missing between {before} and this one (removed)",
                seq - 1
            ));
        }
        if seq <= last.seq {
            return Err(format!(
                "seq {seq} comes after {before}: a record was inserted, repeated or moved here"
            ));
        }
        if prev != hex::encode(last.sha256) {
            return Err(format!(
                "{before} does not hash to the prev_sha256 this record holds: one of the two was edited"
            ));
        }
        Ok(())
    }

    /// Checks a checkpoint record: its signature, and that the record it covers is the one
    /// here.
    fn checkpoint(&mut self, value: &serde_json::Value) -> Result<(), String> {
        if value.get("result").and_then(|r| r.as_str()) == Some("failed") {
            self.report.checkpoints_failed += 1;
            return Ok(());
        }
        let statement = value
            .get("statement")
            .and_then(|s| s.as_str())
            .ok_or("a checkpoint without its statement")?;
        let signature = value
            .get("signature")
            .and_then(|s| s.as_str())
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or("a checkpoint without a base64 signature")?;
        let Some(key) = self.key else {
            self.report.checkpoints_unchecked += 1;
            return Ok(());
        };
        verify::verify(key, Signed::Message(statement.as_bytes()), &signature).map_err(|e| {
            format!("the checkpoint's signature does not verify with the checkpoint key ({e}): it was forged or edited")
        })?;
        let parsed: serde_json::Value =
            serde_json::from_str(statement).map_err(|_| "the signed statement is not JSON")?;
        if parsed.get("type").and_then(|t| t.as_str()) != Some(CHECKPOINT_TYPE) {
            return Err(format!(
                "the signed statement is not a {CHECKPOINT_TYPE} statement"
            ));
        }
        let (Some(covered), Some(covered_sha256)) = (
            parsed.get("covered_seq").and_then(|s| s.as_u64()),
            parsed.get("covered_sha256").and_then(|s| s.as_str()),
        ) else {
            return Err("the signed statement names no covered_seq and covered_sha256".into());
        };
        match self.recent.iter().rev().find(|seen| seen.seq == covered) {
            Some(seen) if hex::encode(seen.sha256) == covered_sha256 => {
                self.report.checkpoints_verified += 1;
                if self.report.covered_through_seq.is_none_or(|s| s < covered) {
                    self.report.covered_through_seq = Some(covered);
                    self.covered_events = seen.events;
                }
                Ok(())
            }
            Some(seen) => Err(format!(
                "the checkpoint covers seq {covered} with sha256 {covered_sha256}, but {} line {} (seq {covered}) hashes otherwise: the log up to it was rewritten",
                self.report.files[seen.file], seen.line
            )),
            None if self.report.first_seq.is_none_or(|first| covered < first) => {
                // It covers a record in an earlier file not given: nothing here to compare.
                self.report.checkpoints_verified += 1;
                Ok(())
            }
            None => Err(format!(
                "the checkpoint covers seq {covered}, which is not among the records before it"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64, prev: &str) -> String {
        format!(r#"{{"seq":{seq},"event":"sign","result":"allowed","prev_sha256":"{prev}"}}"#)
    }

    fn chain(n: u64) -> Vec<String> {
        let mut lines = Vec::new();
        let mut prev = GENESIS_PREV.to_owned();
        for seq in 1..=n {
            let l = line(seq, &prev);
            prev = hex::encode(Sha256::digest(l.as_bytes()));
            lines.push(l);
        }
        lines
    }

    fn walk_lines(lines: &[String]) -> Report {
        let mut walk = Walk::new(None);
        let text = lines.join("\n") + "\n";
        walk.file("log", text.as_bytes()).unwrap();
        walk.finish()
    }

    /// A forged first record at the largest seq: what follows it is reported, not an
    /// arithmetic overflow.
    #[test]
    fn nothing_follows_the_largest_seq() {
        let first = line(u64::MAX, &"a".repeat(64));
        let second = line(1, &hex::encode(Sha256::digest(first.as_bytes())));
        let report = walk_lines(&[first, second]);
        let broken = report.broken.expect("reported");
        assert_eq!(broken.line, 2);
        assert!(broken.reason.contains("largest"), "{}", broken.reason);
    }

    #[test]
    fn an_intact_chain_and_each_kind_of_tampering() {
        let lines = chain(6);
        let report = walk_lines(&lines);
        assert!(report.intact(), "{report:?}");
        assert_eq!((report.records, report.uncovered_records), (6, 6));

        let mut removed = lines.clone();
        removed.remove(2);
        let broken = walk_lines(&removed).broken.unwrap();
        assert_eq!(broken.line, 3);
        assert!(
            broken.reason.contains("records 3 to 3 are missing"),
            "{}",
            broken.reason
        );

        let mut edited = lines.clone();
        edited[1] = edited[1].replace("allowed", "denied");
        let broken = walk_lines(&edited).broken.unwrap();
        assert_eq!(broken.line, 3);
        assert!(
            broken.reason.contains("line 2 (seq 2) does not hash"),
            "{}",
            broken.reason
        );

        let mut moved = lines.clone();
        moved.swap(3, 4);
        assert_eq!(walk_lines(&moved).broken.unwrap().line, 4);

        let mut inserted = lines.clone();
        inserted.insert(4, lines[1].clone());
        let broken = walk_lines(&inserted).broken.unwrap();
        assert_eq!(broken.line, 5);
        assert!(broken.reason.contains("inserted"), "{}", broken.reason);

        let mut cut = lines.join("\n");
        cut.truncate(cut.len() - 10);
        let mut walk = Walk::new(None);
        walk.file("log", cut.as_bytes()).unwrap();
        let broken = walk.finish().broken.unwrap();
        assert_eq!(broken.line, 6);
        assert!(broken.reason.contains("cut-off"), "{}", broken.reason);
    }

    /// One way to tamper with a log of `n` lines.
    #[derive(Debug, Clone)]
    enum Tamper {
        Remove(usize),
        Insert {
            copy: usize,
            at: usize,
        },
        Swap(usize, usize),
        /// Changes a field's value; the chain alone cannot see this in the last line (no
        /// record follows it), which is what checkpoints are for.
        Edit(usize),
    }

    fn tamper() -> impl proptest::strategy::Strategy<Value = (usize, Tamper)> {
        use proptest::prelude::*;
        (2usize..40).prop_flat_map(|n| {
            let change = prop_oneof![
                (0..n).prop_map(Tamper::Remove),
                (0..n, 0..=n).prop_map(|(copy, at)| Tamper::Insert { copy, at }),
                (0..n, 0..n)
                    .prop_filter("two different lines", |(a, b)| a != b)
                    .prop_map(|(a, b)| Tamper::Swap(a, b)),
                (0..n - 1).prop_map(Tamper::Edit),
            ];
            (Just(n), change)
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn any_removal_insertion_swap_or_edit_before_the_last_line_breaks_the_chain(
            (n, change) in tamper()
        ) {
            let mut lines = chain(n as u64);
            match change {
                Tamper::Remove(i) => {
                    lines.remove(i);
                }
                Tamper::Insert { copy, at } => {
                    let line = lines[copy].clone();
                    lines.insert(at, line);
                }
                Tamper::Swap(a, b) => lines.swap(a, b),
                Tamper::Edit(i) => lines[i] = lines[i].replace("allowed", "denied"),
            }
            let report = walk_lines(&lines);
            // Removing the first or last line leaves a shorter chain that is still whole: a
            // removed first line shows as a chain starting after seq 1, a removed last line
            // only as a record count lower than the checkpoints say.
            let still_whole = match change {
                Tamper::Remove(i) => i == 0 || i == n - 1,
                _ => false,
            };
            if still_whole {
                proptest::prop_assert!(report.intact());
                proptest::prop_assert_eq!(report.records, n as u64 - 1);
            } else {
                proptest::prop_assert!(!report.intact(), "{:?} went unnoticed", change);
            }
        }
    }

    #[test]
    fn a_rotated_file_continues_the_chain_of_the_one_before() {
        let lines = chain(6);
        let mut walk = Walk::new(None);
        walk.file("old", (lines[..3].join("\n") + "\n").as_bytes())
            .unwrap();
        walk.file("new", (lines[3..].join("\n") + "\n").as_bytes())
            .unwrap();
        let report = walk.finish();
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.starts_after_seq, None);

        let alone = walk_lines(&lines[3..]);
        assert!(alone.intact());
        assert_eq!(alone.starts_after_seq, Some(3));

        // The newer file first: seq goes back.
        let mut walk = Walk::new(None);
        walk.file("new", (lines[3..].join("\n") + "\n").as_bytes())
            .unwrap();
        walk.file("old", (lines[..3].join("\n") + "\n").as_bytes())
            .unwrap();
        let broken = walk.finish().broken.unwrap();
        assert_eq!((broken.file.as_str(), broken.line), ("old", 1));
    }
}
