//! Group commit. One thread owns the connection; the store's calls are sent
//! to it, and the calls waiting when it turns to them run one after another
//! in one transaction (each in a savepoint of its own), committed once. No
//! call is answered before that commit, and a failed commit fails every call
//! of the batch.
//!
//! Durable calls (the default: whatever acknowledges something to someone or
//! guards a side effect) are answered only once the log is fsynced after
//! their commit. A second thread does the fsync (`fdatasync` of the `-wal`
//! file), so the writer keeps committing the next batches meanwhile and one
//! fsync covers every commit before it. Commits themselves are made with
//! `synchronous = NORMAL`. In WAL mode the log is written in commit order and
//! recovery replays it up to the first frame missing, so after a power cut
//! the file holds a prefix of the commits: a lazy commit ([`Durability::Lazy`],
//! bookkeeping whose loss only repeats work) can be lost only together with
//! everything after it, never a durable one before it. No commit of either
//! kind is lost when the process alone dies (kill -9): the log is in the
//! operating system's hands at every commit. A database without a log file
//! (in memory, or a journal mode other than WAL) commits with `synchronous =
//! FULL` instead.
//!
//! Checkpoints (copying the log into the database file, and its fsync) are
//! made by a third thread on a connection of its own, once the log has grown
//! past [`CHECKPOINT_AFTER_BYTES`]: SQLite's automatic checkpoint ran them
//! inside the writer's commits, which then waited for the database's fsync.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use serde::Serialize;
use switchboard_domain::StoreError;
use tokio::sync::oneshot;

/// Most calls in one transaction: bounds how long a batch holds the others.
const MAX_BATCH: usize = 512;

/// The log's size that calls for a checkpoint: SQLite's automatic
/// checkpoint default (1,000 pages of 4 KiB).
const CHECKPOINT_AFTER_BYTES: u64 = 4_096_000;

/// Batches that wrote between two looks at the log's size.
const CHECKPOINT_LOOK_EVERY: u64 = 32;

/// The log's size at which the writer checkpoints itself however far the
/// checkpointer has got (see `write`).
const CHECKPOINT_ITSELF_BYTES: u64 = 4 * CHECKPOINT_AFTER_BYTES;

/// Whether a call's commit must be on disk before the call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Fsynced before the answer: survives a power cut.
    Durable,
    /// Written to the log before the answer (survives the process being
    /// killed), fsynced with the next durable commit or checkpoint.
    Lazy,
}

/// Why a call that did its work is answered with an error anyway.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("could not commit the batch of writes this call was part of")]
    Commit(#[source] Arc<rusqlite::Error>),
    #[error("could not start a transaction")]
    Begin(#[source] Arc<rusqlite::Error>),
    #[error("the batch this call was part of was rolled back by a failure in another call")]
    RolledBack,
    #[error("a store call panicked")]
    Panicked,
    #[error("the store's writer has stopped")]
    Stopped,
    #[error("could not fsync the log")]
    Sync(#[source] Arc<std::io::Error>),
}

/// How many calls, transactions and fsynced commits the store has made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteStats {
    pub calls: u64,
    /// Transactions committed (one per batch).
    pub transactions: u64,
    /// Fsyncs of the log for durable calls (each covers every commit before it).
    pub fsyncs: u64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    transactions: AtomicU64,
    fsyncs: AtomicU64,
    /// Batches committed that wrote something.
    written: AtomicU64,
    /// Of those, how many the last fsync covers.
    synced: AtomicU64,
}

/// A call waiting for the writer.
trait Call: Send {
    fn durability(&self) -> Durability;
    /// Runs alone, outside any batch (a checkpoint cannot run in a transaction).
    fn alone(&self) -> bool;
    fn run(&mut self, conn: &mut Connection);
    fn panicked(&self) -> bool;
    /// Answers the caller: what the work returned, unless the batch failed.
    fn answer(self: Box<Self>, batch: Result<(), BatchError>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    durability: Durability,
    alone: bool,
    panicked: bool,
}

impl<T, F> Call for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn alone(&self) -> bool {
        self.alone
    }

    fn run(&mut self, conn: &mut Connection) {
        if let Some(work) = self.work.take() {
            self.outcome = Some(match catch_unwind(AssertUnwindSafe(|| work(conn))) {
                Ok(outcome) => outcome,
                Err(_) => {
                    self.panicked = true;
                    Err(StoreError::Unavailable(Box::new(BatchError::Panicked)))
                }
            });
        }
    }

    fn panicked(&self) -> bool {
        self.panicked
    }

    fn answer(self: Box<Self>, batch: Result<(), BatchError>) {
        let outcome = match (batch, self.outcome) {
            // The call's own failure says more than the batch's.
            (_, Some(Err(error))) => Err(error),
            (Ok(()), Some(outcome)) => outcome,
            (Err(error), _) => Err(StoreError::Unavailable(Box::new(error))),
            (Ok(()), None) => Err(StoreError::Unavailable(Box::new(BatchError::Panicked))),
        };
        let _ = self.reply.send(outcome);
    }
}

/// The handle the store's clones share; the last one dropped stops the
/// writer and waits for it, so the file is closed when the store is gone.
pub(crate) struct Writer {
    calls: Option<mpsc::Sender<Box<dyn Call>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Writer {
    pub(crate) fn start(conn: Connection) -> Result<Self, StoreError> {
        let log = write_ahead_log(&conn);
        // With a log, the checkpointer thread checkpoints, not the commits.
        let pragma = if log.is_some() {
            "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0"
        } else {
            "PRAGMA synchronous = FULL"
        };
        conn.execute_batch(pragma)
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let checkpointer = match (&log, conn.path().filter(|p| !p.is_empty())) {
            (Some(log), Some(database)) => Some(Checkpointer::start(
                std::path::Path::new(database),
                log.clone(),
            )?),
            _ => None,
        };
        let (calls, queued) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let syncer = match log {
            Some(log) => {
                let (to_sync, waiting) = mpsc::channel();
                let counted = counters.clone();
                std::thread::Builder::new()
                    .name("sqlite-fsync".into())
                    .spawn(move || sync(log, waiting, &counted))
                    .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
                Some(to_sync)
            }
            None => None,
        };
        let counted = counters.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write(conn, queued, syncer, checkpointer, &counted))
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self {
            calls: Some(calls),
            thread: Some(thread),
            counters,
        })
    }

    pub(crate) async fn call<T, F>(
        &self,
        durability: Durability,
        alone: bool,
        work: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let call = Box::new(Pending {
            work: Some(work),
            outcome: None,
            reply,
            durability,
            alone,
            panicked: false,
        });
        let stopped = || StoreError::Unavailable(Box::new(BatchError::Stopped));
        self.calls
            .as_ref()
            .ok_or_else(stopped)?
            .send(call)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            calls: self.counters.calls.load(Ordering::Relaxed),
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            fsyncs: self.counters.fsyncs.load(Ordering::Relaxed),
        }
    }
}

/// The log file of a database in WAL mode.
fn write_ahead_log(conn: &Connection) -> Option<PathBuf> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .ok()?;
    let path = conn.path().filter(|p| !p.is_empty())?;
    mode.eq_ignore_ascii_case("wal")
        .then(|| PathBuf::from(format!("{path}-wal")))
}

/// Durable calls committed up to `written` (a count of batches that wrote),
/// waiting for an fsync that covers them.
struct Unsynced {
    calls: Vec<Box<dyn Call>>,
    written: u64,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.calls.take();
        if let Some(thread) = self.thread.take() {
            // The last handle may be dropped by a call on the writer itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// The thread that checkpoints the log on a connection of its own, when the
/// writer says the log may have grown enough.
struct Checkpointer {
    nudge: mpsc::SyncSender<()>,
    thread: JoinHandle<()>,
    log: PathBuf,
    /// Checkpoints it has made.
    passes: Arc<AtomicU64>,
}

impl Checkpointer {
    fn start(database: &std::path::Path, log: PathBuf) -> Result<Self, StoreError> {
        let unavailable = |e: rusqlite::Error| StoreError::Unavailable(Box::new(e));
        let conn = Connection::open_with_flags(
            database,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(unavailable)?;
        // Its own commits (none) must not checkpoint either.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(unavailable)?;
        let (nudge, nudged) = mpsc::sync_channel(1);
        let watched = log.clone();
        let passes = Arc::new(AtomicU64::new(0));
        let passed = passes.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    let grown = log_bytes(&watched) >= CHECKPOINT_AFTER_BYTES;
                    // Passive: copies what no reader still needs and never
                    // holds up the writer; the writer starts the log over
                    // once all of it is in the database.
                    if !grown {
                        continue;
                    }
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        Ok(()) => {
                            passed.fetch_add(1, Ordering::Release);
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, "could not checkpoint the database's log")
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self {
            nudge,
            thread,
            log,
            passes,
        })
    }

    fn log_bytes(&self) -> u64 {
        log_bytes(&self.log)
    }

    /// Asks for a look at the log's size, unless one is pending already.
    fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    fn stop(self) {
        drop(self.nudge);
        let _ = self.thread.join();
    }
}

fn log_bytes(log: &std::path::Path) -> u64 {
    std::fs::metadata(log).map_or(0, |log| log.len())
}

fn write(
    mut conn: Connection,
    queued: mpsc::Receiver<Box<dyn Call>>,
    syncer: Option<mpsc::Sender<Unsynced>>,
    checkpointer: Option<Checkpointer>,
    counters: &Counters,
) {
    let mut waiting: std::collections::VecDeque<Box<dyn Call>> = Default::default();
    let (mut looked_at, mut passes_seen) = (0, 0);
    loop {
        if waiting.is_empty() {
            match queued.recv() {
                Ok(call) => waiting.push_back(call),
                Err(_) => {
                    if let Some(checkpointer) = checkpointer {
                        checkpointer.stop();
                    }
                    return;
                }
            }
        }
        while waiting.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(call) => waiting.push_back(call),
                Err(_) => break,
            }
        }
        let mut committed = Vec::new();
        if waiting.front().is_some_and(|call| call.alone()) {
            let mut call = waiting.pop_front().expect("looked at");
            counters.calls.fetch_add(1, Ordering::Relaxed);
            let changes = conn.total_changes();
            call.run(&mut conn);
            if conn.total_changes() != changes {
                counters.written.fetch_add(1, Ordering::Relaxed);
            }
            committed.push(call);
        } else {
            let mut batch = Vec::with_capacity(waiting.len());
            while let Some(call) = waiting.pop_front() {
                if call.alone() {
                    waiting.push_front(call);
                    break;
                }
                batch.push(call);
            }
            counters
                .calls
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            commit_batch(&mut conn, batch, counters, &mut committed);
        }
        // Lazy calls are answered now; durable ones once an fsync covers
        // every write so far (a read may have seen a write not yet synced).
        let written = counters.written.load(Ordering::Relaxed);
        let synced = counters.synced.load(Ordering::Acquire);
        let mut unsynced = Vec::new();
        for call in committed {
            if call.durability() == Durability::Lazy || written <= synced || syncer.is_none() {
                call.answer(Ok(()));
            } else {
                unsynced.push(call);
            }
        }
        if !unsynced.is_empty()
            && let Some(syncer) = &syncer
            && let Err(mpsc::SendError(lost)) = syncer.send(Unsynced {
                calls: unsynced,
                written,
            })
        {
            for call in lost.calls {
                call.answer(Err(BatchError::Stopped));
            }
        }
        // Between two batches, once their calls are answered. The log starts
        // over only once a checkpoint has copied all of it, which the
        // checkpointer's, made while the writer goes on writing, never quite
        // do: after each of its passes the writer copies the few commits
        // made meanwhile itself.
        if let Some(checkpointer) = &checkpointer {
            let passes = checkpointer.passes.load(Ordering::Acquire);
            let itself = passes > passes_seen
                || (written >= looked_at + CHECKPOINT_LOOK_EVERY
                    && checkpointer.log_bytes() >= CHECKPOINT_ITSELF_BYTES);
            if itself {
                passes_seen = passes;
                looked_at = written;
                if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                {
                    tracing::warn!(error = %error, "could not checkpoint the database's log");
                }
            } else if written >= looked_at + CHECKPOINT_LOOK_EVERY {
                looked_at = written;
                checkpointer.nudge();
            }
        }
    }
}

/// Fsyncs the log for the durable calls waiting, as many at a time as are
/// waiting, and answers them.
fn sync(log: PathBuf, waiting: mpsc::Receiver<Unsynced>, counters: &Counters) {
    let mut directory_synced = false;
    while let Ok(first) = waiting.recv() {
        let mut calls = vec![first];
        while let Ok(more) = waiting.try_recv() {
            calls.push(more);
        }
        // Everything written before the fsync starts is covered by it.
        let written = counters.written.load(Ordering::Relaxed);
        let outcome = (|| {
            // Opened each time: the file is the log SQLite uses now.
            std::fs::File::open(&log)?.sync_data()?;
            if !directory_synced && let Some(directory) = log.parent() {
                // The log's own entry in its folder, once.
                let directory = if directory.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    directory
                };
                std::fs::File::open(directory)?.sync_all()?;
                directory_synced = true;
            }
            Ok::<(), std::io::Error>(())
        })();
        counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        let outcome = match outcome {
            Ok(()) => {
                counters.synced.fetch_max(written, Ordering::Release);
                Ok(())
            }
            Err(error) => Err(Arc::new(error)),
        };
        for unsynced in calls {
            debug_assert!(unsynced.written <= written);
            for call in unsynced.calls {
                call.answer(outcome.clone().map_err(BatchError::Sync));
            }
        }
    }
}

/// Runs the calls in one transaction; those it committed go to `committed`,
/// the others are answered with their failure.
fn commit_batch(
    conn: &mut Connection,
    batch: Vec<Box<dyn Call>>,
    counters: &Counters,
    committed: &mut Vec<Box<dyn Call>>,
) {
    if let Err(error) = run_cached(conn, "BEGIN IMMEDIATE") {
        let error = Arc::new(error);
        for call in batch {
            call.answer(Err(BatchError::Begin(error.clone())));
        }
        return;
    }
    let changes_before = conn.total_changes();
    let mut ran: Vec<Box<dyn Call>> = Vec::with_capacity(batch.len());
    let mut calls = batch.into_iter();
    while let Some(mut call) = calls.next() {
        // Each call in a savepoint: what a panicking one wrote is undone
        // (its own `Err` keeps what it wrote, as on a connection of its own).
        if run_cached(conn, "SAVEPOINT call").is_err() {
            call.answer(Err(BatchError::RolledBack));
            continue;
        }
        call.run(conn);
        let settled = match call.panicked() {
            true => conn.execute_batch("ROLLBACK TO call; RELEASE call"),
            false => run_cached(conn, "RELEASE call"),
        };
        // An error may have made SQLite roll the whole transaction back.
        if conn.is_autocommit() || settled.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
            call.answer(Err(BatchError::RolledBack));
            for earlier in ran {
                earlier.answer(Err(BatchError::RolledBack));
            }
            // The rest go in a transaction of their own.
            commit_batch(conn, calls.collect(), counters, committed);
            return;
        }
        ran.push(call);
    }
    let wrote = conn.total_changes() != changes_before;
    match run_cached(conn, "COMMIT") {
        Ok(()) => {
            counters.transactions.fetch_add(1, Ordering::Relaxed);
            if wrote {
                counters.written.fetch_add(1, Ordering::Relaxed);
            }
            committed.extend(ran);
        }
        Err(error) => {
            let error = Arc::new(error);
            let _ = conn.execute_batch("ROLLBACK");
            for call in ran {
                call.answer(Err(BatchError::Commit(error.clone())));
            }
        }
    }
}

fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
