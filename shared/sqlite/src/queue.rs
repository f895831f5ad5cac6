//! Durable queues on SQLite with the semantics the pipeline relies on from
//! SQS FIFO: per-group order (one item of a group in flight at a time),
//! deduplication ids, visibility timeouts, and dead letters.
//!
//! Dead letters come in two kinds. An item that failed for good (an
//! unreadable job, an address the mail server refuses) stays dead until an
//! operator redrives it. An item that ran out of retries while something it
//! needs was down is put on trial from time to time ([`SqliteStore::probe_dead`]):
//! when one such trial succeeds, every dead letter with the same cause is
//! redriven, so an outage longer than the retries still ends with every
//! message processed.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use switchboard_domain::{
    Claim, Clock, QueueError, QueueItem, QueueName, QueueProducer, StoreError, SystemClock,
};

use crate::stores::{claim_of, claim_record, mark_done};
use crate::{Cached, SqliteStore, unavailable};

/// An item handed to a consumer. It stays invisible to others until its lease
/// runs out at `lease_until_ms`; `ack`, `retry` or `dead_letter` settle it.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: i64,
    pub queue: QueueName,
    pub group: String,
    pub body: Vec<u8>,
    /// Including this one.
    pub attempts: u32,
    /// When the lease runs out and the item may go to another consumer.
    pub lease_until_ms: i64,
    /// A dead letter on trial: one attempt, and on success the dead letters
    /// with the same cause follow it.
    pub probe: bool,
    lease: String,
}

/// How a failed item is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Shown in the item's `last_error`: no message content.
    pub error: String,
    /// What failed (`send:telegram`, `store`, ...).
    pub cause: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub ready: u64,
    pub in_flight: u64,
    pub done: u64,
    /// Dead letters now, of both kinds.
    pub dead: u64,
    /// Of `dead`, those that failed for good: only an operator's redrive brings them back.
    pub dead_permanent: u64,
    /// Items ever moved to the dead letters.
    pub dead_lettered_total: u64,
    /// Dead letters ever put back in line, automatically or by `queue redrive`.
    pub redriven_total: u64,
}

/// One dead letter as an operator sees it: where, which, how often tried,
/// when, and why. Never the body (customers' words): ids only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub queue: &'static str,
    /// The item's number in the queue (the runner's `job` in the logs).
    pub id: i64,
    /// The item's ordering group (the conversation for inbound messages).
    pub group: String,
    /// Its deduplication id (provider message id, reply id, ...).
    pub dedupe_id: String,
    pub attempts: u32,
    pub enqueued_at_ms: i64,
    /// When it last went to the dead letters; absent for items dead-lettered
    /// before this was recorded.
    pub failed_at_ms: Option<i64>,
    /// Failed for good: only `queue redrive` brings it back.
    pub permanent: bool,
    /// What failed (`send:telegram`, `job`, ...), and the last error.
    pub cause: Option<String>,
    pub error: Option<String>,
    /// Times it was brought back from the dead letters before.
    pub redrives: u32,
}

const DEAD_LETTERED: &str = "dead_lettered";
const REDRIVEN: &str = "redriven";

fn count(tx: &Connection, queue: QueueName, name: &str, by: usize) -> Result<(), StoreError> {
    if by == 0 {
        return Ok(());
    }
    tx.execute_cached(
        "INSERT INTO queue_counters (queue, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (queue, name) DO UPDATE SET value = value + ?3",
        params![queue.as_str(), name, by as i64],
    )
    .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl QueueProducer for SqliteStore {
    async fn send(&self, queue: QueueName, item: QueueItem) -> Result<(), QueueError> {
        self.enqueue(queue, item, 0).await
    }

    /// The item becomes visible `delay` from now (`visible_at`); the
    /// per-group order still holds, so delayed jobs get groups of their own.
    async fn send_after(
        &self,
        queue: QueueName,
        item: QueueItem,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.enqueue(queue, item, delay_ms).await
    }

    /// One transaction: the key's record read, and unless it is done or
    /// held, the item queued and the key marked done; durable (fsynced)
    /// before the answer.
    async fn send_once(
        &self,
        key: &str,
        queue: QueueName,
        item: &QueueItem,
        now_ms: i64,
        keep_until_ms: i64,
    ) -> Result<Option<Claim>, QueueError> {
        let (key, item) = (key.to_owned(), item.clone());
        let claim = self
            .with(move |conn| {
                let tx = conn.savepoint().map_err(unavailable)?;
                let claim = claim_of(claim_record(&tx, &key)?, now_ms);
                if claim.is_owned() {
                    insert_item(&tx, queue, &item, now_ms, now_ms)?;
                    mark_done(&tx, &key, keep_until_ms, None)?;
                }
                tx.commit().map_err(unavailable)?;
                Ok(claim)
            })
            .await
            .map_err(|error| QueueError {
                queue,
                source: Box::new(error),
            })?;
        if claim.is_owned() {
            self.announce(queue);
        }
        Ok(Some(claim))
    }
}

/// Adds `item` to `queue`, visible from `visible_at`; a repeated dedupe id
/// is dropped, as SQS FIFO does.
fn insert_item(
    conn: &Connection,
    queue: QueueName,
    item: &QueueItem,
    visible_at: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.execute_cached(
        "INSERT INTO queue (queue, grp, dedupe_id, body, state, visible_at, enqueued_at)
         VALUES (?1, ?2, ?3, ?4, 'ready', ?5, ?6)
         ON CONFLICT (queue, dedupe_id) DO NOTHING",
        params![
            queue.as_str(),
            item.group,
            item.dedupe_id,
            item.body,
            visible_at,
            now_ms
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

impl SqliteStore {
    async fn enqueue(
        &self,
        queue: QueueName,
        item: QueueItem,
        delay_ms: i64,
    ) -> Result<(), QueueError> {
        let now_ms = SystemClock.now_ms();
        let visible_at = now_ms.saturating_add(delay_ms.max(0));
        self.with(move |conn| insert_item(conn, queue, &item, visible_at, now_ms))
            .await
            .map_err(|error| QueueError {
                queue,
                source: Box::new(error),
            })?;
        if delay_ms <= 0 {
            self.announce(queue);
        }
        Ok(())
    }
}

/// The oldest visible items whose groups have nothing older pending (`?1`
/// queue, `?2` now, `?3` how many): at most one per group, since only a
/// group's oldest pending item qualifies. Walks the `queue_pending` index in
/// line order.
pub(crate) const NEXT_DELIVERABLE: &str =
    "SELECT q.id, q.grp, q.body, q.attempts, q.probe FROM queue q
     WHERE q.queue = ?1 AND q.state IN ('ready', 'leased') AND q.visible_at <= ?2
       AND q.id = (SELECT MIN(p.id) FROM queue p
                   WHERE p.queue = q.queue AND p.grp = q.grp AND p.state IN ('ready', 'leased'))
     ORDER BY q.id LIMIT ?3";

impl SqliteStore {
    /// Leases the next deliverable item: the oldest visible one whose group
    /// has nothing older pending, so each conversation is handled in order.
    pub async fn receive(
        &self,
        queue: QueueName,
        now_ms: i64,
        visibility_ms: i64,
    ) -> Result<Option<Leased>, StoreError> {
        Ok(self
            .receive_many(queue, now_ms, visibility_ms, 1)
            .await?
            .pop())
    }

    /// Leases up to `most` deliverable items in one store call, oldest
    /// first and at most one per group (see [`SqliteStore::receive`]): a
    /// consumer with several free job slots fills them in one round trip to
    /// the writer instead of one each.
    pub async fn receive_many(
        &self,
        queue: QueueName,
        now_ms: i64,
        visibility_ms: i64,
        most: usize,
    ) -> Result<Vec<Leased>, StoreError> {
        if most == 0 {
            return Ok(Vec::new());
        }
        let most = i64::try_from(most).unwrap_or(i64::MAX);
        self.with_lazy(move |conn| {
            let tx = conn.savepoint().map_err(unavailable)?;
            let next: Vec<(i64, String, Vec<u8>, i64, bool)> = {
                let mut statement = tx.prepare_cached(NEXT_DELIVERABLE).map_err(unavailable)?;
                let rows = statement
                    .query_map(params![queue.as_str(), now_ms, most], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                    })
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)?
            };
            let lease_until_ms = now_ms.saturating_add(visibility_ms.max(1));
            let mut leased = Vec::with_capacity(next.len());
            for (id, group, body, attempts, probe) in next {
                let lease = uuid::Uuid::new_v4().to_string();
                tx.execute_cached(
                    "UPDATE queue SET state = 'leased', attempts = attempts + 1, visible_at = ?2, lease = ?3 WHERE id = ?1",
                    params![id, lease_until_ms, lease],
                )
                .map_err(unavailable)?;
                leased.push(Leased {
                    id,
                    queue,
                    group,
                    body,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX - 1).saturating_add(1),
                    lease_until_ms,
                    probe,
                    lease,
                });
            }
            tx.commit().map_err(unavailable)?;
            Ok(leased)
        })
        .await
    }

    /// The item is done; returns how many dead letters it redrove (a
    /// successful probe brings back the others with its cause). A lease that
    /// ran out and went to another consumer is not touched.
    pub async fn ack(&self, item: &Leased, now_ms: i64) -> Result<usize, StoreError> {
        let (id, lease, queue) = (item.id, item.lease.clone(), item.queue);
        let redriven = self.with_lazy(move |conn| {
            let tx = conn.savepoint().map_err(unavailable)?;
            let held: Option<(bool, Option<String>)> = tx
                .query_row_cached(
                    "SELECT probe, cause FROM queue WHERE id = ?1 AND lease = ?2",
                    params![id, lease],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            let Some((probe, cause)) = held else {
                return Ok(0);
            };
            tx.execute_cached(
                "UPDATE queue SET state = 'done', body = x'', lease = NULL, probe = 0 WHERE id = ?1",
                [id],
            )
            .map_err(unavailable)?;
            let mut redriven = 0;
            if probe {
                count(&tx, queue, REDRIVEN, 1)?;
                redriven = tx
                    .execute_cached(
                        "UPDATE queue SET state = 'ready', attempts = 0, visible_at = ?3, lease = NULL
                         WHERE queue = ?1 AND state = 'dead' AND permanent = 0 AND cause IS ?2",
                        params![queue.as_str(), cause, now_ms],
                    )
                    .map_err(unavailable)?;
                count(&tx, queue, REDRIVEN, redriven)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(redriven)
        })
        .await?;
        // The conversation's next item, and any redriven, may go now.
        self.announce(queue);
        Ok(redriven)
    }

    /// Makes the item deliverable again after `delay_ms`.
    pub async fn retry(
        &self,
        item: &Leased,
        now_ms: i64,
        delay_ms: i64,
        failure: &Failure,
    ) -> Result<(), StoreError> {
        let (id, lease, failure) = (item.id, item.lease.clone(), failure.clone());
        self.with_lazy(move |conn| {
            conn.execute_cached(
                "UPDATE queue SET state = 'ready', visible_at = ?3, lease = NULL, last_error = ?4, cause = ?5, probe = 0
                 WHERE id = ?1 AND lease = ?2",
                params![id, lease, now_ms.saturating_add(delay_ms), failure.error, failure.cause],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Moves the item to the dead letters, where it stays visible in `stats`
    /// and can be requeued with `redrive`. Unless `permanent`, it will be put
    /// on trial by [`SqliteStore::probe_dead`].
    pub async fn dead_letter(
        &self,
        item: &Leased,
        failure: &Failure,
        permanent: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (id, lease, queue, failure) =
            (item.id, item.lease.clone(), item.queue, failure.clone());
        let was_probe = item.probe;
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(unavailable)?;
            let changed = tx
                .execute_cached(
                    "UPDATE queue SET state = 'dead', lease = NULL, last_error = ?3, cause = ?4, permanent = ?5, probe = 0, failed_at = ?6
                     WHERE id = ?1 AND lease = ?2",
                    params![id, lease, failure.error, failure.cause, permanent, now_ms],
                )
                .map_err(unavailable)?;
            // A failed trial goes back where it was: not a new dead letter.
            if !was_probe {
                count(&tx, queue, DEAD_LETTERED, changed)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(())
        })
        .await?;
        // The conversation's next item may go now.
        self.announce(queue);
        Ok(())
    }

    /// Puts one dead letter of each cause on trial, unless one of that cause
    /// is on trial already; dead letters that failed for good are left
    /// alone. Returns how many went on trial.
    pub async fn probe_dead(&self, queue: QueueName, now_ms: i64) -> Result<usize, StoreError> {
        let trials = self.with(move |conn| {
            let tx = conn.savepoint().map_err(unavailable)?;
            let oldest: Vec<i64> = {
                let mut statement = tx
                    .prepare(
                        "SELECT MIN(d.id) FROM queue d
                         WHERE d.queue = ?1 AND d.state = 'dead' AND d.permanent = 0
                           AND NOT EXISTS (SELECT 1 FROM queue t WHERE t.queue = d.queue AND t.probe = 1
                                           AND t.state IN ('ready', 'leased') AND t.cause IS d.cause)
                         GROUP BY d.cause",
                    )
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map([queue.as_str()], |row| row.get(0))
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)?
            };
            for id in &oldest {
                tx.execute_cached(
                    "UPDATE queue SET state = 'ready', probe = 1, visible_at = ?2, lease = NULL WHERE id = ?1",
                    params![id, now_ms],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(oldest.len())
        })
        .await?;
        if trials > 0 {
            self.announce(queue);
        }
        Ok(trials)
    }

    /// Puts every dead item of `queue` back in line with fresh attempts; returns how many.
    pub async fn redrive(&self, queue: QueueName, now_ms: i64) -> Result<usize, StoreError> {
        let moved = self.with(move |conn| {
            let tx = conn.savepoint().map_err(unavailable)?;
            let moved = tx
                .execute_cached(
                    "UPDATE queue SET state = 'ready', attempts = 0, visible_at = ?2, permanent = 0, probe = 0
                     WHERE queue = ?1 AND state = 'dead'",
                    params![queue.as_str(), now_ms],
                )
                .map_err(unavailable)?;
            count(&tx, queue, REDRIVEN, moved)?;
            tx.commit().map_err(unavailable)?;
            Ok(moved)
        })
        .await?;
        if moved > 0 {
            self.announce(queue);
        }
        Ok(moved)
    }

    /// The dead letters of `queue` (else of every queue), the most recently
    /// failed first, at most `limit`.
    pub async fn dead_letters(
        &self,
        queue: Option<QueueName>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut all = Vec::new();
            // One indexed query per queue (`queue_ready` leads with queue, state).
            for name in QueueName::ALL.into_iter().filter(|q| queue.is_none_or(|only| only == *q)) {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT id, grp, dedupe_id, attempts, enqueued_at, failed_at, permanent, cause, last_error, redrives
                         FROM queue WHERE queue = ?1 AND state = 'dead'
                         ORDER BY failed_at IS NULL, failed_at DESC, id DESC LIMIT ?2",
                    )
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map(params![name.as_str(), limit], |row| {
                        Ok(DeadLetter {
                            queue: name.as_str(),
                            id: row.get(0)?,
                            group: row.get(1)?,
                            dedupe_id: row.get(2)?,
                            attempts: row.get(3)?,
                            enqueued_at_ms: row.get(4)?,
                            failed_at_ms: row.get(5)?,
                            permanent: row.get(6)?,
                            cause: row.get(7)?,
                            error: row.get(8)?,
                            redrives: row.get(9)?,
                        })
                    })
                    .map_err(unavailable)?;
                for row in rows {
                    all.push(row.map_err(unavailable)?);
                }
            }
            all.sort_by(|a, b| {
                (a.failed_at_ms.is_none(), b.failed_at_ms, b.id).cmp(&(
                    b.failed_at_ms.is_none(),
                    a.failed_at_ms,
                    a.id,
                ))
            });
            all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            Ok(all)
        })
        .await
    }

    /// Items per state for every queue, with the dead-letter counters.
    pub async fn stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.with(|conn| {
            let mut all = Vec::new();
            for queue in QueueName::ALL {
                let mut stats = QueueStats {
                    queue: queue.as_str().to_owned(),
                    ..Default::default()
                };
                let mut statement = conn
                    .prepare_cached(
                        "SELECT state, permanent, COUNT(*) FROM queue WHERE queue = ?1 GROUP BY state, permanent",
                    )
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map([queue.as_str()], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, bool>(1)?,
                            row.get::<_, i64>(2)? as u64,
                        ))
                    })
                    .map_err(unavailable)?;
                for row in rows {
                    let (state, permanent, count) = row.map_err(unavailable)?;
                    match state.as_str() {
                        "ready" => stats.ready += count,
                        "leased" => stats.in_flight += count,
                        "done" => stats.done += count,
                        "dead" => {
                            stats.dead += count;
                            if permanent {
                                stats.dead_permanent += count;
                            }
                        }
                        _ => {}
                    }
                }
                let mut counters = conn
                    .prepare_cached("SELECT name, value FROM queue_counters WHERE queue = ?1")
                    .map_err(unavailable)?;
                let rows = counters
                    .query_map([queue.as_str()], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
                    })
                    .map_err(unavailable)?;
                for row in rows {
                    match row.map_err(unavailable)? {
                        (name, value) if name == DEAD_LETTERED => stats.dead_lettered_total = value,
                        (name, value) if name == REDRIVEN => stats.redriven_total = value,
                        _ => {}
                    }
                }
                all.push(stats);
            }
            Ok(all)
        })
        .await
    }
}
