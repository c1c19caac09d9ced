//! trustctl's side of changing trust data: which trustd keys a repository's roles get (their
//! names, the backend they are generated on), and the Notary library's changes run with
//! trustd as the signer. What a change does is the library's (`trustd_notary::publish`).

pub mod draft;
pub mod keys;
pub mod publish;
pub mod rotate;

use trustd_notary::client::server::NotaryServer;
use trustd_notary::publish::PublishError;

use crate::error::CliError;

/// The library's failure as trustctl reports it, a server it could not use named with where
/// its URL came from (a wrong `--server` is the first thing to check).
fn reported(server: &NotaryServer) -> impl Fn(PublishError) -> CliError + '_ {
    move |error| match error {
        PublishError::Unreachable(message) if !server.origin().is_empty() => {
            CliError::Unreachable(format!("{message} (from {})", server.origin()))
        }
        other => other.into(),
    }
}
