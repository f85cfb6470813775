//! The planner's decision table: one test per row, named after the row; then the filters and
//! guards that run around it.

use calscope::{
    Blocked, CalendarHead, Change, Changes, DeleteReason, Delta, Diagnostic, Event, Href, PlanOptions, Revision,
    Snapshot, StoredEntry, StoredState, plan,
};

use crate::common::{cal, ev, key};

fn stored(calendar: &str, events: &[Event]) -> StoredState {
    let entries = events.iter().map(StoredEntry::of_event).collect::<Vec<_>>();
    let head = CalendarHead::new(None, Revision(1), entries.len() as u64);
    StoredState::new(cal(calendar), head, entries).unwrap()
}

fn snapshot(events: Vec<Event>) -> Changes {
    Changes::Snapshot(Snapshot::complete(events))
}

fn opts() -> PlanOptions {
    PlanOptions::default().allow_mass_change(true)
}

#[test]
fn remote_only_is_inserted() {
    let p = plan(&cal("a"), &snapshot(vec![ev("1", "x").build("a")]), &stored("a", &[]), &opts());
    assert_eq!((p.inserts(), p.updates(), p.deletes(), p.unchanged()), (1, 0, 0, 0));
    assert_eq!(p.changes()[0].reason(), "not stored");
}

#[test]
fn both_with_same_fingerprint_is_unchanged() {
    let old = ev("1", "x").stamp(1).build("a");
    let new = ev("1", "x").stamp(999).seq(4).build("a");
    let p = plan(&cal("a"), &snapshot(vec![new]), &stored("a", &[old]), &opts());
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(p.unchanged(), 1);
}

#[test]
fn source_hash_settles_unchanged_and_the_fingerprint_decides_otherwise() {
    let policy = calscope::FingerprintPolicy::default();
    let text =
        "BEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\n";
    let read = |t: &str| Event::from_ics(&cal("a"), t, &policy).unwrap();
    let old = read(text);
    let restamped = read(&text.replace("20260101T000000Z", "20270101T000000Z"));
    let reserialized =
        read(&text.replace("\r\n", "\n").replace("SUMMARY:x\n", "").replace("UID:1\n", "UID:1\nSUMMARY:x\n"));
    let changed = read(&text.replace("SUMMARY:x", "SUMMARY:y"));
    assert_eq!(restamped.source_hash(), old.source_hash());
    assert_ne!(reserialized.source_hash(), old.source_hash());
    assert_eq!(reserialized.fingerprint(), old.fingerprint());
    let run = |entry: StoredEntry, event: &Event| {
        let state = StoredState::new(cal("a"), CalendarHead::new(None, Revision(1), 1), vec![entry]).unwrap();
        let p = plan(&cal("a"), &snapshot(vec![event.clone()]), &state, &opts());
        (p.updates(), p.unchanged())
    };
    let entry = StoredEntry::of_event(&old);
    assert_eq!(run(entry.clone(), &restamped), (0, 1));
    assert_eq!(run(entry.clone(), &reserialized), (0, 1), "a re-serialization is not a change");
    assert_eq!(run(entry.clone(), &changed), (1, 0));
    // A matching source hash is enough: the fingerprint is not consulted (a stale one here).
    let stale = StoredEntry::new(old.key().clone(), changed.fingerprint()).with_source_hash(Some(old.source_hash()));
    assert_eq!(run(stale, &restamped), (0, 1));
    // Without a stored source hash the fingerprints decide.
    let plain = StoredEntry::new(old.key().clone(), old.fingerprint());
    assert_eq!(run(plain.clone(), &restamped), (0, 1));
    assert_eq!(run(plain, &changed), (1, 0));
}

#[test]
fn both_with_different_fingerprint_is_updated_naming_the_properties() {
    let old = ev("1", "x").build("a");
    let new = ev("1", "y").build("a");
    let p = plan(&cal("a"), &snapshot(vec![new.clone()]), &stored("a", std::slice::from_ref(&old)), &opts());
    assert_eq!(p.updates(), 1);
    match &p.changes()[0] {
        Change::Update { event, previous, properties } => {
            assert_eq!(**event, new);
            assert_eq!(*previous, old.fingerprint());
            assert_eq!(properties, &vec!["SUMMARY".to_owned()]);
        }
        other => panic!("expected an update, got {other:?}"),
    }
    assert_eq!(p.changes()[0].reason(), "changed: SUMMARY");
}

#[test]
fn stored_only_in_complete_snapshot_is_deleted() {
    let keep = ev("1", "x").build("a");
    let gone = ev("2", "y").build("a");
    let p = plan(&cal("a"), &snapshot(vec![keep.clone()]), &stored("a", &[keep, gone]), &opts());
    assert_eq!(p.deletes(), 1);
    assert!(
        matches!(&p.changes()[0], Change::Delete { key, reason: DeleteReason::NotInSnapshot, .. } if *key == key_of("a", "2"))
    );
}

fn key_of(c: &str, uid: &str) -> calscope::EventKey {
    key(c, uid, None)
}

#[test]
fn stored_only_in_incomplete_snapshot_is_kept() {
    let keep = ev("1", "x").build("a");
    let absent = ev("2", "y").build("a");
    let remote = Changes::Snapshot(Snapshot::incomplete(vec![keep.clone()]));
    let p = plan(&cal("a"), &remote, &stored("a", &[keep, absent]), &opts());
    assert!(p.is_empty());
    assert_eq!(p.diagnostics(), &[Diagnostic::IncompleteSnapshot { retained: 1 }]);
}

#[test]
fn stored_only_removed_in_delta_is_deleted() {
    let gone = ev("2", "y").build("a");
    let delta = Changes::Delta(Delta { removals: vec![key_of("a", "2")], ..Delta::default() });
    let p = plan(&cal("a"), &delta, &stored("a", &[gone]), &opts());
    assert!(matches!(p.changes(), [Change::Delete { reason: DeleteReason::RemovedInDelta, .. }]));
}

#[test]
fn stored_only_with_removed_href_is_deleted() {
    let master = ev("1", "x").href("/cal/1.ics").build("a");
    let over = ev("1", "x moved").rid("20260112T090000Z").href("/cal/1.ics").build("a");
    let other = ev("2", "y").href("/cal/2.ics").build("a");
    let href = Href::new("/cal/1.ics").unwrap();
    let delta = Changes::Delta(Delta { removed_hrefs: vec![href.clone()], ..Delta::default() });
    let p = plan(&cal("a"), &delta, &stored("a", &[master, over, other]), &opts());
    assert_eq!(p.deletes(), 2);
    assert!(
        p.changes()
            .iter()
            .all(|c| matches!(c, Change::Delete { reason: DeleteReason::ResourceRemoved(h), .. } if *h == href))
    );
}

#[test]
fn stored_only_override_of_a_master_whose_href_is_removed_is_deleted() {
    // Each item its own resource (Google): removing the master's resource removes the series.
    let master = ev("1", "x").href("m1").build("a");
    let over = ev("1", "x moved").rid("20260112T090000Z").href("m1_20260112").build("a");
    let orphan = ev("2", "y moved").rid("20260112T090000Z").href("m2_20260112").build("a");
    let lone = ev("3", "z").rid("20260112T090000Z").href("m3_20260112").build("a");
    let href = Href::new("m1").unwrap();
    let delta = Changes::Delta(Delta { removed_hrefs: vec![href.clone()], ..Delta::default() });
    let p = plan(&cal("a"), &delta, &stored("a", &[master, over.clone(), orphan, lone]), &opts());
    assert_eq!(p.deletes(), 2, "the master and its override, nothing of other UIDs: {p:?}");
    assert!(
        p.changes()
            .iter()
            .all(|c| matches!(c, Change::Delete { key, reason: DeleteReason::ResourceRemoved(h), .. } if *h == href && key.uid.as_str() == "1"))
    );
    // Removing only an override's own resource leaves the master.
    let delta = Changes::Delta(Delta { removed_hrefs: vec![Href::new("m1_20260112").unwrap()], ..Delta::default() });
    let master = ev("1", "x").href("m1").build("a");
    let p = plan(&cal("a"), &delta, &stored("a", &[master, over.clone()]), &opts());
    assert!(matches!(p.changes(), [Change::Delete { key, .. }] if key.recurrence_id.is_some()), "{p:?}");
    // An override upserted in the same delta as its master's removal stays (nothing is lost).
    let master = ev("1", "x").href("m1").build("a");
    let delta = Changes::Delta(Delta { upserts: vec![over.clone()], removed_hrefs: vec![href], ..Delta::default() });
    let p = plan(&cal("a"), &delta, &stored("a", &[master, over]), &opts());
    assert!(matches!(p.changes(), [Change::Delete { key, .. }] if key.recurrence_id.is_none()), "{p:?}");
}

#[test]
fn stored_only_with_rewritten_href_is_deleted() {
    let master = ev("1", "x").href("/cal/1.ics").build("a");
    let over = ev("1", "x moved").rid("20260112T090000Z").href("/cal/1.ics").build("a");
    let delta = Changes::Delta(Delta { upserts: vec![master.clone()], ..Delta::default() });
    let p = plan(&cal("a"), &delta, &stored("a", &[master, over]), &opts());
    assert_eq!(p.unchanged(), 1);
    assert!(
        matches!(p.changes(), [Change::Delete { key, reason: DeleteReason::ResourceRewritten(_), .. }] if key.recurrence_id.is_some())
    );
}

#[test]
fn stored_only_untouched_by_delta_is_kept() {
    let a = ev("1", "x").build("a");
    let b = ev("2", "y").build("a");
    let delta = Changes::Delta(Delta { upserts: vec![ev("3", "z").build("a")], ..Delta::default() });
    let p = plan(&cal("a"), &delta, &stored("a", &[a, b]), &opts());
    assert_eq!((p.inserts(), p.deletes()), (1, 0));
}

#[test]
fn overrides_are_distinct_keys_under_one_uid() {
    let master = ev("1", "series").build("a");
    let o1 = ev("1", "moved").rid("20260112T090000Z").build("a");
    let o2 = ev("1", "moved again").rid("20260119T090000Z").build("a");
    let p = plan(&cal("a"), &snapshot(vec![o2, master, o1]), &stored("a", &[]), &opts());
    assert_eq!(p.inserts(), 3);
    let rids: Vec<_> = p.changes().iter().map(|c| c.key().recurrence_id.map(|r| r.to_string())).collect();
    assert_eq!(rids, vec![None, Some("20260112T090000Z".into()), Some("20260119T090000Z".into())]);
}

#[test]
fn duplicate_keys_keep_the_highest_sequence_in_any_order() {
    let low = ev("1", "old").seq(1).build("a");
    let high = ev("1", "new").seq(2).build("a");
    for order in [vec![low.clone(), high.clone()], vec![high.clone(), low.clone()]] {
        let p = plan(&cal("a"), &snapshot(order), &stored("a", &[]), &opts());
        assert_eq!(p.changes()[0].event().unwrap(), &high);
        assert_eq!(
            p.diagnostics(),
            &[Diagnostic::DuplicateKey { key: key_of("a", "1"), kept: high.fingerprint(), dropped: low.fingerprint() }]
        );
    }
}

#[test]
fn duplicate_keys_without_sequence_keep_the_greater_fingerprint_and_never_flip() {
    let x = ev("1", "x").build("a");
    let y = ev("1", "y").build("a");
    let winner = if x.fingerprint() > y.fingerprint() { x.clone() } else { y.clone() };
    let first = plan(&cal("a"), &snapshot(vec![x.clone(), y.clone()]), &stored("a", &[]), &opts());
    assert_eq!(first.changes()[0].event().unwrap(), &winner);
    // Stored the winner; the next sync lists them the other way round: nothing to write.
    let again = plan(&cal("a"), &snapshot(vec![y, x]), &stored("a", &[winner]), &opts());
    assert!(again.is_empty());
}

#[test]
fn duplicate_keys_prefer_last_modified_when_sequence_ties() {
    let base = ev("1", "x").seq(1);
    let older = base.ics().replace("SEQUENCE:1", "SEQUENCE:1\r\nLAST-MODIFIED:20260101T000000Z");
    let newer = base
        .ics()
        .replace("SUMMARY:x", "SUMMARY:z")
        .replace("SEQUENCE:1", "SEQUENCE:1\r\nLAST-MODIFIED:20260201T000000Z");
    let policy = calscope::FingerprintPolicy::default();
    let older = Event::from_ics(&cal("a"), &older, &policy).unwrap();
    let newer = Event::from_ics(&cal("a"), &newer, &policy).unwrap();
    let p = plan(&cal("a"), &snapshot(vec![newer.clone(), older]), &stored("a", &[]), &opts());
    assert_eq!(p.changes()[0].event().unwrap(), &newer);
}

#[test]
fn foreign_events_are_dropped_never_written() {
    let mine = ev("1", "x").build("a");
    let theirs = ev("2", "y").build("b");
    let p = plan(&cal("a"), &snapshot(vec![mine, theirs]), &stored("a", &[]), &opts());
    assert_eq!(p.inserts(), 1);
    assert!(p.changes().iter().all(|c| c.key().calendar == cal("a")));
    assert_eq!(p.diagnostics(), &[Diagnostic::ForeignEvent { key: key_of("b", "2") }]);
    p.validate().unwrap();
}

#[test]
fn upsert_and_removal_of_one_key_keeps_the_upsert() {
    let old = ev("1", "x").build("a");
    let new = ev("1", "y").build("a");
    let delta = Changes::Delta(Delta { upserts: vec![new], removals: vec![key_of("a", "1")], ..Delta::default() });
    let p = plan(&cal("a"), &delta, &stored("a", &[old]), &opts());
    assert_eq!((p.updates(), p.deletes()), (1, 0));
    assert_eq!(p.diagnostics(), &[Diagnostic::UpsertAndRemoval { key: key_of("a", "1") }]);
}

#[test]
fn empty_snapshot_over_stored_events_is_blocked_unless_allowed() {
    let st = stored("a", &[ev("1", "x").build("a")]);
    let p = plan(&cal("a"), &snapshot(vec![]), &st, &PlanOptions::default());
    assert_eq!(p.blocked(), Some(&Blocked::EmptySnapshot { stored: 1 }));
    assert_eq!(p.validate().unwrap_err().kind(), calscope::ErrorKind::EmptySnapshot);
    let allowed = plan(&cal("a"), &snapshot(vec![]), &st, &PlanOptions::default().allow_empty(true));
    assert!(allowed.blocked().is_none());
    assert_eq!(allowed.deletes(), 1);
}

#[test]
fn mass_change_is_blocked_unless_allowed() {
    let old: Vec<Event> = (0..20).map(|i| ev(&i.to_string(), "x").build("a")).collect();
    let new: Vec<Event> = (0..20).map(|i| ev(&i.to_string(), if i < 11 { "y" } else { "x" }).build("a")).collect();
    let st = stored("a", &old);
    let p = plan(&cal("a"), &snapshot(new.clone()), &st, &PlanOptions::default());
    assert_eq!(p.blocked(), Some(&Blocked::MassChange { changes: 11, stored: 20, max_ratio: 0.5 }));
    assert_eq!(p.validate().unwrap_err().kind(), calscope::ErrorKind::MassChange);
    let half: Vec<Event> = (0..20).map(|i| ev(&i.to_string(), if i < 10 { "y" } else { "x" }).build("a")).collect();
    assert!(plan(&cal("a"), &snapshot(half), &st, &PlanOptions::default()).blocked().is_none());
    assert!(plan(&cal("a"), &snapshot(new), &st, &PlanOptions::default().allow_mass_change(true)).blocked().is_none());
}

#[test]
fn small_calendars_are_exempt_from_the_mass_change_guard() {
    let st = stored("a", &[ev("1", "x").build("a"), ev("2", "x").build("a")]);
    let p = plan(&cal("a"), &snapshot(vec![ev("1", "changed").build("a")]), &st, &PlanOptions::default());
    assert!(p.blocked().is_none());
    assert_eq!((p.updates(), p.deletes()), (1, 1));
}

#[test]
fn plans_are_deterministic_and_serializable() {
    let events: Vec<Event> = (0..30).rev().map(|i| ev(&format!("u{i:02}"), "x").build("a")).collect();
    let mut shuffled = events.clone();
    shuffled.reverse();
    let p1 = plan(&cal("a"), &snapshot(events), &stored("a", &[]), &opts());
    let p2 = plan(&cal("a"), &snapshot(shuffled), &stored("a", &[]), &opts());
    assert_eq!(p1, p2);
    let keys: Vec<_> = p1.changes().iter().map(|c| c.key().clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let json = serde_json::to_string(&p1).unwrap();
    let back: calscope::Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p1);
}
