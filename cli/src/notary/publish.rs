//! New repositories and tags signed or revoked, with every key in trustd.

use crate::client::signer::TrustdSigner;
use crate::client::Client;
use crate::error::CliError;
use trustd_notary::client::server::NotaryServer;
use trustd_notary::publish::init::{self, InitKeys};
use trustd_notary::publish::tags;
pub use trustd_notary::publish::tags::{SignAs, SignedTargets, Target};
use trustd_notary::trust::{TrustStore, VerifiedRepository};

use super::keys::ensure_key;
pub use super::keys::key_name;

/// Options for a new repository.
pub struct InitOptions<'a> {
    pub backend: &'a str,
    /// Keep the snapshot key in trustd instead of on the server.
    pub local_snapshot: bool,
}

/// Creates the repository's trust data: root and targets keys generated in trustd, the root
/// certificate signed by trustd, the timestamp (and by default snapshot) key on the server.
pub async fn init(
    server: &NotaryServer,
    store: &TrustStore,
    mut client: Client,
    gun: &str,
    options: &InitOptions<'_>,
) -> Result<VerifiedRepository, CliError> {
    let checked = init::check_new(server, store, gun).await?;
    let mut signer = TrustdSigner::new(client.clone());
    let backend = options.backend;
    let root = ensure_key(&mut signer, &mut client, gun, "root", backend).await?;
    let targets = ensure_key(&mut signer, &mut client, gun, "targets", backend).await?;
    let snapshot = match options.local_snapshot {
        true => Some(ensure_key(&mut signer, &mut client, gun, "snapshot", backend).await?),
        false => None,
    };
    let names = InitKeys {
        root,
        targets,
        snapshot,
    };
    Ok(init::init(server, store, &mut signer, gun, checked, &names).await?)
}

/// Signs tags into every role trustd holds a key of (see `trustd_notary::publish::tags`).
pub async fn sign_targets(
    server: &NotaryServer,
    store: &TrustStore,
    client: Client,
    repo: &VerifiedRepository,
    new: &[Target<'_>],
    sign_as: SignAs<'_>,
) -> Result<SignedTargets, CliError> {
    let mut signer = TrustdSigner::new(client);
    Ok(tags::sign_targets(server, store, &mut signer, repo, new, sign_as).await?)
}

/// Removes the signatures of `tags` (every tag when None) from every role trustd signs for.
pub async fn revoke_targets(
    server: &NotaryServer,
    store: &TrustStore,
    client: Client,
    repo: &VerifiedRepository,
    tags: Option<&[String]>,
) -> Result<VerifiedRepository, CliError> {
    let mut signer = TrustdSigner::new(client);
    Ok(tags::revoke_targets(server, store, &mut signer, repo, tags).await?)
}
