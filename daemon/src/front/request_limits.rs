//! Bounds every request before its message is read: who may send one at all, how large it may
//! be for its method, and how many bytes trustd holds for unfinished messages.
//!
//! tonic reads a whole message into memory before the handler (and so the policy) sees it.
//! Without this layer, any local user could make trustd buffer 8 MiB per stream, 64 streams
//! per connection, on as many connections as they like. Here:
//! - a caller no policy rule names may only send small messages ([`UNKNOWN_CALLER_MESSAGE`]):
//!   a larger one is refused (PermissionDenied) from its frame header, before it is read.
//!   Small ones still reach the handler, so the denial is audited with the payload's hash as
//!   every denied Sign is;
//! - each method has its own size limit (a Sign carries at most `max_payload_bytes`, ListKeys
//!   and Status almost nothing), enforced from the gRPC frame header as soon as it arrives;
//! - bytes received for messages not yet handed over are taken from a per-caller and a total
//!   budget ([`ByteBudget`]), refused with ResourceExhausted beyond it.
//!
//! Refusals are counted, audited (at the audit log's bounded rate) and logged at a bounded rate.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::Status;
use tower::{Layer, Service};

use crate::audit::AuditRecord;
use crate::front::admission::{HeldBytes, OverBudget, RateLimitedLog};
use crate::front::Caller;
use crate::state::DaemonState;

/// Largest message of methods that carry only names and options.
const SMALL_MESSAGE: usize = 16 * 1024;
/// Largest ImportKey message: a PKCS#8 key and a certificate.
const IMPORT_MESSAGE: usize = 64 * 1024;
/// Largest health check.
const HEALTH_MESSAGE: usize = 1024;
/// Largest message of a caller no policy rule names.
const UNKNOWN_CALLER_MESSAGE: usize = 64 * 1024;

static REFUSED_LOG: RateLimitedLog = RateLimitedLog::new(Duration::from_secs(10));

/// Shared by every connection's copy of the layer.
pub struct RequestLimits {
    state: Arc<DaemonState>,
}

impl RequestLimits {
    pub fn new(state: Arc<DaemonState>) -> Arc<RequestLimits> {
        Arc::new(RequestLimits { state })
    }

    /// The largest message `path` may carry.
    fn message_limit(&self, path: &str) -> usize {
        match path.rsplit('/').next().unwrap_or_default() {
            _ if path.starts_with("/grpc.health.") => HEALTH_MESSAGE,
            "Sign" => self.state.limits.max_sign_message(),
            "ImportKey" => IMPORT_MESSAGE,
            _ => SMALL_MESSAGE,
        }
    }

    /// Counts, logs and audits a request refused before its handler.
    fn refuse(&self, caller: Option<&Caller>, method: &str, status: &Status) {
        self.state
            .guards
            .refused_requests
            .fetch_add(1, Ordering::Relaxed);
        let caller_key = caller.map(|c| c.key().to_string());
        REFUSED_LOG.log(|suppressed| {
            tracing::warn!(caller = ?caller_key, method, code = ?status.code(), reason = status.message(), suppressed, "request refused before its handler")
        });
        if let Some(caller) = caller {
            let mut record = AuditRecord::new("request", caller);
            record.note_failure(status);
            record.detail = Some(format!("{method}: {}", status.message()));
            self.state.audit.record_now(record);
        }
    }
}

#[derive(Clone)]
pub struct RequestLimitsLayer(pub Arc<RequestLimits>);

impl<S> Layer<S> for RequestLimitsLayer {
    type Service = RequestLimitsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLimitsService {
            inner,
            limits: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestLimitsService<S> {
    inner: S,
    limits: Arc<RequestLimits>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for RequestLimitsService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let method = path.rsplit('/').next().unwrap_or_default().to_owned();
        let Some(caller) = request.extensions().get::<Arc<Caller>>().cloned() else {
            let status = Status::unauthenticated("the connection carries no caller identity");
            self.limits.refuse(None, &method, &status);
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let health = path.starts_with("/grpc.health.");
        let unknown = !health && !self.limits.state.policy().names_caller(&caller);
        let limit = match unknown {
            true => self.limits.message_limit(&path).min(UNKNOWN_CALLER_MESSAGE),
            false => self.limits.message_limit(&path),
        };
        let held = self.limits.state.guards.bytes.holding(caller.key());
        let limits = self.limits.clone();
        let request = request.map(|body| {
            Body::new(LimitedBody {
                inner: body,
                limit,
                unknown_caller: unknown.then(|| caller.to_string()),
                received: 0,
                held,
                on_refusal: Box::new(move |status: &Status| {
                    limits.refuse(Some(&caller), &method, status)
                }),
            })
        });
        Box::pin(self.inner.call(request))
    }
}

/// A request body that refuses more than `limit` bytes and takes what it receives from the
/// byte budget until the message is handed over (the body dropped).
struct LimitedBody {
    inner: Body,
    limit: usize,
    /// Who is calling ("uid 1000", "client CN=x"), when no policy rule names the caller: too
    /// large is then "not allowed".
    unknown_caller: Option<String>,
    received: usize,
    held: HeldBytes,
    on_refusal: Box<dyn Fn(&Status) + Send + Sync>,
}

impl LimitedBody {
    fn refuse(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        (self.on_refusal)(&status);
        Poll::Ready(Some(Err(status)))
    }

    /// The length a gRPC frame header (1 flag byte, 4 bytes big-endian length) at the
    /// start of the body declares, once 5 bytes have arrived.
    fn declared_length(chunk: &[u8]) -> Option<usize> {
        chunk
            .get(1..5)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let Some(data) = frame.data_ref() else {
            return Poll::Ready(Some(Ok(frame)));
        };
        let len = data.len();
        let declared = if self.received == 0 {
            Self::declared_length(data)
        } else {
            None
        };
        self.received += len;
        let limit = self.limit;
        if declared.is_some_and(|d| d + 5 > limit) || self.received > limit {
            let size = declared.map_or(self.received, |d| d + 5);
            let status = match &self.unknown_caller {
                Some(caller) => Status::permission_denied(format!(
                    "{caller} may not use trustd: no policy rule names this caller (ask the trustd administrator for a [[policy.rule]])"
                )),
                None => Status::resource_exhausted(format!(
                    "the request has {size} bytes or more, over trustd's limit of {limit} for this method"
                )),
            };
            return self.refuse(status);
        }
        if let Err(over) = self.held.grow(len) {
            return self.refuse(Status::resource_exhausted(match over {
                OverBudget::Caller => "trustd holds too many unfinished requests of this caller (limits.max_buffered_bytes_per_uid): finish or cancel some, then retry",
                OverBudget::Everyone => "trustd holds too many unfinished requests (limits.max_buffered_bytes): retry shortly",
            }));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
