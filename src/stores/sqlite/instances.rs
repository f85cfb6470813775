//! The SQLite side of materialized instances: keeping `instances` in step with `events` inside
//! an apply's transaction, sliding the horizon, and busy queries.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::spans::{self, Months};
use super::sql::{TimeText, storage, time};
use crate::error::{Error, ErrorKind, Result};
use crate::id::CalendarId;
use crate::recur::merge;
use crate::stores::instances::{
    BusyAnswer, Components, InstanceConfig, InstanceRow, SeriesRows, SlideReport, Touched, changes, expanded_busy,
    for_expansion, parse_rid, rows_of, stored_details,
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

const INSERT: &str = "
INSERT INTO instances (calendar_id, uid, recurrence_id, starts_at, ends_at, busy, tentative)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Rows per statement of a first apply's instance writes (one statement per row spent a fifth
/// of the time in statement overhead).
const BULK: usize = 16;

/// [`INSERT`] of [`BULK`] rows of one calendar (`?1`). `OR IGNORE` spares SQLite a statement
/// journal (a copy of every page the statement touches, in case it must undo half of it); the
/// rows are new, and [`Bulk::insert`] checks that each was written.
fn bulk_insert() -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO instances (calendar_id, uid, recurrence_id, starts_at, ends_at, busy, tentative) VALUES ",
    );
    for row in 0..BULK {
        let at = 2 + row * 6;
        let sep = if row == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}(?1, ?{at}, ?{}, ?{}, ?{}, ?{}, ?{})", at + 1, at + 2, at + 3, at + 4, at + 5);
    }
    sql
}

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

/// The stored instance row of one occurrence, if any (unreadable times count as changed).
fn stored_row(conn: &Connection, calendar: &str, uid: &str, rid: &str) -> Result<Option<InstanceRow>> {
    conn.prepare_cached(
        "SELECT starts_at, ends_at, busy, tentative FROM instances WHERE calendar_id = ?1 AND uid = ?2 AND recurrence_id = ?3",
    )
    .map_err(storage("prepare"))?
    .query_row(params![calendar, uid, rid], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get::<_, bool>(3)?))
    })
    .optional()
    .map_err(storage("read instances"))
    .map(|row| {
        row.map(|(s, e, busy, tentative)| {
            let epoch = DateTime::<Utc>::UNIX_EPOCH;
            InstanceRow {
                rid: rid.to_owned(),
                starts_at: time(&s).unwrap_or(epoch),
                ends_at: time(&e).unwrap_or(epoch),
                busy,
                tentative,
            }
        })
    })
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
            months.remove(old.starts_at, old.ends_at, old.tentative);
        }
    }
    for old in removed.iter().filter(|o| o.busy) {
        months.remove(old.starts_at, old.ends_at, old.tentative);
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
            let none_stored = was_empty && none_stored(conn, calendar)?;
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

/// Whether `calendar` has no instance row.
pub(super) fn none_stored(conn: &Connection, calendar: &str) -> Result<bool> {
    conn.prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM instances WHERE calendar_id = ?1)")
        .and_then(|mut s| s.query_row([calendar], |r| r.get::<_, bool>(0)))
        .map_err(storage("read instances"))
}

/// Instance rows of a calendar's first apply, encoded on the caller's side while the store
/// writes: their texts in one buffer, so that the store's thread only binds and steps.
pub(super) struct Encoded {
    text: String,
    rows: Vec<EncodedRow>,
}

/// Where one row's texts are in [`Encoded::text`]: uid, recurrence id, start and end.
struct EncodedRow {
    texts: [(usize, usize); 4],
    busy: bool,
    tentative: bool,
}

impl Encoded {
    /// Encodes some series' rows, noting their busy time in `months`.
    pub(super) fn of(series: &[SeriesRows], months: &mut Months) -> Self {
        let mut text = String::new();
        let mut rows = Vec::with_capacity(series.iter().map(|s| s.rows.len()).sum());
        let put = |text: &mut String, s: &str| {
            let at = text.len();
            text.push_str(s);
            (at, text.len())
        };
        for SeriesRows { uid, rows: of } in series {
            let uid = put(&mut text, uid.as_str());
            for r in of {
                if r.busy {
                    months.add(r.starts_at, r.ends_at, r.tentative);
                }
                let rid = put(&mut text, &r.rid);
                let start = put(&mut text, TimeText::of(r.starts_at).as_str());
                let end = put(&mut text, TimeText::of(r.ends_at).as_str());
                rows.push(EncodedRow { texts: [uid, rid, start, end], busy: r.busy, tentative: r.tentative });
            }
        }
        Self { text, rows }
    }

    fn texts(&self, row: &EncodedRow) -> [&str; 4] {
        row.texts.map(|(a, b)| self.text.get(a..b).unwrap_or_default())
    }
}

/// The instances of a calendar's first apply, expanded by the caller, written as they arrive
/// (the calendar has no instance row yet, so nothing is read or compared).
pub(super) struct Bulk {
    window: (DateTime<Utc>, DateTime<Utc>),
}

impl Bulk {
    /// Rows over the horizon `window`.
    pub(super) fn new(window: (DateTime<Utc>, DateTime<Utc>)) -> Self {
        Self { window }
    }

    /// Writes some rows (each once, in key order), [`BULK`] rows a statement.
    pub(super) fn insert(conn: &Connection, calendar: &str, encoded: &Encoded) -> Result<()> {
        if encoded.rows.is_empty() {
            return Ok(());
        }
        let mut many = conn.prepare_cached(&bulk_insert()).map_err(storage("prepare"))?;
        let mut chunks = encoded.rows.chunks_exact(BULK);
        for chunk in &mut chunks {
            many.raw_bind_parameter(1, calendar).map_err(storage("write instance"))?;
            let mut i = 1;
            let mut bind = |v: &dyn rusqlite::ToSql| {
                i += 1;
                many.raw_bind_parameter(i, v)
            };
            for row in chunk {
                let [uid, rid, start, end] = encoded.texts(row);
                bind(&uid)
                    .and_then(|()| bind(&rid))
                    .and_then(|()| bind(&start))
                    .and_then(|()| bind(&end))
                    .and_then(|()| bind(&row.busy))
                    .and_then(|()| bind(&row.tentative))
                    .map_err(storage("write instance"))?;
            }
            if many.raw_execute().map_err(storage("write instance"))? != BULK {
                return Err(Error::new(ErrorKind::Storage, format!("sqlite: {calendar} had instance rows already")));
            }
        }
        let mut one = conn.prepare_cached(INSERT).map_err(storage("prepare"))?;
        for row in chunks.remainder() {
            let [uid, rid, start, end] = encoded.texts(row);
            one.execute(params![calendar, uid, rid, start, end, row.busy, row.tentative])
                .map_err(storage("write instance"))?;
        }
        Ok(())
    }

    /// Writes the calendar's months (as the caller built them) and horizon.
    pub(super) fn finish(
        self,
        conn: &Connection,
        calendar: &str,
        config: &InstanceConfig,
        months: &[spans::MonthRow],
    ) -> Result<()> {
        spans::put_built(conn, calendar, months)?;
        spans::mark_built(conn, calendar)?;
        save_horizon(conn, calendar, self.window.0, self.window.1, config.zone_of())
    }
}

/// Re-expands every series of `calendar` over `window` from its stored events, writing what
/// differs from its stored instance rows, and its months and horizon.
pub(super) fn rebuild_all(
    conn: &Connection,
    calendar: &str,
    config: &InstanceConfig,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    warnings: &mut Vec<String>,
) -> Result<()> {
    let mut months = Months::new(from, to);
    rebuild(conn, calendar, config, from, to, &mut months, warnings)?;
    finish_months(conn, calendar, false, &mut months)?;
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
    months.rescan_new(old_to, new_to);
    let expander = config.expander();
    let mut n = 0;
    let mut insert = conn
        .prepare_cached(&format!("{INSERT} ON CONFLICT (calendar_id, uid, recurrence_id) DO NOTHING"))
        .map_err(storage("prepare"))?;
    for (uid, comps) in candidates(conn, calendar, Some(old_to), new_to)? {
        let refs: Vec<_> = comps.iter().map(|(r, d)| (*r, d)).collect();
        let (rows, notes) = rows_of(&expander, &refs, old_to, new_to);
        warnings.extend(notes.into_iter().map(|x| format!("{calendar}/{uid}: {x}")));
        for r in rows {
            let (s, e) = (TimeText::of(r.starts_at), TimeText::of(r.ends_at));
            if insert
                .execute(params![calendar, uid, r.rid, s.as_str(), e.as_str(), r.busy, r.tentative])
                .map_err(storage("write instance"))?
                == 1
            {
                if r.busy {
                    months.add(r.starts_at, r.ends_at, r.tentative);
                }
                n += 1;
                continue;
            }
            // The row was kept already (it overlaps the old horizon too): written if it changed.
            let stored = stored_row(conn, calendar, &uid, &r.rid)?;
            n += write(conn, calendar, &uid, (stored.into_iter().collect(), vec![r]), months)?;
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
