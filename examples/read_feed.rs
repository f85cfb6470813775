//! Reads an iCalendar file the way a sync does and prints what calscope sees: events,
//! problems, warnings and the time it took.
//!
//! Run: `cargo run --release --example read_feed -- FILE.ics [--details]` (`--details` also parses
//! every event's fields, one event at a time, as a store writing a first sync does).

#![allow(clippy::print_stdout)]

use std::time::Instant;

use calscope::CalendarId;
use calscope::ics::{ReadOptions, read_feed_owned};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let with_details = args.iter().any(|a| a == "--details");
    let Some(path) = args.iter().find(|a| !a.starts_with("--")).cloned() else {
        eprintln!("usage: read_feed FILE.ics [--details]");
        std::process::exit(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(2);
        }
    };
    let size = bytes.len();
    let calendar = CalendarId::new("file").expect("a valid literal id");
    let started = Instant::now();
    match read_feed_owned(&calendar, bytes, &ReadOptions::default()) {
        Err(e) => {
            println!("rejected: {e}");
            std::process::exit(1);
        }
        Ok(read) => {
            let parsed =
                if with_details { read.events.iter().filter(|e| e.parse_details().start.is_some()).count() } else { 0 };
            let secs = started.elapsed().as_secs_f64();
            #[allow(clippy::cast_precision_loss)]
            let mb_s = size as f64 / secs / 1e6;
            println!(
                "{} events, {} problems, {} warnings; {} calendars; {size} bytes in {:.1} ms ({mb_s:.0} MB/s); complete: {}",
                read.events.len(),
                read.problems.len(),
                read.warnings.len(),
                read.calendars,
                secs * 1e3,
                read.is_complete()
            );
            if with_details {
                println!("fields parsed for every event; {parsed} with a start");
            }
            for p in read.problems.iter().take(20) {
                println!("problem: {p}");
            }
            for w in read.warnings.iter().take(20) {
                println!("warning: {w}");
            }
        }
    }
}
