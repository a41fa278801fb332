//! The registry's entries: one per online session, with the bookkeeping of what the
//! session was handed and has not confirmed, and cutting a session that cannot keep up.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;

use super::replay::Unfinished;
use super::Router;
use crate::messages::*;

/// One online session of a user.
pub(super) struct SessionEntry {
    pub(super) id: SessionId,
    pub(super) addr: Recipient<Deliver>,
    pub(super) jti: Arc<str>,
    pub(super) ledger: Ledger,
}

impl SessionEntry {
    /// A session that just connected; `replay`: its offline replay is about to be read,
    /// and live frames wait behind it.
    pub(super) fn new(id: SessionId, addr: Recipient<Deliver>, jti: Arc<str>, replay: bool) -> Self {
        SessionEntry {
            id,
            addr,
            jti,
            ledger: Ledger {
                held: replay.then(Vec::new),
                ..Ledger::default()
            },
        }
    }
}

/// What a session was handed and has not confirmed, and where its replay stands. Plain
/// data: the Router's handlers drive it.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// While the session's offline replay is being read, live frames wait here.
    pub(super) held: Option<Vec<Pushed>>,
    /// Highest seq handed to the session per conversation that its client has not
    /// confirmed reading yet.
    pub(super) unreported: HashMap<Arc<str>, u64>,
    /// A replay cut short: once the session reports the first position written, the rest.
    pub(super) more: Option<((Arc<str>, u64), Unfinished)>,
    /// Highest seq replayed per conversation over the rounds of the replay in progress.
    pub(super) replayed: HashMap<Arc<str>, u64>,
}

impl Ledger {
    /// Notes a timeline frame handed to the session.
    pub(super) fn hand(&mut self, p: &Pushed) {
        if let Some((conv, seq)) = &p.at {
            let e = self.unreported.entry(conv.clone()).or_insert(0);
            *e = (*e).max(*seq);
        }
    }

    /// The session reported `positions` written: what they cover is confirmed. Returns the
    /// rest of a replay cut short when the report reaches the end of its last round.
    pub(super) fn confirm(&mut self, positions: &[(Arc<str>, u64)]) -> Option<Unfinished> {
        for (conv, seq) in positions {
            if self.unreported.get(conv).is_some_and(|pushed| pushed <= seq) {
                self.unreported.remove(conv);
            }
        }
        let reached = self
            .more
            .as_ref()
            .is_some_and(|((conv, last), _)| positions.iter().any(|(c, seq)| c == conv && seq >= last));
        if reached {
            self.more.take().map(|(_, rest)| rest)
        } else {
            None
        }
    }

    /// The conversations the session has something of that it has not confirmed: frames
    /// handed, frames held behind its replay, and the replay's unread rest.
    pub(super) fn outstanding(&self) -> impl Iterator<Item = &Arc<str>> {
        let held = self
            .held
            .iter()
            .flatten()
            .filter_map(|p| p.at.as_ref().map(|(c, _)| c));
        let more = self.more.iter().flat_map(|(_, rest)| rest.iter().map(|(c, _)| c));
        self.unreported.keys().chain(held).chain(more)
    }

    /// What the session leaves unconfirmed when it goes: frames handed and not confirmed,
    /// frames held behind a replay, and the conversations of an unfinished replay.
    pub(super) fn into_unconfirmed(mut self) -> HashMap<Arc<str>, u64> {
        for p in self.held.take().unwrap_or_default() {
            self.hand(&p);
        }
        let more = self.more.take().map(|m| m.1).unwrap_or_default();
        self.unreported
            .extend(more.into_iter().map(|(conv, _)| (conv, u64::MAX)));
        self.unreported
    }
}

/// The conversations a session that went leaves pending: those it left unconfirmed past
/// what its last report says it wrote.
pub(super) fn still_pending(
    mut unconfirmed: HashMap<Arc<str>, u64>,
    written: Vec<(Arc<str>, u64)>,
) -> Vec<Arc<str>> {
    let written: HashMap<_, _> = written.into_iter().collect();
    unconfirmed.retain(|conv, seq| written.get(conv).is_none_or(|w| w < seq));
    unconfirmed.into_keys().collect()
}

impl Router {
    /// Cuts every session of `user` whose token `which` picks (see [`Router::cut`]).
    pub(super) fn cut_tokens(
        &mut self,
        user: &UserKey,
        which: impl Fn(&Arc<str>) -> bool,
        reason: &'static str,
    ) {
        let ids: Vec<SessionId> = self
            .sessions
            .get(user)
            .map(|l| l.iter().filter(|s| which(&s.jti)).map(|s| s.id).collect())
            .unwrap_or_default();
        for id in ids {
            self.cut(user, id, reason);
        }
    }

    /// Removes a session from the registry and tells it to close. Only what its client
    /// confirmed moved the delivered cursor (see the session's probes), so everything else
    /// it was handed becomes pending again when its last report arrives.
    pub(super) fn cut(&mut self, user: &UserKey, id: SessionId, reason: &'static str) {
        let Some(list) = self.sessions.get_mut(user) else {
            return;
        };
        let Some(pos) = list.iter().position(|s| s.id == id) else {
            return;
        };
        let entry = list.swap_remove(pos);
        if list.is_empty() {
            self.sessions.remove(user);
            self.last_session_gone(user);
        }
        // One control message past the mailbox bound: the session must learn it is cut.
        entry.addr.do_send(Deliver::Close { reason });
        self.closing.insert(id, entry.ledger.into_unconfirmed());
        self.stats.sessions_cut.fetch_add(1, Ordering::Relaxed);
        self.session_gone(&user.tenant);
        tracing::info!(user = user.id, tenant = %user.tenant, session = id, reason, "session cut");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(conv: &str, seq: u64) -> Pushed {
        Pushed {
            frame: crate::wire::frame("t", ()),
            at: Some((Arc::from(conv), seq)),
        }
    }

    fn notice() -> Pushed {
        Pushed {
            frame: crate::wire::frame("t", ()),
            at: None,
        }
    }

    #[test]
    fn handing_keeps_the_highest_seq_per_conversation() {
        let mut l = Ledger::default();
        for p in [pushed("d:1:2", 4), pushed("d:1:2", 2), pushed("g:7", 1), notice()] {
            l.hand(&p);
        }
        assert_eq!(l.unreported.len(), 2);
        assert_eq!(l.unreported["d:1:2"], 4);
        assert_eq!(l.unreported["g:7"], 1);
    }

    #[test]
    fn a_report_confirms_only_what_it_covers() {
        let mut l = Ledger::default();
        l.hand(&pushed("d:1:2", 5));
        l.hand(&pushed("g:7", 3));
        assert_eq!(l.confirm(&[(Arc::from("d:1:2"), 4), (Arc::from("g:7"), 3)]), None);
        assert_eq!(l.unreported.get("d:1:2"), Some(&5), "4 does not cover 5");
        assert_eq!(l.unreported.get("g:7"), None);
        l.confirm(&[(Arc::from("d:1:2"), 6)]);
        assert!(l.unreported.is_empty());
    }

    #[test]
    fn the_next_round_is_due_when_the_last_frame_is_reported() {
        let rest: Unfinished = vec![(Arc::from("g:7"), Some(10))];
        let mut l = Ledger {
            more: Some(((Arc::from("d:1:2"), 8), rest.clone())),
            ..Ledger::default()
        };
        assert_eq!(l.confirm(&[(Arc::from("d:1:2"), 7)]), None);
        assert_eq!(l.confirm(&[(Arc::from("g:7"), 8)]), None, "another conversation");
        assert_eq!(l.confirm(&[(Arc::from("d:1:2"), 8)]), Some(rest));
        assert!(l.more.is_none());
        assert_eq!(l.confirm(&[(Arc::from("d:1:2"), 9)]), None, "only once");
    }

    #[test]
    fn outstanding_names_every_conversation_not_confirmed() {
        // A replay round ended at g:7 6; g:9 is its unread rest; g:8 waits behind it.
        let mut l = Ledger {
            held: Some(vec![notice(), pushed("g:8", 2)]),
            more: Some(((Arc::from("g:7"), 6), vec![(Arc::from("g:9"), None)])),
            ..Ledger::default()
        };
        l.hand(&pushed("g:7", 6));
        l.hand(&pushed("d:1:2", 3));
        assert_eq!(l.confirm(&[(Arc::from("d:1:2"), 3)]), None);
        let mut convs: Vec<&str> = l.outstanding().map(|c| &**c).collect();
        convs.sort_unstable();
        assert_eq!(convs, ["g:7", "g:8", "g:9"], "d:1:2 was confirmed");
        assert_eq!(Ledger::default().outstanding().count(), 0);
    }

    #[test]
    fn a_cut_session_leaves_pending_what_it_did_not_confirm() {
        let mut l = Ledger {
            held: Some(vec![pushed("g:8", 2), notice()]),
            more: Some(((Arc::from("d:1:2"), 3), vec![(Arc::from("g:9"), Some(1))])),
            ..Ledger::default()
        };
        l.hand(&pushed("d:1:2", 3));
        l.hand(&pushed("g:7", 6));
        let unconfirmed = l.into_unconfirmed();
        assert_eq!(unconfirmed.len(), 4);
        assert_eq!(unconfirmed["d:1:2"], 3);
        assert_eq!(unconfirmed["g:7"], 6);
        assert_eq!(unconfirmed["g:8"], 2, "held frames were never written");
        assert_eq!(unconfirmed["g:9"], u64::MAX, "the unread rest of the replay");

        // Its last report covers d:1:2 and part of g:7.
        let written = vec![(Arc::from("d:1:2"), 3), (Arc::from("g:7"), 5)];
        let mut pending = still_pending(unconfirmed, written);
        pending.sort();
        assert_eq!(pending, [Arc::from("g:7"), Arc::from("g:8"), Arc::from("g:9")]);
    }
}
