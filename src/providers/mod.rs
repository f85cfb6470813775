//! [`CalendarSource`](crate::CalendarSource) implementations. `memory` is always compiled.

pub(crate) mod memory;
