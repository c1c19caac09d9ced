#![warn(missing_docs)]
//! trustd, the hardware-backed signing daemon, as a library: the binary (`main.rs`) parses
//! its command line and calls [`server::run`]; tests and tools can build the same daemon
//! in-process.
//!
//! The layers, from the socket inward:
//! - `front`: where requests come from and who sends them (the Unix socket and its peer
//!   credentials, connection limits, message sizes and buffered bytes before any handler);
//! - `rpc`: the gRPC service, one path every call takes (caller, in-flight count, `audit`)
//!   and thin handlers that convert messages and map errors to status codes;
//! - `keys`: the key service (authorization by `policy`, key lifecycle under `key_locks`,
//!   signing), whoever the front end;
//! - `backend`: the devices (PKCS#11, TPM, YubiKey PIV) behind one trait; `inventory`: which
//!   keys exist and where.

mod algorithm;
mod atomic_file;
mod audit;
mod backend;
mod certificate;
mod config;
mod front;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod inventory;
mod key_locks;
mod keys;
pub mod logging;
pub mod manual;
mod metrics;
mod operation;
mod policy;
mod private_key;
mod rpc;
mod secret;
pub mod server;
mod state;
mod time;

use std::path::Path;

/// Whether trustd failed because its configuration is unusable: the file, its policy or the
/// files it names (TLS certificates). `main` exits 2 for these, as trustctl does for bad input.
pub fn is_config_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<config::ConfigError>()
            || cause.is::<policy::PolicyError>()
            || cause.is::<front::tls::TlsSetupError>()
    })
}

/// Loads the configuration at `path` and resolves its policy (user and group names), as
/// `trustd --check-config` does, without starting anything.
pub fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = config::Config::load(path)?;
    policy::Policy::from_config(&config.policy)?;
    if let Some(tls) = &config.tls_listener {
        front::tls::check(tls)?;
    }
    Ok(())
}
