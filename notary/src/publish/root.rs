//! A repository's root of trust held by several keys: K-of-N roots, each root key behind its
//! own certificate, and root rotations signed by a threshold of the old root keys and a
//! threshold of the new ones (DESIGN.md section 8).
//!
//! Everything a notary client or notary-server would refuse is refused here first, before a
//! signature is asked for: a threshold outside 1..=N, one key named twice, one key behind two
//! certificates (notary would count it twice, so one stolen key would be two votes), too few
//! signers held for either threshold (saying exactly which keys are missing).

use std::collections::BTreeMap;

use super::draft::with_snapshot;
use super::roles::{expires_in, publish_and_verify, signed_file, ROOT_DAYS};
use super::{HeldKey, PublishError, RoleSigner};
use crate::client::server::NotaryServer;
use crate::keys::KeyType;
use crate::keys::PublicKey;
use crate::model::{RoleKeys, Root};
use crate::root_cert::{self, RootCertSpec};
use crate::trust::{TrustStore, VerifiedRepository};
use der::Encode;

/// Most keys a root may list: a key ceremony is a handful of officers, and every verifier
/// checks each one.
pub const MAX_ROOT_KEYS: usize = 16;

/// A root certificate for `gun` around the signer's ECDSA P-256 key `name`, signed by it.
pub async fn root_certificate(
    signer: &mut dyn RoleSigner,
    name: &str,
    gun: &str,
) -> Result<PublicKey, PublishError> {
    let key = signer.public_key(name).await?;
    let not_p256 = || {
        PublishError::Refused(format!(
            "root key {name:?} must be ECDSA P-256 (notary root certificates are ecdsa-x509)"
        ))
    };
    if key.keytype != KeyType::Ecdsa {
        return Err(not_p256());
    }
    let spki = key.keyval.public;
    let failed = |e: root_cert::CertError| match e {
        root_cert::CertError::NotEcdsa => not_p256(),
        other => PublishError::Failed(other.to_string()),
    };
    let tbs = RootCertSpec::now(gun, &spki).tbs().map_err(failed)?;
    let tbs_der = tbs
        .to_der()
        .map_err(|e| PublishError::Failed(format!("cannot encode the certificate: {e}")))?;
    let signature = signer.sign(name, "", &tbs_der).await?;
    let der_signature = p256::ecdsa::Signature::from_slice(&signature.sig)
        .map_err(|_| not_p256())?
        .to_der();
    let certificate = root_cert::assemble(tbs, der_signature.as_bytes()).map_err(failed)?;
    let pem = root_cert::to_pem(&certificate).map_err(failed)?;
    Ok(PublicKey::new(KeyType::EcdsaX509, pem.into_bytes()))
}

/// A root key made for a new root: the signer's key and the certificate around it.
#[derive(Debug, Clone)]
pub struct RootKey {
    /// The signer's name for the key.
    pub name: String,
    /// The certificate (`ecdsa-x509`) the root lists.
    pub certificate: PublicKey,
}

impl RootKey {
    /// The key as it signs the root it is listed in.
    pub fn held(&self) -> HeldKey {
        HeldKey {
            name: self.name.clone(),
            keyid: self.certificate.id(),
        }
    }
}

/// Refuses a threshold no signer set could meet, or one that would accept unsigned roots.
pub fn check_threshold(threshold: u32, keys: usize) -> Result<(), PublishError> {
    if keys == 0 {
        return Err(PublishError::Refused(
            "a root needs at least one key".into(),
        ));
    }
    if keys > MAX_ROOT_KEYS {
        return Err(PublishError::Refused(format!(
            "{keys} root keys: at most {MAX_ROOT_KEYS}"
        )));
    }
    if threshold == 0 || threshold as usize > keys {
        return Err(PublishError::Refused(format!(
            "a root threshold of {threshold} with {keys} root key{}: it must be from 1 to {keys}",
            if keys == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// The root keys `names` for `gun`: a key in `keep` keeps the certificate it already has,
/// every other one gets a new certificate signed by its own key. Refused: a name given
/// twice, and two names for one key.
pub async fn root_keys(
    signer: &mut dyn RoleSigner,
    gun: &str,
    names: &[String],
    keep: &BTreeMap<String, PublicKey>,
) -> Result<Vec<RootKey>, PublishError> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for name in names {
        let key = signer.public_key(name).await?;
        if let Some(other) = seen.insert(key.id(), name) {
            return Err(PublishError::Refused(if other == name {
                format!("root key {name:?} is named twice: each key counts once")
            } else {
                format!(
                    "root keys {other:?} and {name:?} are the same key: notary would count it \
                     twice, so one stolen key would be two votes"
                )
            }));
        }
    }
    let mut made = Vec::with_capacity(names.len());
    for name in names {
        let certificate = match keep.get(name) {
            Some(kept) => kept.clone(),
            None => root_certificate(signer, name, gun).await?,
        };
        made.push(RootKey {
            name: name.clone(),
            certificate,
        });
    }
    Ok(made)
}

/// The root role of `keys` with `threshold`.
pub fn root_role(keys: &[RootKey], threshold: u32) -> RoleKeys {
    RoleKeys {
        keyids: keys.iter().map(|k| k.certificate.id()).collect(),
        threshold,
    }
}

/// What a root rotation changes.
pub struct RootChange {
    /// The new root keys, with their certificates (made by [`root_keys`] or renewed).
    pub keys: Vec<RootKey>,
    /// How many of them must sign.
    pub threshold: u32,
}

/// The signer's keys among `root`'s root role, as that role lists them.
pub async fn held_root_keys(
    signer: &mut dyn RoleSigner,
    root: &Root,
) -> Result<Vec<HeldKey>, PublishError> {
    let role = root
        .roles
        .get("root")
        .ok_or_else(|| PublishError::Failed("the root lists no root role".into()))?;
    Ok(signer.held(&root.keys, &role.keyids).await?)
}

/// Refuses a rotation the old root's keys held here cannot sign: names the missing key IDs.
pub fn check_old_threshold(old: &Root, held: &[HeldKey]) -> Result<(), PublishError> {
    let role = &old.roles["root"];
    if held.len() >= role.threshold as usize {
        return Ok(());
    }
    let missing: Vec<&str> = role
        .keyids
        .iter()
        .filter(|id| !held.iter().any(|h| &h.keyid == *id))
        .map(String::as_str)
        .collect();
    Err(PublishError::NotASigner(format!(
        "rotating the root needs {} of the current {} root keys; trustd holds {} of them here \
         (missing: {}): bring the others' tokens, or run a ceremony",
        role.threshold,
        role.keyids.len(),
        held.len(),
        missing.join(", ")
    )))
}

/// The next root version: `change`'s keys and threshold in the root role (certificates the
/// role no longer lists leave `keys` unless another role lists them), valid for notary's full
/// root lifetime again.
pub fn next_root(old: &Root, change: &RootChange) -> Root {
    let mut root = old.clone();
    let previous = root
        .roles
        .insert("root".to_owned(), root_role(&change.keys, change.threshold))
        .map(|r| r.keyids)
        .unwrap_or_default();
    for keyid in previous {
        if !root.roles.values().any(|r| r.keyids.contains(&keyid)) {
            root.keys.remove(&keyid);
        }
    }
    for key in &change.keys {
        root.keys
            .insert(key.certificate.id(), key.certificate.clone());
    }
    root.version = old.version + 1;
    root.expires = expires_in(ROOT_DAYS);
    root
}

/// Signs `root` (version N+1) with every old root key held (under its old key ID) and every
/// new root key (under its new one): a key kept across the rotation signs under both, which
/// is what a certificate renewal needs.
pub async fn sign_rotation(
    signer: &mut dyn RoleSigner,
    root: &Root,
    old_held: &[HeldKey],
    new_keys: &[RootKey],
) -> Result<Vec<u8>, PublishError> {
    let mut signers: Vec<HeldKey> = old_held.to_vec();
    for key in new_keys {
        let held = key.held();
        if !signers.contains(&held) {
            signers.push(held);
        }
    }
    signed_file(signer, &signers, root).await
}

/// Publishes root version N+1 with `change`'s keys and threshold, signed by `old_held` (the
/// current root keys held here, from [`held_root_keys`]: at least the old threshold, checked
/// before anything is signed) and every new key; the snapshot, when held here, is re-signed
/// to list it. The caller made the new keys' certificates ([`root_keys`]), so every new key is
/// held here.
pub async fn rotate_root(
    server: &NotaryServer,
    store: &TrustStore,
    signer: &mut dyn RoleSigner,
    repo: &VerifiedRepository,
    old_held: &[HeldKey],
    change: &RootChange,
) -> Result<VerifiedRepository, PublishError> {
    check_threshold(change.threshold, change.keys.len())?;
    check_old_threshold(&repo.root, old_held)?;
    let root = next_root(&repo.root, change);
    let root_bytes = sign_rotation(signer, &root, old_held, &change.keys).await?;
    let mut files = vec![("root".to_owned(), root_bytes)];
    with_snapshot(signer, repo, &mut files).await?;
    publish_and_verify(server, store, &repo.gun, &files).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_outside_one_to_n_are_refused() {
        assert!(check_threshold(2, 3).is_ok());
        assert!(check_threshold(3, 3).is_ok());
        for (threshold, keys) in [(0, 3), (4, 3), (1, 0), (1, MAX_ROOT_KEYS + 1)] {
            let error = check_threshold(threshold, keys).unwrap_err();
            assert!(matches!(error, PublishError::Refused(_)), "{error}");
        }
        assert!(check_threshold(4, 3)
            .unwrap_err()
            .to_string()
            .contains("from 1 to 3"));
    }
}
