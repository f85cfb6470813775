//! [`CalendarSource`](crate::CalendarSource) implementations. `memory` is always compiled.

#[cfg(feature = "caldav")]
pub(crate) mod caldav;
#[cfg(feature = "http")]
pub(crate) mod http;
pub(crate) mod ics;
pub(crate) mod memory;
