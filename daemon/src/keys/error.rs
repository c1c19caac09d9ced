//! What the key service reports, by meaning rather than by protocol: each front end maps it
//! to its own status codes (the gRPC mapping is `rpc::status`).

use crate::audit::AuditError;
use crate::backend::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request itself is wrong (bad name, algorithm, digest length, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// The policy does not grant the caller this operation on this object.
    #[error("{0}")]
    Denied(String),
    /// No such key or backend (said only to callers who may know).
    #[error("{0}")]
    NotFound(String),
    /// The name or slot is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is fine but trustd's configuration or the key's origin rules it out.
    #[error("{0}")]
    NotPossible(String),
    /// The audit trail cannot be written, so nothing is signed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A fault inside trustd (a task failed, the inventory could not be written).
    #[error("{0}")]
    Internal(String),
}
