//! The Unix socket callers connect to.
//!
//! trustd either takes the socket systemd hands over (socket activation) or creates it itself
//! with the configured mode and group. A socket file left by a dead trustd is replaced; one a
//! live trustd answers on is left alone and startup fails. Each accepted connection carries the
//! kernel's peer credentials into every request it makes.

use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio_stream::Stream;

use crate::config::SocketConfig;
use crate::front::admission::{CallerKey, ConnectionGate, RateLimitedLog};
use crate::front::peer::PeerCredentials;
use crate::front::stream::{CallerStream, Timeouts};
use crate::front::Caller;

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("another trustd is already serving on {0}: stop it first (systemctl stop trustd), or give this one another socket.path")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error(
        "socket directory {0} does not exist: create it (systemd's RuntimeDirectory=trustd does)"
    )]
    NoDirectory(PathBuf),
    #[error("socket {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("socket directory {dir}: {why}; use a directory only root or trustd's user can write (systemd's RuntimeDirectory=trustd makes one)")]
    UnsafeDirectory { dir: PathBuf, why: String },
    #[error("socket.group {0:?}: no such group")]
    UnknownGroup(String),
    #[error("socket activation: {0}")]
    Activation(String),
}

/// The listening socket and what to clean up when trustd stops.
pub struct Listener {
    pub listener: UnixListener,
    /// The socket file trustd created (and removes on exit); None under socket activation.
    pub created: Option<PathBuf>,
}

pub fn listen(config: &SocketConfig) -> Result<Listener, ListenerError> {
    if let Some(fd) = activated_socket()? {
        let std_listener = std::os::unix::net::UnixListener::from(fd);
        std_listener
            .set_nonblocking(true)
            .map_err(|e| ListenerError::Activation(e.to_string()))?;
        let listener = UnixListener::from_std(std_listener)
            .map_err(|e| ListenerError::Activation(e.to_string()))?;
        tracing::info!("using the socket handed over by systemd");
        return Ok(Listener {
            listener,
            created: None,
        });
    }
    bind(config)
}

// unsafe_code allowed here: adopting the descriptor systemd passed.
#[allow(unsafe_code)]
fn activated_socket() -> Result<Option<OwnedFd>, ListenerError> {
    let fds: Vec<_> = sd_notify::listen_fds()
        .map_err(|e| ListenerError::Activation(e.to_string()))?
        .collect();
    match fds.as_slice() {
        [] => Ok(None),
        // SAFETY: systemd passed this descriptor to us (LISTEN_PID matched) and nothing else
        // in the process owns it.
        [fd] => Ok(Some(unsafe { OwnedFd::from_raw_fd(*fd) })),
        more => Err(ListenerError::Activation(format!(
            "systemd passed {} sockets; trustd.socket must declare exactly one ListenStream=",
            more.len()
        ))),
    }
}

pub(crate) fn bind(config: &SocketConfig) -> Result<Listener, ListenerError> {
    let path = config.path.clone();
    let io_err = |error| ListenerError::Io {
        path: path.clone(),
        error,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(ListenerError::NoDirectory(dir.to_owned()));
    }
    check_socket_directory(dir)?;
    remove_stale(&path)?;
    let mode = config.mode_bits().expect("validated in config");
    // Create the socket inaccessible, then open it up to exactly `mode`: there is no moment
    // where the umask's permissions apply.
    let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(&path);
    nix::sys::stat::umask(previous);
    let std_listener = bound.map_err(io_err)?;
    if let Some(group) = &config.group {
        let gid = resolve_group(group)?;
        nix::unistd::chown(&path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| io_err(e.into()))?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
    std_listener.set_nonblocking(true).map_err(io_err)?;
    let listener = UnixListener::from_std(std_listener).map_err(io_err)?;
    Ok(Listener {
        listener,
        created: Some(path),
    })
}

/// Refuses a socket directory in which someone else could replace trustd's socket with their
/// own (and receive what callers send, private keys for `key load` and PINs included): it
/// must belong to root or to trustd's user, and be writable by nobody else, unless it is
/// sticky and root's (like /tmp), where others can still take the name while trustd is down.
fn check_socket_directory(dir: &Path) -> Result<(), ListenerError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(|error| ListenerError::Io {
        path: dir.to_owned(),
        error,
    })?;
    let me = nix::unistd::geteuid().as_raw();
    let mode = meta.mode();
    let sticky = mode & 0o1000 != 0;
    let unsafe_dir = |why: &str| ListenerError::UnsafeDirectory {
        dir: dir.to_owned(),
        why: why.to_owned(),
    };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(unsafe_dir(&format!(
            "it belongs to uid {}, who could replace trustd's socket",
            meta.uid()
        )));
    }
    let group_writable = mode & 0o020 != 0 && meta.gid() != nix::unistd::getegid().as_raw();
    let other_writable = mode & 0o002 != 0;
    if (group_writable || other_writable) && !(sticky && meta.uid() == 0) {
        return Err(unsafe_dir(
            "other users may write to it, so they could replace trustd's socket",
        ));
    }
    if group_writable || other_writable {
        tracing::warn!(
            dir = %dir.display(),
            "the socket directory is writable by others (sticky, so they cannot replace a live socket, but they can take its name while trustd is stopped and pose as trustd): prefer a directory of trustd's own, such as /run/trustd"
        );
    }
    Ok(())
}

/// Removes a socket file nobody answers on; refuses when a live server answers.
fn remove_stale(path: &Path) -> Result<(), ListenerError> {
    let io_err = |error| ListenerError::Io {
        path: path.to_owned(),
        error,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => Err(ListenerError::NotASocket(path.into())),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Err(ListenerError::InUse(path.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "replacing a stale socket file");
                std::fs::remove_file(path).map_err(io_err)
            }
            Err(e) => Err(io_err(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}

fn resolve_group(group: &str) -> Result<u32, ListenerError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| ListenerError::UnknownGroup(group.to_owned()))
}

/// Accepted connections, each tagged with its peer's credentials and admitted by the
/// connection gate (per uid and in total). Accept errors (EMFILE, ...) back off briefly
/// instead of spinning, and are logged at a bounded rate.
pub struct PeerIncoming {
    listener: UnixListener,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
    gate: Arc<ConnectionGate>,
    timeouts: Timeouts,
}

static ACCEPT_FAILED: RateLimitedLog = RateLimitedLog::new(Duration::from_secs(10));

impl PeerIncoming {
    pub fn new(listener: UnixListener, gate: Arc<ConnectionGate>, timeouts: Timeouts) -> Self {
        PeerIncoming {
            listener,
            backoff: None,
            gate,
            timeouts,
        }
    }
}

impl Stream for PeerIncoming {
    type Item = io::Result<CallerStream<UnixStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(sleep) = self.backoff.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                self.backoff = None;
            }
            match ready!(self.listener.poll_accept(cx)) {
                Ok((stream, _)) => match PeerCredentials::of(&stream) {
                    Ok(peer) => {
                        // Over its limit, the connection is closed at once (dropped here):
                        // its descriptor is back before the next accept.
                        let Some(slot) = self.gate.admit(CallerKey::Uid(peer.uid)) else {
                            continue;
                        };
                        let caller = Arc::new(Caller::Local(peer));
                        return Poll::Ready(Some(Ok(CallerStream::new(
                            stream,
                            caller,
                            slot,
                            self.timeouts,
                        ))));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "closing a connection whose peer credentials cannot be read");
                    }
                },
                Err(error) => {
                    ACCEPT_FAILED.log(|suppressed| {
                        tracing::warn!(%error, suppressed, "accept failed; retrying shortly (at the descriptor limit? see limits.max_connections and LimitNOFILE=)")
                    });
                    self.backoff = Some(Box::pin(tokio::time::sleep(Duration::from_millis(100))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &Path) -> SocketConfig {
        SocketConfig {
            path: path.to_owned(),
            mode: "0600".into(),
            group: None,
        }
    }

    #[tokio::test]
    async fn replaces_stale_socket_and_refuses_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // A stale socket: bound, then its listener dropped.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let live = listen(&config(&path)).expect("stale socket replaced");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = listen(&config(&path)).err().expect("live socket refused");
        assert!(matches!(err, ListenerError::InUse(_)), "{err}");
        drop(live);
    }

    #[tokio::test]
    async fn refuses_a_socket_directory_others_can_write() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = listen(&config(&open.join("s.sock")))
            .err()
            .expect("a world-writable directory is refused");
        assert!(
            matches!(err, ListenerError::UnsafeDirectory { .. }),
            "{err}"
        );
        assert!(!open.join("s.sock").exists());
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(listen(&config(&open.join("s.sock"))).is_ok());
    }

    #[tokio::test]
    async fn refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-socket");
        std::fs::write(&path, b"data").unwrap();
        assert!(matches!(
            listen(&config(&path)),
            Err(ListenerError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }
}
