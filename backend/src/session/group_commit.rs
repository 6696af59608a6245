//! Group commit of "first use" records in the embedded SQLite store (service users' assertion
//! `jti`s, DPoP proofs): SQLite has one writer, so under load one insert per request would
//! queue one statement (and one hand-off to SQLite's worker thread) per request. Instead one
//! task takes every record waiting at that moment, and those queued while it lets the other
//! tasks run a couple of turns, and inserts them in one statement: the keys it reports are
//! the first uses (`INSERT … ON CONFLICT DO NOTHING RETURNING <key>` for assertions; DPoP
//! proofs are checked in memory first, so their batch is one appended row, all first uses).
//! Nothing is answered before its record is committed, so a replay is refused exactly as with
//! one insert per request, across restarts.
//!
//! The writer is generic over what a record is, where it goes and how a batch is inserted;
//! each user keeps its own SQL (see `authority::replay` and `dpop::replay`). DPoP's Redis
//! engine uses it too: one script call per batch, where one command per record cost
//! redis-server 9-13 µs of CPU a record on the bench's cores (see `dpop::replay`). Batches go
//! one at a time; a store that takes concurrent writes may start the next beside one held up
//! ([`GroupCommit::start_concurrent`], `STALLED`).

use std::{collections::HashMap, fmt::Display, hash::Hash, sync::Arc, time::Duration};

use futures::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

/// Records per statement at most (a few bound values each, far below SQLite's limit).
pub const MAX_BATCH: usize = 256;
/// Records waiting at most; beyond that callers wait for room.
const QUEUE: usize = 4096;
/// How many times the writer lets the other tasks run before it writes a batch, taking the
/// records they queued meanwhile into the same statement. Under load the requests already
/// past their signature check reach their record within these turns: bench/dpop.sh (a record
/// per request, about 15 000 a second, then still a keyed table) went from 8.6 to 36 records a
/// statement, and the SQLite worker threads from 13-14 to 10-11 µs of CPU a request. When
/// nothing else is running, a turn costs a look at the runtime's I/O driver (no wait): the
/// writer runs again at once.
const GATHER_TURNS: usize = 2;

/// With more than one batch allowed in flight ([`GroupCommit::start_concurrent`]): how long a
/// batch may run before the next one starts beside it. A Redis batch takes well under a
/// millisecond, so under load they still go one at a time (and large); one held up (a `WAIT`
/// for a stalled replica, a hung cluster primary) no longer holds up the records behind it.
const STALLED: Duration = Duration::from_millis(5);

/// How many times each key was newly inserted by one batch (0 or 1).
pub type Inserted<K> = HashMap<K, u32>;

/// Inserts one batch of records into `S` (a SQLite pool, a Redis pool); returns the keys of the
/// records it inserted.
pub type InsertBatch<S, R, K, E> =
    for<'a> fn(&'a S, &'a [R]) -> BoxFuture<'a, Result<Inserted<K>, E>>;

/// Why a record could not be written (the writer stopped, or the store refused the batch).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct GroupCommitError(pub String);

struct Pending<R> {
    record: R,
    first: oneshot::Sender<Result<bool, GroupCommitError>>,
}

/// The handle requests use; the writer task runs while a handle exists.
pub struct GroupCommit<R> {
    tx: mpsc::Sender<Pending<R>>,
}

impl<R> Clone for GroupCommit<R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<R: Send + 'static> GroupCommit<R> {
    /// Starts the writer on `pool` (the store's writer connection). One batch at a time: SQLite
    /// has one writer. `key` names a record the way `insert` reports the records it inserted.
    pub fn start<S, K, E>(pool: S, key: fn(&R) -> K, insert: InsertBatch<S, R, K, E>) -> Self
    where
        S: Send + Sync + 'static,
        K: Eq + Hash + Send + 'static,
        E: Display + Send + 'static,
    {
        Self::start_concurrent(pool, 1, key, insert)
    }

    /// [`Self::start`] for a store that takes concurrent writes (Redis): up to `in_flight`
    /// batches at once, the next starting only once the last has run `STALLED`.
    pub fn start_concurrent<S, K, E>(
        pool: S,
        in_flight: usize,
        key: fn(&R) -> K,
        insert: InsertBatch<S, R, K, E>,
    ) -> Self
    where
        S: Send + Sync + 'static,
        K: Eq + Hash + Send + 'static,
        E: Display + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool, in_flight.max(1), rx, key, insert));
        Self { tx }
    }

    /// Records `record`; false when its key was recorded before (or by an earlier copy in the
    /// same batch), or when the insert's own conditions left it out.
    pub async fn first_use(&self, record: R) -> Result<bool, GroupCommitError> {
        let stopped = || GroupCommitError("the writer has stopped".into());
        let (first, answer) = oneshot::channel();
        self.tx
            .send(Pending { record, first })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches<S, R, K: Eq + Hash, E: Display>(
    pool: S,
    in_flight: usize,
    mut rx: mpsc::Receiver<Pending<R>>,
    key: fn(&R) -> K,
    insert: InsertBatch<S, R, K, E>,
) {
    let pool = Arc::new(pool);
    let mut running = FuturesUnordered::new();
    let mut started = Instant::now();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let room = running.len() < in_flight;
        let may_start = running.is_empty() || (room && started.elapsed() >= STALLED);
        tokio::select! {
            biased;
            Some(()) = running.next(), if !running.is_empty() => {}
            n = rx.recv_many(&mut batch, MAX_BATCH), if may_start => {
                if n == 0 {
                    break;
                }
                gather(&mut rx, &mut batch).await;
                let (records, answers): (Vec<R>, Vec<_>) =
                    batch.drain(..).map(|p| (p.record, p.first)).unzip();
                let pool = pool.clone();
                running.push(async move {
                    let result = insert(&pool, &records).await;
                    answer(&records, answers, result, key);
                });
                started = Instant::now();
            }
            // The batches in flight have run long enough: look again whether to start another.
            () = tokio::time::sleep_until(started + STALLED), if !may_start && room => {}
        }
    }
    while running.next().await.is_some() {}
}

/// Answers each record of a written batch.
fn answer<R, K: Eq + Hash, E: Display>(
    records: &[R],
    answers: Vec<oneshot::Sender<Result<bool, GroupCommitError>>>,
    result: Result<Inserted<K>, E>,
    key: fn(&R) -> K,
) {
    match result {
        Ok(mut inserted) => {
            // The first copy of each inserted key gets `true`; a second copy of the same key in
            // the same batch, and every key recorded before, gets `false`.
            for (record, first) in records.iter().zip(answers) {
                let is_first = match inserted.get_mut(&key(record)) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                };
                let _ = first.send(Ok(is_first));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, records = records.len(), "writing first-use records failed");
            let e = GroupCommitError(e.to_string());
            for first in answers {
                let _ = first.send(Err(e.clone()));
            }
        }
    }
}

/// Lets the other tasks run [`GATHER_TURNS`] times, taking what they queue meanwhile (up to
/// [`MAX_BATCH`]) into `batch`.
async fn gather<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>) {
    for _ in 0..GATHER_TURNS {
        if batch.len() >= MAX_BATCH {
            return;
        }
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static BATCHES: AtomicUsize = AtomicUsize::new(0);

    fn counting_insert<'a>(
        _pool: &'a sqlx::SqlitePool,
        batch: &'a [u32],
    ) -> BoxFuture<'a, Result<Inserted<u32>, sqlx::Error>> {
        BATCHES.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(batch.iter().map(|&k| (k, 1)).collect()) })
    }

    static HELD_UP: tokio::sync::Notify = tokio::sync::Notify::const_new();
    static RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

    /// A batch with record 0 waits until [`RELEASE`] (a `WAIT` for a stalled replica); it says
    /// so on [`HELD_UP`]. Any other batch is written at once.
    fn held_up_by_zero<'a>(
        _pool: &'a (),
        batch: &'a [u32],
    ) -> BoxFuture<'a, Result<Inserted<u32>, String>> {
        Box::pin(async move {
            if batch.contains(&0) {
                let released = RELEASE.notified();
                HELD_UP.notify_one();
                released.await;
            }
            Ok(batch.iter().map(|&k| (k, 1)).collect())
        })
    }

    /// With batches allowed beside each other, one held up does not hold up the records
    /// queued after it; it answers once it ends.
    #[tokio::test]
    async fn a_batch_held_up_does_not_hold_up_the_next_when_batches_may_run_beside_it() {
        let writer = GroupCommit::start_concurrent((), 4, |r: &u32| *r, held_up_by_zero);
        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.first_use(0).await }
        });
        HELD_UP.notified().await;
        let next = tokio::time::timeout(Duration::from_secs(10), writer.first_use(1)).await;
        assert!(
            matches!(next, Ok(Ok(true))),
            "the record after the held-up batch: {next:?}"
        );
        assert!(!first.is_finished());
        RELEASE.notify_one();
        assert!(matches!(first.await, Ok(Ok(true))));
    }

    /// Records queued by tasks that only reach their record after the writer has taken the
    /// first one (as requests finishing their signature check do) go into the same statement.
    #[tokio::test]
    async fn records_queued_while_the_writer_gathers_share_its_statement() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .unwrap_or_else(|e| panic!("{e}"));
        let writer = GroupCommit::start(pool, |r: &u32| *r, counting_insert);
        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.first_use(0).await }
        });
        let later: Vec<_> = (1..20u32)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    // One turn of work before the record, after the writer took the first.
                    tokio::task::yield_now().await;
                    writer.first_use(i).await
                })
            })
            .collect();
        assert!(matches!(first.await, Ok(Ok(true))));
        for task in later {
            assert!(matches!(task.await, Ok(Ok(true))));
        }
        assert_eq!(
            BATCHES.load(Ordering::SeqCst),
            1,
            "twenty records in one statement"
        );
    }
}
