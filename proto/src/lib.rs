//! The trustd gRPC API shared by the daemon and its clients.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("trustd.v1");
}

pub use v1::*;

/// Upper bound on any single gRPC message, in either direction.
///
/// Payloads larger than the daemon's configured limit are refused with a clear error before
/// this matters; this bound only stops a caller from making the daemon buffer arbitrary data.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
