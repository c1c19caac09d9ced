//! What can go wrong talking to a registry, in words that say what to do; shared by the
//! requests (`client`) and what is made of their answers (`manifest`).

use trustd_notary::client::credentials::CredentialsError;

use crate::error::CliError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot read the CA certificate {path}: {reason}")]
    BadCa { path: String, reason: String },
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error(
        "registry {registry} refused the credentials: {reason} (docker login {registry} stores \
         working ones)"
    )]
    Unauthorized { registry: String, reason: String },
    #[error(
        "registry {registry} does not let this account {action} {repository} ({status}{detail}): \
         ask for that access, or docker login {registry} as a user who has it"
    )]
    Denied {
        registry: String,
        repository: String,
        action: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{image}: no such tag in the registry ({reason})")]
    TagNotFound { image: String, reason: String },
    #[error("registry {registry}: {reason}")]
    Refused { registry: String, reason: String },
    #[error("{image}: {reason}")]
    BadManifest { image: String, reason: String },
}

/// A registry failure as trustctl reports it: its exit code says what kind it is.
impl From<RegistryError> for CliError {
    fn from(error: RegistryError) -> CliError {
        let message = error.to_string();
        match error {
            RegistryError::Unreachable { .. } => CliError::Unreachable(message),
            RegistryError::Unauthorized { .. } | RegistryError::Denied { .. } => {
                CliError::Denied(message)
            }
            RegistryError::TagNotFound { .. } => CliError::NotFound(message),
            RegistryError::BadCa { .. } => CliError::Usage(message),
            RegistryError::Credentials(_)
            | RegistryError::Refused { .. }
            | RegistryError::BadManifest { .. } => CliError::Failed(message),
        }
    }
}

/// "CODE: message" of the first error of a registry's error body
/// (`{"errors":[{"code":...,"message":...}]}`).
pub fn first_error(body: &str) -> Option<String> {
    let envelope: serde_json::Value = serde_json::from_str(body).ok()?;
    let first = envelope.get("errors")?.get(0)?;
    let code = first.get("code")?.as_str()?;
    Some(match first.get("message").and_then(|m| m.as_str()) {
        Some(message) if !message.is_empty() => format!("{code}: {message}"),
        _ => code.to_owned(),
    })
}
