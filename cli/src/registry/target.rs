//! One manifest in a registry: a repository and a tag or digest, and the URLs of the
//! distribution API (`/v2/<repository>/manifests/<tag or digest>`, `/v2/<repository>/blobs/`)
//! that reach it.

use crate::reference::ImageRef;

/// A repository in a registry, and the tag or digest of one of its manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    registry: String,
    repository: String,
    /// A tag, or a digest (`sha256:...`).
    target: String,
}

impl RegistryRef {
    /// `image` (whose GUN is `registry/repository`) at `tag`.
    pub fn with_tag(image: &ImageRef, tag: &str) -> RegistryRef {
        let registry = image.registry().to_owned();
        let repository = image.gun[registry.len() + 1..].to_owned();
        RegistryRef {
            registry,
            repository,
            target: tag.to_owned(),
        }
    }

    /// The same repository at `digest`.
    pub fn clone_with_digest(&self, digest: String) -> RegistryRef {
        RegistryRef {
            target: digest,
            ..self.clone()
        }
    }

    /// The registry as the user names it (`docker.io`, `registry.example.com:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag or digest.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// `registry/repository:tag` or `registry/repository@digest`.
    pub fn whole(&self) -> String {
        let separator = if self.target.contains(':') { '@' } else { ':' };
        format!(
            "{}/{}{separator}{}",
            self.registry, self.repository, self.target
        )
    }

    /// The host the API is served on: Docker Hub's API is not on `docker.io` itself.
    fn api_host(&self) -> &str {
        match self.registry.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            other => other,
        }
    }

    /// `<scheme>://<host>/v2/<repository>/<path>`: `scheme` is `https` unless the user
    /// allowed this registry over plain HTTP.
    pub fn api_url(&self, scheme: &str, path: &str) -> String {
        format!(
            "{scheme}://{}/v2/{}/{path}",
            self.api_host(),
            self.repository
        )
    }

    /// What authentication is remembered under: one repository of one registry.
    pub fn auth_key(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_names() {
        let image = ImageRef::parse("alpine").unwrap();
        let tagged = RegistryRef::with_tag(&image, "3.20");
        assert_eq!(tagged.whole(), "docker.io/library/alpine:3.20");
        assert_eq!(
            tagged.api_url("https", "manifests/3.20"),
            "https://registry-1.docker.io/v2/library/alpine/manifests/3.20"
        );
        let pinned = tagged.clone_with_digest("sha256:00".into());
        assert_eq!(pinned.whole(), "docker.io/library/alpine@sha256:00");
        let local = RegistryRef::with_tag(&ImageRef::parse("127.0.0.1:5000/a/b").unwrap(), "v1");
        assert_eq!(
            local.api_url("https", "blobs/uploads/"),
            "https://127.0.0.1:5000/v2/a/b/blobs/uploads/"
        );
        assert_eq!(local.auth_key(), "127.0.0.1:5000/a/b");
    }
}
