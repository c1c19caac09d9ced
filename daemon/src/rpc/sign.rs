//! Sign.

use tonic::Status;
use trustd_proto as pb;

use super::{convert, Call};

pub async fn sign(call: Call<'_>, request: pb::SignRequest) -> Result<pb::SignResponse, Status> {
    let request = convert::sign_request(request);
    let signature = call.keys.sign(call.caller, request, call.audit).await?;
    Ok(convert::signature(signature))
}
