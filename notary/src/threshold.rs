//! Whether a role file carries enough valid signatures from the keys its parent names.
//!
//! Notary's rule: signatures by keys the role does not list are ignored, a signature that does
//! not verify does not count, each key counts once, and at least `threshold` must remain.

use std::collections::{BTreeMap, BTreeSet};

use crate::envelope::{Envelope, Signature};
use crate::keys::{KeyError, PublicKey};
use crate::model::RoleKeys;

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    #[error(
        "{role}: {valid} valid signature(s) from its keys, {threshold} required{}",
        describe(rejected)
    )]
    NotMet {
        role: String,
        valid: usize,
        threshold: u32,
        /// Why signatures by listed keys were refused.
        rejected: Vec<(String, KeyError)>,
    },
    #[error("{role}: the signed body is not canonical JSON: {source}")]
    NotCanonical {
        role: String,
        source: super::canonical::CanonicalError,
    },
    #[error("{0}: a threshold of 0 would accept unsigned data")]
    ZeroThreshold(String),
}

fn describe(rejected: &[(String, KeyError)]) -> String {
    if rejected.is_empty() {
        return String::new();
    }
    let reasons: Vec<_> = rejected
        .iter()
        .map(|(id, e)| format!("{}…: {e}", &id[..id.len().min(12)]))
        .collect();
    format!(" ({})", reasons.join("; "))
}

/// Checks `envelope`'s signatures for `role`; returns the key IDs that signed validly.
pub fn check(
    role: &str,
    envelope: &Envelope,
    keys: &BTreeMap<String, PublicKey>,
    listed: &RoleKeys,
) -> Result<BTreeSet<String>, ThresholdError> {
    if listed.threshold == 0 {
        return Err(ThresholdError::ZeroThreshold(role.to_owned()));
    }
    let message = envelope
        .canonical_signed()
        .map_err(|source| ThresholdError::NotCanonical {
            role: role.to_owned(),
            source,
        })?;
    check_message(role, &message, &envelope.signatures, keys, listed)
}

/// Checks `signatures` over `message` (a role's canonical body) for `role`; returns the key
/// IDs that signed validly.
pub fn check_message(
    role: &str,
    message: &[u8],
    signatures: &[Signature],
    keys: &BTreeMap<String, PublicKey>,
    listed: &RoleKeys,
) -> Result<BTreeSet<String>, ThresholdError> {
    if listed.threshold == 0 {
        return Err(ThresholdError::ZeroThreshold(role.to_owned()));
    }
    let mut valid = BTreeSet::new();
    let mut rejected = Vec::new();
    for signature in signatures {
        if valid.contains(&signature.keyid) || !listed.keyids.contains(&signature.keyid) {
            continue;
        }
        let Some(key) = keys.get(&signature.keyid) else {
            continue;
        };
        // A key stored under an ID that is not its own is not that key.
        if key.id() != signature.keyid {
            continue;
        }
        match key.verify(&signature.method, message, &signature.sig) {
            Ok(()) => {
                valid.insert(signature.keyid.clone());
            }
            Err(e) => rejected.push((signature.keyid.clone(), e)),
        }
    }
    if valid.len() < listed.threshold as usize {
        return Err(ThresholdError::NotMet {
            role: role.to_owned(),
            valid: valid.len(),
            threshold: listed.threshold,
            rejected,
        });
    }
    Ok(valid)
}
