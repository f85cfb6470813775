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
