//! Front ends: where requests come from and who sends them.
//!
//! Each front end turns a connection into a [`Caller`] that nothing the caller sends can
//! change; the policy, the audit trail and the admission bounds decide on that alone. Today
//! there is one front end, the Unix socket (`unix_socket`), whose callers are local processes
//! known by their kernel credentials (`peer`). The connection and byte bounds it applies
//! before any handler live in `admission` and `request_limits`.

pub mod admission;
mod caller;
pub mod peer;
pub mod request_limits;
pub mod unix_socket;

pub use caller::Caller;
