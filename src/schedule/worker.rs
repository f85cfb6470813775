//! [`Worker`]: claims due calendars, syncs them through the [`Engine`], finishes each claim.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};

use super::due::{Claim, Outcome, Pending, Schedule};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::id::CalendarId;
use crate::source::CalendarSource;
use crate::store::Store;

/// Builds a calendar's source from its registered spec: the host's factory.
pub type SourceFactory = dyn Fn(&CalendarId, &str) -> Result<Arc<dyn CalendarSource>> + Send + Sync;

/// Sleeps for a while: the host's runtime's timer (`|d| Box::pin(tokio::time::sleep(d))`).
pub type Sleep = dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync;

/// The clock a worker reads: `Utc::now` unless a test sets its own.
pub type Clock = dyn Fn() -> DateTime<Utc> + Send + Sync;

/// How a [`Worker`] runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// Syncs at once. Default 4.
    pub concurrency: usize,
    /// How long a claim holds its calendar. A sync must finish within it, or another worker
    /// may take the calendar over (and this worker's outcome is refused). Default 5 minutes.
    pub lease: Duration,
    /// The longest wait between two looks at the schedule when nothing is due. Default 5 s.
    pub poll: Duration,
    /// Stop once no calendar is due and no lease is out (waiting out other workers' leases,
    /// including a crashed worker's, and then taking their calendars). Default `false`.
    pub until_idle: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self { concurrency: 4, lease: Duration::from_secs(300), poll: Duration::from_secs(5), until_idle: false }
    }
}

impl WorkerOptions {
    /// Sets the syncs at once (at least 1).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the lease.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// Sets the longest idle wait.
    #[must_use]
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }

    /// Sets whether the worker stops once idle.
    #[must_use]
    pub fn until_idle(mut self, until_idle: bool) -> Self {
        self.until_idle = until_idle;
        self
    }
}

/// What a [`Worker::run`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[must_use]
#[non_exhaustive]
pub struct WorkerReport {
    /// Calendars claimed.
    pub claimed: u64,
    /// Claims that synced and were finished.
    pub synced: u64,
    /// Claims that failed (source, sync or store) and were finished with the failure.
    pub failed: u64,
    /// Claims whose finish was refused: the lease had been taken over.
    pub lost: u64,
    /// Finishes the store could not record (their leases expire, and the calendars are
    /// synced again).
    pub unrecorded: u64,
    /// Event rows written.
    pub rows_written: u64,
}

/// Claims due calendars from a store that is also a [`Schedule`], builds each one's source
/// with the host's factory, syncs it through the [`Engine`] (at most
/// [`WorkerOptions::concurrency`] at once) and finishes the claim with its outcome.
///
/// Runtime-agnostic: the host gives its timer ([`Sleep`]). [`run`](Self::run) ends when its
/// `stop` future completes (a signal): it claims nothing more, lets the syncs in flight finish
/// and records them, so no lease outlives the process.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use calscope::schedule::{Schedule, Worker, WorkerOptions};
/// use calscope::{CalendarId, CalendarSource, Engine, IcsSource, MemoryStore};
/// # futures::executor::block_on(async {
/// let store = MemoryStore::new();
/// let now = chrono::Utc::now();
/// store.register(&CalendarId::new("team")?, "BEGIN:VCALENDAR\nEND:VCALENDAR\n", Duration::from_secs(600), now).await?;
/// let factory = |id: &CalendarId, spec: &str| -> calscope::Result<Arc<dyn CalendarSource>> {
///     Ok(Arc::new(IcsSource::from_bytes(id.clone(), spec.as_bytes().to_vec())))
/// };
/// let sleep = |_| Box::pin(async {}) as futures::future::BoxFuture<'static, ()>;
/// let worker = Worker::new("worker-1", Engine::new(store), factory, sleep)
///     .options(WorkerOptions::default().until_idle(true));
/// let report = worker.run(futures::future::pending()).await?;
/// assert_eq!(report.synced, 1);
/// assert_eq!(worker.engine().store().entries().await?[0].syncs, 1);
/// # Ok::<(), calscope::Error>(()) }).unwrap();
/// ```
pub struct Worker<S> {
    name: String,
    engine: Engine<S>,
    factory: Box<SourceFactory>,
    sleep: Box<Sleep>,
    clock: Box<Clock>,
    options: WorkerOptions,
}

impl<S> fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker").field("name", &self.name).field("options", &self.options).finish_non_exhaustive()
    }
}

/// Schedule failures in a row after which [`Worker::run`] gives up.
const MAX_STORE_FAILURES: u32 = 10;

/// What one of the worker's futures came to.
enum Event {
    Claimed(Result<Vec<Claim>>),
    Checked(Result<Pending>),
    Rested,
    Done(Done),
}

/// What one claim came to.
struct Done {
    outcome: Outcome,
    rows: u64,
    finished: Result<()>,
}

impl<S: Store + Schedule> Worker<S> {
    /// A worker named `name` (the lease owner the schedule shows) over `engine`'s store.
    pub fn new<F, T>(name: impl Into<String>, engine: Engine<S>, factory: F, sleep: T) -> Self
    where
        F: Fn(&CalendarId, &str) -> Result<Arc<dyn CalendarSource>> + Send + Sync + 'static,
        T: Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        Self {
            name: name.into(),
            engine,
            factory: Box::new(factory),
            sleep: Box::new(sleep),
            clock: Box::new(Utc::now),
            options: WorkerOptions::default(),
        }
    }

    /// The same worker with `options`.
    #[must_use]
    pub fn options(mut self, options: WorkerOptions) -> Self {
        self.options = options;
        self
    }

    /// The same worker reading time from `clock` (tests).
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// The engine (and through it the store).
    pub fn engine(&self) -> &Engine<S> {
        &self.engine
    }

    /// The worker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Claims, syncs and finishes until `stop` completes (or, with
    /// [`WorkerOptions::until_idle`], until nothing is due or leased), then lets the syncs in
    /// flight finish.
    ///
    /// # Errors
    /// What the schedule failed with when it failed ten times in a row (claims and idle checks,
    /// waiting the poll interval doubled after each, up to a minute: a store's restart is
    /// ridden out; a failed finish only counts as [`WorkerReport::unrecorded`]). The syncs in
    /// flight finish first.
    pub async fn run(&self, stop: impl Future<Output = ()>) -> Result<WorkerReport> {
        // Claims, idle checks, waits and syncs all run in one set of futures, polled together:
        // a store that serves calls one at a time (SQLite's thread) may be in the middle of a
        // sync's apply, which needs that sync's future polled to go on.
        let mut report = WorkerReport::default();
        let stop = stop.fuse();
        futures::pin_mut!(stop);
        let mut tasks: FuturesUnordered<BoxFuture<'_, Event>> = FuturesUnordered::new();
        let (mut stopping, mut claiming, mut checking, mut resting) = (false, false, false, false);
        let mut syncing = 0usize;
        let mut failing: Option<(u32, Error)> = None;
        loop {
            if !stopping && !claiming && !checking && !resting && syncing < self.options.concurrency {
                let n = self.options.concurrency - syncing;
                claiming = true;
                tasks.push(Box::pin(async move {
                    Event::Claimed(self.engine.store().claim(&self.name, n, self.options.lease, (self.clock)()).await)
                }));
            }
            if syncing == 0 && !claiming && (stopping || (!checking && !resting)) {
                break;
            }
            let event = futures::select! {
                event = tasks.select_next_some() => event,
                () = stop => { stopping = true; continue; }
                complete => break,
            };
            match event {
                Event::Claimed(Ok(claims)) => {
                    claiming = false;
                    failing = None;
                    report.claimed += claims.len() as u64;
                    if claims.is_empty() {
                        if syncing == 0 {
                            checking = true;
                            tasks.push(Box::pin(async move {
                                Event::Checked(self.engine.store().pending((self.clock)()).await)
                            }));
                        } else {
                            self.rest(&mut tasks, &mut resting, self.options.poll);
                        }
                        continue;
                    }
                    crate::observe::claimed(&self.name, claims.len());
                    syncing += claims.len();
                    for claim in claims {
                        tasks.push(Box::pin(async move { Event::Done(self.one(claim).await) }));
                    }
                }
                Event::Claimed(Err(e)) => {
                    claiming = false;
                    tracing::warn!(target: "calscope::schedule", worker = self.name.as_str(), error = %e, "claim failed");
                    if Self::fail(&mut failing, e) {
                        stopping = true;
                    }
                    // A store that is down (a restart, a failover) is given time: the poll,
                    // doubling with each failure in a row, up to a minute.
                    let n = failing.as_ref().map_or(1, |(n, _)| *n);
                    let wait = self.options.poll.saturating_mul(1 << (n - 1).min(6)).min(Duration::from_secs(60));
                    self.rest(&mut tasks, &mut resting, wait.max(self.options.poll));
                }
                Event::Checked(result) => {
                    checking = false;
                    let wait = match result {
                        Ok(pending) if self.options.until_idle && pending.is_idle() => {
                            stopping = true;
                            continue;
                        }
                        // Due, but a sibling took it in between: look again soon.
                        Ok(pending) if pending.due > 0 => Duration::from_millis(10),
                        Ok(pending) => {
                            let now = (self.clock)();
                            let until = pending.next_at.and_then(|at| (at - now).to_std().ok());
                            until.map_or(self.options.poll, |d| d.min(self.options.poll))
                        }
                        Err(e) => {
                            if Self::fail(&mut failing, e) {
                                stopping = true;
                            }
                            self.options.poll
                        }
                    };
                    self.rest(&mut tasks, &mut resting, wait.max(Duration::from_millis(1)));
                }
                Event::Rested => resting = false,
                Event::Done(done) => {
                    syncing -= 1;
                    // A slot is free: claim again at once, whatever rest was planned.
                    resting = false;
                    report.rows_written += done.rows;
                    match (&done.finished, done.outcome.is_ok()) {
                        (Err(e), _) if e.kind() == ErrorKind::LeaseLost => report.lost += 1,
                        (Err(_), _) => report.unrecorded += 1,
                        (Ok(()), true) => report.synced += 1,
                        (Ok(()), false) => report.failed += 1,
                    }
                }
            }
        }
        match failing {
            Some((n, e)) if n >= MAX_STORE_FAILURES => Err(e),
            _ => Ok(report),
        }
    }

    /// Counts a schedule failure; answers whether the worker should stop.
    fn fail(failing: &mut Option<(u32, Error)>, e: Error) -> bool {
        let n = failing.take().map_or(1, |(n, _)| n + 1);
        *failing = Some((n, e));
        n >= MAX_STORE_FAILURES
    }

    /// Waits `wait` before the next claim (a rest already planned stands).
    fn rest<'a>(&'a self, tasks: &mut FuturesUnordered<BoxFuture<'a, Event>>, resting: &mut bool, wait: Duration) {
        if *resting {
            return;
        }
        *resting = true;
        let sleep = (self.sleep)(wait);
        tasks.push(Box::pin(async move {
            sleep.await;
            Event::Rested
        }));
    }

    /// Syncs one claimed calendar and finishes its claim.
    async fn one(&self, claim: Claim) -> Done {
        let (outcome, rows) = match (self.factory)(&claim.calendar, &claim.spec) {
            Ok(source) => {
                let report = self.engine.sync(source.as_ref(), &claim.calendar).await;
                (Outcome::of(&report), report.writes())
            }
            Err(e) => {
                tracing::warn!(target: "calscope::schedule", calendar = claim.calendar.as_str(), error = %e, "cannot build the source");
                (Outcome::failed(&e), 0)
            }
        };
        let now = (self.clock)();
        let finished = match self.engine.store().finish(&claim, &outcome, now).await {
            Ok(finished) => {
                if !outcome.is_ok() {
                    let wait = (finished.next_due_at - now).to_std().unwrap_or_default();
                    crate::observe::backoff(&claim.calendar, finished.failures, wait);
                }
                Ok(())
            }
            Err(e) => {
                if e.kind() == ErrorKind::LeaseLost {
                    crate::observe::lease_lost(&claim.calendar, &self.name);
                } else {
                    tracing::warn!(target: "calscope::schedule", calendar = claim.calendar.as_str(), error = %e, "finish failed");
                }
                Err(e)
            }
        };
        Done { outcome, rows, finished }
    }
}
