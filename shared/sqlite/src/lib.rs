//! The embedded default: sessions, customers, feedback, dedupe records,
//! knowledge gaps, the knowledge base and the durable queues, all in one
//! SQLite file that survives restarts.
//!
//! One connection serves the process, owned by a writer thread that commits
//! the calls of concurrent tasks together (group commit, `writer`): a call is
//! answered only once its batch is committed, and fsynced where the call
//! acknowledges something (a queued message is on disk before ingress
//! answers the provider). Deleted content is overwritten
//! (`secure_delete`), so an erased customer leaves nothing in the file.

mod counters;
mod credentials;
mod privacy;
mod queue;
mod stores;
mod writer;

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use switchboard_domain::{QueueName, StoreError};

pub use queue::{DeadLetter, Failure, Leased, QueueStats};
pub use writer::{BatchError, WriteStats};
use writer::{Durability, Writer};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS idempotency (
    key         TEXT PRIMARY KEY,
    status      TEXT NOT NULL,          -- in_progress | done
    lease_until INTEGER NOT NULL,       -- unix ms; an in-progress record may be taken over after it
    expires_at  INTEGER NOT NULL,       -- unix ms; the record is forgotten after it
    result      TEXT                    -- what the finished work produced (a reply's text)
);
CREATE TABLE IF NOT EXISTS sessions (
    key        TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    channel    TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    data       TEXT NOT NULL,           -- the session as JSON
    summary    TEXT,                    -- what the agents' list shows, while escalated
    customer   TEXT,                    -- channel:customer_id
    brief      TEXT                     -- what a list of the customer's conversations shows
);
CREATE TABLE IF NOT EXISTS customers (
    key           TEXT PRIMARY KEY,     -- channel:customer_id
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    message_count INTEGER NOT NULL,
    tier          TEXT                  -- new | regular | vip, set through the agents' API
);
CREATE TABLE IF NOT EXISTS feedback (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL,
    helpful      INTEGER,
    satisfaction INTEGER,
    comment      TEXT,
    at           INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gaps (
    normalized TEXT PRIMARY KEY,        -- question folded for counting
    question   TEXT NOT NULL,           -- the latest wording seen
    language   TEXT NOT NULL,
    count      INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS knowledge_base (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    jsonl       TEXT NOT NULL,
    imported_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT NOT NULL,
    grp         TEXT NOT NULL,
    dedupe_id   TEXT NOT NULL,
    body        BLOB NOT NULL,
    state       TEXT NOT NULL,          -- ready | leased | done | dead
    attempts    INTEGER NOT NULL DEFAULT 0,
    visible_at  INTEGER NOT NULL,       -- unix ms; for leased items, when the lease runs out
    lease       TEXT,
    last_error  TEXT,
    enqueued_at INTEGER NOT NULL,
    cause       TEXT,                   -- what the last failure was about (send:telegram, store, ...)
    permanent   INTEGER NOT NULL DEFAULT 0, -- dead because retrying cannot help: never redriven automatically
    probe       INTEGER NOT NULL DEFAULT 0, -- a dead letter on trial: success redrives its cause's others
    redrives    INTEGER NOT NULL DEFAULT 0, -- times brought back from the dead letters
    failed_at   INTEGER,                -- unix ms; when it last went to the dead letters
    UNIQUE (queue, dedupe_id)
);
CREATE INDEX IF NOT EXISTS queue_ready ON queue (queue, state, visible_at);
CREATE INDEX IF NOT EXISTS queue_group ON queue (queue, grp, state);
-- The pending items in line order: `receive` walks it from the oldest and
-- stops at the first deliverable one, instead of sorting every ready item.
CREATE INDEX IF NOT EXISTS queue_pending ON queue (queue, id) WHERE state IN ('ready', 'leased');
CREATE TABLE IF NOT EXISTS credentials (
    key         TEXT PRIMARY KEY,       -- e.g. wechat:<app id>
    value       TEXT,                   -- the provider's access token (a secret)
    expires_at  INTEGER NOT NULL DEFAULT 0,
    version     INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,                   -- the instance refreshing it, until lease_until
    lease_until INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS queue_counters (
    queue TEXT NOT NULL,
    name  TEXT NOT NULL,                -- dead_lettered | redriven
    value INTEGER NOT NULL,
    PRIMARY KEY (queue, name)
);
CREATE TABLE IF NOT EXISTS payloads (
    key        TEXT PRIMARY KEY,
    body       BLOB NOT NULL,
    expires_at INTEGER NOT NULL         -- unix ms
);
CREATE TABLE IF NOT EXISTS counters (
    key        TEXT PRIMARY KEY,        -- e.g. auto-replies:<channel>:<sender>:<day>
    count      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL         -- unix ms; the counter counts as 0 after it
);
"#;

/// Columns added after the first release: `(table, column, definition)`,
/// added to databases made before them.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("idempotency", "result", "TEXT"),
    ("customers", "tier", "TEXT"),
    ("sessions", "summary", "TEXT"),
    ("queue", "cause", "TEXT"),
    ("queue", "permanent", "INTEGER NOT NULL DEFAULT 0"),
    ("queue", "probe", "INTEGER NOT NULL DEFAULT 0"),
    ("queue", "redrives", "INTEGER NOT NULL DEFAULT 0"),
    ("queue", "failed_at", "INTEGER"),
    ("feedback", "faq_id", "TEXT"),
    ("sessions", "customer", "TEXT"),
    ("sessions", "brief", "TEXT"),
];

/// One SQLite database holding everything the local process stores.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Writer>,
    /// Items made deliverable so far, per queue (in `QueueName::ALL`'s order).
    arrivals: Arc<tokio::sync::watch::Sender<[u64; QueueName::ALL.len()]>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its folder.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        }
        let conn = Connection::open(path).map_err(unavailable)?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(unavailable)?;
        conn.set_prepared_statement_cache_capacity(128);
        configure_planner(&conn)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA secure_delete = ON;",
        )
        .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        add_missing_columns(&conn)?;
        // The agents' list of waiting conversations.
        conn.execute_batch("CREATE INDEX IF NOT EXISTS sessions_status ON sessions (status)")
            .map_err(unavailable)?;
        // A customer's conversations, newest first; sessions saved before the
        // column existed get their customer from the stored session.
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS sessions_customer ON sessions (customer, updated_at);
             UPDATE sessions SET customer = json_extract(data, '$.channel') || ':' || json_extract(data, '$.customer_id')
             WHERE customer IS NULL AND json_valid(data);",
        )
        .map_err(unavailable)?;
        Ok(Self {
            writer: Arc::new(Writer::start(conn)?),
            arrivals: Arc::new(tokio::sync::watch::Sender::new(Default::default())),
        })
    }

    /// Tells this process's consumers of `queue` that an item may have
    /// become deliverable (queued, or its conversation's item before it settled).
    pub(crate) fn announce(&self, queue: QueueName) {
        let index = queue_index(queue);
        self.arrivals
            .send_modify(|arrivals| arrivals[index] = arrivals[index].wrapping_add(1));
    }

    /// What a consumer waits on for items made deliverable in this process
    /// (another process's go unannounced: consumers also look now and then).
    pub fn arrivals(&self) -> Arrivals {
        Arrivals {
            seen: *self.arrivals.borrow(),
            receiver: self.arrivals.subscribe(),
        }
    }

    /// Runs `work` in the next batch and answers once the batch is
    /// committed and the log fsynced (lazily within [`committed_lazily`]).
    /// `work` runs inside a transaction: it takes a savepoint where it
    /// needs its statements to stand or fall together.
    async fn with<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let durability = match LAZY.try_with(|lazily| *lazily) {
            Ok(_) => Durability::Lazy,
            Err(_) => Durability::Durable,
        };
        self.writer.call(durability, false, work).await
    }

    /// As [`SqliteStore::with`] for an idempotency claim: fsynced before the
    /// answer unless the caller does nothing outside at all.
    async fn with_claim<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let durability = match LAZY.try_with(|lazily| *lazily) {
            Ok(Lazily::Everything) => Durability::Lazy,
            _ => Durability::Durable,
        };
        self.writer.call(durability, false, work).await
    }

    /// As [`SqliteStore::with`], for bookkeeping whose loss in a power cut
    /// (never in a crash of the process) only repeats work that is safe to
    /// repeat: answered once its batch is committed, without waiting for
    /// an fsync.
    async fn with_lazy<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.call(Durability::Lazy, false, work).await
    }

    /// Runs `work` on its own, outside any transaction (a WAL checkpoint
    /// cannot run inside one); `work` opens its own transactions.
    async fn with_alone<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.call(Durability::Durable, true, work).await
    }

    /// Calls, transactions and fsynced commits so far.
    pub fn write_stats(&self) -> WriteStats {
        self.writer.stats()
    }
}

fn queue_index(queue: QueueName) -> usize {
    QueueName::ALL
        .iter()
        .position(|each| *each == queue)
        .unwrap_or_default()
}

/// Announcements of deliverable items, for one consumer: waking only for its
/// own queues spares the store a look at every queue whenever any is sent to.
pub struct Arrivals {
    receiver: tokio::sync::watch::Receiver<[u64; QueueName::ALL.len()]>,
    seen: [u64; QueueName::ALL.len()],
}

impl Arrivals {
    /// Notes what has been announced so far: call before looking at the queues.
    pub fn mark(&mut self) {
        self.seen = *self.receiver.borrow_and_update();
    }

    /// Waits until something is announced on one of `queues` after the last
    /// [`Arrivals::mark`]; at once if it was already.
    pub async fn wait(&mut self, queues: &[QueueName]) {
        loop {
            {
                let now = self.receiver.borrow_and_update();
                if queues
                    .iter()
                    .any(|queue| now[queue_index(*queue)] != self.seen[queue_index(*queue)])
                {
                    return;
                }
            }
            if self.receiver.changed().await.is_err() {
                // The store is gone: nothing will be announced again.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// What a [`committed_lazily`] scope commits without waiting for an fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lazily {
    /// Every call: for work that tells nobody outside anything.
    Everything,
    /// Every call but idempotency claims: for work that acts outside (sends
    /// a reply, an email) right after its claim, so the claim must be on
    /// disk first; what it records after acting is bookkeeping.
    ExceptClaims,
}

tokio::task_local! {
    static LAZY: Lazily;
}

/// Runs `work` with the store's calls committed lazily (see [`Lazily`]):
/// answered once committed, before the fsync that makes them survive a
/// power cut (they survive the process being killed either way). For the
/// queue consumers, whose jobs are done again when their acknowledgement is
/// lost: after a power cut the database holds a prefix of its commits, so
/// what a job wrote lazily is lost only together with its acknowledgement.
/// Calls made by tasks `work` spawns are durable again.
pub async fn committed_lazily<F: std::future::Future>(lazily: Lazily, work: F) -> F::Output {
    LAZY.scope(lazily, work).await
}

/// Plans each statement once. Without the query planner's stability
/// guarantee SQLite re-prepares a statement whenever a parameter it compared
/// with a partial index's condition is bound to a new value: the queue's
/// look for the next job (`queue_pending`) was parsed and planned again on
/// every call, a quarter of the writer's time.
pub(crate) fn configure_planner(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(unavailable)?;
    Ok(())
}

fn add_missing_columns(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |row| row.get(0),
            )
            .map_err(unavailable)?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))
            .map_err(unavailable)?;
        }
    }
    Ok(())
}

/// Statements prepared once per connection and kept: parsing and planning
/// the SQL again on every call was most of the writer's time.
pub(crate) trait Cached {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

#[cfg(test)]
mod tests;
