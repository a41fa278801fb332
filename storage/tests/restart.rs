//! Durability and Writer behaviour: what was committed is read back after the Store is shut
//! down and the file reopened; concurrent writes share commits; one write's error or panic
//! does not take the Writer down; a stopped or full Writer refuses new work; system settings
//! are kept and carried by a dump; removing a user takes what is theirs alone, and a gate is
//! kept across a reopen; the outbox signal follows the commits that touch the outbox. Every store these tests open keeps an effect log, and the main
//! scenarios end by replaying it into a fresh database that must hold the very same rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;
use std::time::Duration;

mod common;

use common::message;
use parlor_storage::effects::encode_batch;
use parlor_storage::{
    ApplyRecord, ApplyStatus, Cursor, DumpRecord, EffectLog, Error, FriendRecord, JoinRequest, MemberRecord,
    Role, SettingRecord, Store, UserRecord, WriterConfig,
};

fn user(tenant: &str, username: &str) -> UserRecord {
    UserRecord {
        id: 0,
        uuid: format!("{tenant}-{username}-uuid"),
        tenant: tenant.to_owned(),
        username: username.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        nickname: username.to_uppercase(),
        avatar: format!("/avatars/{username}.png"),
        role: Role::User,
        status: 1,
        mobile: Some("13800000000".to_owned()),
        email: None,
        gender: "female".to_owned(),
        birthday: Some("1990-01-01".to_owned()),
        bio: Some("hello".to_owned()),
        location: None,
        website: None,
        userset: "{\"lang\":\"en\"}".to_owned(),
        invite_confirm: 0,
        device_id: None,
        uniplatform: "app".to_owned(),
        devicemodel: "phone".to_owned(),
        deviceos: "android".to_owned(),
        devicebrand: "acme".to_owned(),
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_000_001,
        last_login_ms: Some(1_700_000_000_002),
    }
}

/// The batches every store of these tests committed, by database file, encoded as a
/// replicated log would carry them.
static LOGS: Mutex<BTreeMap<PathBuf, Vec<Vec<u8>>>> = Mutex::new(BTreeMap::new());

/// An effect log that keeps the batches of the database at `path` in [`LOGS`].
fn log_of(path: &Path) -> EffectLog {
    let path = path.to_owned();
    EffectLog::new(move |effects| {
        let mut logs = LOGS.lock().unwrap();
        let log = logs.entry(path.clone()).or_default();
        log.push(encode_batch(effects));
        Ok(log.len() as u64)
    })
}

fn open(path: &Path) -> Store {
    let config = WriterConfig {
        effect_log: Some(log_of(path)),
        ..WriterConfig::default()
    };
    Store::open(path, config).expect("open store")
}

/// Replays the effect log of the database at `path` (every batch its stores committed, in
/// order) into a fresh database, which must then hold the very rows of `store`.
fn assert_replica_matches(store: &Store, path: &Path) {
    let batches = LOGS.lock().unwrap().get(path).cloned().unwrap_or_default();
    assert!(!batches.is_empty(), "nothing was logged for {}", path.display());
    let dir = tempfile::tempdir().unwrap();
    // A copy that keeps a log of its own: what it applies is not logged again.
    let config = WriterConfig {
        effect_log: Some(EffectLog::new(|effects| {
            panic!("applied effects went to the copy's own log: {effects:?}")
        })),
        ..WriterConfig::default()
    };
    let replica = Store::open(dir.path().join("replica.redb"), config).unwrap();
    replica
        .writer()
        .write_blocking(move |tx| {
            for (at, batch) in (1..).zip(&batches) {
                assert!(tx.apply_logged(at, batch)?, "record {at} applied once");
            }
            // A record delivered again is skipped.
            assert!(!tx.apply_logged(1, &batches[0])?);
            Ok(())
        })
        .unwrap();
    let (original, copy) = (store.snapshot().unwrap(), replica.snapshot().unwrap());
    assert_eq!(copy.log_applied().unwrap(), original.log_applied().unwrap());
    let (want, got) = (original.rows().unwrap(), copy.rows().unwrap());
    assert!(!want.is_empty());
    assert_eq!(got.len(), want.len(), "rows of the replica");
    assert!(got == want, "the replica's rows differ from the store's");
    replica.shutdown();
}

#[test]
fn committed_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/parlor.redb");

    let store = open(&path);
    let (alice, bob) = store
        .writer()
        .write_blocking(|tx| {
            let mut alice = user("acme", "alice");
            let mut bob = user("acme", "bob");
            tx.insert_user(&mut alice)?;
            tx.insert_user(&mut bob)?;
            let mut other = user("other", "alice");
            tx.insert_user(&mut other)?;
            Ok((alice, bob))
        })
        .unwrap();
    for seq in 1..=5 {
        store
            .writer()
            .write_blocking(move |tx| {
                tx.append_message(
                    "acme",
                    &message("d:1:2", seq, 1 + seq % 2, Some(&format!("c{seq}"))),
                )
            })
            .unwrap();
    }
    store
        .writer()
        .write_blocking(|tx| {
            tx.append_message("acme", &message("g:7", 1, 1, None))?;
            tx.append_message("other", &message("d:1:2", 1, 3, None))?;
            let mut revoked = message("d:1:2", 3, 2, Some("c3"));
            revoked.data.clear();
            revoked.revoked = true;
            tx.put_message("acme", &revoked)?;
            tx.ensure_cursor("acme", 1, "d:1:2")?;
            tx.ensure_cursor("acme", 2, "g:7")?;
            tx.ensure_cursor("acme", 2, "d:1:2")?;
            tx.advance_cursor("acme", 1, "d:1:2", 5, 4)?;
            tx.advance_cursor("acme", 2, "d:1:2", 2, 1)?;
            tx.revoke_token("jti-1", u64::MAX)?;
            Ok(())
        })
        .unwrap();
    store.shutdown();
    drop(store);

    let store = open(&path);
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.user("acme", alice.id).unwrap(), Some(alice.clone()));
    assert_eq!(snap.user_by_username("acme", "bob").unwrap(), Some(bob.clone()));
    assert_eq!(
        snap.user_by_uuid("acme", &alice.uuid).unwrap(),
        Some(alice.clone())
    );
    assert_eq!(snap.user_by_username("other", "bob").unwrap(), None);
    assert_eq!(
        snap.user_by_username("other", "alice").unwrap().unwrap().tenant,
        "other"
    );

    assert_eq!(snap.head("acme", "d:1:2").unwrap(), 5);
    assert_eq!(snap.head("acme", "g:7").unwrap(), 1);
    assert_eq!(snap.head("other", "d:1:2").unwrap(), 1);
    assert_eq!(snap.head("other", "g:7").unwrap(), 0);
    let history = snap.history("acme", "d:1:2", None, None, 100).unwrap();
    let seqs: Vec<u64> = history.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [5, 4, 3, 2, 1]);
    assert_eq!(history.next_before, None);
    assert!(history.messages[2].revoked && history.messages[2].data.is_empty());
    assert_eq!(history.messages[0], message("d:1:2", 5, 2, Some("c5")));
    assert_eq!(
        snap.message_by_id("acme", "d:1:2/4").unwrap(),
        Some(message("d:1:2", 4, 1, Some("c4")))
    );
    assert_eq!(
        snap.messages_after("other", "d:1:2", 0, 10).unwrap(),
        [message("d:1:2", 1, 3, None)]
    );

    assert_eq!(
        snap.cursor("acme", 1, "d:1:2").unwrap(),
        Some(Cursor {
            delivered: 5,
            read: 4
        })
    );
    assert_eq!(
        snap.cursors_of("acme", 2).unwrap(),
        [
            (
                "d:1:2".to_owned(),
                Cursor {
                    delivered: 2,
                    read: 1
                }
            ),
            (
                "g:7".to_owned(),
                Cursor {
                    delivered: 0,
                    read: 0
                }
            ),
        ]
    );
    assert!(snap.is_token_revoked("jti-1").unwrap());

    let state = snap.startup_state().unwrap();
    let mut pending = state.pending;
    pending.sort();
    assert_eq!(
        pending,
        [
            ("acme".to_owned(), 2, "d:1:2".to_owned(), 2),
            ("acme".to_owned(), 2, "g:7".to_owned(), 0)
        ]
    );
    assert_eq!(state.revoked_tokens, [("jti-1".to_owned(), u64::MAX)]);
    drop(snap);

    // The reopened store keeps writing where the old one stopped: dedup entries, the user
    // id counter and the taken positions all survived.
    let after = store
        .writer()
        .write_blocking(|tx| {
            let dup = tx.dedup("acme", 2, "c1")?.map(|m| m.seq);
            let other_sender = tx.dedup("acme", 1, "c1")?;
            let taken = tx.append_message("acme", &message("d:1:2", 5, 1, None));
            let mut carol = user("acme", "carol");
            tx.insert_user(&mut carol)?;
            let mut alice_again = user("acme", "alice");
            alice_again.uuid = "fresh".to_owned();
            let clash = tx.insert_user(&mut alice_again);
            Ok((dup, taken, carol.id, clash, other_sender))
        })
        .unwrap();
    assert_eq!(after.0, Some(1));
    assert!(matches!(after.1, Err(Error::Conflict(_))));
    assert!(
        after.2 > alice.id.max(bob.id),
        "user ids are not reused after a restart"
    );
    assert!(matches!(after.3, Err(Error::Conflict(_))));
    assert_eq!(after.4, None, "a cid is per sender");
    // Across the reopen, the log of the batches rebuilds the same database.
    assert_replica_matches(&store, &path);
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_commits() {
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("parlor.redb"));

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let writer = store.writer().clone();
        tasks.push(tokio::spawn(async move {
            let conv = format!("g:{task}");
            for seq in 1..=PER_TASK {
                let msg = message(&conv, seq, task + 1, Some(&format!("{task}-{seq}")));
                writer
                    .write(move |tx| tx.append_message("acme", &msg))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let stats = store.writer().stats();
    let (commits, writes) = (
        stats.commits.load(Ordering::Relaxed),
        stats.writes.load(Ordering::Relaxed),
    );
    assert_eq!(writes, TASKS * PER_TASK);
    assert!(
        commits < writes,
        "{commits} commits for {writes} writes: no group commit"
    );
    assert!(stats.max_batch.load(Ordering::Relaxed) > 1);

    let snap = store.snapshot().unwrap();
    for task in 0..TASKS {
        let conv = format!("g:{task}");
        assert_eq!(snap.head("acme", &conv).unwrap(), PER_TASK);
        let all = snap.messages_after("acme", &conv, 0, usize::MAX).unwrap();
        assert!(all.iter().map(|m| m.seq).eq(1..=PER_TASK));
    }
    store.shutdown();
}

/// Holds the Writer thread inside a write until `release` is sent, so that everything
/// submitted meanwhile lands in the next batch together.
fn block_writer(
    store: &Store,
) -> (
    std_mpsc::Sender<()>,
    tokio::sync::oneshot::Receiver<parlor_storage::Result<()>>,
) {
    let (started_tx, started) = std_mpsc::channel();
    let (release, released) = std_mpsc::channel::<()>();
    let rx = store
        .writer()
        .submit(move |_| {
            started_tx.send(()).unwrap();
            released.recv_timeout(Duration::from_secs(30)).unwrap();
            Ok(())
        })
        .unwrap();
    started.recv_timeout(Duration::from_secs(30)).unwrap();
    (release, rx)
}

#[test]
fn failing_write_gets_its_error_and_the_rest_of_the_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("parlor.redb"));
    store
        .writer()
        .write_blocking(|tx| tx.insert_user(&mut user("acme", "alice")))
        .unwrap();
    let commits_before = store.writer().stats().commits.load(Ordering::Relaxed);

    let (release, blocker) = block_writer(&store);
    let writer = store.writer();
    let first = writer
        .submit(|tx| tx.append_message("acme", &message("d:1:2", 1, 1, None)))
        .unwrap();
    let custom = writer
        .submit(|_| -> parlor_storage::Result<()> { Err(Error::NotFound("the friend request".to_owned())) })
        .unwrap();
    let clash = writer
        .submit(|tx| tx.insert_user(&mut user("acme", "alice")))
        .unwrap();
    let taken = writer
        .submit(|tx| tx.append_message("acme", &message("d:1:2", 1, 2, None)))
        .unwrap();
    let second = writer
        .submit(|tx| tx.append_message("acme", &message("d:1:2", 2, 2, None)))
        .unwrap();
    let bob = writer
        .submit(|tx| {
            let mut bob = user("acme", "bob");
            tx.insert_user(&mut bob)?;
            Ok(bob.id)
        })
        .unwrap();
    release.send(()).unwrap();

    blocker.blocking_recv().unwrap().unwrap();
    first.blocking_recv().unwrap().unwrap();
    assert!(matches!(custom.blocking_recv().unwrap(), Err(Error::NotFound(m)) if m == "the friend request"));
    assert!(matches!(clash.blocking_recv().unwrap(), Err(Error::Conflict(_))));
    assert!(matches!(taken.blocking_recv().unwrap(), Err(Error::Conflict(_))));
    second.blocking_recv().unwrap().unwrap();
    let bob_id = bob.blocking_recv().unwrap().unwrap();

    let stats = writer.stats();
    assert_eq!(
        stats.commits.load(Ordering::Relaxed) - commits_before,
        2,
        "blocker, then one batch"
    );
    assert_eq!(stats.max_batch.load(Ordering::Relaxed), 6);

    let snap = store.snapshot().unwrap();
    let timeline = snap.messages_after("acme", "d:1:2", 0, 10).unwrap();
    assert_eq!(
        timeline,
        [message("d:1:2", 1, 1, None), message("d:1:2", 2, 2, None)]
    );
    assert_eq!(snap.user_by_username("acme", "bob").unwrap().unwrap().id, bob_id);
    assert_eq!(
        snap.user_by_username("acme", "alice").unwrap().unwrap().uuid,
        "acme-alice-uuid"
    );
    drop(snap);
    // The refused writes wrote nothing, so the log holds nothing of them.
    assert_replica_matches(&store, &dir.path().join("parlor.redb"));
    store.shutdown();
}

#[test]
fn panicking_write_does_not_kill_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("parlor.redb"));
    let writer = store.writer();

    // Alone in its batch: the waiter hears that the write was lost.
    let lost = writer.write_blocking(|tx| -> parlor_storage::Result<()> {
        tx.append_message("acme", &message("d:1:2", 1, 1, None))?;
        panic!("a bug in a write closure");
    });
    assert!(matches!(lost, Err(Error::Unavailable(_))), "{lost:?}");

    // Sharing a batch with a panic: the transaction is aborted as a whole, every waiter of
    // that batch is told, and nothing of it is stored.
    let (release, blocker) = block_writer(&store);
    let innocent = writer
        .submit(|tx| tx.insert_user(&mut user("acme", "bob")))
        .unwrap();
    let bad = writer
        .submit(|_| -> parlor_storage::Result<()> { panic!("another bug") })
        .unwrap();
    release.send(()).unwrap();
    blocker.blocking_recv().unwrap().unwrap();
    // A `submit` caller sees its answer dropped (a `write` caller gets `Unavailable`).
    assert!(innocent.blocking_recv().is_err());
    assert!(bad.blocking_recv().is_err());

    // The Writer goes on, and the aborted writes left no trace.
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.head("acme", "d:1:2").unwrap(), 0);
    assert_eq!(snap.user_by_username("acme", "bob").unwrap(), None);
    drop(snap);
    writer
        .write_blocking(|tx| tx.append_message("acme", &message("d:1:2", 1, 1, None)))
        .unwrap();
    let id = writer
        .write_blocking(|tx| {
            let mut bob = user("acme", "bob");
            tx.insert_user(&mut bob)?;
            Ok(bob.id)
        })
        .unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.head("acme", "d:1:2").unwrap(), 1);
    assert_eq!(snap.user("acme", id).unwrap().unwrap().username, "bob");
    store.shutdown();
}

#[test]
fn stopped_writer_refuses_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.redb");
    let store = open(&path);
    let queued = store
        .writer()
        .submit(|tx| tx.append_message("acme", &message("d:1:2", 1, 1, None)))
        .unwrap();
    store.shutdown();
    // Shutdown commits what was already submitted.
    queued.blocking_recv().unwrap().unwrap();
    store.shutdown(); // harmless twice

    let refused = store.writer().submit(|_| Ok(()));
    assert!(matches!(refused, Err(Error::Unavailable(_))));
    assert!(matches!(
        store.writer().write_blocking(|_| Ok(())),
        Err(Error::Unavailable(_))
    ));
    // A clone of the handle is stopped too.
    let writer = store.writer().clone();
    assert!(matches!(writer.submit(|_| Ok(())), Err(Error::Unavailable(_))));
    // Reads still work on the stopped store.
    assert_eq!(store.snapshot().unwrap().head("acme", "d:1:2").unwrap(), 1);
    drop((store, writer));
    assert_eq!(open(&path).snapshot().unwrap().head("acme", "d:1:2").unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_writer_refuses_async_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("parlor.redb"));
    store
        .writer()
        .write(|tx| tx.ensure_cursor("acme", 1, "g:1"))
        .await
        .unwrap();
    let stopping = store.clone();
    tokio::task::spawn_blocking(move || stopping.shutdown())
        .await
        .unwrap();
    let refused = store
        .writer()
        .write(|tx| tx.ensure_cursor("acme", 2, "g:1"))
        .await;
    assert!(matches!(refused, Err(Error::Unavailable(_))));
}

#[test]
fn full_queue_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path().join("parlor.redb"),
        WriterConfig {
            max_batch: 16,
            queue: 2,
            ..WriterConfig::default()
        },
    )
    .unwrap();
    let (release, blocker) = block_writer(&store);
    let writer = store.writer();
    let a = writer.submit(|tx| tx.ensure_cursor("acme", 1, "g:1")).unwrap();
    let b = writer.submit(|tx| tx.ensure_cursor("acme", 2, "g:1")).unwrap();
    let full = writer.submit(|tx| tx.ensure_cursor("acme", 3, "g:1"));
    assert!(matches!(full, Err(Error::Unavailable(_))));
    release.send(()).unwrap();
    blocker.blocking_recv().unwrap().unwrap();
    a.blocking_recv().unwrap().unwrap();
    b.blocking_recv().unwrap().unwrap();
    // Once drained, the queue takes work again.
    writer
        .write_blocking(|tx| tx.ensure_cursor("acme", 3, "g:1"))
        .unwrap();
    assert_eq!(store.snapshot().unwrap().cursors_of("acme", 3).unwrap().len(), 1);
    store.shutdown();
}

#[test]
fn append_next_stamps_the_head_successor_and_own_messages_move_the_sender_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.redb");
    let store = open(&path);
    let seqs = store
        .writer()
        .write_blocking(|tx| {
            let mut seqs = Vec::new();
            for i in 1..=3u64 {
                let mut m = message("d:1:2", 0, 1, Some(&format!("n{i}")));
                m.id = format!("next-{i}");
                tx.append_next("acme", &mut m)?;
                seqs.push(m.seq);
                // The sender of a direct message gets a cursor; a non-member of a group none.
                tx.pass_own_message("acme", 1, "d:1:2", m.seq, true)?;
            }
            tx.pass_own_message("acme", 9, "g:7", 1, false)?;
            // Another tenant's conversation of the same name has its own head.
            let mut other = message("d:1:2", 0, 1, None);
            other.id = "other-1".into();
            tx.append_next("other", &mut other)?;
            seqs.push(other.seq);
            Ok(seqs)
        })
        .unwrap();
    assert_eq!(seqs, vec![1, 2, 3, 1]);
    // The recipient has read nothing yet; the sender's cursor passed all three, delivered
    // included, since nothing before them waited.
    store
        .writer()
        .write_blocking(|tx| {
            assert_eq!(
                tx.cursor("acme", 1, "d:1:2")?,
                Some(Cursor {
                    delivered: 3,
                    read: 3
                })
            );
            tx.ensure_cursor("acme", 2, "d:1:2")?;
            tx.set_cursor(
                "acme",
                1,
                "d:1:2",
                Cursor {
                    delivered: 1,
                    read: 3,
                },
            )?;
            let mut m = message("d:1:2", 0, 2, None);
            m.id = "next-4".into();
            tx.append_next("acme", &mut m)?;
            // Seq 4 from user 2; user 1 passing it as if own would jump over the undelivered
            // 2 and 3: delivered stays.
            tx.pass_own_message("acme", 1, "d:1:2", m.seq, true)
        })
        .unwrap();
    store.shutdown();
    drop(store);

    let store = open(&path);
    let s = store.snapshot().unwrap();
    assert_eq!(s.head("acme", "d:1:2").unwrap(), 4);
    assert_eq!(s.head("other", "d:1:2").unwrap(), 1);
    let second = s.message_by_id("acme", "next-2").unwrap().expect("stored by id");
    assert_eq!((second.seq, second.cid.as_deref()), (2, Some("n2")));
    assert_eq!(
        s.message("acme", "d:1:2", 3).unwrap().map(|m| m.id),
        Some("next-3".into())
    );
    assert_eq!(
        s.cursor("acme", 1, "d:1:2").unwrap(),
        Some(Cursor {
            delivered: 1,
            read: 4
        })
    );
    assert_eq!(
        s.cursor("acme", 2, "d:1:2").unwrap(),
        Some(Cursor {
            delivered: 0,
            read: 0
        })
    );
    assert_eq!(s.cursor("acme", 9, "g:7").unwrap(), None);
    drop(s);
    store.shutdown();
}

#[test]
fn system_settings_survive_reopen_and_travel_in_a_dump() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.redb");
    let store = open(&path);
    let setting = SettingRecord {
        value: "new_value".into(),
        desc: "description".into(),
    };
    let stored = setting.clone();
    store
        .writer()
        .write_blocking(move |tx| {
            tx.put_system_setting("acme", 1001, &stored)?;
            tx.put_system_setting("other", 1001, &SettingRecord::default())
        })
        .unwrap();
    store.shutdown();
    drop(store);

    let store = open(&path);
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.system_setting("acme", 1001).unwrap(), Some(setting.clone()));
    assert_eq!(snap.system_setting("acme", 1002).unwrap(), None);
    let mut rows = Vec::new();
    snap.dump(Some("acme"), |r| {
        rows.push(r);
        Ok(())
    })
    .unwrap();
    let expected = DumpRecord::SystemSetting {
        tenant: "acme".into(),
        id: 1001,
        setting: setting.clone(),
    };
    assert!(rows.contains(&expected), "{rows:?}");
    assert!(!rows
        .iter()
        .any(|r| matches!(r, DumpRecord::SystemSetting { tenant, .. } if tenant == "other")));

    // Loaded into a fresh file, the setting is there again.
    let copy = open(&dir.path().join("copy.redb"));
    copy.writer()
        .write_blocking(move |tx| rows.iter().try_for_each(|r| tx.load(r)))
        .unwrap();
    assert_eq!(
        copy.snapshot().unwrap().system_setting("acme", 1001).unwrap(),
        Some(setting)
    );
}

#[cfg(unix)]
#[test]
fn a_new_database_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("parlor.redb");
    let store = Store::open(&path, WriterConfig::default()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    store.shutdown();
    drop(store);
    // An existing file keeps the mode its operator gave it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let _store = Store::open(&path, WriterConfig::default()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "{mode:o}");
}

/// The file says whether it was closed cleanly: not while a store has it open, yes once the
/// store is closed; a file that is not a database says neither.
#[test]
fn a_database_file_says_whether_it_was_closed_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.redb");
    let store = open(&path);
    store
        .writer()
        .write_blocking(|tx| tx.insert_user(&mut user("acme", "alice")))
        .unwrap();
    assert_eq!(
        parlor_storage::closed_cleanly(&path).unwrap(),
        Some(false),
        "open for writing"
    );
    store.shutdown();
    drop(store);
    assert_eq!(parlor_storage::closed_cleanly(&path).unwrap(), Some(true));
    // Opened again with the check of every start, it reports a clean, verified file.
    let (store, opened) = Store::open_checked(
        &path,
        WriterConfig::default(),
        parlor_storage::StartCheck::default(),
    )
    .unwrap();
    assert_eq!(
        opened,
        parlor_storage::Opened {
            clean: true,
            verified: true,
            rolled_back: false
        }
    );
    store.shutdown();
    drop(store);
    let other = dir.path().join("not-a-database");
    std::fs::write(&other, b"hello, this is text").unwrap();
    assert_eq!(parlor_storage::closed_cleanly(&other).unwrap(), None);
    std::fs::write(&other, b"").unwrap();
    assert_eq!(parlor_storage::closed_cleanly(&other).unwrap(), None);
}

#[test]
fn removing_a_user_takes_what_is_theirs_alone_and_its_gate_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.redb");
    let store = open(&path);
    let friend = |row_id| FriendRecord {
        row_id,
        remark: String::new(),
        friendlookme: 1,
        melookfriend: 1,
        star: false,
        created_ms: 1,
        updated_ms: 1,
    };
    let (a, b, c) = store
        .writer()
        .write_blocking(move |tx| {
            let mut ids = Vec::new();
            for name in ["alice", "bob", "carol"] {
                let mut u = user("t", name);
                tx.insert_user(&mut u)?;
                ids.push(u.id);
            }
            let (a, b, c) = (ids[0], ids[1], ids[2]);
            for (x, y) in [(a, b), (b, a), (b, c), (c, b)] {
                tx.put_friend("t", x, y, &mut friend(0))?;
            }
            for (applicant, target) in [(a, c), (c, a), (b, c)] {
                let mut apply = ApplyRecord {
                    id: 0,
                    applicant,
                    target,
                    note: String::new(),
                    status: ApplyStatus::Pending,
                    created_ms: 1,
                    updated_ms: 1,
                };
                tx.put_apply("t", &mut apply)?;
            }
            tx.set_block("t", c, a, true, 1)?;
            tx.count_stranger_send("t", a, c)?;
            let mut member = MemberRecord {
                row_id: 0,
                nickname: String::new(),
                joined_seq: 0,
                joined_ms: 1,
                inviter: 0,
            };
            tx.put_member("t", 7, a, &mut member.clone())?;
            tx.put_member("t", 7, b, &mut member)?;
            let request = JoinRequest {
                user: a,
                inviter: 0,
                desc: String::new(),
                created_ms: 1,
            };
            tx.put_join_request("t", 8, &request)?;
            tx.ensure_cursor("t", a, "d:1:2")?;
            tx.ensure_cursor("t", b, "d:1:2")?;
            tx.put_user_setting("t", a, 1001, "k", "v")?;
            tx.append_message("t", &message("d:1:2", 1, a, Some("c1")))?;
            tx.change_gate("t", a, 5, |g| g.deleted = true)?;
            assert!(tx.remove_user("t", a)?.is_some());
            assert!(tx.remove_user("t", a)?.is_none(), "gone");
            Ok((a, b, c))
        })
        .unwrap();
    store.shutdown();
    drop(store);

    let store = open(&path);
    let s = store.snapshot().unwrap();
    assert!(s.user("t", a).unwrap().is_none());
    assert!(s.user_by_username("t", "alice").unwrap().is_none());
    assert!(s.user_by_uuid("t", "t-alice-uuid").unwrap().is_none());
    assert_eq!(
        s.friends_of("t", b)
            .unwrap()
            .iter()
            .map(|f| f.0)
            .collect::<Vec<_>>(),
        vec![c]
    );
    assert!(s.friends_of("t", a).unwrap().is_empty());
    let to_c: Vec<u64> = s
        .applies_to("t", c, 0, 100)
        .unwrap()
        .0
        .iter()
        .map(|a| a.applicant)
        .collect();
    assert_eq!(to_c, vec![b], "only bob's application to carol is left");
    assert!(s.apply_between("t", c, a).unwrap().is_none());
    assert!(!s.blocked("t", c, a).unwrap());
    assert_eq!(
        s.members_of("t", 7)
            .unwrap()
            .iter()
            .map(|m| m.0)
            .collect::<Vec<_>>(),
        vec![b]
    );
    assert!(s.groups_of("t", a).unwrap().is_empty());
    assert!(s.join_requests_of("t", 8).unwrap().is_empty());
    assert!(s.cursors_of("t", a).unwrap().is_empty());
    assert_eq!(s.cursors_of("t", b).unwrap().len(), 1);
    assert!(s.user_setting("t", a, 1001, "k").unwrap().is_none());
    assert_eq!(
        s.sent_by("t", a).unwrap(),
        vec![("d:1:2".to_owned(), 1)],
        "messages stay"
    );
    let gate = s.gate("t", a).unwrap();
    assert!(
        gate.deleted && gate.generation == 1 && gate.revoked_ms == 5,
        "{gate:?}"
    );
    assert_eq!(s.startup_state().unwrap().gates.len(), 1);
    assert_eq!(s.users_page("t", None, 0, 10).unwrap().0, 2);
    drop(s);
    // Removals are in the log too: its replay leaves out what the removal took.
    assert_replica_matches(&store, &path);
}

/// A store whose Writer lingers `linger` under load.
fn open_lingering(path: &std::path::Path, linger: Duration) -> Store {
    Store::open(
        path,
        WriterConfig {
            linger,
            ..WriterConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn under_load_the_writer_lingers_for_writes_to_join_a_commit_and_idle_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    // A linger far longer than the gaps below, so that a slow host cannot break the test.
    let store = open_lingering(&dir.path().join("parlor.redb"), Duration::from_secs(2));
    let writer = store.writer();
    let commits = || writer.stats().commits.load(Ordering::Relaxed);
    let put = |n: u64| {
        writer
            .submit(move |tx| tx.put_tenant_setting("t", n as u32, "v"))
            .unwrap()
    };
    let lingers = || writer.stats().lingers.load(Ordering::Relaxed);
    // Idle: a lone write commits at once, without lingering.
    put(1).blocking_recv().unwrap().unwrap();
    assert_eq!(lingers(), 0, "an idle Writer does not linger");
    // Two writes queued behind a blocked one: a commit of more than one, so the Writer is
    // under load from now on.
    let (release, blocker) = block_writer(&store);
    let (a, b) = (put(2), put(3));
    release.send(()).unwrap();
    blocker.blocking_recv().unwrap().unwrap();
    a.blocking_recv().unwrap().unwrap();
    b.blocking_recv().unwrap().unwrap();
    let before = commits();
    // Two writes 50 ms apart, well within the linger: one commit holds both.
    let first = put(4);
    std::thread::sleep(Duration::from_millis(50));
    let second = put(5);
    first.blocking_recv().unwrap().unwrap();
    second.blocking_recv().unwrap().unwrap();
    assert_eq!(commits() - before, 1, "both writes in one commit");
    assert_eq!(lingers(), 1, "the loaded Writer lingered once");
}

#[test]
fn heads_are_the_timelines_last_seqs_and_a_heads_table_of_an_earlier_file_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parlor.redb");
    // A file of an earlier version: its own table of heads, here one that disagrees.
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<(&str, &str), u64>::new("heads"))
            .unwrap()
            .insert(("acme", "d:1:2"), 9)
            .unwrap();
        txn.commit().unwrap();
    }
    let store = open(&path);
    assert_eq!(store.snapshot().unwrap().head("acme", "d:1:2").unwrap(), 0);
    store
        .writer()
        .write_blocking(|tx| {
            for seq in [1, 2, 3] {
                tx.append_message("acme", &message("d:1:2", seq, 1, None))?;
            }
            tx.append_message("acme", &message("g:7", 1, 1, None))?;
            // Stored below the head (as an import may): the head stays.
            tx.append_message("other", &message("d:1:2", 4, 1, None))?;
            tx.append_message("other", &message("d:1:2", 2, 1, None))?;
            assert_eq!(tx.head("acme", "d:1:2")?, 3);
            Ok(())
        })
        .unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.head("acme", "d:1:2").unwrap(), 3);
    assert_eq!(snap.head("acme", "g:7").unwrap(), 1);
    assert_eq!(snap.head("other", "d:1:2").unwrap(), 4);
    assert_eq!(snap.head("acme", "d:1:3").unwrap(), 0);

    // A copy carries each head, derived from its timeline.
    let mut heads = Vec::new();
    snap.dump(None, |r| {
        if let DumpRecord::Head { tenant, conv, seq } = r {
            heads.push((tenant, conv, seq));
        }
        Ok(())
    })
    .unwrap();
    let want = [("acme", "d:1:2", 3), ("acme", "g:7", 1), ("other", "d:1:2", 4)];
    assert_eq!(heads, want.map(|(t, c, s)| (t.to_owned(), c.to_owned(), s)));
    drop(snap);
    store.shutdown();
    drop(store);

    use redb::{ReadableDatabase, TableHandle};
    let db = redb::Database::open(&path).unwrap();
    let tables: Vec<String> = db
        .begin_read()
        .unwrap()
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    assert!(tables.contains(&"messages".to_owned()), "{tables:?}");
    assert!(!tables.contains(&"heads".to_owned()), "{tables:?}");
}

#[test]
fn a_batch_the_effect_log_refuses_is_aborted_and_its_writers_get_the_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logged = std::sync::Arc::new(Mutex::new(Vec::new()));
    let (r, l) = (refuse.clone(), logged.clone());
    let log = EffectLog::new(move |effects| {
        if r.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("shard moved"));
        }
        let mut l = l.lock().unwrap();
        l.push(effects.to_vec());
        Ok(l.len() as u64)
    });
    let config = WriterConfig {
        effect_log: Some(log),
        ..WriterConfig::default()
    };
    let store = Store::open(dir.path().join("parlor.redb"), config).unwrap();
    let writer = store.writer();
    writer
        .write_blocking(|tx| tx.append_message("acme", &message("d:1:2", 1, 1, Some("c1"))))
        .unwrap();
    let first = logged.lock().unwrap()[0].clone();
    // The message, its id and its cid: one effect per row, each a write.
    let tables: Vec<u16> = first.iter().map(|e| e.table).collect();
    assert_eq!(tables.len(), 3, "{tables:?}");
    assert!(first.iter().all(|e| e.value.is_some()));

    refuse.store(true, Ordering::SeqCst);
    let refused = writer.write_blocking(|tx| {
        tx.append_message("acme", &message("d:1:2", 2, 1, Some("c2")))?;
        tx.insert_user(&mut user("acme", "alice"))
    });
    assert!(
        matches!(refused, Err(Error::Unavailable("shard moved"))),
        "{refused:?}"
    );
    assert_eq!(writer.stats().refused_by_log.load(Ordering::Relaxed), 1);
    let snap = store.snapshot().unwrap();
    assert_eq!(
        snap.head("acme", "d:1:2").unwrap(),
        1,
        "nothing of the batch was committed"
    );
    assert!(snap.user_by_username("acme", "alice").unwrap().is_none());
    drop(snap);

    refuse.store(false, Ordering::SeqCst);
    writer
        .write_blocking(|tx| tx.append_message("acme", &message("d:1:2", 2, 1, Some("c2"))))
        .unwrap();
    assert_eq!(store.snapshot().unwrap().head("acme", "d:1:2").unwrap(), 2);
    assert_eq!(
        logged.lock().unwrap().len(),
        2,
        "the refused batch is not in the log"
    );
    store.shutdown();
}

#[test]
fn outbox_changed_completes_after_a_commit_that_queued_an_event_and_not_after_others() {
    use std::future::Future;
    use std::task::{Context, Waker};
    // Polls once: whether the signal was already given.
    fn given(writer: &parlor_storage::Writer) -> bool {
        let fut = std::pin::pin!(writer.outbox_changed());
        fut.poll(&mut Context::from_waker(Waker::noop())).is_ready()
    }
    fn event(created_ms: u64) -> parlor_storage::OutboxEvent {
        parlor_storage::OutboxEvent {
            id: 0,
            endpoint: 7,
            event: "message.sent".into(),
            order: "d:1:2".into(),
            body: "{}".into(),
            created_ms,
            attempts: 0,
            next_ms: 0,
            last_error: String::new(),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("parlor.redb"), WriterConfig::default()).unwrap();
    let writer = store.writer();
    writer
        .write_blocking(|tx| tx.append_message("acme", &message("d:1:2", 1, 1, Some("c1"))))
        .unwrap();
    assert!(!given(writer), "a message alone does not touch the outbox");
    writer
        .write_blocking(|tx| tx.enqueue_event("acme", &mut event(1)))
        .unwrap();
    assert!(given(writer), "the commit that queued an event gives the signal");
    assert!(!given(writer), "one signal per change, taken once");
    let refused = writer.write_blocking(|tx| -> parlor_storage::Result<()> {
        tx.enqueue_event("acme", &mut event(2))?;
        panic!("the batch is lost")
    });
    assert!(refused.is_err());
    assert!(!given(writer), "an aborted batch gives no signal");
    store.shutdown();
}
