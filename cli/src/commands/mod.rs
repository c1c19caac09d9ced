//! One module per command group.

pub mod attest;
pub mod audit;
pub mod batch;
pub mod blob;
pub mod ceremony;
pub mod check;
pub mod docs;
pub mod inspect;
pub mod key;
pub mod repository;
pub mod signer;
pub mod status;
pub mod token;
pub mod trust;
pub mod verifying_key;

use std::sync::OnceLock;

use trustctl::config::Config;
use trustd_proto as pb;

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Records the configuration file's settings for the commands (once, at start).
pub fn set_config(config: Config) {
    let _ = CONFIG.set(config);
}

/// The configuration file's settings (defaults when there is no file).
pub fn config() -> &'static Config {
    CONFIG.get_or_init(Config::default)
}

pub fn algorithm_name(value: i32) -> &'static str {
    match pb::KeyAlgorithm::try_from(value) {
        Ok(pb::KeyAlgorithm::EcdsaP256) => "ecdsa-p256",
        Ok(pb::KeyAlgorithm::EcdsaP384) => "ecdsa-p384",
        Ok(pb::KeyAlgorithm::Ed25519) => "ed25519",
        Ok(pb::KeyAlgorithm::Rsa2048) => "rsa-2048",
        Ok(pb::KeyAlgorithm::Rsa3072) => "rsa-3072",
        Ok(pb::KeyAlgorithm::Rsa4096) => "rsa-4096",
        _ => "unknown",
    }
}

pub fn rfc3339(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Asks before an action that cannot be undone; refuses when there is no terminal to ask on
/// (scripts must say `--yes`).
pub fn confirm(action: &str, question: &str) -> Result<(), trustctl::error::CliError> {
    confirm_or(action, question, "--yes")
}

/// [`confirm`], naming the flag that skips the question.
pub fn confirm_or(
    action: &str,
    question: &str,
    flag: &str,
) -> Result<(), trustctl::error::CliError> {
    use std::io::{IsTerminal, Write};
    use trustctl::error::CliError;
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "{action} cannot be undone; pass {flag} to confirm"
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::Failed("cancelled".into()))
    }
}
