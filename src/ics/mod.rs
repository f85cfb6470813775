//! iCalendar reading: whole feeds into events, with keys and fingerprints found by a byte-level
//! scan and fields parsed only for the events that are written.
//!
//! This is edge code around the `icalendar` crate: calscope's own scanner finds boundaries,
//! keys and fingerprints (safely: no recursion, bounded by [`Limits`]); `icalendar` parses the
//! properties and typed values of a component that is going to be written.

mod read;
pub(crate) mod zones;

pub(crate) use read::read_feed_shared;
pub use read::{FeedRead, Limits, Problem, ReadOptions, read_feed, read_feed_owned};
