//! Work done once per key (an authentication per repository, an upload per repository),
//! even when parallel jobs ask for it at the same moment: the others wait for the first.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Per key, the value of the first success of some work (`()` when only the doing counts).
pub struct OncePerKey<K, V = ()>(Arc<Mutex<HashMap<K, Arc<OnceCell<V>>>>>);

impl<K, V> Clone for OncePerKey<K, V> {
    fn clone(&self) -> Self {
        OncePerKey(self.0.clone())
    }
}

impl<K, V> Default for OncePerKey<K, V> {
    fn default() -> Self {
        OncePerKey(Arc::default())
    }
}

impl<K: Eq + Hash + Clone, V: Clone> OncePerKey<K, V> {
    /// Runs `work` for `key` unless it already succeeded, and gives the value of that
    /// success; a failure lets the next caller try.
    pub async fn run<E, F, Fut>(&self, key: &K, work: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = self
            .0
            .lock()
            .expect("once-per-key lock")
            .entry(key.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(work).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_callers_share_one_success_and_retry_after_a_failure() {
        let once = OncePerKey::<&str>::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let once = once.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                once.run(&"repo", || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok::<(), ()>(())
                })
                .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(once
            .run(&"other", || async { Err::<(), _>("down") })
            .await
            .is_err());
        assert!(once
            .run(&"other", || async { Ok::<(), &str>(()) })
            .await
            .is_ok());
    }
}
