//! trustctl's configuration file: `$XDG_CONFIG_HOME/trustctl/config.toml` (or
//! `~/.config/trustctl/config.toml`), else `/etc/trustctl/config.toml`; the first that exists
//! is the one read.
//!
//! ```toml
//! socket = "/run/trustd/trustd.sock"
//! trustd_user = "trustd"
//! insecure_registries = ["registry.lab:5000"]   # plain HTTP, as --insecure-registry
//!
//! [notary]
//! server = "https://notary.example.com"
//! tls_ca = "/etc/trustctl/notary-ca.pem"
//!
//! [trust_pinning]
//! disable_tofu = true
//! certs = { "registry.example.com/team/app" = ["<root certificate key ID>"] }
//! ca = { "registry.example.com/" = "/etc/trustctl/root-ca.pem" }
//!
//! [attestation]
//! tpm_ca = "/etc/trustctl/tpm-vendor-cas.pem"
//! piv_ca = "/etc/trustctl/yubico-roots.pem"
//!
//! [remote]            # a trustd on another machine, instead of the socket
//! url = "https://signer.example.com:7899"
//! tls_cert = "/etc/trustctl/runner.crt"
//! tls_key = "/etc/trustctl/runner.key"
//! ca = "/etc/trustctl/signer-ca.pem"
//! ```
//!
//! A file that exists but does not parse is an error, never ignored: silently dropping a
//! `[trust_pinning]` table would turn pinning into trust on first use.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use trustd_notary::pinning::TrustPinning;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// trustd's socket.
    pub socket: Option<PathBuf>,
    /// The user trustd runs as (default `trustd`): trustctl only talks to a socket served by
    /// root, this user, or the user running trustctl.
    pub trustd_user: Option<String>,
    /// Registries reached over plain HTTP (`HOST[:PORT]`), as docker's insecure-registries.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default)]
    pub notary: NotaryConfig,
    #[serde(default)]
    pub trust_pinning: TrustPinning,
    #[serde(default)]
    pub attestation: AttestationConfig,
    #[serde(default)]
    pub remote: RemoteConfig,
}

/// A remote trustd (its mutual-TLS listener), used instead of the socket when `url` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `https://host:port` of trustd's TLS listener.
    pub url: Option<String>,
    /// The client certificate (PEM) this machine presents.
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The CA (PEM) trustd's server certificate chains to [default: the system's roots].
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationConfig {
    /// PEM certificates (the TPM vendors' roots and intermediates) that TPM endorsement key
    /// certificates must chain to.
    pub tpm_ca: Option<PathBuf>,
    /// PEM roots for YubiKey PIV attestations instead of the built-in Yubico PIV root (cards
    /// with firmware 5.7.4 or later chain to Yubico's newer roots).
    pub piv_ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotaryConfig {
    /// The notary server for every repository (below --server and the environment).
    pub server: Option<String>,
    /// An extra CA (PEM) for the notary server and registries.
    pub tls_ca: Option<PathBuf>,
    /// Where verified trust data is cached.
    pub trust_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

fn candidate_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        paths.push(PathBuf::from(dir).join("trustctl/config.toml"));
    } else if let Some(home) = std::env::var_os("HOME") {
        paths.push(PathBuf::from(home).join(".config/trustctl/config.toml"));
    }
    paths.push(PathBuf::from("/etc/trustctl/config.toml"));
    paths
}

impl Config {
    /// The configuration in effect: the first config file that exists, or the defaults.
    pub fn load() -> Result<Config, ConfigError> {
        match candidate_paths().into_iter().find(|p| p.exists()) {
            Some(path) => Config::read(&path),
            None => Ok(Config::default()),
        }
    }

    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let error = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        toml::from_str(&text).map_err(|e| error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_section_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            r#"
socket = "/tmp/t.sock"
[notary]
server = "https://notary.example.com"
[trust_pinning]
disable_tofu = true
certs = { "r.example.com/app" = ["abc"] }
ca = { "r.example.com/" = "/ca.pem" }
"#,
        )
        .unwrap();
        let config = Config::read(&path).unwrap();
        assert_eq!(config.socket.as_deref(), Some(Path::new("/tmp/t.sock")));
        assert_eq!(
            config.notary.server.as_deref(),
            Some("https://notary.example.com")
        );
        assert!(config.trust_pinning.disable_tofu);
        assert_eq!(config.trust_pinning.certs["r.example.com/app"], ["abc"]);

        std::fs::write(&path, "[trust_pinning]\ndisable_tofus = true\n").unwrap();
        let error = Config::read(&path).unwrap_err();
        assert!(error.reason.contains("disable_tofus"), "{error}");
    }
}
