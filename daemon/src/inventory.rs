//! The key inventory: which keys exist, on which device, and their public halves.
//!
//! It holds public data only (names, IDs, device handles, public keys), so losing it loses no
//! secret and reading it grants nothing. It is rewritten whole on every change with
//! write-to-temp, fsync, rename, fsync-directory, so a crash leaves either the old or the new
//! file, never a torn one.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::algorithm::KeyAlgorithm;

const FILE_NAME: &str = "inventory.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("state directory {path}: {error}")]
    StateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("state directory {0} is writable by other users: run `chmod 700 {0}`")]
    StateDirTooOpen(PathBuf),
    #[error("cannot read inventory {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("inventory {path} is corrupt: {error}")]
    Corrupt {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error(
        "inventory {path} has format version {found}; this trustd understands {FORMAT_VERSION}"
    )]
    UnknownVersion { path: PathBuf, found: u32 },
    #[error("cannot write inventory {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("a key named {0:?} already exists")]
    NameTaken(String),
}

/// Where on its device a key lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum DeviceHandle {
    /// A private/public key object pair on a PKCS#11 token, found by CKA_ID.
    Pkcs11 {
        #[serde(with = "hex_bytes")]
        cka_id: Vec<u8>,
    },
    /// A key wrapped by a TPM's storage key: TPM2B_PRIVATE contents (useless off that TPM)
    /// and the marshalled TPMT_PUBLIC, loaded on demand.
    Tpm {
        #[serde(with = "trustd_notary::encoding::base64_std")]
        private: Vec<u8>,
        #[serde(with = "trustd_notary::encoding::base64_std")]
        public: Vec<u8>,
    },
    /// A key in a slot of a PIV card, and the policies it was generated with.
    Piv {
        serial: u32,
        /// "9c", "82", ...
        slot: String,
        pin_policy: PinPolicy,
        touch_policy: TouchPolicy,
    },
}

/// When a PIV key needs the PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinPolicy {
    Never,
    Once,
    Always,
}

/// When a PIV key needs a touch of the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TouchPolicy {
    Never,
    Always,
    Cached,
}

impl DeviceHandle {
    pub fn kind_name(&self) -> &'static str {
        match self {
            DeviceHandle::Pkcs11 { .. } => "PKCS#11",
            DeviceHandle::Tpm { .. } => "TPM",
            DeviceHandle::Piv { .. } => "PIV",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOrigin {
    Generated,
    Imported,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScope {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gun: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub name: String,
    pub key_id: String,
    pub algorithm: KeyAlgorithm,
    /// Name of the configured backend holding the key.
    pub backend: String,
    pub device: DeviceHandle,
    /// DER SubjectPublicKeyInfo.
    #[serde(with = "trustd_notary::encoding::base64_std")]
    pub public_key: Vec<u8>,
    #[serde(default)]
    pub scope: KeyScope,
    pub origin: KeyOrigin,
    /// RFC 3339.
    pub created: String,
    /// The key's X.509 certificate (DER), when one was loaded with it.
    #[serde(
        default,
        with = "trustd_notary::encoding::base64_std",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub certificate: Vec<u8>,
    /// What the device attested about the key when it generated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

/// Evidence from a device that it generated a key, kept as the device signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Attestation {
    Tpm(TpmEvidence),
    Piv(PivEvidence),
}

/// A PIV attestation: the slot's attestation certificate and the card's f9 certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PivEvidence {
    #[serde(with = "trustd_notary::encoding::base64_std")]
    pub attestation_certificate: Vec<u8>,
    #[serde(with = "trustd_notary::encoding::base64_std")]
    pub intermediate_certificate: Vec<u8>,
}

/// A TPM2_Certify of a key by the TPM backend's attestation key (see the proto's
/// TpmAttestation for each field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmEvidence {
    #[serde(with = "trustd_notary::encoding::base64_std")]
    pub key_public_area: Vec<u8>,
    #[serde(with = "trustd_notary::encoding::base64_std")]
    pub certify_info: Vec<u8>,
    #[serde(with = "trustd_notary::encoding::base64_std")]
    pub signature: Vec<u8>,
    #[serde(with = "trustd_notary::encoding::base64_std")]
    pub ak_public_area: Vec<u8>,
    #[serde(
        default,
        with = "trustd_notary::encoding::base64_std",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ek_certificate: Vec<u8>,
}

#[derive(Deserialize)]
struct InventoryFile {
    version: u32,
    keys: Vec<KeyRecord>,
}

#[derive(Serialize)]
struct InventoryFileOut<'a> {
    version: u32,
    keys: Vec<&'a KeyRecord>,
}

/// The in-memory inventory, backed by `<state_dir>/inventory.json`.
pub struct Inventory {
    path: PathBuf,
    /// Shared records: a sign request takes a reference, not a copy.
    keys: RwLock<Vec<Arc<KeyRecord>>>,
    /// Serializes writers so two changes cannot interleave their rewrites.
    write_lock: std::sync::Mutex<()>,
}

impl Inventory {
    /// Opens (creating if needed) the state directory and loads the inventory.
    pub fn open(state_dir: &Path) -> Result<Inventory, InventoryError> {
        let dir_err = |error| InventoryError::StateDir {
            path: state_dir.to_owned(),
            error,
        };
        if !state_dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .map_err(dir_err)?;
        }
        let mode = std::fs::metadata(state_dir)
            .map_err(dir_err)?
            .permissions()
            .mode();
        if mode & 0o022 != 0 {
            return Err(InventoryError::StateDirTooOpen(state_dir.to_owned()));
        }
        let path = state_dir.join(FILE_NAME);
        let keys = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: InventoryFile =
                    serde_json::from_slice(&bytes).map_err(|error| InventoryError::Corrupt {
                        path: path.clone(),
                        error,
                    })?;
                if file.version != FORMAT_VERSION {
                    return Err(InventoryError::UnknownVersion {
                        path,
                        found: file.version,
                    });
                }
                file.keys.into_iter().map(Arc::new).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(InventoryError::Read { path, error }),
        };
        Ok(Inventory {
            path,
            keys: RwLock::new(keys),
            write_lock: std::sync::Mutex::new(()),
        })
    }

    pub fn list(&self) -> Vec<Arc<KeyRecord>> {
        self.keys.read().expect("inventory lock").clone()
    }

    pub fn len(&self) -> usize {
        self.keys.read().expect("inventory lock").len()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<KeyRecord>> {
        self.find(|k| k.name == name)
    }

    pub fn by_key_id(&self, key_id: &str) -> Option<Arc<KeyRecord>> {
        let key_id = key_id.to_ascii_lowercase();
        self.find(|k| k.key_id == key_id)
    }

    fn find(&self, pred: impl Fn(&KeyRecord) -> bool) -> Option<Arc<KeyRecord>> {
        self.keys
            .read()
            .expect("inventory lock")
            .iter()
            .find(|k| pred(k))
            .cloned()
    }

    /// Adds a key and persists the inventory; on failure nothing changes. Blocking.
    pub fn insert(&self, record: KeyRecord) -> Result<(), InventoryError> {
        let _writer = self.write_lock.lock().expect("inventory write lock");
        let mut next = self.list();
        if next.iter().any(|k| k.name == record.name) {
            return Err(InventoryError::NameTaken(record.name));
        }
        next.push(Arc::new(record));
        self.persist(&next)?;
        *self.keys.write().expect("inventory lock") = next;
        Ok(())
    }

    /// Removes exactly this record (not another key that took its name) and persists the
    /// inventory. Blocking.
    pub fn remove_exact(
        &self,
        record: &KeyRecord,
    ) -> Result<Option<Arc<KeyRecord>>, InventoryError> {
        let _writer = self.write_lock.lock().expect("inventory write lock");
        let mut next = self.list();
        let Some(pos) = next.iter().position(|k| **k == *record) else {
            return Ok(None);
        };
        let removed = next.remove(pos);
        self.persist(&next)?;
        *self.keys.write().expect("inventory lock") = next;
        Ok(Some(removed))
    }

    fn persist(&self, keys: &[Arc<KeyRecord>]) -> Result<(), InventoryError> {
        let write_err = |error| InventoryError::Write {
            path: self.path.clone(),
            error,
        };
        let body = serde_json::to_vec_pretty(&InventoryFileOut {
            version: FORMAT_VERSION,
            keys: keys.iter().map(|k| k.as_ref()).collect(),
        })
        .expect("inventory serializes");
        let mut body = body;
        body.push(b'\n');
        crate::atomic_file::replace(&self.path, &body, 0o600).map_err(write_err)
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> KeyRecord {
        KeyRecord {
            name: name.into(),
            key_id: format!("{name}-id"),
            algorithm: KeyAlgorithm::EcdsaP256,
            backend: "hsm".into(),
            device: DeviceHandle::Pkcs11 {
                cka_id: vec![1, 2, 3],
            },
            public_key: vec![4, 5, 6],
            scope: KeyScope::default(),
            origin: KeyOrigin::Generated,
            created: "2026-11-22T00:00:00Z".into(),
            certificate: Vec::new(),
            attestation: None,
        }
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Inventory::open(dir.path()).unwrap();
        inv.insert(record("a")).unwrap();
        inv.insert(record("b")).unwrap();
        let mut other_a = record("a");
        other_a.key_id = "another key of the same name".into();
        assert!(
            inv.remove_exact(&other_a).unwrap().is_none(),
            "only the exact record goes"
        );
        assert!(inv.remove_exact(&record("a")).unwrap().is_some());
        let again = Inventory::open(dir.path()).unwrap();
        assert_eq!(again.list(), vec![Arc::new(record("b"))]);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn duplicate_names_are_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Inventory::open(dir.path()).unwrap();
        inv.insert(record("a")).unwrap();
        assert!(matches!(
            inv.insert(record("a")),
            Err(InventoryError::NameTaken(_))
        ));
        assert_eq!(Inventory::open(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn failed_write_leaves_memory_and_disk_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Inventory::open(dir.path()).unwrap();
        inv.insert(record("a")).unwrap();
        // Make the rename target a non-empty directory: rename must fail.
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        std::fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
        std::fs::write(dir.path().join(FILE_NAME).join("x"), b"x").unwrap();
        assert!(inv.insert(record("b")).is_err());
        assert_eq!(inv.list(), vec![Arc::new(record("a"))]);
    }

    #[test]
    fn refuses_group_writable_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(matches!(
            Inventory::open(dir.path()),
            Err(InventoryError::StateDirTooOpen(_))
        ));
    }
}
