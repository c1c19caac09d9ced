//! Who is calling, as the front end established it.
//!
//! A local caller is known by the kernel's record of its process; a remote caller by the
//! identity its verified client certificate carries. Policy rules and audit records take
//! either, so a second front end adds a variant here rather than a second code path.

use std::fmt;
use std::sync::Arc;

use tonic::{Request, Status};

use super::admission::CallerKey;
use super::peer::PeerCredentials;

/// The identity of one request's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A process on this machine, from SO_PEERCRED and SO_PEERGROUPS.
    Local(PeerCredentials),
    /// A client on another machine, from its verified certificate.
    Remote(RemoteIdentity),
}

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteIdentity {
    /// The certificate's subject CN, as `CN=...` (the form policy rules name); empty when
    /// it has none.
    pub subject: String,
    /// The certificate's DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// The certificate's URI subject alternative names (SPIFFE IDs).
    pub uris: Vec<String>,
}

impl RemoteIdentity {
    /// The name messages and audit records use: the subject CN, else the first URI or DNS
    /// name (a SPIFFE certificate often has no CN).
    pub fn name(&self) -> &str {
        if !self.subject.is_empty() {
            return &self.subject;
        }
        self.uris
            .first()
            .or(self.dns_names.first())
            .map_or("(unnamed)", String::as_str)
    }
}

impl Caller {
    /// The caller of `request`, as its connection's front end recorded it (once per
    /// connection: requests share it).
    pub fn of<T>(request: &Request<T>) -> Result<Arc<Caller>, Status> {
        request
            .extensions()
            .get::<Arc<Caller>>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("the connection carries no caller identity"))
    }

    /// Whose share of the connection and byte bounds this caller's requests take.
    pub fn key(&self) -> CallerKey {
        match self {
            Caller::Local(peer) => CallerKey::Uid(peer.uid),
            Caller::Remote(remote) => CallerKey::Client(remote.name().into()),
        }
    }

    /// The kernel credentials of a local caller.
    pub fn local(&self) -> Option<&PeerCredentials> {
        match self {
            Caller::Local(peer) => Some(peer),
            Caller::Remote(_) => None,
        }
    }
}

/// How messages name the caller: "uid 1000" or "client CN=ci-runner-7".
impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Local(peer) => write!(f, "uid {}", peer.uid),
            Caller::Remote(remote) => write!(f, "client {}", remote.name()),
        }
    }
}
