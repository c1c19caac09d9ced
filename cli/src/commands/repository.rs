//! A repository's verified trust data for a command that changes it: read and verified, or
//! created first when the server has none. Shared by single signing, signer management and
//! batches, so none of those imports another.

use trustctl::client::Client;
use trustctl::error::CliError;
use trustctl::notary::publish::{self, InitOptions};
use trustd_notary::client::server::NotaryServer;
use trustd_notary::trust::{self, TrustError, TrustStore, VerifiedRepository};

use super::inspect::trust_error;

/// The repository's verified trust data; a repository with none is initialized first (root
/// and targets keys generated in trustd on `backend`), as `docker trust sign` and
/// `docker trust signer add` do.
pub async fn open_or_init(
    server: &NotaryServer,
    store: &TrustStore,
    client: &Client,
    gun: &str,
    backend: &str,
) -> Result<VerifiedRepository, CliError> {
    let announce = || eprintln!("{gun} has no trust data yet: initializing it");
    let (repo, _) = open_or_init_announcing(server, store, client, gun, backend, announce).await?;
    Ok(repo)
}

/// The repository's verified trust data, initialized first when it has none (then
/// `announce` is called before, and true returned); for callers that report it their own
/// way, such as a batch under its progress bar.
pub async fn open_or_init_announcing(
    server: &NotaryServer,
    store: &TrustStore,
    client: &Client,
    gun: &str,
    backend: &str,
    announce: impl FnOnce(),
) -> Result<(VerifiedRepository, bool), CliError> {
    match trust::update(server, store, gun, time::OffsetDateTime::now_utc()).await {
        Ok(repo) => Ok((repo, false)),
        Err(TrustError::NoTrustData(_)) => {
            announce();
            let options = InitOptions {
                backend,
                ..InitOptions::default()
            };
            let repo = publish::init(server, store, client.clone(), gun, &options).await?;
            Ok((repo, true))
        }
        Err(e) => Err(trust_error(gun, server, e)),
    }
}
