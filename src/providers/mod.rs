//! [`CalendarSource`](crate::CalendarSource) implementations. `memory` is always compiled.

pub(crate) mod ics;
pub(crate) mod memory;
