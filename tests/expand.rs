//! The expander, one test per RFC 5545 feature (the rule engine's own tests, RFC 5545 3.8.5.3's
//! examples, are in `src/recur/rule.rs`), and the busy rule's decision table.

use calscope::busy::{BusyInterval, merge};
use calscope::{
    Busy, CalendarId, Event, EventStatus, Expander, Expansion, FingerprintPolicy, Series, Transparency, Zone,
};
use chrono::{DateTime, Utc};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn events(components: &[&str]) -> Vec<Event> {
    let cal = CalendarId::new("c").unwrap();
    components
        .iter()
        .map(|c| {
            let text = format!("BEGIN:VEVENT\r\nUID:u\r\n{}\r\nEND:VEVENT\r\n", c.trim().replace('\n', "\r\n"));
            Event::from_ics(&cal, &text, &FingerprintPolicy::default()).unwrap()
        })
        .collect()
}

fn expand_in(zone: &str, components: &[&str], from: &str, to: &str) -> Expansion {
    let events = events(components);
    let mut series = Series::new();
    for e in &events {
        series.push(e.key().recurrence_id, e.details());
    }
    Expander::new(Zone::named(zone).unwrap()).expand(&series, at(from), at(to))
}

/// `start/end` of each instance, as `HH:MM` pairs when `short`, else RFC 3339.
fn spans(x: &Expansion) -> Vec<String> {
    x.instances
        .iter()
        .map(|i| format!("{}/{}", i.start.format("%Y-%m-%dT%H:%M"), i.end.format("%Y-%m-%dT%H:%M")))
        .collect()
}

fn expand(components: &[&str], from: &str, to: &str) -> Expansion {
    expand_in("UTC", components, from, to)
}

#[test]
fn rrule_count_and_until_in_utc_or_local() {
    let x = expand(
        &["DTSTART;TZID=Europe/Berlin:20260105T090000\nRRULE:FREQ=DAILY;COUNT=3"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(
        spans(&x),
        ["2026-01-05T08:00/2026-01-05T08:00", "2026-01-06T08:00/2026-01-06T08:00", "2026-01-07T08:00/2026-01-07T08:00"]
    );
    // UNTIL in UTC on a zoned series: 08:00Z on the 7th is 09:00 Berlin, the last instance.
    let x = expand(
        &["DTSTART;TZID=Europe/Berlin:20260105T090000\nRRULE:FREQ=DAILY;UNTIL=20260107T080000Z"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(x.instances.len(), 3);
    // A local UNTIL is wall-clock time in the series' zone.
    let x = expand(
        &["DTSTART;TZID=Europe/Berlin:20260105T090000\nRRULE:FREQ=DAILY;UNTIL=20260107T085959"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(x.instances.len(), 2);
}

#[test]
fn rrule_bysetpos_negative_byday_bymonthday_interval() {
    let x = expand(
        &["DTSTART:20260130T160000Z\nRRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=3"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(
        spans(&x),
        ["2026-01-30T16:00/2026-01-30T16:00", "2026-02-27T16:00/2026-02-27T16:00", "2026-03-31T16:00/2026-03-31T16:00"]
    );
    let x = expand(
        &["DTSTART:20260126T100000Z\nRRULE:FREQ=MONTHLY;INTERVAL=2;BYDAY=-1MO;COUNT=3"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(
        x.instances.iter().map(|i| i.start.format("%m-%d").to_string()).collect::<Vec<_>>(),
        ["01-26", "03-30", "05-25"]
    );
    let x = expand(
        &["DTSTART:20260115T100000Z\nRRULE:FREQ=MONTHLY;BYMONTHDAY=15,-1;COUNT=4"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(
        x.instances.iter().map(|i| i.start.format("%m-%d").to_string()).collect::<Vec<_>>(),
        ["01-15", "01-31", "02-15", "02-28"]
    );
}

#[test]
fn infinite_rules_stop_at_the_window_and_seek_past_old_starts() {
    // Started 1990, asked for one week in 2026: seven instances, no walk of 36 years needed.
    let x = expand(
        &["DTSTART:19900101T090000Z\nDURATION:PT30M\nRRULE:FREQ=DAILY"],
        "2026-12-01T00:00:00Z",
        "2026-12-08T00:00:00Z",
    );
    assert_eq!(x.instances.len(), 7);
    assert_eq!(x.instances[0].start, at("2026-12-01T09:00:00Z"));
    assert!(!x.truncated && x.diagnostics.is_empty());
}

#[test]
fn rdate_as_date_date_time_and_period() {
    let x = expand(
        &[
            "DTSTART:20260301T100000Z\nDURATION:PT1H\nRDATE:20260302T120000Z,20260303T120000Z\nRDATE;TZID=America/New_York:20260310T080000\nRDATE;VALUE=PERIOD:20260315T100000Z/PT3H\nRDATE;VALUE=PERIOD:20260316T100000Z/20260316T103000Z",
        ],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(
        spans(&x),
        [
            "2026-03-01T10:00/2026-03-01T11:00",
            "2026-03-02T12:00/2026-03-02T13:00",
            "2026-03-03T12:00/2026-03-03T13:00",
            "2026-03-10T12:00/2026-03-10T13:00",
            "2026-03-15T10:00/2026-03-15T13:00",
            "2026-03-16T10:00/2026-03-16T10:30",
        ]
    );
    let x = expand(
        &["DTSTART;VALUE=DATE:20260301\nRDATE;VALUE=DATE:20260401,20260501"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(x.instances.len(), 3);
    assert_eq!(x.instances[2].end - x.instances[2].start, chrono::Duration::days(1));
}

#[test]
fn exdate_in_any_zone_and_a_date_excludes_its_day() {
    let x = expand(
        &[
            "DTSTART;TZID=Europe/Berlin:20260105T100000\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=6\nEXDATE:20260106T090000Z\nEXDATE;TZID=America/New_York:20260107T040000\nEXDATE;VALUE=DATE:20260108",
        ],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    let days: Vec<_> = x.instances.iter().map(|i| i.start.format("%d").to_string()).collect();
    assert_eq!(days, ["05", "09", "10"]);
}

#[test]
fn overrides_moved_into_and_out_of_the_window_and_cancelled() {
    let master = "DTSTART:20260302T150000Z\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=10";
    // The 3rd moves to April (out of a March window), the 4th is cancelled, and one from
    // the 10th moves into a window that the rule alone would not reach.
    let moved_out = "RECURRENCE-ID:20260303T150000Z\nDTSTART:20260402T090000Z\nDURATION:PT1H";
    let cancelled = "RECURRENCE-ID:20260304T150000Z\nDTSTART:20260304T150000Z\nDURATION:PT1H\nSTATUS:CANCELLED";
    let x = expand(&[master, moved_out, cancelled], "2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z");
    assert_eq!(
        x.instances.iter().map(|i| (i.start.format("%d").to_string(), i.busy)).collect::<Vec<_>>(),
        [("02".into(), Busy::Busy), ("04".into(), Busy::Free), ("05".into(), Busy::Busy)]
    );
    let x = expand(&[master, moved_out], "2026-04-02T00:00:00Z", "2026-04-03T00:00:00Z");
    assert_eq!(spans(&x), ["2026-04-02T09:00/2026-04-02T10:00"]);
    assert_eq!(x.instances[0].recurrence_id.to_string(), "20260303T150000Z");
}

#[test]
fn range_thisandfuture_shifts_later_instances_and_takes_the_override_length() {
    let x = expand(
        &[
            "DTSTART;TZID=Europe/Berlin:20260302T090000\nDTEND;TZID=Europe/Berlin:20260302T100000\nRRULE:FREQ=WEEKLY;COUNT=4",
            "RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Berlin:20260316T090000\nDTSTART;TZID=Europe/Berlin:20260316T113000\nDTEND;TZID=Europe/Berlin:20260316T130000\nTRANSP:TRANSPARENT",
        ],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    // Berlin is +01:00 until 29 March, +02:00 after.
    assert_eq!(
        spans(&x),
        [
            "2026-03-02T08:00/2026-03-02T09:00",
            "2026-03-09T08:00/2026-03-09T09:00",
            "2026-03-16T10:30/2026-03-16T12:00",
            "2026-03-23T10:30/2026-03-23T12:00"
        ]
    );
    assert!(x.instances[2..].iter().all(|i| i.busy == Busy::Free));
    assert_eq!(x.instances[3].recurrence_id.to_string(), "20260323T080000Z");
}

#[test]
fn dtend_duration_or_neither() {
    let w = ("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    let one = |c: &str| spans(&expand(&[c], w.0, w.1)).join(" ");
    assert_eq!(one("DTSTART:20260301T100000Z\nDTEND:20260301T113000Z"), "2026-03-01T10:00/2026-03-01T11:30");
    assert_eq!(one("DTSTART:20260301T100000Z\nDURATION:PT45M"), "2026-03-01T10:00/2026-03-01T10:45");
    // Neither: a DATE lasts one day, a DATE-TIME has zero length (and is not busy).
    assert_eq!(one("DTSTART;VALUE=DATE:20260301"), "2026-03-01T00:00/2026-03-02T00:00");
    assert_eq!(one("DTSTART:20260301T100000Z"), "2026-03-01T10:00/2026-03-01T10:00");
    assert_eq!(expand(&["DTSTART:20260301T100000Z"], w.0, w.1).instances[0].busy, Busy::Free);
}

#[test]
fn dates_and_floating_times_are_read_in_the_host_zone() {
    let c = ["DTSTART;VALUE=DATE:20260301\nRRULE:FREQ=DAILY;COUNT=2", "DTSTART:20260310T090000\nDURATION:PT1H"];
    let berlin = expand_in("Europe/Berlin", &c[..1], "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    assert_eq!(spans(&berlin)[0], "2026-02-28T23:00/2026-03-01T23:00");
    let tokyo = expand_in("Asia/Tokyo", &c[1..], "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    assert_eq!(spans(&tokyo), ["2026-03-10T00:00/2026-03-10T01:00"]);
    assert_eq!(tokyo.instances[0].recurrence_id.to_string(), "20260310T090000");
}

#[test]
fn tzids_from_iana_windows_names_and_olson_paths() {
    for tzid in ["Europe/Berlin", "W. Europe Standard Time", "/mozilla.org/20050126_1/Europe/Berlin"] {
        let x = expand(
            &[&format!("DTSTART;TZID={tzid}:20260701T090000\nDURATION:PT1H")],
            "2026-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        );
        assert_eq!(spans(&x), ["2026-07-01T07:00/2026-07-01T08:00"], "{tzid}");
    }
    // An unknown zone: floating time in the host's zone, with a diagnostic.
    let x = expand_in(
        "Asia/Tokyo",
        &["DTSTART;TZID=Mars/Olympus:20260701T090000\nRRULE:FREQ=DAILY;COUNT=1"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(x.instances[0].start, at("2026-07-01T00:00:00Z"));
    assert_eq!(x.diagnostics.len(), 1);
}

#[test]
fn dst_gap_moves_forward_fold_takes_the_first_and_wall_time_is_kept() {
    let x = expand(
        &["DTSTART;TZID=Europe/Berlin:20260328T023000\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=3"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    // 02:30 on 29 March does not exist: moved forward by the gap to 03:30 CEST (01:30Z).
    assert_eq!(
        spans(&x),
        ["2026-03-28T01:30/2026-03-28T02:30", "2026-03-29T01:30/2026-03-29T02:30", "2026-03-30T00:30/2026-03-30T01:30"]
    );
    let x = expand(
        &[
            "DTSTART;TZID=Europe/Berlin:20261024T023000\nDTEND;TZID=Europe/Berlin:20261024T033000\nRRULE:FREQ=DAILY;COUNT=3",
        ],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    // 02:30 on 25 October occurs twice: the first (CEST, 00:30Z); DTEND keeps its wall-clock distance.
    assert_eq!(
        spans(&x),
        ["2026-10-24T00:30/2026-10-24T01:30", "2026-10-25T00:30/2026-10-25T02:30", "2026-10-26T01:30/2026-10-26T02:30"]
    );
}

#[test]
fn caps_and_malformed_rules_give_diagnostics_never_a_hang() {
    let events = events(&["DTSTART:20260101T000000Z\nDURATION:PT1S\nRRULE:FREQ=SECONDLY"]);
    let series = Series::new().with_master(events[0].details());
    let x = Expander::new(Zone::UTC).max_instances(1000).expand(
        &series,
        at("2026-01-01T00:00:00Z"),
        at("2027-01-01T00:00:00Z"),
    );
    assert_eq!(x.instances.len(), 1000);
    assert!(x.truncated && !x.diagnostics.is_empty());
    let x = expand(
        &["DTSTART:20260101T090000Z\nDURATION:PT1H\nRRULE:FREQ=SOMETIMES;BYDAY=XX"],
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(spans(&x), ["2026-01-01T09:00/2026-01-01T10:00"]);
    assert_eq!(x.diagnostics.len(), 1);
    // A rule that can never match stops with a diagnostic.
    let x = expand(
        &["DTSTART:20260101T090000Z\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"],
        "2026-01-01T00:00:00Z",
        "2100-01-01T00:00:00Z",
    );
    assert_eq!(x.instances.len(), 1);
}

#[test]
fn an_override_without_its_master_is_its_own_instance() {
    let x = expand(
        &["RECURRENCE-ID:20260303T150000Z\nDTSTART:20260303T160000Z\nDURATION:PT1H\nSTATUS:TENTATIVE"],
        "2026-03-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
    );
    assert_eq!(spans(&x), ["2026-03-03T16:00/2026-03-03T17:00"]);
    assert_eq!(x.instances[0].busy, Busy::Tentative);
}

/// The busy rule, one row per case of its table.
#[test]
fn busy_rule_decision_table() {
    let (a, b) = (at("2026-12-01T09:00:00Z"), at("2026-12-01T10:00:00Z"));
    let other = EventStatus::Other("X-LATER".into());
    let rows: [(Option<&EventStatus>, Option<Transparency>, bool, Busy); 9] = [
        (None, None, false, Busy::Busy),
        (Some(&EventStatus::Confirmed), None, false, Busy::Busy),
        (Some(&other), Some(Transparency::Opaque), false, Busy::Busy),
        (Some(&EventStatus::Tentative), None, false, Busy::Tentative),
        (Some(&EventStatus::Cancelled), None, false, Busy::Free),
        (Some(&EventStatus::Cancelled), Some(Transparency::Opaque), false, Busy::Free),
        (None, Some(Transparency::Transparent), false, Busy::Free),
        (Some(&EventStatus::Tentative), Some(Transparency::Transparent), false, Busy::Free),
        (None, None, true, Busy::Free),
    ];
    for (status, transp, zero, want) in rows {
        let end = if zero { a } else { b };
        assert_eq!(Busy::of(status, transp, a, end), want, "{status:?} {transp:?} zero={zero}");
    }
}

#[test]
fn busy_intervals_are_clipped_and_merged_when_they_touch() {
    let h = |h: u32| at(&format!("2026-12-01T{h:02}:00:00Z"));
    let got = merge(
        [
            BusyInterval::new(h(7), h(9), false),
            BusyInterval::new(h(9), h(10), false),
            BusyInterval::new(h(12), h(20), false),
        ],
        h(8),
        h(14),
    );
    assert_eq!(got, [BusyInterval::new(h(8), h(10), false), BusyInterval::new(h(12), h(14), false)]);
}

/// A fuzzer's find: `BYDAY=+6WE` never matches, and with COUNT the rule cannot seek; the walk
/// must stop at the window's end, not after its whole empty-period budget.
#[test]
fn an_impossible_rule_with_count_stops_at_the_window() {
    let events = events(&["DTSTART:20230920T120000Z\nRRULE:FREQ=DAILY;COUNT=9;BYMONTH=2;BYMONTHDAY=30"]);
    let series = Series::new().with_master(events[0].details());
    let x = Expander::new(Zone::UTC).expand(&series, at("2023-01-01T00:00:00Z"), at("2024-01-01T00:00:00Z"));
    assert_eq!(x.instances.len(), 1);
    // Without the window's bound the walk ends by its budget, which says so in a diagnostic.
    assert!(x.diagnostics.is_empty(), "stopped by the budget, not the window: {:?}", x.diagnostics);
}

/// A recurrence set is a set (RFC 5545 3.8.5.2): an RDATE on an occurrence the rule makes, or
/// the same RDATE twice, is one instance.
#[test]
fn rdate_on_a_rule_occurrence_is_one_instance() {
    let x = expand(
        &[
            "DTSTART:20260105T090000Z\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=3\nRDATE:20260106T090000Z,20260110T090000Z\nRDATE:20260110T090000Z",
        ],
        "2026-01-01T00:00:00Z",
        "2026-02-01T00:00:00Z",
    );
    assert_eq!(
        spans(&x),
        [
            "2026-01-05T09:00/2026-01-05T10:00",
            "2026-01-06T09:00/2026-01-06T10:00",
            "2026-01-07T09:00/2026-01-07T10:00",
            "2026-01-10T09:00/2026-01-10T10:00"
        ]
    );
}

/// An occurrence is one instance: a feed that sends the same override twice (seen in the
/// recurrence fixtures' `issue_164_duplicated_event.ics`; the fuzzer replayed it) gives one
/// instance for it, the first override's, and a diagnostic. Also past the point where the
/// series switches from a scan to a set of recurrence ids.
#[test]
fn the_same_override_twice_is_one_instance() {
    let x = expand(
        &[
            "DTSTART;VALUE=DATE:20240401\nDTEND;VALUE=DATE:20240408\nRRULE:FREQ=WEEKLY;INTERVAL=3;BYDAY=MO",
            "RECURRENCE-ID;VALUE=DATE:20240826\nDTSTART;VALUE=DATE:20240826\nDTEND;VALUE=DATE:20240902",
            "RECURRENCE-ID;VALUE=DATE:20240826\nDTSTART;VALUE=DATE:20240827\nDTEND;VALUE=DATE:20240902",
        ],
        "2024-08-01T00:00:00Z",
        "2024-10-01T00:00:00Z",
    );
    assert_eq!(
        spans(&x),
        ["2024-08-05T00:00/2024-08-12T00:00", "2024-08-26T00:00/2024-09-02T00:00", "2024-09-16T00:00/2024-09-23T00:00"]
    );
    assert!(x.diagnostics.iter().any(|d| d.contains("the first is kept")), "{:?}", x.diagnostics);

    let mut components = vec!["DTSTART:20260101T090000Z\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=60".to_owned()];
    for (month, days) in [(1, 31), (2, 10)] {
        for day in 1..=days {
            components.push(format!(
                "RECURRENCE-ID:2026{month:02}{day:02}T090000Z\nDTSTART:2026{month:02}{day:02}T100000Z\nDURATION:PT1H"
            ));
        }
    }
    components.push("RECURRENCE-ID:20260105T090000Z\nDTSTART:20260105T150000Z\nDURATION:PT1H".to_owned());
    let refs: Vec<&str> = components.iter().map(String::as_str).collect();
    let x = expand(&refs, "2026-01-01T00:00:00Z", "2026-03-10T00:00:00Z");
    assert_eq!(x.instances.len(), 60);
    let fifth: Vec<_> = x.instances.iter().filter(|i| i.start.format("%m-%d").to_string() == "01-05").collect();
    assert_eq!(fifth.len(), 1);
    assert_eq!(fifth[0].start.format("%H").to_string(), "10", "the first override of the 5th is kept");
}

/// An occurrence is one instance, whatever makes two walls name one recurrence id: an hourly
/// rule on an all-day series (its ids are dates; the fuzzer found it) keeps one instance a
/// day, and local times a DST gap moves onto instants the rule also makes keep one each.
#[test]
fn walls_naming_one_recurrence_id_are_one_instance() {
    let x = expand(
        &["DTSTART;VALUE=DATE:20240729\nDTEND;VALUE=DATE:20240730\nRRULE:FREQ=HOURLY;INTERVAL=3;BYDAY=MO;COUNT=24"],
        "2024-07-01T00:00:00Z",
        "2024-09-01T00:00:00Z",
    );
    let days: Vec<String> = x.instances.iter().map(|i| i.recurrence_id.to_string()).collect();
    assert_eq!(days, ["20240729", "20240805", "20240812"], "{:?}", x.diagnostics);
    assert!(x.diagnostics.iter().any(|d| d.contains("the first is kept")), "{:?}", x.diagnostics);

    // 02:00 and 02:30 do not exist on 29 March 2026 in Berlin: they move to 03:00 and 03:30,
    // which the rule makes too.
    let x = expand_in(
        "UTC",
        &["DTSTART;TZID=Europe/Berlin:20260329T013000\nRRULE:FREQ=MINUTELY;INTERVAL=30;COUNT=6"],
        "2026-03-28T00:00:00Z",
        "2026-03-30T00:00:00Z",
    );
    assert_eq!(
        x.instances.iter().map(|i| i.start.format("%H:%M").to_string()).collect::<Vec<_>>(),
        ["00:30", "01:00", "01:30", "02:00"]
    );
}

/// Two overrides of one occurrence, one with RANGE=THISANDFUTURE and one without (the second
/// a garbled parameter; the fuzzer's find): still one instance, the first override's.
#[test]
fn overrides_of_one_occurrence_differing_in_range_are_one_instance() {
    let x = expand(
        &[
            "DTSTART:20240901T120000Z\nDURATION:PT1H\nRRULE:FREQ=DAILY;INTERVAL=2;COUNT=10",
            "RECURRENCE-ID;RANGE=THISANDFUTURE:20240913T120000Z\nDTSTART:20240913T090000Z\nDURATION:PT1H",
            "RECURRENCE-ID:20240913T120000Z\nDTSTART:20240913T100000Z\nDURATION:PT1H",
        ],
        "2024-09-01T00:00:00Z",
        "2024-10-01T00:00:00Z",
    );
    let ids: Vec<String> = x.instances.iter().map(|i| i.recurrence_id.to_string()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    assert_eq!(ids.len(), 10);
    let moved = x.instances.iter().find(|i| i.recurrence_id.to_string().starts_with("20240913")).unwrap();
    assert_eq!(moved.start.format("%H").to_string(), "09", "the first override is kept");
}
