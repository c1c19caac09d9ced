//! A Docker Content Trust test bench: trustd on its own SoftHSM token, a notary-server, a
//! trustctl trust cache, and a docker client configuration that trusts the server's CA.

use std::process::{Command, Output};

use std::sync::Arc;

use crate::notary::{NotaryServer, TestCa};
use crate::{Options, SoftHsm, Trustd};

/// Test-only passphrases docker uses for the keys it keeps in its own trust directory.
pub const DOCKER_ROOT_PASSPHRASE: &str = "test docker root passphrase";
pub const DOCKER_REPOSITORY_PASSPHRASE: &str = "test docker repository passphrase";

pub struct Dct {
    _hsm: SoftHsm,
    pub trustd: Trustd,
    pub server: NotaryServer,
    pub trust_dir: tempfile::TempDir,
    pub docker_config: tempfile::TempDir,
}

impl Dct {
    pub fn new(label: &str) -> Dct {
        Dct::with_ca(label, Arc::new(TestCa::new()))
    }

    /// A bench whose notary-server has its TLS certificate from `ca` (shared with a
    /// registry, say).
    pub fn with_ca(label: &str, ca: Arc<TestCa>) -> Dct {
        let hsm = SoftHsm::new(label);
        let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
        let server = NotaryServer::start_with(ca, None);
        Dct::assemble(hsm, trustd, server)
    }

    /// A bench of a trustd and a notary-server started elsewhere (a notary-server whose
    /// signer is that trustd, say).
    pub fn assemble(hsm: SoftHsm, trustd: Trustd, server: NotaryServer) -> Dct {
        let docker_config = tempfile::tempdir().unwrap();
        let tls = docker_config
            .path()
            .join("tls")
            .join(server.url.trim_start_matches("https://"));
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::copy(server.ca.ca_cert(), tls.join("ca.crt")).unwrap();
        Dct {
            _hsm: hsm,
            trustd,
            server,
            trust_dir: tempfile::tempdir().unwrap(),
            docker_config,
        }
    }

    /// trustctl against this bench's trustd, notary-server and trust cache.
    pub fn trustctl(&self, args: &[&str]) -> Output {
        self.command(args, &self.server.url).output().unwrap()
    }

    /// trustctl against this bench's trustd, CA and trust cache, and the notary server at
    /// `server`, to run with more settings (environment, another server).
    pub fn command(&self, args: &[&str], server: &str) -> Command {
        let mut command = self.trustd.trustctl();
        command
            .args(args)
            .args(["--server", server, "--tls-ca"])
            .arg(self.server.ca.ca_cert())
            .arg("--trust-dir")
            .arg(self.trust_dir.path());
        command
    }

    /// Runs trustctl, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.trustctl(args);
        assert!(
            out.status.success(),
            "trustctl {args:?}: {}\n--- notary-server ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.server.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn notary_list(&self, gun: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        String::from_utf8(self.server.notary(dir.path(), &["list", gun]).stdout).unwrap()
    }

    /// The tags `notary list` shows for `gun`, by name.
    pub fn notary_tags(
        &self,
        gun: &str,
    ) -> std::collections::BTreeMap<String, crate::notary::ListedTag> {
        crate::notary::parse_notary_list(&self.notary_list(gun))
    }

    /// The docker CLI with this bench's configuration and notary server.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", self.docker_config.path())
            .env("DOCKER_CONTENT_TRUST_SERVER", &self.server.url)
            .env(
                "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE",
                DOCKER_ROOT_PASSPHRASE,
            )
            .env(
                "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
                DOCKER_REPOSITORY_PASSPHRASE,
            )
            .current_dir(self.trustd.cwd())
            .output()
            .unwrap()
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn docker_inspect(&self, gun: &str) -> serde_json::Value {
        serde_json::from_str(&self.docker_ok(&["trust", "inspect", gun])).unwrap()
    }
}
