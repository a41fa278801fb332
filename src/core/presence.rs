//! Presence and typing notes: [`query`] (who of a list of users is online, and when the
//! others were last seen), [`set_hidden`] (a user's privacy setting) and [`typing`] (the
//! WebSocket `typing` frame). Whether a user is online is the Router's to know (see
//! `parlor_actors::router::presence`, the one place that decides transitions); when a user
//! was last seen and whether they hide it are stored.
//!
//! A user sees the presence of their friends and of the members of groups they share, and
//! their own; nobody sees that of a user who hides it (they show as offline, never seen, with
//! `hidden`).

use std::collections::HashSet;
use std::sync::Arc;

use parlor_actors::rules::admit;
use parlor_actors::{wire, ConvKey, GroupTyping, Notify, OnlineOf, PresenceShown, UserKey};
use parlor_storage::{ChatType, Role};

use crate::error::ApiError;
use crate::state::AppState;

/// What the caller may see of one user's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub user: u64,
    pub online: bool,
    /// When their last session went (ms); `None` while online, when never seen or hidden.
    pub last_seen: Option<u64>,
    /// They hide their presence: shown as offline, never seen.
    pub hidden: bool,
}

fn turned_off() -> ApiError {
    ApiError::Forbidden("presence is turned off on this server".into())
}

/// The presence of each of `ids` that `me` may see (friends, fellow members, themselves),
/// in the order asked, each once; the others are left out, as are users who do not exist.
/// At most `presence.max_ids` ids.
pub async fn query(state: &AppState, tenant: &str, me: u64, ids: Vec<u64>) -> Result<Vec<Seen>, ApiError> {
    if !state.config.presence.enabled {
        return Err(turned_off());
    }
    let max = state.config.presence.max_ids;
    let mut once = HashSet::new();
    let ids: Vec<u64> = ids.into_iter().filter(|id| once.insert(*id)).collect();
    if ids.is_empty() {
        return Err(ApiError::invalid("userIds must name at least one user"));
    }
    if ids.len() > max {
        return Err(ApiError::TooLarge(format!("userIds names at most {max} users")));
    }
    let t = tenant.to_owned();
    let visible = state
        .read(move |s| {
            let mine: HashSet<u64> = s.groups_of(&t, me)?.into_iter().collect();
            let mut out = Vec::new();
            for id in ids {
                let may = id == me
                    || s.friend(&t, me, id)?.is_some()
                    || s.groups_of(&t, id)?.iter().any(|g| mine.contains(g));
                if may {
                    out.push((id, s.presence(&t, id)?));
                }
            }
            Ok(out)
        })
        .await?;
    let online = state
        .router
        .send(OnlineOf {
            tenant: Arc::from(tenant),
            ids: visible.iter().map(|(id, _)| *id).collect(),
        })
        .await?;
    Ok(visible
        .into_iter()
        .zip(online)
        .map(|((user, row), online)| {
            if row.hidden && user != me {
                return Seen {
                    user,
                    online: false,
                    last_seen: None,
                    hidden: true,
                };
            }
            Seen {
                user,
                online,
                last_seen: (!online && row.last_seen_ms > 0).then_some(row.last_seen_ms),
                hidden: row.hidden,
            }
        })
        .collect())
}

/// Sets whether `user` hides their presence and last seen; on a change, their audience is
/// told what it may see now.
pub async fn set_hidden(state: &AppState, tenant: &str, user: u64, hidden: bool) -> Result<(), ApiError> {
    let t = tenant.to_owned();
    let changed = state
        .store
        .writer()
        .write(move |tx| {
            let mut row = tx.presence(&t, user)?;
            if row.hidden == hidden {
                return Ok(false);
            }
            row.hidden = hidden;
            tx.put_presence(&t, user, row)?;
            Ok(true)
        })
        .await?;
    if changed {
        state.router.do_send(PresenceShown {
            user: UserKey::new(tenant, user),
        });
    }
    Ok(())
}

/// Forwards `from`'s typing note to the online sessions of the peer `to` (direct) or of
/// group `to`'s other members; never stored. Refused like a send: to a user who blocked the
/// sender or accepts messages from friends only, to a group the sender is not a member of.
pub async fn typing(
    state: &AppState,
    tenant: &str,
    (from, role): (u64, Role),
    to: u64,
    chat_type: ChatType,
    stop: bool,
) -> Result<(), ApiError> {
    let conv = match chat_type {
        ChatType::Single => ConvKey::direct(from, to),
        ChatType::Group => ConvKey::Group(to),
    };
    let frame = wire::typing_frame(from, to, &conv, stop, state.config.presence.typing_expiry_ms);
    match chat_type {
        ChatType::Group => super::groups::typing(state, tenant, to, GroupTyping { from, frame }).await,
        ChatType::Single => {
            if to == from {
                return Err(ApiError::invalid("a typing note goes to someone else"));
            }
            let t = tenant.to_owned();
            // A stranger's quota counts messages, not notes: any quota admits them.
            state
                .read(move |s| {
                    let blocked = s.blocked(&t, to, from)?;
                    let friend = !blocked && s.friend(&t, to, from)?.is_some();
                    Ok(admit(to, role, (blocked, friend), || s.user(&t, to))?.map(drop)?)
                })
                .await?;
            // A note the Router has no room for now is dropped: the next one replaces it.
            let _ = state.router.try_send(Notify {
                user: UserKey::new(tenant, to),
                frame,
            });
            Ok(())
        }
    }
}
