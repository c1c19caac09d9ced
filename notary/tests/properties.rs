//! Laws the Notary dialect must keep for any input, checked on generated values (proptest):
//! canonical JSON is a fixed point of parse-and-write and escapes only `"` and `\`; a key ID is
//! the hash of one spelling of the key object whatever spelling it was read from; a delegated
//! role's narrowed paths never reach beyond its parent's.

use base64::Engine;
use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use trustd_notary::canonical;
use trustd_notary::delegation::{narrow_paths, paths_cover};
use trustd_notary::keys::{KeyType, PublicKey};

/// Strings canonical JSON can carry: any Unicode but the control characters.
fn text() -> impl Strategy<Value = String> {
    "[^\\x00-\\x1f]{0,12}"
}

/// JSON values with integers only, nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    // No regression files: tests never write into the source tree. A failure prints its
    // minimal input, which then becomes an ordinary unit test.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn canonical_json_reads_back_as_the_same_value_and_writes_the_same_bytes(value in json()) {
        let bytes = canonical::to_vec(&value).unwrap();
        let read: Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(&read, &value);
        prop_assert_eq!(canonical::to_vec(&read).unwrap(), bytes);
    }

    #[test]
    fn canonical_strings_escape_only_quote_and_backslash(s in text()) {
        let bytes = canonical::to_vec(&Value::String(s.clone())).unwrap();
        let expected = format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        prop_assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }

    #[test]
    fn a_control_character_anywhere_is_refused(
        before in text(),
        control in 0u8..0x20,
        after in text(),
        as_key in any::<bool>(),
    ) {
        let s = format!("{before}{}{after}", control as char);
        let value = if as_key {
            serde_json::json!({ s: 1 })
        } else {
            serde_json::json!([s])
        };
        prop_assert!(canonical::to_vec(&value).is_err());
    }

    #[test]
    fn object_keys_come_out_in_byte_order(keys in prop::collection::btree_set(text(), 0..8)) {
        let object: serde_json::Map<String, Value> =
            keys.iter().rev().map(|k| (k.clone(), Value::Null)).collect();
        let bytes = canonical::to_vec(&Value::Object(object)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let mut at = 0;
        for key in &keys {
            // BTreeSet<String> iterates in byte order; each key appears after the previous.
            let spelled = String::from_utf8(canonical::to_vec(&Value::String(key.clone())).unwrap()).unwrap();
            let found = text[at..].find(&format!("{spelled}:")).map(|i| i + at);
            prop_assert!(found.is_some(), "{} not in order in {}", spelled, text);
            at = found.unwrap() + spelled.len();
        }
    }

    #[test]
    fn a_key_id_is_the_hash_of_notarys_spelling_however_the_key_was_read(
        public in prop::collection::vec(any::<u8>(), 1..200),
        keytype in prop_oneof![Just(KeyType::Ecdsa), Just(KeyType::Rsa), Just(KeyType::Ed25519)],
        reorder in any::<bool>(),
    ) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&public);
        let notary = format!(
            r#"{{"keytype":"{}","keyval":{{"private":null,"public":"{b64}"}}}}"#,
            keytype.as_str()
        );
        let expected = hex::encode(Sha256::digest(notary.as_bytes()));
        let key = PublicKey::new(keytype, public);
        prop_assert_eq!(key.id(), expected.clone());
        let spelled = if reorder {
            format!(
                "{{ \"keyval\": {{ \"public\": \"{b64}\", \"private\": null }},\n \"keytype\": \"{}\" }}",
                keytype.as_str()
            )
        } else {
            notary
        };
        let read: PublicKey = serde_json::from_str(&spelled).unwrap();
        prop_assert_eq!(read.id(), expected);
    }

    #[test]
    fn a_nested_role_never_signs_beyond_its_parent(
        parent in prop::collection::vec("[a-c]{0,3}", 0..4),
        own in prop::collection::vec("[a-c]{0,4}", 0..4),
        name in "[a-c]{0,6}",
    ) {
        let narrowed = narrow_paths(&own, &parent);
        if paths_cover(&narrowed, &name) {
            prop_assert!(paths_cover(&parent, &name), "{name:?} escapes the parent's {parent:?}");
            prop_assert!(paths_cover(&own, &name));
        }
        // The empty path covers every name; no paths cover none.
        prop_assert!(paths_cover(&[String::new()], &name));
        prop_assert!(!paths_cover(&[], &name));
    }
}
