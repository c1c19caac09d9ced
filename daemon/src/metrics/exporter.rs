//! The scrape endpoint: `GET /metrics` over HTTP/1.1 on a TCP address or a Unix socket.
//!
//! A second listener is a second way in, so it gets the same bounds as the signing socket:
//! at most [`MAX_SCRAPERS`] connections (more are closed at once), a request head within
//! [`HEAD_TIMEOUT`], one request per connection and [`CONNECTION_TIMEOUT`] in all. A scraper
//! that connects and sends nothing holds one of those slots for a few seconds and nothing
//! else. Device state is read at most once per [`DEVICE_REFRESH`] and each device gets
//! [`DEVICE_TIMEOUT`] to answer, so scrapes cannot queue work in front of signatures, and a
//! hung device shows as down instead of hanging the scrape.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Mutex, Semaphore};

use super::*;
use crate::backend::BackendState;
use crate::config::{MetricsConfig, MetricsListen, SocketConfig};
use crate::state::DaemonState;

const MAX_SCRAPERS: usize = 16;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
const DEVICE_REFRESH: Duration = Duration::from_secs(1);
const DEVICE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {address}: the address is in use (another trustd or exporter?); choose another metrics.listen in the configuration")]
    InUse { address: String },
    #[error("cannot listen for metrics on {address}: {error}")]
    Listen {
        address: String,
        error: std::io::Error,
    },
    #[error("metrics.listen: {0}")]
    Socket(crate::front::unix_socket::ListenerError),
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(String),
}

enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// The bound listener and what renders a scrape; started by [`Exporter::serve`].
pub struct Exporter {
    bound: Bound,
    render: Arc<Render>,
}

struct Render {
    prometheus: PrometheusHandle,
    process: metrics_process::Collector,
    state: Arc<DaemonState>,
    devices_read: Mutex<Option<Instant>>,
}

impl Exporter {
    /// Binds the listener and installs the process-wide recorder. Binding comes first, so an
    /// address in use stops startup before anything is recorded.
    pub async fn start(
        config: &MetricsConfig,
        state: Arc<DaemonState>,
    ) -> Result<Exporter, MetricsError> {
        let bound = match &config.listen {
            MetricsListen::Tcp(address) => {
                let listener = TcpListener::bind(address).await.map_err(|error| {
                    if error.kind() == std::io::ErrorKind::AddrInUse {
                        MetricsError::InUse {
                            address: address.to_string(),
                        }
                    } else {
                        MetricsError::Listen {
                            address: address.to_string(),
                            error,
                        }
                    }
                })?;
                Bound::Tcp(listener)
            }
            MetricsListen::Unix(path) => {
                let socket = SocketConfig {
                    path: path.clone(),
                    mode: "0660".into(),
                    group: None,
                };
                let listener =
                    crate::front::unix_socket::bind(&socket).map_err(MetricsError::Socket)?;
                Bound::Unix(listener.listener, path.clone())
            }
        };
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(SIGN_SECONDS.into()),
                SIGN_BUCKETS,
            )
            .map_err(|e| MetricsError::Recorder(e.to_string()))?
            .build_recorder();
        let prometheus = recorder.handle();
        ::metrics::set_global_recorder(recorder)
            .map_err(|e| MetricsError::Recorder(e.to_string()))?;
        ENABLED.store(true, Ordering::Relaxed);
        describe();
        let process = metrics_process::Collector::default();
        process.describe();
        ::metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Ok(Exporter {
            bound,
            render: Arc::new(Render {
                prometheus,
                process,
                state,
                devices_read: Mutex::new(None),
            }),
        })
    }

    /// Where scrapers connect, for the log.
    pub fn address(&self) -> String {
        match &self.bound {
            Bound::Tcp(listener) => listener
                .local_addr()
                .map(|a| format!("http://{a}/metrics"))
                .unwrap_or_default(),
            Bound::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }

    /// Serves scrapes until `stop` turns true; removes its socket file then.
    pub async fn serve(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(MAX_SCRAPERS));
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                accepted = accept(&self.bound) => accepted,
            };
            let connection = match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::warn!(%error, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Over the bound: closed unanswered; a scraper retries on its next interval.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let render = self.render.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |request| {
                    let render = render.clone();
                    async move { Ok::<_, Infallible>(render.answer(request).await) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .keep_alive(false);
                let serving = http.serve_connection(connection, service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, serving).await;
            });
        }
        if let Bound::Unix(_, path) = &self.bound {
            let _ = std::fs::remove_file(path);
        }
    }
}

type Connection = TokioIo<Box<dyn Io>>;
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

async fn accept(bound: &Bound) -> std::io::Result<Connection> {
    Ok(match bound {
        Bound::Tcp(listener) => TokioIo::new(Box::new(listener.accept().await?.0)),
        Bound::Unix(listener, _) => TokioIo::new(Box::new(listener.accept().await?.0)),
    })
}

impl Render {
    async fn answer(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, text: String| {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            *response.status_mut() = status;
            response
        };
        if request.uri().path() != "/metrics" {
            return reply(
                StatusCode::NOT_FOUND,
                "trustd serves /metrics only\n".into(),
            );
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n".into());
        }
        self.refresh().await;
        let mut response = reply(StatusCode::OK, self.prometheus.render());
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }

    /// Sets the gauges that describe the present: process, requests, audit sink, devices.
    async fn refresh(&self) {
        self.process.collect();
        self.prometheus.run_upkeep();
        let state = &self.state;
        ::metrics::gauge!(IN_FLIGHT).set(f64::from(state.in_flight.load(Ordering::Relaxed)));
        let (open, refused) = state.guards.connections.counts();
        ::metrics::gauge!(CONNECTIONS).set(open as f64);
        ::metrics::counter!(CONNECTIONS_REFUSED).absolute(refused);
        ::metrics::counter!(REQUESTS_REFUSED)
            .absolute(state.guards.refused_requests.load(Ordering::Relaxed));
        ::metrics::gauge!(KEYS).set(state.inventory.len() as f64);
        let healthy = state.audit.check_healthy().is_ok();
        ::metrics::gauge!(AUDIT_HEALTHY).set(if healthy { 1.0 } else { 0.0 });

        let mut read = self.devices_read.lock().await;
        if read.is_some_and(|at| at.elapsed() < DEVICE_REFRESH) {
            return;
        }
        let mut asks = tokio::task::JoinSet::new();
        for backend in state.backends.clone() {
            asks.spawn(async move {
                let name = backend.name().to_owned();
                (
                    name,
                    tokio::time::timeout(DEVICE_TIMEOUT, backend.status()).await,
                )
            });
        }
        while let Some(Ok((name, status))) = asks.join_next().await {
            let (up, state_name, queue) = match status {
                Ok(status) => (
                    status.state == BackendState::Ready,
                    state_label(status.state),
                    status.queue,
                ),
                Err(_) => (false, "unresponsive", None),
            };
            ::metrics::gauge!(BACKEND_UP, "backend" => name.clone()).set(if up {
                1.0
            } else {
                0.0
            });
            for candidate in [
                "ready",
                "locked",
                "unavailable",
                "misconfigured",
                "unresponsive",
            ] {
                ::metrics::gauge!(BACKEND_STATE, "backend" => name.clone(), "state" => candidate)
                    .set(if candidate == state_name { 1.0 } else { 0.0 });
            }
            if let Some((waiting, capacity)) = queue {
                ::metrics::gauge!(QUEUE_DEPTH, "backend" => name.clone()).set(waiting as f64);
                ::metrics::gauge!(QUEUE_CAPACITY, "backend" => name).set(capacity as f64);
            }
        }
        *read = Some(Instant::now());
    }
}

fn state_label(state: BackendState) -> &'static str {
    match state {
        BackendState::Ready => "ready",
        BackendState::Locked => "locked",
        BackendState::Unavailable => "unavailable",
        BackendState::Misconfigured => "misconfigured",
    }
}
