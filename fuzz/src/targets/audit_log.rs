//! `trustctl audit verify` on audit logs that someone with write access to the files (root on
//! the host) edited: the verifier must report, not crash, whatever the lines hold.
//!
//! Parts: `key` (the checkpoint key's DER SPKI; absent: checkpoints are not checked), then
//! each other part is one log file, oldest first. The laws: counts add up, and a log called
//! intact has no record after a break.

use trustctl::audit_log::Walk;

use crate::framing;

pub fn run(data: &[u8]) {
    let parts = framing::split(data);
    let key = parts.iter().find(|(n, _)| *n == b"key").map(|p| p.1);
    let mut walk = Walk::new(key);
    for (name, bytes) in parts.iter().filter(|(n, _)| *n != b"key") {
        let name = String::from_utf8_lossy(name);
        walk.file(&name, *bytes).expect("reading bytes in memory");
    }
    let report = walk.finish();
    assert!(report.uncovered_records <= report.records);
    if let (Some(first), Some(last)) = (report.first_seq, report.last_seq) {
        assert!(first <= last, "the chain runs backwards");
        if report.intact() {
            assert_eq!(
                last - first + 1,
                report.records,
                "an intact chain has one record per seq"
            );
        }
    }
    if key.is_none() {
        assert_eq!(
            report.checkpoints_verified, 0,
            "a checkpoint verified without a key"
        );
    }
}
