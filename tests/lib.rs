//! calscope's integration tests: one binary, one module per area.

mod common;
mod engine;
mod golden;
mod planner;
mod props;
