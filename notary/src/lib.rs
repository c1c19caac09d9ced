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

pub mod canonical;
pub mod certificate;
mod encoding;
pub mod envelope;
pub mod keys;
pub mod model;
pub mod root_cert;
pub mod threshold;
pub mod verify;
pub mod x509_chain;
