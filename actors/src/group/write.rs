//! The Writer side of a group: the transactions of a change, of a message, and the
//! notice records they append.

use parlor_storage::{ChatType, Cursor, GroupRecord, MemberRecord, MessageRecord, Tx};
use serde_json::json;

use super::plan::Change;
use crate::messages::Party;

/// A `systemNotice` message of a group's timeline.
pub fn notice_record(
    group: &GroupRecord,
    conv: &str,
    by: &Party,
    action: &str,
    text: String,
) -> MessageRecord {
    MessageRecord {
        id: crate::message_id(),
        seq: 0,
        conv: conv.to_owned(),
        chat_type: ChatType::Group,
        from_id: by.id,
        from_name: by.name.clone(),
        from_avatar: by.avatar.clone(),
        to_id: group.id,
        to_name: group.name.clone(),
        to_avatar: group.avatar.clone(),
        kind: "systemNotice".into(),
        data: json!({"data": text, "dataType": false, "otherData": null}).to_string(),
        options: "{}".into(),
        cid: None,
        create_time: crate::now_ms(),
        revoked: false,
        action: Some(action.to_owned()),
    }
}

/// Applies a [`Change`] by `by` in one transaction, with its `group.members` webhook event
/// when members joined or left; returns the stored notice.
pub(super) fn apply(
    tx: &Tx<'_>,
    tenant: &str,
    (gid, conv): (u64, &str),
    by: u64,
    change: Change,
    notice: Option<MessageRecord>,
) -> parlor_storage::Result<Option<MessageRecord>> {
    let action = change.notice.as_ref().map_or("groupMembers", |n| n.action);
    let dissolved = change.record.as_ref().is_some_and(|r| r.status == 0);
    crate::hooks::group_members(
        tx,
        tenant,
        crate::hooks::MembersChange {
            group: gid,
            conv,
            action,
            by,
            joined: &change.joiners,
            left: &change.leavers,
            dissolved,
        },
    )?;
    if let Some(mut r) = change.record {
        tx.put_group(tenant, &mut r)?;
    }
    let head = tx.head(tenant, conv)?;
    let now = crate::now_ms();
    for (user, inviter) in &change.joiners {
        let mut m = MemberRecord {
            row_id: 0,
            nickname: String::new(),
            joined_seq: head,
            joined_ms: now,
            inviter: *inviter,
        };
        tx.put_member(tenant, gid, *user, &mut m)?;
        tx.set_cursor(
            tenant,
            *user,
            conv,
            Cursor {
                delivered: head,
                read: head,
            },
        )?;
        tx.remove_join_request(tenant, gid, *user)?;
    }
    for user in &change.leavers {
        tx.remove_member(tenant, gid, *user, conv)?;
    }
    if let Some(r) = &change.request {
        tx.put_join_request(tenant, gid, r)?;
    }
    if let Some(user) = change.drop_request {
        tx.remove_join_request(tenant, gid, user)?;
    }
    if let Some((user, nickname)) = change.nickname {
        if let Some(mut m) = tx.member(tenant, gid, user)? {
            m.nickname = nickname;
            tx.put_member(tenant, gid, user, &mut m)?;
        }
    }
    match notice {
        Some(mut n) => {
            n.seq = head + 1;
            tx.append_message(tenant, &n)?;
            // The actor's own notice counts as seen by them.
            tx.advance_cursor(tenant, n.from_id, conv, 0, n.seq)?;
            Ok(Some(n))
        }
        None => Ok(None),
    }
}

/// The write of one group message: deduplicate, stamp the seq, append, move the sender's
/// cursors over it, and queue the `message.sent` event for the `hooks` endpoints with the
/// members (their online state is not known to the group: `null`).
pub(super) fn append_group(
    tx: &Tx<'_>,
    tenant: &str,
    mut m: MessageRecord,
    hooks: (&[u64], &[u64]),
) -> parlor_storage::Result<(MessageRecord, bool)> {
    if let Some(cid) = &m.cid {
        if let Some(existing) = tx.dedup(tenant, m.from_id, cid)? {
            return Ok((existing, false));
        }
    }
    tx.append_next(tenant, &mut m)?;
    tx.pass_own_message(tenant, m.from_id, &m.conv, m.seq, false)?;
    let (endpoints, members) = hooks;
    if !endpoints.is_empty() {
        let recipients: Vec<(u64, Option<bool>)> = members
            .iter()
            .filter(|&&u| u != m.from_id)
            .map(|&u| (u, None))
            .collect();
        crate::hooks::message_sent(tx, tenant, endpoints, &m, &recipients)?;
    }
    Ok((m, true))
}
