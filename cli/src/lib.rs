//! trustctl's library: talking to trustd, reading key files, verifying signatures.
//!
//! trustctl never holds a private key for longer than it takes to hand it to trustd
//! (`key load`); everything else works with public keys and signatures only.

pub mod attestation;
pub mod audit_log;
pub mod client;
pub mod config;
pub mod cosign;
pub mod error;
pub mod keyfile;
pub mod notary;
pub mod once;
pub mod reference;
pub mod registry;
