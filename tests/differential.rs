//! calscope's expander against an independent one: the Python package `recurring-ical-events`
//! (`PyPI`, pinned in `.ci/dav.sh`), over the recurrence fixtures, the realworld corpus and
//! generated series (DST transitions in several zones, BYSETPOS, THISANDFUTURE, EXDATE in
//! other zones, all-day, floating). Both read the same files over the same window and zone and
//! must report the same instances (UID, start, end) and the same busy intervals.
//!
//! Where they disagree and calscope is right by RFC 5545, the file is in [`KNOWN`] with the
//! reason; the test fails if such a file comes to agree (the entry is then stale).
//!
//! The Python interpreter is `CALSCOPE_PYTHON` (`.ci/test` sets it to a virtualenv holding
//! the package). Without it the test fails under CI and is skipped, loudly, elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use calscope::busy::{BusyInterval, merge};
use calscope::ics::{ReadOptions, read_feed};
use calscope::{Busy, CalendarId, Expander, Zone};
use chrono::{DateTime, Utc};

/// Files where the two expanders disagree and calscope follows RFC 5545 (or, where the input
/// breaks the RFC, the writer's evident meaning); with the reason.
const KNOWN: &[(&str, &str)] = &[
    ("daily_gap_Europe_Berlin.ics", GAP),
    ("daily_gap_America_New_York.ics", GAP),
    ("daily_gap_Australia_Sydney.ics", GAP),
    ("daily_fold_America_New_York.ics", GAP),
    (
        "issue_117_until_before_dtstart.ics",
        "RFC 5545 3.8.5.3: DTSTART always counts as the first occurrence; the library drops it when UNTIL is earlier",
    ),
    ("rie__issue_117_until_before_dtstart.ics", "the same file in the realworld corpus"),
    (
        "issue_201_mixed_datetime_and_date.ics",
        "a DATE DTSTART is midnight in the host's zone (as floating time, RFC 5545 3.3.4); the library takes the zone of the DATE-TIME DTEND (UTC)",
    ),
    ("rie__issue_201_mixed_datetime_and_date.ics", "the same file in the realworld corpus"),
    (
        "issue_28_rrule_with_UTC_endinginZ.ics",
        "an all-day series with a UTC UNTIL (invalid; Exchange writes the last day's midnight in its zone, 23:00Z in London summer time): calscope reads the day in the series' zone and keeps that last day, the library compares UTC midnights and drops it",
    ),
    (
        "issue_75_range_parameter.ics",
        "a DATE UNTIL on a timed series (invalid by RFC 5545 3.3.10) is read as its whole day, the writer's evident meaning (khal #236); dateutil reads it as that day's midnight",
    ),
    ("rie__issue_75_range_parameter.ics", "the same file in the realworld corpus"),
    (
        "khal__tz_windows_format.ics",
        "a Windows zone name (New Zealand Standard Time) over a VTIMEZONE of that name holding CET's offsets: calscope takes a name the tz database knows from the database (the rule of ics/zones.rs), the library the broken definition",
    ),
    (
        "khal__event_dt_mixed_awareness.ics",
        "a DATE-TIME ending in Z is UTC whatever its TZID (RFC 5545 3.3.5: TZID MUST NOT be applied to UTC values); the library applies the TZID",
    ),
];

/// Where calscope is wrong or incomplete today, with what is missing; each one is a tracked gap
/// (the test fails when one comes to agree, so the list cannot go stale).
const NOT_YET: &[(&str, &str)] = &[
    (
        "ddayical__ProdID2.ics",
        "floating times in a feed naming X-WR-TIMEZONE (a non-standard extension): the library reads them in that zone, calscope in the host's zone, as RFC 5545 reads floating time; honouring X-WR-TIMEZONE is not decided",
    ),
    (
        "issue_201_test_matrix.ics",
        "the reader gives up on the components after a misspelt END:VTOOD; the library reads on",
    ),
    (
        "issue_61_time_zone_error.ics",
        "the reader rejects a VEVENT holding a continuation line without its leading space; the library accepts it",
    ),
    (
        "issue_253_additional_recurrence_id.ics",
        "stale override copies told apart by SEQUENCE (the library's heuristics of its issues 148/253) are not followed",
    ),
];

const GAP: &str = "RFC 5545 3.3.6: an hour DURATION is exact, so an occurrence at a DST gap or fold lasts one hour; the library adds wall-clock time (a zero-length or two-hour occurrence)";

type Row = (String, String, String);
/// One file's instances and merged busy intervals.
type Answer = (BTreeSet<Row>, Vec<BusyInterval>);

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// calscope's instances and busy intervals of one file.
fn ours(path: &Path, zone: Zone, from: DateTime<Utc>, to: DateTime<Utc>) -> Answer {
    let bytes = std::fs::read(path).unwrap();
    let cal = CalendarId::new("diff").unwrap();
    let mut rows = BTreeSet::new();
    let mut busy = Vec::new();
    let Ok(read) = read_feed(&cal, &bytes, &ReadOptions::default()) else { return (rows, busy) };
    for (uid, expansion) in Expander::new(zone).max_instances(100_000).expand_events(&read.events, from, to) {
        for i in expansion.instances {
            // A component without UID: calscope names it, the Python library leaves it empty.
            let uid = if uid.as_str().starts_with("calscope-synth-") { "" } else { uid.as_str() };
            rows.insert((uid.to_owned(), fmt(i.start), fmt(i.end)));
            if i.busy != Busy::Free {
                busy.push(BusyInterval::new(i.start, i.end, i.busy == Busy::Tentative));
            }
        }
    }
    (rows, merge(busy, from, to))
}

/// The Python expander's instances and busy intervals, per file (None where it failed).
fn theirs(
    python: &str,
    files: &[PathBuf],
    zone: Zone,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> BTreeMap<PathBuf, Option<Answer>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/expand.py");
    let query = serde_json::json!({
        "files": files.iter().map(|f| f.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "from": fmt(from), "to": fmt(to), "tz": zone.name(),
    });
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the Python expander");
    serde_json::to_writer(child.stdin.take().unwrap(), &query).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the Python expander failed");
    let answer: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let parse = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
    answer
        .into_iter()
        .map(|(path, v)| {
            let Some(list) = v.get("instances").and_then(|l| l.as_array()) else { return (PathBuf::from(path), None) };
            let mut rows = BTreeSet::new();
            let mut busy = Vec::new();
            for r in list {
                let s = |i: usize| r.get(i).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
                let (start, end) = (parse(&s(1)), parse(&s(2)));
                rows.insert((s(0), fmt(start), fmt(end)));
                let free = s(3) == "CANCELLED" || s(4) == "TRANSPARENT" || end <= start;
                if !free {
                    busy.push(BusyInterval::new(start, end, s(3) == "TENTATIVE"));
                }
            }
            (PathBuf::from(path), Some((rows, merge(busy, from, to))))
        })
        .collect()
}

fn python() -> Option<String> {
    match std::env::var("CALSCOPE_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(std::env::var_os("CI").is_none(), "CALSCOPE_PYTHON is not set under CI (.ci/test sets it)");
            eprintln!("SKIPPED: the differential test needs CALSCOPE_PYTHON (a Python with recurring-ical-events)");
            None
        }
    }
}

/// Generated series: each file one case.
fn generated(dir: &Path) -> Vec<PathBuf> {
    let zones = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Sao_Paulo", "Asia/Kolkata"];
    let mut cases: Vec<(String, String)> = Vec::new();
    for z in zones {
        let slug = z.replace('/', "_");
        // Daily across both DST changes of the year, at a time that falls in the spring gap
        // in Europe and America (02:30), and one in the autumn fold (01:30).
        for (name, time) in [("gap", "023000"), ("fold", "013000"), ("nine", "090000")] {
            cases.push((
                format!("daily_{name}_{slug}"),
                format!("DTSTART;TZID={z}:20260101T{time}\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=400\r\n"),
            ));
        }
        cases.push((
            format!("weekly_until_utc_{slug}"),
            format!("DTSTART;TZID={z}:20260105T180000\r\nDTEND;TZID={z}:20260105T193000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20261231T235959Z\r\n"),
        ));
        cases.push((
            format!("exdate_elsewhere_{slug}"),
            format!("DTSTART;TZID={z}:20260105T100000\r\nDTEND;TZID={z}:20260105T110000\r\nRRULE:FREQ=WEEKLY;COUNT=20\r\nEXDATE:20260112T{}Z\r\nEXDATE;TZID=Pacific/Auckland:{}\r\n",
                utc_of(z, "20260112T100000"), auckland_of(z, "20260126T100000")),
        ));
        cases.push((
            format!("monthly_setpos_{slug}"),
            format!("DTSTART;TZID={z}:20260130T160000\r\nDURATION:PT45M\r\nRRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=24\r\n"),
        ));
        cases.push((
            format!("thisandfuture_{slug}"),
            format!("DTSTART;TZID={z}:20260302T090000\r\nDTEND;TZID={z}:20260302T100000\r\nRRULE:FREQ=WEEKLY;COUNT=30\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:CASE\r\nRECURRENCE-ID;RANGE=THISANDFUTURE;TZID={z}:20260601T090000\r\nDTSTART;TZID={z}:20260601T113000\r\nDTEND;TZID={z}:20260601T130000\r\n"),
        ));
    }
    cases.push((
        "allday_yearly".into(),
        "DTSTART;VALUE=DATE:20240229\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1\r\n".into(),
    ));
    cases.push(("allday_multi_day_weekly".into(), "DTSTART;VALUE=DATE:20260102\r\nDTEND;VALUE=DATE:20260104\r\nRRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=10\r\nEXDATE;VALUE=DATE:20260130\r\n".into()));
    cases.push((
        "floating_daily".into(),
        "DTSTART:20260320T083000\r\nDTEND:20260320T093000\r\nRRULE:FREQ=DAILY;COUNT=30;BYDAY=MO,TU,WE,TH,FR\r\n".into(),
    ));
    cases.push(("floating_hourly_setpos".into(), "DTSTART:20261020T000000\r\nDURATION:PT20M\r\nRRULE:FREQ=DAILY;BYHOUR=1,2,3;BYMINUTE=0,30;BYSETPOS=2,-1;COUNT=20\r\n".into()));
    cases.push((
        "utc_yearly_nth".into(),
        "DTSTART:20261126T170000Z\r\nDURATION:PT3H\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH\r\n".into(),
    ));
    cases.push(("rdate_mixed".into(), "DTSTART;TZID=Europe/Berlin:20260310T120000\r\nDTEND;TZID=Europe/Berlin:20260310T130000\r\nRDATE;TZID=America/New_York:20260401T080000\r\nRDATE;VALUE=PERIOD:20260415T100000Z/20260415T160000Z\r\nRDATE:20261025T010000Z\r\n".into()));
    cases.push(("moved_and_cancelled".into(), "DTSTART;TZID=America/New_York:20260302T150000\r\nDTEND;TZID=America/New_York:20260302T160000\r\nRRULE:FREQ=DAILY;COUNT=20\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:CASE\r\nRECURRENCE-ID;TZID=America/New_York:20260310T150000\r\nDTSTART;TZID=America/New_York:20260402T090000\r\nDTEND;TZID=America/New_York:20260402T100000\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:CASE\r\nRECURRENCE-ID:20260312T190000Z\r\nDTSTART;TZID=America/New_York:20260312T150000\r\nDTEND;TZID=America/New_York:20260312T160000\r\nSTATUS:CANCELLED\r\n".into()));
    std::fs::create_dir_all(dir).unwrap();
    cases
        .into_iter()
        .map(|(name, body)| {
            let body = body.replace("UID:CASE", &format!("UID:{name}"));
            let text = format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calscope//differential//EN\r\nBEGIN:VEVENT\r\nUID:{name}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{name}\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n"
            );
            let path = dir.join(format!("{name}.ics"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// `local` (basic format) in zone `z`, as the UTC basic time without `Z`.
fn utc_of(z: &str, local: &str) -> String {
    let zone = Zone::named(z).unwrap();
    let t = chrono::NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M%S").unwrap();
    zone.to_utc(t).format("%Y%m%dT%H%M%S").to_string()
}

/// `local` in zone `z`, as wall-clock time in Auckland.
fn auckland_of(z: &str, local: &str) -> String {
    let zone = Zone::named(z).unwrap();
    let t = chrono::NaiveDateTime::parse_from_str(local, "%Y%m%dT%H%M%S").unwrap();
    Zone::named("Pacific/Auckland").unwrap().wall(zone.to_utc(t)).format("%Y%m%dT%H%M%S").to_string()
}

fn compare(
    python: &str,
    files: &[PathBuf],
    zone: Zone,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(PathBuf, String)> {
    let theirs = theirs(python, files, zone, from, to);
    let mut disagreements = Vec::new();
    for file in files {
        let Some(Some((their_rows, their_busy))) = theirs.get(file) else { continue };
        let (our_rows, our_busy) = ours(file, zone, from, to);
        if &our_rows == their_rows && &our_busy == their_busy {
            continue;
        }
        let mut why = String::new();
        for r in our_rows.difference(their_rows).take(4) {
            let _ = write!(why, "\n    only calscope: {r:?}");
        }
        for r in their_rows.difference(&our_rows).take(4) {
            let _ = write!(why, "\n    only python:   {r:?}");
        }
        if &our_busy != their_busy {
            let _ = write!(why, "\n    busy intervals differ: {} vs {}", our_busy.len(), their_busy.len());
        }
        disagreements.push((file.clone(), why));
    }
    disagreements
}

#[test]
fn expansion_agrees_with_recurring_ical_events() {
    let Some(python) = python() else { return };
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["recurrence", "realworld"] {
        let mut list: Vec<_> = std::fs::read_dir(fixtures().join(dir))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ics"))
            .collect();
        list.sort();
        files.extend(list);
    }
    let tmp = std::env::temp_dir().join(format!("calscope-differential-{}", std::process::id()));
    let generated = generated(&tmp);
    assert!(generated.len() > 30);
    files.extend(generated);

    let mut failures = String::new();
    let mut disagreeing: BTreeSet<String> = BTreeSet::new();
    for (zone, from, to) in [
        ("Europe/Berlin", "2000-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
        ("America/Los_Angeles", "2019-03-01T00:00:00Z", "2019-04-15T00:00:00Z"),
        ("UTC", "2026-03-25T00:00:00Z", "2026-11-05T00:00:00Z"),
    ] {
        let zone = Zone::named(zone).unwrap();
        for (file, why) in compare(&python, &files, zone, from.parse().unwrap(), to.parse().unwrap()) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if KNOWN.iter().chain(NOT_YET).any(|(k, _)| *k == name) {
                disagreeing.insert(name);
                continue;
            }
            let _ = write!(failures, "\n  {name} ({zone}, {from}..{to}):{why}");
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    for (name, reason) in KNOWN.iter().chain(NOT_YET) {
        if !disagreeing.contains(*name) {
            let _ = write!(failures, "\n  {name} now agrees; remove it from KNOWN ({reason})");
        }
    }
    assert!(failures.is_empty(), "calscope and recurring-ical-events disagree:{failures}");
}
