//! The Postgres side of materialized instances: keeping `instances` in step with `events`
//! inside an apply's transaction (one statement per batch), sliding the horizon, busy queries
//! and the "which of these calendars are free" query.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use tokio_postgres::GenericClient;

use super::sql::storage;
use crate::error::Result;
use crate::id::{CalendarId, Uid};
use crate::recur::BusyInterval;
use crate::stores::instances::{
    BusyAnswer, Components, InstanceConfig, InstanceRow, Touched, changes, expanded_busy, for_expansion, parse_rid,
    rows_of, stored_details,
};
use crate::value::tz::Zone;

/// Schema version 2: `instances`, its two indexes, and each calendar's horizon.
///
/// `instances_busy` (btree) serves busy queries per calendar over a window; `instances_slot`
/// (`GiST` over the interval) serves "which of these calendars are busy at [a, b)": an overlap
/// test the btree can only answer by scanning everything that ends after `a`.
pub(super) const MIGRATION: &str = r"
CREATE TABLE instances (
    calendar_id   text NOT NULL,
    uid           text NOT NULL,
    recurrence_id text NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    busy          boolean NOT NULL,
    tentative     boolean NOT NULL,
    PRIMARY KEY (calendar_id, uid, recurrence_id)
);
CREATE INDEX instances_busy ON instances (calendar_id, ends_at, starts_at) INCLUDE (tentative) WHERE busy;
CREATE INDEX instances_slot ON instances USING gist (tstzrange(starts_at, ends_at, '[)')) WHERE busy;
ALTER TABLE calendars ADD COLUMN instances_from timestamptz, ADD COLUMN instances_to timestamptz,
    ADD COLUMN instances_zone text;
";

/// Upserts of a batch, written only where the interval or busy state changed.
const UPSERT: &str = "
INSERT INTO instances AS i (calendar_id, uid, recurrence_id, starts_at, ends_at, busy, tentative)
SELECT $1::text, u.* FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::bool[], $7::bool[]) AS u
ON CONFLICT (calendar_id, uid, recurrence_id) DO UPDATE SET
    starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, busy = EXCLUDED.busy, tentative = EXCLUDED.tentative
WHERE (i.starts_at, i.ends_at, i.busy, i.tentative)
      IS DISTINCT FROM (EXCLUDED.starts_at, EXCLUDED.ends_at, EXCLUDED.busy, EXCLUDED.tentative)";

const DELETE: &str = "
DELETE FROM instances i USING unnest($2::text[], $3::text[]) AS d (uid, recurrence_id)
WHERE i.calendar_id = $1 AND i.uid = d.uid AND i.recurrence_id = d.recurrence_id";

/// The calendars among `$1` with busy time overlapping `[$2, $3)`: the query behind
/// [`PostgresStore::busy_at`](super::PostgresStore::busy_at), and the one the README shows.
pub(super) const BUSY_AT: &str = "
SELECT DISTINCT calendar_id FROM instances
WHERE busy AND tstzrange(starts_at, ends_at, '[)') && tstzrange($2, $3, '[)') AND calendar_id = ANY($1)";

struct Horizon {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone: String,
}

async fn horizons(client: &impl GenericClient, calendars: &[&str]) -> Result<HashMap<String, Option<Horizon>>> {
    let rows = client
        .query(
            "SELECT calendar_id, instances_from, instances_to, instances_zone FROM calendars WHERE calendar_id = ANY($1)",
            &[&calendars],
        )
        .await
        .map_err(storage("read horizon"))?;
    let mut out = HashMap::new();
    for r in rows {
        let cal: String = r.try_get(0).map_err(storage("read horizon"))?;
        let (f, t, z): (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<String>) = (
            r.try_get(1).map_err(storage("read horizon"))?,
            r.try_get(2).map_err(storage("read horizon"))?,
            r.try_get(3).map_err(storage("read horizon"))?,
        );
        let h = match (f, t, z) {
            (Some(from), Some(to), Some(zone)) => Some(Horizon { from, to, zone }),
            _ => None,
        };
        out.insert(cal, h);
    }
    Ok(out)
}

/// Rows of (uid, recurrence id, raw, tzid) grouped into parsed series.
fn series_of(rows: &[tokio_postgres::Row]) -> Result<BTreeMap<String, Components>> {
    let mut out: BTreeMap<String, Components> = BTreeMap::new();
    for r in rows {
        let (uid, rid, raw, tzid): (String, String, String, Option<String>) = (
            r.try_get(0).map_err(storage("read series"))?,
            r.try_get(1).map_err(storage("read series"))?,
            r.try_get(2).map_err(storage("read series"))?,
            r.try_get(3).map_err(storage("read series"))?,
        );
        let details = for_expansion(stored_details(&raw, tzid.as_deref()));
        out.entry(uid).or_default().push((parse_rid("postgres", &rid)?, details));
    }
    Ok(out)
}

/// The stored components of the series `uids`, parsed for expansion.
async fn components(
    client: &impl GenericClient,
    calendar: &str,
    uids: &[&str],
) -> Result<BTreeMap<String, Components>> {
    let rows = client
        .query(
            "SELECT uid, recurrence_id, raw, tzid FROM events WHERE calendar_id = $1 AND uid = ANY($2)",
            &[&calendar, &uids],
        )
        .await
        .map_err(storage("read series"))?;
    series_of(&rows)
}

/// The stored instance rows of the series `uids` (all series of the calendar when `None`).
async fn stored_rows(
    client: &impl GenericClient,
    calendar: &str,
    uids: Option<&[&str]>,
) -> Result<HashMap<String, Vec<InstanceRow>>> {
    let select = "SELECT uid, recurrence_id, starts_at, ends_at, busy, tentative FROM instances WHERE calendar_id = $1";
    let rows = match uids {
        Some(u) => client.query(&format!("{select} AND uid = ANY($2)"), &[&calendar, &u]).await,
        None => client.query(select, &[&calendar]).await,
    }
    .map_err(storage("read instances"))?;
    let mut out: HashMap<String, Vec<InstanceRow>> = HashMap::new();
    for r in rows {
        let uid: String = r.try_get(0).map_err(storage("read instances"))?;
        out.entry(uid).or_default().push(InstanceRow {
            rid: r.try_get(1).map_err(storage("read instances"))?,
            starts_at: r.try_get(2).map_err(storage("read instances"))?,
            ends_at: r.try_get(3).map_err(storage("read instances"))?,
            busy: r.try_get(4).map_err(storage("read instances"))?,
            tentative: r.try_get(5).map_err(storage("read instances"))?,
        });
    }
    Ok(out)
}

/// The writes of many series, batched into two statements.
#[derive(Default)]
struct Writes {
    uid: Vec<String>,
    rid: Vec<String>,
    starts_at: Vec<DateTime<Utc>>,
    ends_at: Vec<DateTime<Utc>>,
    busy: Vec<bool>,
    tentative: Vec<bool>,
    gone_uid: Vec<String>,
    gone_rid: Vec<String>,
}

impl Writes {
    fn add(&mut self, uid: &str, stored: Vec<InstanceRow>, wanted: Vec<InstanceRow>) {
        let (upserts, removed) = changes(stored, wanted);
        self.upsert(uid, upserts.into_iter().map(|(new, _)| new).collect());
        for r in removed {
            self.gone_uid.push(uid.to_owned());
            self.gone_rid.push(r.rid);
        }
    }

    fn upsert(&mut self, uid: &str, rows: Vec<InstanceRow>) {
        for r in rows {
            self.uid.push(uid.to_owned());
            self.rid.push(r.rid);
            self.starts_at.push(r.starts_at);
            self.ends_at.push(r.ends_at);
            self.busy.push(r.busy);
            self.tentative.push(r.tentative);
        }
    }

    async fn flush(self, client: &impl GenericClient, calendar: &str) -> Result<u64> {
        let mut n = 0;
        if !self.uid.is_empty() {
            n += client
                .execute(
                    UPSERT,
                    &[&calendar, &self.uid, &self.rid, &self.starts_at, &self.ends_at, &self.busy, &self.tentative],
                )
                .await
                .map_err(storage("write instances"))?;
        }
        if !self.gone_uid.is_empty() {
            n += client
                .execute(DELETE, &[&calendar, &self.gone_uid, &self.gone_rid])
                .await
                .map_err(storage("delete instances"))?;
        }
        Ok(n)
    }
}

/// The series that may have instances in `[from, to)` (see the SQLite store's twin).
async fn candidates(
    client: &impl GenericClient,
    calendar: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, Components>> {
    let slack = Duration::days(2);
    let rows = client
        .query(
            "SELECT uid, recurrence_id, raw, tzid FROM events WHERE calendar_id = $1 AND uid IN (
                 SELECT uid FROM events WHERE calendar_id = $1 AND (
                     rrule IS NOT NULL OR recurrence_id <> '' OR starts_at IS NULL OR strpos(raw, 'RDATE') > 0
                     OR (starts_at < $3 AND coalesce(ends_at, starts_at) >= $2)))",
            &[&calendar, &(from - slack), &(to + slack)],
        )
        .await
        .map_err(storage("read series"))?;
    series_of(&rows)
}

fn note(warnings: &mut Vec<String>, calendar: &str, uid: &str, notes: Vec<String>) {
    warnings.extend(notes.into_iter().map(|n| format!("{calendar}/{uid}: {n}")));
}

async fn save_horizon(
    client: &impl GenericClient,
    calendar: &str,
    config: &InstanceConfig,
    now: DateTime<Utc>,
) -> Result<()> {
    let (from, to) = config.window(now);
    client
        .execute(
            "UPDATE calendars SET instances_from = $2, instances_to = $3, instances_zone = $4 WHERE calendar_id = $1
               AND (instances_from, instances_to, instances_zone) IS DISTINCT FROM ($2, $3, $4)",
            &[&calendar, &from, &to, &config.zone_of().name()],
        )
        .await
        .map_err(storage("write horizon"))?;
    Ok(())
}

/// Every series of a calendar re-expanded over its horizon, diffed with the stored rows.
async fn rebuild(
    client: &impl GenericClient,
    calendar: &str,
    config: &InstanceConfig,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    warnings: &mut Vec<String>,
) -> Result<u64> {
    let expander = config.expander();
    let mut stored = stored_rows(client, calendar, None).await?;
    let mut writes = Writes::default();
    for (uid, comps) in candidates(client, calendar, from, to).await? {
        let refs: Vec<_> = comps.iter().map(|(r, d)| (*r, d)).collect();
        let (wanted, notes) = rows_of(&expander, &refs, from, to);
        note(warnings, calendar, &uid, notes);
        writes.add(&uid, stored.remove(&uid).unwrap_or_default(), wanted);
    }
    for (uid, old) in stored {
        writes.add(&uid, old, Vec::new());
    }
    writes.flush(client, calendar).await
}

/// Writes the occurrences of `[old_to, new_to)` (new or changed rows only).
async fn slide(
    client: &impl GenericClient,
    calendar: &str,
    config: &InstanceConfig,
    old_to: DateTime<Utc>,
    new_to: DateTime<Utc>,
    warnings: &mut Vec<String>,
) -> Result<u64> {
    let expander = config.expander();
    let mut writes = Writes::default();
    for (uid, comps) in candidates(client, calendar, old_to, new_to).await? {
        let refs: Vec<_> = comps.iter().map(|(r, d)| (*r, d)).collect();
        let (rows, notes) = rows_of(&expander, &refs, old_to, new_to);
        note(warnings, calendar, &uid, notes);
        writes.upsert(&uid, rows);
    }
    writes.flush(client, calendar).await
}

/// Brings a calendar's instances in step with its events after an apply wrote them (same
/// transaction; the calendar's row exists).
pub(super) async fn maintain(
    client: &impl GenericClient,
    calendar: &str,
    config: &InstanceConfig,
    now: DateTime<Utc>,
    was_empty: bool,
    touched: Touched,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let window = config.window(now);
    let stored = horizons(client, &[calendar]).await?.remove(calendar).flatten();
    match stored {
        None if !was_empty => {
            rebuild(client, calendar, config, window, warnings).await?;
        }
        Some(h) if h.zone != config.zone_of().name() => {
            rebuild(client, calendar, config, window, warnings).await?;
        }
        stored => {
            let Touched { mut written, uids } = touched;
            let names: Vec<&str> = uids.iter().map(Uid::as_str).collect();
            let mut from_db = if was_empty { BTreeMap::new() } else { components(client, calendar, &names).await? };
            let mut old = if was_empty { HashMap::new() } else { stored_rows(client, calendar, Some(&names)).await? };
            let expander = config.expander();
            let mut writes = Writes::default();
            for uid in &uids {
                let comps = if was_empty {
                    written.remove(uid).unwrap_or_default()
                } else {
                    from_db.remove(uid.as_str()).unwrap_or_default()
                };
                let refs: Vec<_> = comps.iter().map(|(r, d)| (*r, d)).collect();
                let (wanted, notes) = rows_of(&expander, &refs, window.0, window.1);
                note(warnings, calendar, uid.as_str(), notes);
                writes.add(uid.as_str(), old.remove(uid.as_str()).unwrap_or_default(), wanted);
            }
            writes.flush(client, calendar).await?;
            if let Some(h) = stored
                && window.1 > h.to
            {
                slide(client, calendar, config, h.to, window.1, warnings).await?;
            }
        }
    }
    save_horizon(client, calendar, config, now).await
}

/// Slides the horizons of every calendar to the one of `now`; answers (calendars moved, rows
/// written).
pub(super) async fn slide_all(
    client: &impl GenericClient,
    config: &InstanceConfig,
    now: DateTime<Utc>,
    warnings: &mut Vec<String>,
) -> Result<(usize, u64)> {
    let window = config.window(now);
    let rows = client
        .query("SELECT calendar_id FROM calendars ORDER BY calendar_id", &[])
        .await
        .map_err(storage("read calendars"))?;
    let calendars: Vec<String> =
        rows.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>().map_err(storage("read calendars"))?;
    let names: Vec<&str> = calendars.iter().map(String::as_str).collect();
    let mut stored = horizons(client, &names).await?;
    let (mut moved, mut written) = (0, 0);
    for cal in &calendars {
        match stored.remove(cal).flatten() {
            Some(h) if h.zone == config.zone_of().name() => {
                if window.1 > h.to {
                    written += slide(client, cal, config, h.to, window.1, warnings).await?;
                    moved += 1;
                }
            }
            _ => {
                written += rebuild(client, cal, config, window, warnings).await?;
                moved += 1;
            }
        }
        save_horizon(client, cal, config, now).await?;
    }
    Ok((moved, written))
}

/// A busy query: from `instances` where the horizon covers the window in `zone`, else expanded.
pub(super) async fn busy(
    client: &impl GenericClient,
    config: Option<&InstanceConfig>,
    calendars: &[CalendarId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone: Zone,
) -> Result<BusyAnswer> {
    let names: Vec<&str> = calendars.iter().map(CalendarId::as_str).collect();
    let stored = horizons(client, &names).await?;
    let covered: Vec<&str> = names
        .iter()
        .copied()
        .filter(|c| {
            config.is_some()
                && stored
                    .get(*c)
                    .and_then(Option::as_ref)
                    .is_some_and(|h| h.zone == zone.name() && h.from <= from && to <= h.to)
        })
        .collect();
    let mut per: HashMap<&str, Vec<BusyInterval>> = names.iter().map(|c| (*c, Vec::new())).collect();
    if !covered.is_empty() {
        let rows = client
            .query(
                "SELECT calendar_id, starts_at, ends_at, tentative FROM instances
                 WHERE calendar_id = ANY($1) AND busy AND ends_at > $2 AND starts_at < $3",
                &[&covered, &from, &to],
            )
            .await
            .map_err(storage("busy query"))?;
        for r in rows {
            let cal: String = r.try_get(0).map_err(storage("busy query"))?;
            let i = BusyInterval::new(
                r.try_get(1).map_err(storage("busy query"))?,
                r.try_get(2).map_err(storage("busy query"))?,
                r.try_get(3).map_err(storage("busy query"))?,
            );
            if let Some(list) = per.get_mut(cal.as_str()) {
                list.push(i);
            }
        }
    }
    let covered: HashSet<&str> = covered.into_iter().collect();
    let mut warnings = Vec::new();
    let mut expanded = false;
    let mut expanded_rows = 0usize;
    let zoned = config.map_or_else(InstanceConfig::new, |c| *c).zone(zone).expander();
    for name in &names {
        if covered.contains(name) || !stored.contains_key(*name) {
            continue;
        }
        expanded = true;
        let series = candidates(client, name, from, to).await?;
        let found = expanded_busy(&zoned, name, series, (from, to), &mut expanded_rows, &mut warnings);
        if let Some(list) = per.get_mut(name) {
            list.extend(found);
        }
    }
    let unknown: Vec<CalendarId> = calendars.iter().filter(|c| !stored.contains_key(c.as_str())).cloned().collect();
    let list = calendars.iter().map(|c| (c.clone(), per.remove(c.as_str()).unwrap_or_default())).collect();
    let mut answer = BusyAnswer::of(list, from, to);
    answer.unknown = unknown;
    answer.expanded = expanded;
    answer.warnings = warnings;
    Ok(answer)
}
