//! Seqs stamped by `append_next` follow the committed timeline: a batch that aborted (its
//! log refused it, or a write panicked) moves no head, and rows applied from another
//! Writer's log move the heads the Writer held.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{apply_logged, logging_store, message};
use parlor_storage::{EffectLog, Error, Store, WriterConfig};

/// Stamps and appends the next message of `d:1:2`; returns its seq.
fn next(store: &Store) -> Result<u64, Error> {
    store.writer().write_blocking(|tx| {
        let mut m = message("d:1:2", 0, 1, None);
        tx.append_next("acme", &mut m)?;
        Ok(m.seq)
    })
}

#[test]
fn an_aborted_batch_moves_no_head() {
    let dir = tempfile::tempdir().unwrap();
    let refuse = Arc::new(AtomicBool::new(false));
    let r = refuse.clone();
    let count = Arc::new(Mutex::new(0u64));
    let config = WriterConfig {
        effect_log: Some(EffectLog::new(move |_| {
            if r.load(Ordering::SeqCst) {
                return Err(Error::Unavailable("shard moved"));
            }
            let mut n = count.lock().unwrap();
            *n += 1;
            Ok(*n)
        })),
        ..WriterConfig::default()
    };
    let store = Store::open(dir.path().join("parlor.redb"), config).unwrap();
    assert_eq!(next(&store).unwrap(), 1);
    assert_eq!(next(&store).unwrap(), 2);

    refuse.store(true, Ordering::SeqCst);
    assert!(matches!(next(&store), Err(Error::Unavailable("shard moved"))));
    refuse.store(false, Ordering::SeqCst);
    assert_eq!(
        next(&store).unwrap(),
        3,
        "the refused batch's seq 3 was never written"
    );

    let lost = store.writer().write_blocking(|tx| -> parlor_storage::Result<()> {
        let mut m = message("d:1:2", 0, 1, None);
        tx.append_next("acme", &mut m)?;
        panic!("a write that panics after stamping seq {}", m.seq);
    });
    assert!(lost.is_err(), "the panicking batch is lost");
    assert_eq!(
        next(&store).unwrap(),
        4,
        "the lost batch's seq 4 was never written"
    );
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.head("acme", "d:1:2").unwrap(), 4);
    store.shutdown();
}

#[test]
fn rows_applied_from_a_log_move_the_heads_the_writer_held() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, logged) = logging_store(&dir.path().join("owner.redb"));
    for seq in 1..=3 {
        assert_eq!(next(&owner).unwrap(), seq);
    }
    // A copy that wrote the conversation itself once (an earlier owner of the shard), so its
    // Writer holds a head of 1, then follows the new owner's log.
    let copy = Store::open(dir.path().join("copy.redb"), WriterConfig::default()).unwrap();
    assert_eq!(next(&copy).unwrap(), 1);
    apply_logged(&copy, &logged);
    assert_eq!(
        next(&copy).unwrap(),
        4,
        "the next seq follows the applied timeline"
    );
    owner.shutdown();
    copy.shutdown();
}
