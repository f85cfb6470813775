//! Availability, pure and without I/O: recurrence expansion, the busy rule and the merging of
//! busy intervals.
//!
//! - [`Expander`]: a [`Series`] (master and overrides of one UID), a window and a zone →
//!   [`Instance`]s (RFC 5545 recurrence; the rule engine is `rule.rs`);
//! - [`Busy::of`]: whether an instance blocks time (RFC 4791's free/busy mapping);
//! - [`merge`]: busy intervals clipped to a window, in any order, as sorted, disjoint intervals
//!   (busy where any instance is busy, tentative where only tentative ones are);
//! - [`spans`]: the same as plain, coalesced time spans.

mod busy;
mod expand;
mod rule;

pub(crate) use busy::merge_lists;
pub use busy::{Busy, BusyInterval, merge, spans};
pub use expand::{DEFAULT_MAX_INSTANCES, Expander, Expansion, Instance, Series};
