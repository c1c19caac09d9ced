//! Trust pinning, with the notary client's `trust_pinning` semantics: on first contact with
//! a repository, instead of trusting whatever root the server offers (TOFU), require
//!
//! - `certs`: for a GUN named exactly, a root certificate with one of the listed key IDs;
//! - `ca`: for the longest matching GUN prefix, root certificates issued by that CA (directly
//!   or through intermediates bundled with the certificate);
//! - `disable_tofu`: refuse repositories that neither rule covers.
//!
//! Once a root is trusted, its successors are accepted only as rotations it signed, so
//! pinning, like TOFU, decides the first root only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use time::OffsetDateTime;
use x509_cert::Certificate;

use crate::model::Root;
use crate::x509_chain::chains_to;

/// The `[trust_pinning]` table of trustctl's config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPinning {
    /// GUN → root certificate key IDs (as the root lists them).
    #[serde(default)]
    pub certs: BTreeMap<String, Vec<String>>,
    /// GUN prefix → CA certificate file (PEM).
    #[serde(default)]
    pub ca: BTreeMap<String, PathBuf>,
    #[serde(default)]
    /// Refuse a repository with no pin instead of trusting its first root (TOFU).
    pub disable_tofu: bool,
}

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum PinningError {
    #[error("{gun}: no root certificate has a key ID pinned for it ({pinned})")]
    CertNotPinned { gun: String, pinned: String },
    #[error("{gun}: no root certificate was issued by the pinned CA {ca}: {reason}")]
    NotIssuedByCa {
        gun: String,
        ca: String,
        reason: String,
    },
    #[error("cannot read the CA {path} pinned for {prefix}: {reason}")]
    BadCa {
        prefix: String,
        path: String,
        reason: String,
    },
    #[error("{gun}: trust on first use is disabled and no trust pinning covers it (add it to [trust_pinning] certs or ca)")]
    TofuDisabled { gun: String },
    #[error("{gun} has no trust data yet, and the trust pinning for it ({rule}) would refuse the new self-signed root that creating it makes: nothing was created or sent. Create it with notary under the pinned certificate or CA, or change [trust_pinning]")]
    NewRootRefused { gun: String, rule: String },
}

impl TrustPinning {
    /// Whether a repository created here (its root a new self-signed certificate) would be
    /// trusted: not when a certificate pin names the GUN (a new certificate's ID cannot be
    /// pinned yet), a CA covers it (a self-signed certificate chains to no CA), or trust on
    /// first use is off. Checked before any key is made or anything is published, so the
    /// server never holds a repository the user's own pinning rejects.
    pub fn check_new_root(&self, gun: &str) -> Result<(), PinningError> {
        let refused = |rule: String| PinningError::NewRootRefused {
            gun: gun.to_owned(),
            rule,
        };
        if self.certs.contains_key(gun) {
            return Err(refused("certs pins its root certificate IDs".into()));
        }
        if let Some(prefix) = self
            .ca
            .keys()
            .find(|prefix| gun.starts_with(prefix.as_str()))
        {
            return Err(refused(format!("ca pins a CA for {prefix:?}")));
        }
        if self.disable_tofu {
            return Err(refused("disable_tofu".into()));
        }
        Ok(())
    }

    /// Decides whether a first root for `gun` may be trusted.
    pub fn check_first_root(
        &self,
        gun: &str,
        root: &Root,
        now: OffsetDateTime,
    ) -> Result<(), PinningError> {
        let root_ids = root
            .roles
            .get("root")
            .map(|r| r.keyids.clone())
            .unwrap_or_default();
        if let Some(pinned) = self.certs.get(gun) {
            return if root_ids.iter().any(|id| pinned.contains(id)) {
                Ok(())
            } else {
                Err(PinningError::CertNotPinned {
                    gun: gun.to_owned(),
                    pinned: pinned.join(", "),
                })
            };
        }
        let prefix = self
            .ca
            .keys()
            .filter(|prefix| gun.starts_with(prefix.as_str()))
            .max_by_key(|prefix| prefix.len());
        if let Some(prefix) = prefix {
            let path = &self.ca[prefix];
            let ca = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| crate::certificate::from_pem(&pem))
                .map_err(|reason| PinningError::BadCa {
                    prefix: prefix.clone(),
                    path: path.display().to_string(),
                    reason,
                })?;
            let mut last = "the root lists no certificate".to_owned();
            for id in &root_ids {
                let Some(key) = root.keys.get(id) else {
                    continue;
                };
                let bundle = match Certificate::load_pem_chain(&key.keyval.public) {
                    Ok(bundle) => bundle,
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                };
                match chains_to(&bundle, &ca, now) {
                    Ok(()) => return Ok(()),
                    Err(reason) => last = reason,
                }
            }
            return Err(PinningError::NotIssuedByCa {
                gun: gun.to_owned(),
                ca: path.display().to_string(),
                reason: last,
            });
        }
        if self.disable_tofu {
            return Err(PinningError::TofuDisabled {
                gun: gun.to_owned(),
            });
        }
        Ok(())
    }
}
