//! Runs a batch's jobs a few at a time, each within its time limit.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinSet;
use trustctl::error::CliError;

type Job<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type OnTimeout<T> = Box<dyn FnOnce(String) -> T + Send>;
type Queued<T> = (Job<T>, OnTimeout<T>);

fn queued<T>(
    job: impl Future<Output = T> + Send + 'static,
    on_timeout: impl FnOnce(String) -> T + Send + 'static,
) -> Queued<T> {
    (Box::pin(job), Box::new(on_timeout))
}

/// At most `jobs` jobs run at once, each within `timeout` from its start. Follow-up work (a
/// repository's publish once all its tags are resolved) starts before work not yet started,
/// so results arrive while the batch runs instead of piling up at its end, and the batch's
/// last moments are not left to one slow repository.
pub struct Scheduler<T> {
    running: JoinSet<T>,
    follow_ups: VecDeque<Queued<T>>,
    waiting: VecDeque<Queued<T>>,
    jobs: usize,
    timeout: Duration,
}

impl<T: Send + 'static> Scheduler<T> {
    pub fn new(jobs: usize, timeout: Duration) -> Scheduler<T> {
        Scheduler {
            running: JoinSet::new(),
            follow_ups: VecDeque::new(),
            waiting: VecDeque::new(),
            jobs: jobs.max(1),
            timeout,
        }
    }

    /// Queues `job`; should it outlive the timeout, `on_timeout(reason)` is its result.
    pub fn push(
        &mut self,
        job: impl Future<Output = T> + Send + 'static,
        on_timeout: impl FnOnce(String) -> T + Send + 'static,
    ) {
        self.waiting.push_back(queued(job, on_timeout));
    }

    /// Queues `job` ahead of every job that has not started yet.
    pub fn push_follow_up(
        &mut self,
        job: impl Future<Output = T> + Send + 'static,
        on_timeout: impl FnOnce(String) -> T + Send + 'static,
    ) {
        self.follow_ups.push_back(queued(job, on_timeout));
    }

    /// The result of the next job to finish; None once every queued job has finished.
    pub async fn next(&mut self) -> Option<Result<T, CliError>> {
        self.start_jobs();
        let done = self.running.join_next().await?;
        Some(done.map_err(|e| CliError::Failed(format!("a job failed: {e}"))))
    }

    fn start_jobs(&mut self) {
        while self.running.len() < self.jobs {
            let Some((job, on_timeout)) = self
                .follow_ups
                .pop_front()
                .or_else(|| self.waiting.pop_front())
            else {
                break;
            };
            let timeout = self.timeout;
            self.running.spawn(async move {
                match tokio::time::timeout(timeout, job).await {
                    Ok(result) => result,
                    Err(_) => on_timeout(format!("timed out after {}s", timeout.as_secs())),
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_jobs_at_once_and_times_out_each_job_alone() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut scheduler = Scheduler::new(3, Duration::from_secs(1));
        for i in 0..10u64 {
            let (running, most) = (running.clone(), most.clone());
            scheduler.push(
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Job 4 outlives its limit; the others take 20 ms each.
                    let pause = if i == 4 { 10_000 } else { 20 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(i)
                },
                move |reason| Err((i, reason)),
            );
        }
        let mut finished = Vec::new();
        while let Some(done) = scheduler.next().await {
            finished.push(done.unwrap());
        }
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(finished.len(), 10);
        let timed_out: Vec<_> = finished.iter().filter_map(|r| r.clone().err()).collect();
        assert_eq!(timed_out, vec![(4, "timed out after 1s".to_owned())]);
    }

    #[tokio::test]
    async fn a_follow_up_starts_before_waiting_work() {
        let mut scheduler = Scheduler::new(1, Duration::from_secs(5));
        for i in 0..3 {
            scheduler.push(async move { i }, |_| -1);
        }
        let mut order = vec![scheduler.next().await.unwrap().unwrap()];
        scheduler.push_follow_up(async { 100 }, |_| -1);
        while let Some(done) = scheduler.next().await {
            order.push(done.unwrap());
        }
        assert_eq!(order, vec![0, 100, 1, 2]);
    }
}
