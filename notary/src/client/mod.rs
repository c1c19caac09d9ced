//! A notary-server's HTTP API as Docker Content Trust uses it.
//!
//! - [`server`]: fetching and publishing role files, with every body bounded.
//! - [`auth`]: docker's token authentication (the 401 challenge flow), shared with registries.
//! - [`credentials`]: the user's registry credentials, as the docker CLI finds them.
//! - [`http_limits`]: how much of any response is read, and same-origin redirects.

pub mod auth;
pub mod credentials;
pub mod http_limits;
pub mod server;

/// An error and its sources, in one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}
