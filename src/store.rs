//! Where events are kept: the [`Store`] trait and the arguments and answers of its calls.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::{CalendarId, Cursor, EventKey, Href};
use crate::plan::Plan;
use crate::state::{Revision, StoredState};

/// A host's storage of synced events, one row per [`EventKey`].
///
/// # Behavior
///
/// - [`load`](Self::load) of a calendar the store has never seen answers an empty state at
///   [`Revision::ZERO`] with no cursor.
/// - `load` with [`LoadScope::All`] answers every stored event of the calendar and nothing of
///   any other calendar; [`LoadScope::Touched`] answers at least the stored events with one of
///   the given keys or hrefs; [`LoadScope::Head`] answers only the [`CalendarHead`](crate::CalendarHead).
/// - [`apply`](Self::apply) writes all of a plan's changes and the new cursor atomically, or
///   nothing.
/// - `apply` fails with [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) and writes nothing when the calendar's revision
///   is no longer [`ApplyRequest::expected`]; a successful apply moves the revision forward.
/// - `apply` touches only rows of the plan's calendar, even when other calendars hold the same
///   UIDs.
/// - `apply` counts the rows each change affected and calls [`Plan::check_rows`] before it
///   commits: when a change affected a number of rows other than one, it rolls back and fails
///   with [`ErrorKind::ScopeViolation`](crate::ErrorKind::ScopeViolation). It answers those counts in [`Applied::rows`].
/// - `apply` refuses a plan for which [`Plan::validate`] fails (a blocked plan, a change keyed
///   to another calendar), writing nothing.
/// - Applying changes that are already applied is impossible by construction: the revision
///   check rejects a second apply of the same plan.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// Loads what the planner needs to know about one calendar.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`](crate::ErrorKind::Storage) when the store fails, or when it holds a state it cannot read.
    async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState>;

    /// Applies one calendar's plan together with its new cursor.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) when the revision moved, [`ErrorKind::ScopeViolation`](crate::ErrorKind::ScopeViolation) when a
    /// change affected a number of rows other than one, [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a plan
    /// that fails [`Plan::validate`], [`ErrorKind::Storage`](crate::ErrorKind::Storage) when the store fails. On every error
    /// nothing was written.
    async fn apply(&self, request: ApplyRequest<'_>) -> Result<Applied>;
}

/// What [`Store::load`] should return.
#[derive(Clone, Copy, Debug)]
pub enum LoadScope<'a> {
    /// Only the calendar's head (cursor, revision, event count).
    Head,
    /// Every stored event of the calendar (planning a snapshot).
    All,
    /// The stored events with one of these keys or hrefs (planning a delta).
    Touched {
        /// Keys the delta upserts or removes.
        keys: &'a [EventKey],
        /// Hrefs the delta replaces or removes.
        hrefs: &'a [Href],
    },
}

/// The arguments of [`Store::apply`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ApplyRequest<'a> {
    /// The plan; its calendar is the one written.
    pub plan: &'a Plan,
    /// The revision the calendar must still be at.
    pub expected: Revision,
    /// The cursor to store with the changes.
    pub cursor: Option<&'a Cursor>,
}

impl<'a> ApplyRequest<'a> {
    /// A request to apply `plan` over revision `expected`, storing `cursor`.
    #[must_use]
    pub fn new(plan: &'a Plan, expected: Revision, cursor: Option<&'a Cursor>) -> Self {
        Self { plan, expected, cursor }
    }
}

/// What [`Store::apply`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[must_use]
#[non_exhaustive]
pub struct Applied {
    /// The calendar's revision after the apply.
    pub revision: Revision,
    /// Rows affected by each change, in plan order.
    pub rows: Vec<u64>,
    /// What the store could not interpret while writing (a store that parses
    /// [`EventDetails`](crate::EventDetails) into columns reports their problems here). The
    /// engine adds them to the calendar's warnings.
    pub warnings: Vec<String>,
}

impl Applied {
    /// An apply outcome.
    pub fn new(revision: Revision, rows: Vec<u64>) -> Self {
        Self { revision, rows, warnings: Vec::new() }
    }

    /// The same outcome with warnings.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }
}

macro_rules! forward_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: Store + ?Sized> Store for $ty {
            async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState> {
                (**self).load(calendar, scope).await
            }
            async fn apply(&self, request: ApplyRequest<'_>) -> Result<Applied> {
                (**self).apply(request).await
            }
        }
    };
}

forward_store!(Arc<T>);
forward_store!(Box<T>);
forward_store!(&T);
