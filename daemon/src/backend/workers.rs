//! A fixed set of threads that run a backend's blocking device calls.
//!
//! Device calls block for microseconds (SoftHSM) to tens of milliseconds (USB tokens), so they
//! must not run on the async runtime. Tokio's blocking pool would do, but it hands every call
//! to whichever of its threads is idle and parks that thread again afterwards: with many
//! concurrent signers that is a wakeup and a context switch per signature, and more threads
//! contending inside the PKCS#11 module than there are cores. A small fixed pool fed by one
//! queue stays busy under load (a worker that finishes a job takes the next one without
//! sleeping), so the handoff costs almost nothing when it matters.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Queue {
    jobs: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
}

/// Runs closures on dedicated threads; dropping the pool lets the threads finish the queue
/// and exit.
pub struct Workers {
    queue: Arc<Queue>,
}

impl Workers {
    pub fn new(name: &str, threads: usize) -> Workers {
        let queue = Arc::new(Queue {
            jobs: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
        });
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&queue))
                .expect("spawn device worker");
        }
        Workers { queue }
    }

    /// Runs `job` on a worker thread and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WorkerGone> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(job());
        });
        {
            let mut jobs = self.queue.jobs.lock().expect("worker queue");
            jobs.0.push_back(job);
        }
        self.queue.ready.notify_one();
        rx.await.map_err(|_| WorkerGone)
    }
}

/// The worker running the job panicked or the pool shut down.
#[derive(Debug)]
pub struct WorkerGone;

impl Drop for Workers {
    fn drop(&mut self) {
        self.queue.jobs.lock().expect("worker queue").1 = true;
        self.queue.ready.notify_all();
    }
}

fn work(queue: &Queue) {
    loop {
        let job = {
            let mut jobs = queue.jobs.lock().expect("worker queue");
            loop {
                if let Some(job) = jobs.0.pop_front() {
                    break job;
                }
                if jobs.1 {
                    return;
                }
                jobs = queue.ready.wait(jobs).expect("worker queue");
            }
        };
        // A panic in one device call must not take the worker with it: the caller sees its
        // reply channel dropped (WorkerGone) and the thread goes on serving the queue.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a device call panicked; its caller gets an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_outlives_panicking_ones() {
        let workers = Workers::new("test", 2);
        assert_eq!(workers.run(|| 40 + 2).await.unwrap(), 42);
        // More panics than threads: every thread must survive them.
        for _ in 0..5 {
            assert!(workers.run(|| panic!("device fault")).await.is_err());
        }
        let mut results = Vec::new();
        for i in 0..16 {
            results.push(workers.run(move || i).await.unwrap());
        }
        assert_eq!(results, (0..16).collect::<Vec<_>>());
    }
}
