//! [`CalendarSource`](crate::CalendarSource) implementations. `memory` is always compiled.

#[cfg(feature = "caldav")]
pub(crate) mod caldav;
#[cfg(feature = "google")]
pub(crate) mod google;
#[cfg(feature = "graph")]
pub(crate) mod graph;
#[cfg(feature = "http")]
pub(crate) mod http;
pub(crate) mod ics;
pub(crate) mod memory;
#[cfg(any(feature = "google", feature = "graph"))]
pub(crate) mod naming;
#[cfg(any(feature = "google", feature = "graph"))]
pub(crate) mod pages;
#[cfg(any(feature = "google", feature = "graph"))]
pub(crate) mod vevent;
