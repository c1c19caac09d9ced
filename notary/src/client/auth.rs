//! Authentication to registries and notary servers the way docker and the notary client do
//! it: a server answering 401 with a `Bearer` challenge is asked again with a token from the
//! challenge's realm (the registry's token service), obtained with the registry's docker
//! credentials; a `Basic` challenge is answered with the credentials themselves, and then
//! sent up front for that repository.
//!
//! Tokens are kept in memory for the life of the command and never written anywhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::header::WWW_AUTHENTICATE;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::client::credentials::Credentials;
use crate::client::http_limits;

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the server's authentication challenge is not understood: {0}")]
    BadChallenge(String),
    #[error("cannot reach the token service {realm}: {reason}")]
    TokenServiceUnreachable { realm: String, reason: String },
    #[error("the token service {realm} refused {who} ({status}){hint}")]
    TokenRefused {
        realm: String,
        who: String,
        status: u16,
        hint: &'static str,
    },
    #[error("the token service {realm} sent no usable token: {reason}")]
    BadToken { realm: String, reason: String },
}

/// What a 401 asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    /// A bearer token from the token service at `realm`.
    Bearer {
        /// The token service's URL.
        realm: String,
        /// The `service` to ask the token for.
        service: Option<String>,
        /// The access asked for (`repository:NAME:pull,push`).
        scope: Option<String>,
    },
    /// HTTP Basic authentication with the user's credentials.
    Basic,
}

/// Reads the `WWW-Authenticate` header of a 401; None when it names no scheme trustctl
/// answers.
pub fn parse_challenge(header: &str) -> Result<Option<Challenge>, AuthError> {
    let challenges =
        http_auth::parse_challenges(header).map_err(|e| AuthError::BadChallenge(e.to_string()))?;
    for challenge in challenges {
        let param = |name: &str| {
            challenge
                .params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_unescaped())
        };
        if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let realm = param("realm").ok_or_else(|| {
                AuthError::BadChallenge(format!("a Bearer challenge without a realm: {header}"))
            })?;
            return Ok(Some(Challenge::Bearer {
                realm,
                service: param("service"),
                scope: param("scope"),
            }));
        }
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            return Ok(Some(Challenge::Basic));
        }
    }
    Ok(None)
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Credentials for one notary server and the tokens obtained with them.
#[derive(Clone, Default)]
pub struct Authenticator {
    credentials: Option<Arc<Credentials>>,
    /// Per repository (GUN), how the last challenge for it was answered (a token, or the
    /// credentials themselves); sent with every later request for that repository, since a
    /// token for push and pull also opens reads. Keyed by repository so that one server's
    /// client serves many repositories at once without their tokens displacing each other.
    tokens: Arc<Mutex<HashMap<String, Answered>>>,
}

/// How a repository's last challenge was answered.
#[derive(Clone)]
enum Answered {
    Bearer(Zeroizing<String>),
    Basic,
}

/// How to authorize one request.
pub enum Authorization {
    /// Nothing yet: requests go out anonymous until a server asks.
    None,
    /// A bearer token the token service issued.
    Bearer(Zeroizing<String>),
    /// The user's credentials, sent as HTTP Basic.
    Basic(Arc<Credentials>),
}

impl Authenticator {
    /// An authenticator that answers challenges with `credentials` (anonymous when `None`).
    pub fn new(credentials: Option<Credentials>) -> Authenticator {
        Authenticator {
            credentials: credentials.map(Arc::new),
            tokens: Arc::default(),
        }
    }

    /// What to send with the next request for repository `gun`, before any challenge.
    pub fn current(&self, gun: &str) -> Authorization {
        match self.tokens.lock().expect("token lock").get(gun) {
            Some(Answered::Bearer(token)) => Authorization::Bearer(token.clone()),
            Some(Answered::Basic) => match &self.credentials {
                Some(credentials) => Authorization::Basic(credentials.clone()),
                None => Authorization::None,
            },
            None => Authorization::None,
        }
    }

    /// Whether there are credentials to answer with (else only anonymous tokens).
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// Answers a 401's challenge: the authorization to retry with, or None when there is
    /// nothing better to send (the 401 then stands).
    pub async fn answer(
        &self,
        gun: &str,
        http: &reqwest::Client,
        response: &reqwest::Response,
    ) -> Result<Option<Authorization>, AuthError> {
        let Some(header) = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
        else {
            return Ok(None);
        };
        match parse_challenge(header)? {
            None => Ok(None),
            Some(Challenge::Basic) => {
                let Some(credentials) = self.credentials.clone() else {
                    return Ok(None);
                };
                self.tokens
                    .lock()
                    .expect("token lock")
                    .insert(gun.to_owned(), Answered::Basic);
                Ok(Some(Authorization::Basic(credentials)))
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let token = self
                    .fetch_token(http, &realm, service.as_deref(), scope.as_deref())
                    .await?;
                self.tokens
                    .lock()
                    .expect("token lock")
                    .insert(gun.to_owned(), Answered::Bearer(token.clone()));
                Ok(Some(Authorization::Bearer(token)))
            }
        }
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Zeroizing<String>, AuthError> {
        let mut query = Vec::new();
        if let Some(service) = service {
            query.push(("service", service));
        }
        if let Some(scope) = scope {
            query.push(("scope", scope));
        }
        let mut request = http.get(realm).query(&query);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(c.password.as_str()));
        }
        let response = request
            .send()
            .await
            .map_err(|e| AuthError::TokenServiceUnreachable {
                realm: realm.to_owned(),
                reason: match realm.starts_with("http://") && e.is_builder() {
                    // The client is HTTPS-only: nothing was sent.
                    true => "it is on plain HTTP, where the credentials and the token would \
                             travel unprotected, so trustctl did not ask it"
                        .to_owned(),
                    false => super::transport_failure(&e, "--tls-ca"),
                },
            })?;
        let status = response.status();
        if !status.is_success() {
            let (who, hint) = match &self.credentials {
                Some(c) => (
                    format!("the credentials of {}", c.username),
                    ": log in again with docker login",
                ),
                None => (
                    "anonymous access".to_owned(),
                    ": log in to the registry with docker login first",
                ),
            };
            return Err(AuthError::TokenRefused {
                realm: realm.to_owned(),
                who,
                status: status.as_u16(),
                hint,
            });
        }
        let bad = |reason: String| AuthError::BadToken {
            realm: realm.to_owned(),
            reason,
        };
        let body = Zeroizing::new(
            http_limits::read_body(response, http_limits::MAX_TOKEN_BODY)
                .await
                .map_err(|e| bad(format!("its answer: {e}")))?,
        );
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .map(Zeroizing::new)
            .ok_or_else(|| bad("the answer has neither token nor access_token".into()))
    }
}

impl Authorization {
    /// Whether two authorizations would send the same thing.
    pub fn same_as(&self, other: &Authorization) -> bool {
        match (self, other) {
            (Authorization::None, Authorization::None) => true,
            (Authorization::Bearer(a), Authorization::Bearer(b)) => a == b,
            (Authorization::Basic(a), Authorization::Basic(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// `request` with the authorization this authenticator holds, if any.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Authorization::None => request,
            Authorization::Bearer(token) => request.bearer_auth(token.as_str()),
            Authorization::Basic(c) => request.basic_auth(&c.username, Some(c.password.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bearer_challenge_of_a_notary_server() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="notary.docker.io",scope="repository:docker.io/library/alpine:pull""#;
        assert_eq!(
            parse_challenge(header).unwrap(),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("notary.docker.io".into()),
                scope: Some("repository:docker.io/library/alpine:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#).unwrap(),
            Some(Challenge::Basic)
        );
        assert!(parse_challenge("Bearer service=\"x\"").is_err());
        assert_eq!(parse_challenge("Negotiate abc").ok().flatten(), None);
    }
}
