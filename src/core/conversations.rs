//! A user's conversations: which conversations a user takes part in
//! (their cursors), what each shows (peer or group, last message, unread count from the
//! read cursor, pinned and archived flags), where a user's view of history starts, and the
//! per-user archive, delete and pin.
//!
//! The list is computed when it is read, from the cursors and each conversation's head, so
//! a message costs no write per member. A conversation archived or deleted by a user stays
//! out of that user's list until a newer message arrives; a delete also hides the history up
//! to that point from that user only.

use std::sync::Arc;

use parlor_actors::{ConvKey, Party, Revoke, Revoked};
use parlor_storage::{ConvState, GroupRecord, MessageRecord, Snapshot, UserRecord};

use crate::error::ApiError;
use crate::state::AppState;

/// One conversation as a user sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub conv: String,
    pub peer: Option<UserRecord>,
    pub group: Option<GroupRecord>,
    pub last: Option<MessageRecord>,
    pub head: u64,
    pub unread: u64,
    pub state: ConvState,
}

impl Entry {
    pub fn is_group(&self) -> bool {
        self.group.is_some()
    }

    /// Milliseconds of the last activity (the last message, else 0).
    pub fn activity(&self) -> u64 {
        self.last.as_ref().map_or(0, |m| m.create_time)
    }

    /// Whether it is archived (and nothing newer came since).
    pub fn archived(&self) -> bool {
        self.state.archived_upto > 0 && self.head <= self.state.archived_upto
    }

    /// Whether it was deleted (and nothing newer came since).
    pub fn deleted(&self) -> bool {
        self.state.deleted_upto > 0 && self.head <= self.state.deleted_upto
    }
}

/// Which conversations to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Neither archived nor deleted.
    Active,
    /// Archived only.
    Archived,
}

/// One conversation of `user`, or `None` when the user does not take part in it.
pub fn entry(s: &Snapshot, tenant: &str, user: u64, conv: &str) -> Result<Option<Entry>, ApiError> {
    let Some(cursor) = s.cursor(tenant, user, conv)? else {
        return Ok(None);
    };
    let (peer, group) = match ConvKey::parse(conv) {
        Some(ConvKey::Direct { lo, hi }) => (s.user(tenant, if lo == user { hi } else { lo })?, None),
        Some(ConvKey::Group(gid)) => match s.group(tenant, gid)?.filter(|g| g.status == 1) {
            Some(g) => (None, Some(g)),
            None => return Ok(None),
        },
        None => return Ok(None),
    };
    let state = s.conv_state(tenant, user, conv)?;
    let head = s.head(tenant, conv)?;
    let last = s
        .last_message(tenant, conv)?
        .filter(|m| m.seq > state.deleted_upto);
    Ok(Some(Entry {
        conv: conv.to_owned(),
        peer,
        group,
        last,
        head,
        unread: head.saturating_sub(cursor.read.max(state.deleted_upto)),
        state,
    }))
}

/// A user's conversations, by last activity (newest first).
pub fn list(s: &Snapshot, tenant: &str, user: u64, filter: Filter) -> Result<Vec<Entry>, ApiError> {
    let mut out = Vec::new();
    for (conv, _) in s.cursors_of(tenant, user)? {
        let Some(e) = entry(s, tenant, user, &conv)? else {
            continue;
        };
        let keep = match filter {
            Filter::Active => !e.archived() && !e.deleted() && e.head > 0,
            Filter::Archived => e.archived() && !e.deleted(),
        };
        if keep {
            out.push(e);
        }
    }
    out.sort_by(|a, b| b.activity().cmp(&a.activity()).then_with(|| a.conv.cmp(&b.conv)));
    Ok(out)
}

/// Where `user`'s view of a conversation's history starts: after the user's delete, and
/// for a group after the user joined. Refuses a conversation the user is not part of.
pub fn history_floor(s: &Snapshot, tenant: &str, user: u64, conv: &str) -> Result<u64, ApiError> {
    let deleted = s.conv_state(tenant, user, conv)?.deleted_upto;
    match ConvKey::parse(conv) {
        Some(ConvKey::Direct { lo, hi }) if lo == user || hi == user => Ok(deleted),
        Some(ConvKey::Direct { .. }) => Err(ApiError::Forbidden(
            "only a participant may read this conversation".into(),
        )),
        Some(ConvKey::Group(gid)) => {
            s.group(tenant, gid)?
                .filter(|g| g.status == 1)
                .ok_or_else(|| ApiError::NotFound(format!("group {gid} does not exist")))?;
            let m = s
                .member(tenant, gid, user)?
                .ok_or_else(|| ApiError::Forbidden("you are not a member of this group".into()))?;
            Ok(deleted.max(m.joined_seq))
        }
        None => Err(ApiError::NotFound(format!("conversation {conv} does not exist"))),
    }
}

/// What a user does to their own view of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Archive,
    Delete,
    Pin(bool),
}

/// Archives, deletes or pins a conversation for `user` only. Refuses a conversation the
/// user has no part in. Pinning is a setting of the user: a participant pins a
/// conversation that has no message yet.
pub async fn change(
    state: &AppState,
    tenant: &str,
    user: u64,
    conv: &str,
    change: Change,
) -> Result<(), ApiError> {
    let not_mine = || ApiError::NotFound(format!("conversation {conv} is not one of yours"));
    let (t, c) = (tenant.to_owned(), conv.to_owned());
    if let Change::Pin(on) = change {
        state
            .read(move |s| history_floor(s, &t, user, &c))
            .await
            .map_err(|e| match e {
                ApiError::Forbidden(_) => not_mine(),
                other => other,
            })?;
        let (t, c) = (tenant.to_owned(), conv.to_owned());
        state
            .store
            .writer()
            .write(move |tx| {
                let mut st = tx.conv_state(&t, user, &c)?;
                st.pinned = on;
                tx.put_conv_state(&t, user, &c, &st)
            })
            .await?;
        return Ok(());
    }
    let done = state
        .store
        .writer()
        .write(move |tx| {
            if tx.cursor(&t, user, &c)?.is_none() {
                return Ok(false);
            }
            let head = tx.head(&t, &c)?;
            let mut st = tx.conv_state(&t, user, &c)?;
            match change {
                Change::Archive => st.archived_upto = head.max(1),
                Change::Delete => {
                    st.deleted_upto = head;
                    st.archived_upto = 0;
                }
                Change::Pin(on) => st.pinned = on,
            }
            tx.put_conv_state(&t, user, &c, &st)?;
            Ok(true)
        })
        .await?;
    if done {
        Ok(())
    } else {
        Err(not_mine())
    }
}

/// Revokes message `id` for its sender `by`: the Router decides for a direct conversation,
/// the group's actor for a group's. Returns the placeholder, the notice and the group.
pub async fn revoke(state: &AppState, tenant: &str, by: Party, id: &str) -> Result<Arc<Revoked>, ApiError> {
    let (t, key) = (tenant.to_owned(), id.to_owned());
    let message = state
        .read(move |s| {
            s.message_by_id(&t, &key)?
                .ok_or_else(|| ApiError::NotFound(format!("message {key} does not exist")))
        })
        .await?;
    let msg = Revoke {
        tenant: Arc::from(tenant),
        by,
        id: id.to_owned(),
    };
    match ConvKey::parse(&message.conv).and_then(|k| k.group_id()) {
        Some(gid) => super::groups::revoke(state, tenant, gid, msg).await,
        None => Ok(state.router.send(msg).await??),
    }
}

/// Marks `user`'s conversation read up to `seq` (at most its head; a conversation the user
/// takes no part in is refused) and tells the other side, unless the peer blocked `user`
/// or `seq` was read already; returns the position recorded.
/// `session` is the WebSocket session that read it, if one did.
pub async fn read(
    state: &AppState,
    tenant: &str,
    user: u64,
    conv: &str,
    seq: u64,
    session: Option<parlor_actors::SessionId>,
) -> Result<u64, ApiError> {
    let (t, c) = (tenant.to_owned(), conv.to_owned());
    let (head, read, blocked) = state
        .read(move |s| {
            history_floor(s, &t, user, &c)?;
            let read = s.cursor(&t, user, &c)?.map_or(0, |cursor| cursor.read);
            let blocked = match ConvKey::parse(&c).and_then(|k| k.peer_of(user)) {
                Some(peer) => s.blocked(&t, peer, user)?,
                None => false,
            };
            Ok((s.head(&t, &c)?, read, blocked))
        })
        .await?;
    let seq = seq.min(head);
    // Reading again what was read already moves nothing and tells nobody.
    if seq <= read {
        return Ok(seq);
    }
    let from_session = session.is_some();
    state.router.do_send(parlor_actors::Advance {
        user: parlor_actors::UserKey::new(tenant, user),
        session,
        positions: vec![(Arc::from(conv), seq)],
        read: true,
        receipt: !blocked,
    });
    if !from_session {
        // A read over HTTP is answered once it is committed, so the caller's next request
        // (a conversation list, its unread counts) sees it. A session's reads are many and
        // need no answer: they are committed with the next cursor flush.
        state
            .router
            .send(parlor_actors::router::FlushCursors)
            .await
            .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    }
    Ok(seq)
}

/// Opens the direct conversation of `a` and `b` for both (it is listed before any message).
pub async fn open_direct(state: &AppState, tenant: &str, a: u64, b: u64) -> Result<String, ApiError> {
    let conv = ConvKey::direct(a, b).to_string();
    let (t, c) = (tenant.to_owned(), conv.clone());
    state
        .store
        .writer()
        .write(move |tx| {
            tx.ensure_cursor(&t, a, &c)?;
            tx.ensure_cursor(&t, b, &c)
        })
        .await?;
    Ok(conv)
}

/// The numbers of conversations (the chat-room face names conversations by number), given
/// to those that have none yet in one write.
pub async fn numbers(
    state: &AppState,
    tenant: &str,
    convs: Vec<String>,
) -> Result<std::collections::HashMap<String, u64>, ApiError> {
    let (t, wanted) = (tenant.to_owned(), convs.clone());
    let known = state
        .read(move |s| {
            let mut out = std::collections::HashMap::new();
            for c in wanted {
                if let Some(n) = s.conv_number(&t, &c)? {
                    out.insert(c, n);
                }
            }
            Ok(out)
        })
        .await?;
    let missing: Vec<String> = convs.into_iter().filter(|c| !known.contains_key(c)).collect();
    if missing.is_empty() {
        return Ok(known);
    }
    let t = tenant.to_owned();
    let given = state
        .store
        .writer()
        .write(move |tx| {
            missing
                .into_iter()
                .map(|c| tx.conv_number(&t, &c).map(|n| (c, n)))
                .collect::<parlor_storage::Result<Vec<_>>>()
        })
        .await?;
    Ok(known.into_iter().chain(given).collect())
}
