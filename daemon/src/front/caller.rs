//! Who is calling, as the front end established it.
//!
//! A local caller is known by the kernel's record of its process; a remote caller by the
//! identity its verified client certificate carries. Policy rules and audit records take
//! either, so a second front end adds a variant here rather than a second code path.

use std::fmt;
use std::sync::Arc;

use tonic::{Request, Status};

use super::peer::PeerCredentials;

/// The identity of one request's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A process on this machine, from SO_PEERCRED and SO_PEERGROUPS.
    Local(PeerCredentials),
    /// A client on another machine, from its verified certificate.
    #[expect(
        dead_code,
        reason = "made by the TLS front end (issue 16); policy and audit already take it"
    )]
    Remote(RemoteIdentity),
}

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteIdentity {
    /// The certificate's subject, as `CN=...` (the form policy rules name).
    pub subject: String,
    /// The certificate's DNS names and URIs (SPIFFE IDs are URIs).
    pub names: Vec<String>,
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
            Caller::Remote(remote) => write!(f, "client {}", remote.subject),
        }
    }
}
