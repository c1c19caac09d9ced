//! The notary-server HTTP API: read roles (by name or checksum), read server-held keys,
//! publish, delete.
//!
//! TLS is verified against the system roots plus an optional extra CA. Downloads are capped,
//! so a hostile or broken server cannot make trustctl buffer without bound, and the server's
//! own error JSON (`{"errors":[{"code":...,"message":...}]}`) is surfaced as it was sent.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::client::auth::Authenticator;
use crate::client::credentials::Credentials;
use crate::client::http_limits::{self, BodyError};
use crate::keys::PublicKey;

/// Largest role file trustctl downloads (notary's own client allows the same for targets).
pub const MAX_ROLE_BYTES: u64 = 100 * 1024 * 1024;
/// Largest root, snapshot or timestamp file: they grow with keys and roles, not with tags.
pub const MAX_SMALL_ROLE_BYTES: u64 = 5 * 1024 * 1024;

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot reach notary server {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("notary server {url} answered {status}: {code}: {message}")]
    Refused {
        url: String,
        status: u16,
        /// The server's error code (INVALID_UPDATE, VERSION, MALFORMED_JSON, ...).
        code: String,
        message: String,
    },
    #[error("notary server {url} sent more than {limit} bytes for {what}; refusing it")]
    TooLarge {
        url: String,
        what: String,
        limit: u64,
    },
    #[error("cannot read the CA certificate {path}: {reason}")]
    BadCa { path: String, reason: String },
    #[error("{url:?} is not a notary server URL: {reason}; write https://HOST[:PORT]")]
    BadUrl { url: String, reason: String },
    #[error("cannot authenticate to notary server {url}: {reason}")]
    Auth { url: String, reason: String },
    #[error("{url} sent no usable {role} key ({reason}): is it a notary server?")]
    BadKey {
        url: String,
        role: String,
        reason: String,
    },
}

#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: serde_json::Value,
}

/// Refuses what cannot be a notary server's base URL before any request. Plain HTTP above
/// all: the server's TLS is what first-use trust of a repository's root rests on, so no flag
/// (not even --insecure-registry, which is for registries) turns it off.
fn check_url(url: &str) -> Result<(), ServerError> {
    let bad = |reason: &str| ServerError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if !url.contains("://") {
        return Err(bad("it has no scheme"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            return Err(bad(
                "notary servers are only reached over HTTPS (their TLS is what first-use trust rests on)",
            ))
        }
        _ => return Err(bad("the scheme must be https")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(bad("it may hold no query, fragment or user name"));
    }
    Ok(())
}

/// A notary-server at `url` (`https://notary.example.com:4443`).
#[derive(Clone)]
pub struct NotaryServer {
    url: String,
    origin: String,
    http: reqwest::Client,
    auth: Authenticator,
}

impl NotaryServer {
    /// `ca` adds a trusted CA (PEM) to the system roots; `credentials` (the registry's, as
    /// docker uses them) answer the server's authentication challenges.
    pub fn new(
        url: &str,
        ca: Option<&Path>,
        credentials: Option<Credentials>,
    ) -> Result<NotaryServer, ServerError> {
        check_url(url)?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .redirect(http_limits::same_origin_redirects())
            .user_agent(concat!("trustctl/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca {
            let bad = |reason: String| ServerError::BadCa {
                path: path.display().to_string(),
                reason,
            };
            for cert in super::read_ca_file(path).map_err(bad)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| ServerError::Unreachable {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(NotaryServer {
            url: url.trim_end_matches('/').to_owned(),
            origin: String::new(),
            http,
            auth: Authenticator::new(credentials),
        })
    }

    /// The same server, described for messages as coming from `origin` (a flag, a variable,
    /// a config file, a default), so a user told about a failure knows what to change.
    pub fn with_origin(mut self, origin: impl Into<String>) -> NotaryServer {
        self.origin = origin.into();
        self
    }

    /// Where the server's URL came from ("" when the caller did not say).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The URL as errors name it: with where it came from, when that is known, so every
    /// failure a wrong server causes says what to change.
    fn described(&self) -> String {
        match self.origin.as_str() {
            "" => self.url.clone(),
            origin => format!("{} (from {origin})", self.url),
        }
    }

    /// The server's base URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn tuf_url(&self, gun: &str, file: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/{file}", self.url)
    }

    fn unreachable(&self, error: reqwest::Error) -> ServerError {
        ServerError::Unreachable {
            url: self.described(),
            reason: crate::client::transport_failure(&error, "--tls-ca"),
        }
    }

    async fn refused(&self, response: reqwest::Response) -> ServerError {
        let status = response.status();
        let body = http_limits::read_prefix(response, http_limits::MAX_ERROR_BODY).await;
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(parsed) if !parsed.errors.is_empty() => {
                let first = &parsed.errors[0];
                let detail = match &first.detail {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) if s.is_empty() => String::new(),
                    serde_json::Value::String(s) => format!(" ({s})"),
                    other => format!(" ({other})"),
                };
                (first.code.clone(), format!("{}{detail}", first.message))
            }
            _ => (
                status.canonical_reason().unwrap_or("error").to_owned(),
                String::from_utf8_lossy(&body[..body.len().min(300)])
                    .trim()
                    .to_owned(),
            ),
        };
        let message = if status == StatusCode::UNAUTHORIZED {
            format!("{message} (the notary server takes the registry's credentials: docker login REGISTRY stores them)")
        } else {
            message
        };
        ServerError::Refused {
            url: self.described(),
            status: status.as_u16(),
            code,
            message,
        }
    }

    /// A role file, or None when the server has none (404). Never more than `limit` bytes.
    pub async fn get(
        &self,
        gun: &str,
        file: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, ServerError> {
        let url = self.tuf_url(gun, file);
        let response = self.execute(gun, || self.http.get(&url)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.refused(response).await);
        }
        self.body(response, &format!("{gun} {file}"), limit)
            .await
            .map(Some)
    }

    /// A success's body, at most `limit` bytes.
    async fn body(
        &self,
        response: reqwest::Response,
        what: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ServerError> {
        http_limits::read_body(response, limit)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge { limit } => ServerError::TooLarge {
                    url: self.described(),
                    what: what.to_owned(),
                    limit,
                },
                BodyError::Transport(e) => self.unreachable(e),
            })
    }

    /// The public key the server holds for `role` (`timestamp` or `snapshot`), created on
    /// first request.
    pub async fn key(&self, gun: &str, role: &str) -> Result<PublicKey, ServerError> {
        let body = self
            .get(gun, &format!("{role}.key"), http_limits::MAX_KEY_BODY)
            .await?
            .ok_or_else(|| ServerError::BadKey {
                url: self.described(),
                role: role.to_owned(),
                reason: "it has no such key".into(),
            })?;
        let key: PublicKey = serde_json::from_slice(&body).map_err(|e| ServerError::BadKey {
            url: self.described(),
            role: role.to_owned(),
            reason: e.to_string(),
        })?;
        key.spki_der().map_err(|e| ServerError::BadKey {
            url: self.described(),
            role: role.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(key)
    }

    /// Has the server replace the key it holds for `role` (`snapshot` or `timestamp`) and
    /// returns the new one; the old key signs until a root listing the new one is published.
    pub async fn rotate_key(&self, gun: &str, role: &str) -> Result<PublicKey, ServerError> {
        let url = self.tuf_url(gun, &format!("{role}.key"));
        let response = self.execute(gun, || self.http.post(&url)).await?;
        if !response.status().is_success() {
            return Err(self.refused(response).await);
        }
        let bad = |reason: String| ServerError::BadKey {
            url: self.described(),
            role: role.to_owned(),
            reason,
        };
        let body = self
            .body(
                response,
                &format!("{gun} {role}.key"),
                http_limits::MAX_KEY_BODY,
            )
            .await?;
        let key: PublicKey = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
        key.spki_der().map_err(|e| bad(e.to_string()))?;
        Ok(key)
    }

    /// Publishes role files in one atomic update: one multipart part per role, field
    /// `files`, file name = role name (`root`, `targets`, `targets/releases`, `snapshot`).
    pub async fn publish(&self, gun: &str, files: &[(String, Vec<u8>)]) -> Result<(), ServerError> {
        let url = self.tuf_url(gun, "");
        self.send(gun, || {
            let mut form = reqwest::multipart::Form::new();
            for (role, bytes) in files {
                form = form.part(
                    "files",
                    reqwest::multipart::Part::bytes(bytes.clone()).file_name(role.clone()),
                );
            }
            self.http.post(&url).multipart(form)
        })
        .await
    }

    /// Deletes all of the repository's trust data on the server.
    pub async fn delete(&self, gun: &str) -> Result<(), ServerError> {
        let url = self.tuf_url(gun, "");
        self.send(gun, || self.http.delete(&url)).await
    }

    /// Sends a request for repository `gun` made by `make`, answering one authentication
    /// challenge: a 401 is retried once with a token (or the credentials) the challenge
    /// asks for.
    async fn execute(
        &self,
        gun: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ServerError> {
        let response = self
            .auth
            .current(gun)
            .apply(make())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let answer = self
            .auth
            .answer(gun, &self.http, &response)
            .await
            .map_err(|e| ServerError::Auth {
                url: self.described(),
                reason: e.to_string(),
            })?;
        match answer {
            Some(authorization) => authorization
                .apply(make())
                .send()
                .await
                .map_err(|e| self.unreachable(e)),
            None => Ok(response),
        }
    }

    /// Sends a request whose only answer of interest is success or the server's refusal.
    async fn send(
        &self,
        gun: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(), ServerError> {
        let response = self.execute(gun, make).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.refused(response).await)
        }
    }
}
