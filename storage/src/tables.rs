//! The redb tables. Keys are native tuples whose first element is the tenant, so one
//! tenant's rows are contiguous and a range never crosses into another tenant.

use redb::{Database, ReadableTable, TableDefinition};

use crate::Result;

/// Counters (`next_user_id`, ...).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `(tenant, user id)` → [`UserRecord`](crate::UserRecord).
pub const USERS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("users");
/// `(tenant, username)` → user id.
pub const USERNAMES: TableDefinition<(&str, &str), u64> = TableDefinition::new("usernames");
/// `(tenant, uuid)` → user id.
pub const USER_UUIDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("user_uuids");
/// `(tenant, device id)` → the visitor user bound to that device.
pub const DEVICES: TableDefinition<(&str, &str), u64> = TableDefinition::new("devices");
/// `(tenant, conversation, seq)` → [`MessageRecord`](crate::MessageRecord).
pub const MESSAGES: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("messages");
/// `(tenant, message id)` → `(conversation, seq)`.
pub const MESSAGE_IDS: TableDefinition<(&str, &str), (&str, u64)> = TableDefinition::new("message_ids");
/// `(tenant, sender, client id)` → `(conversation, seq)`: the client ids of earlier versions,
/// which kept every one forever. Still consulted when [`RECENT_CIDS`] has no row; no longer
/// written, and a user's rows go with the user.
pub const DEDUP: TableDefinition<(&str, u64, &str), (&str, u64)> = TableDefinition::new("dedup");
/// `(stored at ms, tenant, sender, client id)` → `(conversation, seq)`: the client ids used
/// within the dedup window (`storage.dedup_window_secs`), so the same `cid` stores one
/// message. Led by the time, so the rows of a commit are neighbours at the table's end; rows
/// past the window are removed as sends go on (see the `recent` module).
pub const RECENT_CIDS: TableDefinition<(u64, &str, u64, &str), (&str, u64)> =
    TableDefinition::new("recent_cids");
/// `(tenant, user, conversation)` → `(delivered, read)`.
pub const CURSORS: TableDefinition<(&str, u64, &str), (u64, u64)> = TableDefinition::new("cursors");
/// `(tenant, user, friend)` → [`FriendRecord`](crate::FriendRecord): my side of a friendship.
pub const FRIENDS: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("friends");
/// `(tenant, application id)` → [`ApplyRecord`](crate::ApplyRecord).
pub const APPLIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("applies");
/// `(tenant, target, application id)`: the applications sent to a user.
pub const APPLIES_TO: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("applies_to");
/// `(tenant, applicant, target)` → the latest application between them.
pub const APPLY_PAIRS: TableDefinition<(&str, u64, u64), u64> = TableDefinition::new("apply_pairs");
/// `(tenant, blocker, blocked)` → when: the blocked user's messages to the blocker are refused.
pub const BLOCKS: TableDefinition<(&str, u64, u64), u64> = TableDefinition::new("blocks");
/// `(tenant, sender, recipient)` → messages sent while not friends (the `chatset` quota).
pub const STRANGER_SENDS: TableDefinition<(&str, u64, u64), u64> = TableDefinition::new("stranger_sends");
/// `(tenant, group)` → [`GroupRecord`](crate::GroupRecord).
pub const GROUPS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("groups");
/// `(tenant, outside id)` → group id (Chat21's `group-<uuid>`).
pub const GROUP_EXT_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("group_ext_ids");
/// `(tenant, group, user)` → [`MemberRecord`](crate::MemberRecord).
pub const MEMBERS: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("members");
/// `(tenant, user, group)`: the groups of a user.
pub const USER_GROUPS: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("user_groups");
/// `(tenant, group, user)` → [`JoinRequest`](crate::JoinRequest).
pub const JOIN_REQUESTS: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("join_requests");
/// `(tenant, user, conversation)` → [`ConvState`](crate::ConvState).
pub const CONV_STATES: TableDefinition<(&str, u64, &str), &[u8]> = TableDefinition::new("conv_states");
/// `(tenant, conversation)` → its number (the chat-room face names conversations by number).
pub const CONV_NUMS: TableDefinition<(&str, &str), u64> = TableDefinition::new("conv_nums");
/// `(tenant, number)` → conversation.
pub const NUM_CONVS: TableDefinition<(&str, u64), &str> = TableDefinition::new("num_convs");
/// `(tenant, user, scope, key)` → value: a user's settings (the admin face's).
pub const USER_SETTINGS: TableDefinition<(&str, u64, u32, &str), &str> =
    TableDefinition::new("user_settings");
/// `(tenant, setting id)` → value: a tenant's policy overrides (the admin face's system
/// settings).
pub const TENANT_SETTINGS: TableDefinition<(&str, u32), &str> = TableDefinition::new("tenant_settings");
/// `(tenant, setting id)` → [`SettingRecord`](crate::SettingRecord): a tenant's generic
/// system settings (ids that are no policy), with their descriptions.
pub const SYSTEM_SETTINGS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("system_settings");
/// `(tenant, file id)` → [`FileRecord`](crate::FileRecord): an uploaded file's metadata.
pub const FILES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("files");
/// `(tenant, owner, file id)`: the files a user uploaded.
pub const USER_FILES: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("user_files");
/// Served path (`Diy/chatImgs/20250310/1710038202074_99501763.png`) → `(tenant, file id)`.
/// Paths are generated by the server and unique across tenants: a public URL names no
/// tenant, so this index is the one table not keyed by tenant first.
pub const FILE_PATHS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("file_paths");
/// Revoked token ids → their expiry (seconds since the epoch).
pub const REVOKED_TOKENS: TableDefinition<&str, u64> = TableDefinition::new("revoked_tokens");
/// `(tenant, user id)` → [`GateRecord`](crate::GateRecord): what the user's tokens must pass
/// (revocations, disabled, deleted). Not in exports: a copy is another database, on which
/// no token issued here is accepted.
pub const USER_GATES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("user_gates");
/// Admin request nonces seen → until when they are remembered (ms since the epoch), so a
/// signed request cannot be replayed after a restart within its window. Transient: not in
/// exports.
pub const ADMIN_NONCES: TableDefinition<&str, u64> = TableDefinition::new("admin_nonces");

/// `(tenant, endpoint id)` → [`WebhookRecord`](crate::WebhookRecord): a webhook endpoint
/// (its URL, secret and event filter). Endpoint ids are unique across tenants.
pub const WEBHOOKS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("webhooks");
/// `(tenant, endpoint id, event id)` → [`OutboxEvent`](crate::OutboxEvent): an event waiting
/// to be delivered to an endpoint, written in the transaction of what it tells. Event ids
/// grow in commit order, so one conversation's events are in its order.
pub const WEBHOOK_OUTBOX: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("webhook_outbox");
/// `(tenant, endpoint id, event id)` → [`OutboxEvent`](crate::OutboxEvent): events given up
/// after `webhooks.max_attempts` failed deliveries (the dead letters).
pub const WEBHOOK_DEAD: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("webhook_dead");
/// `(tenant, user)` → `(last seen ms, hidden)`: when the user's last session went (0: not
/// yet) and whether the user hides presence and last seen from others. Only users who went
/// offline once or changed the setting have a row.
pub const PRESENCE: TableDefinition<(&str, u64), (u64, bool)> = TableDefinition::new("presence");

/// The table of conversation heads of earlier files, deleted at open: a head is the last
/// seq of its timeline (see [`last_seq`]).
const OLD_HEADS: TableDefinition<(&str, &str), u64> = TableDefinition::new("heads");

/// The head of a conversation: the seq of the last message of its timeline in `messages`
/// (0 when it has none). Messages are never removed, so the head never moves back.
pub fn last_seq(
    messages: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    tenant: &str,
    conv: &str,
) -> Result<u64> {
    let last = messages
        .range((tenant, conv, 0)..=(tenant, conv, u64::MAX))?
        .next_back();
    Ok(match last {
        Some(entry) => entry?.0.value().2,
        None => 0,
    })
}

/// The `META` key of the position, in the replicated log of cluster mode, of the last
/// record whose effects this file holds; written in the transaction of those effects (not
/// an effect itself: every copy writes its own). Absent on a single node.
pub const LOG_APPLIED: &str = "log_applied";

/// The `META` key of the database's id: a random number given when the file is created.
pub const DATABASE_ID: &str = "database_id";

/// A random, non-zero id (the standard library's randomly keyed hasher over the time and
/// the process).
fn fresh_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// Creates every table so that read transactions never meet a missing one, and gives a
/// new database its id.
pub(crate) fn create_all(db: &Database) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        if meta.get(DATABASE_ID)?.is_none() {
            meta.insert(DATABASE_ID, fresh_id())?;
        }
    }
    txn.open_table(USERS)?;
    txn.open_table(USERNAMES)?;
    txn.open_table(USER_UUIDS)?;
    txn.open_table(DEVICES)?;
    txn.open_table(MESSAGES)?;
    txn.open_table(MESSAGE_IDS)?;
    txn.open_table(DEDUP)?;
    txn.open_table(RECENT_CIDS)?;
    // Files of earlier versions kept each conversation's head in a table of its own; the
    // head is now the timeline's last seq.
    txn.delete_table(OLD_HEADS)?;
    txn.open_table(CURSORS)?;
    txn.open_table(REVOKED_TOKENS)?;
    txn.open_table(ADMIN_NONCES)?;
    txn.open_table(FRIENDS)?;
    txn.open_table(APPLIES)?;
    txn.open_table(APPLIES_TO)?;
    txn.open_table(APPLY_PAIRS)?;
    txn.open_table(BLOCKS)?;
    txn.open_table(STRANGER_SENDS)?;
    txn.open_table(GROUPS)?;
    txn.open_table(USER_SETTINGS)?;
    txn.open_table(TENANT_SETTINGS)?;
    txn.open_table(SYSTEM_SETTINGS)?;
    txn.open_table(CONV_STATES)?;
    txn.open_table(CONV_NUMS)?;
    txn.open_table(NUM_CONVS)?;
    txn.open_table(GROUP_EXT_IDS)?;
    txn.open_table(MEMBERS)?;
    txn.open_table(USER_GROUPS)?;
    txn.open_table(JOIN_REQUESTS)?;
    txn.open_table(FILES)?;
    txn.open_table(USER_FILES)?;
    txn.open_table(FILE_PATHS)?;
    txn.open_table(USER_GATES)?;
    txn.open_table(WEBHOOKS)?;
    txn.open_table(WEBHOOK_OUTBOX)?;
    txn.open_table(WEBHOOK_DEAD)?;
    txn.open_table(PRESENCE)?;
    txn.commit()?;
    Ok(())
}
