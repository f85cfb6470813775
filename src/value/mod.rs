//! The floor every other module stands on: iCalendar values and content lines.
//!
//! - [`date`]: DATE, DATE-TIME and DURATION values in their basic formats;
//! - [`lines`]: content lines (splitting, unfolding, names, parameters, values);
//! - [`tz`]: time zone names (IANA, Windows, Olson paths) to rules, and local times to UTC.
//!
//! Identity ([`crate::RecurrenceId`]), the event model and the feed reader (`ics/`) all read
//! values through these; nothing here imports anything above it.

pub(crate) mod date;
pub(crate) mod lines;
pub(crate) mod tz;
mod windows_zones;
