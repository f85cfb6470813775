//! Every provided store held to the same contract: `calscope::testkit`'s checks against
//! `MemoryStore` and `SqliteStore` (in memory and on disk).

use calscope::{MemoryStore, SqliteStore, testkit};

use crate::common::block_on;

#[test]
fn memory_store_passes_the_store_checks() {
    block_on(testkit::run_store_checks(&MemoryStore::new())).unwrap();
}

#[test]
fn sqlite_store_in_memory_passes_the_store_checks() {
    block_on(testkit::run_store_checks(&SqliteStore::open_in_memory().unwrap())).unwrap();
}

#[test]
fn sqlite_store_on_disk_passes_the_store_checks_and_keeps_them_after_reopening() {
    let dir = std::env::temp_dir().join(format!("calscope-stores-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("checks.db");
    let _ = std::fs::remove_file(&path);
    {
        let store = SqliteStore::open(&path).unwrap();
        block_on(testkit::run_store_checks(&store)).unwrap();
    }
    // Closed: both connections are gone and nothing is left in the WAL (a leaked connection
    // or a skipped final checkpoint would leave frames there).
    let wal = std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the WAL is checkpointed when the store closes");
    // Reopened: the schema is created idempotently and the rows are there.
    let store = SqliteStore::open(&path).unwrap();
    let cal = calscope::CalendarId::new("testkit-large_plan-0").unwrap();
    let state = block_on(calscope::Store::load(&store, &cal, calscope::LoadScope::Head)).unwrap();
    assert_eq!(state.head().events, 100_000);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sqlite_store_with_a_state_cache_passes_the_store_checks() {
    block_on(testkit::run_store_checks(&SqliteStore::open_in_memory().unwrap().with_state_cache(1_000_000))).unwrap();
}

/// A cached state is brought up to date by every apply, equals what a fresh load reads, and is
/// dropped when another writer (another process on the same file) moves the revision.
#[test]
fn the_state_cache_follows_applies_and_other_writers() {
    use calscope::{Engine, IcsSource, LoadScope, Store};

    let dir = std::env::temp_dir().join(format!("calscope-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cache.db");
    let _ = std::fs::remove_file(&path);
    let cached = Engine::new(SqliteStore::open(&path).unwrap().with_state_cache(10_000));
    let other = Engine::new(SqliteStore::open(&path).unwrap());
    let c = crate::common::cal("cached");
    let snapshot = |store: &SqliteStore| {
        let state = block_on(store.load(&c, LoadScope::All)).unwrap();
        let mut entries = state.entries().to_vec();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        (entries, state.head().clone())
    };
    let feeds = [
        crate::common::feed(&[("a", "A"), ("b", "B"), ("c", "C")], "20260101T000000Z"),
        crate::common::feed(&[("a", "A"), ("b", "B"), ("c", "C")], "20260102T000000Z"), // restamped
        crate::common::feed(&[("a", "A2"), ("c", "C"), ("d", "D")], "20260103T000000Z"), // edit, delete, add
        crate::common::feed(&[("d", "D"), ("e", "E")], "20260104T000000Z"),
    ];
    for (i, feed) in feeds.iter().enumerate() {
        let r = block_on(cached.sync(&IcsSource::from_bytes(c.clone(), feed.clone()), &c));
        assert!(r.is_ok(), "{i}: {r:?}");
        // What the cache answers is what the file holds.
        assert_eq!(snapshot(cached.store()), snapshot(other.store()), "step {i}");
    }
    // Another writer moves the revision: the cached store reads its rows again.
    let edit = crate::common::feed(&[("d", "D!"), ("e", "E")], "20260105T000000Z");
    assert_eq!(block_on(other.sync(&IcsSource::from_bytes(c.clone(), edit.clone()), &c)).updated, 1);
    assert_eq!(snapshot(cached.store()), snapshot(other.store()));
    assert_eq!(block_on(cached.sync(&IcsSource::from_bytes(c.clone(), edit), &c)).writes(), 0);

    // The cache is really used: a row changed behind calscope's back (revision unmoved) is
    // not seen until the cached state is forgotten.
    block_on(cached.store().with_connection(|conn| {
        conn.execute("UPDATE events SET fingerprint = zeroblob(16), source_hash = NULL WHERE uid = 'e'", [])
    }))
    .unwrap();
    let again = crate::common::feed(&[("d", "D!"), ("e", "E")], "20260106T000000Z");
    assert_eq!(block_on(cached.sync(&IcsSource::from_bytes(c.clone(), again.clone()), &c)).writes(), 0);
    cached.store().forget_cached(&c);
    let restamped = crate::common::feed(&[("d", "D!"), ("e", "E")], "20260107T000000Z");
    assert_eq!(block_on(cached.sync(&IcsSource::from_bytes(c.clone(), restamped), &c)).updated, 1);
    drop((cached, other));
    std::fs::remove_dir_all(&dir).unwrap();
}
