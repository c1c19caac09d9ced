//! A connection as every front end hands it to the server: the stream, the caller it belongs
//! to, its place under the connection bounds, and the handshake and idle timeouts.
//!
//! The timeouts live in the stream's reads so that a connection that goes quiet is closed
//! whatever protocol runs over it (HTTP/2 directly on the Unix socket, HTTP/2 in TLS).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use crate::front::admission::ConnectionSlot;
use crate::front::Caller;

/// How long connections may stay silent.
#[derive(Clone, Copy)]
pub struct Timeouts {
    /// Until the first bytes (the HTTP/2 preface).
    pub handshake: Duration,
    /// Between any two reads after that.
    pub idle: Duration,
}

/// A connection and its caller, as its front end established it. Reading from it fails
/// with TimedOut once the peer has been silent too long (before its first bytes: the
/// handshake timeout; after: the idle timeout), which makes the server close it.
pub struct CallerStream<S> {
    stream: S,
    /// Who is at the other end, established once for the connection's every request.
    caller: Arc<Caller>,
    /// Holds the connection's place under the connection limits until it closes.
    _slot: ConnectionSlot,
    /// When to look again: the handshake deadline, then a point at which the idle timeout
    /// may have passed. Moved only when it fires (not on every read: re-arming a timer per
    /// read costs more than the read).
    deadline: Pin<Box<tokio::time::Sleep>>,
    idle: Duration,
    /// When bytes last arrived; None before the first.
    last_read: Option<tokio::time::Instant>,
}

impl<S> CallerStream<S> {
    /// `stream`, closed when silent past `timeouts` (the handshake timeout counts from now).
    pub fn new(stream: S, caller: Arc<Caller>, slot: ConnectionSlot, timeouts: Timeouts) -> Self {
        CallerStream {
            stream,
            caller,
            _slot: slot,
            deadline: Box::pin(tokio::time::sleep(timeouts.handshake)),
            idle: timeouts.idle,
            last_read: None,
        }
    }
}

impl<S> Connected for CallerStream<S> {
    type ConnectInfo = Arc<Caller>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.caller.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CallerStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.last_read = Some(tokio::time::Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => loop {
                ready!(self.deadline.as_mut().poll(cx));
                match self.last_read.map(|at| at + self.idle) {
                    // Bytes came since the timer was set: look again when the idle time
                    // after the last of them is up.
                    Some(next) if next > tokio::time::Instant::now() => {
                        self.deadline.as_mut().reset(next);
                    }
                    _ => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the peer sent nothing within the handshake or idle timeout",
                        )))
                    }
                }
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CallerStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::admission::{CallerKey, ConnectionGate};
    use crate::front::peer::PeerCredentials;
    use tokio::net::UnixStream;

    #[tokio::test(start_paused = true)]
    async fn silent_connections_are_closed_and_reads_keep_them_open() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let limits = crate::config::Limits::default();
        let gate = ConnectionGate::new(&limits);
        let connect = |handshake: Duration| {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let caller = Arc::new(Caller::Local(PeerCredentials {
                uid: 0,
                gid: 0,
                pid: 1,
                groups: Vec::new(),
            }));
            let timeouts = Timeouts {
                handshake,
                idle: Duration::from_secs(60),
            };
            let slot = gate.admit(CallerKey::Uid(0)).unwrap();
            let stream = CallerStream::new(ours, caller, slot, timeouts);
            (stream, theirs)
        };
        let mut buf = [0u8; 8];

        // Nothing at all: closed when the handshake time is up.
        let (mut silent, _peer) = connect(Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let err = silent.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed().as_secs(), 5);

        // Bytes keep a connection open past the handshake time; then the idle time counts
        // from the last of them.
        let (mut talking, mut peer) = connect(Duration::from_secs(5));
        peer.write_all(b"a").await.unwrap();
        assert_eq!(talking.read(&mut buf).await.unwrap(), 1);
        tokio::time::advance(Duration::from_secs(50)).await;
        peer.write_all(b"b").await.unwrap();
        assert_eq!(talking.read(&mut buf).await.unwrap(), 1);
        let last = tokio::time::Instant::now();
        let err = talking.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(last.elapsed().as_secs(), 60);
    }
}
