//! ListKeys, GetPublicKey, GenerateKey, ImportKey, DeleteKey.

use tonic::Status;
use trustd_proto as pb;
use zeroize::Zeroizing;

use super::{convert, Call};
use crate::keys::{KeySource, NewKeyRequest};
use crate::policy::Operation;

pub async fn list(call: Call<'_>) -> Result<pb::ListKeysResponse, Status> {
    call.keys.authorize_any(
        call.caller,
        Operation::List,
        "list keys: no policy rule grants it",
    )?;
    let state = call.keys.state();
    let policy = state.policy();
    let keys = state
        .inventory
        .list()
        .iter()
        .filter(|k| {
            policy
                .decide(call.caller, Operation::List, &k.name)
                .is_allowed()
        })
        .map(|k| convert::key_info(state, k))
        .collect();
    Ok(pb::ListKeysResponse { keys })
}

pub async fn get_public_key(
    call: Call<'_>,
    request: pb::GetPublicKeyRequest,
) -> Result<pb::GetPublicKeyResponse, Status> {
    let selector = convert::selector(request.key);
    let key = call
        .keys
        .resolve_for(call.caller, Operation::List, selector.as_ref())?;
    call.audit.backend = Some(key.backend.clone());
    Ok(pb::GetPublicKeyResponse {
        key: Some(convert::key_info(call.keys.state(), &key)),
    })
}

pub async fn generate(
    call: Call<'_>,
    request: pb::GenerateKeyRequest,
) -> Result<pb::GenerateKeyResponse, Status> {
    let new = NewKeyRequest {
        name: request.name,
        backend: request.backend,
        scope: convert::scope(request.scope),
        source: KeySource::Generate {
            algorithm: convert::key_algorithm(request.algorithm),
            options: convert::generate_options(request.piv)?,
        },
    };
    let record = call.keys.create(call.caller, new, call.audit).await?;
    Ok(pb::GenerateKeyResponse {
        key: Some(convert::key_info(call.keys.state(), &record)),
    })
}

pub async fn import(
    call: Call<'_>,
    mut request: pb::ImportKeyRequest,
) -> Result<pb::ImportKeyResponse, Status> {
    // The request zeroizes itself on drop (it carried a private key): take, not move.
    let new = NewKeyRequest {
        name: std::mem::take(&mut request.name),
        backend: std::mem::take(&mut request.backend),
        scope: convert::scope(request.scope.take()),
        source: KeySource::Import {
            pkcs8: Zeroizing::new(std::mem::take(&mut request.pkcs8_der)),
            certificate: std::mem::take(&mut request.certificate_der),
        },
    };
    let record = call.keys.create(call.caller, new, call.audit).await?;
    Ok(pb::ImportKeyResponse {
        key: Some(convert::key_info(call.keys.state(), &record)),
    })
}

pub async fn delete(
    call: Call<'_>,
    request: pb::DeleteKeyRequest,
) -> Result<pb::DeleteKeyResponse, Status> {
    let selector = convert::selector(request.key);
    let deleted = call
        .keys
        .delete(call.caller, selector.as_ref(), call.audit)
        .await?;
    Ok(pb::DeleteKeyResponse {
        key: Some(convert::key_info(call.keys.state(), &deleted)),
    })
}
