//! Where a TPM backend keeps its attestation key: the TPM-wrapped blobs, in the state
//! directory. They are useless off this TPM; keeping them saves re-creating the AK (and
//! verifiers re-binding a new AK name) on every start.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::BackendError;

#[derive(Serialize, Deserialize)]
pub struct AkBlobs {
    #[serde(with = "hex::serde")]
    pub private: Vec<u8>,
    #[serde(with = "hex::serde")]
    pub public: Vec<u8>,
}

pub struct AkStore {
    path: PathBuf,
}

impl AkStore {
    pub fn new(state_dir: &Path, backend: &str) -> AkStore {
        let safe: String = backend
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        AkStore {
            path: state_dir.join(format!("tpm-{safe}-ak.json")),
        }
    }

    /// The stored AK; None when there is none yet or the file is unreadable as an AK.
    pub fn load(&self) -> Result<Option<AkBlobs>, BackendError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BackendError::Misconfigured(format!(
                "cannot read the attestation key {}: {e}",
                self.path.display()
            ))),
        }
    }

    pub fn save(&self, blobs: &AkBlobs) -> Result<(), BackendError> {
        let body = serde_json::to_vec_pretty(blobs).expect("AK blobs serialize");
        crate::atomic_file::replace(&self.path, &body, 0o600).map_err(|e| {
            BackendError::Misconfigured(format!(
                "cannot store the attestation key in {}: {e}",
                self.path.display()
            ))
        })
    }
}
