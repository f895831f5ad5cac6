//! Durable queues on SQLite with the semantics the pipeline relies on from
//! SQS FIFO: per-group order (one item of a group in flight at a time),
//! deduplication ids, visibility timeouts, and dead letters after too many
//! attempts.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use switchboard_domain::{
    Clock, QueueError, QueueItem, QueueName, QueueProducer, StoreError, SystemClock,
};

use crate::{SqliteStore, unavailable};

/// An item handed to a consumer. It stays invisible to others until its lease
/// runs out; `ack`, `retry` or `dead_letter` settle it.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: i64,
    pub queue: QueueName,
    pub group: String,
    pub body: Vec<u8>,
    /// Including this one.
    pub attempts: u32,
    lease: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub ready: u64,
    pub in_flight: u64,
    pub done: u64,
    pub dead: u64,
}

#[async_trait]
impl QueueProducer for SqliteStore {
    async fn send(&self, queue: QueueName, item: QueueItem) -> Result<(), QueueError> {
        let now_ms = SystemClock.now_ms();
        self.with(move |conn| {
            // A repeated dedupe id is dropped, as SQS FIFO does.
            conn.execute(
                "INSERT INTO queue (queue, grp, dedupe_id, body, state, visible_at, enqueued_at)
                 VALUES (?1, ?2, ?3, ?4, 'ready', ?5, ?5)
                 ON CONFLICT (queue, dedupe_id) DO NOTHING",
                params![
                    queue.as_str(),
                    item.group,
                    item.dedupe_id,
                    item.body,
                    now_ms
                ],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
        .map_err(|error| QueueError {
            queue,
            source: Box::new(error),
        })
    }
}

impl SqliteStore {
    /// Leases the next deliverable item: the oldest visible one whose group
    /// has nothing older pending, so each conversation is handled in order.
    pub async fn receive(
        &self,
        queue: QueueName,
        now_ms: i64,
        visibility_ms: i64,
    ) -> Result<Option<Leased>, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let next: Option<(i64, String, Vec<u8>, i64)> = tx
                .query_row(
                    "SELECT q.id, q.grp, q.body, q.attempts FROM queue q
                     WHERE q.queue = ?1 AND q.state IN ('ready', 'leased') AND q.visible_at <= ?2
                       AND q.id = (SELECT MIN(p.id) FROM queue p
                                   WHERE p.queue = q.queue AND p.grp = q.grp AND p.state IN ('ready', 'leased'))
                     ORDER BY q.id LIMIT 1",
                    params![queue.as_str(), now_ms],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )
                .optional()
                .map_err(unavailable)?;
            let Some((id, group, body, attempts)) = next else {
                return Ok(None);
            };
            let lease = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "UPDATE queue SET state = 'leased', attempts = attempts + 1, visible_at = ?2, lease = ?3 WHERE id = ?1",
                params![id, now_ms + visibility_ms, lease],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(Some(Leased { id, queue, group, body, attempts: attempts as u32 + 1, lease }))
        })
        .await
    }

    /// The item is done. A lease that ran out and went to another consumer is not touched.
    pub async fn ack(&self, item: &Leased) -> Result<(), StoreError> {
        let (id, lease) = (item.id, item.lease.clone());
        self.with(move |conn| {
            conn.execute(
                "UPDATE queue SET state = 'done', body = x'', lease = NULL WHERE id = ?1 AND lease = ?2",
                params![id, lease],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Makes the item deliverable again after `delay_ms`.
    pub async fn retry(
        &self,
        item: &Leased,
        now_ms: i64,
        delay_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        let (id, lease, error) = (item.id, item.lease.clone(), error.to_owned());
        self.with(move |conn| {
            conn.execute(
                "UPDATE queue SET state = 'ready', visible_at = ?3, lease = NULL, last_error = ?4
                 WHERE id = ?1 AND lease = ?2",
                params![id, lease, now_ms + delay_ms, error],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Moves the item to the dead letters, where it stays visible in `stats`
    /// and can be requeued with `redrive`.
    pub async fn dead_letter(&self, item: &Leased, error: &str) -> Result<(), StoreError> {
        let (id, lease, error) = (item.id, item.lease.clone(), error.to_owned());
        self.with(move |conn| {
            conn.execute(
                "UPDATE queue SET state = 'dead', lease = NULL, last_error = ?3 WHERE id = ?1 AND lease = ?2",
                params![id, lease, error],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Puts every dead item of `queue` back in line; returns how many.
    pub async fn redrive(&self, queue: QueueName, now_ms: i64) -> Result<usize, StoreError> {
        self.with(move |conn| {
            conn.execute(
                "UPDATE queue SET state = 'ready', attempts = 0, visible_at = ?2 WHERE queue = ?1 AND state = 'dead'",
                params![queue.as_str(), now_ms],
            )
            .map_err(unavailable)
        })
        .await
    }

    /// Items per state for every queue.
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
                        "SELECT state, COUNT(*) FROM queue WHERE queue = ?1 GROUP BY state",
                    )
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map([queue.as_str()], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
                    })
                    .map_err(unavailable)?;
                for row in rows {
                    let (state, count) = row.map_err(unavailable)?;
                    match state.as_str() {
                        "ready" => stats.ready = count,
                        "leased" => stats.in_flight = count,
                        "done" => stats.done = count,
                        "dead" => stats.dead = count,
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
