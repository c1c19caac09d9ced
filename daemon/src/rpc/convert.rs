//! Proto messages to the key service's types and back. Malformed enum values become
//! InvalidArgument here or `None` for the key service to refuse in its own order.

use tonic::Status;
use trustd_proto as pb;

use crate::algorithm::{KeyAlgorithm, SignatureAlgorithm};
use crate::backend::{BackendKind, BackendState, BackendStatus, GenerateOptions};
use crate::inventory::{
    Attestation, DeviceHandle, KeyOrigin, KeyRecord, KeyScope, PinPolicy, TouchPolicy,
};
use crate::keys::{KeySelector, Payload, SignRequest, Signature, SignatureEncoding};
use crate::state::DaemonState;

pub fn selector(selector: Option<pb::KeySelector>) -> Option<KeySelector> {
    match selector?.selector? {
        pb::key_selector::Selector::Name(name) => Some(KeySelector::Name(name)),
        pb::key_selector::Selector::KeyId(id) => Some(KeySelector::KeyId(id)),
    }
}

pub fn scope(scope: Option<pb::KeyScope>) -> KeyScope {
    let scope = scope.unwrap_or_default();
    KeyScope {
        gun: scope.gun,
        role: scope.role,
    }
}

pub fn sign_request(request: pb::SignRequest) -> SignRequest {
    SignRequest {
        key: selector(request.key),
        algorithm: SignatureAlgorithm::from_proto(request.algorithm),
        encoding: match pb::SignatureEncoding::try_from(request.encoding) {
            Ok(pb::SignatureEncoding::Unspecified | pb::SignatureEncoding::Raw) => {
                Some(SignatureEncoding::Raw)
            }
            Ok(pb::SignatureEncoding::Der) => Some(SignatureEncoding::Der),
            Err(_) => None,
        },
        payload: request.payload.map(|payload| match payload {
            pb::sign_request::Payload::Message(m) => Payload::Message(m),
            pb::sign_request::Payload::Sha256Digest(d) => Payload::Sha256Digest(d),
            pb::sign_request::Payload::Sha384Digest(d) => Payload::Sha384Digest(d),
        }),
    }
}

pub fn signature(signature: Signature) -> pb::SignResponse {
    pb::SignResponse {
        signature: signature.bytes,
        key_id: signature.key_id,
        algorithm: signature.algorithm.to_proto() as i32,
        encoding: match signature.encoding {
            SignatureEncoding::Raw => pb::SignatureEncoding::Raw,
            SignatureEncoding::Der => pb::SignatureEncoding::Der,
        } as i32,
    }
}

pub fn key_algorithm(algorithm: i32) -> Option<KeyAlgorithm> {
    KeyAlgorithm::from_proto(algorithm)
}

/// The PIV part of a generate request, checked.
pub fn generate_options(options: Option<pb::PivOptions>) -> Result<GenerateOptions, Status> {
    let Some(options) = options else {
        return Ok(GenerateOptions::default());
    };
    let pin_policy = match pb::PinPolicy::try_from(options.pin_policy) {
        Ok(pb::PinPolicy::Unspecified) => None,
        Ok(pb::PinPolicy::Never) => Some(PinPolicy::Never),
        Ok(pb::PinPolicy::Once) => Some(PinPolicy::Once),
        Ok(pb::PinPolicy::Always) => Some(PinPolicy::Always),
        Err(_) => return Err(Status::invalid_argument("unknown PIN policy")),
    };
    let touch_policy = match pb::TouchPolicy::try_from(options.touch_policy) {
        Ok(pb::TouchPolicy::Unspecified) => None,
        Ok(pb::TouchPolicy::Never) => Some(TouchPolicy::Never),
        Ok(pb::TouchPolicy::Always) => Some(TouchPolicy::Always),
        Ok(pb::TouchPolicy::Cached) => Some(TouchPolicy::Cached),
        Err(_) => return Err(Status::invalid_argument("unknown touch policy")),
    };
    let slot = (!options.slot.is_empty()).then(|| options.slot.to_ascii_lowercase());
    Ok(GenerateOptions {
        slot,
        pin_policy,
        touch_policy,
        force: options.force,
    })
}

fn piv_slot(device: &DeviceHandle) -> Option<pb::PivSlot> {
    let DeviceHandle::Piv {
        serial,
        slot,
        pin_policy,
        touch_policy,
    } = device
    else {
        return None;
    };
    Some(pb::PivSlot {
        serial: *serial,
        slot: slot.clone(),
        pin_policy: match pin_policy {
            PinPolicy::Never => pb::PinPolicy::Never,
            PinPolicy::Once => pb::PinPolicy::Once,
            PinPolicy::Always => pb::PinPolicy::Always,
        } as i32,
        touch_policy: match touch_policy {
            TouchPolicy::Never => pb::TouchPolicy::Never,
            TouchPolicy::Always => pb::TouchPolicy::Always,
            TouchPolicy::Cached => pb::TouchPolicy::Cached,
        } as i32,
    })
}

pub fn attestation(attestation: &Attestation) -> pb::Attestation {
    match attestation {
        Attestation::Tpm(tpm) => pb::Attestation {
            evidence: Some(pb::attestation::Evidence::Tpm(pb::TpmAttestation {
                key_public_area: tpm.key_public_area.clone(),
                certify_info: tpm.certify_info.clone(),
                signature: tpm.signature.clone(),
                ak_public_area: tpm.ak_public_area.clone(),
                ek_certificate_der: tpm.ek_certificate.clone(),
            })),
        },
        Attestation::Piv(piv) => pb::Attestation {
            evidence: Some(pb::attestation::Evidence::Piv(pb::PivAttestation {
                attestation_certificate_der: piv.attestation_certificate.clone(),
                intermediate_certificate_der: piv.intermediate_certificate.clone(),
            })),
        },
    }
}

pub fn key_info(state: &DaemonState, record: &KeyRecord) -> pb::KeyInfo {
    let created = time::OffsetDateTime::parse(
        &record.created,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
    .map(|t| prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    });
    pb::KeyInfo {
        name: record.name.clone(),
        key_id: record.key_id.clone(),
        algorithm: record.algorithm.to_proto() as i32,
        backend: record.backend.clone(),
        backend_kind: state
            .backend(&record.backend)
            .map(|b| backend_kind(b.kind()))
            .unwrap_or(pb::BackendKind::Unspecified) as i32,
        public_key_der: record.public_key.clone(),
        scope: Some(pb::KeyScope {
            gun: record.scope.gun.clone(),
            role: record.scope.role.clone(),
        }),
        created,
        generated_on_device: record.origin == KeyOrigin::Generated,
        certificate_der: record.certificate.clone(),
        attestation: record.attestation.as_ref().map(attestation),
        piv: piv_slot(&record.device),
    }
}

pub fn backend_kind(kind: BackendKind) -> pb::BackendKind {
    match kind {
        BackendKind::Pkcs11 => pb::BackendKind::Pkcs11,
        BackendKind::Tpm => pb::BackendKind::Tpm,
        BackendKind::Piv => pb::BackendKind::YubikeyPiv,
    }
}

pub fn backend_status(name: &str, kind: BackendKind, status: BackendStatus) -> pb::BackendStatus {
    let queue = status.queue;
    pb::BackendStatus {
        name: name.to_owned(),
        kind: backend_kind(kind) as i32,
        state: match status.state {
            BackendState::Ready => pb::BackendState::Ready,
            BackendState::Locked => pb::BackendState::Locked,
            BackendState::Unavailable => pb::BackendState::Unavailable,
            BackendState::Misconfigured => pb::BackendState::Misconfigured,
        } as i32,
        detail: status.detail,
        device: status.device,
        algorithms: status
            .algorithms
            .iter()
            .map(|a| a.to_proto() as i32)
            .collect(),
        queued: queue.map_or(0, |(queued, _)| queued as u32),
        queue_depth: queue.map_or(0, |(_, depth)| depth as u32),
    }
}
