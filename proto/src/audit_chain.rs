//! The audit log's tamper-evidence format, shared by trustd (which writes it) and trustctl
//! (which checks it), so the two can never disagree on what is hashed or signed.
//!
//! Every record is one JSON line carrying `seq` (1, 2, 3, ... across files and restarts) and
//! `prev_sha256`, the SHA-256 of the previous record's line (its exact bytes, without the
//! newline). Editing, removing, inserting or reordering a line breaks the link after it. A
//! chain of plain hashes can be rebuilt by whoever can edit the file, so trustd also writes
//! checkpoints: records whose `statement` names a record's seq and hash, signed by a key on
//! hardware. Whoever can edit the log cannot sign a checkpoint.

/// `prev_sha256` of the very first record: there is no record before it.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `event` of a checkpoint record.
pub const CHECKPOINT_EVENT: &str = "checkpoint";

/// `type` inside a checkpoint statement; a new statement layout gets a new type.
pub const CHECKPOINT_TYPE: &str = "trustd-audit-checkpoint/v1";

/// The statement a checkpoint signs: record `covered_seq` has line hash `covered_sha256`
/// (hex), as trustd saw it at `time` (RFC 3339). Every field is a number, lowercase hex or an
/// RFC 3339 time, so the text needs no escaping and is the same wherever it is made.
pub fn checkpoint_statement(covered_seq: u64, covered_sha256: &str, time: &str) -> String {
    format!(
        r#"{{"type":"{CHECKPOINT_TYPE}","covered_seq":{covered_seq},"covered_sha256":"{covered_sha256}","time":"{time}"}}"#
    )
}
