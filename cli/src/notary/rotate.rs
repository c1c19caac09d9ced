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
    rotate::root_key(&mut signer, repo).await?;
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
