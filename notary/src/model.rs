//! The four roles and delegations, with exactly the fields notary 0.7 writes.
//!
//! Unknown fields are refused rather than dropped: a signer that re-signs a role must never
//! silently lose part of what it was given.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::keys::PublicKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// A role file's `_type`.
pub enum RoleType {
    /// `root`: the keys of every top-level role.
    Root,
    /// `targets` and every delegated role: the signed tags.
    Targets,
    /// `snapshot`.
    Snapshot,
    /// `timestamp`.
    Timestamp,
}

/// Key IDs and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleKeys {
    /// The IDs of the keys that may sign the role.
    pub keyids: Vec<String>,
    /// How many of them must.
    pub threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The root role: every top-level role's keys and thresholds.
pub struct Root {
    #[serde(rename = "_type")]
    /// Always `Root`.
    pub role_type: RoleType,
    /// Notary always writes it, always false.
    pub consistent_snapshot: bool,
    /// When the role stops being valid (Go's time format).
    pub expires: String,
    /// Every key a top-level role lists, by ID.
    pub keys: BTreeMap<String, PublicKey>,
    /// `root`, `targets`, `snapshot`, `timestamp`.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Raised on every change; never lower than a version seen before.
    pub version: u64,
}

/// Length and hashes of a target or of a role file, with notary's optional `custom` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Extra data notary passes through untouched.
    pub custom: Option<Value>,
    /// The file's hashes by algorithm (`sha256`, `sha512`).
    pub hashes: BTreeMap<String, Base64Bytes>,
    /// The file's length in bytes.
    pub length: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// A role a targets role delegates to.
pub struct DelegatedRole {
    /// The IDs of the keys that may sign it (in the parent's `delegations.keys`).
    pub keyids: Vec<String>,
    /// `targets/...`.
    pub name: String,
    /// Path prefixes the role may sign; `""` means every path. Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// How many of them must.
    pub threshold: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The roles a targets role delegates to, and their keys.
pub struct Delegations {
    /// Every key a delegated role lists, by ID.
    pub keys: BTreeMap<String, PublicKey>,
    /// The delegated roles, in order of precedence.
    pub roles: Vec<DelegatedRole>,
}

/// `targets` and every delegated `targets/...` role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    #[serde(rename = "_type")]
    /// Always `Targets`.
    pub role_type: RoleType,
    /// Always present, even when empty.
    pub delegations: Delegations,
    /// When the role stops being valid (Go's time format).
    pub expires: String,
    /// The signed targets (tags), by name.
    pub targets: BTreeMap<String, FileMeta>,
    /// Raised on every change; never lower than a version seen before.
    pub version: u64,
}

/// Snapshot and timestamp share a shape (role files they vouch for, by hash and length) but
/// are distinct types, so a snapshot can never be taken for a timestamp.
macro_rules! meta_role {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(rename = "_type")]
            /// The role's own type.
            pub role_type: RoleType,
            /// When the role stops being valid (Go's time format).
            pub expires: String,
            /// The role files it vouches for, by role name.
            pub meta: BTreeMap<String, FileMeta>,
            /// Raised on every change; never lower than a version seen before.
            pub version: u64,
        }
    };
}

meta_role!(
    /// The snapshot: the version and hashes of root, targets and every delegated role.
    Snapshot
);
meta_role!(
    /// The timestamp: the snapshot's hashes, re-signed often so freezes show.
    Timestamp
);

/// Bytes written as standard padded base64.
#[derive(Clone, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

impl std::fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", hex::encode(&self.0))
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(String::deserialize(d)?)
            .map(Base64Bytes)
            .map_err(serde::de::Error::custom)
    }
}

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("role does not match notary's schema: {0}")]
    Schema(#[from] serde_json::Error),
    #[error("expected a {expected:?} role, found {found:?}")]
    WrongType { expected: RoleType, found: RoleType },
}

/// Reads a role from the parsed `signed` object, checking its `_type` is `T`'s.
pub fn from_signed<T: DeserializeOwned + Role>(signed: &Value) -> Result<T, ModelError> {
    let expected = T::TYPE;
    // Deserialize from the borrowed value: no copy of a targets role with thousands of tags.
    let role = T::deserialize(signed)?;
    if role.role_type() != expected {
        return Err(ModelError::WrongType {
            expected,
            found: role.role_type(),
        });
    }
    Ok(role)
}

/// Reads a role from the text of its `signed` object, checking its `_type`; for readers that
/// never need the generic JSON value.
pub fn from_signed_text<T: DeserializeOwned + Role>(signed: &str) -> Result<T, ModelError> {
    let expected = T::TYPE;
    let role: T = serde_json::from_str(signed)?;
    if role.role_type() != expected {
        return Err(ModelError::WrongType {
            expected,
            found: role.role_type(),
        });
    }
    Ok(role)
}

/// What every role carries, whatever its type.
pub trait Role {
    /// The `_type` every role of this type carries.
    const TYPE: RoleType;
    /// The `_type` this role carries.
    fn role_type(&self) -> RoleType;
    /// Its expiry, as written.
    fn expires(&self) -> &str;
    /// Its version.
    fn version(&self) -> u64;
}

macro_rules! impl_role {
    ($($t:ident),*) => {$(
        impl Role for $t {
            const TYPE: RoleType = RoleType::$t;
            fn role_type(&self) -> RoleType {
                self.role_type
            }
            fn expires(&self) -> &str {
                &self.expires
            }
            fn version(&self) -> u64 {
                self.version
            }
        }
    )*};
}

impl_role!(Root, Targets, Snapshot, Timestamp);

/// `expires` as Go's time.Time marshals it: RFC 3339 in UTC, nanoseconds with trailing zeros
/// trimmed (and no fraction at all when it is zero), then `Z`.
pub fn format_expires(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Reads an `expires` value written by Go (RFC 3339, any fraction).
pub fn parse_expires(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_is_formatted_as_go_does() {
        for text in [
            "2026-11-22T04:17:31.786507813Z",
            "2026-11-22T04:17:31.7865Z",
            "2026-11-22T04:17:31Z",
            "2036-01-02T00:00:00.1Z",
        ] {
            assert_eq!(format_expires(parse_expires(text).unwrap()), text);
        }
        let offset = parse_expires("2026-11-22T05:17:31.5+01:00").unwrap();
        assert_eq!(format_expires(offset), "2026-11-22T04:17:31.5Z");
    }

    #[test]
    fn empty_paths_are_left_out_and_unknown_fields_refused() {
        let role = DelegatedRole {
            keyids: vec!["k".into()],
            name: "targets/releases".into(),
            paths: vec![],
            threshold: 1,
        };
        let value = serde_json::to_value(&role).unwrap();
        assert!(value.get("paths").is_none());
        let mut with_extra = value.clone();
        with_extra["extra"] = Value::Bool(true);
        assert!(serde_json::from_value::<DelegatedRole>(with_extra).is_err());
    }
}
