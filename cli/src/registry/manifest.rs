//! What a tag points at in a registry (the digest and size Docker Content Trust signs), the
//! platform manifests of an index, and the manifests and blobs cosign-style signatures are
//! made of; the requests themselves are in `client`.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::client::{Got, RegistryHttp};
pub use super::error::RegistryError;
use super::plain_http::InsecureRegistries;
use super::target::RegistryRef;
use crate::reference::ImageRef;
use trustd_notary::client::http_limits;

/// OCI and Docker manifest media types.
const OCI_IMAGE_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const IMAGE_MANIFEST_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_IMAGE_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const IMAGE_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

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

/// How to talk to registries.
#[derive(Default, Clone)]
pub struct RegistryOptions<'a> {
    /// An extra CA (PEM) to trust besides the system roots.
    pub ca: Option<&'a Path>,
    /// Registries the user allowed over plain HTTP.
    pub insecure: InsecureRegistries,
}

/// `image` at `tag`, as the registry API names it.
pub fn reference(image: &ImageRef, tag: &str) -> RegistryRef {
    RegistryRef::with_tag(image, tag)
}

/// A client for the registries of many images, authenticated per repository with the
/// user's docker credentials, and shared by parallel jobs.
#[derive(Clone)]
pub struct RegistryClient {
    http: RegistryHttp,
}

impl RegistryClient {
    pub fn new(options: RegistryOptions<'_>) -> Result<RegistryClient, RegistryError> {
        Ok(RegistryClient {
            http: RegistryHttp::new(options.ca, options.insecure)?,
        })
    }

    /// Says on stderr that `registry` is reached over plain HTTP, if it is (once per run).
    pub fn warn_if_plain(&self, registry: &str) {
        self.http.warn_if_plain(registry);
    }

    /// The manifest `target` names, or None when there is none (404). The digest is
    /// computed over the bytes received, never taken on the registry's word.
    pub async fn manifest(&self, target: &RegistryRef) -> Result<Option<Fetched>, RegistryError> {
        let path = format!("manifests/{}", target.target());
        let body = match self
            .http
            .get(
                target,
                &path,
                MANIFEST_TYPES,
                http_limits::MAX_MANIFEST_BODY,
            )
            .await?
        {
            Got::Body(body) => body,
            Got::NotFound => return Ok(None),
        };
        let platforms = platforms(&body).map_err(|reason| RegistryError::BadManifest {
            image: target.whole(),
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

    /// A blob's bytes (at most `limit`), checked against its digest.
    pub async fn blob(
        &self,
        target: &RegistryRef,
        digest: &str,
        limit: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let path = format!("blobs/{digest}");
        let out = match self.http.get(target, &path, &[], limit as u64).await? {
            Got::Body(body) => body,
            Got::NotFound => {
                return Err(RegistryError::BadManifest {
                    image: target.whole(),
                    reason: format!("the registry has no blob {digest}"),
                })
            }
        };
        if format!("sha256:{}", hex::encode(Sha256::digest(&out))) != digest {
            return Err(RegistryError::BadManifest {
                image: target.whole(),
                reason: format!("blob {digest} does not match its digest"),
            });
        }
        Ok(out)
    }

    pub async fn push_blob(&self, target: &RegistryRef, data: &[u8]) -> Result<(), RegistryError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        self.http.push_blob(target, data, &digest).await
    }

    pub async fn push_manifest(
        &self,
        target: &RegistryRef,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        self.http.push_manifest(target, body, media_type).await
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
pub fn platforms(body: &[u8]) -> Result<Vec<PlatformManifest>, String> {
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
