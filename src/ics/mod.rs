//! iCalendar reading: content lines, fingerprints and the event fields a host schedules with.
//!
//! This is edge code around the `icalendar` crate: our own byte-level line handling finds
//! boundaries, keys and fingerprints; `icalendar` parses the properties and typed values of a
//! component that is going to be written.

pub(crate) mod lines;
pub(crate) mod parse;
