//! trustctl's errors: what went wrong, what to do, and the exit code that says which.

use std::path::Path;

/// Exit codes (documented in the README):
/// 1 failure (including a signature that does not verify), 2 usage, 3 trustd or the device
/// unreachable, 4 permission denied, 5 not found.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    NotFound(String),
    /// Failures already told to the user, one line each as they happened (several images,
    /// a batch): only the exit code is left to give.
    #[error("the failures above")]
    Reported(u8),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
            CliError::Denied(_) => 4,
            CliError::NotFound(_) => 5,
            CliError::Reported(code) => *code,
        }
    }

    /// The same failure, its message led by `prefix` (which format or step failed).
    pub fn prefixed(self, prefix: &str) -> CliError {
        let add = |message: String| format!("{prefix}{message}");
        match self {
            CliError::Failed(m) => CliError::Failed(add(m)),
            CliError::Usage(m) => CliError::Usage(add(m)),
            CliError::Unreachable(m) => CliError::Unreachable(add(m)),
            CliError::Denied(m) => CliError::Denied(add(m)),
            CliError::NotFound(m) => CliError::NotFound(add(m)),
            CliError::Reported(code) => CliError::Reported(code),
        }
    }

    pub fn connect(socket: &Path, error: std::io::Error) -> CliError {
        let shown = socket.display();
        match error.kind() {
            std::io::ErrorKind::NotFound => CliError::Unreachable(format!(
                "trustd is not running at {shown} (no socket there): start it (systemctl start trustd) or point --socket / TRUSTD_SOCKET at the right path"
            )),
            std::io::ErrorKind::ConnectionRefused => CliError::Unreachable(format!(
                "nothing is listening on {shown}: trustd has stopped; start it again"
            )),
            std::io::ErrorKind::PermissionDenied => CliError::Denied(format!(
                "you may not connect to {shown}: ask an administrator to add you to trustd's socket group"
            )),
            _ => CliError::Unreachable(format!("cannot connect to trustd at {shown}: {error}")),
        }
    }

    /// Turns a gRPC status from trustd into an error with advice.
    pub fn from_status(action: &str, status: tonic::Status) -> CliError {
        use tonic::Code;
        let message = format!("{action}: {}", status.message());
        match status.code() {
            Code::PermissionDenied | Code::Unauthenticated => CliError::Denied(message),
            Code::NotFound => CliError::NotFound(message),
            Code::Unavailable => CliError::Unreachable(message),
            Code::InvalidArgument | Code::OutOfRange => CliError::Usage(message),
            Code::FailedPrecondition => CliError::Failed(format!(
                "{message} (`trustctl status` shows the state of each backend)"
            )),
            Code::DeadlineExceeded | Code::Cancelled => {
                CliError::Unreachable(format!("{message} (trustd did not answer in time)"))
            }
            _ => CliError::Failed(message),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Failed(e.to_string())
    }
}

pub use trustd_notary::client::error_chain;

/// The Notary library's failures as trustctl reports them; a failure of trustd (the signer)
/// comes back as the error trustctl made of it.
impl From<trustd_notary::publish::PublishError> for CliError {
    fn from(error: trustd_notary::publish::PublishError) -> Self {
        use trustd_notary::publish::PublishError;
        let message = error.to_string();
        match error {
            PublishError::Unreachable(_) => CliError::Unreachable(message),
            PublishError::Failed(_) | PublishError::AlreadyExists(_) => CliError::Failed(message),
            PublishError::NotASigner(_) => CliError::Denied(message),
            PublishError::NotFound(_) => CliError::NotFound(message),
            PublishError::Refused(_) => CliError::Usage(message),
            PublishError::Signer(signer) => match signer.0.downcast::<CliError>() {
                Ok(cli) => *cli,
                Err(other) => CliError::Failed(other.to_string()),
            },
        }
    }
}

impl From<trustd_notary::client::server::ServerError> for CliError {
    fn from(error: trustd_notary::client::server::ServerError) -> Self {
        use trustd_notary::client::server::ServerError;
        let message = error.to_string();
        match error {
            ServerError::Unreachable { .. } => CliError::Unreachable(message),
            ServerError::Auth { .. } => CliError::Denied(message),
            ServerError::BadCa { .. } | ServerError::BadUrl { .. } => CliError::Usage(message),
            _ => CliError::Failed(message),
        }
    }
}

/// What went wrong reading or writing a file, in words ("no such file"), without the
/// "(os error 2)" a user can do nothing with.
pub fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound => "no such file".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        ErrorKind::IsADirectory => "it is a directory".to_owned(),
        ErrorKind::InvalidData => "it is not UTF-8 text".to_owned(),
        _ => {
            let text = error.to_string();
            match text.find(" (os error ") {
                Some(at) => text[..at].to_owned(),
                None => text,
            }
        }
    }
}

/// Reads a text file the user named, as a usage error naming it when it cannot be read.
pub fn read_text(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read {what} {}: {}",
            path.display(),
            io_reason(&e)
        ))
    })
}

/// Reads a file the user named, as a usage error naming it when it cannot be read.
pub fn read_bytes(path: &Path, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read {what} {}: {}",
            path.display(),
            io_reason(&e)
        ))
    })
}

#[cfg(test)]
mod io_tests {
    #[test]
    fn io_reasons_are_words_without_os_error_numbers() {
        let missing = std::fs::read("/nonexistent/file").unwrap_err();
        assert_eq!(super::io_reason(&missing), "no such file");
        let error = super::read_text(std::path::Path::new("/nonexistent/k.pub"), "the key file")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read the key file /nonexistent/k.pub: no such file"
        );
        assert_eq!(error.exit_code(), 2);
        let other = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(!super::io_reason(&other).contains("os error"), "{other}");
    }
}
