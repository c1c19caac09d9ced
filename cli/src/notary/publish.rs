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
#[derive(Default)]
pub struct InitOptions<'a> {
    /// Backend for the keys generated here ("" for trustd's first).
    pub backend: &'a str,
    /// Backend for a root key generated here, when not `backend`.
    pub root_backend: Option<&'a str>,
    /// Backend for the targets key generated here, when not `backend`.
    pub targets_backend: Option<&'a str>,
    /// Keep the snapshot key in trustd instead of on the server.
    pub local_snapshot: bool,
    /// Root keys already in trustd (possibly on several devices); empty: one generated.
    pub root_keys: &'a [String],
    /// How many root keys must sign a root [1 when 0].
    pub root_threshold: u32,
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
    let threshold = options.root_threshold.max(1);
    let root = match options.root_keys {
        [] => {
            let root_backend = options.root_backend.unwrap_or(backend);
            vec![ensure_key(&mut signer, &mut client, gun, "root", root_backend).await?]
        }
        named => named.to_vec(),
    };
    // Every root key is looked at (and the threshold checked) before a key is made.
    trustd_notary::publish::root::check_threshold(threshold, root.len())?;
    for name in options.root_keys {
        signer.key(name).await.map_err(|e| match e {
            CliError::NotFound(_) => CliError::NotFound(format!(
                "root key {name:?} is not in trustd: generate it there first (trustctl key generate {name}), or check `trustctl key list`"
            )),
            other => other,
        })?;
    }
    let targets_backend = options.targets_backend.unwrap_or(backend);
    let targets = ensure_key(&mut signer, &mut client, gun, "targets", targets_backend).await?;
    let snapshot = match options.local_snapshot {
        true => Some(ensure_key(&mut signer, &mut client, gun, "snapshot", backend).await?),
        false => None,
    };
    let names = InitKeys {
        root,
        root_threshold: threshold,
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
