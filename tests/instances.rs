//! Materialized instances in SQLite: their write economy counted by the database (triggers on
//! `instances` and `busy_months`), the horizon, and busy queries against expansion from
//! `events`.

use calscope::{CalendarId, Engine, Event, FingerprintPolicy, InstanceConfig, MemorySource, SqliteStore, Zone};
use chrono::{DateTime, Duration, DurationRound as _, Utc};

use crate::common::{counted_db, remove_db, take_instance_writes, take_month_writes};

fn today() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::days(1)).unwrap()
}

/// A basic UTC time `days` from today at `hour`.
fn t(days: i64, hour: i64) -> String {
    (today() + Duration::days(days) + Duration::hours(hour)).format("%Y%m%dT%H%M%SZ").to_string()
}

fn event(cal: &CalendarId, body: &str, stamp: u32) -> Event {
    let ics = format!("BEGIN:VEVENT\r\n{body}\r\nDTSTAMP:20260101T0000{stamp:02}Z\r\nEND:VEVENT\r\n")
        .replace('\n', "\r\n")
        .replace("\r\r", "\r");
    Event::from_ics(cal, &ics, &FingerprintPolicy::default()).unwrap()
}

struct Feed {
    weekly: String,
    overrides: Vec<String>,
    singles: usize,
}

impl Feed {
    fn put(&self, source: &MemorySource, cal: &CalendarId, stamp: u32) {
        source.put(event(cal, &self.weekly, stamp));
        for o in &self.overrides {
            source.put(event(cal, o, stamp));
        }
        for i in 0..self.singles {
            let day = i64::try_from(i).unwrap();
            source.put(event(
                cal,
                &format!("UID:single-{i}\nDTSTART:{}\nDURATION:PT1H\nSUMMARY:s{i}", t(day, 9)),
                stamp,
            ));
        }
        source.put(event(
            cal,
            &format!("UID:daily\nDTSTART:{}\nDURATION:PT15M\nRRULE:FREQ=DAILY;COUNT=20", t(-5, 8)),
            stamp,
        ));
    }
}

#[tokio::test]
async fn instance_writes_follow_real_changes_only() {
    let path = counted_db("instances");
    let engine = Engine::new(SqliteStore::open(&path).unwrap());
    let cal = CalendarId::new("work").unwrap();
    let source = MemorySource::new();
    let mut feed = Feed {
        weekly: format!("UID:weekly\nDTSTART:{}\nDURATION:PT1H\nRRULE:FREQ=WEEKLY", t(-60, 10)),
        overrides: vec![],
        singles: 3,
    };
    feed.put(&source, &cal, 0);
    let r = engine.sync(&source, &cal).await;
    assert!(r.is_ok(), "{r:?}");
    let first = take_instance_writes(engine.store());
    // Weekly over 30 days back and 400 ahead: 62 or 63 occurrences (by weekday); 20 dailies;
    // 3 singles. All inserts.
    let weekly = first.iter().filter(|w| w.1 == "weekly").count();
    assert!((61..=63).contains(&weekly), "{weekly}");
    assert_eq!(first.iter().filter(|w| w.1 == "daily").count(), 20);
    assert_eq!(first.iter().filter(|w| w.1.starts_with("single")).count(), 3);
    assert!(first.iter().all(|w| w.0 == "insert"));
    // The busy time pre-merged per month: one row per month of the horizon with busy time.
    let months = take_month_writes(engine.store());
    assert!((14..=15).contains(&months.len()) && months.iter().all(|m| m.0 == "insert"), "{months:?}");

    // DTSTAMP churn: no event row, no instance row and no month is written.
    feed.put(&source, &cal, 1);
    let r = engine.sync(&source, &cal).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(take_instance_writes(engine.store()), Vec::<(String, String, String)>::new());
    assert_eq!(take_month_writes(engine.store()), Vec::<(String, i64)>::new());

    // One occurrence moved: one instance row.
    let original = t(3 * 7 - 60 + 63, 10);
    let moved_rid = original.clone();
    feed.overrides =
        vec![format!("UID:weekly\nRECURRENCE-ID:{moved_rid}\nDTSTART:{}\nDURATION:PT1H", t(3 * 7 - 60 + 63, 15))];
    feed.put(&source, &cal, 2);
    let r = engine.sync(&source, &cal).await;
    assert_eq!(r.inserted, 1, "{r:?}");
    let moved = take_instance_writes(engine.store());
    assert_eq!(moved, [("update".into(), "weekly".into(), moved_rid.clone())]);
    // Its month (or the two it moved between) rewritten, nothing else.
    let months = take_month_writes(engine.store());
    assert!((1..=2).contains(&months.len()) && months.iter().all(|m| m.0 == "update"), "{months:?}");

    // The same override moved again (its SEQUENCE-less text changes): still one row.
    feed.overrides =
        vec![format!("UID:weekly\nRECURRENCE-ID:{moved_rid}\nDTSTART:{}\nDURATION:PT2H", t(3 * 7 - 60 + 64, 15))];
    feed.put(&source, &cal, 3);
    let _ = engine.sync(&source, &cal).await;
    assert_eq!(take_instance_writes(engine.store()).len(), 1);

    // The rule changed (every other week): only that series' rows.
    feed.weekly = format!("UID:weekly\nDTSTART:{}\nDURATION:PT1H\nRRULE:FREQ=WEEKLY;INTERVAL=2", t(-60, 10));
    feed.put(&source, &cal, 4);
    let _ = engine.sync(&source, &cal).await;
    let changed = take_instance_writes(engine.store());
    assert!(!changed.is_empty());
    assert!(changed.iter().all(|w| w.1 == "weekly"), "{changed:?}");
    assert!(changed.iter().all(|w| w.0 == "delete" || w.0 == "update"), "{changed:?}");

    // A single event removed: its row goes.
    source.remove(&calscope::EventKey::new(cal.clone(), calscope::Uid::new("single-2").unwrap(), None));
    feed.singles = 2;
    let _ = engine.sync(&source, &cal).await;
    let removed = take_instance_writes(engine.store());
    assert_eq!(removed.iter().map(|w| (w.0.as_str(), w.1.as_str())).collect::<Vec<_>>(), [("delete", "single-2")]);
    remove_db(&path);
}

#[tokio::test]
async fn sliding_the_horizon_writes_only_the_newly_covered_occurrences() {
    let path = counted_db("slide");
    let engine = Engine::new(SqliteStore::open(&path).unwrap());
    let cal = CalendarId::new("work").unwrap();
    let source = MemorySource::new();
    source.put(event(&cal, &format!("UID:daily\nDTSTART:{}\nDURATION:PT1H\nRRULE:FREQ=DAILY", t(-100, 9)), 0));
    source.put(event(&cal, &format!("UID:far\nDTSTART:{}\nDURATION:PT1H", t(405, 9)), 0));
    source.put(event(&cal, &format!("UID:near\nDTSTART:{}\nDURATION:PT1H", t(2, 9)), 0));
    let _ = engine.sync(&source, &cal).await;
    let first = take_instance_writes(engine.store());
    assert_eq!(first.iter().filter(|w| w.1 == "daily").count(), 430);
    assert!(first.iter().all(|w| w.1 != "far"));

    // Seven days later: seven new daily occurrences and the far event, nothing else.
    let report = engine.store().slide_instances(today() + Duration::days(7)).await.unwrap();
    let slid = take_instance_writes(engine.store());
    assert_eq!(report.written, 8, "{report:?}");
    assert_eq!(slid.iter().filter(|w| w.1 == "daily").count(), 7);
    assert_eq!(slid.iter().filter(|w| w.1 == "far").count(), 1);
    assert!(slid.iter().all(|w| w.0 == "insert"));
    // The same day again: nothing.
    let again = engine.store().slide_instances(today() + Duration::days(7)).await.unwrap();
    assert_eq!(again.written, 0);
    assert!(take_instance_writes(engine.store()).is_empty());
    remove_db(&path);
}

#[tokio::test]
async fn busy_from_instances_equals_busy_expanded_from_events() {
    let cal = CalendarId::new("c").unwrap();
    let other = CalendarId::new("d").unwrap();
    let source = MemorySource::new();
    source.put(event(
        &cal,
        &format!(
            "UID:w\nDTSTART;TZID=Europe/Berlin:{}\nDURATION:PT1H\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE",
            t(-10, 9).trim_end_matches('Z')
        ),
        0,
    ));
    source.put(event(&cal, &format!("UID:x\nDTSTART:{}\nDURATION:PT3H\nSTATUS:TENTATIVE", t(4, 8)), 0));
    source.put(event(&cal, &format!("UID:y\nDTSTART:{}\nDURATION:PT3H\nTRANSP:TRANSPARENT", t(5, 8)), 0));
    source.put(event(&cal, "UID:allday\nDTSTART;VALUE=DATE:20261224\nRRULE:FREQ=YEARLY", 0));
    source.put(event(&other, &format!("UID:z\nDTSTART:{}\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=30", t(0, 9)), 0));
    let with = Engine::new(
        SqliteStore::open_in_memory()
            .unwrap()
            .with_instances(InstanceConfig::new().zone(Zone::named("Europe/Berlin").unwrap())),
    );
    let without = Engine::new(SqliteStore::open_in_memory().unwrap().without_instances());
    for e in [&with, &without] {
        for c in [&cal, &other] {
            assert!(e.sync(&source, c).await.is_ok());
        }
    }
    let zone = Zone::named("Europe/Berlin").unwrap();
    let (from, to) = (today(), today() + Duration::days(365));
    let cals = [cal.clone(), other.clone(), CalendarId::new("nobody").unwrap()];
    let a = with.store().busy(&cals, from, to, zone).await.unwrap();
    let b = without.store().busy(&cals, from, to, zone).await.unwrap();
    assert!(!a.expanded && b.expanded);
    assert_eq!(a.calendars, b.calendars);
    assert_eq!(a.merged, b.merged);
    assert_eq!(a.unknown, [CalendarId::new("nobody").unwrap()]);
    assert!(a.calendars[&cal].iter().any(|i| i.tentative));
    // Beyond the horizon, and in another zone: expanded, and still the same answer.
    let far = (today() + Duration::days(500), today() + Duration::days(560));
    let a = with.store().busy(&cals, far.0, far.1, zone).await.unwrap();
    let b = without.store().busy(&cals, far.0, far.1, zone).await.unwrap();
    assert!(a.expanded);
    assert_eq!(a.merged, b.merged);
    assert!(!a.merged.is_empty());
    let tokyo = Zone::named("Asia/Tokyo").unwrap();
    let a = with.store().busy(&cals, from, to, tokyo).await.unwrap();
    let b = without.store().busy(&cals, from, to, tokyo).await.unwrap();
    assert!(a.expanded);
    assert_eq!(a.merged, b.merged);
}

/// Busy time that crosses or meets a month's edge, asked for over windows that cut months
/// anywhere: the answer from `busy_months` equals the one expanded from `events`. A database
/// whose months were never built (upgraded from schema 3) answers from `instances` until a
/// slide or an apply builds them.
#[tokio::test]
async fn busy_months_join_at_month_edges_and_upgraded_stores_build_them() {
    use chrono::Datelike as _;
    let cal = CalendarId::new("edges").unwrap();
    let source = MemorySource::new();
    let later = today() + Duration::days(40);
    let edge = chrono::NaiveDate::from_ymd_opt(later.year(), later.month(), 1)
        .unwrap()
        .checked_add_months(chrono::Months::new(1))
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let basic = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let put = |uid: &str, start: DateTime<Utc>, hours: i64, extra: &str| {
        source.put(event(&cal, &format!("UID:{uid}\nDTSTART:{}\nDURATION:PT{hours}H{extra}", basic(start)), 0));
    };
    put("across", edge - Duration::hours(2), 4, "");
    put("before", edge - Duration::hours(5), 3, ""); // meets `across`' start: one span
    put("tentative-after", edge + Duration::hours(2), 1, "\nSTATUS:TENTATIVE"); // meets its end, tentative
    put("next-edge", edge + Duration::days(31) - Duration::hours(1), 1, ""); // ends at or before the next edge
    source.put(event(
        &cal,
        &format!("UID:nightly\nDTSTART:{}\nDURATION:PT3H\nRRULE:FREQ=DAILY", basic(today() - Duration::hours(1))),
        0,
    ));
    let path = counted_db("edges");
    let with = Engine::new(SqliteStore::open(&path).unwrap());
    let without = Engine::new(SqliteStore::open_in_memory().unwrap().without_instances());
    for e in [&with, &without] {
        assert!(e.sync(&source, &cal).await.is_ok());
    }
    let windows = [
        (today(), today() + Duration::days(365)),
        (edge - Duration::hours(3), edge + Duration::hours(3)),
        (edge - Duration::minutes(7), edge + Duration::minutes(7)),
        (edge, edge + Duration::seconds(1)),
        (today() + Duration::hours(13) + Duration::minutes(17), edge + Duration::days(45) + Duration::minutes(3)),
    ];
    let cals = [cal.clone()];
    for (from, to) in windows {
        let a = with.store().busy(&cals, from, to, Zone::UTC).await.unwrap();
        let b = without.store().busy(&cals, from, to, Zone::UTC).await.unwrap();
        assert!(!a.expanded && b.expanded);
        assert_eq!(a.calendars, b.calendars, "{from} – {to}");
        assert_eq!(a.merged, b.merged, "{from} – {to}");
    }
    let around =
        with.store().busy(&cals, edge - Duration::hours(6), edge + Duration::hours(6), Zone::UTC).await.unwrap();
    let spans: Vec<_> = around.calendars[&cal].iter().map(|i| (i.start, i.end, i.tentative)).collect();
    assert!(spans.contains(&(edge - Duration::hours(5), edge + Duration::hours(2), false)), "{spans:?}");
    assert!(spans.contains(&(edge + Duration::hours(2), edge + Duration::hours(3), true)), "{spans:?}");

    // An empty or reversed window, down to the first instant there is: no busy time, no panic.
    for (from, to) in [(edge, edge), (edge, edge - Duration::hours(1)), (edge, DateTime::<Utc>::MIN_UTC)] {
        let a = with.store().busy(&cals, from, to, Zone::UTC).await.unwrap();
        assert!(a.merged.is_empty() && a.calendars[&cal].is_empty(), "{from} – {to}: {a:?}");
    }

    // As an upgraded database: months not built. The answer comes from `instances`, the same.
    let name = cal.as_str().to_owned();
    with.store()
        .with_connection(move |c| {
            c.execute("UPDATE calendars SET busy_months = NULL WHERE calendar_id = ?1", [name])?;
            c.execute("DELETE FROM busy_months", [])?;
            Ok(())
        })
        .await
        .unwrap();
    take_month_writes(with.store());
    let (from, to) = windows[0];
    let b = without.store().busy(&cals, from, to, Zone::UTC).await.unwrap();
    assert_eq!(with.store().busy(&cals, from, to, Zone::UTC).await.unwrap().merged, b.merged);
    // The daily slide (or the next apply that writes) builds them; the answer stays.
    with.store().slide_instances(Utc::now()).await.unwrap();
    assert!(!take_month_writes(with.store()).is_empty());
    assert_eq!(with.store().busy(&cals, from, to, Zone::UTC).await.unwrap().merged, b.merged);
    with.store().slide_instances(Utc::now()).await.unwrap();
    assert!(with.sync(&source, &cal).await.is_ok());
    assert!(take_month_writes(with.store()).is_empty());
    remove_db(&path);
}

/// A feed's own VTIMEZONE under a name the tz database does not know (`US-Eastern`, as Lotus
/// Notes and old exporters write): its events read their times in the zone the definition
/// matches, and a weekly series crossing the next US change to summer time keeps 09:00 local
/// (14:00Z, then 13:00Z). The same from `instances` (written by the apply, with the feed's
/// definitions at hand) and from stored events alone (a window past the horizon, or another
/// zone, expanded from `events`, whose `tzid` column holds the matched zone).
#[tokio::test]
async fn a_feeds_own_vtimezone_holds_in_expansion_from_stored_events() {
    use chrono::Datelike as _;
    // The next second Sunday of March at least ten days away, and the Thursday ten days before.
    let soon = today() + Duration::days(10);
    let year = if soon.month() < 3 { soon.year() } else { soon.year() + 1 };
    let march = chrono::NaiveDate::from_ymd_opt(year, 3, 1).unwrap();
    let change = march + Duration::days(i64::from((7 - march.weekday().num_days_from_sunday()) % 7) + 7);
    let first = change - Duration::days(10);
    let basic = |date: chrono::NaiveDate| date.format("%Y%m%d").to_string();
    let feed = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:US-Eastern\r\nBEGIN:STANDARD\r\nDTSTART:19671029T020000\r\nRRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\nEND:STANDARD\r\n\
BEGIN:DAYLIGHT\r\nDTSTART:19870405T020000\r\nRRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:weekly@notes\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=US-Eastern:{f}T090000\r\nDTEND;TZID=US-Eastern:{f}T093000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:far@notes\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=US-Eastern:{y}0715T090000\r\nDTEND;TZID=US-Eastern:{y}0715T100000\r\nRRULE:FREQ=DAILY;COUNT=2\r\nSUMMARY:Later\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n",
        f = basic(first),
        y = year + 3
    );
    let cal = CalendarId::new("notes").unwrap();
    let read = calscope::ics::read_feed(&cal, feed.as_bytes(), &calscope::ics::ReadOptions::default()).unwrap();
    let weekly = read.events.iter().find(|e| e.key().uid.as_str() == "weekly@notes").unwrap();
    match &weekly.details().start {
        Some(calscope::EventTime::Zoned { utc: Some(utc), .. }) => assert_eq!(utc.format("%H:%M").to_string(), "14:00"),
        other => panic!("the feed's zone was not applied: {other:?}"),
    }
    let engine = Engine::new(SqliteStore::open_in_memory().unwrap());
    let source = calscope::IcsSource::from_bytes(cal.clone(), feed.as_bytes().to_vec());
    let r = engine.sync(&source, &cal).await;
    assert!(r.is_ok(), "{r:?}");
    let spans = |a: &calscope::BusyAnswer| {
        a.merged
            .iter()
            .map(|i| format!("{}/{}", i.start.format("%m-%dT%H:%M"), i.end.format("%H:%M")))
            .collect::<Vec<_>>()
    };
    let day = |date: chrono::NaiveDate| date.format("%m-%d").to_string();
    let window = (
        first.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        (change + Duration::days(10)).and_hms_opt(0, 0, 0).unwrap().and_utc(),
    );
    let expected = [
        format!("{}T14:00/14:30", day(first)),
        format!("{}T14:00/14:30", day(first + Duration::days(7))),
        format!("{}T13:00/13:30", day(first + Duration::days(14))),
    ];
    // From `instances`.
    let a = engine.store().busy(std::slice::from_ref(&cal), window.0, window.1, Zone::UTC).await.unwrap();
    assert!(!a.expanded);
    assert_eq!(spans(&a), expected, "{:?}", a.warnings);
    // In another zone than the instances were written in: expanded from the stored events.
    let b = engine
        .store()
        .busy(std::slice::from_ref(&cal), window.0, window.1, Zone::named("Asia/Tokyo").unwrap())
        .await
        .unwrap();
    assert!(b.expanded);
    assert_eq!(spans(&b), expected, "{:?}", b.warnings);
    // Past the horizon (a July, so summer time): expanded too.
    let july = chrono::NaiveDate::from_ymd_opt(year + 3, 7, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let c = engine.store().busy(std::slice::from_ref(&cal), july, july + Duration::days(31), Zone::UTC).await.unwrap();
    assert!(c.expanded);
    assert_eq!(spans(&c), ["07-15T13:00/14:00", "07-16T13:00/14:00"], "{:?}", c.warnings);
}

type MonthRows = Vec<(i64, Vec<u8>, Option<Vec<u8>>)>;

/// A calendar's `busy_months` rows: (month, spans, pieces).
async fn month_rows(store: &SqliteStore, cal: &CalendarId) -> MonthRows {
    let name = cal.as_str().to_owned();
    store
        .with_connection(move |c| {
            c.prepare("SELECT month, spans, pieces FROM busy_months WHERE calendar_id = ?1 ORDER BY month")?
                .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .await
        .unwrap()
}

/// The months a store keeps up to date apply by apply (each from the busy rows an apply
/// changed) equal the months a new store builds from the same events on its first sync, and
/// the months built again from `instances`: after moves across a month's edge, a second
/// identical interval removed (the other stays busy), status changes, deletions and a new
/// rule. A month whose stored pieces disagree with `instances` is built again from them.
#[tokio::test]
async fn months_kept_by_changes_equal_months_built_from_scratch() {
    use chrono::Datelike as _;
    let cal = CalendarId::new("kept").unwrap();
    let source = MemorySource::new();
    let later = today() + Duration::days(40);
    let edge = chrono::NaiveDate::from_ymd_opt(later.year(), later.month(), 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    let edge = edge.and_utc();
    let basic = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let put = |body: String| source.put(event(&cal, &body, 0));
    let weekly =
        |rule: &str| format!("UID:weekly\nDTSTART:{}\nDURATION:PT2H\nRRULE:{rule}", basic(edge - Duration::days(29)));
    put(weekly("FREQ=WEEKLY"));
    put(format!("UID:twin-a\nDTSTART:{}\nDURATION:PT1H", basic(edge + Duration::days(3))));
    put(format!("UID:twin-b\nDTSTART:{}\nDURATION:PT1H", basic(edge + Duration::days(3))));
    put(format!("UID:across\nDTSTART:{}\nDURATION:P2D", basic(edge - Duration::days(1))));
    put(format!("UID:maybe\nDTSTART:{}\nDURATION:PT3H", basic(edge + Duration::days(10))));
    put(format!(
        "UID:daily\nDTSTART:{}\nDURATION:PT30M\nRRULE:FREQ=DAILY;COUNT=90",
        basic(today() + Duration::hours(7))
    ));
    let kept = Engine::new(SqliteStore::open_in_memory().unwrap());
    let check = |step: &'static str| {
        let (kept, source, cal) = (&kept, &source, &cal);
        async move {
            assert!(kept.sync(source, cal).await.is_ok(), "{step}");
            let fresh = Engine::new(SqliteStore::open_in_memory().unwrap());
            assert!(fresh.sync(source, cal).await.is_ok(), "{step}");
            let rows = month_rows(kept.store(), cal).await;
            assert!(!rows.is_empty());
            assert_eq!(rows, month_rows(fresh.store(), cal).await, "{step}");
        }
    };
    check("first sync").await;
    // The second occurrence moved across the edge and made longer.
    let rid = basic(edge - Duration::days(22));
    put(format!("UID:weekly\nRECURRENCE-ID:{rid}\nDTSTART:{}\nDURATION:PT5H", basic(edge + Duration::hours(20))));
    check("moved across the edge").await;
    source.remove(&calscope::EventKey::new(cal.clone(), calscope::Uid::new("twin-a").unwrap(), None));
    check("one of two identical intervals removed").await;
    put(format!("UID:maybe\nDTSTART:{}\nDURATION:PT3H\nSTATUS:TENTATIVE", basic(edge + Duration::days(10))));
    check("made tentative").await;
    put(format!("UID:twin-b\nDTSTART:{}\nDURATION:PT1H\nSTATUS:CANCELLED", basic(edge + Duration::days(3))));
    check("cancelled").await;
    source.remove(&calscope::EventKey::new(cal.clone(), calscope::Uid::new("across").unwrap(), None));
    check("a two-month event deleted").await;
    put(weekly("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR"));
    check("a new rule").await;

    // Pieces that disagree with `instances` (unreadable, missing as before schema 5, or
    // without a piece an apply removes): the months an apply touches are built again from
    // `instances`.
    let expected = month_rows(kept.store(), &cal).await;
    kept.store()
        .with_connection(|c| {
            c.execute(
                "UPDATE busy_months SET pieces = CASE month % 3 WHEN 0 THEN x'' WHEN 1 THEN NULL ELSE x'000000000100000000' END",
                [],
            )
        })
        .await
        .unwrap();
    source.remove(&calscope::EventKey::new(cal.clone(), calscope::Uid::new("weekly").unwrap(), None));
    source.remove(&calscope::EventKey::new(
        cal.clone(),
        calscope::Uid::new("weekly").unwrap(),
        Some(rid.parse().unwrap()),
    ));
    check("an apply over damaged pieces").await;
    put(weekly("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR"));
    put(format!("UID:weekly\nRECURRENCE-ID:{rid}\nDTSTART:{}\nDURATION:PT5H", basic(edge + Duration::hours(20))));
    check("and back").await;
    assert_eq!(month_rows(kept.store(), &cal).await, expected);

    // Sliding the horizon 45 days on (into a new month): the months kept by the slide equal
    // every month built again from `instances` at that horizon.
    let later = Utc::now() + Duration::days(45);
    kept.store().slide_instances(later).await.unwrap();
    let slid = month_rows(kept.store(), &cal).await;
    assert_ne!(slid, expected);
    kept.store().with_connection(|c| c.execute("UPDATE calendars SET busy_months = NULL", [])).await.unwrap();
    kept.store().slide_instances(later).await.unwrap();
    assert_eq!(month_rows(kept.store(), &cal).await, slid);
}

/// A calendar's first apply writes the instances its caller expanded only where the store
/// holds none of the calendar's yet; stale rows (a calendar row deleted by hand) are rebuilt
/// from the events instead, so nothing of them survives.
#[tokio::test]
async fn a_first_apply_over_stale_instance_rows_rebuilds_them() {
    let cal = CalendarId::new("stale").unwrap();
    let source = MemorySource::new();
    source.put(event(&cal, &format!("UID:one\nDTSTART:{}\nDURATION:PT1H", t(2, 9)), 0));
    let store = SqliteStore::open_in_memory().unwrap();
    store
        .with_connection(|c| {
            c.execute(
                "INSERT INTO instances VALUES ('stale', 'gone', '20260101T000000Z', '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z', 1, 0)",
                [],
            )
        })
        .await
        .unwrap();
    let engine = Engine::new(store);
    let r = engine.sync(&source, &cal).await;
    assert!(r.is_ok(), "{r:?}");
    let uids: Vec<String> = engine
        .store()
        .with_connection(|c| {
            c.prepare("SELECT uid FROM instances ORDER BY uid")?.query_map([], |r| r.get(0))?.collect()
        })
        .await
        .unwrap();
    assert_eq!(uids, ["one"]);
    let answer =
        engine.store().busy(std::slice::from_ref(&cal), today(), today() + Duration::days(5), Zone::UTC).await.unwrap();
    assert_eq!(answer.merged.len(), 1);
    assert!(!answer.expanded);
}
