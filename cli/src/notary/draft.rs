//! A change to targets and delegated roles, signed by trustd and published.

use crate::client::signer::TrustdSigner;
use crate::client::Client;
use crate::error::CliError;
use trustd_notary::client::server::NotaryServer;
pub use trustd_notary::publish::draft::Draft;
use trustd_notary::trust::{TrustStore, VerifiedRepository};

/// Publishes every role the draft changed (see `trustd_notary::publish::draft`).
pub async fn publish(
    server: &NotaryServer,
    store: &TrustStore,
    client: Client,
    draft: Draft<'_>,
) -> Result<VerifiedRepository, CliError> {
    let mut signer = TrustdSigner::new(client);
    Ok(trustd_notary::publish::draft::publish(server, store, &mut signer, draft).await?)
}
