//! In-process consumers of the embedded queues: the local counterpart of the
//! SQS event sources on AWS. Failures are retried with backoff; after the last
//! attempt a job goes to the dead letters and an error is logged (the alarm).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchboard_domain::{Clock, QueueName, SystemClock};
use switchboard_pipeline::JobError;
use switchboard_sqlite::{Leased, SqliteStore};
use tokio::sync::{Notify, watch};
use tracing::{error, warn};

#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    pub max_attempts: u32,
    pub visibility: Duration,
    /// Longest sleep between looks at an empty queue.
    pub idle_poll: Duration,
}

/// Consumes `queues` in the given order of preference until `stop` turns true.
/// Listing the priority queue first means its jobs always go first.
pub async fn run<F, Fut>(
    store: SqliteStore,
    queues: Vec<QueueName>,
    settings: RunnerSettings,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    handle: F,
) where
    F: Fn(Vec<u8>) -> Fut,
    Fut: Future<Output = Result<(), JobError>>,
{
    let clock = SystemClock;
    while !*stop.borrow() {
        // Register for a wake-up before looking, so a send in between is not missed.
        let woken = wake.notified();
        match next_job(&store, &queues, clock.now_ms(), settings.visibility).await {
            Ok(Some(job)) => settle(&store, &job, handle(job.body.clone()).await, settings).await,
            Ok(None) => {
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(settings.idle_poll) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(error) => {
                warn!(error = %error, "queue unavailable");
                tokio::time::sleep(settings.idle_poll).await;
            }
        }
    }
}

async fn next_job(
    store: &SqliteStore,
    queues: &[QueueName],
    now_ms: i64,
    visibility: Duration,
) -> Result<Option<Leased>, switchboard_domain::StoreError> {
    for queue in queues {
        if let Some(job) = store
            .receive(*queue, now_ms, visibility.as_millis() as i64)
            .await?
        {
            return Ok(Some(job));
        }
    }
    Ok(None)
}

async fn settle(
    store: &SqliteStore,
    job: &Leased,
    outcome: Result<(), JobError>,
    settings: RunnerSettings,
) {
    let result = match outcome {
        Ok(()) => store.ack(job).await,
        Err(failure) if failure.is_retryable() && job.attempts < settings.max_attempts => {
            let delay_ms = backoff_ms(job.attempts);
            warn!(queue = job.queue.as_str(), job = job.id, attempt = job.attempts, delay_ms, error = %failure, "job failed, will retry");
            store
                .retry(job, SystemClock.now_ms(), delay_ms, &failure.to_string())
                .await
        }
        Err(failure) => {
            error!(
                queue = job.queue.as_str(),
                job = job.id,
                attempts = job.attempts,
                error = %failure,
                alarm = "dead_letter",
                "job moved to the dead letters"
            );
            store.dead_letter(job, &failure.to_string()).await
        }
    };
    if let Err(error) = result {
        // The lease runs out and the job is delivered again.
        warn!(queue = job.queue.as_str(), job = job.id, error = %error, "could not settle job");
    }
}

/// 1 s, 2 s, 4 s … capped at a minute.
fn backoff_ms(attempt: u32) -> i64 {
    1_000i64
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff_ms(1), 1_000);
        assert_eq!(backoff_ms(2), 2_000);
        assert_eq!(backoff_ms(5), 16_000);
        assert_eq!(backoff_ms(30), 60_000);
    }
}
