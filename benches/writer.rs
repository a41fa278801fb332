//! Benchmarks of durable message appends through the group-commit Writer.
//!
//! - `one_per_commit`: each append is awaited before the next is sent, so every message
//!   pays for its own commit (fsync): the latency-bound floor.
//! - `group_commit/N`: N appends are submitted at once and then awaited, so the Writer folds
//!   them into a few transactions: the throughput a busy server gets.
//!
//! Throughput is reported in messages per second. The database lives in a temporary
//! directory under the target directory (a real disk, not a tmpfs). After each benchmark
//! the Writer's counters (commits, writes, average batch) are printed to stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parlor_storage::{ChatType, MessageRecord, Store, WriterConfig};
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
}

criterion_group!(benches, writer_benches);
criterion_main!(benches);
