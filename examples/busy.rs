//! When are these calendars busy? Reads the busy time of calendars that `sync` wrote into a
//! SQLite database: per calendar and merged across them, clipped to the window.
//!
//! ```text
//! cargo run --release --example busy -- --db FILE --from 2026-12-01T00:00:00Z \
//!     --to 2027-01-01T00:00:00Z [--tz Europe/Berlin] [--json] ID ...
//! ```
//!
//! `--tz` is the zone floating times and dates are read in (default UTC). With `--json`,
//! exactly one JSON object on stdout:
//! `{"from":"…","to":"…","calendars":{"ID":[["2026-12-01T09:00:00Z","2026-12-01T09:30:00Z"],…]},"merged":[[…],…]}`
//! (UTC, sorted, merged, clipped; tentative time counts as busy). Without it, a table. An
//! unknown calendar gets an empty list and a warning on stderr. Exit status: 0, or 2 for a
//! usage error. Windows beyond the stored horizon (or in another zone than the instances were
//! written in) are answered by expanding the stored events, more slowly.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::process::ExitCode;

use calscope::{BusyAnswer, CalendarId, SqliteStore, Zone};
use chrono::{DateTime, Utc};

const USAGE: &str =
    "usage: busy --db FILE --from YYYY-MM-DDTHH:MM:SSZ --to YYYY-MM-DDTHH:MM:SSZ [--tz ZONE] [--json] ID ...
  ZONE: an IANA or Windows zone name, for floating times and dates (default UTC)";

struct Args {
    db: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone: Zone,
    json: bool,
    calendars: Vec<CalendarId>,
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(why) => {
            eprintln!("busy: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let answer = futures::executor::block_on(async {
        let store = SqliteStore::open(&args.db)?;
        store.busy(&args.calendars, args.from, args.to, args.zone).await
    });
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("busy: {e}");
            return ExitCode::from(1);
        }
    };
    for cal in &answer.unknown {
        eprintln!("busy: warning: unknown calendar {} (never synced into {})", cal.as_str(), args.db);
    }
    for w in &answer.warnings {
        eprintln!("busy: warning: {w}");
    }
    if args.json {
        println!("{}", json(&args, &answer));
    } else {
        print!("{}", table(&args, &answer));
    }
    ExitCode::SUCCESS
}

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn spans_json(spans: &[(DateTime<Utc>, DateTime<Utc>)]) -> String {
    let items: Vec<String> = spans.iter().map(|(s, e)| format!("[\"{}\",\"{}\"]", fmt(*s), fmt(*e))).collect();
    format!("[{}]", items.join(","))
}

/// The JSON object, keys in the documented order.
fn json(args: &Args, answer: &BusyAnswer) -> String {
    let calendars: Vec<String> = args
        .calendars
        .iter()
        .map(|c| {
            let spans = answer.calendars.get(c).map(|i| calscope::busy::spans(i)).unwrap_or_default();
            format!("{}:{}", quoted(c.as_str()), spans_json(&spans))
        })
        .collect();
    format!(
        "{{\"from\":\"{}\",\"to\":\"{}\",\"calendars\":{{{}}},\"merged\":{}}}",
        fmt(args.from),
        fmt(args.to),
        calendars.join(","),
        spans_json(&answer.merged_spans())
    )
}

fn table(args: &Args, answer: &BusyAnswer) -> String {
    let mut out = String::new();
    let width = args.calendars.iter().map(|c| c.as_str().len()).chain([8]).max().unwrap_or(8);
    let _ = writeln!(out, "{:width$}  {:20}  {:20}  TENTATIVE", "CALENDAR", "FROM", "TO");
    for cal in &args.calendars {
        for i in answer.calendars.get(cal).map(Vec::as_slice).unwrap_or_default() {
            let t = if i.tentative { "yes" } else { "" };
            let _ = writeln!(out, "{:width$}  {:20}  {:20}  {t}", cal.as_str(), fmt(i.start), fmt(i.end));
        }
    }
    for (s, e) in answer.merged_spans() {
        let _ = writeln!(out, "{:width$}  {:20}  {:20}", "merged", fmt(s), fmt(e));
    }
    let how = if answer.expanded { "expanded from events" } else { "from instances" };
    let _ = writeln!(out, "window {} .. {} in {}, {how}", fmt(args.from), fmt(args.to), args.zone);
    out
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut db, mut from, mut to, mut zone, mut json, mut calendars) =
        (None, None, None, Zone::UTC, false, Vec::new());
    let time = |flag: &str, v: Option<String>| -> Result<DateTime<Utc>, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        let t: DateTime<Utc> = v.parse().map_err(|_| format!("{flag}: not a UTC time: {v:?}"))?;
        if fmt(t) != v {
            return Err(format!("{flag}: write the time as YYYY-MM-DDTHH:MM:SSZ, not {v:?}"));
        }
        Ok(t)
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--db" => db = Some(it.next().ok_or("--db needs a value")?),
            "--from" => from = Some(time("--from", it.next())?),
            "--to" => to = Some(time("--to", it.next())?),
            "--tz" => {
                let v = it.next().ok_or("--tz needs a value")?;
                zone = Zone::named(&v).map_err(|_| format!("--tz: unknown time zone {v:?}"))?;
            }
            "--json" => json = true,
            "-h" | "--help" => return Err("help".to_owned()),
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            id => calendars.push(CalendarId::new(id).map_err(|e| format!("calendar id {id:?}: {e}"))?),
        }
    }
    let db = db.ok_or("--db is required")?;
    if !std::path::Path::new(&db).exists() {
        return Err(format!("no database at {db}"));
    }
    let (from, to) = (from.ok_or("--from is required")?, to.ok_or("--to is required")?);
    if from >= to {
        return Err("--from must be before --to".to_owned());
    }
    if calendars.is_empty() {
        return Err("name at least one calendar ID".to_owned());
    }
    Ok(Args { db, from, to, zone, json, calendars })
}
