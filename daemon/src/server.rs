//! Assembles trustd and runs it until SIGTERM: backends, inventory, policy, audit, the socket,
//! the gRPC services; SIGHUP reloads the policy and reopens the audit log; shutdown drains
//! in-flight requests, then writes the last audit checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch};
use tokio_stream::Stream;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::Connected;
use tonic::transport::Server;
use trustd_proto::signer_server::SignerServer;

use crate::audit::checkpoint::Checkpointer;
use crate::audit::AuditLog;
use crate::backend::pkcs11::Pkcs11Backend;
use crate::backend::{piv, tpm, Backend, BackendState};
use crate::config::{BackendConfig, Config, Limits};
use crate::front::request_limits::{RequestLimits, RequestLimitsLayer};
use crate::front::stream::Timeouts;
use crate::front::tls::TlsListener;
use crate::front::unix_socket::{self as listener, PeerIncoming};
use crate::inventory::Inventory;
use crate::key_locks::KeyLocks;
use crate::metrics::exporter::Exporter;
use crate::policy::Policy;
use crate::rpc::{notary_signer, SignerService};
use crate::state::{DaemonState, Guards};

/// How long in-flight requests get to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long stopping waits for the last audit checkpoint and the log's final write.
const AUDIT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs trustd with the configuration at `config_path` until SIGTERM or SIGINT, then drains
/// the requests in flight (at most 30 s) and returns.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let state = assemble(&config, config_path)?;
    raise_descriptor_limit(&config.limits);

    // Connect now so problems show in the log at startup; a backend that is not ready does not
    // stop trustd (a token may be plugged in later) but its callers get a precise error.
    for backend in &state.backends {
        let status = backend.status().await;
        match status.state {
            BackendState::Ready => {
                tracing::info!(backend = backend.name(), device = %status.device, "backend ready")
            }
            _ => {
                tracing::error!(backend = backend.name(), state = ?status.state, detail = %status.detail, "backend not ready")
            }
        }
    }

    let checkpointer =
        Checkpointer::spawn(crate::keys::KeyService::new(state.clone()), &config.audit);

    // Before the signing socket: a metrics address in use stops startup with nothing served.
    let exporter = match &config.metrics {
        Some(metrics) => Some(
            Exporter::start(metrics, state.clone())
                .await
                .with_context(|| format!("config {}", config_path.display()))?,
        ),
        None => None,
    };
    let bound = listener::listen(&config.socket)?;
    let tls = match &config.tls_listener {
        Some(tls) => Some(
            TlsListener::bind(tls)
                .await
                .with_context(|| format!("config {}", config_path.display()))?,
        ),
        None => None,
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SignerServer<SignerService>>().await;
    let signer = SignerServer::new(SignerService::new(state.clone()))
        .max_decoding_message_size(trustd_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(trustd_proto::MAX_MESSAGE_BYTES);

    let (drain_started, drain_rx) = oneshot::channel();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(wait_for_shutdown(
        state.clone(),
        config_path.to_owned(),
        drain_started,
        stop,
    ));
    if let Some(exporter) = exporter {
        tracing::info!(address = %exporter.address(), "metrics listener ready");
        tokio::spawn(exporter.serve(stopped.clone()));
    }
    let limits = &config.limits;
    let gate = state.guards.connections.clone();
    let timeouts = Timeouts {
        handshake: Duration::from_secs(limits.handshake_timeout_secs),
        idle: Duration::from_secs(limits.idle_timeout_secs),
    };
    let request_limits = RequestLimits::new(state.clone());
    let mut local_routes = RoutesBuilder::default();
    local_routes
        .add_service(health_service.clone())
        .add_service(signer.clone());
    let local = serve(
        local_routes.routes(),
        limits,
        &request_limits,
        PeerIncoming::new(bound.listener, gate.clone(), timeouts),
        stopped.clone(),
    );
    let remote = async {
        let Some(tls) = tls else { return Ok(()) };
        let address = tls.local_addr().ok();
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service).add_service(signer);
        if let Some(notary) = &config.notary_signer {
            notary_signer::add_services(&mut routes, &health, state.clone(), notary).await;
        }
        tracing::info!(address = ?address, notary_signer = config.notary_signer.is_some(), "TLS listener ready");
        serve(
            routes.routes(),
            limits,
            &request_limits,
            tls.incoming(gate, timeouts),
            stopped,
        )
        .await
    };
    let server = async { tokio::try_join!(local, remote).map(|_| ()) };

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!(socket = %config.socket.path.display(), keys = state.inventory.len(), "trustd ready");

    let drain_deadline = async {
        if drain_rx.await.is_ok() {
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    // Key lifecycle work runs on after its caller leaves (so no key is left half-made):
    // once the connections are closed, it still gets to finish.
    let drained = async {
        server.await.context("gRPC server failed")?;
        while state.in_flight.load(std::sync::atomic::Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = drained => result?,
        () = drain_deadline => tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}; exiting anyway"),
    }
    if let Some(path) = bound.created {
        let _ = std::fs::remove_file(path);
    }
    // The last checkpoint covers every record, then the writer saves the chain head; a device
    // that hangs does not keep trustd from stopping.
    let close_audit = async {
        if let Some(checkpointer) = checkpointer {
            checkpointer.finish().await;
        }
        state.audit.close().await;
    };
    if tokio::time::timeout(AUDIT_CLOSE_TIMEOUT, close_audit)
        .await
        .is_err()
    {
        tracing::warn!("the last audit checkpoint did not finish within {AUDIT_CLOSE_TIMEOUT:?}; exiting without it");
    }
    tracing::info!("trustd stopped");
    Ok(())
}

/// The daemon's state from its configuration: inventory, audit log, policy and backends
/// (not yet connected), as `run` serves it and the fuzzing harness drives it.
pub(crate) fn assemble(config: &Config, config_path: &Path) -> anyhow::Result<Arc<DaemonState>> {
    let inventory = Inventory::open(&config.state_dir)?;
    let audit = AuditLog::open(&config.audit)?;
    let policy = Policy::from_config(&config.policy)
        .with_context(|| format!("config {}", config_path.display()))?;
    if config.policy.rules.is_empty() {
        tracing::warn!("the policy has no rules: every request will be denied");
    }
    let backends: Vec<Arc<dyn Backend>> = config
        .backends
        .iter()
        .map(|b| match b {
            BackendConfig::Pkcs11(c) => Arc::new(Pkcs11Backend::new(c.clone())) as Arc<dyn Backend>,
            BackendConfig::Tpm(c) => Arc::new(tpm::backend(c.clone(), config.state_dir.clone())),
            BackendConfig::Piv(c) => Arc::new(piv::backend(c.clone())),
        })
        .collect();
    Ok(Arc::new(DaemonState {
        inventory,
        backends,
        policy: RwLock::new(Arc::new(policy)),
        audit,
        audit_checkpoint_key: config.audit.checkpoint_key.clone(),
        limits: config.limits.clone(),
        in_flight: AtomicU32::new(0),
        key_locks: KeyLocks::default(),
        guards: Guards::new(&config.limits),
    }))
}

/// Serves `routes` on `incoming` until `stopped` turns true, with the bounds every listener
/// shares: per-connection concurrency, the request timeout, keepalive, header and window
/// sizes, and the request-limits layer.
async fn serve<I, IO, IE>(
    routes: Routes,
    limits: &Limits,
    request_limits: &Arc<RequestLimits>,
    incoming: I,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error>
where
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Server::builder()
        .concurrency_limit_per_connection(limits.max_concurrent_requests_per_connection)
        .max_concurrent_streams(limits.max_concurrent_requests_per_connection as u32)
        .timeout(Duration::from_secs(limits.request_timeout_secs))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .http2_max_header_list_size(16 * 1024)
        // What a connection may send before trustd reads it: h2 flow control holds the rest
        // on the caller's side.
        .initial_stream_window_size(256 * 1024)
        .initial_connection_window_size(512 * 1024)
        .layer(RequestLimitsLayer(request_limits.clone()))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
}

/// Raises the soft descriptor limit towards the hard one so `limits.max_connections` fits,
/// and says so when it cannot: running out of descriptors stops every caller, not just the
/// one who opened too many.
fn raise_descriptor_limit(limits: &crate::config::Limits) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // Connections, plus the devices, the audit log, the inventory and the runtime.
    let wanted = limits.max_connections as u64 + 256;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < wanted {
        let raised = wanted.min(hard);
        if setrlimit(Resource::RLIMIT_NOFILE, raised, hard).is_err() || raised < wanted {
            tracing::warn!(
                soft,
                hard,
                wanted,
                "the descriptor limit is below limits.max_connections + 256: raise LimitNOFILE= or lower limits.max_connections"
            );
        }
    }
}

/// Waits for SIGTERM or SIGINT, reloading the policy on every SIGHUP meanwhile; then tells
/// the listeners to stop and starts the drain clock.
async fn wait_for_shutdown(
    state: Arc<DaemonState>,
    config_path: PathBuf,
    drain_started: oneshot::Sender<()>,
    stop: watch::Sender<bool>,
) {
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("cannot install signal handlers; trustd will only stop when killed");
            return std::future::pending().await;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                reload_policy(&state, &config_path);
                state.audit.reopen().await;
            }
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!(
        in_flight = state.in_flight.load(std::sync::atomic::Ordering::Relaxed),
        "shutting down: no new connections, draining in-flight requests"
    );
    let _ = stop.send(true);
    let _ = drain_started.send(());
}

fn reload_policy(state: &DaemonState, config_path: &Path) {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
    let loaded = Config::load(config_path)
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            Policy::from_config(&config.policy)
                .map(|p| (p, config.policy.rules.len()))
                .map_err(anyhow::Error::from)
        });
    match loaded {
        Ok((policy, rules)) => {
            *state.policy.write().expect("policy lock") = Arc::new(policy);
            tracing::info!(rules, "policy reloaded (other settings need a restart)");
        }
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "policy reload failed; keeping the previous policy")
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}
