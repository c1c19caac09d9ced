//! Talking to a notary-server, and trusting what it serves only after verification.

pub mod draft;
pub mod publish;
pub mod roles;
pub mod rotate;
