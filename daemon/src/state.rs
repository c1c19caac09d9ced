//! What every request shares: the inventory, the backends, the policy, the audit log, the
//! limits, and the count of requests in flight that shutdown waits for.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::audit::AuditLog;
use crate::backend::Backend;
use crate::config::Limits;
use crate::front::admission::{ByteBudget, ConnectionGate};
use crate::inventory::Inventory;
use crate::key_locks::KeyLocks;
use crate::policy::Policy;

/// Everything a request handler needs, shared across connections.
pub struct DaemonState {
    pub inventory: Inventory,
    pub backends: Vec<Arc<dyn Backend>>,
    pub policy: RwLock<Arc<Policy>>,
    pub audit: AuditLog,
    /// The key that signs audit checkpoints, which no caller may sign with.
    pub audit_checkpoint_key: Option<String>,
    pub limits: Limits,
    pub in_flight: AtomicU32,
    /// Serializes generate, import and delete per key name.
    pub key_locks: KeyLocks,
    /// The bounds on what callers make trustd hold, and what they refused.
    pub guards: Guards,
}

/// Connection and buffered-byte bounds (see `front::admission`), shared by the listener, the
/// request limits layer and Status.
pub struct Guards {
    pub connections: Arc<ConnectionGate>,
    pub bytes: Arc<ByteBudget>,
    pub refused_requests: AtomicU64,
    /// When the last scan of a shared token for another trustd's keys ran: one at a time, and
    /// not more often than `keys::notary` allows, however many unknown key IDs are asked for.
    pub key_scan: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl Guards {
    pub fn new(limits: &Limits) -> Guards {
        Guards {
            connections: ConnectionGate::new(limits),
            bytes: ByteBudget::new(limits),
            refused_requests: Default::default(),
            key_scan: Default::default(),
        }
    }
}

impl DaemonState {
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("policy lock").clone()
    }

    /// The configured backend called `name`.
    pub fn backend(&self, name: &str) -> Option<&Arc<dyn Backend>> {
        self.backends.iter().find(|b| b.name() == name)
    }
}

/// Counts a request as in flight until dropped; owned, so work that outlives its caller (a
/// key being generated for a caller who left) still counts, and shutdown waits for it.
pub struct InFlight(Arc<DaemonState>);

impl InFlight {
    pub fn new(state: &Arc<DaemonState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
