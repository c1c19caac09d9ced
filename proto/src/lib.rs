//! The trustd gRPC API shared by the daemon and its clients, and notary-signer's API that
//! trustd also serves.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("trustd.v1");
}

pub use v1::*;

/// notary-signer's API (notary 0.7 `proto/signer.proto`, package `proto`), which trustd serves
/// to notary-server.
#[allow(clippy::all, missing_docs)]
pub mod notary_signer {
    tonic::include_proto!("proto");

    /// The health service names notary-server checks before it calls each service.
    pub const HEALTH_KEY_MANAGEMENT: &str = "grpc.health.v1.Health.KeyManagement";
    /// See [`HEALTH_KEY_MANAGEMENT`].
    pub const HEALTH_SIGNER: &str = "grpc.health.v1.Health.Signer";
}

pub mod audit_chain;

/// Upper bound on any single gRPC message, in either direction.
///
/// Payloads larger than the daemon's configured limit are refused with a clear error before
/// this matters; this bound only stops a caller from making the daemon buffer arbitrary data.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// The private key in an import request is wiped wherever the message is dropped: in trustctl
/// after tonic has encoded it, and in trustd if a handler lets it go without taking the bytes.
/// (Transport buffers inside hyper/h2 are outside this crate's reach.)
impl Drop for v1::ImportKeyRequest {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pkcs8_der);
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn import_requests_still_encode_and_decode() {
        let request = super::ImportKeyRequest {
            name: "k".into(),
            backend: String::new(),
            scope: None,
            pkcs8_der: vec![1, 2, 3],
            certificate_der: Vec::new(),
        };
        let bytes = request.encode_to_vec();
        let decoded = super::ImportKeyRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.pkcs8_der, [1, 2, 3]);
    }
}
