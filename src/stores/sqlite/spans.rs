//! Busy time pre-merged per calendar and month (`busy_months`): what lets a busy query read a
//! dozen rows per calendar-year instead of every instance.
//!
//! Derived from `instances` in the same transaction, like `instances` from `events`: each
//! month's row keeps every busy instance's piece of it (`pieces`) beside the merged `spans`, so
//! an apply or a slide takes the old intervals of the rows it changed out of their months and
//! puts the new ones in, never reading `instances` (which has no time index). A month is built
//! again from `instances` only when it enters the horizon, when its row predates pieces, or
//! when a removal finds no piece (the row disagrees with `instances`). A month's row is written
//! only when its pieces change (a re-sync with DTSTAMP churn writes none). Months outside the
//! calendar's horizon are not kept up to date; a busy query reads months only inside it.

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

/// Schema version 5: each month's busy instance pieces beside its merged spans, so that an
/// apply updates a month from the rows it changed, and no time index on `instances` (it cost
/// more than the instances themselves on a first sync; busy queries read months).
pub(super) const PIECES: &str = r"
DROP INDEX IF EXISTS instances_busy;
ALTER TABLE busy_months ADD COLUMN pieces BLOB;
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

/// One busy instance row's share of a month: start and end as seconds from the month's start,
/// and whether it is tentative.
type Piece = (u32, u32, bool);

/// The changes an apply or a slide makes to a calendar's months, within its horizon: busy
/// instance rows added and removed (each cut at the months it overlaps), and months to build
/// again from `instances` (those newly inside the horizon, or whose stored pieces are missing
/// or disagree).
pub(super) struct Months {
    first: i64,
    /// The first second of each month of the horizon, and of the month after it (seconds since
    /// the epoch).
    bounds: Vec<i64>,
    /// Every instance row of the calendar passes through [`add`](Self::add): the months are
    /// built from the additions alone (a first materialization).
    fresh: bool,
    /// By month, from the first.
    added: Vec<Vec<Piece>>,
    removed: Vec<Vec<Piece>>,
    rescan: BTreeSet<i64>,
}

impl Months {
    /// The months of the horizon `[from, to)`, changed by what is added and removed.
    pub(super) fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        let first = month_of(from);
        let last = if from < to { month_of(to - chrono::Duration::seconds(1)) } else { first - 1 };
        let bounds: Vec<i64> = (first..=last + 1).map_while(|m| month_start(m).map(|t| t.timestamp())).collect();
        let n = bounds.len().saturating_sub(1);
        Self {
            first,
            bounds,
            fresh: false,
            added: vec![Vec::new(); n],
            removed: vec![Vec::new(); n],
            rescan: BTreeSet::new(),
        }
    }

    /// Months of a calendar all of whose instance rows will be [`add`](Self::add)ed.
    pub(super) fn all_rows(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self { fresh: true, ..Self::new(from, to) }
    }

    /// The horizon's months.
    fn range(&self) -> std::ops::Range<i64> {
        self.first..self.first + i64::try_from(self.added.len()).unwrap_or(0)
    }

    /// Calls `f` with each horizon month `[start, end)` overlaps (its index) and the piece there.
    fn pieces(&self, start: DateTime<Utc>, end: DateTime<Utc>, tentative: bool, mut f: impl FnMut(usize, Piece)) {
        let (s, e) = (start.timestamp(), end.timestamp());
        if s >= e {
            return;
        }
        let from = self.bounds.partition_point(|&b| b <= s).saturating_sub(1);
        for (i, w) in self.bounds.windows(2).enumerate().skip(from) {
            let &[base, next] = w else { continue };
            if base >= e {
                break;
            }
            if next <= s {
                continue;
            }
            let offset = |t: i64| u32::try_from(t.clamp(base, next) - base).unwrap_or(0);
            f(i, (offset(s), offset(e), tentative));
        }
    }

    /// Notes a busy row written.
    pub(super) fn add(&mut self, start: DateTime<Utc>, end: DateTime<Utc>, tentative: bool) {
        let mut added = std::mem::take(&mut self.added);
        self.pieces(start, end, tentative, |i, p| {
            if let Some(list) = added.get_mut(i) {
                list.push(p);
            }
        });
        self.added = added;
    }

    /// Notes a busy row deleted, or the values a changed row had.
    pub(super) fn remove(&mut self, start: DateTime<Utc>, end: DateTime<Utc>, tentative: bool) {
        let mut removed = std::mem::take(&mut self.removed);
        self.pieces(start, end, tentative, |i, p| {
            if let Some(list) = removed.get_mut(i) {
                list.push(p);
            }
        });
        self.removed = removed;
    }

    /// Builds the months that `[old_to, new_to)` adds to a horizon ending at `old_to` again
    /// from `instances` (rows overlapping them were kept before they were in the horizon).
    pub(super) fn rescan_new(&mut self, old_to: DateTime<Utc>, new_to: DateTime<Utc>) {
        if old_to < new_to {
            let after = month_of(old_to - chrono::Duration::seconds(1)) + 1;
            let range = self.range();
            self.rescan.extend((after..=month_of(new_to - chrono::Duration::seconds(1))).filter(|m| range.contains(m)));
        }
    }

    /// Builds every month of the horizon again from `instances`, unless every row passes
    /// through [`add`](Self::add) anyway.
    pub(super) fn all(&mut self) {
        if !self.fresh {
            self.rescan.extend(self.range());
        }
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

/// A month's pieces (sorted) as a blob, in the layout of `spans`.
fn encode_pieces(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pieces.len() * SPAN);
    for &(a, b, tentative) in pieces {
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
        out.push(u8::from(tentative));
    }
    out
}

/// The pieces of a `pieces` blob (`None` when it is not a whole number of pieces).
fn decode_pieces(blob: &[u8]) -> Option<Vec<Piece>> {
    let chunks = blob.chunks_exact(SPAN);
    if !chunks.remainder().is_empty() {
        return None;
    }
    let word = |b: &[u8]| <[u8; 4]>::try_from(b).ok().map(u32::from_le_bytes);
    chunks
        .map(|c| {
            let (a, rest) = c.split_at(4);
            let (b, flag) = rest.split_at(4);
            Some((word(a)?, word(b)?, flag.first().is_some_and(|&f| f != 0)))
        })
        .collect()
}

/// The `spans` blob of month `m` from its pieces (sorted): merged busy time, tentative where
/// only tentative pieces cover it.
fn spans_of(m: i64, pieces: &[Piece]) -> Vec<u8> {
    if pieces.iter().any(|p| p.2) {
        let (Some(base), Some(next)) = (month_start(m), month_start(m + 1)) else { return Vec::new() };
        let at = |s: u32| base + chrono::Duration::seconds(i64::from(s));
        let merged = merge(pieces.iter().map(|&(a, b, t)| BusyInterval::new(at(a), at(b), t)), base, next);
        return encode(m, &merged);
    }
    // Busy time only: one pass over the pieces in start order.
    let mut spans: Vec<Piece> = Vec::new();
    for &(a, b, _) in pieces.iter().filter(|p| p.0 < p.1) {
        match spans.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => spans.push((a, b, false)),
        }
    }
    encode_pieces(&spans)
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

/// Brings the months of `calendar` in step with what `months` noted, writing those whose
/// pieces changed; answers the rows written.
///
/// A month's pieces change by the noted additions and removals; a month is built again from
/// `instances` when it is to be rescanned, when its row predates pieces, or when a removal
/// does not find its piece (the stored row disagrees with `instances`).
pub(super) fn refresh(conn: &Connection, calendar: &str, months: &mut Months) -> Result<u64> {
    let mut stored = conn
        .prepare_cached("SELECT pieces FROM busy_months WHERE calendar_id = ?1 AND month = ?2")
        .map_err(storage("prepare"))?;
    let mut read = |m: i64| Stored::read(&mut stored, calendar, m);
    // Each month to write: its new pieces, and its stored row.
    let mut out: BTreeMap<i64, (Vec<Piece>, Stored)> = BTreeMap::new();
    let changed: Vec<(i64, usize)> = months
        .range()
        .zip(0..)
        .filter(|&(_, i)| {
            months.fresh
                || months.added.get(i).is_some_and(|l| !l.is_empty())
                || months.removed.get(i).is_some_and(|l| !l.is_empty())
        })
        .collect();
    for (m, i) in changed {
        if months.rescan.contains(&m) {
            continue;
        }
        let old = read(m)?;
        let mut pieces = match &old {
            _ if months.fresh => Vec::new(),
            Stored::Absent => Vec::new(),
            // A stored row always holds pieces: an empty list is no month's.
            Stored::Pieces(blob) if let Some(p) = decode_pieces(blob).filter(|p| !p.is_empty()) => p,
            Stored::Pieces(_) | Stored::Unknown => {
                months.rescan.insert(m);
                continue;
            }
        };
        let mut found = true;
        for p in months.removed.get(i).into_iter().flatten() {
            match pieces.binary_search(p) {
                Ok(i) => {
                    pieces.remove(i);
                }
                Err(_) => found = false,
            }
        }
        if !found {
            months.rescan.insert(m);
            continue;
        }
        pieces.extend(months.added.get(i).into_iter().flatten().copied());
        pieces.sort_unstable();
        out.insert(m, (pieces, old));
    }
    if let (Some(&a), Some(&b)) = (months.rescan.first(), months.rescan.last())
        && let (Some(from), Some(to)) = (month_start(a), month_start(b + 1))
    {
        let mut scanned: BTreeMap<i64, Vec<Piece>> = months.rescan.iter().map(|&m| (m, Vec::new())).collect();
        let scope = Months::new(from, to);
        for row in busy_rows(conn, calendar, from, to)? {
            scope.pieces(row.start, row.end, row.tentative, |i, p| {
                let m = a + i64::try_from(i).unwrap_or(i64::MAX - a);
                if let Some(list) = scanned.get_mut(&m) {
                    list.push(p);
                }
            });
        }
        for (m, mut pieces) in scanned {
            pieces.sort_unstable();
            let old = read(m)?;
            out.insert(m, (pieces, old));
        }
    }
    let mut n = 0u64;
    for (m, (pieces, old)) in out {
        n += put(conn, calendar, &MonthRow::of(m, &pieces), &old)?;
    }
    Ok(n)
}

/// What `busy_months` holds for one month, as far as its pieces go.
enum Stored {
    /// No row: no busy time.
    Absent,
    /// A row without pieces (written before schema 5).
    Unknown,
    Pieces(Vec<u8>),
}

impl Stored {
    fn read(stmt: &mut rusqlite::CachedStatement<'_>, calendar: &str, m: i64) -> Result<Self> {
        match stmt.query_row(params![calendar, m], |r| r.get::<_, Option<Vec<u8>>>(0)) {
            Ok(Some(b)) => Ok(Self::Pieces(b)),
            Ok(None) => Ok(Self::Unknown),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(Self::Absent),
            Err(e) => Err(storage("read busy_months")(e)),
        }
    }
}

/// One month's row of `busy_months`, encoded.
pub(super) struct MonthRow {
    month: i64,
    spans: Vec<u8>,
    pieces: Vec<u8>,
}

impl MonthRow {
    /// The row of month `m` holding `pieces` (sorted).
    fn of(m: i64, pieces: &[Piece]) -> Self {
        Self { month: m, spans: spans_of(m, pieces), pieces: encode_pieces(pieces) }
    }
}

impl Months {
    /// The rows of a first materialization's months (every month of the horizon, from what
    /// was added): built beside the store's writes, written by [`put_built`].
    pub(super) fn built(self) -> Vec<MonthRow> {
        self.range()
            .zip(self.added)
            .map(|(m, mut pieces)| {
                pieces.sort_unstable();
                MonthRow::of(m, &pieces)
            })
            .collect()
    }
}

/// Writes month rows [`Months::built`] made, each only where it differs from the stored one;
/// answers the rows written.
pub(super) fn put_built(conn: &Connection, calendar: &str, rows: &[MonthRow]) -> Result<u64> {
    let mut stored = conn
        .prepare_cached("SELECT pieces FROM busy_months WHERE calendar_id = ?1 AND month = ?2")
        .map_err(storage("prepare"))?;
    let mut n = 0;
    for row in rows {
        let old = Stored::read(&mut stored, calendar, row.month)?;
        n += put(conn, calendar, row, &old)?;
    }
    Ok(n)
}

/// Writes one month's row unless the stored one holds the same pieces; an empty month has no
/// row.
fn put(conn: &Connection, calendar: &str, row: &MonthRow, old: &Stored) -> Result<u64> {
    let m = row.month;
    Ok(match (old, row.pieces.is_empty()) {
        (Stored::Absent, true) => 0,
        (Stored::Pieces(old), false) if *old == row.pieces => 0,
        (_, true) => conn
            .execute("DELETE FROM busy_months WHERE calendar_id = ?1 AND month = ?2", params![calendar, m])
            .map_err(storage("write busy_months"))? as u64,
        (_, false) => conn
            .execute(
                "INSERT INTO busy_months (calendar_id, month, spans, pieces) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (calendar_id, month) DO UPDATE SET spans = excluded.spans, pieces = excluded.pieces",
                params![calendar, m, row.spans, row.pieces],
            )
            .map_err(storage("write busy_months"))? as u64,
    })
}

/// The busy instance rows of `calendar` overlapping `[a, b)`, row by row from `instances` (a
/// scan of the calendar's rows: rebuilding months, and busy queries of a store whose months
/// are not built yet).
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
        // A horizon from mid-November to February's end: four months.
        let mut m = Months::new(t("2026-11-15T00:00:00Z"), t("2027-03-01T00:00:00Z"));
        assert_eq!(m.range(), month_of(t("2026-11-01T00:00:00Z"))..month_of(t("2027-03-01T00:00:00Z")));
        // Cut at the months it overlaps inside the horizon: November's whole, and December's
        // first hour; nothing before November.
        m.add(t("2026-01-01T00:00:00Z"), t("2026-12-01T01:00:00Z"), true);
        m.remove(t("2027-01-31T23:00:00Z"), t("2027-02-01T00:00:00Z"), false); // ends at February's start
        m.add(t("2027-02-10T00:00:00Z"), t("2027-02-10T00:00:00Z"), false); // zero length: nothing
        assert_eq!(m.added, [vec![(0, 30 * 86_400, true)], vec![(0, 3_600, true)], vec![], vec![]]);
        assert_eq!(m.removed, [vec![], vec![], vec![(30 * 86_400 + 23 * 3_600, 31 * 86_400, false)], vec![]]);
        // Sliding the horizon's end from mid-January into March rescans February (new), not
        // January (kept already); March is outside this horizon.
        m.rescan_new(t("2027-01-15T00:00:00Z"), t("2027-03-02T00:00:00Z"));
        assert_eq!(m.rescan.iter().copied().collect::<Vec<_>>(), [month_of(t("2027-02-01T00:00:00Z"))]);
        let mut fresh = Months::all_rows(t("2026-11-15T00:00:00Z"), t("2027-03-01T00:00:00Z"));
        fresh.all();
        assert!(fresh.rescan.is_empty(), "a first materialization builds its months from the rows it adds");
        // Busy-only pieces merge when they overlap or touch.
        let merged = spans_of(0, &[(0, 10, false), (5, 20, false), (20, 30, false), (40, 50, false)]);
        assert_eq!(decode_pieces(&merged), Some(vec![(0, 30, false), (40, 50, false)]));
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
