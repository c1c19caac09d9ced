//! A signed role file on the wire: `{"signed":<body>,"signatures":[...]}`.
//!
//! Notary writes the file with Go's `json.Marshal` of a struct whose `signed` field is the
//! canonical body as a raw message. Marshalling compacts that raw message with HTML escaping,
//! so `<`, `>`, `&`, U+2028 and U+2029 become `\u003c`, `\u003e`, `\u0026`, `\u2028` and
//! `\u2029` in the stored bytes, although the signature covers the unescaped canonical form.
//! Readers re-canonicalize the parsed `signed` object before checking signatures.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{self, CanonicalError};

/// One signature over the canonical `signed` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The ID of the key that made the signature.
    pub keyid: String,
    /// `ecdsa`, `eddsa` or `rsapss`.
    pub method: String,
    #[serde(with = "super::encoding::base64_std")]
    /// The signature bytes (ECDSA as raw r||s).
    pub sig: Vec<u8>,
}

/// A parsed role file.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The `signed` object as parsed (verify against [`Envelope::canonical_signed`]).
    pub signed: Value,
    /// The signatures over the canonical form of `signed`.
    pub signatures: Vec<Signature>,
}

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a signed TUF file: {0}")]
    Malformed(String),
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    signed: Value,
    signatures: Vec<Signature>,
}

/// A role file read for verification without building a generic JSON value: the text of
/// its `signed` object, and its signatures.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvelope<'a> {
    #[serde(borrow)]
    signed: &'a serde_json::value::RawValue,
    /// The signatures over the canonical form of the `signed` text.
    pub signatures: Vec<Signature>,
}

impl<'a> RawEnvelope<'a> {
    /// Splits a role file into its `signed` text and its signatures, without re-serializing.
    pub fn parse(bytes: &'a [u8]) -> Result<RawEnvelope<'a>, EnvelopeError> {
        let wire: RawEnvelope =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if !wire.signed.get().starts_with('{') {
            return Err(EnvelopeError::Malformed("`signed` is not an object".into()));
        }
        Ok(wire)
    }

    /// The `signed` object as it appears in the file.
    pub fn signed_text(&self) -> &'a str {
        self.signed.get()
    }

    /// The signed bytes if the file holds them as notary writes them (canonical JSON with Go's
    /// HTML escaping): the file text with those escapes undone. A signature that verifies over
    /// these bytes verifies over the canonical form; when it does not, the caller falls back
    /// to [`RawEnvelope::canonical_signed`].
    pub fn signed_as_written(&self) -> Vec<u8> {
        html_unescape(self.signed.get().as_bytes())
    }

    /// The canonical form of `signed`, computed from its parsed value (the slow, general way).
    pub fn canonical_signed(&self) -> Result<Vec<u8>, EnvelopeError> {
        let value: Value = serde_json::from_str(self.signed.get())
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        Ok(canonical::to_vec(&value)?)
    }
}

/// Undoes Go's HTML escaping (`\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`) in JSON
/// text, leaving every other escape as it is.
fn html_unescape(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            out.push(json[i]);
            i += 1;
            continue;
        }
        let replacement: Option<&[u8]> = match json.get(i + 1..i + 6) {
            Some(b"u003c") => Some(b"<"),
            Some(b"u003e") => Some(b">"),
            Some(b"u0026") => Some(b"&"),
            Some(b"u2028") => Some("\u{2028}".as_bytes()),
            Some(b"u2029") => Some("\u{2029}".as_bytes()),
            _ => None,
        };
        match replacement {
            Some(text) => {
                out.extend_from_slice(text);
                i += 6;
            }
            None => {
                // Any other escape: copy it whole (two bytes; a \uXXXX's digits follow as is).
                out.extend_from_slice(&json[i..(i + 2).min(json.len())]);
                i += 2;
            }
        }
    }
    out
}

impl Envelope {
    /// Parses a role file's envelope.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if !wire.signed.is_object() {
            return Err(EnvelopeError::Malformed("`signed` is not an object".into()));
        }
        Ok(Envelope {
            signed: wire.signed,
            signatures: wire.signatures,
        })
    }

    /// The bytes the signatures cover.
    pub fn canonical_signed(&self) -> Result<Vec<u8>, CanonicalError> {
        canonical::to_vec(&self.signed)
    }

    /// The file exactly as Go's notary would write it.
    pub fn to_wire(&self) -> Result<Vec<u8>, EnvelopeError> {
        Ok(Envelope::wire(&self.canonical_signed()?, &self.signatures))
    }

    /// The file for a canonical body and its signatures, without parsing the body again.
    pub fn wire(body: &[u8], signatures: &[Signature]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 128 * signatures.len() + 32);
        out.extend_from_slice(b"{\"signed\":");
        html_escape_into(body, &mut out);
        out.extend_from_slice(b",\"signatures\":");
        // Signature fields are hex, fixed method names and base64: nothing to escape.
        out.extend_from_slice(&serde_json::to_vec(signatures).expect("signatures serialize"));
        out.push(b'}');
        out
    }
}

/// Go's `json.Marshal` HTML escaping of an already compact JSON text.
fn html_escape_into(json: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8) | Some(0xA9)) =>
            {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn html_characters_are_escaped_on_the_wire_but_not_in_what_is_signed() {
        let envelope = Envelope {
            signed: json!({"_type": "Targets", "targets": {"a<b>&c\u{2028}\u{2029}": {"length": 1}}}),
            signatures: vec![],
        };
        let canonical = envelope.canonical_signed().unwrap();
        assert!(String::from_utf8_lossy(&canonical).contains("a<b>&c\u{2028}\u{2029}"));
        let wire = String::from_utf8(envelope.to_wire().unwrap()).unwrap();
        assert_eq!(
            wire,
            r#"{"signed":{"_type":"Targets","targets":{"a\u003cb\u003e\u0026c\u2028\u2029":{"length":1}}},"signatures":[]}"#
        );
        // Reading the escaped file back gives the same canonical body.
        assert_eq!(
            Envelope::parse(wire.as_bytes())
                .unwrap()
                .canonical_signed()
                .unwrap(),
            canonical
        );
    }

    #[test]
    fn the_written_form_unescapes_to_the_canonical_body() {
        let envelope = Envelope {
            signed: json!({"_type": "Targets", "targets": {"a<b>&c\u{2028}\u{2029}\\u003c\"": {"length": 1}}}),
            signatures: vec![],
        };
        let wire = envelope.to_wire().unwrap();
        let raw = RawEnvelope::parse(&wire).unwrap();
        assert_eq!(
            raw.signed_as_written(),
            envelope.canonical_signed().unwrap()
        );
        assert_eq!(
            raw.canonical_signed().unwrap(),
            envelope.canonical_signed().unwrap()
        );
    }

    #[test]
    fn rejects_what_is_not_an_envelope() {
        assert!(Envelope::parse(b"{}").is_err());
        assert!(Envelope::parse(br#"{"signed":[],"signatures":[]}"#).is_err());
        assert!(Envelope::parse(br#"{"signed":{},"signatures":[],"extra":1}"#).is_err());
        assert!(Envelope::parse(
            br#"{"signed":{},"signatures":[{"keyid":"a","method":"ecdsa","sig":"!"}]}"#
        )
        .is_err());
    }
}
