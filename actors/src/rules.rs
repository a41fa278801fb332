//! Who may send a direct message (or a typing note) to whom: [`admit`], from what the store
//! says of the two, and [`check_direct`], which applies it to a send and counts a stranger's
//! quota.
//!
//! A user blocked by the recipient (the uni-app blacklist or a chat-room ban) is refused.
//! A friend of the recipient may always send. Anyone else follows the recipient's
//! `userset.chatset`, one rule for visitors and one for users: `0` friends only, `1` one
//! message, `2` unlimited. The older object form `{"sendCount":n,"needFollow":b}` is also
//! read: `needFollow: false` is unlimited, otherwise `sendCount` messages are allowed.

use parlor_storage::{MessageRecord, Role, Tx, UserRecord};
use serde_json::Value;

use crate::SendError;

/// What a recipient allows from someone who is not a friend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrangerRule {
    FriendsOnly,
    Limit(u64),
    Unlimited,
}

/// The rule of a recipient's `userset` for a sender of `role`. Missing or unreadable
/// settings mean friends only, the document's default.
pub fn stranger_rule(userset: &str, role: Role) -> StrangerRule {
    let key = if role == Role::Visitor { "visitor" } else { "user" };
    let Ok(v) = serde_json::from_str::<Value>(userset) else {
        return StrangerRule::FriendsOnly;
    };
    match &v["chatset"][key] {
        Value::Number(n) => match n.as_u64() {
            Some(1) => StrangerRule::Limit(1),
            Some(2) => StrangerRule::Unlimited,
            _ => StrangerRule::FriendsOnly,
        },
        Value::Object(o) => {
            if o.get("needFollow").and_then(Value::as_bool) == Some(false) {
                StrangerRule::Unlimited
            } else {
                match o.get("sendCount").and_then(Value::as_u64) {
                    Some(0) | None => StrangerRule::FriendsOnly,
                    Some(n) => StrangerRule::Limit(n),
                }
            }
        }
        _ => StrangerRule::FriendsOnly,
    }
}

/// What a recipient admits of a sender it has not blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Anything: a friend, or a recipient open to strangers.
    Always,
    /// Up to this many messages from a stranger.
    Quota(u64),
}

/// Whether a sender of `role` may reach user `to` (a message, a typing note), from what the
/// store says of the two: refused when `to` blocked the sender, always for a friend, else
/// by `to`'s `chatset`. `recipient` is read only for a stranger.
pub fn admit(
    to: u64,
    role: Role,
    (blocked, friend): (bool, bool),
    recipient: impl FnOnce() -> parlor_storage::Result<Option<UserRecord>>,
) -> parlor_storage::Result<Result<Admit, SendError>> {
    if blocked {
        return Ok(Err(SendError::Forbidden("the recipient has blocked you".into())));
    }
    if friend {
        return Ok(Ok(Admit::Always));
    }
    let Some(recipient) = recipient()? else {
        return Ok(Err(SendError::NotFound(format!("user {to} does not exist"))));
    };
    Ok(match stranger_rule(&recipient.userset, role) {
        StrangerRule::Unlimited => Ok(Admit::Always),
        StrangerRule::FriendsOnly => Err(SendError::Forbidden(
            "the recipient accepts messages from friends only".into(),
        )),
        StrangerRule::Limit(n) => Ok(Admit::Quota(n)),
    })
}

/// Checks, inside the write transaction, that `m.from_id` may send to `m.to_id`, and counts
/// the message against the quota of a non-friend. Writes nothing when it refuses.
pub fn check_direct(
    tx: &Tx<'_>,
    tenant: &str,
    m: &MessageRecord,
    role: Role,
) -> parlor_storage::Result<Result<(), SendError>> {
    let blocked = tx.blocked(tenant, m.to_id, m.from_id)?;
    let friend = !blocked && tx.friend(tenant, m.to_id, m.from_id)?.is_some();
    match admit(m.to_id, role, (blocked, friend), || tx.user(tenant, m.to_id))? {
        Err(e) => Ok(Err(e)),
        Ok(Admit::Always) => Ok(Ok(())),
        Ok(Admit::Quota(n)) => {
            if tx.stranger_sends(tenant, m.from_id, m.to_id)? >= n {
                return Ok(Err(SendError::Forbidden(format!(
                    "the recipient accepts {n} message(s) from non-friends; add them as a friend"
                ))));
            }
            tx.count_stranger_send(tenant, m.from_id, m.to_id)?;
            Ok(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms_of_chatset() {
        let numbers = r#"{"chatset":{"visitor":1,"user":2}}"#;
        assert_eq!(stranger_rule(numbers, Role::Visitor), StrangerRule::Limit(1));
        assert_eq!(stranger_rule(numbers, Role::User), StrangerRule::Unlimited);
        assert_eq!(stranger_rule(numbers, Role::Robot), StrangerRule::Unlimited);
        let objects = r#"{"chatset":{"visitor":{"sendCount":3,"needFollow":true},"user":{"sendCount":0,"needFollow":false}}}"#;
        assert_eq!(stranger_rule(objects, Role::Visitor), StrangerRule::Limit(3));
        assert_eq!(stranger_rule(objects, Role::User), StrangerRule::Unlimited);
        assert_eq!(
            stranger_rule(r#"{"chatset":{"user":0}}"#, Role::User),
            StrangerRule::FriendsOnly
        );
        assert_eq!(stranger_rule("not json", Role::User), StrangerRule::FriendsOnly);
        assert_eq!(stranger_rule("{}", Role::User), StrangerRule::FriendsOnly);
    }
}
