//! trustd's own gRPC API (and, in `notary_signer`, notary-signer's): one path every call
//! takes, and thin handlers.
//!
//! [`SignerService::handle`] is that path: it names the caller (from the front end's record of
//! the connection), counts the call in flight until its work ends (shutdown waits for it),
//! runs the handler, and writes the audit record before any answer leaves (a signature is only
//! handed out once its record is queued). Which calls are audited, and which run to their end
//! when the caller goes away, is said once per RPC in [`Rpc`]. Handlers (`keys`, `sign`,
//! `attest`, `admin`) convert with `convert` and call the key service; errors become gRPC
//! codes in `status`.

mod admin;
mod attest;
mod convert;
mod keys;
pub mod notary_signer;
mod sign;
mod status;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tonic::{Request, Response, Status};
use trustd_proto as pb;

use crate::audit::AuditRecord;
use crate::front::Caller;
use crate::keys::KeyService;
use crate::state::{DaemonState, InFlight};

/// Each RPC of the Signer service, with how the common path treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    ListKeys,
    GetPublicKey,
    GenerateKey,
    ImportKey,
    DeleteKey,
    Sign,
    AttestKey,
    ActivateCredential,
    UnlockBackend,
    ProvisionPiv,
    Status,
    /// notary-signer's KeyManagement.CreateKey.
    NotaryCreateKey,
    /// notary-signer's KeyManagement.GetKeyInfo.
    NotaryGetKeyInfo,
    /// notary-signer's KeyManagement.DeleteKey.
    NotaryDeleteKey,
    /// notary-signer's Signer.Sign.
    NotarySign,
}

impl Rpc {
    #[cfg(test)]
    pub const ALL: [Rpc; 11] = [
        Rpc::ListKeys,
        Rpc::GetPublicKey,
        Rpc::GenerateKey,
        Rpc::ImportKey,
        Rpc::DeleteKey,
        Rpc::Sign,
        Rpc::AttestKey,
        Rpc::ActivateCredential,
        Rpc::UnlockBackend,
        Rpc::ProvisionPiv,
        Rpc::Status,
    ];

    #[cfg(test)]
    pub const NOTARY_SIGNER: [Rpc; 4] = [
        Rpc::NotaryCreateKey,
        Rpc::NotaryGetKeyInfo,
        Rpc::NotaryDeleteKey,
        Rpc::NotarySign,
    ];

    /// The `event` of its audit records, or `None` for the calls not audited when allowed:
    /// ListKeys, GetPublicKey, Status and GetKeyInfo only read what the caller may list
    /// anyway, change nothing and use no key, and monitoring polls them; recording each would
    /// bury the records that matter (and let any permitted caller grow the log at will).
    /// Their denials are recorded all the same, under the method's name.
    pub fn audit_event(self) -> Option<&'static str> {
        match self {
            Rpc::ListKeys | Rpc::GetPublicKey | Rpc::Status | Rpc::NotaryGetKeyInfo => None,
            Rpc::GenerateKey | Rpc::NotaryCreateKey => Some("generate"),
            Rpc::ImportKey => Some("import"),
            Rpc::DeleteKey | Rpc::NotaryDeleteKey => Some("delete"),
            Rpc::Sign | Rpc::NotarySign => Some("sign"),
            Rpc::AttestKey => Some("attest"),
            Rpc::ActivateCredential => Some("activate_credential"),
            Rpc::UnlockBackend => Some("unlock"),
            Rpc::ProvisionPiv => Some("provision"),
        }
    }

    /// Key lifecycle calls run to their end even when the caller goes away (deadline,
    /// disconnect): dropping a device operation halfway would leave a key on the device that
    /// the inventory does not know, unaudited.
    pub fn runs_to_completion(self) -> bool {
        matches!(
            self,
            Rpc::GenerateKey
                | Rpc::ImportKey
                | Rpc::DeleteKey
                | Rpc::NotaryCreateKey
                | Rpc::NotaryDeleteKey
        )
    }

    /// Which API the call came in on, as metrics label it.
    pub fn api(self) -> &'static str {
        match self {
            Rpc::NotaryCreateKey
            | Rpc::NotaryGetKeyInfo
            | Rpc::NotaryDeleteKey
            | Rpc::NotarySign => "notary-signer",
            _ => "trustd",
        }
    }

    /// The gRPC method name.
    pub fn method(self) -> &'static str {
        match self {
            Rpc::ListKeys => "ListKeys",
            Rpc::GetPublicKey => "GetPublicKey",
            Rpc::GenerateKey => "GenerateKey",
            Rpc::ImportKey => "ImportKey",
            Rpc::DeleteKey => "DeleteKey",
            Rpc::Sign => "Sign",
            Rpc::AttestKey => "AttestKey",
            Rpc::ActivateCredential => "ActivateCredential",
            Rpc::UnlockBackend => "UnlockBackend",
            Rpc::ProvisionPiv => "ProvisionPiv",
            Rpc::Status => "Status",
            Rpc::NotaryCreateKey => "CreateKey",
            Rpc::NotaryGetKeyInfo => "GetKeyInfo",
            Rpc::NotaryDeleteKey => "DeleteKey",
            Rpc::NotarySign => "Sign",
        }
    }
}

/// What a handler gets: the key service, the caller, and the audit record to fill in.
pub struct Call<'a> {
    pub keys: &'a KeyService,
    pub caller: &'a Caller,
    pub audit: &'a mut AuditRecord,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Clone)]
pub struct SignerService {
    keys: KeyService,
}

impl SignerService {
    pub fn new(state: Arc<DaemonState>) -> Self {
        SignerService {
            keys: KeyService::new(state),
        }
    }
}

/// The path every RPC of either API takes: caller, in-flight count, handler, audit.
async fn handle<Req, Resp, H>(
    keys: &KeyService,
    rpc: Rpc,
    request: Request<Req>,
    handler: H,
) -> Result<Response<Resp>, Status>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    H: for<'a> FnOnce(Call<'a>, Req) -> BoxFuture<'a, Result<Resp, Status>> + Send + 'static,
{
    let in_flight = InFlight::new(keys.state());
    let caller = Caller::of(&request)?;
    let keys = keys.clone();
    let request = request.into_inner();
    let work = async move {
        let _in_flight = in_flight;
        let mut audit = AuditRecord::new(rpc.audit_event().unwrap_or(rpc.method()), &caller);
        let call = Call {
            keys: &keys,
            caller: &caller,
            audit: &mut audit,
        };
        let result = handler(call, request).await;
        // Reads are left out of the trail, but not their denials: a caller probing for keys
        // it may not use is what the trail is for (denials are rate-limited per caller).
        let denied = matches!(&result, Err(s) if s.code() == tonic::Code::PermissionDenied);
        let (outcome, code) = match &result {
            Ok(_) => ("allowed", tonic::Code::Ok),
            Err(status) if denied => ("denied", status.code()),
            Err(status) => ("failed", status.code()),
        };
        crate::metrics::request_done(
            rpc.api(),
            rpc.method(),
            audit.backend.as_deref(),
            outcome,
            code,
        );
        if rpc.audit_event().is_some() || denied {
            if let Err(status) = &result {
                audit.note_failure(status);
            }
            // A call whose record cannot be queued fails (Unavailable) whatever it did.
            keys.state()
                .audit
                .record(audit)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
        }
        result
    };
    let result = if rpc.runs_to_completion() {
        tokio::spawn(work)
            .await
            .map_err(|e| Status::internal(format!("key operation failed: {e}")))?
    } else {
        work.await
    };
    result.map(Response::new)
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::signer_server::Signer for SignerService {
    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Answer<pb::ListKeysResponse> {
        handle(&self.keys, Rpc::ListKeys, request, |call, _| {
            Box::pin(keys::list(call))
        })
        .await
    }

    async fn generate_key(
        &self,
        request: Request<pb::GenerateKeyRequest>,
    ) -> Answer<pb::GenerateKeyResponse> {
        handle(&self.keys, Rpc::GenerateKey, request, |call, request| {
            Box::pin(keys::generate(call, request))
        })
        .await
    }

    async fn import_key(
        &self,
        request: Request<pb::ImportKeyRequest>,
    ) -> Answer<pb::ImportKeyResponse> {
        handle(&self.keys, Rpc::ImportKey, request, |call, request| {
            Box::pin(keys::import(call, request))
        })
        .await
    }

    async fn get_public_key(
        &self,
        request: Request<pb::GetPublicKeyRequest>,
    ) -> Answer<pb::GetPublicKeyResponse> {
        handle(&self.keys, Rpc::GetPublicKey, request, |call, request| {
            Box::pin(keys::get_public_key(call, request))
        })
        .await
    }

    async fn delete_key(
        &self,
        request: Request<pb::DeleteKeyRequest>,
    ) -> Answer<pb::DeleteKeyResponse> {
        handle(&self.keys, Rpc::DeleteKey, request, |call, request| {
            Box::pin(keys::delete(call, request))
        })
        .await
    }

    async fn sign(&self, request: Request<pb::SignRequest>) -> Answer<pb::SignResponse> {
        handle(&self.keys, Rpc::Sign, request, |call, request| {
            Box::pin(sign::sign(call, request))
        })
        .await
    }

    async fn attest_key(
        &self,
        request: Request<pb::AttestKeyRequest>,
    ) -> Answer<pb::AttestKeyResponse> {
        handle(&self.keys, Rpc::AttestKey, request, |call, request| {
            Box::pin(attest::attest_key(call, request))
        })
        .await
    }

    async fn activate_credential(
        &self,
        request: Request<pb::ActivateCredentialRequest>,
    ) -> Answer<pb::ActivateCredentialResponse> {
        handle(
            &self.keys,
            Rpc::ActivateCredential,
            request,
            |call, request| Box::pin(attest::activate_credential(call, request)),
        )
        .await
    }

    async fn unlock_backend(
        &self,
        request: Request<pb::UnlockBackendRequest>,
    ) -> Answer<pb::UnlockBackendResponse> {
        handle(&self.keys, Rpc::UnlockBackend, request, |call, request| {
            Box::pin(admin::unlock_backend(call, request))
        })
        .await
    }

    async fn provision_piv(
        &self,
        request: Request<pb::ProvisionPivRequest>,
    ) -> Answer<pb::ProvisionPivResponse> {
        handle(&self.keys, Rpc::ProvisionPiv, request, |call, request| {
            Box::pin(admin::provision_piv(call, request))
        })
        .await
    }

    async fn status(&self, request: Request<pb::StatusRequest>) -> Answer<pb::StatusResponse> {
        handle(&self.keys, Rpc::Status, request, |call, _| {
            Box::pin(admin::status(call))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::Rpc;

    fn declared_methods(proto: &str) -> Vec<&str> {
        let mut declared: Vec<&str> = proto
            .lines()
            .filter_map(|line| line.trim().strip_prefix("rpc "))
            .map(|rest| rest.split('(').next().unwrap().trim())
            .collect();
        declared.sort_unstable();
        declared
    }

    fn methods(rpcs: &[Rpc]) -> Vec<&'static str> {
        let mut known: Vec<&str> = rpcs.iter().map(|rpc| rpc.method()).collect();
        known.sort_unstable();
        known
    }

    /// A method added to either proto must be added to [`Rpc`], and so given an audit
    /// decision.
    #[test]
    fn every_method_of_the_services_takes_the_common_path() {
        let trustd = include_str!("../../../proto/proto/trustd/v1/trustd.proto");
        assert_eq!(declared_methods(trustd), methods(&Rpc::ALL));
        let notary = include_str!("../../../proto/proto/notary/signer.proto");
        assert_eq!(declared_methods(notary), methods(&Rpc::NOTARY_SIGNER));
    }

    #[test]
    fn only_reads_are_left_out_of_the_audit_trail() {
        let unaudited: Vec<Rpc> = Rpc::ALL
            .into_iter()
            .chain(Rpc::NOTARY_SIGNER)
            .filter(|rpc| rpc.audit_event().is_none())
            .collect();
        assert_eq!(
            unaudited,
            [
                Rpc::ListKeys,
                Rpc::GetPublicKey,
                Rpc::Status,
                Rpc::NotaryGetKeyInfo
            ]
        );
    }
}
