//! Canonical JSON as notary signs it (docker/go's `canonical/json`, OLPC rules): object keys
//! sorted by their bytes, no whitespace, integers only, and strings escaping only `"` and `\`.
//!
//! Hand-written because no crate implements this dialect: RFC 8785 (JCS) escapes control
//! characters and formats numbers differently, and serde_json's own output is not sorted
//! unless its map type happens to be.

use serde_json::Value;

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("canonical JSON has integers only, not {0}")]
    NotAnInteger(String),
    #[error("string {0:?} holds a control character, which canonical JSON cannot carry")]
    ControlCharacter(String),
}

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(CanonicalError::NotAnInteger(n.to_string()));
            }
        }
        Value::String(s) => write_string(s, out)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's map keeps insertion order when any crate in the
            // build enables its `preserve_order` feature.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out)?;
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    out.push(b'"');
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            c if c < 0x20 => return Err(CanonicalError::ControlCharacter(s.to_owned())),
            c => out.push(c),
        }
    }
    out.push(b'"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_by_bytes_and_drops_whitespace() {
        let value = json!({"b": 1, "_type": "Root", "B": [true, null], "a": {"z": -2, "y": "x"}});
        assert_eq!(
            String::from_utf8(to_vec(&value).unwrap()).unwrap(),
            r#"{"B":[true,null],"_type":"Root","a":{"y":"x","z":-2},"b":1}"#
        );
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        let value = json!("a\"b\\c<d>&é/\u{2028}");
        assert_eq!(
            to_vec(&value).unwrap(),
            "\"a\\\"b\\\\c<d>&é/\u{2028}\"".as_bytes()
        );
    }

    #[test]
    fn refuses_floats_and_control_characters() {
        assert!(matches!(
            to_vec(&json!({"x": 1.5})),
            Err(CanonicalError::NotAnInteger(_))
        ));
        assert!(matches!(
            to_vec(&json!("tab\there")),
            Err(CanonicalError::ControlCharacter(_))
        ));
    }

    #[test]
    fn large_integers_survive() {
        assert_eq!(
            to_vec(&json!(u64::MAX)).unwrap(),
            u64::MAX.to_string().as_bytes()
        );
        assert_eq!(
            to_vec(&json!(i64::MIN)).unwrap(),
            i64::MIN.to_string().as_bytes()
        );
    }
}
