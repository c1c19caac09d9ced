//! What a tag points at: the digest and size of its manifest (an image manifest, or an index
//! for a multi-platform image), as Docker Content Trust signs it.

use std::path::Path;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use sha2::{Digest, Sha256};

use super::credentials::{Credentials, CredentialsError};
use crate::reference::ImageRef;

/// Every manifest type a tag may point at; the registry answers with the one it has, never
/// converting (a converted manifest would have another digest).
const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

/// A tag's manifest: the target Docker Content Trust signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRef {
    pub sha256: [u8; 32],
    pub size: i64,
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
    #[error("{image}: no such tag in the registry ({reason})")]
    TagNotFound { image: String, reason: String },
    #[error("registry {registry}: {reason}")]
    Refused { registry: String, reason: String },
}

/// How to talk to registries.
#[derive(Default)]
pub struct RegistryOptions<'a> {
    /// An extra CA (PEM) to trust besides the system roots.
    pub ca: Option<&'a Path>,
}

fn client(options: &RegistryOptions) -> Result<oci_client::Client, RegistryError> {
    let mut config = ClientConfig {
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: concat!("trustctl/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    if let Some(path) = options.ca {
        let data = std::fs::read(path).map_err(|e| RegistryError::BadCa {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        config.extra_root_certificates.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        });
    }
    Ok(oci_client::Client::new(config))
}

fn reason(error: &OciDistributionError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

/// Asks the registry what `image` (which must name a tag) points at, authenticating with
/// the user's docker credentials (basic, or a bearer token from the registry's token
/// service). The digest is computed over the bytes received, never taken on the
/// registry's word.
pub async fn resolve_tag(
    image: &ImageRef,
    options: &RegistryOptions<'_>,
) -> Result<ManifestRef, RegistryError> {
    let registry = image.registry().to_owned();
    let tag = image.tag.clone().unwrap_or_else(|| "latest".to_owned());
    let repository = image.gun[registry.len() + 1..].to_owned();
    let reference = Reference::with_tag(registry.clone(), repository, tag);
    let auth = match Credentials::for_registry(&registry)? {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.as_str().to_owned()),
        None => RegistryAuth::Anonymous,
    };
    let client = client(options)?;
    let classify = |error: OciDistributionError| match error {
        OciDistributionError::AuthenticationFailure(text) => RegistryError::Unauthorized {
            registry: registry.clone(),
            reason: text.trim().to_owned(),
        },
        OciDistributionError::UnauthorizedError { .. } => RegistryError::Unauthorized {
            registry: registry.clone(),
            reason: "401 Unauthorized".to_owned(),
        },
        OciDistributionError::RequestError(_) => RegistryError::Unreachable {
            registry: registry.clone(),
            reason: reason(&error),
        },
        OciDistributionError::RegistryError { ref envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown
                        | oci_client::errors::OciErrorCode::NameUnknown
                )
            }) =>
        {
            RegistryError::TagNotFound {
                image: format!("{}:{}", image.gun, reference.tag().unwrap_or_default()),
                reason: envelope
                    .errors
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => RegistryError::TagNotFound {
            image: format!("{}:{}", image.gun, reference.tag().unwrap_or_default()),
            reason: "404 Not Found".to_owned(),
        },
        other => RegistryError::Refused {
            registry: registry.clone(),
            reason: reason(&other),
        },
    };
    // Authenticate first and on its own: a refused login then says so, instead of
    // surfacing later as an anonymous 401.
    client
        .auth(&reference, &auth, RegistryOperation::Pull)
        .await
        .map_err(classify)?;
    let (body, _) = client
        .pull_manifest_raw(&reference, &auth, MANIFEST_TYPES)
        .await
        .map_err(classify)?;
    Ok(ManifestRef {
        sha256: Sha256::digest(&body).into(),
        size: body.len() as i64,
    })
}
