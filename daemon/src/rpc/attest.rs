//! AttestKey (the device's evidence that it generated a key) and ActivateCredential (a
//! verifier's challenge to the TPM's attestation key).

use tonic::Status;
use trustd_proto as pb;

use super::{convert, Call};
use crate::backend::lacks;
use crate::inventory::KeyOrigin;
use crate::keys::ServiceError;
use crate::policy::Operation;

pub async fn attest_key(
    call: Call<'_>,
    request: pb::AttestKeyRequest,
) -> Result<pb::AttestKeyResponse, Status> {
    let selector = convert::selector(request.key);
    let key = call
        .keys
        .resolve_for(call.caller, Operation::List, selector.as_ref())?;
    call.audit.key_name = Some(key.name.clone());
    call.audit.key_id = Some(key.key_id.clone());
    call.audit.backend = Some(key.backend.clone());
    if !(8..=32).contains(&request.nonce.len()) {
        return Err(Status::invalid_argument(format!(
            "the nonce must have 8 to 32 bytes, not {}",
            request.nonce.len()
        )));
    }
    if key.origin != KeyOrigin::Generated {
        return Err(ServiceError::NotPossible(format!(
            "key {:?} was imported: no device can attest that it was generated inside it",
            key.name
        ))
        .into());
    }
    let backend = call.keys.key_backend(&key)?;
    let attestation = backend
        .attestation()
        .ok_or_else(|| lacks(backend.as_ref(), "cannot attest its keys"))?
        .attest(&key.device, request.nonce)
        .await?;
    Ok(pb::AttestKeyResponse {
        key: Some(convert::key_info(call.keys.state(), &key)),
        attestation: Some(convert::attestation(&attestation)),
    })
}

pub async fn activate_credential(
    call: Call<'_>,
    request: pb::ActivateCredentialRequest,
) -> Result<pb::ActivateCredentialResponse, Status> {
    call.audit.key_name = Some(request.backend.clone());
    call.keys.authorize_any(
        call.caller,
        Operation::List,
        "challenge trustd's attestation keys: no policy rule grants `list`",
    )?;
    let backend = call.keys.named_backend(&request.backend)?;
    call.audit.backend = Some(backend.name().to_owned());
    let credential = backend
        .credential_activation()
        .ok_or_else(|| {
            lacks(
                backend.as_ref(),
                "has no attestation key to activate a credential with",
            )
        })?
        .activate_credential(request.credential_blob, request.encrypted_secret)
        .await?;
    Ok(pb::ActivateCredentialResponse { credential })
}
