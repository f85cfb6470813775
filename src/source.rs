//! Where events come from: the [`CalendarSource`] trait and what it answers.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::event::Event;
use crate::id::{CalendarId, Cursor, EventKey, Href};

/// A provider of calendars: an ICS feed, a CalDAV account, a custom API.
///
/// # Behavior
///
/// - [`calendars`](Self::calendars) lists the calendars the source can fetch; its ids are the
///   ones [`fetch`](Self::fetch) accepts.
/// - `fetch` without a cursor answers a [`Changes::Snapshot`]: the complete current content of
///   the calendar. Every event in it belongs to the requested calendar.
/// - `fetch` with a cursor the source issued answers a [`Changes::Delta`] relative to that
///   cursor, or a snapshot (always allowed).
/// - A source that cannot honor a cursor any more fails with
///   [`ErrorKind::CursorExpired`](crate::ErrorKind::CursorExpired); the engine then fetches a
///   snapshot, from which deletions in the gap are computed.
/// - A snapshot some components of which could not be read is marked incomplete
///   ([`Snapshot::is_complete`] is false); no deletions are inferred from it.
/// - The returned cursor, stored only together with the applied changes, resumes after
///   everything the answer contained.
/// - Fetching never changes the source.
/// - A source that learns early that it will answer a snapshot (a new body arrived, and reading
///   it is the long part) may call [`FetchRequest::snapshot_coming`]: the engine then loads the
///   stored state while the source reads, instead of after.
#[async_trait]
pub trait CalendarSource: Send + Sync + Debug {
    /// What this source supports.
    fn capabilities(&self) -> Capabilities;

    /// Lists the calendars this source can fetch.
    ///
    /// # Errors
    /// Transport, authorization or parse failures of the source.
    async fn calendars(&self) -> Result<Vec<CalendarInfo>>;

    /// Fetches one calendar's changes since `request.cursor()`.
    ///
    /// # Errors
    /// [`ErrorKind::CursorExpired`](crate::ErrorKind::CursorExpired) when the cursor is no longer
    /// valid; [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) for an unknown calendar; any
    /// transport, authorization or parse failure.
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched>;

    /// A short name of the kind of source (`ics`, `caldav`, `google`, `graph`, `memory`), for
    /// spans and metrics labels. The one provided method: a label has no behavior to drift.
    fn kind(&self) -> &'static str {
        "custom"
    }
}

/// What a [`CalendarSource`] supports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// The source answers deltas for cursors it issued.
    pub delta: bool,
    /// The source issues cursors (sync tokens, HTTP validators) at all.
    pub cursor: bool,
    /// The source can list several calendars.
    pub list_calendars: bool,
}

impl Capabilities {
    /// Capabilities of a snapshot-only source without cursors.
    #[must_use]
    pub fn snapshot_only() -> Self {
        Self::default()
    }

    /// Sets whether deltas are supported.
    #[must_use]
    pub fn with_delta(mut self, delta: bool) -> Self {
        self.delta = delta;
        self
    }

    /// Sets whether cursors are issued.
    #[must_use]
    pub fn with_cursor(mut self, cursor: bool) -> Self {
        self.cursor = cursor;
        self
    }

    /// Sets whether several calendars can be listed.
    #[must_use]
    pub fn with_list_calendars(mut self, list: bool) -> Self {
        self.list_calendars = list;
        self
    }
}

/// One calendar as a source lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CalendarInfo {
    /// The id to fetch it with.
    pub id: CalendarId,
    /// Its display name, when the source has one.
    pub name: Option<String>,
    /// Its color as the source gives it (CalDAV's `calendar-color`, e.g. `#FF8800FF`).
    pub color: Option<String>,
    /// Its time zone (IANA), when the source says.
    pub time_zone: Option<String>,
    /// What the account may do with it, when the source says.
    pub access: Option<CalendarAccess>,
    /// Whether it is the account's primary (default) calendar.
    pub primary: bool,
}

/// What an account may do with a calendar, as its source lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CalendarAccess {
    /// Owns it.
    Owner,
    /// May change its events.
    Write,
    /// May read its events.
    Read,
    /// May see only when it is busy: its events cannot be synced.
    FreeBusyOnly,
}

impl CalendarInfo {
    /// A calendar with an id and an optional display name.
    #[must_use]
    pub fn new(id: CalendarId, name: Option<String>) -> Self {
        Self { id, name, color: None, time_zone: None, access: None, primary: false }
    }

    /// The same calendar with a time zone.
    #[must_use]
    pub fn with_time_zone(mut self, time_zone: Option<String>) -> Self {
        self.time_zone = time_zone;
        self
    }

    /// The same calendar with what the account may do with it.
    #[must_use]
    pub fn with_access(mut self, access: Option<CalendarAccess>) -> Self {
        self.access = access;
        self
    }

    /// The same calendar, marked primary or not.
    #[must_use]
    pub fn with_primary(mut self, primary: bool) -> Self {
        self.primary = primary;
        self
    }

    /// The same calendar with a color.
    #[must_use]
    pub fn with_color(mut self, color: Option<String>) -> Self {
        self.color = color;
        self
    }
}

/// The arguments of [`CalendarSource::fetch`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct FetchRequest<'a> {
    /// The calendar to fetch.
    pub calendar: &'a CalendarId,
    /// The stored cursor; `None` asks for a snapshot.
    pub cursor: Option<&'a Cursor>,
    /// Where [`snapshot_coming`](Self::snapshot_coming) reaches the engine, when it listens.
    notice: Option<&'a SnapshotNotice>,
}

impl<'a> FetchRequest<'a> {
    /// A request for `calendar`'s changes since `cursor`.
    #[must_use]
    pub fn new(calendar: &'a CalendarId, cursor: Option<&'a Cursor>) -> Self {
        Self { calendar, cursor, notice: None }
    }

    /// The same request with another cursor, for a source that wraps another: unlike
    /// [`new`](Self::new), it keeps the engine listening for
    /// [`snapshot_coming`](Self::snapshot_coming).
    #[must_use]
    pub fn with_cursor(mut self, cursor: Option<&'a Cursor>) -> Self {
        self.cursor = cursor;
        self
    }

    /// The same request, with the engine listening for [`snapshot_coming`](Self::snapshot_coming).
    pub(crate) fn with_notice(mut self, notice: &'a SnapshotNotice) -> Self {
        self.notice = Some(notice);
        self
    }

    /// Tells the engine that this fetch will answer a [`Changes::Snapshot`], before the source
    /// reads it: the engine then loads the calendar's stored state (which planning a snapshot
    /// needs) while the source downloads and reads, instead of after. Call it once the answer
    /// is known to be a snapshot (the server sent a new body, not "not modified") and before
    /// the long part; it yields once, so that the engine's load is under way when the caller
    /// goes on. Answering a delta after all is still correct; it costs one load of the whole
    /// state. Without an engine listening (a fetch called directly), it does nothing.
    pub async fn snapshot_coming(&self) {
        if let Some(notice) = self.notice {
            if notice.notify() {
                YieldOnce(false).await;
            }
        }
    }
}

/// The engine's side of [`FetchRequest::snapshot_coming`]: one notification at most.
#[derive(Debug)]
pub(crate) struct SnapshotNotice(std::sync::Mutex<Option<futures::channel::oneshot::Sender<()>>>);

impl SnapshotNotice {
    /// A notice, and what resolves when it is given (or fails when it is closed unused).
    pub(crate) fn new() -> (Self, futures::channel::oneshot::Receiver<()>) {
        let (tx, rx) = futures::channel::oneshot::channel();
        (Self(std::sync::Mutex::new(Some(tx))), rx)
    }

    /// Notifies the listener; true the first time.
    fn notify(&self) -> bool {
        self.take().is_some_and(|tx| tx.send(()).is_ok())
    }

    /// Ends listening: a listener not yet notified learns that no snapshot is coming.
    pub(crate) fn close(&self) {
        drop(self.take());
    }

    fn take(&self) -> Option<futures::channel::oneshot::Sender<()>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

/// Returns pending once (waking itself at once), so that futures polled beside the caller's
/// run before it goes on.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// A source's answer to [`CalendarSource::fetch`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Fetched {
    /// What changed.
    pub changes: Changes,
    /// The cursor to resume from once these changes are applied; `None` when the source issues
    /// none.
    pub cursor: Option<Cursor>,
    /// Things worth telling the host that did not stop the fetch.
    pub warnings: Vec<String>,
    /// Requests the source sent for this fetch (retries and redirects included; 0 for sources
    /// that send none). A source shared by calendars fetched at once counts by its client, so
    /// concurrent fetches may see each other's.
    pub requests: u64,
}

impl Fetched {
    /// An answer with no warnings.
    #[must_use]
    pub fn new(changes: Changes, cursor: Option<Cursor>) -> Self {
        Self { changes, cursor, warnings: Vec::new(), requests: 0 }
    }

    /// The same answer, saying how many requests it took.
    #[must_use]
    pub fn with_requests(mut self, requests: u64) -> Self {
        self.requests = requests;
        self
    }

    /// The same answer with warnings added.
    #[must_use]
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings.extend(warnings);
        self
    }
}

/// Runs `fetch` and records on its answer the requests `sent` counted meanwhile (for sources
/// that count their client's requests).
pub(crate) async fn counting(
    sent: impl Fn() -> u64,
    fetch: impl std::future::Future<Output = Result<Fetched>>,
) -> Result<Fetched> {
    let before = sent();
    let fetched = fetch.await?;
    Ok(fetched.with_requests(sent().saturating_sub(before)))
}

/// The two shapes of change a source can report.
#[derive(Clone, Debug, PartialEq)]
pub enum Changes {
    /// The complete current content; deletions are whatever is stored but absent.
    Snapshot(Snapshot),
    /// Explicit changes relative to a cursor.
    Delta(Delta),
}

/// The complete content of a calendar (or as much as could be read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    events: Vec<Event>,
    complete: bool,
}

impl Snapshot {
    /// A complete snapshot.
    #[must_use]
    pub fn complete(events: Vec<Event>) -> Self {
        Self { events, complete: true }
    }

    /// A snapshot from which some components could not be read: no deletions are inferred.
    #[must_use]
    pub fn incomplete(events: Vec<Event>) -> Self {
        Self { events, complete: false }
    }

    /// The events.
    #[must_use]
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Whether every component of the calendar was read.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Takes the events out.
    #[must_use]
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }
}

/// Changes relative to a cursor.
///
/// An event with an [`href`](Event::href) is a piece of a *resource* (a CalDAV object holds a
/// master and its overrides): every href that appears among the upserts is replaced whole, so
/// stored events of that href that are not among the upserts are deleted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delta {
    /// Added or changed events.
    pub upserts: Vec<Event>,
    /// Removed events.
    pub removals: Vec<EventKey>,
    /// Removed resources: every stored event with one of these hrefs is deleted.
    pub removed_hrefs: Vec<Href>,
}

impl Delta {
    /// Whether the delta changes nothing (a `304 Not Modified`, an unchanged sync token).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty() && self.removed_hrefs.is_empty()
    }
}

macro_rules! forward_source {
    ($ty:ty) => {
        #[async_trait]
        impl<T: CalendarSource + ?Sized> CalendarSource for $ty {
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
                (**self).calendars().await
            }
            async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
                (**self).fetch(request).await
            }
            fn kind(&self) -> &'static str {
                (**self).kind()
            }
        }
    };
}

forward_source!(Arc<T>);
forward_source!(Box<T>);
forward_source!(&T);
