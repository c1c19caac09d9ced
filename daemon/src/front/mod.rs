//! Front ends: where requests come from and who sends them.
//!
//! Each front end turns a connection into a [`Caller`] that nothing the caller sends can
//! change; the policy, the audit trail and the admission bounds decide on that alone. The Unix
//! socket (`unix_socket`) serves local processes known by their kernel credentials (`peer`);
//! the mutual-TLS listener (`tls`) serves remote clients known by their verified certificates
//! (`client_certificate`). Both hand the server a `stream::CallerStream`, which closes quiet
//! connections. The connection and byte bounds applied before any handler live in
//! `admission` and `request_limits`.

pub mod admission;
mod caller;
mod client_certificate;
pub mod peer;
pub mod request_limits;
pub mod stream;
pub mod tls;
pub mod unix_socket;

pub use caller::{Caller, RemoteIdentity};
