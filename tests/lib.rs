//! calscope's integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod bounds;
mod busy_example;
mod caldav;
mod common;
mod corpus;
mod differential;
mod emulators;
mod engine;
mod expand;
mod fuzz_seeds;
mod golden;
mod google;
mod graph;
mod http;
mod ics;
mod instances;
mod layers;
mod planner;
mod postgres;
mod props;
mod schedule;
mod secrets;
mod sources;
mod stores;
mod sync_example;
