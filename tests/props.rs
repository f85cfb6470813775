//! Property tests over random multi-calendar histories: snapshots and deltas, UIDs shared
//! across calendars, overrides, duplicates.
//!
//! After every sync: **convergence** (the store equals the remote state), **idempotence**
//! (planning the same answer again is empty), **minimality** (rows written = keys added + keys
//! removed + keys whose fingerprint changed, counted by the store) and **isolation** (no other
//! calendar's rows changed).

use std::collections::BTreeMap;

use async_trait::async_trait;
use calscope::{
    CalendarId, CalendarInfo, CalendarSource, Capabilities, Changes, Delta, Engine, Event, EventKey, FetchRequest,
    Fetched, Fingerprint, LoadScope, MemoryStore, PlanOptions, Result, Snapshot, Store, SyncOptions, plan, plan_owned,
};
use proptest::prelude::*;

use crate::common::{block_on, cal, ev};

const CALENDARS: [&str; 3] = ["a", "b", "c"];
const RIDS: [Option<&str>; 3] = [None, Some("20260112T090000Z"), Some("20260119")];

/// One remote event: (uid index, rid index) → (content variant, sequence).
type Content = BTreeMap<(u8, u8), (u8, u8)>;

#[derive(Clone, Debug)]
struct Step {
    calendar: usize,
    content: Content,
    delta: bool,
    /// Extra copies of keys with other content and sequence: (uid, rid, variant, sequence).
    duplicates: Vec<(u8, u8, u8, u8)>,
    stamp: i64,
}

fn content() -> impl Strategy<Value = Content> {
    proptest::collection::btree_map((0u8..6, 0u8..3), (0u8..3, 0u8..3), 0..10)
}

fn step() -> impl Strategy<Value = Step> {
    (0usize..3, content(), any::<bool>(), proptest::collection::vec((0u8..6, 0u8..3, 0u8..3, 0u8..3), 0..3), 0i64..1000)
        .prop_map(|(calendar, content, delta, duplicates, stamp)| Step { calendar, content, delta, duplicates, stamp })
}

fn build(calendar: &str, uid: u8, rid: u8, variant: u8, seq: u8, stamp: i64) -> Event {
    let mut e =
        ev(&format!("shared-{uid}@example.com"), &format!("variant {variant}")).seq(u32::from(seq)).stamp(stamp);
    if let Some(r) = RIDS[usize::from(rid)] {
        e = e.rid(r);
    }
    e.build(calendar)
}

/// The events the remote holds after a step, duplicates included, and the winner per key.
fn remote(step: &Step) -> (Vec<Event>, BTreeMap<EventKey, Event>) {
    let name = CALENDARS[step.calendar];
    let mut events: Vec<Event> =
        step.content.iter().map(|(&(u, r), &(v, s))| build(name, u, r, v, s, step.stamp)).collect();
    for &(u, r, v, s) in &step.duplicates {
        if step.content.contains_key(&(u, r)) {
            events.push(build(name, u, r, v, s, step.stamp + 1));
        }
    }
    let mut winners: BTreeMap<EventKey, Event> = BTreeMap::new();
    for e in &events {
        let better = |old: &Event| {
            (e.sequence(), e.last_modified(), e.fingerprint())
                > (old.sequence(), old.last_modified(), old.fingerprint())
        };
        if winners.get(e.key()).is_none_or(better) {
            winners.insert(e.key().clone(), e.clone());
        }
    }
    (events, winners)
}

/// Answers exactly the next scripted `Changes` for whatever calendar is asked.
#[derive(Debug, Default)]
struct Script(std::sync::Mutex<Option<Changes>>);

#[async_trait]
impl CalendarSource for Script {
    fn capabilities(&self) -> Capabilities {
        Capabilities::snapshot_only().with_delta(true)
    }
    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        Ok(Vec::new())
    }
    async fn fetch(&self, _: FetchRequest<'_>) -> Result<Fetched> {
        let changes = self.0.lock().unwrap().take().expect("one answer per sync");
        Ok(Fetched::new(changes, None))
    }
}

fn stored_map(store: &MemoryStore, c: &CalendarId) -> BTreeMap<EventKey, Fingerprint> {
    store.events(c).into_iter().map(|e| (e.key().clone(), e.fingerprint())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_converge_minimally_idempotently_and_in_isolation(steps in proptest::collection::vec(step(), 1..8)) {
        let store = MemoryStore::new();
        let engine = Engine::new(&store).with_options(
            SyncOptions::default().plan(PlanOptions::default().allow_empty(true).allow_mass_change(true)),
        );
        let source = Script::default();
        // What each calendar's remote held after its last step (winners only).
        let mut last: BTreeMap<usize, BTreeMap<EventKey, Event>> = BTreeMap::new();

        for step in &steps {
            let c = cal(CALENDARS[step.calendar]);
            let (events, winners) = remote(step);
            let previous = last.get(&step.calendar).cloned().unwrap_or_default();
            let changes = if step.delta {
                // A delta against the previous remote state, which the store holds.
                let upserts: Vec<Event> = events
                    .iter()
                    .filter(|e| previous.get(e.key()).is_none_or(|p| p.fingerprint() != winners[e.key()].fingerprint()))
                    .cloned()
                    .collect();
                let removals = previous.keys().filter(|k| !winners.contains_key(*k)).cloned().collect();
                Changes::Delta(Delta { upserts, removals, removed_hrefs: Vec::new() })
            } else {
                Changes::Snapshot(Snapshot::complete(events.clone()))
            };

            let others: Vec<_> = CALENDARS.iter().map(|n| cal(n)).filter(|o| *o != c).map(|o| (o.clone(), stored_map(&store, &o))).collect();
            let before = stored_map(&store, &c);
            let rows_before = store.stats().rows();
            // Taking the events (the engine's way) plans exactly what copying them does.
            let state = block_on(store.load(&c, LoadScope::All)).unwrap();
            let options = PlanOptions::default().allow_empty(true).allow_mass_change(true);
            prop_assert_eq!(plan_owned(&c, changes.clone(), &state, &options), plan(&c, &changes, &state, &options));

            *source.0.lock().unwrap() = Some(changes);
            let report = block_on(engine.sync(&source, &c));
            prop_assert!(report.is_ok(), "{:?}", report);

            // Convergence.
            let after = stored_map(&store, &c);
            let want: BTreeMap<EventKey, Fingerprint> = winners.iter().map(|(k, e)| (k.clone(), e.fingerprint())).collect();
            prop_assert_eq!(&after, &want);

            // Minimality, counted by the store.
            let added = want.keys().filter(|k| !before.contains_key(*k)).count();
            let removed = before.keys().filter(|k| !want.contains_key(*k)).count();
            let changed = want.iter().filter(|(k, f)| before.get(*k).is_some_and(|b| b != *f)).count();
            let expected = (added + removed + changed) as u64;
            prop_assert_eq!(store.stats().rows() - rows_before, expected);
            prop_assert_eq!(report.writes(), expected);

            // Idempotence: the same answer planned again over the new state is empty.
            let state = block_on(store.load(&c, LoadScope::All)).unwrap();
            let again = plan(&c, &Changes::Snapshot(Snapshot::complete(events)), &state, &PlanOptions::default().allow_empty(true));
            prop_assert!(again.is_empty(), "{:?}", again);

            // Isolation.
            for (o, rows) in &others {
                prop_assert_eq!(&stored_map(&store, o), rows);
            }
            last.insert(step.calendar, winners);
        }
    }
}
