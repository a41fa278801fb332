//! The records stored as values. Each implements [`Record`] with its
//! encoding version; a change of shape bumps the version.

use serde::{Deserialize, Serialize};

use crate::codec::Record;

/// What a user may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A registered user.
    #[default]
    User,
    /// A visitor identified by a device, with the reduced rights of the uni-app document.
    Visitor,
    /// A robot account created through the admin face.
    Robot,
}

impl Role {
    /// The name the faces use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Visitor => "visitor",
            Role::Robot => "robot",
        }
    }

    /// Parses the name the faces use.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "visitor" => Some(Role::Visitor),
            "robot" => Some(Role::Robot),
            _ => None,
        }
    }
}

/// A user of one tenant. The default is an empty user record with no id yet (`id` 0),
/// for callers that fill in what they have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: u64,
    pub uuid: String,
    pub tenant: String,
    pub username: String,
    /// argon2 PHC string; empty for accounts that cannot log in with a password.
    pub password_hash: String,
    pub nickname: String,
    pub avatar: String,
    pub role: Role,
    pub status: u8,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub gender: String,
    pub birthday: Option<String>,
    pub bio: Option<String>,
    pub location: Option<String>,
    pub website: Option<String>,
    /// The user's settings as the JSON text the uni-app face exchanges.
    pub userset: String,
    /// 1: friend requests need my approval; 0: anyone may add me directly.
    pub invite_confirm: u8,
    pub device_id: Option<String>,
    pub uniplatform: String,
    pub devicemodel: String,
    pub deviceos: String,
    pub devicebrand: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub last_login_ms: Option<u64>,
}

impl Record for UserRecord {
    const VERSION: u8 = 1;
}

/// What a user's tokens must pass beyond their signature, kept apart from the
/// [`UserRecord`] (one row for each user whose tokens were ever revoked, disabled or
/// deleted; none for the others). The server holds every row in memory and checks each
/// request against it; a row is never removed, so a deleted user's tokens stay refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    /// The user's tokens are refused, and logins too (`UserRecord::status` 0 beside it).
    pub disabled: bool,
    /// The account was deleted: its tokens are refused for good.
    pub deleted: bool,
    /// Bumped by every change of the gate: tokens issued here carry the generation they
    /// were issued under, and one issued under an older generation is refused (unless it
    /// is `kept_jti`).
    pub generation: u64,
    /// The token that survived the last revocation (the one that changed the password).
    pub kept_jti: Option<String>,
    /// When the user's tokens were last revoked (ms): an outside provider's token issued
    /// (`iat`) before it is refused.
    pub revoked_ms: u64,
}

impl Record for GateRecord {
    const VERSION: u8 = 1;
}

/// Whether a message belongs to a direct pair or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatType {
    Single,
    Group,
}

impl ChatType {
    /// The chat type a face names (`single` or `group`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "single" => Some(ChatType::Single),
            "group" => Some(ChatType::Group),
            _ => None,
        }
    }

    /// The name the faces use.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatType::Single => "single",
            ChatType::Group => "group",
        }
    }
}

/// One message of a conversation's timeline, stored once whatever the number of recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Globally unique message id (a UUID).
    pub id: String,
    /// Position in the conversation's timeline, from 1, without gaps in normal operation.
    pub seq: u64,
    /// Conversation key (`d:<low id>:<high id>` or `g:<group id>`).
    pub conv: String,
    pub chat_type: ChatType,
    pub from_id: u64,
    pub from_name: String,
    pub from_avatar: String,
    /// The recipient user, or the group.
    pub to_id: u64,
    pub to_name: String,
    pub to_avatar: String,
    /// Message type as the client named it: text, image, audio, video, file, or any string.
    pub kind: String,
    /// The content as JSON text, kept exactly as given.
    pub data: String,
    /// Extra options as JSON text, kept exactly as given.
    pub options: String,
    /// The client's id for this send, if it gave one (deduplication).
    pub cid: Option<String>,
    /// Server clock, milliseconds since the Unix epoch.
    pub create_time: u64,
    pub revoked: bool,
    /// For system notices: what happened (`revoke`, `groupCreate`, `groupJoin`, ...).
    pub action: Option<String>,
}

impl Record for MessageRecord {
    const VERSION: u8 = 1;
}

/// A member's position in one conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Highest seq written to one of the user's sessions (or acknowledged by a client).
    pub delivered: u64,
    /// Highest seq the user has read.
    pub read: u64,
}

/// My side of a friendship: what I call the friend and how I see them. A friendship is
/// mutual: both sides have a row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendRecord {
    /// Row id, unique in the tenant (the document's friend-table `id`).
    pub row_id: u64,
    /// My remark for the friend (the document's `nickname`).
    pub remark: String,
    /// 1: the friend may see my posts.
    pub friendlookme: u8,
    /// 1: I see the friend's posts.
    pub melookfriend: u8,
    pub star: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl Record for FriendRecord {
    const VERSION: u8 = 1;
}

/// State of a friend application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyStatus {
    Pending,
    Refuse,
    Agree,
    Ignore,
}

impl ApplyStatus {
    /// The name the faces use.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyStatus::Pending => "pending",
            ApplyStatus::Refuse => "refuse",
            ApplyStatus::Agree => "agree",
            ApplyStatus::Ignore => "ignore",
        }
    }

    /// Parses the name the faces use.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ApplyStatus::Pending),
            "refuse" => Some(ApplyStatus::Refuse),
            "agree" => Some(ApplyStatus::Agree),
            "ignore" => Some(ApplyStatus::Ignore),
            _ => None,
        }
    }
}

/// A request from `applicant` to become friends with `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRecord {
    pub id: u64,
    pub applicant: u64,
    pub target: u64,
    /// The applicant's note (the document's `nickname`).
    pub note: String,
    pub status: ApplyStatus,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl Record for ApplyRecord {
    const VERSION: u8 = 1;
}

/// A group of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: u64,
    pub uuid: String,
    /// The id an outside API names the group by (Chat21's `group-<uuid>`), if any.
    pub ext_id: Option<String>,
    pub owner: u64,
    pub name: String,
    pub avatar: String,
    /// The group notice (the document's `remark`).
    pub remark: String,
    /// 0: anyone invited (or asking) joins at once; 1: the owner approves.
    pub invite_confirm: u8,
    /// 1 active, 0 dissolved.
    pub status: u8,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl Record for GroupRecord {
    const VERSION: u8 = 1;
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The row id of the membership (the document's group-user `id`).
    pub row_id: u64,
    /// My nickname in the group.
    pub nickname: String,
    /// The group's head when I joined: I see history after it.
    pub joined_seq: u64,
    pub joined_ms: u64,
    /// Who brought me in (0 when I created the group).
    pub inviter: u64,
}

impl Record for MemberRecord {
    const VERSION: u8 = 1;
}

/// A pending request to join a group that needs the owner's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub user: u64,
    pub inviter: u64,
    pub desc: String,
    pub created_ms: u64,
}

impl Record for JoinRequest {
    const VERSION: u8 = 1;
}

/// A user's own view of one conversation: pinned, archived or deleted for them only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvState {
    pub pinned: bool,
    /// Archived at this head: hidden from the list until a newer message (0: not archived).
    pub archived_upto: u64,
    /// Deleted at this head: history up to it is hidden from this user, and the
    /// conversation leaves the list until a newer message (0: not deleted).
    pub deleted_upto: u64,
}

impl Record for ConvState {
    const VERSION: u8 = 1;
}

/// A user's presence as stored (the `presence` table): when their last session went and
/// whether they hide their presence and last seen from other users. Whether they are online
/// now is not stored: the Router's registry knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// Milliseconds since the epoch; 0 when the user never went offline.
    pub last_seen_ms: u64,
    pub hidden: bool,
}

impl Presence {
    /// The record of a stored row, or the default when there is none.
    pub fn from_row(row: Option<(u64, bool)>) -> Self {
        row.map(|(last_seen_ms, hidden)| Presence { last_seen_ms, hidden })
            .unwrap_or_default()
    }
}

/// A generic system setting of a tenant (the admin face's `modify_setting` ids that are no
/// policy): its value and description, kept as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingRecord {
    pub value: String,
    pub desc: String,
}

impl Record for SettingRecord {
    const VERSION: u8 = 1;
}

/// The metadata of an uploaded file. The bytes live in the object store under their
/// sha256 (identical content is stored once); each upload has its own record and path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Unique in the tenant, from 1.
    pub id: u64,
    pub tenant: String,
    /// The user who uploaded it.
    pub owner: u64,
    /// The served path under `/public/uploads/`, generated by the server.
    pub path: String,
    /// The name the client gave the file (shown only; never used as a path).
    pub original_name: String,
    /// The type detected from the content (magic numbers), e.g. `image/png`.
    pub content_type: String,
    pub size: u64,
    /// Lowercase hex sha256 of the content: the object's key and the `ETag`.
    pub sha256: String,
    /// Pixel size of an image or a video frame, when known.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_ms: u64,
}

impl Record for FileRecord {
    const VERSION: u8 = 1;
}

/// A webhook endpoint of a tenant: where its events are POSTed and with which secret they
/// are signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// Unique across tenants, from 1.
    pub id: u64,
    pub tenant: String,
    /// An `http` or `https` URL, checked when the endpoint was added.
    pub url: String,
    /// The HMAC-SHA256 key of the signatures.
    pub secret: String,
    /// The event names the endpoint gets (`message.sent`, ...).
    pub events: Vec<String>,
    pub created_ms: u64,
}

impl Record for WebhookRecord {
    const VERSION: u8 = 1;
}

/// One event for one endpoint, in the outbox (waiting) or among the dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Unique across the database, in commit order: the delivery id.
    pub id: u64,
    pub endpoint: u64,
    /// The event name (`message.sent`, ...).
    pub event: String,
    /// What orders it: events with the same key (a conversation) are delivered one after
    /// the other, in id order.
    pub order: String,
    /// The JSON body POSTed, exactly.
    pub body: String,
    pub created_ms: u64,
    /// Deliveries tried and failed.
    pub attempts: u32,
    /// Not tried again before this time (ms since the epoch).
    pub next_ms: u64,
    /// Why the last try failed.
    pub last_error: String,
}

impl Record for OutboxEvent {
    const VERSION: u8 = 1;
}
