//! Busy time pre-merged per calendar and month (`busy_months`): what lets a busy query read a
//! dozen rows per calendar-year instead of every instance.
//!
//! Derived from `instances` in the same transaction, like `instances` from `events`: after an
//! apply or a slide wrote instance rows, the months those rows' old and new intervals touch
//! are merged again from `instances`, and a month's row is written only when its merged busy
//! time changed (a re-sync with DTSTAMP churn writes none). Months outside the calendar's
//! horizon are not kept up to date; a busy query reads months only inside it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use rusqlite::{Connection, params};

use super::sql::{TimeText, storage, time};
use crate::error::{Error, ErrorKind, Result};
use crate::recur::{BusyInterval, merge};

/// Schema version 4: `busy_months`, and the calendars whose months are built.
pub(super) const MIGRATION: &str = r"
CREATE TABLE IF NOT EXISTS busy_months (
    calendar_id TEXT NOT NULL,
    month       INTEGER NOT NULL,
    spans       BLOB NOT NULL,
    PRIMARY KEY (calendar_id, month)
) WITHOUT ROWID;
ALTER TABLE calendars ADD COLUMN busy_months INTEGER;
";

/// One span's size in the `spans` blob: start and end (seconds since the month's start,
/// little-endian u32) and a tentative flag.
const SPAN: usize = 9;

/// A month number: `year * 12 + month - 1`, in UTC.
pub(super) fn month_of(t: DateTime<Utc>) -> i64 {
    i64::from(t.year()) * 12 + i64::from(t.month0())
}

/// The first instant of month `m` (`None` outside chrono's range).
fn month_start(m: i64) -> Option<DateTime<Utc>> {
    let year = i32::try_from(m.div_euclid(12)).ok()?;
    let month = u32::try_from(m.rem_euclid(12)).ok()? + 1;
    Some(NaiveDate::from_ymd_opt(year, month, 1)?.and_hms_opt(0, 0, 0)?.and_utc())
}

/// The months whose busy time may have changed, within a horizon; and, when every instance
/// row of the calendar passes through [`add`](Self::add) (its first materialization), their
/// busy intervals, so that nothing is read back.
pub(super) struct Months {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    touched: BTreeSet<i64>,
    known: Option<BTreeMap<i64, Vec<BusyInterval>>>,
}

impl Months {
    /// Months inside `[from, to)` only.
    pub(super) fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self { from, to, touched: BTreeSet::new(), known: None }
    }

    /// Months of a calendar all of whose instance rows will be [`add`](Self::add)ed.
    pub(super) fn all_rows(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self { known: Some(BTreeMap::new()), ..Self::new(from, to) }
    }

    /// Reads the months back from `instances` after all (rows were written past [`add`](Self::add)).
    pub(super) fn forget_rows(&mut self) {
        self.known = None;
    }

    /// Notes a busy row written (its months), keeping it when every row passes here.
    pub(super) fn add(&mut self, start: DateTime<Utc>, end: DateTime<Utc>, tentative: bool) {
        self.note(start, end);
        let (a, b) = (start.max(self.from), end.min(self.to));
        if let Some(known) = self.known.as_mut()
            && a < b
        {
            for m in month_of(a)..=month_of(b - chrono::Duration::seconds(1)) {
                known.entry(m).or_default().push(BusyInterval::new(start, end, tentative));
            }
        }
    }

    /// Notes the months `[start, end)` overlaps, inside the horizon.
    pub(super) fn note(&mut self, start: DateTime<Utc>, end: DateTime<Utc>) {
        let (start, end) = (start.max(self.from), end.min(self.to));
        if start >= end {
            return;
        }
        let last = month_of(end - chrono::Duration::seconds(1));
        for m in month_of(start)..=last {
            self.touched.insert(m);
        }
    }

    /// Notes every month of the horizon.
    pub(super) fn all(&mut self) {
        self.note(self.from, self.to);
    }
}

/// The spans of month `m` (merged inside it) as a blob.
fn encode(m: i64, spans: &[BusyInterval]) -> Vec<u8> {
    let Some(base) = month_start(m) else { return Vec::new() };
    let offset = |t: DateTime<Utc>| u32::try_from((t - base).num_seconds()).unwrap_or(0);
    let mut out = Vec::with_capacity(spans.len() * SPAN);
    for s in spans {
        out.extend_from_slice(&offset(s.start).to_le_bytes());
        out.extend_from_slice(&offset(s.end).to_le_bytes());
        out.push(u8::from(s.tentative));
    }
    out
}

/// Decodes the `spans` blob of month `m`, appending to `out`. Times are rebuilt from the
/// month's days (a table of 32 dates), not from a timestamp each: this is the busy query's
/// inner loop.
///
/// # Errors
/// A storage error when the blob is not a whole number of spans or a time leaves the month.
fn decode(calendar: &str, m: i64, blob: &[u8], out: &mut Vec<BusyInterval>) -> Result<()> {
    let bad = || Error::new(ErrorKind::Storage, format!("sqlite: unreadable busy_months row of {calendar}"));
    let base = month_start(m).ok_or_else(bad)?;
    let first = base.date_naive();
    let days: Vec<NaiveDate> = first.iter_days().take(32).collect();
    let at = |b: &[u8]| -> Option<DateTime<Utc>> {
        let secs = u32::from_le_bytes(<[u8; 4]>::try_from(b).ok()?);
        let date = *days.get(usize::try_from(secs / 86_400).ok()?)?;
        let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(secs % 86_400, 0)?;
        Some(date.and_time(time).and_utc())
    };
    let chunks = blob.chunks_exact(SPAN);
    if !chunks.remainder().is_empty() {
        return Err(bad());
    }
    for chunk in chunks {
        let (start, rest) = chunk.split_at(4);
        let (end, flag) = rest.split_at(4);
        let (Some(start), Some(end)) = (at(start), at(end)) else { return Err(bad()) };
        out.push(BusyInterval::new(start, end, flag.first().is_some_and(|&f| f != 0)));
    }
    Ok(())
}

/// Merges the noted months of `calendar` again from `instances` and writes those whose busy
/// time changed; answers the rows written.
pub(super) fn refresh(conn: &Connection, calendar: &str, months: &Months) -> Result<u64> {
    let mut stored = conn
        .prepare_cached("SELECT spans FROM busy_months WHERE calendar_id = ?1 AND month = ?2")
        .map_err(storage("prepare"))?;
    let mut n = 0u64;
    for &m in &months.touched {
        let (Some(a), Some(b)) = (month_start(m), month_start(m + 1)) else { continue };
        let intervals = match &months.known {
            Some(known) => known.get(&m).cloned().unwrap_or_default(),
            None => busy_rows(conn, calendar, a, b)?,
        };
        let blob = encode(m, &merge(intervals, a, b));
        let old: Option<Vec<u8>> = match stored.query_row(params![calendar, m], |r| r.get(0)) {
            Ok(b) => Some(b),
            Err(rusqlite::Error::QueryReturnedNoRows) => None,
            Err(e) => return Err(storage("read busy_months")(e)),
        };
        n += match (old, blob.is_empty()) {
            (None, true) => 0,
            (Some(old), false) if old == blob => 0,
            (Some(_), true) => conn
                .execute("DELETE FROM busy_months WHERE calendar_id = ?1 AND month = ?2", params![calendar, m])
                .map_err(storage("write busy_months"))? as u64,
            (_, false) => conn
                .execute(
                    "INSERT INTO busy_months (calendar_id, month, spans) VALUES (?1, ?2, ?3)
                     ON CONFLICT (calendar_id, month) DO UPDATE SET spans = excluded.spans",
                    params![calendar, m, blob],
                )
                .map_err(storage("write busy_months"))? as u64,
        };
    }
    Ok(n)
}

/// The busy instance rows of `calendar` overlapping `[a, b)`, row by row from `instances`
/// (the partial index serves the window).
///
/// # Errors
/// A storage error when a row cannot be read.
pub(super) fn busy_rows(
    conn: &Connection,
    calendar: &str,
    a: DateTime<Utc>,
    b: DateTime<Utc>,
) -> Result<Vec<BusyInterval>> {
    let mut read = conn
        .prepare_cached(
            "SELECT starts_at, ends_at, tentative FROM instances
             WHERE calendar_id = ?1 AND busy = 1 AND ends_at > ?2 AND starts_at < ?3",
        )
        .map_err(storage("prepare"))?;
    let (ta, tb) = (TimeText::of(a), TimeText::of(b));
    let rows = read
        .query_map(params![calendar, ta.as_str(), tb.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?))
        })
        .map_err(storage("read instances"))?;
    let mut intervals = Vec::new();
    for row in rows {
        let (s, e, tentative) = row.map_err(storage("read instances"))?;
        match (time(&s), time(&e)) {
            (Some(s), Some(e)) => intervals.push(BusyInterval::new(s, e, tentative)),
            _ => return Err(Error::new(ErrorKind::Storage, format!("sqlite: unreadable instance time in {calendar}"))),
        }
    }
    Ok(intervals)
}

/// Marks a calendar's months built (once; a database upgraded from version 3 builds them at
/// the calendar's next slide or writing apply, and answers from `instances` until then).
pub(super) fn mark_built(conn: &Connection, calendar: &str) -> Result<()> {
    conn.execute("UPDATE calendars SET busy_months = 1 WHERE calendar_id = ?1 AND busy_months IS NOT 1", [calendar])
        .map_err(storage("write calendars"))?;
    Ok(())
}

/// A calendar's busy intervals in `[from, to)` from its months: merged, clipped, sorted.
///
/// # Errors
/// A storage error when a row cannot be read.
pub(super) fn read(
    conn: &Connection,
    calendar: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<BusyInterval>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT month, spans FROM busy_months WHERE calendar_id = ?1 AND month >= ?2 AND month <= ?3 ORDER BY month",
        )
        .map_err(storage("prepare"))?;
    // An empty window (or one ending at the first instant there is) holds no busy time.
    let Some(last) = to.checked_sub_signed(chrono::Duration::seconds(1)).filter(|_| from < to).map(month_of) else {
        return Ok(Vec::new());
    };
    let mut rows = stmt.query(params![calendar, month_of(from), last]).map_err(storage("busy query"))?;
    let mut pieces = Vec::new();
    while let Some(row) = rows.next().map_err(storage("busy query"))? {
        let m: i64 = row.get(0).map_err(storage("busy query"))?;
        let blob =
            row.get_ref(1).map_err(storage("busy query"))?.as_blob().map_err(|e| storage("busy query")(e.into()))?;
        decode(calendar, m, blob, &mut pieces)?;
    }
    // Months are merged inside themselves: join what meets at a month's edge, then clip.
    let mut out: Vec<BusyInterval> = Vec::with_capacity(pieces.len());
    for p in pieces {
        let (start, end) = (p.start.max(from), p.end.min(to));
        if start >= end {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.end == start && last.tentative == p.tentative => last.end = end,
            _ => out.push(BusyInterval::new(start, end, p.tentative)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_spans_round_trip() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(month_start(month_of(t("2026-12-31T23:59:59Z"))), Some(t("2026-12-01T00:00:00Z")));
        assert_eq!(month_start(month_of(t("2026-12-01T00:00:00Z")) + 1), Some(t("2027-01-01T00:00:00Z")));
        let mut m = Months::new(t("2026-11-15T00:00:00Z"), t("2027-03-01T00:00:00Z"));
        m.note(t("2026-01-01T00:00:00Z"), t("2026-12-01T00:00:00Z")); // clipped: November only
        m.note(t("2027-01-31T23:00:00Z"), t("2027-02-01T00:00:00Z")); // ends at February's start
        assert_eq!(
            m.touched.iter().map(|&x| month_start(x).unwrap()).collect::<Vec<_>>(),
            [t("2026-11-01T00:00:00Z"), t("2027-01-01T00:00:00Z")]
        );
        let dec = month_of(t("2026-12-01T00:00:00Z"));
        let spans = [
            BusyInterval::new(t("2026-12-01T00:00:00Z"), t("2026-12-01T10:00:00Z"), true),
            BusyInterval::new(t("2026-12-31T09:00:01Z"), t("2027-01-01T00:00:00Z"), false),
        ];
        let mut back = Vec::new();
        decode("c", dec, &encode(dec, &spans), &mut back).unwrap();
        assert_eq!(back, spans);
        assert_eq!(decode("c", dec, &[0u8; 5], &mut back).unwrap_err().kind(), ErrorKind::Storage);
        let mut far = [0u8; SPAN];
        far[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode("c", dec, &far, &mut back).unwrap_err().kind(), ErrorKind::Storage);
    }
}
