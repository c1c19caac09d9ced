#![warn(missing_docs)]
//! TUF metadata in the Notary v1 dialect, the one Docker Content Trust reads, as a library
//! (the way `tough` stands apart from `tuftool`): trustctl builds and verifies repositories
//! with it and trustd computes its keys' Notary IDs with it. It knows nothing of gRPC or of
//! trustd: whatever signs implements [`signer::Signer`].
//!
//! This is not the TUF 1.0 specification's format (python-tuf, tough and go-tuf use that):
//! the envelope, key encodings, signature methods and field set are notary 0.7's, and the
//! bytes written must equal what the Go tools write, because notary-server and its clients
//! hash the stored bytes and fetch roles by checksum.
//!
//! - [`canonical`]: the canonical JSON that is signed.
//! - [`envelope`]: the signed file on the wire, parsed and written byte for byte as Go does.
//! - [`model`]: the roles (root, targets and delegations, snapshot, timestamp).
//! - [`keys`]: public keys, their IDs, and signature checks against them.
//! - [`threshold`]: whether a role carries enough valid signatures from the keys it must.
//! - [`certificate`], [`root_cert`]: the X.509 certificates that carry Notary root keys.
//! - [`verify`], [`x509_chain`]: signature and certificate chain checks.
//! - [`text`]: server-supplied text made safe to show on a terminal.
//! - [`delegation`]: delegated roles and the paths they may sign; [`pinning`]: trust pinning
//!   of a repository's root (by certificate, CA or key ID), as notary's client config has it.
//! - With the `client` feature: [`client`] (a notary-server's HTTP API, docker's token
//!   authentication and credentials, bounded bodies), [`trust`] (a repository read through
//!   full verification from a trusted root, and the local trust cache) and [`inspect`]
//!   (`docker trust inspect`'s report of a verified repository), [`publish`] (changes
//!   signed through the [`publish::RoleSigner`] trait, published and read back verified) and
//!   [`expiry`] (what expires soon, and what renews it), and [`ceremony`] (root changes
//!   signed by officers on several machines through a file handed between them).

pub mod canonical;
#[cfg(feature = "client")]
pub mod ceremony;
pub mod certificate;
#[cfg(feature = "client")]
pub mod client;
pub mod delegation;
pub mod encoding;
pub mod envelope;
#[cfg(feature = "client")]
pub mod expiry;
#[cfg(feature = "client")]
pub mod inspect;
pub mod keys;
pub mod model;
pub mod pinning;
#[cfg(feature = "client")]
pub mod publish;
pub mod root_cert;
pub mod text;
pub mod threshold;
#[cfg(feature = "client")]
pub mod trust;
pub mod verify;
pub mod x509_chain;
