//! The distribution API calls trustctl makes (read a manifest or blob, push a blob or
//! manifest), authenticated as docker authenticates, with every answer bounded.
//!
//! Written on reqwest rather than taken from an OCI client crate: the one we used
//! (oci-client) buffers every response body, error bodies and token answers included, with
//! no limit, so a hostile registry streaming an endless body could exhaust trustctl's memory;
//! and it checks `/v2/` before every request on registries without authentication. Here each
//! body has a limit suited to what it carries, and authentication follows the registry's own
//! 401 challenge (docker's flow), remembered per repository so parallel jobs share it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};

use super::error::{first_error, RegistryError};
use super::plain_http::InsecureRegistries;
use super::target::RegistryRef;
use crate::error::error_chain;
use trustd_notary::client::auth::{AuthError, Authenticator, Authorization};
use trustd_notary::client::credentials::Credentials;
use trustd_notary::client::http_limits::{self, BodyError};

/// What a request is for: the words a refusal uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Push,
}

impl Access {
    fn verb(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Push => "push to",
        }
    }
}

/// A bounded GET's outcome.
pub enum Got {
    Body(Vec<u8>),
    NotFound,
}

/// Requests to any number of registries, shared by parallel jobs.
#[derive(Clone)]
pub struct RegistryHttp {
    /// For every registry not allowed plain HTTP: HTTPS only, redirects and token services
    /// included, so no answer can send trustctl (or the user's credentials) to plain HTTP.
    https: reqwest::Client,
    /// For the registries the user allowed over plain HTTP, and their token services.
    plain: reqwest::Client,
    insecure: Arc<InsecureRegistries>,
    /// The plain-HTTP registries the user has been warned about in this run.
    warned: Arc<Mutex<BTreeSet<String>>>,
    /// Per registry: the user's credentials for it and what its challenges were answered
    /// with, per repository.
    authenticators: Arc<Mutex<HashMap<String, Authenticator>>>,
    /// Per repository: held while a challenge is answered, so parallel jobs that all met
    /// the same 401 ask the token service once.
    answering: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl RegistryHttp {
    /// `ca` adds a trusted CA (PEM) to the system roots; `insecure` names the registries
    /// the user allowed over plain HTTP.
    pub fn new(
        ca: Option<&Path>,
        insecure: InsecureRegistries,
    ) -> Result<RegistryHttp, RegistryError> {
        let mut roots = Vec::new();
        if let Some(path) = ca {
            let bad = |reason: String| RegistryError::BadCa {
                path: path.display().to_string(),
                reason,
            };
            roots = trustd_notary::client::read_ca_file(path).map_err(bad)?;
        }
        let build = |https_only: bool| {
            // Registries redirect blob reads to their storage (another host); reqwest drops
            // the Authorization header when a redirect leaves the origin.
            let mut builder = reqwest::Client::builder()
                .use_rustls_tls()
                .https_only(https_only)
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::limited(5))
                .user_agent(concat!("trustctl/", env!("CARGO_PKG_VERSION")));
            for cert in &roots {
                builder = builder.add_root_certificate(cert.clone());
            }
            builder.build().map_err(|e| RegistryError::Unreachable {
                registry: "(any)".into(),
                reason: error_chain(&e),
            })
        };
        Ok(RegistryHttp {
            https: build(true)?,
            plain: build(false)?,
            insecure: Arc::new(insecure),
            warned: Arc::default(),
            authenticators: Arc::default(),
            answering: Arc::default(),
        })
    }

    /// Says on stderr, once per run and registry, that `registry` is reached over plain
    /// HTTP, when it is. Batches call this before their progress bar is drawn.
    pub fn warn_if_plain(&self, registry: &str) {
        if !self.insecure.allows(registry) {
            return;
        }
        if self
            .warned
            .lock()
            .expect("warned registries")
            .insert(registry.to_owned())
        {
            eprintln!(
                "trustctl: warning: registry {} is reached over plain HTTP (--insecure-registry): \
                 nothing protects this connection; anyone on the network can read it, the \
                 credentials included, and change what the registry answers, which manifest \
                 gets signed included",
                trustd_notary::text::sanitize(registry)
            );
        }
    }

    /// The client and the API URL for `path` of `target`'s repository.
    fn route(&self, target: &RegistryRef, path: &str) -> (&reqwest::Client, String) {
        if self.insecure.allows(target.registry()) {
            self.warn_if_plain(target.registry());
            (&self.plain, target.api_url("http", path))
        } else {
            (&self.https, target.api_url("https", path))
        }
    }

    fn authenticator(&self, registry: &str) -> Result<Authenticator, RegistryError> {
        if let Some(found) = self
            .authenticators
            .lock()
            .expect("authenticators")
            .get(registry)
        {
            return Ok(found.clone());
        }
        let credentials = Credentials::for_registry(registry)?;
        Ok(self
            .authenticators
            .lock()
            .expect("authenticators")
            .entry(registry.to_owned())
            .or_insert_with(|| Authenticator::new(credentials))
            .clone())
    }

    fn answering_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.answering
            .lock()
            .expect("answering locks")
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// Sends a request for `target`'s repository made by `make`, answering one 401 challenge
    /// (or using what another job answered it with meanwhile).
    async fn send(
        &self,
        target: &RegistryRef,
        access: Access,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, Authorization), RegistryError> {
        let auth = self.authenticator(target.registry())?;
        let key = target.auth_key();
        let sent = auth.current(&key);
        let response = sent
            .apply(make())
            .send()
            .await
            .map_err(|e| unreachable(target, &e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok((response, sent));
        }
        let lock = self.answering_lock(&key);
        let guard = lock.lock().await;
        let now = auth.current(&key);
        let retry = if !now.same_as(&sent) {
            now
        } else {
            let (http, _) = self.route(target, "");
            match auth
                .answer(&key, http, &response)
                .await
                .map_err(|e| auth_error(target, access, &auth, e))?
            {
                Some(answer) => answer,
                None => return Ok((response, sent)),
            }
        };
        drop(guard);
        let response = retry
            .apply(make())
            .send()
            .await
            .map_err(|e| unreachable(target, &e))?;
        Ok((response, retry))
    }

    /// What a refusal (4xx/5xx other than 404 on reads) means, from its status and the
    /// first error of its (bounded) body.
    async fn refusal(
        target: &RegistryRef,
        access: Access,
        what: &str,
        response: reqwest::Response,
        used: &Authorization,
    ) -> RegistryError {
        let status = response.status();
        let body = http_limits::read_prefix(response, http_limits::MAX_ERROR_BODY).await;
        let detail = first_error(&String::from_utf8_lossy(&body));
        match status.as_u16() {
            401 if matches!(used, Authorization::Basic(_)) => RegistryError::Unauthorized {
                registry: target.registry().to_owned(),
                reason: format!(
                    "401 Unauthorized{}",
                    detail.map(|e| format!(" ({e})")).unwrap_or_default()
                ),
            },
            code @ (401 | 403) => RegistryError::Denied {
                registry: target.registry().to_owned(),
                repository: target.repository().to_owned(),
                action: access.verb(),
                status: code,
                detail: detail.map(|e| format!(" {e}")).unwrap_or_default(),
            },
            code => RegistryError::Refused {
                registry: target.registry().to_owned(),
                reason: format!(
                    "{what} answered {code}{}",
                    detail.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            },
        }
    }

    /// `GET /v2/<repository>/<path>`, reading at most `limit` bytes of the answer.
    pub async fn get(
        &self,
        target: &RegistryRef,
        path: &str,
        accept: &[&str],
        limit: u64,
    ) -> Result<Got, RegistryError> {
        let (http, url) = self.route(target, path);
        let (response, used) = self
            .send(target, Access::Read, || {
                let request = http.get(&url);
                match accept.is_empty() {
                    true => request,
                    false => request.header(reqwest::header::ACCEPT, accept.join(", ")),
                }
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Got::NotFound);
        }
        if !response.status().is_success() {
            let what = format!("GET {path}");
            return Err(Self::refusal(target, Access::Read, &what, response, &used).await);
        }
        match http_limits::read_body(response, limit).await {
            Ok(body) => Ok(Got::Body(body)),
            Err(BodyError::TooLarge { limit }) => Err(RegistryError::BadManifest {
                image: target.whole(),
                reason: format!(
                    "registry {} sent more than {limit} bytes for {path}; refusing it",
                    target.registry()
                ),
            }),
            Err(BodyError::Transport(e)) => Err(unreachable(target, &e)),
        }
    }

    /// Uploads a blob in one request (POST an upload, PUT its bytes with their digest).
    pub async fn push_blob(
        &self,
        target: &RegistryRef,
        data: &[u8],
        digest: &str,
    ) -> Result<(), RegistryError> {
        let (http, start) = self.route(target, "blobs/uploads/");
        let (response, used) = self
            .send(target, Access::Push, || http.post(&start))
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            let what = "POST blobs/uploads/";
            return Err(Self::refusal(target, Access::Push, what, response, &used).await);
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| RegistryError::Refused {
                registry: target.registry().to_owned(),
                reason: "an upload was started without a Location to send it to".into(),
            })?;
        let base = reqwest::Url::parse(&start).expect("API URLs parse");
        let mut upload = base.join(location).map_err(|e| RegistryError::Refused {
            registry: target.registry().to_owned(),
            reason: format!("the upload Location {location:?} is not a URL: {e}"),
        })?;
        upload.query_pairs_mut().append_pair("digest", digest);
        let put = || {
            http.request(Method::PUT, upload.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(data.to_vec())
        };
        // Credentials go only where the upload began; an upload elsewhere is its own URL's.
        let (response, used) = if upload.origin() == base.origin() {
            self.send(target, Access::Push, put).await?
        } else {
            let response = put().send().await.map_err(|e| unreachable(target, &e))?;
            (response, Authorization::None)
        };
        if !response.status().is_success() {
            let what = "PUT of the blob";
            return Err(Self::refusal(target, Access::Push, what, response, &used).await);
        }
        Ok(())
    }

    /// `PUT /v2/<repository>/manifests/<tag>`.
    pub async fn push_manifest(
        &self,
        target: &RegistryRef,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let (http, url) = self.route(target, &format!("manifests/{}", target.target()));
        let (response, used) = self
            .send(target, Access::Push, || {
                http.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        if !response.status().is_success() {
            let what = "PUT of the manifest";
            return Err(Self::refusal(target, Access::Push, what, response, &used).await);
        }
        Ok(())
    }
}

fn unreachable(target: &RegistryRef, error: &reqwest::Error) -> RegistryError {
    let mut reason = trustd_notary::client::transport_failure(error, "--tls-ca");
    if trustd_notary::client::answered_without_tls(error) {
        reason.push_str(&format!(
            "; if it serves plain HTTP and an unprotected connection is acceptable there, allow \
             it with --insecure-registry {}",
            target.registry()
        ));
    }
    RegistryError::Unreachable {
        registry: target.registry().to_owned(),
        reason,
    }
}

fn auth_error(
    target: &RegistryRef,
    access: Access,
    auth: &Authenticator,
    error: AuthError,
) -> RegistryError {
    let registry = target.registry().to_owned();
    match error {
        AuthError::TokenServiceUnreachable { .. } => RegistryError::Unreachable {
            registry,
            reason: error.to_string(),
        },
        AuthError::TokenRefused { .. } if auth.has_credentials() => RegistryError::Unauthorized {
            registry,
            reason: error.to_string(),
        },
        AuthError::TokenRefused { status, .. } => RegistryError::Denied {
            registry,
            repository: target.repository().to_owned(),
            action: access.verb(),
            status,
            detail: " without credentials".into(),
        },
        other => RegistryError::Refused {
            registry,
            reason: other.to_string(),
        },
    }
}
