//! Cursors: coalescing the delivered and read positions sessions and clients report,
//! committing them every `cursor_flush`, and telling the other side of a read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use parlor_storage::Tx;
use tokio::sync::oneshot;

use super::replay::ReplaySource;
use super::Router;
use crate::messages::*;
use crate::{wire, ConvKey};

/// One conversation of one user.
type CursorKey = (UserKey, Arc<str>);

/// Reported positions not yet committed: per user and conversation, the highest
/// `(delivered, read)` reported. Positions only move forward.
#[derive(Debug, Default)]
pub(super) struct CursorBuf {
    positions: HashMap<CursorKey, (u64, u64)>,
}

impl CursorBuf {
    /// Notes `seq` delivered to `user` in `conv`, and read too when `read` (a read message
    /// was delivered).
    pub(super) fn advance(&mut self, user: &UserKey, conv: &Arc<str>, seq: u64, read: bool) {
        let read = if read { seq } else { 0 };
        self.merge((user.clone(), conv.clone()), (seq, read));
    }

    fn merge(&mut self, key: CursorKey, (delivered, read): (u64, u64)) {
        let entry = self.positions.entry(key).or_insert((0, 0));
        entry.0 = entry.0.max(delivered);
        entry.1 = entry.1.max(read);
    }

    /// The delivered position reported and not yet committed (0 when none).
    pub(super) fn delivered(&self, user: &UserKey, conv: &Arc<str>) -> u64 {
        self.positions
            .get(&(user.clone(), conv.clone()))
            .map_or(0, |p| p.0)
    }

    /// Everything reported, leaving the buffer empty.
    pub(super) fn take(&mut self) -> Vec<(CursorKey, (u64, u64))> {
        self.positions.drain().collect()
    }

    /// Puts back positions a flush could not hand to the Writer, under any reported since.
    pub(super) fn restore(&mut self, updates: Vec<(CursorKey, (u64, u64))>) {
        for (key, positions) in updates {
            self.merge(key, positions);
        }
    }
}

/// The write of a flush: each cursor moved forward to its reported positions, but never
/// past the head: a client's `ack` or `read` of a seq that does not exist yet must not
/// mark the later messages delivered or read.
pub(super) fn write_cursors(tx: &Tx<'_>, updates: &[(CursorKey, (u64, u64))]) -> parlor_storage::Result<()> {
    for ((user, conv), (delivered, read)) in updates {
        let head = tx.head(&user.tenant, conv)?;
        tx.advance_cursor(
            &user.tenant,
            user.id,
            conv,
            (*delivered).min(head),
            (*read).min(head),
        )?;
    }
    Ok(())
}

impl Router {
    /// Hands every reported position to the Writer; the receiver answers after the commit.
    pub(super) fn flush_cursors(&mut self) -> Option<oneshot::Receiver<parlor_storage::Result<()>>> {
        let updates = self.cursor_buf.take();
        if updates.is_empty() {
            return None;
        }
        let apply = updates.clone();
        match self
            .store
            .writer()
            .submit(move |tx: &Tx<'_>| write_cursors(tx, &apply))
        {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::warn!(error = %e, "cursor flush deferred");
                self.cursor_buf.restore(updates);
                None
            }
        }
    }
}

impl Handler<Advance> for Router {
    type Result = ();

    fn handle(&mut self, msg: Advance, ctx: &mut Self::Context) {
        for (conv, seq) in &msg.positions {
            self.cursor_buf.advance(&msg.user, conv, *seq, msg.read);
            if msg.read && msg.receipt {
                self.read_receipt(&msg.user, conv, *seq, ctx);
            }
        }
        let Some(id) = msg.session else { return };
        let rest = self
            .sessions
            .get_mut(&msg.user)
            .and_then(|l| l.iter_mut().find(|s| s.id == id))
            .and_then(|entry| entry.ledger.confirm(&msg.positions));
        if let Some(rest) = rest {
            self.start_replay(msg.user, id, ReplaySource::After(rest), ctx);
        }
    }
}

/// How long direct read receipts are gathered before they are pushed: reads of one
/// conversation within it reach the peer as one receipt, the latest position.
pub(super) const RECEIPT_ROUND: Duration = Duration::from_millis(50);

/// Direct read receipts gathered for the next round: per peer and conversation, the reader
/// and the highest position read. However many reads a client sends, a peer gets at most
/// one receipt per conversation a round.
#[derive(Debug, Default)]
pub(super) struct Receipts {
    waiting: HashMap<CursorKey, (u64, u64)>,
    /// A round is scheduled.
    due: bool,
}

impl Receipts {
    /// Notes that `reader` read `conv` up to `seq`, for `peer`; returns whether a round must
    /// be scheduled.
    pub(super) fn note(&mut self, peer: UserKey, conv: &Arc<str>, reader: u64, seq: u64) -> bool {
        let e = self.waiting.entry((peer, conv.clone())).or_insert((reader, 0));
        e.1 = e.1.max(seq);
        !std::mem::replace(&mut self.due, true)
    }

    /// The receipts of the round, leaving none.
    pub(super) fn take(&mut self) -> Vec<(CursorKey, (u64, u64))> {
        self.due = false;
        self.waiting.drain().collect()
    }
}

impl Router {
    /// Tells the other side of a direct conversation (at the next receipt round), or the
    /// group, that `user` read it.
    pub(super) fn read_receipt(
        &mut self,
        user: &UserKey,
        conv: &Arc<str>,
        seq: u64,
        ctx: &mut Context<Self>,
    ) {
        match ConvKey::parse(conv) {
            Some(key @ ConvKey::Direct { .. }) => {
                let Some(peer) = key.peer_of(user.id) else {
                    return;
                };
                let peer = UserKey {
                    tenant: user.tenant.clone(),
                    id: peer,
                };
                if self.receipts.note(peer, conv, user.id, seq) {
                    ctx.run_later(RECEIPT_ROUND, |act, _| act.push_receipts());
                }
            }
            Some(ConvKey::Group(group)) => {
                if let Some(t) = self.tenants.get(&user.tenant) {
                    t.addr.do_send(GroupRead {
                        group,
                        user: user.id,
                        seq,
                    });
                }
            }
            None => {}
        }
    }
}

impl Router {
    /// Pushes the receipts gathered since the last round.
    fn push_receipts(&mut self) {
        for ((peer, conv), (reader, seq)) in self.receipts.take() {
            let frame = wire::read_frame(&conv, seq, reader, None);
            self.push_user(&peer, &Pushed { frame, at: None }, None);
        }
    }
}

/// Commit every reported cursor position now; answers after the commit.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushCursors;

impl Handler<FlushCursors> for Router {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: FlushCursors, _: &mut Self::Context) -> Self::Result {
        let rx = self.flush_cursors();
        Box::pin(async move {
            if let Some(rx) = rx {
                let _ = rx.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use parlor_storage::{ChatType, Cursor, MessageRecord, Store, WriterConfig};

    use super::*;

    fn key(user: u64, conv: &str) -> CursorKey {
        (UserKey::new("acme", user), Arc::from(conv))
    }

    #[test]
    fn receipts_of_a_round_are_one_per_peer_and_conversation_the_latest() {
        let mut r = Receipts::default();
        let (bob, carol) = (UserKey::new("acme", 2), UserKey::new("acme", 3));
        let conv: Arc<str> = Arc::from("d:1:2");
        assert!(r.note(bob.clone(), &conv, 1, 4), "the first schedules a round");
        for seq in [2, 7, 5, 7, 1] {
            assert!(!r.note(bob.clone(), &conv, 1, seq), "one round at a time");
        }
        let other: Arc<str> = Arc::from("d:1:3");
        r.note(carol.clone(), &other, 1, 3);
        let mut got = r.take();
        got.sort_by_key(|((u, _), _)| u.id);
        assert_eq!(
            got,
            [((bob.clone(), conv.clone()), (1, 7)), ((carol, other), (1, 3))]
        );
        assert!(r.take().is_empty());
        assert!(
            r.note(bob, &conv, 1, 8),
            "after a round, the next is scheduled again"
        );
    }

    #[test]
    fn positions_only_move_forward_and_read_implies_delivered() {
        let mut buf = CursorBuf::default();
        let (alice, conv) = (UserKey::new("acme", 1), Arc::from("d:1:2"));
        buf.advance(&alice, &conv, 5, false);
        buf.advance(&alice, &conv, 3, false);
        assert_eq!(buf.delivered(&alice, &conv), 5);
        buf.advance(&alice, &conv, 4, true);
        buf.advance(&alice, &conv, 2, true);
        assert_eq!(buf.delivered(&alice, &conv), 5);
        buf.advance(&alice, &conv, 7, true);
        assert_eq!(buf.delivered(&UserKey::new("acme", 2), &conv), 0);
        assert_eq!(buf.take(), [(key(1, "d:1:2"), (7, 7))]);
        assert!(buf.take().is_empty(), "a flush empties the buffer");
    }

    #[test]
    fn a_deferred_flush_is_merged_with_later_reports() {
        let mut buf = CursorBuf::default();
        let (alice, conv) = (UserKey::new("acme", 1), Arc::from("g:7"));
        buf.advance(&alice, &conv, 4, true);
        let deferred = buf.take();
        buf.advance(&alice, &conv, 6, false);
        buf.restore(deferred);
        assert_eq!(buf.take(), [(key(1, "g:7"), (6, 4))]);
    }

    #[test]
    fn a_flush_writes_no_cursor_past_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.redb"), WriterConfig::default()).unwrap();
        let updates = vec![(key(1, "d:1:2"), (9, 9)), (key(2, "d:1:2"), (2, 1))];
        store
            .writer()
            .write_blocking(move |tx| {
                for seq in 1..=3 {
                    let mut m = MessageRecord {
                        id: format!("m{seq}"),
                        seq: 0,
                        conv: "d:1:2".into(),
                        chat_type: ChatType::Single,
                        from_id: 1,
                        from_name: String::new(),
                        from_avatar: String::new(),
                        to_id: 2,
                        to_name: String::new(),
                        to_avatar: String::new(),
                        kind: "text".into(),
                        data: "\"x\"".into(),
                        options: "{}".into(),
                        cid: None,
                        create_time: 0,
                        revoked: false,
                        action: None,
                    };
                    tx.append_next("acme", &mut m)?;
                }
                tx.ensure_cursor("acme", 1, "d:1:2")?;
                tx.ensure_cursor("acme", 2, "d:1:2")?;
                write_cursors(tx, &updates)
            })
            .unwrap();
        let snap = store.snapshot().unwrap();
        let cursor = |user| snap.cursor("acme", user, "d:1:2").unwrap();
        assert_eq!(
            cursor(1),
            Some(Cursor {
                delivered: 3,
                read: 3
            })
        );
        assert_eq!(
            cursor(2),
            Some(Cursor {
                delivered: 2,
                read: 1
            })
        );
    }
}
