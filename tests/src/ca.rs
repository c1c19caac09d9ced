//! A throwaway certificate authority for the servers tests start (notary-server, registries,
//! token services, hostile servers): its own module because all of them need it and none
//! should need another for it.

use std::path::PathBuf;
use std::process::Command;

/// A test certificate authority and a server certificate for 127.0.0.1, made with openssl.
pub struct TestCa {
    pub dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca = TestCa {
            dir: tempfile::tempdir().unwrap(),
        };
        ca.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=trustd test CA",
        ]);
        ca.issue(
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
            2,
        );
        ca
    }

    /// Runs openssl in the CA's directory and asserts success.
    pub fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server certificate and key for 127.0.0.1.
    pub fn server_cert(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("server.crt"),
            self.dir.path().join("server.key"),
        )
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A client certificate for mutual TLS (clientAuth, valid for 2 days), as `NAME.crt` and
    /// `NAME.key` in the CA's directory.
    pub fn client_cert(&self, name: &str, subject: &str) -> (PathBuf, PathBuf) {
        self.issue(name, subject, "extendedKeyUsage=clientAuth", 2)
    }

    /// A certificate signed by this CA with the given extensions (openssl extension-file
    /// lines) and validity in days (negative: already expired).
    pub fn issue(
        &self,
        name: &str,
        subject: &str,
        extensions: &str,
        days: i32,
    ) -> (PathBuf, PathBuf) {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.cnf"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ]);
        std::fs::write(
            self.dir.path().join(&ext),
            format!("basicConstraints=CA:FALSE\n{extensions}\n"),
        )
        .unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            &days.to_string(),
            "-extfile",
            &ext,
        ]);
        (self.dir.path().join(crt), self.dir.path().join(key))
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}
