//! A real notary-server on a free loopback port, with TLS from a throwaway test CA, and the
//! real notary client pointed at it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::ca::TestCa;
use crate::token::TokenService;

/// The service name notary-server's tokens are issued for.
pub const NOTARY_SERVICE: &str = "trustd-test-notary";

/// Starts a server program with its output in `log`, and waits until it listens on
/// `port` of 127.0.0.1 (panicking with the log when it does not within 15 s).
pub fn spawn_server(mut command: Command, log: &Path, port: u16, what: &str) -> Child {
    let file = std::fs::File::create(log).unwrap();
    let mut child = crate::dies_with_harness(&mut command)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{what} does not run ({e}): scripts/install-deps test installs it")
        });
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "{what} did not start:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// notary-server with in-memory storage and its own (local) signing service.
pub struct NotaryServer {
    pub ca: Arc<TestCa>,
    pub url: String,
    work: tempfile::TempDir,
    child: Child,
}

impl NotaryServer {
    pub fn start() -> NotaryServer {
        NotaryServer::start_with(Arc::new(TestCa::new()), None)
    }

    /// A server with TLS from `ca`; with `token`, it demands tokens from that service, as
    /// notary.docker.io demands them from auth.docker.io.
    pub fn start_with(ca: Arc<TestCa>, token: Option<&TokenService>) -> NotaryServer {
        let local = serde_json::json!({"type": "local", "hostname": "", "port": "", "key_algorithm": "ecdsa"});
        NotaryServer::start_with_trust_service(ca, token, local)
    }

    /// A server whose timestamp and snapshot keys are held by `trust_service` (notary-server's
    /// config section: `{"type": "remote", ...}` for a notary-signer).
    pub fn start_with_trust_service(
        ca: Arc<TestCa>,
        token: Option<&TokenService>,
        trust_service: serde_json::Value,
    ) -> NotaryServer {
        let work = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = serde_json::json!({
            "server": {
                "http_addr": format!("127.0.0.1:{port}"),
                "tls_cert_file": ca.dir.path().join("server.crt"),
                "tls_key_file": ca.dir.path().join("server.key"),
            },
            "trust_service": trust_service,
            "logging": {"level": "info"},
            "storage": {"backend": "memory"},
        });
        if let Some(token) = token {
            config["auth"] = serde_json::json!({
                "type": "token",
                "options": {
                    "realm": token.realm,
                    "service": NOTARY_SERVICE,
                    "issuer": crate::token::ISSUER,
                    "rootcertbundle": token.cert,
                },
            });
        }
        let config_path = work.path().join("server.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut command = Command::new("notary-server");
        command.arg("-config").arg(&config_path);
        let child = spawn_server(
            command,
            &work.path().join("server.log"),
            port,
            "notary-server",
        );
        NotaryServer {
            ca,
            url: format!("https://127.0.0.1:{port}"),
            work,
            child,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.work.path().join("server.log")).unwrap_or_default()
    }

    /// GET a path from the server (over TLS, trusting only the test CA).
    pub fn get(&self, path: &str) -> Vec<u8> {
        let out = Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(self.ca.ca_cert())
            .arg(format!("{}{path}", self.url))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "GET {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The real notary client, with its own trust directory, pointed at this server.
    pub fn client(&self, trust_dir: &Path) -> Command {
        let mut cmd = Command::new("notary");
        cmd.arg("-s")
            .arg(&self.url)
            .arg("-d")
            .arg(trust_dir)
            .arg("--tlscacert")
            .arg(self.ca.ca_cert())
            // Test-only passphrases for the notary client's own key files.
            .env("NOTARY_ROOT_PASSPHRASE", "test root passphrase")
            .env("NOTARY_TARGETS_PASSPHRASE", "test targets passphrase")
            .env("NOTARY_SNAPSHOT_PASSPHRASE", "test snapshot passphrase")
            .env("NOTARY_DELEGATION_PASSPHRASE", "test delegation passphrase")
            .stdin(Stdio::null());
        cmd
    }

    /// The notary client's private key file for `gun`'s `role` (it writes `role:` and `gun:`
    /// headers into each encrypted PEM file under `private/`).
    pub fn key_file(trust_dir: &Path, gun: &str, role: &str) -> PathBuf {
        let dir = trust_dir.join("private");
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .find(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                text.lines().any(|l| l.trim() == format!("role: {role}"))
                    && text.lines().any(|l| l.trim() == format!("gun: {gun}"))
            })
            .unwrap_or_else(|| panic!("no {role} key of {gun} in {}", dir.display()))
    }

    /// Runs the notary client and asserts success.
    pub fn notary(&self, trust_dir: &Path, args: &[&str]) -> Output {
        let out = self
            .client(trust_dir)
            .args(args)
            .output()
            .expect("notary runs");
        assert!(
            out.status.success(),
            "notary {args:?}: {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out
    }
}

impl Drop for NotaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One row of `notary list`: a signed tag as the notary client reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTag {
    /// Hex SHA-256 of the manifest.
    pub digest: String,
    pub size: u64,
    /// The role that signed it (`targets`, `targets/releases`, ...).
    pub role: String,
}

/// The table `notary list` prints (a header, a rule, then NAME DIGEST SIZE ROLE per row), by
/// tag: so tests compare exact values instead of searching the text.
pub fn parse_notary_list(listing: &str) -> std::collections::BTreeMap<String, ListedTag> {
    listing
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("----"))
        .skip(1)
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let [name, digest, size, role] = columns.as_slice() else {
                return None;
            };
            Some((
                name.to_string(),
                ListedTag {
                    digest: digest.to_string(),
                    size: size.parse().ok()?,
                    role: role.to_string(),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_notary_client_table() {
        let listing = "NAME    DIGEST    SIZE (BYTES)    ROLE\n----    ------    ------------    ----\n1.0     abcd      1234            targets\n2.0     ef01      99              targets/releases\n";
        let tags = super::parse_notary_list(listing);
        assert_eq!(tags.len(), 2);
        assert_eq!(tags["1.0"].digest, "abcd");
        assert_eq!(tags["1.0"].size, 1234);
        assert_eq!(tags["2.0"].role, "targets/releases");
    }
}
