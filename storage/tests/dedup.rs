//! Client ids (`cid`): the same `cid` from the same sender within the dedup window finds the
//! message the first send stored; past the window it is forgotten and its row removed, a
//! backlog a little at a time; a copy fed by the log knows the `cid`s of its original; the
//! rows of earlier versions are still honoured and go with their user.

use std::path::Path;
use std::time::Duration;

mod common;

use common::{apply_logged, logging_store, message};
use parlor_storage::{Store, UserRecord, WriterConfig};

/// The table id of `recent_cids` in effects and [`Snapshot::rows`](parlor_storage::Snapshot::rows).
const RECENT_CIDS: u16 = 38;

fn open(path: &Path, window: Duration) -> Store {
    let config = WriterConfig {
        dedup_window: window,
        ..WriterConfig::default()
    };
    Store::open(path, config).expect("open store")
}

/// Sends message `seq` with `cid` as the send paths do: the dedup check, then the append.
/// Returns the seq of the message the `cid` names afterwards.
fn send(store: &Store, seq: u64, cid: &str) -> u64 {
    let cid = cid.to_owned();
    store
        .writer()
        .write_blocking(move |tx| {
            if let Some(first) = tx.dedup("acme", 1, &cid)? {
                return Ok(first.seq);
            }
            tx.append_message("acme", &message("d:1:2", seq, 1, Some(&cid)))?;
            Ok(seq)
        })
        .unwrap()
}

fn dedup(store: &Store, sender: u64, cid: &str) -> Option<u64> {
    let cid = cid.to_owned();
    store
        .writer()
        .write_blocking(move |tx| Ok(tx.dedup("acme", sender, &cid)?.map(|m| m.seq)))
        .unwrap()
}

/// The client ids the Writer's index held after its last commit (the gauge).
fn held(store: &Store) -> u64 {
    store
        .writer()
        .stats()
        .recent_cids
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn recent_rows(store: &Store) -> usize {
    let rows = store.snapshot().unwrap().rows().unwrap();
    rows.iter().filter(|e| e.table == RECENT_CIDS).count()
}

#[test]
fn a_cid_is_remembered_within_the_window_and_forgotten_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("parlor.redb"), Duration::from_millis(1000));
    assert_eq!(send(&store, 1, "c1"), 1);
    assert_eq!(send(&store, 2, "c1"), 1, "the retry finds the first message");
    assert_eq!(
        dedup(&store, 2, "c1"),
        None,
        "another sender's cid is another cid"
    );
    assert_eq!(store.snapshot().unwrap().head("acme", "d:1:2").unwrap(), 1);
    assert_eq!(recent_rows(&store), 1);

    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        dedup(&store, 1, "c1"),
        None,
        "past the window, even before its row goes"
    );
    // The next send prunes: the expired row goes, the new one stays.
    assert_eq!(send(&store, 2, "c2"), 2);
    assert_eq!(recent_rows(&store), 1);
    assert_eq!(dedup(&store, 1, "c2"), Some(2));
    assert_eq!(held(&store), 1, "the index forgot the expired cid too");
    // A cid used again after its window stores a new message.
    assert_eq!(send(&store, 3, "c1"), 3);
    store.shutdown();
}

#[test]
fn the_window_holds_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.redb");
    let store = open(&path, Duration::from_secs(3600));
    assert_eq!(send(&store, 1, "c1"), 1);
    store.shutdown();
    drop(store);
    let store = open(&path, Duration::from_secs(3600));
    // The Writer builds its index as it starts, before any write asks for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while held(&store) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(held(&store), 1, "the index was built at start");
    assert_eq!(
        send(&store, 2, "c1"),
        1,
        "the reopened store builds its index from the table"
    );
    assert_eq!(store.snapshot().unwrap().head("acme", "d:1:2").unwrap(), 1);
    store.shutdown();
}

#[test]
fn a_backlog_of_expired_rows_is_removed_a_little_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    // A window far longer than the batch below takes, so none of it expires while it runs.
    let store = open(&dir.path().join("parlor.redb"), Duration::from_millis(1000));
    store
        .writer()
        .write_blocking(|tx| {
            for seq in 1..=1500 {
                tx.append_message("acme", &message("d:1:2", seq, 1, Some(&format!("c{seq}"))))?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(recent_rows(&store), 1500);
    std::thread::sleep(Duration::from_millis(1100));
    send(&store, 1501, "next-1");
    let left = recent_rows(&store);
    assert!(
        left > 1 && left < 1501,
        "one prune removes a bounded part of the backlog: {left} rows left"
    );
    send(&store, 1502, "next-2");
    assert_eq!(
        recent_rows(&store),
        2,
        "the next send prunes again and removes the rest"
    );
    store.shutdown();
}

#[test]
fn a_copy_fed_by_the_log_knows_the_cids_of_its_original() {
    let dir = tempfile::tempdir().unwrap();
    let (original, logged) = logging_store(&dir.path().join("original.redb"));
    assert_eq!(send(&original, 1, "c1"), 1);

    let copy = open(&dir.path().join("copy.redb"), Duration::from_secs(3600));
    // The copy's index is built before the rows arrive, as a standby's would be.
    assert_eq!(dedup(&copy, 1, "c1"), None);
    apply_logged(&copy, &logged);
    assert_eq!(
        dedup(&copy, 1, "c1"),
        Some(1),
        "the applied rows reached the index"
    );
    assert_eq!(
        send(&copy, 2, "c1"),
        1,
        "a retry on the new owner finds the message"
    );
    original.shutdown();
    copy.shutdown();
}

#[test]
fn cids_of_an_earlier_version_are_still_honoured_and_go_with_their_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.redb");
    let store = open(&path, Duration::from_secs(3600));
    let id = store
        .writer()
        .write_blocking(|tx| {
            let mut u = UserRecord {
                tenant: "acme".into(),
                username: "alice".into(),
                uuid: "alice-uuid".into(),
                ..UserRecord::default()
            };
            tx.insert_user(&mut u)?;
            tx.append_message("acme", &message("d:1:2", 1, u.id, None))?;
            Ok(u.id)
        })
        .unwrap();
    store.shutdown();
    drop(store);
    // The table of earlier versions, keyed by the sender, written as they wrote it.
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(parlor_storage::tables::DEDUP)
            .unwrap()
            .insert(("acme", id, "old"), ("d:1:2", 1))
            .unwrap();
        txn.commit().unwrap();
    }
    let store = open(&path, Duration::from_secs(3600));
    assert_eq!(dedup(&store, id, "old"), Some(1));
    store
        .writer()
        .write_blocking(move |tx| tx.remove_user("acme", id))
        .unwrap()
        .expect("the user was there");
    assert_eq!(
        dedup(&store, id, "old"),
        None,
        "the user's old cids went with the user"
    );
    store.shutdown();
}
