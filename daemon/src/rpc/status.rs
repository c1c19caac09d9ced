//! The one mapping from trustd's errors to gRPC status codes.
//!
//! NotFound (no such key or backend), PermissionDenied (policy), InvalidArgument (bad
//! request), FailedPrecondition (token locked, misconfigured or lacking a mechanism),
//! Unavailable (device missing, audit sink broken), AlreadyExists (name taken),
//! ResourceExhausted (device queue full), DeadlineExceeded (no touch).

use tonic::Status;

use crate::backend::BackendError;
use crate::keys::ServiceError;

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Status {
        let message = error.to_string();
        match error {
            ServiceError::InvalidRequest(_) => Status::invalid_argument(message),
            ServiceError::Denied(_) => Status::permission_denied(message),
            ServiceError::NotFound(_) => Status::not_found(message),
            ServiceError::AlreadyExists(_) => Status::already_exists(message),
            ServiceError::NotPossible(_) => Status::failed_precondition(message),
            ServiceError::Audit(_) => Status::unavailable(message),
            ServiceError::Backend(backend) => backend_status(&backend),
            ServiceError::Internal(_) => Status::internal(message),
        }
    }
}

impl From<BackendError> for Status {
    fn from(error: BackendError) -> Status {
        backend_status(&error)
    }
}

fn backend_status(error: &BackendError) -> Status {
    let message = error.to_string();
    match error {
        BackendError::Unavailable(_) => Status::unavailable(message),
        BackendError::Locked(_) | BackendError::Misconfigured(_) | BackendError::Unsupported(_) => {
            Status::failed_precondition(message)
        }
        BackendError::KeyMissing(_) => Status::not_found(message),
        BackendError::Busy(_) => Status::resource_exhausted(message),
        BackendError::Conflict(_) => Status::already_exists(message),
        BackendError::TouchTimeout(_) => Status::deadline_exceeded(message),
        BackendError::Device(_) => Status::internal(message),
    }
}
