//! UnlockBackend (a PIN handed over by an authorized caller), ProvisionPiv (a fresh card's
//! PIN, PUK and management key) and Status.

use std::sync::atomic::Ordering;

use tonic::Status;
use trustd_proto as pb;
use zeroize::Zeroizing;

use super::{convert, Call};
use crate::backend::{lacks, PivProvisioning};
use crate::policy::Operation;

pub async fn unlock_backend(
    call: Call<'_>,
    mut request: pb::UnlockBackendRequest,
) -> Result<pb::UnlockBackendResponse, Status> {
    let pin = Zeroizing::new(std::mem::take(&mut request.pin));
    call.audit.key_name = Some(request.backend.clone());
    call.keys
        .authorize(call.caller, Operation::Unlock, &request.backend)?;
    let backend = call.keys.named_backend(&request.backend)?;
    call.audit.backend = Some(backend.name().to_owned());
    backend
        .pin_entry()
        .ok_or_else(|| lacks(backend.as_ref(), "takes no PIN from callers"))?
        .unlock(pin)
        .await?;
    Ok(pb::UnlockBackendResponse {})
}

pub async fn provision_piv(
    call: Call<'_>,
    mut request: pb::ProvisionPivRequest,
) -> Result<pb::ProvisionPivResponse, Status> {
    let secret = |s: &mut String| Zeroizing::new(std::mem::take(s));
    let optional = |s: &mut String| (!s.is_empty()).then(|| Zeroizing::new(std::mem::take(s)));
    let provisioning = PivProvisioning {
        new_pin: secret(&mut request.new_pin),
        new_puk: secret(&mut request.new_puk),
        current_pin: optional(&mut request.current_pin),
        current_puk: optional(&mut request.current_puk),
        current_management_key: optional(&mut request.current_management_key),
        force: request.force,
    };
    call.audit.key_name = Some(request.backend.clone());
    call.keys
        .authorize(call.caller, Operation::Provision, &request.backend)?;
    let backend = call.keys.named_backend(&request.backend)?;
    call.audit.backend = Some(backend.name().to_owned());
    let serial = backend
        .piv_admin()
        .ok_or_else(|| lacks(backend.as_ref(), "is not a PIV card"))?
        .provision(provisioning)
        .await?;
    tracing::info!(backend = %request.backend, serial, "PIV card provisioned");
    Ok(pb::ProvisionPivResponse { serial })
}

pub async fn status(call: Call<'_>) -> Result<pb::StatusResponse, Status> {
    call.keys.authorize_any(
        call.caller,
        Operation::List,
        "read trustd's status: no policy rule grants `list`",
    )?;
    let state = call.keys.state();
    let mut backends = Vec::new();
    for backend in &state.backends {
        let status = backend.status().await;
        backends.push(convert::backend_status(
            backend.name(),
            backend.kind(),
            status,
        ));
    }
    let guards = &state.guards;
    let (open, refused) = guards.connections.counts();
    Ok(pb::StatusResponse {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        backends,
        // Not counting this Status request itself.
        requests_in_flight: state.in_flight.load(Ordering::Relaxed).saturating_sub(1),
        keys: state.inventory.len() as u32,
        protection: Some(pb::Protection {
            connections_open: open as u32,
            connections_refused: refused,
            requests_refused: guards.refused_requests.load(Ordering::Relaxed),
            buffered_bytes: guards.bytes.held() as u64,
        }),
    })
}
