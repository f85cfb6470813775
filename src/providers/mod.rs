//! [`CalendarSource`](crate::CalendarSource) implementations. `memory` is always compiled.

#[cfg(feature = "caldav")]
pub(crate) mod caldav;
#[cfg(feature = "google")]
pub(crate) mod google;
#[cfg(feature = "http")]
pub(crate) mod http;
pub(crate) mod ics;
pub(crate) mod memory;
