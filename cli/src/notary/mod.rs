//! Talking to a notary-server, and trusting what it serves only after verification.

pub mod delegation;
pub mod draft;
pub mod pinning;
pub mod publish;
pub mod roles;
pub mod rotate;
pub mod server;
pub mod trust;
