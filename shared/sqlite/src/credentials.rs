//! Provider access tokens: one row per credential, refreshed under a lease.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use switchboard_domain::{Credential, CredentialStore, Secret, StoreError};

use crate::{Cached, SqliteStore, unavailable};

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Credential>, StoreError> {
        let key = key.to_owned();
        self.with(move |conn| {
            conn.query_row_cached(
                "SELECT value, expires_at, version FROM credentials WHERE key = ?1 AND value IS NOT NULL",
                [&key],
                |row| {
                    Ok(Credential {
                        value: Secret::new(row.get::<_, String>(0)?),
                        expires_at_ms: row.get(1)?,
                        version: row.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn lease_refresh(
        &self,
        key: &str,
        owner: &str,
        seen_version: u64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let (key, owner) = (key.to_owned(), owner.to_owned());
        self.with(move |conn| {
            let tx = conn.savepoint().map_err(unavailable)?;
            let row: Option<(i64, Option<String>, i64)> = tx
                .query_row_cached(
                    "SELECT version, lease_owner, lease_until FROM credentials WHERE key = ?1",
                    [&key],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(unavailable)?;
            let (version, holder, until) = row.unwrap_or((0, None, 0));
            let held_by_other = holder.is_some_and(|holder| holder != owner) && until > now_ms;
            if version as u64 != seen_version || held_by_other {
                return Ok(false);
            }
            tx.execute_cached(
                "INSERT INTO credentials (key, lease_owner, lease_until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET lease_owner = ?2, lease_until = ?3",
                params![key, owner, now_ms.saturating_add(lease_ms)],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn put(&self, key: &str, owner: &str, credential: &Credential) -> Result<(), StoreError> {
        let (key, owner) = (key.to_owned(), owner.to_owned());
        let credential = credential.clone();
        self.with(move |conn| {
            let changed = conn
                .execute_cached(
                    "UPDATE credentials SET value = ?3, expires_at = ?4, version = ?5, lease_owner = NULL, lease_until = 0
                     WHERE key = ?1 AND lease_owner = ?2",
                    params![
                        key,
                        owner,
                        credential.value.expose(),
                        credential.expires_at_ms,
                        credential.version as i64
                    ],
                )
                .map_err(unavailable)?;
            if changed == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict(key))
            }
        })
        .await
    }
}
