//! The SQLite side of materialized instances: keeping `instances` in step with `events` inside
//! an apply's transaction, sliding the horizon, and busy queries.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::spans::{self, Months};
use super::sql::{TimeText, storage, time};
use crate::error::Result;
use crate::id::CalendarId;
use crate::recur::merge;
use crate::stores::instances::{
    BusyAnswer, Components, InstanceConfig, InstanceRow, SlideReport, Touched, changes, expanded_busy, for_expansion,
    parse_rid, rows_of, stored_details,
};
use crate::value::tz::Zone;

/// Schema version 2: the `instances` table and each calendar's horizon.
pub(super) const MIGRATION: &str = r"
CREATE TABLE IF NOT EXISTS instances (
    calendar_id   TEXT NOT NULL,
    uid           TEXT NOT NULL,
    recurrence_id TEXT NOT NULL,
    starts_at     TEXT NOT NULL,
    ends_at       TEXT NOT NULL,
    busy          INTEGER NOT NULL,
    tentative     INTEGER NOT NULL,
    PRIMARY KEY (calendar_id, uid, recurrence_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS instances_busy ON instances (calendar_id, ends_at, starts_at, tentative) WHERE busy = 1;
ALTER TABLE calendars ADD COLUMN instances_from TEXT;
ALTER TABLE calendars ADD COLUMN instances_to TEXT;
ALTER TABLE calendars ADD COLUMN instances_zone TEXT;
";

const UPSERT: &str = "
INSERT INTO instances (calendar_id, uid, recurrence_id, starts_at, ends_at, busy, tentative)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (calendar_id, uid, recurrence_id) DO UPDATE SET
    starts_at = excluded.starts_at, ends_at = excluded.ends_at, busy = excluded.busy, tentative = excluded.tentative
WHERE instances.starts_at IS NOT excluded.starts_at OR instances.ends_at IS NOT excluded.ends_at
   OR instances.busy IS NOT excluded.busy OR instances.tentative IS NOT excluded.tentative";

const DELETE: &str = "DELETE FROM instances WHERE calendar_id = ?1 AND uid = ?2 AND recurrence_id = ?3";

/// A calendar's stored horizon, and whether its `busy_months` are built.
struct Horizon {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone: String,
    months_built: bool,
}

fn horizon(conn: &Connection, calendar: &str) -> Result<Option<Horizon>> {
    Ok(head(conn, calendar)?.and_then(|row| row.horizon))
}

/// What a calendar's row says about its instances.
struct CalendarRow {
    /// Its horizon, if instances were ever materialized.
    horizon: Option<Horizon>,
}

/// A calendar's row: `None` when the store does not know it.
fn head(conn: &Connection, calendar: &str) -> Result<Option<CalendarRow>> {
    type Head = (Option<String>, Option<String>, Option<String>, Option<bool>);
    let row: Option<Head> = conn
        .prepare_cached(
            "SELECT instances_from, instances_to, instances_zone, busy_months FROM calendars WHERE calendar_id = ?1",
        )
        .map_err(storage("prepare"))?
        .query_row([calendar], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()
        .map_err(storage("read horizon"))?;
    Ok(row.map(|(f, t, z, built)| {
        let horizon = (|| {
            Some(Horizon {
                from: time(f.as_deref()?)?,
                to: time(t.as_deref()?)?,
                zone: z?,
                months_built: built.unwrap_or(false),
            })
        })();
        CalendarRow { horizon }
    }))
}

/// The stored components of one series, parsed for expansion.
fn components(conn: &Connection, calendar: &str, uid: &str) -> Result<Components> {
    let mut stmt = conn
        .prepare_cached("SELECT recurrence_id, raw, tzid FROM events WHERE calendar_id = ?1 AND uid = ?2")
        .map_err(storage("prepare"))?;
    let rows = stmt
        .query_map(params![calendar, uid], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
        })
        .map_err(storage("read series"))?;
    let mut out = Vec::new();
    for row in rows {
        let (rid, raw, tzid) = row.map_err(storage("read series"))?;
        out.push((parse_rid("sqlite", &rid)?, for_expansion(stored_details(&raw, tzid.as_deref()))));
    }
    Ok(out)
}

/// The stored instance rows of one series (unreadable times count as changed).
fn stored_rows(conn: &Connection, calendar: &str, uid: &str) -> Result<Vec<InstanceRow>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT recurrence_id, starts_at, ends_at, busy, tentative FROM instances WHERE calendar_id = ?1 AND uid = ?2",
        )
        .map_err(storage("prepare"))?;
    let rows = stmt
        .query_map(params![calendar, uid], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })
        .map_err(storage("read instances"))?;
    let mut out = Vec::new();
    for row in rows {
        let (rid, s, e, busy, tentative) = row.map_err(storage("read instances"))?;
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        out.push(InstanceRow {
            rid,
            starts_at: time(&s).unwrap_or(epoch),
            ends_at: time(&e).unwrap_or(epoch),
            busy,
            tentative,
        });
    }
    Ok(out)
}

/// Writes the difference between a series' stored and wanted rows, noting the months whose
/// busy time it may change; answers the rows written.
fn write(
    conn: &Connection,
    calendar: &str,
    uid: &str,
    (stored, wanted): (Vec<InstanceRow>, Vec<InstanceRow>),
    months: &mut Months,
) -> Result<u64> {
    let (upserts, removed) = changes(stored, wanted);
    for (new, old) in &upserts {
        if new.busy {
            months.add(new.starts_at, new.ends_at, new.tentative);
        }
        if let Some(old) = old.as_ref().filter(|o| o.busy) {
            months.note(old.starts_at, old.ends_at);
        }
    }
    for old in removed.iter().filter(|o| o.busy) {
        months.note(old.starts_at, old.ends_at);
    }
    let deletes: Vec<&str> = removed.iter().map(|r| r.rid.as_str()).collect();
    let mut n = 0u64;
    if !upserts.is_empty() {
        let mut up = conn.prepare_cached(UPSERT).map_err(storage("prepare"))?;
        for (r, _) in &upserts {
            let (s, e) = (TimeText::of(r.starts_at), TimeText::of(r.ends_at));
            n += up
                .execute(params![calendar, uid, r.rid, s.as_str(), e.as_str(), r.busy, r.tentative])
                .map_err(storage("write instance"))? as u64;
        }
    }
    if !deletes.is_empty() {
        let mut del = conn.prepare_cached(DELETE).map_err(storage("prepare"))?;
        for rid in &deletes {
            n += del.execute(params![calendar, uid, rid]).map_err(storage("delete instance"))? as u64;
        }
    }
    Ok(n)
}

fn save_horizon(conn: &Connection, calendar: &str, from: DateTime<Utc>, to: DateTime<Utc>, zone: Zone) -> Result<()> {
    let (f, t) = (TimeText::of(from), TimeText::of(to));
    conn.execute(
        "UPDATE calendars SET instances_from = ?2, instances_to = ?3, instances_zone = ?4 WHERE calendar_id = ?1
           AND (instances_from IS NOT ?2 OR instances_to IS NOT ?3 OR instances_zone IS NOT ?4)",
        params![calendar, f.as_str(), t.as_str(), zone.name()],
    )
    .map_err(storage("write horizon"))?;
    Ok(())
}

/// Brings a calendar's instances in step with its events after an apply wrote them (same
/// transaction; the calendar's row exists). `was_empty`: the calendar held no event before,
/// so the written components are whole series.
pub(super) fn maintain(
    conn: &Connection,
    calendar: &str,
    config: &InstanceConfig,
    now: DateTime<Utc>,
    was_empty: bool,
    touched: Touched,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let (from, to) = config.window(now);
    let expander = config.expander();
    let mut months = Months::new(from, to);
    let stored = horizon(conn, calendar)?;
    let built = stored.as_ref().is_some_and(|h| h.months_built && h.zone == config.zone_of().name());
    match stored {
        // First materialization, or another zone: every series, over the whole horizon.
        None if !was_empty => rebuild(conn, calendar, config, from, to, &mut months, warnings)?,
        Some(h) if h.zone != config.zone_of().name() => {
            rebuild(conn, calendar, config, from, to, &mut months, warnings)?;
        }
        stored => {
            let none_stored = was_empty
                && conn
                    .query_row("SELECT NOT EXISTS (SELECT 1 FROM instances WHERE calendar_id = ?1)", [calendar], |r| {
                        r.get::<_, bool>(0)
                    })
                    .map_err(storage("read instances"))?;
            if none_stored {
                // Every row of the calendar is written here: its months from them, unread.
                months = Months::all_rows(from, to);
            }
            let Touched { mut written, uids } = touched;
            for uid in uids {
                let comps = match (was_empty, written.remove(&uid)) {
                    (true, Some(c)) => c,
                    _ => components(conn, calendar, uid.as_str())?,
                };
                let refs: Vec<_> = comps.iter().map(|(r, d)| (*r, d)).collect();
                let (wanted, notes) = rows_of(&expander, &refs, from, to);
                warnings.extend(notes.into_iter().map(|n| format!("{calendar}/{uid}: {n}")));
                let stored_rows = if none_stored { Vec::new() } else { stored_rows(conn, calendar, uid.as_str())? };
                write(conn, calendar, uid.as_str(), (stored_rows, wanted), &mut months)?;
            }
            // The horizon moved ahead since the last apply: the newly covered days.
            if let Some(h) = stored
                && to > h.to
            {
                slide_calendar(conn, calendar, config, h.to, to, &mut months, warnings)?;
            }
        }
    }
    finish_months(conn, calendar, built, &mut months)?;
    save_horizon(conn, calendar, from, to, config.zone_of())
}

/// Writes the noted months of `calendar` (every month of the horizon when they were never
/// built, or built for another zone) and marks them built.
fn finish_months(conn: &Connection, calendar: &str, built: bool, months: &mut Months) -> Result<u64> {
    if !built {
        months.all();
    }
    let n = spans::refresh(conn, calendar, months)?;
    spans::mark_built(conn, calendar)?;
    Ok(n)
}

/// The UIDs of series that may have instances in `[from, to)`: recurring ones, overrides, and
/// single events near the window (floating and all-day times move by up to a day with the zone).
fn candidates(
    conn: &Connection,
    calendar: &str,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, Components>> {
    let slack = Duration::days(2);
    let (f, t) = (TimeText::of(from.map_or(DateTime::<Utc>::MIN_UTC, |f| f - slack)), TimeText::of(to + slack));
    let mut stmt = conn
        .prepare_cached(
            "SELECT uid, recurrence_id, raw, tzid FROM events WHERE calendar_id = ?1 AND uid IN (
                 SELECT uid FROM events WHERE calendar_id = ?1 AND (
                     rrule IS NOT NULL OR recurrence_id != '' OR starts_at IS NULL OR instr(raw, 'RDATE') > 0
                     OR (starts_at < ?3 AND coalesce(ends_at, starts_at) >= ?2)))",
        )
        .map_err(storage("prepare"))?;
    let rows = stmt
        .query_map(params![calendar, f.as_str(), t.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?))
        })
        .map_err(storage("read series"))?;
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for row in rows {
        let (uid, rid, raw, tzid) = row.map_err(storage("read series"))?;
        let parsed = (parse_rid("sqlite", &rid)?, for_expansion(stored_details(&raw, tzid.as_deref())));
        out.entry(uid).or_default().push(parsed);
    }
    Ok(out)
}

/// Every series of a calendar, re-expanded over `[from, to)` and diffed with its stored rows.
fn rebuild(
    conn: &Connection,
    calendar: &str,
    config: &InstanceConfig,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    months: &mut Months,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let expander = config.expander();
    let mut stored: BTreeMap<String, Vec<InstanceRow>> = BTreeMap::new();
    {
        let mut stmt = conn
            .prepare_cached("SELECT DISTINCT uid FROM instances WHERE calendar_id = ?1")
            .map_err(storage("prepare"))?;
        let uids: Vec<String> = stmt
            .query_map([calendar], |r| r.get(0))
            .map_err(storage("read instances"))?
            .collect::<rusqlite::Result<_>>()
            .map_err(storage("read instances"))?;
        for uid in uids {
            let rows = stored_rows(conn, calendar, &uid)?;
            stored.insert(uid, rows);
        }
    }
    for (uid, comps) in candidates(conn, calendar, Some(from), to)? {
        let refs: Vec<_> = comps.iter().map(|(r, d)| (*r, d)).collect();
        let (wanted, notes) = rows_of(&expander, &refs, from, to);
        warnings.extend(notes.into_iter().map(|n| format!("{calendar}/{uid}: {n}")));
        let old = stored.remove(&uid).unwrap_or_default();
        write(conn, calendar, &uid, (old, wanted), months)?;
    }
    for (uid, old) in stored {
        write(conn, calendar, &uid, (old, Vec::new()), months)?;
    }
    Ok(())
}

/// Writes the instances of `[old_to, new_to)`: only rows that are new or changed.
fn slide_calendar(
    conn: &Connection,
    calendar: &str,
    config: &InstanceConfig,
    old_to: DateTime<Utc>,
    new_to: DateTime<Utc>,
    months: &mut Months,
    warnings: &mut Vec<String>,
) -> Result<u64> {
    months.note(old_to, new_to);
    // These rows do not pass through `Months::add`: the months are read back.
    months.forget_rows();
    let expander = config.expander();
    let mut n = 0;
    let mut up = conn.prepare_cached(UPSERT).map_err(storage("prepare"))?;
    for (uid, comps) in candidates(conn, calendar, Some(old_to), new_to)? {
        let refs: Vec<_> = comps.iter().map(|(r, d)| (*r, d)).collect();
        let (rows, notes) = rows_of(&expander, &refs, old_to, new_to);
        warnings.extend(notes.into_iter().map(|x| format!("{calendar}/{uid}: {x}")));
        for r in rows {
            let (s, e) = (TimeText::of(r.starts_at), TimeText::of(r.ends_at));
            n += up
                .execute(params![calendar, uid, r.rid, s.as_str(), e.as_str(), r.busy, r.tentative])
                .map_err(storage("write instance"))? as u64;
        }
    }
    Ok(n)
}

/// Slides every calendar's horizon to the one of `now`.
pub(super) fn slide_all(conn: &mut Connection, config: &InstanceConfig, now: DateTime<Utc>) -> Result<SlideReport> {
    let (from, to) = config.window(now);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(storage("begin"))?;
    let calendars: Vec<String> = tx
        .prepare("SELECT calendar_id FROM calendars ORDER BY calendar_id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(storage("read calendars"))?;
    let mut report = SlideReport::default();
    for cal in calendars {
        let mut months = Months::new(from, to);
        let built = match horizon(&tx, &cal)? {
            Some(h) if h.zone == config.zone_of().name() => {
                if to > h.to {
                    report.written += slide_calendar(&tx, &cal, config, h.to, to, &mut months, &mut report.warnings)?;
                    report.calendars += 1;
                }
                h.months_built
            }
            _ => {
                rebuild(&tx, &cal, config, from, to, &mut months, &mut report.warnings)?;
                report.calendars += 1;
                false
            }
        };
        finish_months(&tx, &cal, built, &mut months)?;
        save_horizon(&tx, &cal, from, to, config.zone_of())?;
    }
    tx.commit().map_err(storage("commit"))?;
    Ok(report)
}

/// Answers a busy query: from `instances` where the stored horizon covers the window in the
/// asked zone, else by expanding the calendar's events.
pub(super) fn busy(
    conn: &Connection,
    config: Option<&InstanceConfig>,
    calendars: &[CalendarId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone: Zone,
) -> Result<BusyAnswer> {
    let mut per = Vec::new();
    let mut unknown = Vec::new();
    let mut expanded = false;
    let mut warnings = Vec::new();
    let mut expanded_rows = 0usize;
    for cal in calendars {
        let name = cal.as_str();
        let Some(stored) = head(conn, name)? else {
            unknown.push(cal.clone());
            per.push((cal.clone(), Vec::new()));
            continue;
        };
        let covered = stored
            .horizon
            .as_ref()
            .filter(|h| config.is_some() && h.zone == zone.name() && h.from <= from && to <= h.to);
        let intervals = match covered {
            Some(h) if h.months_built => spans::read(conn, name, from, to)?,
            // A database upgraded to schema 4 whose months are not built yet.
            Some(_) => merge(spans::busy_rows(conn, name, from, to)?, from, to),
            None => {
                expanded = true;
                let zoned = config.map_or_else(InstanceConfig::new, |c| *c).zone(zone).expander();
                let series = candidates(conn, name, Some(from), to)?;
                merge(expanded_busy(&zoned, name, series, (from, to), &mut expanded_rows, &mut warnings), from, to)
            }
        };
        per.push((cal.clone(), intervals));
    }
    let mut answer = BusyAnswer::of_merged(per, from, to);
    answer.unknown = unknown;
    answer.expanded = expanded;
    answer.warnings = warnings;
    Ok(answer)
}
