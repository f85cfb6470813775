//! Sync two users' calendars that share holiday UIDs into a `MemoryStore`, then re-sync with
//! every DTSTAMP regenerated (zero writes) and with one real change (one write).
//!
//! Run: `cargo run --example quickstart`

#![allow(clippy::print_stdout)]

use calscope::{CalendarId, Engine, Event, FingerprintPolicy, MemorySource, MemoryStore, SyncJob, SyncReport};

fn main() -> Result<(), calscope::Error> {
    futures::executor::block_on(run())
}

async fn run() -> Result<(), calscope::Error> {
    let source = MemorySource::snapshot_only();
    let calendars = [CalendarId::new("alice")?, CalendarId::new("bob")?];
    let engine = Engine::new(MemoryStore::new());
    let sync = || engine.sync_all(calendars.iter().map(|c| SyncJob::new(&source, c)));

    publish(&source, &calendars, "20260101T000000Z", "New Year's Day")?;
    print("first sync", &sync().await);

    publish(&source, &calendars, "20260102T083000Z", "New Year's Day")?;
    print("re-sync, every DTSTAMP regenerated", &sync().await);

    publish(&source, &calendars[..1], "20260103T120000Z", "New Year's Day (observed)")?;
    print("alice's copy of one event changed", &sync().await);

    println!("rows written by the store in all: {}", engine.store().stats().rows());
    Ok(())
}

// Setup below: what a holiday feed would publish for each calendar.

fn publish(
    source: &MemorySource,
    calendars: &[CalendarId],
    stamp: &str,
    new_year: &str,
) -> Result<(), calscope::Error> {
    let policy = FingerprintPolicy::default();
    for cal in calendars {
        let holidays = [("20260101", new_year), ("20261225", "Christmas Day")];
        let mut events = Vec::new();
        for (date, name) in holidays {
            let ics = format!(
                "BEGIN:VEVENT\r\nUID:{date}_holiday@group.v.calendar.google.com\r\nDTSTAMP:{stamp}\r\nDTSTART;VALUE=DATE:{date}\r\nSUMMARY:{name}\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\n"
            );
            events.push(Event::from_ics(cal, &ics, &policy)?);
        }
        source.replace_all(cal, events);
    }
    Ok(())
}

fn print(title: &str, report: &SyncReport) {
    println!("{title}:");
    for r in &report.calendars {
        println!(
            "  {:<6} inserted {} updated {} deleted {} unchanged {}",
            r.calendar.as_str(),
            r.inserted,
            r.updated,
            r.deleted,
            r.unchanged
        );
    }
}
