//! A role file's envelope and each role's fields, as a notary server may send them: parsing
//! never panics, and the canonical form of what was signed is stable.

use trustd_notary::envelope::{Envelope, RawEnvelope};
use trustd_notary::model::{self, Root, Snapshot, Targets, Timestamp};

pub fn run(data: &[u8]) {
    if let Ok(raw) = RawEnvelope::parse(data) {
        let text = raw.signed_text();
        let _ = model::from_signed_text::<Root>(text);
        let _ = model::from_signed_text::<Targets>(text);
        let _ = model::from_signed_text::<Snapshot>(text);
        if let Ok(timestamp) = model::from_signed_text::<Timestamp>(text) {
            let _ = model::parse_expires(&timestamp.expires);
        }
        let _ = raw.signed_as_written();
        if let Ok(first) = raw.canonical_signed() {
            assert_eq!(
                raw.canonical_signed().ok(),
                Some(first),
                "the canonical form of one envelope changed between two calls"
            );
        }
    }
    if let Ok(envelope) = Envelope::parse(data) {
        if let Ok(canonical) = envelope.canonical_signed() {
            let wire = Envelope::wire(&canonical, &envelope.signatures);
            let back = Envelope::parse(&wire).expect("an envelope trustd writes parses");
            assert_eq!(
                back.canonical_signed().ok(),
                Some(canonical),
                "rewriting an envelope changed what is signed"
            );
        }
    }
}
