//! Limits on what trustctl accepts from HTTP servers it does not control.
//!
//! A notary server, a token service or a registry may be hostile: an endless body would make
//! `Response::bytes()` buffer until memory runs out, and a redirect could carry a request
//! (and what it authenticates with) to another host. Every body trustctl reads goes through
//! [`read_body`] or [`read_prefix`] with a limit suited to what it carries, and clients that
//! send credentials follow redirects only within one origin.

use reqwest::redirect;

/// Error bodies are shown to the user, not parsed for data: the first 64 KiB say enough.
pub const MAX_ERROR_BODY: usize = 64 * 1024;
/// A token service's answer: a few kilobytes of JSON in practice.
pub const MAX_TOKEN_BODY: u64 = 1024 * 1024;
/// A server-held public key (`timestamp.key`).
pub const MAX_KEY_BODY: u64 = 64 * 1024;
/// An image manifest or index: containerd and the docker daemon refuse larger ones.
pub const MAX_MANIFEST_BODY: u64 = 4 * 1024 * 1024;
/// How many redirects a client follows (within one origin).
const MAX_REDIRECTS: usize = 5;

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// The whole body, refused as soon as it passes `limit` bytes (by its Content-Length, or
/// while it streams).
pub async fn read_body(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// At most the first `limit` bytes of the body (the rest is never read), and whatever
/// arrived before a transport error: for error responses, where some text beats none.
pub async fn read_prefix(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// Follows a redirect only to the same scheme, host and port, at most [`MAX_REDIRECTS`]
/// times, as docker's client does for requests that carry authentication: a server cannot
/// send trustctl, with its credentials or tokens, somewhere else.
pub fn same_origin_redirects() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        let same_origin = first.scheme() == attempt.url().scheme()
            && first.host_str() == attempt.url().host_str()
            && first.port_or_known_default() == attempt.url().port_or_known_default();
        if !same_origin {
            let to = format!(
                "{}://{}",
                attempt.url().scheme(),
                attempt.url().host_str().unwrap_or_default()
            );
            attempt.error(format!(
                "the server redirected to another host ({to}); trustctl follows redirects within one server only"
            ))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}
