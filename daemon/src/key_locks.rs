//! One lifecycle operation per key name at a time.
//!
//! Generating, importing and deleting a key each touch the device and the inventory in
//! several steps. Two of them on the same name interleaving (a delete between another
//! request's generate and its record) would lose a record while its key stays on the token.
//! Each takes the name's lock for all its steps; locks of names nobody uses are dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

#[derive(Default)]
pub struct KeyLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds a name's lock; the map entry goes once nobody holds or waits for it.
pub struct NameGuard<'a> {
    locks: &'a KeyLocks,
    name: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyLocks {
    /// Waits for the lifecycle lock of `name`.
    pub async fn lock(&self, name: &str) -> NameGuard<'_> {
        let lock = self
            .locks
            .lock()
            .expect("key locks")
            .entry(name.to_owned())
            .or_default()
            .clone();
        NameGuard {
            locks: self,
            name: name.to_owned(),
            guard: Some(lock.lock_owned().await),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().unwrap().len()
    }
}

impl Drop for NameGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.locks.locks.lock().expect("key locks");
        // Only the map holds it now: nobody waits for this name.
        if locks
            .get(&self.name)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_operation_per_name_at_a_time_and_no_locks_left_behind() {
        let locks = Arc::new(KeyLocks::default());
        let inside = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (locks, inside) = (locks.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let _guard = locks.lock("k").await;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let _other = locks.lock("other").await;
        assert_eq!(locks.len(), 1);
    }
}
