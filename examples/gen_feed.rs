//! Writes the generated bench feed (see `benches/support/feed.rs`) to stdout, for reproducing
//! the README's numbers with the `sync` example.
//!
//! Run: `cargo run --release --example gen_feed -- 100000 [STAMP] [VARIANT] > feed.ics`
//! (a different STAMP regenerates every DTSTAMP; VARIANT 1, 2, … edits 1 % of events).

#![allow(clippy::print_stderr)]

use std::io::Write;

#[path = "../benches/support/feed.rs"]
mod support;

fn main() -> std::process::ExitCode {
    let args: Vec<u64> = match std::env::args().skip(1).map(|a| a.parse()).collect() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("gen_feed: {e}\nusage: gen_feed EVENTS [STAMP] [VARIANT]");
            return std::process::ExitCode::from(2);
        }
    };
    let n = usize::try_from(args.first().copied().unwrap_or(100_000)).unwrap_or(100_000);
    let stamp = u32::try_from(args.get(1).copied().unwrap_or(1)).unwrap_or(1);
    let variant = u32::try_from(args.get(2).copied().unwrap_or(0)).unwrap_or(0);
    let bytes = support::feed_variant(n, stamp, variant);
    if std::io::stdout().lock().write_all(&bytes).is_err() {
        return std::process::ExitCode::from(1);
    }
    std::process::ExitCode::SUCCESS
}
