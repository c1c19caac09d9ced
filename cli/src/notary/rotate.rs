//! Key rotation with the new key generated in trustd (or on the server): the key is made
//! here, the rotation itself is the library's (`trustd_notary::publish::rotate`).

use crate::client::signer::TrustdSigner;
use crate::client::Client;
use crate::error::CliError;
use trustd_notary::client::server::NotaryServer;
use trustd_notary::publish::draft::role_key;
pub use trustd_notary::publish::rotate::Rotated;
use trustd_notary::publish::rotate::{self, Holder};
use trustd_notary::trust::{TrustStore, VerifiedRepository};

use super::keys::{free_name, generate_key};

/// Where the new key lives.
pub enum NewKey<'a> {
    /// Generated in trustd, on this backend ("" for the old key's backend or the first).
    Trustd { backend: &'a str },
    /// Generated and held by the notary server (snapshot and timestamp only).
    Server,
}

pub async fn rotate(
    server: &NotaryServer,
    store: &TrustStore,
    mut client: Client,
    repo: &VerifiedRepository,
    role: &str,
    new_key: NewKey<'_>,
) -> Result<Rotated, CliError> {
    let mut signer = TrustdSigner::new(client.clone());
    let holder = match new_key {
        NewKey::Trustd { .. } => Holder::Signer,
        NewKey::Server => Holder::Server,
    };
    // Everything that can refuse the rotation is checked before a key is made for it.
    rotate::check(role, holder)?;
    rotate::root_keys(&mut signer, repo).await?;
    let name = match new_key {
        NewKey::Server => None,
        NewKey::Trustd { backend } => {
            let backend = match (backend, role_key(&mut signer, repo, role).await?) {
                ("", Some(old)) => signer.key(&old.name).await?.backend,
                (chosen, _) => chosen.to_owned(),
            };
            let name = free_name(&mut signer, &repo.gun, role).await?;
            generate_key(&mut client, &name, &repo.gun, role, &backend).await?;
            Some(name)
        }
    };
    let new_key = match &name {
        Some(name) => rotate::NewKey::Held { name },
        None => rotate::NewKey::Server,
    };
    Ok(rotate::rotate(server, store, &mut signer, repo, role, new_key).await?)
}

/// What a root rotation asks for.
pub struct RootRotation<'a> {
    /// The new root keys, by trustd name; empty: one new key generated (as `notary key rotate
    /// GUN root` does), or with `renew`, the same keys.
    pub keys: &'a [String],
    /// How many must sign [default: the current threshold, or 1 for one new key].
    pub threshold: Option<u32>,
    /// Same keys, new certificates (before the old ones expire).
    pub renew: bool,
    /// Backend for a generated key ("" for the old root key's).
    pub backend: &'a str,
}

/// What a root rotation did.
pub struct RootRotated {
    pub repo: VerifiedRepository,
    /// The trustd keys of the new root.
    pub keys: Vec<String>,
}

/// Rotates the root of trust: a new root version signed by a threshold of the current root
/// keys held in trustd and by every new one. Everything that can refuse it (too few current
/// keys here, a bad threshold, a key named twice) is checked before a key is generated.
pub async fn rotate_root(
    server: &NotaryServer,
    store: &TrustStore,
    mut client: Client,
    repo: &VerifiedRepository,
    rotation: RootRotation<'_>,
) -> Result<RootRotated, CliError> {
    use std::collections::BTreeMap;
    use trustd_notary::publish::root;
    let mut signer = TrustdSigner::new(client.clone());
    let old_held = root::held_root_keys(&mut signer, &repo.root).await?;
    if old_held.is_empty() {
        return Err(CliError::Denied(format!(
            "trustd holds no root key of {}: only the root keys' holders can rotate the root",
            repo.gun
        )));
    }
    root::check_old_threshold(&repo.root, &old_held)?;
    let current = &repo.root.roles["root"];
    // Keys that stay keep their certificate, unless renewing.
    let mut keep: BTreeMap<String, trustd_notary::keys::PublicKey> = BTreeMap::new();
    if !rotation.renew {
        for held in &old_held {
            keep.insert(held.name.clone(), repo.root.keys[&held.keyid].clone());
        }
    }
    let (names, default_threshold) = match (rotation.keys, rotation.renew) {
        ([], true) => {
            if old_held.len() < current.keyids.len() {
                return Err(CliError::Denied(format!(
                    "renewing the root certificates needs every root key, and trustd holds {} of {} here: bring the others' tokens",
                    old_held.len(),
                    current.keyids.len()
                )));
            }
            let names: Vec<String> = old_held.iter().map(|h| h.name.clone()).collect();
            (names, current.threshold)
        }
        ([], false) => {
            let old_backend = signer.key(&old_held[0].name).await?.backend;
            let backend = match rotation.backend {
                "" => old_backend,
                chosen => chosen.to_owned(),
            };
            if rotation.threshold.is_some_and(|t| t != 1) {
                return Err(CliError::Usage(
                    "one new root key is generated: its threshold is 1 (name the new root keys with --root-key for K of N)".into(),
                ));
            }
            let name = free_name(&mut signer, &repo.gun, "root").await?;
            generate_key(&mut client, &name, &repo.gun, "root", &backend).await?;
            (vec![name], 1)
        }
        (named, _) => (named.to_vec(), current.threshold),
    };
    // Never lowered silently: fewer keys than the current threshold needs it said.
    if rotation.threshold.is_none() && default_threshold as usize > names.len() {
        return Err(CliError::Usage(format!(
            "the root threshold is {default_threshold} and the new root has {} key{}: name more keys, or lower it with --root-threshold",
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        )));
    }
    let threshold = rotation.threshold.unwrap_or(default_threshold);
    root::check_threshold(threshold, names.len())?;
    let keys = root::root_keys(&mut signer, &repo.gun, &names, &keep).await?;
    let change = root::RootChange { keys, threshold };
    let repo = root::rotate_root(server, store, &mut signer, repo, &old_held, &change).await?;
    Ok(RootRotated { repo, keys: names })
}
