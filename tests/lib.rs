//! calscope's integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;
mod corpus;
mod engine;
mod golden;
mod http;
mod ics;
mod planner;
mod props;
mod stores;
mod sync_example;
