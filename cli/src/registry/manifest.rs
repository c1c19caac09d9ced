//! Talking to an image registry (Docker Registry HTTP API v2 / OCI distribution): what a tag
//! points at (the digest and size Docker Content Trust signs), platform manifests of an
//! index, and the manifests and blobs cosign-style signatures are made of.
//!
//! `oci-client` authenticates and pushes. Manifests and blobs are read here with a plain GET
//! and the token `oci-client` obtained, because `oci-client` buffers whole bodies with no
//! limit: a hostile registry streaming an endless manifest would exhaust memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::credentials::{Credentials, CredentialsError};
use crate::http_limits::{self, BodyError};
use crate::once::OncePerKey;
use crate::reference::ImageRef;

/// Every manifest type a tag may point at; the registry answers with the one it has, never
/// converting (a converted manifest would have another digest).
const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

/// A manifest: the target Docker Content Trust signs, the subject of a cosign signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRef {
    pub sha256: [u8; 32],
    pub size: i64,
}

impl ManifestRef {
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.sha256))
    }
}

/// A platform manifest listed by an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformManifest {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub digest: String,
}

/// A fetched manifest with what signing needs to know about it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub manifest: ManifestRef,
    pub body: Vec<u8>,
    /// Non-empty for an index (manifest list).
    pub platforms: Vec<PlatformManifest>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot read the CA certificate {path}: {reason}")]
    BadCa { path: String, reason: String },
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error(
        "registry {registry} refused the credentials: {reason} (docker login {registry} stores \
         working ones)"
    )]
    Unauthorized { registry: String, reason: String },
    #[error(
        "registry {registry} does not let this account {action} {repository} ({status}{detail}): \
         ask for that access, or docker login {registry} as a user who has it"
    )]
    Denied {
        registry: String,
        repository: String,
        action: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{image}: no such tag in the registry ({reason})")]
    TagNotFound { image: String, reason: String },
    #[error("registry {registry}: {reason}")]
    Refused { registry: String, reason: String },
    #[error("{image}: {reason}")]
    BadManifest { image: String, reason: String },
}

/// How to talk to registries.
#[derive(Default, Clone, Copy)]
pub struct RegistryOptions<'a> {
    /// An extra CA (PEM) to trust besides the system roots.
    pub ca: Option<&'a Path>,
}

fn reason(error: &OciDistributionError) -> String {
    error_chain(error)
}

/// An error and its sources, in one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

/// "CODE: message" of the first error of a registry's error body
/// (`{"errors":[{"code":...,"message":...}]}`).
fn first_error(body: &str) -> Option<String> {
    let envelope: serde_json::Value = serde_json::from_str(body).ok()?;
    let first = envelope.get("errors")?.get(0)?;
    let code = first.get("code")?.as_str()?;
    Some(match first.get("message").and_then(|m| m.as_str()) {
        Some(message) if !message.is_empty() => format!("{code}: {message}"),
        _ => code.to_owned(),
    })
}

fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::ServerError { code: 404, .. } => true,
        _ => false,
    }
}

/// The repository part of `image` in the form `oci-client` wants.
pub fn reference(image: &ImageRef, tag: &str) -> Reference {
    let registry = image.registry().to_owned();
    let repository = image.gun[registry.len() + 1..].to_owned();
    Reference::with_tag(registry, repository, tag.to_owned())
}

/// A client for the registries of many images, authenticated once per registry with the
/// user's docker credentials, and shared by parallel jobs.
#[derive(Clone)]
pub struct RegistryClient {
    client: Arc<oci_client::Client>,
    /// One authentication per (registry/repository, push?): each costs a request, so it is
    /// done once per repository and operation, not per call, even by parallel jobs. The
    /// value is the bearer token, when the registry uses tokens.
    authenticated: OncePerKey<(String, bool), Option<String>>,
    /// For the bounded reads of manifests and blobs.
    http: reqwest::Client,
}

/// What a bounded GET found.
enum Got {
    Body(Vec<u8>),
    NotFound,
}

impl RegistryClient {
    pub fn new(options: RegistryOptions<'_>) -> Result<RegistryClient, RegistryError> {
        let mut config = ClientConfig {
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("trustctl/", env!("CARGO_PKG_VERSION")),
            // One POST and one PUT per blob (signature payloads are small).
            use_monolithic_push: true,
            ..ClientConfig::default()
        };
        // Registries redirect blob reads to their storage (another host); reqwest drops the
        // Authorization header when a redirect leaves the origin.
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("trustctl/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = options.ca {
            let bad = |reason: String| RegistryError::BadCa {
                path: path.display().to_string(),
                reason,
            };
            let data = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            http = http.add_root_certificate(
                reqwest::Certificate::from_pem(&data).map_err(|e| bad(e.to_string()))?,
            );
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let http = http.build().map_err(|e| RegistryError::Unreachable {
            registry: "(any)".into(),
            reason: e.to_string(),
        })?;
        Ok(RegistryClient {
            client: Arc::new(oci_client::Client::new(config)),
            authenticated: OncePerKey::default(),
            http,
        })
    }

    fn auth_for(&self, registry: &str) -> Result<RegistryAuth, RegistryError> {
        Ok(match Credentials::for_registry(registry)? {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.as_str().to_owned()),
            None => RegistryAuth::Anonymous,
        })
    }

    /// What went wrong with `op` on `reference`, in words that say what to do.
    fn classify(
        &self,
        reference: &Reference,
        op: RegistryOperation,
        error: OciDistributionError,
    ) -> RegistryError {
        let (image, registry) = (&reference.whole(), reference.registry());
        match error {
            // Credentials that work, without the right to this repository: the registry's
            // access rules, not a bad login.
            OciDistributionError::ServerError {
                code: code @ (401 | 403),
                message,
                ..
            } => RegistryError::Denied {
                registry: registry.to_owned(),
                repository: reference.repository().to_owned(),
                action: match op {
                    RegistryOperation::Push => "push to",
                    RegistryOperation::Pull => "read",
                },
                status: code,
                detail: first_error(&message)
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default(),
            },
            OciDistributionError::AuthenticationFailure(text) => RegistryError::Unauthorized {
                registry: registry.to_owned(),
                reason: text.trim().to_owned(),
            },
            OciDistributionError::UnauthorizedError { .. } => RegistryError::Unauthorized {
                registry: registry.to_owned(),
                reason: "401 Unauthorized".to_owned(),
            },
            OciDistributionError::RequestError(_) => RegistryError::Unreachable {
                registry: registry.to_owned(),
                reason: reason(&error),
            },
            ref e if is_not_found(e) => RegistryError::TagNotFound {
                image: image.to_owned(),
                reason: reason(e),
            },
            other => RegistryError::Refused {
                registry: registry.to_owned(),
                reason: reason(&other),
            },
        }
    }

    /// Authenticates for `op` on the repository once (a refused login then says so, instead
    /// of surfacing later as an anonymous 401).
    async fn authenticate(
        &self,
        reference: &Reference,
        op: RegistryOperation,
    ) -> Result<(RegistryAuth, Option<String>), RegistryError> {
        let registry = reference.registry();
        let auth = self.auth_for(registry)?;
        let key = (
            format!("{registry}/{}", reference.repository()),
            op == RegistryOperation::Push,
        );
        let token = self
            .authenticated
            .run(&key, || async {
                self.client
                    .auth(reference, &auth, op)
                    .await
                    .map_err(|e| self.classify(reference, op, e))
            })
            .await?;
        Ok((auth, token))
    }

    /// `GET /v2/<repository>/<path>` with the pull authorization, reading at most `limit`
    /// bytes of the answer. A 401 (an expired token) is retried once with a new token.
    async fn get(
        &self,
        reference: &Reference,
        path: &str,
        accept: &[&str],
        limit: u64,
    ) -> Result<Got, RegistryError> {
        let url = format!(
            "https://{}/v2/{}/{path}",
            reference.resolve_registry(),
            reference.repository()
        );
        let (auth, mut token) = self
            .authenticate(reference, RegistryOperation::Pull)
            .await?;
        let unreachable = |e: reqwest::Error| RegistryError::Unreachable {
            registry: reference.registry().to_owned(),
            reason: error_chain(&e),
        };
        let mut retried = false;
        let response = loop {
            let mut request = self.http.get(&url);
            if !accept.is_empty() {
                request = request.header(reqwest::header::ACCEPT, accept.join(", "));
            }
            request = match (&token, &auth) {
                (Some(token), _) => request.bearer_auth(token),
                (None, RegistryAuth::Basic(user, password)) => {
                    request.basic_auth(user, Some(password))
                }
                (None, _) => request,
            };
            let response = request.send().await.map_err(unreachable)?;
            if response.status() != reqwest::StatusCode::UNAUTHORIZED || retried || token.is_none()
            {
                break response;
            }
            retried = true;
            token = self
                .client
                .auth(reference, &auth, RegistryOperation::Pull)
                .await
                .map_err(|e| self.classify(reference, RegistryOperation::Pull, e))?;
        };
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Got::NotFound);
        }
        if !status.is_success() {
            let body = http_limits::read_prefix(response, http_limits::MAX_ERROR_BODY).await;
            let detail = first_error(&String::from_utf8_lossy(&body));
            return Err(match status.as_u16() {
                code @ (401 | 403) => RegistryError::Denied {
                    registry: reference.registry().to_owned(),
                    repository: reference.repository().to_owned(),
                    action: "read",
                    status: code,
                    detail: detail.map(|e| format!(" {e}")).unwrap_or_default(),
                },
                code => RegistryError::Refused {
                    registry: reference.registry().to_owned(),
                    reason: format!(
                        "GET {path} answered {code}{}",
                        detail.map(|e| format!(": {e}")).unwrap_or_default()
                    ),
                },
            });
        }
        match http_limits::read_body(response, limit).await {
            Ok(body) => Ok(Got::Body(body)),
            Err(BodyError::TooLarge { limit }) => Err(RegistryError::BadManifest {
                image: reference.whole(),
                reason: format!(
                    "registry {} sent more than {limit} bytes for {path}; refusing it",
                    reference.registry()
                ),
            }),
            Err(BodyError::Transport(e)) => Err(unreachable(e)),
        }
    }

    /// The manifest `image:tag_or_digest` names, or None when there is none (404). The
    /// digest is computed over the bytes received, never taken on the registry's word.
    pub async fn manifest(&self, reference: &Reference) -> Result<Option<Fetched>, RegistryError> {
        let target = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_owned();
        let body = match self
            .get(
                reference,
                &format!("manifests/{target}"),
                MANIFEST_TYPES,
                http_limits::MAX_MANIFEST_BODY,
            )
            .await?
        {
            Got::Body(body) => body,
            Got::NotFound => return Ok(None),
        };
        let platforms = platforms(&body).map_err(|reason| RegistryError::BadManifest {
            image: reference.whole(),
            reason,
        })?;
        Ok(Some(Fetched {
            manifest: ManifestRef {
                sha256: Sha256::digest(&body).into(),
                size: body.len() as i64,
            },
            body,
            platforms,
        }))
    }

    /// What `image` (which must name a tag) points at, as Docker Content Trust signs it.
    pub async fn resolve_tag(&self, image: &ImageRef) -> Result<ManifestRef, RegistryError> {
        let tag = image.tag.clone().unwrap_or_else(|| "latest".to_owned());
        match self.manifest(&reference(image, &tag)).await? {
            Some(fetched) => Ok(fetched.manifest),
            None => Err(RegistryError::TagNotFound {
                image: format!("{}:{tag}", image.gun),
                reason: "manifest unknown".to_owned(),
            }),
        }
    }

    /// A blob's bytes, checked against its digest.
    pub async fn blob(
        &self,
        reference: &Reference,
        digest: &str,
        limit: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let out = match self
            .get(reference, &format!("blobs/{digest}"), &[], limit as u64)
            .await?
        {
            Got::Body(body) => body,
            Got::NotFound => {
                return Err(RegistryError::BadManifest {
                    image: reference.whole(),
                    reason: format!("the registry has no blob {digest}"),
                })
            }
        };
        if format!("sha256:{}", hex::encode(Sha256::digest(&out))) != digest {
            return Err(RegistryError::BadManifest {
                image: reference.whole(),
                reason: format!("blob {digest} does not match its digest"),
            });
        }
        Ok(out)
    }

    pub async fn push_blob(&self, reference: &Reference, data: &[u8]) -> Result<(), RegistryError> {
        self.authenticate(reference, RegistryOperation::Push)
            .await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        self.client
            .push_blob(reference, data, &digest)
            .await
            .map_err(|e| self.classify(reference, RegistryOperation::Push, e))?;
        Ok(())
    }

    pub async fn push_manifest(
        &self,
        reference: &Reference,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        self.authenticate(reference, RegistryOperation::Push)
            .await?;
        let content_type = media_type
            .parse()
            .expect("manifest media types are valid header values");
        self.client
            .push_manifest_raw(reference, body, content_type)
            .await
            .map_err(|e| self.classify(reference, RegistryOperation::Push, e))?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
}

#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
struct PlatformJson {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// The platform manifests of an index; empty for an image manifest.
fn platforms(body: &[u8]) -> Result<Vec<PlatformManifest>, String> {
    let index: IndexJson =
        serde_json::from_slice(body).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    Ok(index
        .manifests
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| {
            let platform = entry.platform?;
            Some(PlatformManifest {
                os: platform.os,
                architecture: platform.architecture,
                variant: platform.variant,
                digest: entry.digest,
            })
        })
        .collect())
}
