//! The building blocks of cluster mode (`src/cluster/`) against a real `nats-server` with
//! JetStream. The replicated log: two owners racing one position (exactly one wins), an
//! append sent again landing once, a fenced owner's Writer committing nothing, and the log
//! of a run replayed into an empty database making the owner's very rows, snapshots that
//! truncate the log and a new copy made from the newest and the log after it. The directory:
//! two nodes racing for a shard (exactly one takes it, each takeover a new epoch), a lease
//! that is not renewed running out, and takeovers back and forth (the new owner replays,
//! the old one is fenced). Needs the Debian package `nats-server` (`.ci/run`
//! installs it).

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use parlor::cluster::directory::{Directory, NodeInfo, Seen};
use parlor::cluster::log::{LogSettings, ShardLog};
use parlor::cluster::placement;
use parlor::cluster::shard::LocalShard;
use parlor::cluster::snapshot::Snapshots;
use parlor::cluster::Error as LogError;
use parlor_storage::{
    ChatType, DumpRecord, Error, FriendRecord, MessageRecord, Store, UserRecord, WriterConfig,
};
use tokio::process::{Child, Command};

use crate::common;

/// One nats-server with JetStream on a loopback port, its store in a temporary directory;
/// killed when dropped.
struct Nats {
    _child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    async fn start() -> Nats {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let child = Command::new(common::system_program("nats-server", "nats-server"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        let url = format!("nats://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(client) = async_nats::connect(&url).await {
                if client.flush().await.is_ok() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "nats-server did not come up on {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Nats {
            _child: child,
            url,
            _dir: dir,
        }
    }

    /// A new connection's JetStream context (each owner has its own).
    async fn js(&self) -> jetstream::Context {
        jetstream::new(async_nats::connect(&self.url).await.expect("connect to nats"))
    }

    /// The log of `shard` over a new connection.
    async fn log(&self, shard: u32) -> ShardLog {
        let settings = LogSettings {
            replicas: 1,
            ..LogSettings::default()
        };
        ShardLog::open(self.js().await, shard, &settings)
            .await
            .expect("open the log")
    }
}

fn user(username: &str) -> UserRecord {
    UserRecord {
        uuid: format!("uuid-{username}"),
        tenant: "acme".into(),
        username: username.into(),
        nickname: username.to_uppercase(),
        status: 1,
        userset: "{}".into(),
        ..UserRecord::default()
    }
}

fn message(from: u64, to: u64, n: u64) -> MessageRecord {
    MessageRecord {
        id: format!("m-{from}-{n}"),
        seq: 0,
        conv: format!("d:{}:{}", from.min(to), from.max(to)),
        chat_type: ChatType::Single,
        from_id: from,
        from_name: String::new(),
        from_avatar: String::new(),
        to_id: to,
        to_name: String::new(),
        to_avatar: String::new(),
        kind: "text".into(),
        data: format!("{{\"text\":\"{n}\"}}"),
        options: "{}".into(),
        cid: Some(format!("c-{n}")),
        create_time: n,
        revoked: false,
        action: None,
    }
}

/// A node of these tests: its own NATS connection, the directory, and its copy of one shard
/// (a store in `dir`), owning nothing at first.
struct Node {
    name: &'static str,
    js: jetstream::Context,
    directory: Directory,
    shard: LocalShard,
}

impl Node {
    async fn start(nats: &Nats, name: &'static str, shard: u32, dir: &Path) -> Node {
        let js = nats.js().await;
        let directory = Directory::open(&js, Duration::from_secs(6), 1).await.unwrap();
        let path = dir.join(format!("{name}.redb"));
        let shard = LocalShard::open(shard, &path, WriterConfig::default()).unwrap();
        Node {
            name,
            js,
            directory,
            shard,
        }
    }

    /// Takes the shard over from whoever the directory says owns it.
    async fn take_over(&self) -> Seen {
        let seen = self.directory.owner(self.shard.id).await.unwrap();
        let settings = LogSettings {
            replicas: 1,
            ..LogSettings::default()
        };
        self.shard
            .take_over(
                &self.directory,
                self.js.clone(),
                &settings,
                self.name,
                "",
                seen.as_ref(),
            )
            .await
            .expect("the takeover")
    }

    fn store(&self) -> &Store {
        &self.shard.store
    }

    async fn add_user(&self, name: &'static str) -> parlor_storage::Result<()> {
        self.store()
            .writer()
            .write(move |tx| tx.insert_user(&mut user(name)))
            .await
    }

    fn has_user(&self, name: &str) -> bool {
        let snap = self.store().snapshot().unwrap();
        snap.user_by_username("acme", name).unwrap().is_some()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners_racing_one_position_exactly_one_wins() {
    let nats = Nats::start().await;
    let (a, b) = (nats.log(0).await, nats.log(0).await);
    assert_eq!(a.append(0, "0.1.1", Bytes::from_static(b"first")).await, Ok(1));
    let mut winners = Vec::new();
    for round in 0..20u64 {
        let last = round + 1;
        let (ida, idb) = (format!("0.1.{}", round + 2), format!("0.2.{}", round + 2));
        let (ra, rb) = tokio::join!(
            a.append(last, &ida, Bytes::from(ida.clone())),
            b.append(last, &idb, Bytes::from(idb.clone()))
        );
        let fenced = Err(LogError::Fenced { expected: last });
        match (&ra, &rb) {
            (Ok(at), r) if *r == fenced => {
                assert_eq!(*at, last + 1);
                winners.push(ida);
            }
            (r, Ok(at)) if *r == fenced => {
                assert_eq!(*at, last + 1);
                winners.push(idb);
            }
            _ => panic!("round {round}: {ra:?} and {rb:?}: not exactly one winner"),
        }
    }
    assert_eq!(a.tail().await, Ok(21));
    assert_eq!(b.tail().await, Ok(21));
    for (at, id) in (2..).zip(&winners) {
        let record = a.read(at).await.unwrap().expect("the winner's record");
        assert_eq!(&record.id, id);
        assert_eq!(record.bytes, Bytes::from(id.clone()));
    }
    assert_eq!(a.read(22).await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_sent_again_lands_once() {
    let nats = Nats::start().await;
    let log = nats.log(3).await;
    let record = Bytes::from_static(b"batch");
    assert_eq!(log.append(0, "3.1.1", record.clone()).await, Ok(1));
    // The answer was lost, say: the same id sent again is the same record.
    assert_eq!(log.append(0, "3.1.1", record.clone()).await, Ok(1));
    assert_eq!(log.tail().await, Ok(1));
    assert_eq!(log.append(1, "3.1.2", record.clone()).await, Ok(2));
    // An appender that missed a record is fenced, and nothing of it lands.
    assert_eq!(
        log.append(1, "3.9.1", record.clone()).await,
        Err(LogError::Fenced { expected: 1 })
    );
    assert_eq!(log.tail().await, Ok(2));
    assert_eq!(log.read(3).await, Ok(None));
    // Other shards have logs of their own.
    assert_eq!(nats.log(4).await.tail().await, Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_replays_the_log_and_fences_the_old_owner_which_commits_nothing() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Node::start(&nats, "node-a", 1, dir.path()).await,
        Node::start(&nats, "node-b", 1, dir.path()).await,
    );
    let not_owned = a.add_user("zed").await;
    assert!(
        matches!(not_owned, Err(Error::Unavailable("shard not owned here"))),
        "{not_owned:?}"
    );
    assert!(!a.has_user("zed"));

    assert_eq!(a.take_over().await.claim.epoch, 1);
    assert!(a.shard.ownership.owning());
    a.add_user("alice").await.expect("the owner writes");
    // Epoch-start record, then alice.
    assert_eq!(a.store().snapshot().unwrap().log_applied().unwrap(), 2);

    // node-b takes over: it replays what node-a wrote, then its own epoch starts.
    assert_eq!(b.take_over().await.claim.epoch, 2);
    assert!(b.has_user("alice"));
    assert_eq!(b.store().snapshot().unwrap().log_applied().unwrap(), 3);

    // node-a does not know yet: its next batch is fenced, and it owns the shard no more.
    let moved = a.add_user("bob").await;
    assert!(
        matches!(moved, Err(Error::Unavailable("shard moved"))),
        "{moved:?}"
    );
    assert!(!a.shard.ownership.owning());
    let gone = a.add_user("carol").await;
    assert!(
        matches!(gone, Err(Error::Unavailable("shard not owned here"))),
        "{gone:?}"
    );
    assert!(
        !a.has_user("bob") && !b.has_user("bob"),
        "the fenced batch is nowhere"
    );
    assert_eq!(
        a.store()
            .writer()
            .stats()
            .refused_by_log
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );

    b.add_user("dave").await.expect("the new owner writes");
    // And back: node-a catches up on node-b's writes, and node-b is fenced in turn.
    assert_eq!(a.take_over().await.claim.epoch, 3);
    assert!(a.has_user("dave"));
    let moved = b.add_user("erin").await;
    assert!(
        matches!(moved, Err(Error::Unavailable("shard moved"))),
        "{moved:?}"
    );
    a.add_user("frank").await.unwrap();
    let (sa, sb) = (a.store().snapshot().unwrap(), b.store().snapshot().unwrap());
    assert_eq!(sa.log_applied().unwrap(), nats.log(1).await.tail().await.unwrap());
    let users = |s: &parlor_storage::Snapshot| s.users_page("acme", None, 0, 10).unwrap().0;
    assert_eq!(
        (users(&sa), users(&sb)),
        (3, 2),
        "alice, dave, frank; node-b never saw frank"
    );
    a.store().shutdown();
    b.store().shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_of_a_run_replayed_into_an_empty_database_makes_the_owners_rows() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let owner = Node::start(&nats, "node-a", 2, dir.path()).await;
    owner.take_over().await;
    let store = owner.store();
    let writer = store.writer().clone();
    let ids: Vec<u64> = writer
        .write(|tx| {
            let mut ids = Vec::new();
            for name in ["alice", "bob", "carol", "dave"] {
                let mut u = user(name);
                tx.insert_user(&mut u)?;
                ids.push(u.id);
            }
            Ok(ids)
        })
        .await
        .unwrap();
    // Many writes at once, so that batches hold several; each a send as the Router writes it.
    let mut waiting = Vec::new();
    for n in 0..200u64 {
        let (from, to) = (ids[(n % 4) as usize], ids[((n + 1) % 4) as usize]);
        waiting.push(
            writer
                .submit(move |tx| {
                    let mut m = message(from, to, n);
                    if tx
                        .dedup("acme", from, m.cid.as_deref().unwrap_or_default())?
                        .is_none()
                    {
                        tx.append_next("acme", &mut m)?;
                        tx.ensure_cursor("acme", to, &m.conv)?;
                        tx.pass_own_message("acme", from, &m.conv, m.seq, true)?;
                    }
                    Ok(())
                })
                .unwrap(),
        );
    }
    for rx in waiting {
        rx.await.unwrap().unwrap();
    }
    // Changes and removals too.
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    writer
        .write(move |tx| {
            let mut friend = FriendRecord {
                friendlookme: 1,
                melookfriend: 1,
                ..FriendRecord::default()
            };
            tx.put_friend("acme", a, b, &mut friend)?;
            tx.put_friend("acme", b, a, &mut friend)?;
            tx.set_block("acme", c, a, true, 5)?;
            tx.advance_cursor("acme", b, &format!("d:{}:{}", a.min(b), a.max(b)), 10, 7)?;
            Ok(())
        })
        .await
        .unwrap();
    writer
        .write(move |tx| {
            tx.remove_friend("acme", b, a)?;
            tx.set_block("acme", c, a, false, 6)?;
            tx.remove_user("acme", ids[3])?;
            Ok(())
        })
        .await
        .unwrap();
    let stats = writer.stats();
    let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    let writes = stats.writes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        writes > commits,
        "batches held several writes ({writes} in {commits})"
    );

    // A fresh copy that does not own the shard, from the log alone (as a standby follows it).
    let log = nats.log(2).await;
    let replica = LocalShard::open(2, &dir.path().join("replica.redb"), WriterConfig::default()).unwrap();
    let last = replica.catch_up(&log).await.unwrap();
    assert_eq!(last, store.snapshot().unwrap().log_applied().unwrap());
    assert_eq!(
        replica.catch_up(&log).await.unwrap(),
        last,
        "nothing more to apply"
    );
    let replica = &replica.store;
    let (original, copy) = (store.snapshot().unwrap(), replica.snapshot().unwrap());
    assert_eq!(copy.log_applied().unwrap(), last);
    assert!(
        copy.rows().unwrap() == original.rows().unwrap(),
        "the replica's rows differ"
    );
    // And as `parlor export` would write them.
    let (want, got) = (rows_of(&original), rows_of(&copy));
    assert!(want.len() > 200, "{} records", want.len());
    assert!(got == want, "the exports differ");
    replica.shutdown();
    store.shutdown();
}

/// Every row of `snap`, as `parlor export` writes them.
fn rows_of(snap: &parlor_storage::Snapshot) -> Vec<DumpRecord> {
    let mut out = Vec::new();
    snap.dump(None, |r| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_truncate_the_log_and_a_new_copy_starts_from_the_newest() {
    let nats = Nats::start().await;
    let dir = tempfile::tempdir().unwrap();
    let owner = Node::start(&nats, "node-a", 1, dir.path()).await;
    owner.take_over().await;
    let log = nats.log(1).await;
    let snapshots = Snapshots::open(&nats.js().await, 1).await.unwrap();
    let position = || owner.store().snapshot().unwrap().log_applied().unwrap();
    let mut names = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"].into_iter();
    let mut add = async |n: usize| {
        for _ in 0..n {
            owner.add_user(names.next().unwrap()).await.unwrap();
        }
    };

    add(2).await;
    let first = snapshots.take(owner.store(), &log).await.unwrap();
    assert_eq!(first, Some(position()), "the snapshot holds the copy's position");
    assert_eq!(log.first().await.unwrap(), 1, "one snapshot: nothing purged yet");
    assert_eq!(
        snapshots.take(owner.store(), &log).await.unwrap(),
        None,
        "nothing written since: no new snapshot"
    );
    add(2).await;
    let second = snapshots.take(owner.store(), &log).await.unwrap().unwrap();
    assert!(second > first.unwrap());
    assert_eq!(
        log.first().await.unwrap(),
        first.unwrap() + 1,
        "two snapshots: the log starts after the older"
    );
    add(2).await;
    let third = snapshots.take(owner.store(), &log).await.unwrap().unwrap();
    assert_eq!(
        log.first().await.unwrap(),
        second + 1,
        "the oldest slot was overwritten"
    );
    add(2).await;

    // A copy from nothing cannot replay a log whose start is gone.
    let lone = LocalShard::open(1, &dir.path().join("lone.redb"), WriterConfig::default()).unwrap();
    let refused = lone.catch_up(&log).await;
    assert!(
        refused.is_err(),
        "expected the replay from 0 to fail, got {refused:?}"
    );
    lone.store.shutdown();

    // From the newest snapshot and the log after it: the owner's very rows.
    let newest = snapshots.latest(1).await.unwrap().expect("a snapshot");
    assert_eq!(newest.position, third);
    // An owner that was away while the log was truncated past its position is fenced.
    let late = log.append(second - 1, "1.0.late", Bytes::new()).await;
    assert!(
        matches!(late, Err(LogError::Fenced { .. })),
        "expected an append at a truncated position to be fenced, got {late:?}"
    );
    let path = dir.path().join("copy.redb");
    let to = path.clone();
    tokio::task::spawn_blocking(move || newest.load_into(&to))
        .await
        .unwrap()
        .unwrap();
    let copy = LocalShard::open(1, &path, WriterConfig::default()).unwrap();
    assert_eq!(copy.store.snapshot().unwrap().log_applied().unwrap(), third);
    assert_eq!(copy.catch_up(&log).await.unwrap(), position());
    let (want, got) = (
        rows_of(&owner.store().snapshot().unwrap()),
        rows_of(&copy.store.snapshot().unwrap()),
    );
    assert!(want.len() >= 8, "{} rows", want.len());
    assert!(got == want, "the copy's rows differ from the owner's");
    copy.store.shutdown();
    owner.store().shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_a_shard_exactly_one_takes_it_and_each_takeover_is_a_new_epoch() {
    let nats = Nats::start().await;
    let lease = Duration::from_secs(6);
    let a = Directory::open(&nats.js().await, lease, 1).await.unwrap();
    let b = Directory::open(&nats.js().await, lease, 1).await.unwrap();
    assert_eq!(a.owner(5).await, Ok(None));
    let mut seen = None;
    for epoch in 1..=10u64 {
        let (ta, tb) = tokio::join!(
            a.take(5, "node-a", "", seen.as_ref()),
            b.take(5, "node-b", "", seen.as_ref())
        );
        let (ta, tb) = (ta.unwrap(), tb.unwrap());
        let won = match (ta, tb) {
            (Some(won), None) | (None, Some(won)) => won,
            (ta, tb) => panic!("epoch {epoch}: {ta:?} and {tb:?}: not exactly one owner"),
        };
        assert_eq!(won.claim.epoch, epoch);
        // Both read the winner back, and a claim from an old reading is refused.
        assert_eq!(a.owner(5).await.unwrap().as_ref(), Some(&won));
        assert_eq!(b.owner(5).await.unwrap().as_ref(), Some(&won));
        if let Some(old) = &seen {
            assert_eq!(a.take(5, "node-a", "", Some(old)).await, Ok(None));
        }
        seen = Some(won);
    }
    // Shards are claimed one by one.
    assert_eq!(a.owner(6).await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_is_not_renewed_runs_out_and_its_shards_go_to_the_next_node() {
    let nats = Nats::start().await;
    let directory = Directory::open(&nats.js().await, Duration::from_secs(1), 1)
        .await
        .unwrap();
    let info = |port: u16| NodeInfo {
        advertise: format!("127.0.0.1:{port}"),
    };
    directory.renew("node-a", &info(7101)).await.unwrap();
    directory.renew("node-b", &info(7102)).await.unwrap();
    assert_eq!(directory.live_nodes().await.unwrap(), ["node-a", "node-b"]);
    assert_eq!(directory.node("node-a").await, Ok(Some(info(7101))));
    let shards_of = |nodes: &[&str], node: &str| {
        (0..16u32)
            .filter(|&k| placement::ranking(k, nodes)[0] == node)
            .count()
    };
    assert!(shards_of(&["node-a", "node-b"], "node-a") > 0);
    // node-b keeps renewing; node-a stopped.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        directory.renew("node-b", &info(7102)).await.unwrap();
        let live = directory.live_nodes().await.unwrap();
        if live == ["node-b"] {
            break;
        }
        assert_eq!(live, ["node-a", "node-b"]);
        assert!(Instant::now() < deadline, "node-a's lease never ran out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(directory.node("node-a").await, Ok(None));
    assert_eq!(
        shards_of(&["node-b"], "node-b"),
        16,
        "the live node ranks first for every shard"
    );
}
