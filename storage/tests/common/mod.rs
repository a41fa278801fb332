//! What the storage tests share: a message record that looks like a real one.

use parlor_storage::{ChatType, MessageRecord};

/// Message `seq` of `conv` from user `from` to user 2, with `cid` when given.
pub fn message(conv: &str, seq: u64, from: u64, cid: Option<&str>) -> MessageRecord {
    MessageRecord {
        id: format!("{conv}/{seq}"),
        seq,
        conv: conv.to_owned(),
        chat_type: if conv.starts_with("g:") {
            ChatType::Group
        } else {
            ChatType::Single
        },
        from_id: from,
        from_name: format!("user{from}"),
        from_avatar: String::new(),
        to_id: 2,
        to_name: "user2".to_owned(),
        to_avatar: String::new(),
        kind: "text".to_owned(),
        data: format!("{{\"text\":\"message {seq} of {conv}, padded to look like a real one\"}}"),
        options: "{}".to_owned(),
        cid: cid.map(str::to_owned),
        create_time: 1_700_000_000_000 + seq,
        revoked: false,
        action: None,
    }
}
