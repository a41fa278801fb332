//! Every message type that travels between the actors of this crate and the sessions.
//!
//! Direction session → router: [`Connect`], [`Disconnect`], [`SendMessage`], [`Advance`],
//! [`ReplayOffline`], [`Logout`], [`Kick`], [`Notify`], [`OnlineOf`], [`PresenceShown`]. Direction router → session: [`Deliver`], one enum;
//! heartbeat clock → session: [`Beat`].
//! Tenant: [`GetPolicy`], [`SetPolicy`], [`CreateGroup`], [`GroupOf`]; tenant → router:
//! [`PolicyChanged`]. Group: [`SendMessage`], [`GroupCommand`], [`GroupTyping`]; group →
//! router: [`FanOut`], [`Ephemeral`];
//! group → tenant: [`GroupStopped`].

use std::sync::Arc;

use actix::prelude::*;
use parlor_storage::{ChatType, GroupRecord, MessageRecord, Role};

use crate::{Policy, SendError};

/// A user of a tenant: the unit of the online registry and of the offline queues.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    pub tenant: Arc<str>,
    pub id: u64,
}

impl UserKey {
    pub fn new(tenant: &str, id: u64) -> Self {
        UserKey {
            tenant: Arc::from(tenant),
            id,
        }
    }
}

/// Identifies one WebSocket session (one device) for the life of the process.
pub type SessionId = u64;

/// One frame for a session, serialized once and shared by every recipient, with the
/// timeline position it carries (if any) so the session can report what it wrote.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub frame: crate::wire::Frame,
    /// `(conversation, seq)` of a timeline message; `None` for notices.
    pub at: Option<(Arc<str>, u64)>,
}

/// Heartbeat clock → session: time to check that the client was heard from lately and to
/// ping it. One clock per thread beats all the sessions of that thread (the server's
/// `ws::heartbeat`).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Beat;

/// Router → session.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum Deliver {
    /// One live frame.
    Push(Pushed),
    /// The messages that waited while the user was away, in seq order per conversation.
    Replay(Vec<Pushed>),
    /// The session must close (slow consumer, logout); its unwritten frames stay pending.
    Close { reason: &'static str },
    /// The server is shutting down: the session closes with 1001 (going away), so its
    /// client reconnects elsewhere at once; it reports what its client confirmed first.
    GoingAway,
}

/// Tell every session the server is going away (see [`Deliver::GoingAway`]); answers how
/// many were told.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct CloseAll;

/// A session joined: register it and push what waited.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub user: UserKey,
    pub session: SessionId,
    /// The token id the session authenticated with (logout closes its sessions).
    pub jti: Arc<str>,
    pub addr: Recipient<Deliver>,
}

/// A session ended. `written` is the last report of what it wrote to its socket.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub user: UserKey,
    pub session: SessionId,
    pub written: Vec<(Arc<str>, u64)>,
}

/// Where a send comes from; its reply goes back the way it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A WebSocket session: it gets an `ack`, the user's other sessions get the push.
    Session(SessionId),
    /// A REST call: every session of the sender gets the push.
    Rest,
}

/// The sender's or recipient's name and picture as messages carry them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party {
    pub id: u64,
    pub name: String,
    pub avatar: String,
}

/// Send a message. The reply is the stored message after its commit.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Arc<MessageRecord>, SendError>")]
pub struct SendMessage {
    pub tenant: Arc<str>,
    pub from: Party,
    /// The sender's role, for the recipient's rules about non-friends.
    pub from_role: Role,
    pub to: Party,
    pub chat_type: ChatType,
    /// Message type as the client named it.
    pub kind: String,
    /// Content as JSON text, kept as given.
    pub data: String,
    /// Options as JSON text, kept as given.
    pub options: String,
    pub cid: Option<String>,
    pub origin: Origin,
}

impl SendMessage {
    /// The message to store, in `conv` as `chat_type`, to `to`; its seq is stamped by the
    /// Writer.
    pub fn into_record(self, conv: String, chat_type: ChatType, to: Party) -> MessageRecord {
        MessageRecord {
            id: crate::message_id(),
            seq: 0,
            conv,
            chat_type,
            from_id: self.from.id,
            from_name: self.from.name,
            from_avatar: self.from.avatar,
            to_id: to.id,
            to_name: to.name,
            to_avatar: to.avatar,
            kind: self.kind,
            data: self.data,
            options: self.options,
            cid: self.cid,
            create_time: crate::now_ms(),
            revoked: false,
            action: None,
        }
    }
}

/// Move cursors forward: a session's report of what it wrote (or a client's `ack`), or a
/// read receipt.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Advance {
    pub user: UserKey,
    /// The reporting session, when it is one (its written positions stop being pending).
    pub session: Option<SessionId>,
    pub positions: Vec<(Arc<str>, u64)>,
    /// `true` moves the read cursor (and the delivered one with it where behind).
    pub read: bool,
    /// With `read`: tell the other side (the peer, or the senders in a group) with a read
    /// receipt. `false` for a reader the peer has blocked.
    pub receipt: bool,
}

/// Push what waits for a user to the user's online sessions now
/// (`chatGetmessageOffLine`).
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct ReplayOffline {
    pub user: UserKey,
}

/// A token was revoked: close the sessions that authenticated with it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Logout {
    pub user: UserKey,
    pub jti: Arc<str>,
}

/// A user's tokens were revoked (a password change, a kick, a disabled or deleted
/// account): close every session of the user but those of the token `keep`, with the close
/// reason `reason`. `forget`: the user is gone, drop what waits for them too.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Kick {
    pub user: UserKey,
    pub keep: Option<Arc<str>>,
    pub reason: &'static str,
    pub forget: bool,
}

/// Push a notice (not a timeline message) to every online session of a user; a user who
/// is away does not get it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Notify {
    pub user: UserKey,
    pub frame: crate::wire::Frame,
}

/// How many sessions a user has online (for status routes and tests).
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct OnlineCount {
    pub user: UserKey,
}

/// Whether each of `ids` of `tenant` counts as online now: a session connected, or the
/// last one gone less than the presence grace ago. Answered in the order of `ids`.
#[derive(Message, Debug)]
#[rtype(result = "Vec<bool>")]
pub struct OnlineOf {
    pub tenant: Arc<str>,
    pub ids: Vec<u64>,
}

/// A user changed whether they hide their presence: tell their audience what it may see
/// now (offline without a last seen when hidden, the truth when shown).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PresenceShown {
    pub user: UserKey,
}

/// Group → Router: offer a frame outside any timeline (a typing note) to the online
/// sessions of a group's `users` of `tenant` but `skip`'s (its sender); nothing is kept for
/// a user without a session, and a session that cannot take it now does not get it (one
/// user's is a [`Notify`]).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Ephemeral {
    pub tenant: Arc<str>,
    pub users: Arc<[u64]>,
    pub skip: u64,
    pub frame: crate::wire::Frame,
}

/// A member's typing note for a group's online members; refused to a non-member, like a
/// send.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), SendError>")]
pub struct GroupTyping {
    pub from: u64,
    pub frame: crate::wire::Frame,
}

/// Ask a Tenant for its policy.
#[derive(Message, Debug)]
#[rtype(result = "Policy")]
pub struct GetPolicy;

/// Replace a Tenant's policy; it takes effect for the next message.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetPolicy(pub Policy);

/// Replace a Tenant's webhook subscriptions (its [`Policy::webhooks`]); they take effect
/// for the next message.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetHooks(pub Arc<[crate::hooks::HookSub]>);

/// Tenant → Router: the policy changed.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PolicyChanged {
    pub tenant: Arc<str>,
    pub policy: Arc<Policy>,
}

/// Ask the Router for the Tenant actor of an APP_ID (started on first use).
#[derive(Message, Debug)]
#[rtype(result = "Addr<crate::Tenant>")]
pub struct TenantOf(pub Arc<str>);

/// Group → Router: offer a committed group message to the members' sessions; members
/// without a session keep it pending. The member list is shared, not copied.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FanOut {
    pub tenant: Arc<str>,
    pub members: Arc<[u64]>,
    pub pushed: Pushed,
    /// The sending session, which gets an `ack` instead.
    pub exclude: Option<SessionId>,
}

/// Create a group: `owner` and `members` join, a `groupCreate` notice opens its timeline.
#[derive(Message, Debug)]
#[rtype(result = "Result<GroupRecord, SendError>")]
pub struct CreateGroup {
    pub owner: Party,
    pub members: Vec<Party>,
    /// The name; built from the members' names when absent.
    pub name: Option<String>,
    /// An outside id to find it by (Chat21 `group-<uuid>`).
    pub ext_id: Option<String>,
}

/// Find (starting it when needed) the actor of a group.
#[derive(Message, Debug)]
#[rtype(result = "Result<Addr<crate::Group>, SendError>")]
pub struct GroupOf(pub u64);

/// Group → Tenant: the actor stopped (idle, or the group was dissolved).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct GroupStopped(pub u64);

/// A change to a group, by `by`. The Group checks who may do it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<GroupOutcome, SendError>")]
pub struct GroupCommand {
    pub by: Party,
    pub op: GroupOp,
}

/// What a [`GroupCommand`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOp {
    /// Owner: rename the group.
    Rename(String),
    /// Owner: set the group notice.
    SetRemark(String),
    /// Member: set my nickname in the group.
    SetNickname(String),
    /// Owner: 0 lets invited users (and users asking) join at once, 1 needs approval.
    SetJoinRule(u8),
    /// The owner adds at once; a member's invitation or a user's own request follows the
    /// join rule.
    Invite { user: Party, desc: String },
    /// Owner: answer a pending request of `user` (named in the notice of their joining).
    Approve { user: Party, agree: bool },
    /// Owner: remove a member (named in the notice of their removal).
    Remove(Party),
    /// Owner: dissolve the group; member: quit it.
    Leave,
    /// Owner: make the members exactly these (the owner stays).
    ReplaceMembers(Vec<Party>),
}

/// What a [`GroupCommand`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOutcome {
    Done,
    /// The user is a member now.
    Joined,
    /// The request waits for the owner.
    Requested,
    /// The member left.
    Quit,
    /// The group no longer exists.
    Dissolved,
}

/// Revoke a message (to the Router for a direct conversation, to the Group for a group's).
/// The reply is what the revoke wrote: the message, now its placeholder, and the notice.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Arc<Revoked>, SendError>")]
pub struct Revoke {
    pub tenant: Arc<str>,
    pub by: Party,
    pub id: String,
}

/// A revoke, once committed: the message, now its placeholder (same id, `seq` and
/// `create_time`), the notice appended to the timeline, and the group of a group message.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub message: MessageRecord,
    pub notice: MessageRecord,
    pub group: Option<GroupRecord>,
}

/// Router → Tenant → Group: a member read the group up to `seq` (for read receipts).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct GroupRead {
    pub group: u64,
    pub user: u64,
    pub seq: u64,
}
