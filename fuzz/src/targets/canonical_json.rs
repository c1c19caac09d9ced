//! Notary's canonical JSON, on any JSON value: what it writes parses back to the same value,
//! and writing that again gives the same bytes (the property signatures rest on).

use serde_json::Value;
use trustd_notary::canonical;

pub fn run(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(bytes) = canonical::to_vec(&value) else {
        return;
    };
    let again: Value = serde_json::from_slice(&bytes).expect("canonical JSON parses");
    assert_eq!(again, value, "canonical JSON changed the value");
    assert_eq!(
        canonical::to_vec(&again).expect("a canonical value stays canonical"),
        bytes,
        "canonical JSON is not a fixed point"
    );
}
