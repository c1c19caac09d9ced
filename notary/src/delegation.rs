//! Delegations: who may sign which tags, as notary and `docker trust signer` record them in
//! the targets role, and the public keys (or certificates) that name a signer.

use time::OffsetDateTime;

use crate::certificate;
use crate::keys::{KeyType, PublicKey};
use crate::model::{DelegatedRole, Delegations};
use crate::root_cert;

/// The role every docker signer is also added to; docker reads released tags from it.
pub const RELEASES: &str = "targets/releases";

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DelegationError {
    #[error("{0:?} is not a delegation role name: it must be targets/ followed by lower-case letters, digits, '-', '_' and '/', with no empty, '.' or '..' parts, under 256 characters")]
    BadRoleName(String),
    #[error("{0:?} is not a signer name: lower-case letters, digits, '-' and '_', starting with a letter or digit, and not \"releases\"")]
    BadSignerName(String),
    #[error("{file}: {reason}")]
    BadKeyFile { file: String, reason: String },
    #[error("{0} is not delegated in this repository")]
    NoSuchRole(String),
    #[error("a threshold of {threshold} for {role}, which has {keys} key(s): it must be from 1 to {keys}")]
    BadThreshold {
        role: String,
        threshold: u32,
        keys: usize,
    },
}

/// Sets how many signatures `role` needs (a k-of-n release: `targets/releases` with K);
/// refused outside 1..=its keys, which nobody could meet or which would accept no
/// signature. Returns whether it changed.
pub fn set_threshold(
    delegations: &mut Delegations,
    role: &str,
    threshold: u32,
) -> Result<bool, DelegationError> {
    let entry = delegations
        .roles
        .iter_mut()
        .find(|r| r.name == role)
        .ok_or_else(|| DelegationError::NoSuchRole(role.to_owned()))?;
    if threshold == 0 || threshold as usize > entry.keyids.len() {
        return Err(DelegationError::BadThreshold {
            role: role.to_owned(),
            threshold,
            keys: entry.keyids.len(),
        });
    }
    let changed = entry.threshold != threshold;
    entry.threshold = threshold;
    Ok(changed)
}

/// Whether a role delegated `paths` may sign `name`: notary's rule, a plain prefix match on
/// the target name ("" covers every name).
pub fn paths_cover(paths: &[String], name: &str) -> bool {
    paths.iter().any(|path| name.starts_with(path.as_str()))
}

/// The paths a nested role really has: those of its own that lie inside one of its parent's.
/// Whatever the narrowed paths cover, both the role's and its parent's cover, so a delegated
/// role never signs beyond what was delegated to its parent.
pub fn narrow_paths(own: &[String], parent: &[String]) -> Vec<String> {
    own.iter()
        .filter(|path| paths_cover(parent, path))
        .cloned()
        .collect()
}

/// Notary's rule for delegation role names (`data.IsDelegation`).
pub fn check_role_name(role: &str) -> Result<(), DelegationError> {
    let bad = || DelegationError::BadRoleName(role.to_owned());
    let rest = role.strip_prefix("targets/").ok_or_else(bad)?;
    let chars_ok = role
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'/'));
    let clean = rest
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..");
    if chars_ok && clean && role.len() < 256 {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Docker's rule for signer names; the signer's role is `targets/NAME`.
pub fn signer_role(name: &str) -> Result<String, DelegationError> {
    let bad = || DelegationError::BadSignerName(name.to_owned());
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
    if !first_ok || !rest_ok || name == "releases" {
        return Err(bad());
    }
    let role = format!("targets/{name}");
    check_role_name(&role).map_err(|_| bad())?;
    Ok(role)
}

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";

/// A signer's key from a PEM file: a public key (`PUBLIC KEY`, as `trustctl key generate`
/// and `docker trust key generate` write it) or an X.509 certificate (a UCP/DTR client
/// bundle's `cert.pem`), which must be valid now and not a CA.
pub fn key_from_pem(
    file: &str,
    pem_text: &[u8],
    now: OffsetDateTime,
) -> Result<PublicKey, DelegationError> {
    let bad = |reason: String| DelegationError::BadKeyFile {
        file: file.to_owned(),
        reason,
    };
    let blocks = pem::parse_many(pem_text).map_err(|e| bad(format!("not a PEM file: {e}")))?;
    let block = blocks
        .first()
        .ok_or_else(|| bad("neither a PEM public key nor a certificate (no PEM block)".into()))?;
    match block.tag() {
        "PUBLIC KEY" => {
            use spki::der::Decode;
            let info = spki::SubjectPublicKeyInfoRef::from_der(block.contents())
                .map_err(|e| bad(format!("not a public key: {e}")))?;
            let key = match info.algorithm.oid.to_string().as_str() {
                OID_EC => PublicKey::new(KeyType::Ecdsa, block.contents().to_vec()),
                OID_RSA => PublicKey::new(KeyType::Rsa, block.contents().to_vec()),
                OID_ED25519 => PublicKey::new(
                    KeyType::Ed25519,
                    info.subject_public_key.raw_bytes().to_vec(),
                ),
                other => return Err(bad(format!("unsupported key algorithm {other}"))),
            };
            key.spki_der().map_err(|e| bad(e.to_string()))?;
            Ok(key)
        }
        "CERTIFICATE" => {
            use x509_cert::der::Decode;
            let cert = x509_cert::Certificate::from_der(block.contents())
                .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
            if certificate::is_ca(&cert) {
                return Err(bad("it is a CA certificate; give the signer's own certificate".into()));
            }
            if !certificate::is_valid_at(&cert, now) {
                return Err(bad("the certificate has expired or is not valid yet".into()));
            }
            let keytype = match cert
                .tbs_certificate
                .subject_public_key_info
                .algorithm
                .oid
                .to_string()
                .as_str()
            {
                OID_EC => KeyType::EcdsaX509,
                OID_RSA => KeyType::RsaX509,
                other => return Err(bad(format!("unsupported certificate key algorithm {other}"))),
            };
            // Stored as Go writes the PEM, so the key ID is the one notary computes.
            let pem = root_cert::to_pem(&cert).map_err(|e| bad(e.to_string()))?;
            let key = PublicKey::new(keytype, pem.into_bytes());
            key.spki_der().map_err(|e| bad(e.to_string()))?;
            Ok(key)
        }
        tag if tag.contains("PRIVATE KEY") => Err(bad(
            "this is a private key: give the signer's public key (trustctl key public NAME) or certificate".into(),
        )),
        other => Err(bad(format!("a {other} block is neither a public key nor a certificate"))),
    }
}

/// Adds `keys` and `paths` to `role`, creating the role (threshold 1) at the end of the
/// list when it is new. Returns whether anything changed.
pub fn add(
    delegations: &mut Delegations,
    role: &str,
    keys: &[PublicKey],
    paths: &[String],
) -> bool {
    let before = delegations.clone();
    for key in keys {
        delegations
            .keys
            .entry(key.id())
            .or_insert_with(|| key.clone());
    }
    let entry = match delegations.roles.iter().position(|r| r.name == role) {
        Some(i) => &mut delegations.roles[i],
        None => {
            delegations.roles.push(DelegatedRole {
                keyids: Vec::new(),
                name: role.to_owned(),
                paths: Vec::new(),
                threshold: 1,
            });
            delegations.roles.last_mut().expect("just pushed")
        }
    };
    for key in keys {
        let id = key.id();
        if !entry.keyids.contains(&id) {
            entry.keyids.push(id);
        }
    }
    for path in paths {
        if !entry.paths.contains(path) {
            entry.paths.push(path.clone());
        }
    }
    *delegations != before
}

/// Removes `role` entirely. Returns its key IDs.
pub fn remove_role(
    delegations: &mut Delegations,
    role: &str,
) -> Result<Vec<String>, DelegationError> {
    let i = delegations
        .roles
        .iter()
        .position(|r| r.name == role)
        .ok_or_else(|| DelegationError::NoSuchRole(role.to_owned()))?;
    let removed = delegations.roles.remove(i);
    prune_keys(delegations);
    Ok(removed.keyids)
}

/// Removes key IDs and paths from `role` (the role itself stays).
pub fn remove_from_role(
    delegations: &mut Delegations,
    role: &str,
    keyids: &[String],
    paths: &[String],
) -> Result<bool, DelegationError> {
    let before = delegations.clone();
    let entry = delegations
        .roles
        .iter_mut()
        .find(|r| r.name == role)
        .ok_or_else(|| DelegationError::NoSuchRole(role.to_owned()))?;
    entry.keyids.retain(|id| !keyids.contains(id));
    entry.paths.retain(|p| !paths.contains(p));
    prune_keys(delegations);
    Ok(*delegations != before)
}

/// Drops keys no role lists any more.
fn prune_keys(delegations: &mut Delegations) {
    let used: std::collections::BTreeSet<&String> = delegations
        .roles
        .iter()
        .flat_map(|r| r.keyids.iter())
        .collect();
    let unused: Vec<String> = delegations
        .keys
        .keys()
        .filter(|id| !used.contains(id))
        .cloned()
        .collect();
    for id in unused {
        delegations.keys.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_and_signer_names_follow_notary_and_docker() {
        for good in ["targets/releases", "targets/alice", "targets/team-a/ci_1"] {
            assert!(check_role_name(good).is_ok(), "{good}");
        }
        for bad in [
            "targets",
            "targets/",
            "alice",
            "targets/Alice",
            "targets//a",
            "targets/a/",
            "targets/../x",
            "targets/a b",
        ] {
            assert!(check_role_name(bad).is_err(), "{bad}");
        }
        assert_eq!(signer_role("alice").unwrap(), "targets/alice");
        for bad in ["releases", "Alice", "-x", "", "a/b", "a.b"] {
            assert!(signer_role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn adding_and_removing_keeps_keys_in_step_with_roles() {
        let key = |b: u8| PublicKey::new(KeyType::Ed25519, vec![b; 32]);
        let mut d = Delegations::default();
        assert!(add(&mut d, "targets/alice", &[key(1)], &["".into()]));
        assert!(add(&mut d, RELEASES, &[key(1)], &["".into()]));
        assert!(
            !add(&mut d, RELEASES, &[key(1)], &["".into()]),
            "adding twice changes nothing"
        );
        assert!(add(&mut d, RELEASES, &[key(2)], &[]));
        let names: Vec<_> = d.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["targets/alice", RELEASES],
            "new roles go last, as docker adds them"
        );
        assert_eq!(d.keys.len(), 2);
        assert_eq!(remove_role(&mut d, "targets/alice").unwrap(), [key(1).id()]);
        assert_eq!(d.keys.len(), 2, "key 1 is still in releases");
        assert!(remove_from_role(&mut d, RELEASES, &[key(1).id()], &[]).unwrap());
        assert_eq!(d.keys.keys().collect::<Vec<_>>(), [&key(2).id()]);
        assert_eq!(
            remove_role(&mut d, "targets/bob"),
            Err(DelegationError::NoSuchRole("targets/bob".into()))
        );
    }
}
