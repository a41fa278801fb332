//! Presence: the one place that decides when a user comes online and goes offline, from
//! the registry of sessions the Router keeps anyway.
//!
//! A user is online from their first session's `Connect` until their last session has been
//! gone for the grace (`offline_grace_ms`): a reconnect within it is no offline/online
//! pair, so flapping networks and page reloads tell nobody anything. Each transition is
//! told, once, to the user's audience (their friends and, per tenant setting 7, the members
//! of their groups up to that size) as a `presence` frame to the sessions online, and to the
//! tenant's `user.online`/`user.offline` webhook endpoints; going offline also stores when
//! the user was last seen. A user who hides their presence gets no frames (their webhook
//! events still go to the tenant's own backend).
//!
//! Nothing here runs per message. The audience is read from a snapshot on a blocking thread
//! at each transition, and its frame is pushed only if the user is still in the state it
//! tells by then, so frames of a quick succession of transitions never arrive out of order.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use parlor_storage::{Presence, Snapshot};
use tokio::sync::oneshot;

use super::Router;
use crate::hooks;
use crate::messages::*;
use crate::now_ms;
use crate::wire::{self, presence_frame};

/// What a transition tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The user's first session connected.
    Online,
    /// The user's last session went at this time (ms) and none came within the grace.
    Offline(u64),
    /// The user changed whether they hide their presence: their audience learns what it may
    /// see now.
    Shown,
}

/// The users whose last session went less than the grace ago: when each counts as offline,
/// and when their last session went (their last seen).
#[derive(Debug, Default)]
pub(super) struct Away {
    users: HashMap<UserKey, (Instant, u64)>,
}

impl Away {
    /// `user`'s last session went now.
    pub(super) fn left(&mut self, user: UserKey, grace: Duration) {
        self.users.insert(user, (Instant::now() + grace, now_ms()));
    }

    /// `user` connected again: whether they were within the grace (and still count as
    /// online, so nothing is told).
    pub(super) fn back(&mut self, user: &UserKey) -> bool {
        self.users.remove(user).is_some()
    }

    pub(super) fn contains(&self, user: &UserKey) -> bool {
        self.users.contains_key(user)
    }

    /// The users whose grace ended by `now`, with their last seen; they leave the set.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<(UserKey, u64)> {
        let gone: Vec<(UserKey, u64)> = self
            .users
            .iter()
            .filter(|(_, (until, _))| *until <= now)
            .map(|(user, (_, seen))| (user.clone(), *seen))
            .collect();
        for (user, _) in &gone {
            self.users.remove(user);
        }
        gone
    }
}

/// Who is told of `user`'s presence: their friends and the members of each of their groups
/// with at most `group_max` members (none when 0), without the user; and their stored row.
/// Nobody is told of a user who hides their presence, unless `even_hidden` (they just hid
/// it, and their audience must learn so).
fn audience(
    s: &Snapshot,
    tenant: &str,
    user: u64,
    group_max: usize,
    even_hidden: bool,
) -> parlor_storage::Result<(Presence, Vec<u64>)> {
    let presence = s.presence(tenant, user)?;
    if presence.hidden && !even_hidden {
        return Ok((presence, Vec::new()));
    }
    let mut ids: Vec<u64> = s
        .friends_of(tenant, user)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    if group_max > 0 {
        for group in s.groups_of(tenant, user)? {
            if let Some(members) = s.member_ids(tenant, group, group_max)? {
                ids.extend(members);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids.retain(|&id| id != user);
    Ok((presence, ids))
}

impl Router {
    /// Whether `user` counts as online: a session connected, or within the grace.
    pub(super) fn counts_online(&self, user: &UserKey) -> bool {
        self.sessions.contains_key(user) || self.away.contains(user)
    }

    /// `user`'s last session left the registry.
    pub(super) fn last_session_gone(&mut self, user: &UserKey) {
        if let Some(grace) = self.config.presence_grace {
            self.away.left(user.clone(), grace);
        }
    }

    /// Ends the grace of the users whose last session went long enough ago.
    pub(super) fn sweep_away(&mut self, ctx: &mut Context<Self>) {
        for (user, seen) in self.away.expired(Instant::now()) {
            if !self.sessions.contains_key(&user) {
                self.announce(user, Change::Offline(seen), ctx);
            }
        }
    }

    /// Tells a transition: stores the last seen and queues the webhook event in one write,
    /// then reads the audience and pushes the frame to those of it online.
    pub(super) fn announce(&mut self, user: UserKey, change: Change, ctx: &mut Context<Self>) {
        if self.config.presence_grace.is_none() {
            return;
        }
        let policy = self.tenant(&user.tenant, ctx).policy.clone();
        // A transition stores the last seen (going offline) and queues its event (for the
        // endpoints that get it); a change of the privacy setting does neither.
        let transition = match change {
            Change::Online => Some((hooks::USER_ONLINE, None)),
            Change::Offline(at) => Some((hooks::USER_OFFLINE, Some(at))),
            Change::Shown => None,
        };
        let mut written = None;
        if let Some((event, last_seen)) = transition {
            let endpoints = hooks::endpoints(&policy.webhooks, event);
            if last_seen.is_some() || !endpoints.is_empty() {
                written = self.record(&user, last_seen, endpoints);
            }
        }
        let (store, tenant, id, group_max) = (
            self.store.clone(),
            user.tenant.clone(),
            user.id,
            policy.presence_group_max,
        );
        let even_hidden = change == Change::Shown;
        // The audience is read once the last seen is stored: whoever gets the frame and
        // asks the presence route then sees the same last seen.
        let read = async move {
            if let Some(rx) = written {
                if let Ok(Err(e)) = rx.await {
                    tracing::warn!(user = id, error = %e, "presence not stored");
                }
            }
            tokio::task::spawn_blocking(move || {
                audience(&store.snapshot()?, &tenant, id, group_max, even_hidden)
            })
            .await
        };
        ctx.spawn(read.into_actor(self).map(move |res, act, _| {
            let (presence, ids) = match res.map_err(|e| e.to_string()) {
                Ok(Ok(found)) => found,
                Ok(Err(e)) => return tracing::warn!(user = id, error = %e, "presence audience not read"),
                Err(e) => return tracing::warn!(user = id, error = %e, "presence audience not read"),
            };
            if transition.is_some() {
                // Counted once its audience is known: a transition counted is one whose
                // frames (if still true) are out.
                act.stats.presence_changes.fetch_add(1, Ordering::Relaxed);
            }
            let online = act.counts_online(&user);
            let frame = match change {
                // A frame is pushed only while it is still true: a later transition
                // pushes its own.
                Change::Online if online => presence_frame(id, true, None),
                Change::Offline(at) if !online => presence_frame(id, false, Some(at)),
                // Hidden now: the audience sees "offline", without a last seen.
                Change::Shown if presence.hidden => presence_frame(id, false, None),
                Change::Shown => {
                    let seen = (presence.last_seen_ms > 0).then_some(presence.last_seen_ms);
                    presence_frame(id, online, if online { None } else { seen })
                }
                _ => return,
            };
            let told = act.push_to(&user.tenant, ids, &frame);
            act.stats.presence_frames.fetch_add(told, Ordering::Relaxed);
        }));
    }

    /// Offers a frame outside any timeline to the online sessions of `ids`; answers how
    /// many users took it.
    pub(super) fn push_to(
        &mut self,
        tenant: &Arc<str>,
        ids: impl IntoIterator<Item = u64>,
        frame: &wire::Frame,
    ) -> u64 {
        let pushed = Pushed {
            frame: frame.clone(),
            at: None,
        };
        let mut told = 0;
        for id in ids {
            let key = UserKey {
                tenant: tenant.clone(),
                id,
            };
            told += u64::from(self.push_user(&key, &pushed, None));
        }
        told
    }

    /// Stores `user`'s last seen (when going offline) and queues their event for
    /// `endpoints`, in one write that does not hold the Router up: the receiver of its
    /// commit, or `None` when the write queue is full. A user deleted meanwhile gets
    /// neither.
    fn record(
        &self,
        user: &UserKey,
        last_seen: Option<u64>,
        endpoints: Vec<u64>,
    ) -> Option<oneshot::Receiver<parlor_storage::Result<()>>> {
        let (tenant, id) = (user.tenant.clone(), user.id);
        let submitted = self.store.writer().submit(move |tx| {
            if tx.user(&tenant, id)?.is_none() {
                return Ok(());
            }
            if let Some(at) = last_seen {
                let mut row = tx.presence(&tenant, id)?;
                row.last_seen_ms = at;
                tx.put_presence(&tenant, id, row)?;
            }
            hooks::user_presence(tx, &tenant, &endpoints, id, last_seen)
        });
        submitted
            .map_err(|e| tracing::warn!(user = user.id, error = %e, "presence not stored"))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_ends_for_those_who_did_not_come_back() {
        let mut away = Away::default();
        let (a, b) = (UserKey::new("t", 1), UserKey::new("t", 2));
        let grace = Duration::from_millis(50);
        away.left(a.clone(), grace);
        away.left(b.clone(), grace);
        assert!(away.contains(&a));
        assert!(away.expired(Instant::now()).is_empty(), "within the grace");
        assert!(away.back(&b), "b reconnected within the grace");
        assert!(!away.back(&b), "once");
        let gone = away.expired(Instant::now() + grace * 2);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, a);
        assert!(gone[0].1 > 0 && gone[0].1 <= now_ms(), "the last seen");
        assert!(!away.contains(&a), "it left the set");
    }

    #[test]
    fn the_frame_carries_the_last_seen_only_when_offline() {
        let on: serde_json::Value = serde_json::from_str(&presence_frame(7, true, None)[..]).unwrap();
        assert_eq!(on["type"], "presence");
        assert_eq!(
            on["data"],
            serde_json::json!({"userId": 7, "online": true, "lastSeen": null})
        );
        let off: serde_json::Value = serde_json::from_str(&presence_frame(7, false, Some(5))[..]).unwrap();
        assert_eq!(off["data"]["lastSeen"], 5);
    }
}
