//! Docker's client configuration and a credential helper's answer, as trustctl reads them to
//! log in to a registry and its notary server.
//!
//! The first byte picks what the rest is: 0 `config.json`, otherwise what the credential
//! helper (`credsStore`) prints for `get`. Both go through the `docker_credential` crate and
//! trustctl's handling of what it returns.

use std::path::PathBuf;
use std::sync::OnceLock;

use trustd_notary::client::credentials::{Credentials, CredentialsError};

const REGISTRY: &str = "registry.example.com:5000";

struct Files {
    _dir: tempfile::TempDir,
    config: PathBuf,
    helper_output: PathBuf,
}

/// `$DOCKER_CONFIG` and a `docker-credential-fuzz` helper on `$PATH` that prints a file.
fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temp dir");
        let helper_output = dir.path().join("helper-output");
        let helper = dir.path().join("docker-credential-fuzz");
        std::fs::write(
            &helper,
            // It reads the request first, as real helpers do: a helper that exits without
            // reading would make the write fail with SIGPIPE, which libFuzzer's C main does
            // not ignore (trustctl's Rust main does).
            format!(
                "#!/bin/sh\ncat >/dev/null\nexec cat '{}'\n",
                helper_output.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::var("PATH").unwrap_or_default();
        std::env::set_var("PATH", format!("{}:{path}", dir.path().display()));
        std::env::set_var("DOCKER_CONFIG", dir.path());
        Files {
            config: dir.path().join("config.json"),
            helper_output,
            _dir: dir,
        }
    })
}

pub fn run(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    let files = files();
    if *mode == 0 {
        std::fs::write(&files.config, rest).unwrap();
    } else {
        std::fs::write(&files.config, br#"{"credsStore":"fuzz"}"#).unwrap();
        std::fs::write(&files.helper_output, rest).unwrap();
    }
    // An identity token is refused by name (never handed on as a password).
    if let Err(CredentialsError::IdentityToken { registry }) = Credentials::look_up(REGISTRY) {
        assert_eq!(registry, REGISTRY);
    }
}
