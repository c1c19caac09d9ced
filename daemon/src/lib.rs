//! trustd, the hardware-backed signing daemon, as a library: the binary (`main.rs`) parses
//! its command line and calls [`server::run`]; tests and tools can build the same daemon
//! in-process.
//!
//! The layers, from the socket inward: `listener` (the Unix socket, peer credentials,
//! connection limits) and `request_limits` (message sizes and buffered bytes, before any
//! handler), `service` (the gRPC handlers: authorization by `policy`, `audit`, key lifecycle
//! with `key_locks`), `backend` (PKCS#11, TPM, YubiKey PIV), `inventory` (what keys exist).

mod admission;
mod algorithm;
mod atomic_file;
mod audit;
mod backend;
mod certificate;
pub mod config;
mod inventory;
mod key_locks;
mod listener;
mod operation;
mod peer;
pub mod policy;
mod private_key;
mod request_limits;
mod secret;
pub mod server;
mod service;
mod time;

use std::path::Path;

/// Loads the configuration at `path` and resolves its policy (user and group names), as
/// `trustd --check-config` does, without starting anything.
pub fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = config::Config::load(path)?;
    policy::Policy::from_config(&config.policy)?;
    Ok(())
}
