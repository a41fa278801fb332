//! Benchmarks of durable message appends through the group-commit Writer.
//!
//! - `one_per_commit`: each append is awaited before the next is sent, so every message
//!   pays for its own commit (fsync): the latency-bound floor.
//! - `group_commit/N`: N appends are submitted at once and then awaited, so the Writer folds
//!   them into a few transactions: the throughput a busy server gets.
//!
//! - `direct/N`: the transaction of a direct send, N at a time among 1,000 users in 500
//!   conversations: the `cid` lookup, the block/friend/recipient reads, the append and both
//!   cursors. After it the process's CPU time per message is printed (the Writer's work,
//!   without the disk's wait), the figure to compare storage layouts by.
//! - `direct_logged/N`: the same, as the owner of a shard of cluster mode: every batch is
//!   appended to the shard's log on NATS JetStream before it commits. Runs only when
//!   `PARLOR_BENCH_NATS` names a NATS server (`benches/log_cost.sh` starts one, or three);
//!   with it, `log/replay/N` reads a shard's log of N records from the start, as a takeover does.
//!
//! Throughput is reported in messages per second. The database lives in a temporary
//! directory under the target directory (a real disk, not a tmpfs). After each benchmark
//! the Writer's counters (commits, writes, average batch) are printed to stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parlor_storage::{ChatType, MessageRecord, Store, Tx, UserRecord, WriterConfig};
use tempfile::TempDir;

const TENANT: &str = "bench";
const CONV: &str = "g:42";

/// A store in its own temporary directory, with the next free seq of the benchmark's
/// conversation.
struct Fixture {
    store: Store,
    next_seq: AtomicU64,
    _dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let store =
            Store::open(dir.path().join("writer-bench.redb"), WriterConfig::default()).expect("open store");
        Fixture {
            store,
            next_seq: AtomicU64::new(1),
            _dir: dir,
        }
    }

    /// A store that owns a shard of cluster mode: every batch is appended to the shard's
    /// log on the NATS server at `url` (`replicas` copies) before it commits.
    fn logged(rt: &tokio::runtime::Runtime, url: &str, replicas: usize, shard: u32) -> Fixture {
        use parlor::cluster::{directory::Directory, log::LogSettings, shard::LocalShard};
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let path = dir.path().join("writer-bench.redb");
        let local = LocalShard::open(shard, &path, WriterConfig::default()).expect("open store");
        rt.block_on(async {
            let client = async_nats::connect(url).await.expect("connect to NATS");
            let js = async_nats::jetstream::new(client);
            let directory = Directory::open(&js, Duration::from_secs(6), replicas)
                .await
                .expect("directory");
            let settings = LogSettings {
                replicas,
                ..LogSettings::default()
            };
            let seen = directory.owner(shard).await.expect("read the claim");
            local
                .take_over(&directory, js, &settings, "bench", "", seen.as_ref())
                .await
                .expect("take the shard over");
        });
        Fixture {
            store: local.store.clone(),
            next_seq: AtomicU64::new(1),
            _dir: dir,
        }
    }

    /// A realistic group text message (about 100 bytes of data) at the next seq.
    fn next_message(&self) -> MessageRecord {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        MessageRecord {
            id: format!("{:08x}-4a1b-4c2d-8e3f-{:012x}", seq >> 16, seq),
            seq,
            conv: CONV.to_owned(),
            chat_type: ChatType::Group,
            from_id: 1000 + seq % 50,
            from_name: format!("member{}", seq % 50),
            from_avatar: "/uploads/avatar/2024/05/member.png".to_owned(),
            to_id: 42,
            to_name: "Weekend hiking group".to_owned(),
            to_avatar: "/uploads/group/42.png".to_owned(),
            kind: "text".to_owned(),
            data: format!(
                "{{\"text\":\"Message {seq:>6}: meet at the north trailhead at 8:30, bring water and a jacket.\"}}"
            ),
            options: "{}".to_owned(),
            cid: Some(format!("c-{seq}")),
            create_time: 1_700_000_000_000 + seq,
            revoked: false,
            action: None,
        }
    }

    fn report(&self, name: &str) {
        let stats = self.store.writer().stats();
        let commits = stats.commits.load(Ordering::Relaxed);
        let writes = stats.writes.load(Ordering::Relaxed);
        let micros = stats.commit_micros.load(Ordering::Relaxed);
        eprintln!(
            "{name}: {writes} writes in {commits} commits (average batch {:.1}, largest {}, \
             average commit {:.0} µs)",
            writes as f64 / commits.max(1) as f64,
            stats.max_batch.load(Ordering::Relaxed),
            micros as f64 / commits.max(1) as f64,
        );
        self.store.shutdown();
    }
}

/// The process's CPU time (user + system) so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Users and conversations of the `direct` benchmark.
const USERS: u64 = 1000;

/// A user as registration stores it, open to messages from strangers (as the load
/// generator's users are).
fn user(id: u64) -> UserRecord {
    UserRecord {
        id,
        uuid: format!("0000{id:04}-aaaa-4bbb-8ccc-{id:012}"),
        tenant: TENANT.to_owned(),
        username: format!("user{id}"),
        nickname: format!("User {id}"),
        avatar: "/uploads/avatar/default.png".to_owned(),
        status: 1,
        password_hash: "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
        userset: r#"{"chatset":{"visitor":0,"user":2}}"#.to_owned(),
        invite_confirm: 1,
        uniplatform: "web".to_owned(),
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_000_000,
        ..UserRecord::default()
    }
}

/// The transaction of one direct send from `from` to `to` (the Router's, without the
/// actors): `cid` lookup, the recipient's block, friend and settings reads, the append, the
/// recipient's cursor and the sender's.
fn direct_send(tx: &Tx<'_>, from: u64, to: u64, n: u64) -> parlor_storage::Result<()> {
    let cid = format!("{from}-{n}");
    if tx.dedup(TENANT, from, &cid)?.is_some() {
        return Ok(());
    }
    let blocked = tx.blocked(TENANT, to, from)?;
    let friend = tx.friend(TENANT, to, from)?.is_some();
    let open = tx
        .user(TENANT, to)?
        .is_some_and(|u| u.userset.contains("\"user\":2"));
    assert!(
        !blocked && (friend || open),
        "the benchmark's users accept strangers"
    );
    let conv = format!("d:{}:{}", from.min(to), from.max(to));
    let mut m = MessageRecord {
        id: uuid::Uuid::now_v7().to_string(),
        seq: 0,
        conv,
        chat_type: ChatType::Single,
        from_id: from,
        from_name: format!("User {from}"),
        from_avatar: "/uploads/avatar/default.png".to_owned(),
        to_id: to,
        to_name: format!("User {to}"),
        to_avatar: "/uploads/avatar/default.png".to_owned(),
        kind: "text".to_owned(),
        data: format!("{{\"text\":\"message {n} from {from}\"}}"),
        options: "{}".to_owned(),
        cid: Some(cid),
        create_time: 1_700_000_000_000 + n,
        revoked: false,
        action: None,
    };
    tx.append_next(TENANT, &mut m)?;
    tx.ensure_cursor(TENANT, to, &m.conv)?;
    tx.pass_own_message(TENANT, from, &m.conv, m.seq, true)
}

/// Where `direct_logged` appends: `PARLOR_BENCH_NATS` (a NATS URL with JetStream) and
/// `PARLOR_BENCH_REPLICAS` (copies of the log, default 1). Unset: `direct_logged` is skipped.
fn bench_nats() -> Option<(String, usize)> {
    let url = std::env::var("PARLOR_BENCH_NATS").ok()?;
    let replicas = std::env::var("PARLOR_BENCH_REPLICAS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    Some((url, replicas))
}

fn direct_bench(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    logged: Option<(String, usize)>,
) {
    let mut group = c.benchmark_group(format!("writer/{name}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    // A fresh log per run: the shard numbers of one bench process.
    let base = std::process::id() % 100_000 * 10;
    for (i, batch) in [1u64, 8, 64].into_iter().enumerate() {
        let fixture = match &logged {
            Some((url, replicas)) => Fixture::logged(rt, url, *replicas, base + i as u32),
            None => Fixture::new(),
        };
        fixture
            .store
            .writer()
            .write_blocking(|tx| {
                for id in 1..=USERS {
                    tx.insert_user(&mut user(id))?;
                }
                Ok(())
            })
            .expect("users");
        // CPU time inside the iterations only (criterion's analysis runs between them).
        let (started, cpu_us) = (fixture.next_seq.load(Ordering::Relaxed), AtomicU64::new(0));
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.to_async(rt).iter(|| async {
                let cpu = cpu_time();
                let writer = fixture.store.writer();
                let waiting: Vec<_> = (0..batch)
                    .map(|_| {
                        let n = fixture.next_seq.fetch_add(1, Ordering::Relaxed);
                        // 500 pairs (2k+1, 2k+2), each side sending in turn.
                        let pair = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (USERS / 2);
                        let (a, b) = (2 * pair + 1, 2 * pair + 2);
                        let (from, to) = if n.is_multiple_of(2) { (a, b) } else { (b, a) };
                        writer
                            .submit(move |tx| direct_send(tx, from, to, n))
                            .expect("submit")
                    })
                    .collect();
                for rx in waiting {
                    rx.await.expect("answer").expect("direct send");
                }
                cpu_us.fetch_add((cpu_time() - cpu).as_micros() as u64, Ordering::Relaxed);
            })
        });
        let sent = fixture.next_seq.load(Ordering::Relaxed) - started;
        if sent == 0 {
            // Filtered out on the command line.
            continue;
        }
        eprintln!(
            "{name}/{batch}: {:.1} µs of CPU per message over {sent} messages",
            cpu_us.load(Ordering::Relaxed) as f64 / sent.max(1) as f64
        );
        fixture.report(&format!("{name}/{batch}"));
    }
    group.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn writer_benches(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("writer");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let fixture = Fixture::new();
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_per_commit", |b| {
        b.to_async(&rt).iter(|| async {
            let msg = fixture.next_message();
            fixture
                .store
                .writer()
                .write(move |tx| tx.append_message(TENANT, &msg))
                .await
                .expect("append");
        })
    });
    fixture.report("one_per_commit");

    for outstanding in [100u64, 1000] {
        let fixture = Fixture::new();
        group.throughput(Throughput::Elements(outstanding));
        group.bench_with_input(
            BenchmarkId::new("group_commit", outstanding),
            &outstanding,
            |b, &outstanding| {
                b.to_async(&rt).iter(|| async {
                    let writer = fixture.store.writer();
                    let waiting: Vec<_> = (0..outstanding)
                        .map(|_| {
                            let msg = fixture.next_message();
                            writer
                                .submit(move |tx| tx.append_message(TENANT, &msg))
                                .expect("submit")
                        })
                        .collect();
                    for rx in waiting {
                        rx.await.expect("answer").expect("append");
                    }
                })
            },
        );
        fixture.report(&format!("group_commit/{outstanding}"));
    }
    group.finish();
    direct_bench(c, &rt, "direct", None);
    if let Some(nats) = bench_nats() {
        direct_bench(c, &rt, "direct_logged", Some(nats.clone()));
        replay_bench(c, &rt, nats);
    }
}

/// Records a takeover replays: a shard's log of `RECORDS` batches (a direct send's worth of
/// effects each, about 1 KiB), read from the start as a new owner does.
fn replay_bench(c: &mut Criterion, rt: &tokio::runtime::Runtime, (url, replicas): (String, usize)) {
    use parlor::cluster::log::{LogSettings, ShardLog};
    use parlor_storage::effects::{encode_batch, Effect};
    const RECORDS: u64 = 2000;
    let log = rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.expect("connect to NATS"));
        let settings = LogSettings {
            replicas,
            ..LogSettings::default()
        };
        // A shard of its own, emptied first: the count of records is the bench's.
        let shard = 900;
        let _ = js.delete_stream(format!("PARLOR_LOG_{shard}")).await;
        let log = ShardLog::open(js, shard, &settings).await.expect("open the log");
        for n in 0..RECORDS {
            let effects: Vec<Effect> = (0..5u16)
                .map(|t| Effect {
                    table: 10 + t,
                    key: format!("acme/d:1:2/{n}/{t}").into_bytes(),
                    value: Some(vec![b'x'; 200]),
                })
                .collect();
            let record = bytes::Bytes::from(encode_batch(&effects));
            log.append(n, &format!("{shard}.1.{n}"), record)
                .await
                .expect("append");
        }
        log
    });
    let mut group = c.benchmark_group("log");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(RECORDS));
    group.bench_function(BenchmarkId::new("replay", RECORDS), |b| {
        b.to_async(rt).iter(|| async {
            let mut seen = 0u64;
            let last = log.replay(0, |_, _| seen += 1).await.expect("replay");
            assert_eq!((last, seen), (RECORDS, RECORDS));
        })
    });
    group.finish();
}

criterion_group!(benches, writer_benches);
criterion_main!(benches);
