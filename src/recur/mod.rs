//! Availability, pure and without I/O: the busy rule and the merging of busy intervals.
//!
//! - [`Busy::of`]: whether an instance blocks time (RFC 4791's free/busy mapping);
//! - [`merge`]: busy intervals clipped to a window, in any order, as sorted, disjoint intervals
//!   (busy where any instance is busy, tentative where only tentative ones are);
//! - [`spans`]: the same as plain, coalesced time spans.

mod busy;

pub use busy::{Busy, BusyInterval, merge, spans};
