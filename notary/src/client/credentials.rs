//! Registry credentials as the docker CLI finds them: `$DOCKER_CONFIG/config.json` (or
//! `~/.docker/config.json`), its `auths`, `credsStore` and per-registry `credHelpers`.
//!
//! The same credentials open the registry and the notary server's token service, as with
//! `docker trust`. They live in memory only, and the password is zeroized when dropped.

use zeroize::Zeroizing;

/// A user name and password (or access token) for one registry.
#[derive(Clone)]
pub struct Credentials {
    /// The registry user name.
    pub username: String,
    /// The password or access token, zeroized when dropped.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[allow(
    missing_docs,
    reason = "each variant is documented by its #[error] message"
)]
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the docker credentials for {registry}: {reason}")]
    Unreadable { registry: String, reason: String },
    #[error(
        "the docker credentials for {registry} are an OAuth identity token, which trustctl does \
         not exchange; log in with a user name and password or access token (docker login -u)"
    )]
    IdentityToken { registry: String },
}

/// The key docker files a registry's credentials under: Docker Hub has its historical URL,
/// every other registry its host name.
pub fn config_key(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    }
}

/// Where docker keeps its client configuration.
fn docker_config_file() -> Option<std::path::PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))
        .map(|dir| dir.join("config.json"))
}

/// Credentials already looked up by this process, by registry: a credential helper is a
/// program to run, so a batch over many repositories asks it once per registry.
type Looked = std::sync::Mutex<std::collections::HashMap<String, Option<Credentials>>>;
static LOOKED_UP: std::sync::OnceLock<Looked> = std::sync::OnceLock::new();

impl Credentials {
    /// The user's credentials for `registry` (a host, `host:port`, or `docker.io`), or None
    /// when docker has none: anonymous access is then tried, as docker does.
    pub fn for_registry(registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        let cache = LOOKED_UP.get_or_init(Looked::default);
        if let Some(found) = cache.lock().expect("credentials cache").get(registry) {
            return Ok(found.clone());
        }
        let found = Credentials::look_up(registry)?;
        cache
            .lock()
            .expect("credentials cache")
            .insert(registry.to_owned(), found.clone());
        Ok(found)
    }

    /// What docker's configuration gives for `registry` now, without this process's cache.
    pub fn look_up(registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        use docker_credential::{CredentialRetrievalError as E, DockerCredential};
        match docker_credential::get_credential(config_key(registry)) {
            Ok(DockerCredential::UsernamePassword(username, password)) => Ok(Some(Credentials {
                username,
                password: Zeroizing::new(password),
            })),
            Ok(DockerCredential::IdentityToken(mut token)) => {
                zeroize::Zeroize::zeroize(&mut token);
                Err(CredentialsError::IdentityToken {
                    registry: registry.to_owned(),
                })
            }
            Err(E::NoCredentialConfigured | E::ConfigNotFound) => Ok(None),
            // Also what a missing config.json gives; only a file that is there but unreadable
            // or malformed is an error.
            Err(E::ConfigReadError) if !docker_config_file().is_some_and(|p| p.exists()) => {
                Ok(None)
            }
            Err(other) => Err(CredentialsError::Unreadable {
                registry: registry.to_owned(),
                reason: other.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_credentials_are_filed_under_the_index_url() {
        assert_eq!(config_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(
            config_key("registry.example.com:5000"),
            "registry.example.com:5000"
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let credentials = Credentials {
            username: "ci".into(),
            password: Zeroizing::new("hunter2".into()),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
