//! notary-server with trustd as its notary-signer: the TLS listener and notary-signer tables
//! for trustd's config, the client certificate notary-server presents, and its
//! `trust_service` pointing at trustd.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ca::TestCa;
use crate::notary::{free_port, NotaryServer};

/// The policy rule that lets notary-server make and use its own keys, and nothing else.
pub const NOTARY_SERVER_RULE: &str = r#"
[[policy.rule]]
description = "notary-server"
clients = ["CN=notary-server"]
keys = ["notary/*"]
operations = ["generate", "sign", "list"]
"#;

/// Where trustd listens for TLS, with the server certificate of `ca` (for 127.0.0.1).
pub struct TlsEndpoint {
    pub ca: Arc<TestCa>,
    pub port: u16,
}

impl TlsEndpoint {
    pub fn new(ca: Arc<TestCa>) -> TlsEndpoint {
        TlsEndpoint {
            ca,
            port: free_port(),
        }
    }

    /// `[tls_listener]` and `[notary_signer]` for trustd's config; notary-server's keys are
    /// made on `backend`.
    pub fn trustd_tables(&self, backend: &str) -> String {
        format!(
            "{}\n[notary_signer]\nbackend = \"{backend}\"\n",
            self.listener_table()
        )
    }

    /// `[tls_listener]` alone: remote callers of trustd's own API.
    pub fn listener_table(&self) -> String {
        let (cert, key) = self.ca.server_cert();
        format!(
            "[tls_listener]\naddress = \"127.0.0.1:{}\"\ncertificate = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
            self.port,
            cert.display(),
            key.display(),
            self.ca.ca_cert().display()
        )
    }

    /// How trustctl reaches this listener with the client certificate `cert`/`key`.
    pub fn remote(&self, cert: &Path, key: &Path) -> trustctl::client::remote::RemoteTrustd {
        trustctl::client::remote::RemoteTrustd {
            url: self.url(),
            certificate: cert.to_owned(),
            key: key.to_owned(),
            ca: Some(self.ca.ca_cert()),
        }
    }

    /// trustctl's arguments for this listener with the client certificate `cert`/`key`.
    pub fn trustctl_args(&self, cert: &Path, key: &Path) -> Vec<String> {
        vec![
            "--trustd".into(),
            self.url(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
            "--trustd-ca".into(),
            self.ca.ca_cert().display().to_string(),
        ]
    }

    /// notary-server's `trust_service` for trustd, with a client certificate for
    /// CN=notary-server.
    pub fn trust_service(&self) -> serde_json::Value {
        let (cert, key) = self.ca.client_cert("notary-server", "/CN=notary-server");
        serde_json::json!({
            "type": "remote",
            "hostname": "127.0.0.1",
            "port": self.port.to_string(),
            "tls_ca_file": self.ca.ca_cert(),
            "tls_client_cert": cert,
            "tls_client_key": key,
            "key_algorithm": "ecdsa",
        })
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl NotaryServer {
    /// The status of `/_notary_server/health` (503 while its signer is unhealthy).
    pub fn health(&self) -> u16 {
        let out = Command::new("curl")
            .args([
                "--silent",
                "--output",
                "/dev/null",
                "--write-out",
                "%{http_code}",
                "--cacert",
            ])
            .arg(self.ca.ca_cert())
            .arg(format!("{}/_notary_server/health", self.url))
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Waits (up to 40 s: notary-server checks its signer every 10 s) for the health status.
    pub fn wait_for_health(&self, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let now = self.health();
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "notary-server health stayed {now}, not {status}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Publishes what the notary client at `trust_dir` has staged, retrying for up to 15 s
    /// while notary-server reconnects to a signer that just came back (grpc-go's reconnect
    /// backoff: a signer restarted under it fails calls for a second or two).
    pub fn publish_after_signer_restart(&self, trust_dir: &Path, gun: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = self
                .client(trust_dir)
                .args(["publish", gun])
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "notary publish kept failing after the signer came back: {}{}\n--- notary-server ---\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `notary add` + `notary publish` of a tag, returning the publish's output.
    pub fn publish_tag(&self, trust_dir: &Path, gun: &str, tag: &str) -> std::process::Output {
        let artifact = trust_dir.join(format!("{tag}.artifact"));
        std::fs::write(&artifact, format!("content of {tag}")).unwrap();
        self.notary(trust_dir, &["add", gun, tag, artifact.to_str().unwrap()]);
        self.client(trust_dir)
            .args(["publish", gun])
            .output()
            .expect("notary runs")
    }
}
