//! Expiring counters (`counters` table): one row per key, reset once expired.

use async_trait::async_trait;
use rusqlite::OptionalExtension;
use switchboard_domain::{CounterStore, StoreError};

use crate::{Cached, SqliteStore, unavailable};

#[async_trait]
impl CounterStore for SqliteStore {
    async fn increment_below(
        &self,
        key: &str,
        limit: u64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let tx = conn
                .savepoint()
                .map_err(unavailable)?;
            let row: Option<(i64, i64)> = tx
                .query_row_cached(
                    "SELECT count, expires_at FROM counters WHERE key = ?1",
                    [&key],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            let (count, expires) = match row {
                Some((count, expires)) if expires > now_ms => (count, expires),
                _ => (0, expires_at_ms),
            };
            if count >= limit {
                return Ok(false);
            }
            tx.execute_cached(
                "INSERT INTO counters (key, count, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET count = excluded.count, expires_at = excluded.expires_at",
                rusqlite::params![key, count + 1, expires],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn count(&self, key: &str, now_ms: i64) -> Result<u64, StoreError> {
        let key = key.to_owned();
        self.with(move |conn| {
            let count: Option<i64> = conn
                .query_row_cached(
                    "SELECT count FROM counters WHERE key = ?1 AND expires_at > ?2",
                    rusqlite::params![key, now_ms],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            Ok(count.map_or(0, |count| count.max(0) as u64))
        })
        .await
    }
}
