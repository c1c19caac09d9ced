//! Where trustd's own log goes and in which shape: text for a terminal, JSON lines for log
//! shippers (`TRUSTD_LOG_FORMAT=json`), or journald's native protocol under systemd, so each
//! event's fields (backend, key, caller) become journal fields that `journalctl -o json` and
//! `journalctl BACKEND=hsm` can select on, with the event's level as the priority.
//!
//! The default follows systemd's own contract: when stderr is the journal stream systemd set
//! up (`JOURNAL_STREAM` names stderr's device and inode), journald is used; otherwise text.

use std::os::fd::AsRawFd;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The environment variable that chooses the format.
pub const FORMAT_VARIABLE: &str = "TRUSTD_LOG_FORMAT";

/// The shapes trustd's log can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (colored on a terminal).
    Text,
    /// One JSON object per event, its fields at the top level.
    Json,
    /// journald's native protocol: fields become journal fields.
    Journald,
}

impl LogFormat {
    /// The format `TRUSTD_LOG_FORMAT` asks for, or the default for where stderr goes.
    pub fn from_environment() -> Result<LogFormat, String> {
        match std::env::var(FORMAT_VARIABLE) {
            Ok(value) => match value.as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                "journald" => Ok(LogFormat::Journald),
                other => Err(format!(
                    "{FORMAT_VARIABLE}={other:?} is not a log format: use text, json or journald"
                )),
            },
            Err(_) if stderr_is_journal() => Ok(LogFormat::Journald),
            Err(_) => Ok(LogFormat::Text),
        }
    }
}

/// Installs the process's log subscriber. `TRUSTD_LOG` filters as `RUST_LOG` does.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = EnvFilter::try_from_env("TRUSTD_LOG")
        // cryptoki logs an error for every vendor mechanism it has no name for.
        .unwrap_or_else(|_| EnvFilter::new("info,cryptoki::mechanism=off"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Journald => {
            let journald = tracing_journald::layer()
                .map_err(|e| format!("cannot reach journald ({FORMAT_VARIABLE}=journald): {e}"))?
                .with_syslog_identifier("trustd".into())
                // BACKEND=hsm rather than F_BACKEND=hsm: what an admin would type.
                .with_field_prefix(None);
            registry.with(journald).init()
        }
    }
    Ok(())
}

/// Whether stderr is the stream systemd connected to the journal for this service.
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = stream.split_once(':') else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_raw_fd()) else {
        return false;
    };
    device.parse::<u64>().ok() == Some(stat.st_dev)
        && inode.parse::<u64>().ok() == Some(stat.st_ino)
}
