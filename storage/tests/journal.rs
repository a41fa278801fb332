//! The journal: writes acknowledged through a Store with a journal survive the process being
//! killed (a child process that aborts after its last acknowledgement, its database file
//! never synced after opening, or synced at checkpoints every few batches), come back when
//! the store is opened again, and are not read past by tools that open the file alone; a
//! clean shutdown leaves nothing to replay, and the journal starts again instead of growing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parlor_storage::{ChatType, JournalConfig, MessageRecord, ReadOnlyStore, Store, WriterConfig};

/// Set in a child process: the directory of its database, and its checkpoint size.
const CHILD_DIR: &str = "PARLOR_JOURNAL_TEST_DIR";
const CHILD_CHECKPOINT: &str = "PARLOR_JOURNAL_TEST_CHECKPOINT";

/// Conversations the writes are spread over, and messages in each.
const CONVERSATIONS: u64 = 7;
const PER_CONVERSATION: u64 = 60;

fn message(conv: &str, seq: u64) -> MessageRecord {
    MessageRecord {
        id: format!("{conv}/{seq}"),
        seq,
        conv: conv.to_owned(),
        chat_type: ChatType::Single,
        from_id: 1,
        from_name: "user1".to_owned(),
        from_avatar: String::new(),
        to_id: 2,
        to_name: "user2".to_owned(),
        to_avatar: String::new(),
        kind: "text".to_owned(),
        data: format!("{{\"text\":\"message {seq} of {conv}\"}}"),
        options: "{}".to_owned(),
        cid: Some(format!("{conv}-{seq}")),
        create_time: 1_700_000_000_000 + seq,
        revoked: false,
        action: None,
    }
}

fn config(path: &Path, checkpoint_bytes: u64) -> WriterConfig {
    WriterConfig {
        journal: Some(JournalConfig {
            checkpoint_bytes,
            // Only the bytes (and a clean shutdown) make checkpoints in these tests.
            checkpoint_interval: Duration::from_secs(3600),
            ..JournalConfig::beside(path)
        }),
        ..WriterConfig::default()
    }
}

/// Every message the writes make, by (conversation, seq).
fn expected() -> BTreeMap<(String, u64), MessageRecord> {
    let mut all = BTreeMap::new();
    for c in 0..CONVERSATIONS {
        let conv = format!("d:{c}:99");
        for seq in 1..=PER_CONVERSATION {
            all.insert((conv.clone(), seq), message(&conv, seq));
        }
    }
    all
}

/// Writes every message: each conversation's in order, the conversations at once, many
/// writes waiting together so that batches hold several. Returns when each is
/// acknowledged.
fn write_all(store: &Store) {
    for seq in 1..=PER_CONVERSATION {
        let waiting: Vec<_> = (0..CONVERSATIONS)
            .map(|c| {
                let msg = message(&format!("d:{c}:99"), seq);
                store
                    .writer()
                    .submit(move |tx| tx.append_message("acme", &msg))
                    .expect("room in the queue")
            })
            .collect();
        for rx in waiting {
            rx.blocking_recv().expect("an answer").expect("acknowledged");
        }
    }
}

/// Every message of [`write_all`] is in `store`, and no other but `extra` more in `d:0:99`.
fn assert_holds_everything(store: &Store, extra: u64) {
    let snap = store.snapshot().unwrap();
    for ((conv, seq), want) in expected() {
        assert_eq!(
            snap.message("acme", &conv, seq).unwrap().as_ref(),
            Some(&want),
            "{conv}#{seq}"
        );
    }
    for c in 0..CONVERSATIONS {
        let more = if c == 0 { extra } else { 0 };
        assert_eq!(
            snap.head("acme", &format!("d:{c}:99")).unwrap(),
            PER_CONVERSATION + more
        );
    }
}

/// In a child process: writes everything, then aborts (no shutdown, no final checkpoint).
fn child(dir: &Path) -> ! {
    let checkpoint: u64 = std::env::var(CHILD_CHECKPOINT).unwrap().parse().unwrap();
    let path = dir.join("db.redb");
    let store = Store::open(&path, config(&path, checkpoint)).unwrap();
    write_all(&store);
    let durable = store.writer().stats().durable_commits.load(Ordering::Relaxed);
    println!("child: every write acknowledged, {durable} durable commits");
    std::process::abort();
}

/// Runs the test `name` again in a child process over `dir`, which aborts after its writes.
fn crash_child(name: &str, dir: &Path, checkpoint_bytes: u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_CHECKPOINT, checkpoint_bytes.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("child: every write acknowledged"),
        "the child did not finish its writes: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::process::ExitStatusExt;
    const SIGABRT: i32 = 6;
    assert_eq!(
        out.status.signal(),
        Some(SIGABRT),
        "the child ended by abort: {:?}",
        out.status
    );
}

#[test]
fn acknowledged_writes_survive_a_crash_before_any_checkpoint() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    crash_child(
        "acknowledged_writes_survive_a_crash_before_any_checkpoint",
        dir.path(),
        u64::MAX,
    );

    assert_eq!(parlor_storage::closed_cleanly(&path).unwrap(), Some(false));
    // Alone, the file lacks what the journal holds: a tool reading it is refused.
    assert!(ReadOnlyStore::open(&path).is_err());
    let (store, opened) = Store::open_checked(&path, config(&path, u64::MAX), Default::default()).unwrap();
    // Every batch since the file was opened was in the journal only.
    assert!(
        opened.replayed >= PER_CONVERSATION,
        "replayed {}",
        opened.replayed
    );
    assert_holds_everything(&store, 0);
    store.shutdown();
    drop(store);

    // Replayed once: the next opening finds nothing to replay, and the file alone is whole.
    let read = ReadOnlyStore::open(&path).unwrap();
    let snap = read.snapshot().unwrap();
    assert_eq!(snap.head("acme", "d:0:99").unwrap(), PER_CONVERSATION);
    drop((snap, read));
    let (store, opened) = Store::open_checked(&path, config(&path, u64::MAX), Default::default()).unwrap();
    assert_eq!(opened.replayed, 0);
    assert_holds_everything(&store, 0);
}

#[test]
fn acknowledged_writes_survive_a_crash_between_checkpoints() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    // A checkpoint every few batches: the journal starts again many times during the run.
    crash_child(
        "acknowledged_writes_survive_a_crash_between_checkpoints",
        dir.path(),
        4096,
    );
    let (store, _) = Store::open_checked(&path, config(&path, 4096), Default::default()).unwrap();
    assert_holds_everything(&store, 0);
    // More writes after the replay take the positions after it: nothing is replayed twice.
    store
        .writer()
        .write_blocking(|tx| tx.append_message("acme", &message("d:0:99", PER_CONVERSATION + 1)))
        .unwrap();
    store.shutdown();
    drop(store);
    let (store, _) = Store::open_checked(&path, config(&path, 4096), Default::default()).unwrap();
    assert_holds_everything(&store, 1);
}

#[test]
fn a_store_opened_without_its_journal_applies_it_and_removes_it() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    crash_child(
        "a_store_opened_without_its_journal_applies_it_and_removes_it",
        dir.path(),
        u64::MAX,
    );
    let (store, opened) = Store::open_checked(&path, WriterConfig::default(), Default::default()).unwrap();
    assert!(
        opened.replayed >= PER_CONVERSATION,
        "replayed {}",
        opened.replayed
    );
    assert!(!JournalConfig::beside(&path).path.exists());
    assert_holds_everything(&store, 0);
    store.shutdown();
    drop(store);
    let read = ReadOnlyStore::open(&path).unwrap();
    assert_eq!(
        read.snapshot().unwrap().head("acme", "d:6:99").unwrap(),
        PER_CONVERSATION
    );
}

#[test]
fn a_clean_shutdown_leaves_nothing_to_replay_and_the_journal_does_not_grow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let store = Store::open(&path, config(&path, 4096)).unwrap();
    write_all(&store);
    let stats = store.writer().stats();
    let (commits, durable) = (
        stats.commits.load(Ordering::Relaxed),
        stats.durable_commits.load(Ordering::Relaxed),
    );
    assert!(
        durable > 1 && durable < commits,
        "{durable} durable commits of {commits}"
    );
    store.shutdown();
    let journal = JournalConfig::beside(&path).path;
    let size = std::fs::metadata(&journal).unwrap().len();
    // 420 messages of about 200 bytes each went through it; it started again at 4 KB.
    assert!(size < 64 * 1024, "the journal is {size} bytes");
    drop(store);
    assert_eq!(parlor_storage::closed_cleanly(&path).unwrap(), Some(true));
    let (store, opened) = Store::open_checked(&path, config(&path, 4096), Default::default()).unwrap();
    assert_eq!(opened.replayed, 0);
    assert_holds_everything(&store, 0);
}

#[test]
fn a_journal_left_beside_a_new_database_is_not_applied_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let store = Store::open(&path, config(&path, u64::MAX)).unwrap();
    write_all(&store);
    store.shutdown();
    drop(store);
    // The database goes, its journal stays (written but never checkpointed past).
    std::fs::remove_file(&path).unwrap();
    let (store, opened) = Store::open_checked(&path, config(&path, u64::MAX), Default::default()).unwrap();
    assert_eq!(opened.replayed, 0);
    assert_eq!(store.snapshot().unwrap().head("acme", "d:0:99").unwrap(), 0);
}
