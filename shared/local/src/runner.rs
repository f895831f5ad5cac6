//! In-process consumers of the embedded queues: the local counterpart of the
//! SQS event sources on AWS, with the same rules (`switchboard_domain::jobs`).
//!
//! * One delivery owns its job for the visibility timeout; it is abandoned
//!   when that runs out, and the claims it took run out at the same moment,
//!   so the next delivery takes over at once.
//! * Transient failures are retried with backoff for as long as the retry
//!   policy's patience (about an hour and a half by default); then the job
//!   is dead-lettered and an error is logged with `alarm="dead_letter"`.
//! * Permanent failures are dead-lettered at once.
//! * Every `redrive_check` a dead letter of each cause is tried once more;
//!   when it succeeds, the others of its cause are put back in line.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchboard_app::local::Local;
use switchboard_domain::{
    Clock, JobFailure, JobLease, QueueName, RetryPolicy, SystemClock, error_chain,
};
use switchboard_pipeline::JobError;
use switchboard_sqlite::{Failure, Lazily, Leased, SqliteStore, committed_lazily};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{error, info, warn};

#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    pub retry: RetryPolicy,
    pub visibility: Duration,
    /// Longest sleep between looks at an empty queue.
    pub idle_poll: Duration,
    /// Jobs under way at once in one consumer.
    pub in_flight: usize,
}

/// Starts the configured consumers, the dead-letter redriver and the purge of
/// expired records; they run until `stop` turns true.
pub async fn spawn_workers(
    local: &Arc<Local>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let workers = &local.app.config.workers;
    let settings = RunnerSettings {
        retry: workers.retry_policy(),
        visibility: workers.visibility(),
        idle_poll: Duration::from_millis(500),
        in_flight: 1,
    };
    let mut handles = Vec::new();
    if workers.conversation {
        let faq = Arc::new(local.faq().await?);
        info!(
            entries = faq.current().knowledge_base().len(),
            "knowledge base loaded"
        );
        if local.app.config.knowledge_base.is_none() {
            // A configured file wins over imports; otherwise `kb import` is
            // picked up within seconds.
            handles.push(tokio::spawn(crate::reload::watch_imports(
                local.store.clone(),
                faq.clone(),
                stop.clone(),
            )));
        }
        let worker = Arc::new(local.app.worker_answering_from(faq));
        // Reassurance and service-level timers: delayed jobs, one consumer.
        {
            let worker = worker.clone();
            handles.push(tokio::spawn(run(
                local.store.clone(),
                vec![QueueName::Timers],
                settings,
                stop.clone(),
                move |body, lease| {
                    let worker = worker.clone();
                    // Everything a timer does is queued or stored: see below.
                    committed_lazily(Lazily::Everything, async move {
                        worker.handle_timer(&body, &lease).await.map(|_| ())
                    })
                },
            )));
        }
        {
            let worker = worker.clone();
            handles.push(tokio::spawn(run(
                local.store.clone(),
                vec![QueueName::Inbound],
                RunnerSettings {
                    in_flight: workers.concurrency,
                    ..settings
                },
                stop.clone(),
                move |body, lease| {
                    let worker = worker.clone();
                    // The worker only stores and queues (the reply goes out
                    // through the outbound sender, whose claim is durable and
                    // so fsyncs all this too): its writes need no fsync of
                    // their own. A power cut that loses them loses the job's
                    // acknowledgement with them, and the job is done again.
                    committed_lazily(Lazily::Everything, async move {
                        worker.handle(&body, &lease).await.map(|_| ())
                    })
                },
            )));
        }
    }
    if workers.notifier {
        // Every notifier looks at the priority queue first, so VIP tickets
        // always go before the others, however many are waiting.
        {
            let notifier = local.app.notifier.clone();
            handles.push(tokio::spawn(run(
                local.store.clone(),
                vec![QueueName::EscalationPriority, QueueName::EscalationStandard],
                RunnerSettings {
                    in_flight: workers.notifier_concurrency,
                    ..settings
                },
                stop.clone(),
                move |body, lease| {
                    let notifier = notifier.clone();
                    // Durable throughout: an interrupted notification is
                    // sent again, so its completion must not be lost.
                    async move { notifier.handle(&body, &lease).await.map(|_| ()) }
                },
            )));
        }
    }
    if workers.outbound {
        {
            let sender = local.app.outbound.clone();
            handles.push(tokio::spawn(run(
                local.store.clone(),
                vec![QueueName::Outbound],
                RunnerSettings {
                    in_flight: workers.outbound_concurrency,
                    ..settings
                },
                stop.clone(),
                move |body, lease| {
                    let sender = sender.clone();
                    // The claim before each send is fsynced; the delivery
                    // recorded after it may be lost in a power cut, and the
                    // reply is then seen as uncertain: never sent twice.
                    committed_lazily(Lazily::ExceptClaims, async move {
                        sender.handle(&body, &lease).await.map(|_| ())
                    })
                },
            )));
        }
    }
    if workers.conversation || workers.notifier || workers.outbound {
        handles.push(tokio::spawn(redrive_when_cleared(
            local.store.clone(),
            Duration::from_secs(workers.redrive_check_secs.max(1)),
            local.wake.clone(),
            stop.clone(),
        )));
    }
    handles.push(tokio::spawn(purge(
        local.store.clone(),
        local.app.config.retention.clone(),
        stop,
    )));
    Ok(handles)
}

/// Consumes `queues` in the given order of preference until `stop` turns
/// true, with up to `settings.in_flight` jobs under way at once (the queue
/// hands out one job of a conversation at a time, so each stays in order).
/// Listing the priority queue first means its jobs always go first. One
/// loop looks for jobs and hands them to tasks of their own: an item made
/// deliverable on one of `queues` wakes one look of this consumer (not one
/// per job slot, nor the consumers of other queues), and one look leases as
/// many jobs as there are free slots (one store call, not one per job).
pub async fn run<F, Fut>(
    store: SqliteStore,
    queues: Vec<QueueName>,
    settings: RunnerSettings,
    mut stop: watch::Receiver<bool>,
    handle: F,
) where
    F: Fn(Vec<u8>, JobLease) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    let clock = SystemClock;
    let handle = Arc::new(handle);
    let slots = Arc::new(Semaphore::new(settings.in_flight.max(1)));
    // Woken for items queued on these queues (or freed by a settled job of
    // their conversation), not for every queue's.
    let mut arrivals = store.arrivals();
    let mut running = JoinSet::new();
    while !*stop.borrow() {
        while running.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            stopping = stop.changed() => match stopping {
                Ok(()) => continue,
                Err(_) => break,
            },
        };
        let mut free = vec![slot];
        while let Ok(slot) = slots.clone().try_acquire_owned() {
            free.push(slot);
        }
        // Noted before looking, so an item announced in between is not missed.
        arrivals.mark();
        match next_jobs(
            &store,
            &queues,
            clock.now_ms(),
            settings.visibility,
            free.len(),
        )
        .await
        {
            Ok(jobs) if !jobs.is_empty() => {
                for (job, slot) in jobs.into_iter().zip(free) {
                    let (store, handle) = (store.clone(), handle.clone());
                    running.spawn(async move {
                        let _slot = slot;
                        let now_ms = clock.now_ms();
                        let lease = JobLease {
                            attempt: job.attempts,
                            started_at_ms: now_ms,
                            until_ms: job.lease_until_ms,
                        };
                        let time_left = Duration::from_millis(lease.remaining_ms(now_ms) as u64);
                        // At the end of the lease the job may go to another consumer:
                        // this attempt must not go on beside it.
                        let outcome =
                            tokio::time::timeout(time_left, handle(job.body.clone(), lease))
                                .await
                                .unwrap_or_else(|_| {
                                    Err(JobError::Retryable(
                                        "the attempt did not finish within its lease".into(),
                                    ))
                                });
                        settle(&store, &job, outcome, settings).await;
                    });
                }
            }
            Ok(_) => {
                drop(free);
                tokio::select! {
                    _ = arrivals.wait(&queues) => {}
                    _ = tokio::time::sleep(settings.idle_poll) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(error) => {
                drop(free);
                warn!(error = %error_chain(&error), "queue unavailable");
                tokio::time::sleep(settings.idle_poll).await;
            }
        }
    }
    // Jobs under way finish (or run out of their lease) before the consumer stops.
    while running.join_next().await.is_some() {}
}

/// Up to `most` jobs, from the first queue that has any and then the next.
async fn next_jobs(
    store: &SqliteStore,
    queues: &[QueueName],
    now_ms: i64,
    visibility: Duration,
    most: usize,
) -> Result<Vec<Leased>, switchboard_domain::StoreError> {
    let mut jobs = Vec::new();
    for queue in queues {
        let wanted = most - jobs.len();
        if wanted == 0 {
            break;
        }
        jobs.extend(
            store
                .receive_many(*queue, now_ms, visibility.as_millis() as i64, wanted)
                .await?,
        );
    }
    Ok(jobs)
}

async fn settle(
    store: &SqliteStore,
    job: &Leased,
    outcome: Result<(), JobError>,
    settings: RunnerSettings,
) {
    let queue = job.queue.as_str();
    let now_ms = SystemClock.now_ms();
    let result = match outcome {
        Ok(()) => match store.ack(job, now_ms).await {
            Ok(redriven) => {
                if job.probe {
                    info!(
                        queue,
                        job = job.id,
                        redriven,
                        "dead letter succeeded on trial: its cause has cleared, the others of its cause are back in line"
                    );
                }
                Ok(())
            }
            Err(error) => Err(error),
        },
        Err(failure) => {
            let failed = Failure {
                error: failure.to_string(),
                cause: failure.cause_key(),
            };
            if failure.is_retryable() && !job.probe && settings.retry.retries_after(job.attempts) {
                let delay_ms = settings.retry.delay_ms(job.attempts, &failure);
                warn!(queue, job = job.id, attempt = job.attempts, delay_ms, cause = %failed.cause, error = %failure, "job failed, will retry");
                store.retry(job, now_ms, delay_ms, &failed).await
            } else {
                let permanent = failure.is_permanent();
                if job.probe && !permanent {
                    info!(queue, job = job.id, cause = %failed.cause, "dead letter failed its trial: its cause has not cleared");
                } else {
                    error!(
                        queue,
                        job = job.id,
                        attempts = job.attempts,
                        permanent,
                        cause = %failed.cause,
                        error = %failure,
                        alarm = "dead_letter",
                        "job moved to the dead letters"
                    );
                    switchboard_domain::telemetry::dead_lettered(queue);
                }
                store.dead_letter(job, &failed, permanent, now_ms).await
            }
        }
    };
    if let Err(error) = result {
        // The lease runs out and the job is delivered again.
        warn!(queue, job = job.id, error = %error_chain(&error), "could not settle job");
    }
}

/// Every `interval`, puts one dead letter of each cause on trial (see
/// [`SqliteStore::probe_dead`]).
pub async fn redrive_when_cleared(
    store: SqliteStore,
    interval: Duration,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        for queue in QueueName::ALL {
            match store.probe_dead(queue, SystemClock.now_ms()).await {
                Ok(0) => {}
                Ok(trials) => {
                    info!(queue = queue.as_str(), trials, "dead letters on trial");
                    wake.notify_waiters();
                }
                Err(error) => {
                    warn!(queue = queue.as_str(), error = %error_chain(&error), "queue unavailable")
                }
            }
        }
    }
}

/// Expired records, finished items, and data past its retention.
async fn purge(
    store: SqliteStore,
    retention: switchboard_app::config::RetentionConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        switchboard_app::local::sweep(&store, &retention, SystemClock.now_ms()).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = stop.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use switchboard_domain::{QueueItem, QueueProducer, SendError};

    use super::*;

    fn settings(max_attempts: u32) -> RunnerSettings {
        RunnerSettings {
            retry: RetryPolicy {
                max_attempts,
                initial_backoff_ms: 10,
                max_backoff_ms: 20,
            },
            visibility: Duration::from_millis(300),
            idle_poll: Duration::from_millis(10),
            in_flight: 1,
        }
    }

    async fn queued(store: &SqliteStore, queue: QueueName, ids: &[&str]) {
        for id in ids {
            let item = QueueItem {
                group: (*id).into(),
                dedupe_id: (*id).into(),
                body: id.as_bytes().to_vec(),
            };
            store.send(queue, item).await.unwrap();
        }
    }

    fn stats(all: &[switchboard_sqlite::QueueStats], queue: QueueName) -> (u64, u64, u64) {
        let s = all.iter().find(|s| s.queue == queue.as_str()).unwrap();
        (s.done, s.dead, s.dead_permanent)
    }

    fn send_error(permanent: bool) -> JobError {
        let error = if permanent {
            SendError::Permanent {
                channel: "email".into(),
                detail: "550".into(),
                source: None,
            }
        } else {
            SendError::Transient {
                channel: "email".into(),
                detail: "421".into(),
                source: None,
            }
        };
        if permanent {
            JobError::Permanent(Box::new(error))
        } else {
            JobError::Retryable(Box::new(error))
        }
    }

    /// Runs one consumer until `done` says so, or panics after a few seconds.
    async fn consume_until<F, Fut>(
        store: &SqliteStore,
        settings: RunnerSettings,
        handle: F,
        done: impl Fn(&[switchboard_sqlite::QueueStats]) -> bool,
    ) where
        F: Fn(Vec<u8>, JobLease) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = tokio::spawn(run(
            store.clone(),
            vec![QueueName::Inbound],
            settings,
            stop_rx,
            handle,
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done(&store.stats().await.unwrap()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                store.stats().await
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop_tx.send(true).unwrap();
        runner.await.unwrap();
    }

    #[tokio::test]
    async fn permanent_failures_are_dead_lettered_at_once_and_transient_ones_retried() {
        let store = SqliteStore::open_in_memory().unwrap();
        queued(&store, QueueName::Inbound, &["refused", "flaky"]).await;
        let attempts = Arc::new(AtomicUsize::new(0));
        let seen = attempts.clone();
        consume_until(
            &store,
            settings(5),
            move |body, lease| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    match (body.as_slice(), lease.attempt) {
                        (b"refused", _) => Err(send_error(true)),
                        (b"flaky", 1..=3) => Err(send_error(false)),
                        _ => Ok(()),
                    }
                }
            },
            |all| stats(all, QueueName::Inbound) == (1, 1, 1),
        )
        .await;
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            1 + 4,
            "one attempt for the refusal"
        );
    }

    #[tokio::test]
    async fn an_attempt_that_outlives_its_lease_is_abandoned_and_the_job_retried() {
        let store = SqliteStore::open_in_memory().unwrap();
        queued(&store, QueueName::Inbound, &["slow"]).await;
        consume_until(
            &store,
            settings(3),
            |_, lease| async move {
                if lease.attempt == 1 {
                    std::future::pending::<()>().await;
                }
                Ok(())
            },
            |all| stats(all, QueueName::Inbound) == (1, 0, 0),
        )
        .await;
    }

    #[tokio::test]
    async fn dead_letters_come_back_once_their_cause_has_cleared() {
        let store = SqliteStore::open_in_memory().unwrap();
        queued(&store, QueueName::Inbound, &["a", "b", "c"]).await;
        // SMTP is down: all three run out of retries.
        consume_until(
            &store,
            settings(2),
            |_, _| async { Err(send_error(false)) },
            |all| stats(all, QueueName::Inbound) == (0, 3, 0),
        )
        .await;
        let (stop_tx, stop_rx) = watch::channel(false);
        let redriver = tokio::spawn(redrive_when_cleared(
            store.clone(),
            Duration::from_millis(20),
            Arc::new(Notify::new()),
            stop_rx,
        ));
        // Still down: trials fail and nothing else comes back.
        let trials = Arc::new(AtomicUsize::new(0));
        let counted = trials.clone();
        let still_down = std::time::Instant::now();
        consume_until(
            &store,
            settings(2),
            move |_, lease| {
                let counted = counted.clone();
                async move {
                    assert!(lease.attempt > 2, "a trial is one more attempt");
                    counted.fetch_add(1, Ordering::SeqCst);
                    Err(send_error(false))
                }
            },
            |_| still_down.elapsed() > Duration::from_millis(150),
        )
        .await;
        assert!(trials.load(Ordering::SeqCst) >= 2, "tried repeatedly");
        // The redriver keeps running: one item may be on trial right now
        // (a slower database makes that likelier), but no more than one.
        let (done, dead, permanent) = stats(&store.stats().await.unwrap(), QueueName::Inbound);
        assert_eq!((done, permanent), (0, 0));
        assert!(dead >= 2, "only one trial at a time: {dead} dead");
        // Back up: one trial succeeds and the others follow.
        consume_until(
            &store,
            settings(2),
            |_, _| async { Ok(()) },
            |all| stats(all, QueueName::Inbound) == (3, 0, 0),
        )
        .await;
        stop_tx.send(true).unwrap();
        redriver.await.unwrap();
        let all = store.stats().await.unwrap();
        let inbound = all.iter().find(|s| s.queue == "inbound").unwrap();
        assert_eq!(
            (inbound.dead_lettered_total, inbound.redriven_total),
            (3, 3)
        );
    }

    #[tokio::test]
    async fn one_consumer_has_as_many_jobs_under_way_as_it_is_allowed() {
        let store = SqliteStore::open_in_memory().unwrap();
        queued(&store, QueueName::Inbound, &["a", "b", "c", "d", "e"]).await;
        // Each job waits until four are under way at once: with fewer in
        // flight none could finish.
        let barrier = Arc::new(tokio::sync::Barrier::new(4));
        let most = Arc::new(AtomicUsize::new(0));
        let under_way = Arc::new(AtomicUsize::new(0));
        let (seen_most, seen_under_way) = (most.clone(), under_way.clone());
        consume_until(
            &store,
            RunnerSettings {
                in_flight: 4,
                ..settings(3)
            },
            move |body, _| {
                let (barrier, most, under_way) =
                    (barrier.clone(), seen_most.clone(), seen_under_way.clone());
                async move {
                    let now = under_way.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    if body != b"e" {
                        barrier.wait().await;
                    }
                    under_way.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
            },
            |all| stats(all, QueueName::Inbound) == (5, 0, 0),
        )
        .await;
        assert_eq!(most.load(Ordering::SeqCst), 4, "never more than allowed");
    }

    #[tokio::test]
    async fn a_conversations_next_job_starts_once_the_one_before_is_settled() {
        let store = SqliteStore::open_in_memory().unwrap();
        // Two messages of one conversation: the second waits for the first.
        for id in ["first", "second"] {
            let item = QueueItem {
                group: "one conversation".into(),
                dedupe_id: id.into(),
                body: id.as_bytes().to_vec(),
            };
            store.send(QueueName::Inbound, item).await.unwrap();
        }
        let started = std::time::Instant::now();
        consume_until(
            &store,
            RunnerSettings {
                in_flight: 4,
                // Nothing is queued meanwhile to wake the consumer: only the
                // first job's settling can.
                idle_poll: Duration::from_secs(60),
                ..settings(3)
            },
            |_, _| async { Ok(()) },
            |all| stats(all, QueueName::Inbound) == (2, 0, 0),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the second job waited for the idle poll"
        );
    }

    #[tokio::test]
    async fn notifiers_work_side_by_side_and_take_vip_tickets_first() {
        let store = SqliteStore::open_in_memory().unwrap();
        queued(
            &store,
            QueueName::EscalationStandard,
            &["s1", "s2", "s3", "s4"],
        )
        .await;
        queued(
            &store,
            QueueName::EscalationPriority,
            &["v1", "v2", "v3", "v4"],
        )
        .await;
        let started = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Each job waits until four are under way at once: one consumer
        // alone could never finish.
        let barrier = Arc::new(tokio::sync::Barrier::new(4));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut consumers = Vec::new();
        for _ in 0..4 {
            let (started, barrier) = (started.clone(), barrier.clone());
            consumers.push(tokio::spawn(run(
                store.clone(),
                vec![QueueName::EscalationPriority, QueueName::EscalationStandard],
                settings(3),
                stop_rx.clone(),
                move |body, _| {
                    let (started, barrier) = (started.clone(), barrier.clone());
                    async move {
                        started
                            .lock()
                            .unwrap()
                            .push(String::from_utf8(body).unwrap());
                        barrier.wait().await;
                        Ok(())
                    }
                },
            )));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while started.lock().unwrap().len() < 8 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                started.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop_tx.send(true).unwrap();
        for consumer in consumers {
            consumer.await.unwrap();
        }
        let order = started.lock().unwrap().clone();
        assert!(order[..4].iter().all(|id| id.starts_with('v')), "{order:?}");
    }
}
