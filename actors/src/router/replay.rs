//! Offline replay: pushing what waited while a user was away, in rounds of at most the
//! tenant's `offline_replay_max` messages, each round read off the actor thread and the
//! next one started once the session reported the last written.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use parlor_storage::MessageRecord;

use super::sessions::Ledger;
use super::Router;
use crate::messages::*;
use crate::wire;

/// Which conversations a replay reads.
pub(super) enum ReplaySource {
    /// The conversations of the in-memory offline queue.
    Convs(Vec<Arc<str>>),
    /// Every conversation of the user whose head is past the delivered cursor.
    All,
    /// The rest of a replay cut short by `limits.offline_replay_max`: each conversation from
    /// after the given seq (from the delivered cursor where none is given).
    After(Vec<(Arc<str>, Option<u64>)>),
}

/// Conversations a replay round left for the next one, each with the last seq it read.
pub(super) type Unfinished = Vec<(Arc<str>, Option<u64>)>;

impl Router {
    pub(super) fn start_replay(
        &mut self,
        user: UserKey,
        session: SessionId,
        source: ReplaySource,
        ctx: &mut Context<Self>,
    ) {
        let limit = self.tenant(&user.tenant, ctx).policy.offline_replay_max.max(1);
        let store = self.store.clone();
        let (tenant, uid) = (user.tenant.clone(), user.id);
        let read = tokio::task::spawn_blocking(
            move || -> parlor_storage::Result<(Vec<MessageRecord>, Unfinished)> {
                let snap = store.snapshot()?;
                let convs: Vec<(Arc<str>, Option<u64>)> = match source {
                    ReplaySource::Convs(convs) => convs.into_iter().map(|c| (c, None)).collect(),
                    ReplaySource::After(convs) => convs,
                    ReplaySource::All => {
                        let mut convs = Vec::new();
                        for (conv, cursor) in snap.cursors_of(&tenant, uid)? {
                            if snap.head(&tenant, &conv)? > cursor.delivered {
                                convs.push((Arc::from(conv.as_str()), None));
                            }
                        }
                        convs
                    }
                };
                read_round(limit, convs, |conv, after, room| {
                    // No cursor: the user left (a group); nothing of it is theirs any more.
                    let Some(cursor) = snap.cursor(&tenant, uid, conv)? else {
                        return Ok(None);
                    };
                    let from = after.unwrap_or(cursor.delivered);
                    snap.messages_after(&tenant, conv, from, room).map(Some)
                })
            },
        );
        ctx.spawn(read.into_actor(self).map(move |res, act, ctx| {
            let res = match res {
                Ok(r) => r,
                Err(e) => Err(parlor_storage::Error::Unavailable(if e.is_panic() {
                    "replay read panicked"
                } else {
                    "replay read cancelled"
                })),
            };
            act.finish_replay(user, session, res, ctx);
        }));
    }

    pub(super) fn finish_replay(
        &mut self,
        user: UserKey,
        session: SessionId,
        res: parlor_storage::Result<(Vec<MessageRecord>, Unfinished)>,
        ctx: &mut Context<Self>,
    ) {
        let (msgs, unfinished) = match res {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, user = user.id, "offline replay failed");
                (Vec::new(), Vec::new())
            }
        };
        let Some(entry) = self
            .sessions
            .get_mut(&user)
            .and_then(|l| l.iter_mut().find(|s| s.id == session))
        else {
            // Gone before the read finished: everything read stays pending.
            let rest = unfinished.into_iter().map(|(c, _)| c);
            self.pending.entry(user.clone()).or_default().extend(rest);
            for m in &msgs {
                self.pending
                    .entry(user.clone())
                    .or_default()
                    .insert(Arc::from(m.conv.as_str()));
            }
            return;
        };
        let cursors = &self.cursor_buf;
        let round = entry
            .ledger
            .round(&msgs, |conv| cursors.delivered(&user, conv), unfinished);
        if let Some(rest) = round.read_now {
            return self.start_replay(user, session, ReplaySource::After(rest), ctx);
        }
        let batch = round.batch;
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        for p in &batch {
            entry.ledger.hand(p);
        }
        if entry.addr.try_send(Deliver::Replay(batch)).is_err() {
            self.cut(&user, session, "slow consumer");
        } else {
            self.stats.replayed.fetch_add(count, Ordering::Relaxed);
        }
    }
}

/// Reads one round: from each conversation in turn, the messages after its given seq (or
/// after the delivered cursor, as `read` decides; `None`: nothing of it is the user's), at
/// most `limit` in all. Returns them and the conversations left for the next round, each
/// with the last seq read (`None`: none read yet).
pub(super) fn read_round(
    limit: usize,
    convs: Unfinished,
    mut read: impl FnMut(&str, Option<u64>, usize) -> parlor_storage::Result<Option<Vec<MessageRecord>>>,
) -> parlor_storage::Result<(Vec<MessageRecord>, Unfinished)> {
    let mut out = Vec::new();
    let mut unfinished = Vec::new();
    for (conv, after) in convs {
        let room = limit.saturating_sub(out.len());
        if room == 0 {
            unfinished.push((conv, after));
            continue;
        }
        let Some(msgs) = read(&conv, after, room)? else {
            continue;
        };
        if msgs.len() == room {
            unfinished.push((conv, msgs.last().map(|m| m.seq)));
        }
        out.extend(msgs);
    }
    Ok((out, unfinished))
}

/// What one replay round hands the session.
#[derive(Debug)]
pub(super) struct Round {
    /// The frames to push now, in order.
    pub(super) batch: Vec<Pushed>,
    /// Nothing of this round was left to push and more waits: read the next round now.
    pub(super) read_now: Option<Unfinished>,
}

impl Ledger {
    /// Turns the messages of a round into the frames to push. A message whose position was
    /// already reported written is skipped, and so is one this session was already handed
    /// (a replay asked for again while an earlier one is unconfirmed sends nothing twice). On the last round (`unfinished` empty) the
    /// live frames held behind the replay follow, except those it already covered; before
    /// it they stay held, and the rest waits until the session reports the round's last
    /// frame written.
    pub(super) fn round(
        &mut self,
        msgs: &[MessageRecord],
        reported: impl Fn(&Arc<str>) -> u64,
        unfinished: Unfinished,
    ) -> Round {
        let mut batch = Vec::with_capacity(msgs.len());
        for m in msgs {
            let conv: Arc<str> = Arc::from(m.conv.as_str());
            let handed = self.unreported.get(&conv).copied().unwrap_or(0);
            if m.seq <= reported(&conv).max(handed) {
                continue;
            }
            self.replayed.insert(conv.clone(), m.seq);
            batch.push(Pushed {
                frame: wire::chat_frame(m),
                at: Some((conv, m.seq)),
            });
        }
        let held = self.held.take().unwrap_or_default();
        if unfinished.is_empty() {
            let replayed = std::mem::take(&mut self.replayed);
            for p in held {
                let newer = match &p.at {
                    Some((conv, seq)) => replayed.get(conv).is_none_or(|max| seq > max),
                    None => true,
                };
                if newer {
                    batch.push(p);
                }
            }
        } else {
            // Live frames wait for the last round, so that nothing newer overtakes it.
            self.held = Some(held);
        }
        // The next round starts once the session reported this one written, so that a long
        // queue is handed over a batch at a time rather than all into the session's buffer.
        let mut read_now = None;
        if !unfinished.is_empty() {
            match batch.last().and_then(|p| p.at.clone()) {
                Some(last) => self.more = Some((last, unfinished)),
                None => read_now = Some(unfinished),
            }
        }
        Round { batch, read_now }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use parlor_storage::ChatType;

    use super::*;

    fn message(conv: &str, seq: u64) -> MessageRecord {
        MessageRecord {
            id: format!("{conv}/{seq}"),
            seq,
            conv: conv.into(),
            chat_type: ChatType::Single,
            from_id: 1,
            from_name: "a".into(),
            from_avatar: String::new(),
            to_id: 2,
            to_name: "b".into(),
            to_avatar: String::new(),
            kind: "text".into(),
            data: "\"hi\"".into(),
            options: "{}".into(),
            cid: None,
            create_time: 0,
            revoked: false,
            action: None,
        }
    }

    /// Timelines of `(conv, head)`; every user's delivered cursor is `delivered[conv]`.
    fn reader(
        heads: &[(&str, u64)],
        delivered: &[(&str, u64)],
    ) -> impl FnMut(&str, Option<u64>, usize) -> parlor_storage::Result<Option<Vec<MessageRecord>>> {
        let heads: BTreeMap<String, u64> = heads.iter().map(|(c, h)| (c.to_string(), *h)).collect();
        let cursors: BTreeMap<String, u64> = delivered.iter().map(|(c, d)| (c.to_string(), *d)).collect();
        move |conv, after, room| {
            let Some(cursor) = cursors.get(conv) else {
                return Ok(None);
            };
            let from = after.unwrap_or(*cursor);
            let head = heads[conv];
            Ok(Some(
                (from + 1..=head).take(room).map(|s| message(conv, s)).collect(),
            ))
        }
    }

    fn at(msgs: &[MessageRecord]) -> Vec<(String, u64)> {
        msgs.iter().map(|m| (m.conv.clone(), m.seq)).collect()
    }

    fn convs(names: &[&str]) -> Unfinished {
        names.iter().map(|c| (Arc::from(*c), None)).collect()
    }

    #[test]
    fn a_round_holds_at_most_the_limit_and_says_where_to_go_on() {
        let mut read = reader(&[("d:1:2", 5), ("g:7", 3)], &[("d:1:2", 1), ("g:7", 0)]);
        let (msgs, rest) = read_round(3, convs(&["d:1:2", "g:7"]), &mut read).unwrap();
        assert_eq!(
            at(&msgs),
            [("d:1:2".into(), 2), ("d:1:2".into(), 3), ("d:1:2".into(), 4)]
        );
        // The first conversation filled the round at seq 4; the second was not read.
        assert_eq!(rest, [(Arc::from("d:1:2"), Some(4)), (Arc::from("g:7"), None)]);

        let (msgs, rest) = read_round(3, rest, &mut read).unwrap();
        assert_eq!(
            at(&msgs),
            [("d:1:2".into(), 5), ("g:7".into(), 1), ("g:7".into(), 2)]
        );
        assert_eq!(rest, [(Arc::from("g:7"), Some(2))]);

        let (msgs, rest) = read_round(3, rest, &mut read).unwrap();
        assert_eq!(at(&msgs), [("g:7".into(), 3)]);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_round_skips_conversations_the_user_left() {
        let mut read = reader(&[("g:7", 3), ("g:8", 2)], &[("g:8", 0)]);
        let (msgs, rest) = read_round(10, convs(&["g:7", "g:8"]), &mut read).unwrap();
        assert_eq!(at(&msgs), [("g:8".into(), 1), ("g:8".into(), 2)]);
        assert!(rest.is_empty());
    }

    fn live(conv: &str, seq: u64) -> Pushed {
        Pushed {
            frame: wire::chat_frame(&message(conv, seq)),
            at: Some((Arc::from(conv), seq)),
        }
    }

    fn positions(batch: &[Pushed]) -> Vec<(String, u64)> {
        batch
            .iter()
            .map(|p| {
                p.at.as_ref()
                    .map_or((String::new(), 0), |(c, s)| (c.to_string(), *s))
            })
            .collect()
    }

    #[test]
    fn live_frames_wait_for_the_last_round_and_skip_what_it_covered() {
        let mut ledger = Ledger {
            held: Some(vec![live("d:1:2", 3), live("d:1:2", 4), live("g:7", 9)]),
            ..Ledger::default()
        };
        let more = vec![(Arc::from("d:1:2"), Some(2))];
        let first = ledger.round(&[message("d:1:2", 1), message("d:1:2", 2)], |_| 0, more.clone());
        assert_eq!(
            positions(&first.batch),
            [("d:1:2".into(), 1), ("d:1:2".into(), 2)]
        );
        assert!(first.read_now.is_none());
        assert_eq!(
            ledger.held.as_ref().map(Vec::len),
            Some(3),
            "live frames still held"
        );
        assert_eq!(ledger.more, Some(((Arc::from("d:1:2"), 2), more)));

        // The session reports the round's last frame written: the rest is due.
        ledger.more.take();
        let last = ledger.round(&[message("d:1:2", 3)], |_| 0, Vec::new());
        // Seq 3 came by replay; the held 3 is dropped, the held 4 and 9 follow it.
        assert_eq!(
            positions(&last.batch),
            [("d:1:2".into(), 3), ("d:1:2".into(), 4), ("g:7".into(), 9)]
        );
        assert!(ledger.held.is_none() && ledger.replayed.is_empty() && ledger.more.is_none());
    }

    #[test]
    fn reported_positions_are_not_sent_again() {
        let mut ledger = Ledger::default();
        let reported = |conv: &Arc<str>| if &**conv == "d:1:2" { 2 } else { 0 };
        let msgs = [message("d:1:2", 2), message("d:1:2", 3), message("g:7", 1)];
        let round = ledger.round(&msgs, reported, Vec::new());
        assert_eq!(positions(&round.batch), [("d:1:2".into(), 3), ("g:7".into(), 1)]);
    }

    #[test]
    fn what_the_session_was_handed_is_not_sent_again() {
        let mut ledger = Ledger::default();
        for p in [live("d:1:2", 1), live("d:1:2", 2), live("g:7", 5)] {
            ledger.hand(&p);
        }
        let msgs = [
            message("d:1:2", 1),
            message("d:1:2", 2),
            message("d:1:2", 3),
            message("g:7", 5),
            message("g:7", 6),
        ];
        let round = ledger.round(&msgs, |_| 0, Vec::new());
        assert_eq!(positions(&round.batch), [("d:1:2".into(), 3), ("g:7".into(), 6)]);
    }

    #[test]
    fn a_round_with_nothing_new_reads_the_next_at_once() {
        let mut ledger = Ledger {
            held: Some(vec![live("d:1:2", 9)]),
            ..Ledger::default()
        };
        let more = vec![(Arc::from("d:1:2"), Some(4))];
        let round = ledger.round(&[message("d:1:2", 4)], |_| 4, more.clone());
        assert!(round.batch.is_empty());
        assert_eq!(round.read_now, Some(more));
        assert!(ledger.more.is_none());
        assert_eq!(ledger.held.as_ref().map(Vec::len), Some(1));
    }
}
