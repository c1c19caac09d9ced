//! What anyone who can connect can make trustd hold: connections and request bytes.
//!
//! Anyone who can reach a listener can open connections and start requests before the policy
//! has looked at them. Without bounds, idle connections exhaust trustd's descriptors and
//! half-sent messages its memory, for every caller. The bounds here are counted per
//! [`CallerKey`] (a local uid, which the kernel tells at accept time; a remote host before its
//! certificate is known, its certificate after) and in total, so one caller's flood leaves
//! room for everyone else, and every refusal is logged at a bounded rate.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;

/// A log line that says when a limit bites without flooding the log when it bites a million
/// times: at most one line per `every`, carrying how many were left unsaid.
pub struct RateLimitedLog {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    pub const fn new(every: Duration) -> Self {
        RateLimitedLog {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Calls `log` with the number of events suppressed since the last line, or counts this
    /// one as suppressed.
    pub fn log(&self, log: impl FnOnce(u64)) {
        let mut state = self.state.lock().expect("rate-limited log lock");
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.every => state.1 += 1,
            _ => {
                let suppressed = std::mem::take(&mut state.1);
                state.0 = Some(now);
                drop(state);
                log(suppressed);
            }
        }
    }
}

/// Whose share of a bound something counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallerKey {
    /// A local process's uid.
    Uid(u32),
    /// A remote host, before its certificate is known (connections are admitted before the
    /// TLS handshake that names them).
    Host(IpAddr),
    /// A remote client, by its certificate's subject.
    Client(Arc<str>),
}

impl fmt::Display for CallerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerKey::Uid(uid) => write!(f, "uid {uid}"),
            CallerKey::Host(address) => write!(f, "host {address}"),
            CallerKey::Client(subject) => write!(f, "client {subject}"),
        }
    }
}

/// Counts open connections per caller and in total.
pub struct ConnectionGate {
    per_caller_limit: usize,
    total_limit: usize,
    open: Mutex<(usize, HashMap<CallerKey, usize>)>,
    refused: RateLimitedLog,
    refused_total: AtomicU64,
}

/// One admitted connection; its slot frees when this is dropped (the connection closed).
pub struct ConnectionSlot {
    gate: Arc<ConnectionGate>,
    key: CallerKey,
}

impl ConnectionGate {
    pub fn new(limits: &Limits) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate {
            per_caller_limit: limits.max_connections_per_uid,
            total_limit: limits.max_connections,
            open: Mutex::new((0, HashMap::new())),
            refused: RateLimitedLog::new(Duration::from_secs(10)),
            refused_total: AtomicU64::new(0),
        })
    }

    /// A slot for a new connection from `key`, or None (and a rate-limited log line) when
    /// that caller or everyone together already holds the most allowed.
    pub fn admit(self: &Arc<Self>, key: CallerKey) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().expect("connection gate lock");
        let of_caller = open.1.get(&key).copied().unwrap_or(0);
        let reason = if of_caller >= self.per_caller_limit {
            Some("limits.max_connections_per_uid")
        } else if open.0 >= self.total_limit {
            Some("limits.max_connections")
        } else {
            None
        };
        if let Some(limit) = reason {
            drop(open);
            self.refused_total.fetch_add(1, Ordering::Relaxed);
            self.refused.log(|suppressed| {
                tracing::warn!(
                    caller = %key,
                    open_by_caller = of_caller,
                    limit,
                    suppressed,
                    "refusing a connection: {limit} reached (raise it in [limits] if this is legitimate load)"
                )
            });
            return None;
        }
        open.0 += 1;
        *open.1.entry(key.clone()).or_default() += 1;
        Some(ConnectionSlot {
            gate: self.clone(),
            key,
        })
    }

    /// Connections open now, and refused since start.
    pub fn counts(&self) -> (usize, u64) {
        (
            self.open.lock().expect("connection gate lock").0,
            self.refused_total.load(Ordering::Relaxed),
        )
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().expect("connection gate lock");
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.key);
            }
        }
    }
}

/// Bytes of request messages received but not yet handed to a handler, per caller and in
/// total.
/// A request that would pass either bound is refused (ResourceExhausted) instead of buffered.
pub struct ByteBudget {
    per_caller_limit: usize,
    total_limit: usize,
    held: Mutex<(usize, HashMap<CallerKey, usize>)>,
    /// Set once a lot was held: when everything is released again, memory is given back.
    high_water: AtomicBool,
}

/// Bytes taken from a [`ByteBudget`]; given back when dropped.
pub struct HeldBytes {
    budget: Arc<ByteBudget>,
    key: CallerKey,
    bytes: usize,
}

/// Above this many bytes held at once, the allocator is asked to return free memory to the
/// system once they are all released: glibc keeps freed arenas otherwise, and RSS stays at
/// the attack's peak.
const TRIM_AFTER_BYTES: usize = 16 * 1024 * 1024;

impl ByteBudget {
    pub fn new(limits: &Limits) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            per_caller_limit: limits.max_buffered_bytes_per_uid,
            total_limit: limits.max_buffered_bytes,
            held: Mutex::new((0, HashMap::new())),
            high_water: AtomicBool::new(false),
        })
    }

    /// An empty holding for `key`, to grow as bytes arrive.
    pub fn holding(self: &Arc<Self>, key: CallerKey) -> HeldBytes {
        HeldBytes {
            budget: self.clone(),
            key,
            bytes: 0,
        }
    }

    /// Bytes held now in total.
    pub fn held(&self) -> usize {
        self.held.lock().expect("byte budget lock").0
    }
}

/// Which bound a request passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    Caller,
    Everyone,
}

impl HeldBytes {
    /// Takes `more` bytes, or refuses when the caller or everyone would hold too much.
    pub fn grow(&mut self, more: usize) -> Result<(), OverBudget> {
        let mut held = self.budget.held.lock().expect("byte budget lock");
        let of_caller = held.1.get(&self.key).copied().unwrap_or(0);
        if of_caller + more > self.budget.per_caller_limit {
            return Err(OverBudget::Caller);
        }
        if held.0 + more > self.budget.total_limit {
            return Err(OverBudget::Everyone);
        }
        held.0 += more;
        *held.1.entry(self.key.clone()).or_default() += more;
        if held.0 > TRIM_AFTER_BYTES {
            self.budget.high_water.store(true, Ordering::Relaxed);
        }
        self.bytes += more;
        Ok(())
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut held = self.budget.held.lock().expect("byte budget lock");
        held.0 -= self.bytes;
        if let Some(n) = held.1.get_mut(&self.key) {
            *n -= self.bytes;
            if *n == 0 {
                held.1.remove(&self.key);
            }
        }
        let all_released = held.0 == 0;
        drop(held);
        if all_released && self.budget.high_water.swap(false, Ordering::Relaxed) {
            give_memory_back();
        }
    }
}

/// Returns the allocator's free memory to the system, off the async runtime.
// unsafe_code allowed here: malloc_trim (FFI).
#[allow(unsafe_code)]
fn give_memory_back() {
    let trim = || {
        // SAFETY: malloc_trim only walks glibc's own heap structures under their locks; it
        // takes no pointers from us.
        unsafe {
            libc::malloc_trim(0);
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(trim)),
        Err(_) => trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 3,
            max_connections_per_uid: 2,
            max_buffered_bytes: 100,
            max_buffered_bytes_per_uid: 60,
            ..Limits::default()
        }
    }

    #[test]
    fn connections_are_bounded_per_uid_and_in_total_and_freed_on_close() {
        let gate = ConnectionGate::new(&limits());
        let host: IpAddr = "192.0.2.7".parse().unwrap();
        let a1 = gate.admit(CallerKey::Uid(1)).unwrap();
        let _a2 = gate.admit(CallerKey::Uid(1)).unwrap();
        assert!(gate.admit(CallerKey::Uid(1)).is_none(), "per-uid limit");
        let _b1 = gate.admit(CallerKey::Host(host)).unwrap();
        assert!(gate.admit(CallerKey::Uid(3)).is_none(), "total limit");
        drop(a1);
        assert!(
            gate.admit(CallerKey::Uid(3)).is_some(),
            "a closed connection frees its slot"
        );
        assert_eq!(gate.counts().1, 2);
    }

    #[test]
    fn bytes_are_bounded_per_uid_and_in_total_and_released_on_drop() {
        let budget = ByteBudget::new(&limits());
        let mut a = budget.holding(CallerKey::Uid(1));
        a.grow(50).unwrap();
        assert_eq!(a.grow(20), Err(OverBudget::Caller));
        let mut b = budget.holding(CallerKey::Client("CN=ci-runner".into()));
        b.grow(40).unwrap();
        let mut c = budget.holding(CallerKey::Uid(3));
        assert_eq!(c.grow(20), Err(OverBudget::Everyone));
        drop(a);
        c.grow(20).unwrap();
        assert_eq!(budget.held(), 60);
        drop((b, c));
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn rate_limited_log_counts_what_it_left_out() {
        let log = RateLimitedLog::new(Duration::from_secs(3600));
        let mut lines = Vec::new();
        for _ in 0..5 {
            log.log(|suppressed| lines.push(suppressed));
        }
        assert_eq!(lines, [0]);
        assert_eq!(log.state.lock().unwrap().1, 4);
    }
}
