//! What the storage tests share: a message record that looks like a real one, and a store
//! whose effect log is kept in memory to feed a copy.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::path::Path;
use std::sync::{Arc, Mutex};

use parlor_storage::{ChatType, Effect, EffectLog, MessageRecord, Store, WriterConfig};

/// The batches of effects a store committed, in order.
pub type Logged = Arc<Mutex<Vec<Vec<Effect>>>>;

/// A store at `path` whose effect log keeps every committed batch in the returned list.
pub fn logging_store(path: &Path) -> (Store, Logged) {
    let logged: Logged = Arc::default();
    let l = logged.clone();
    let config = WriterConfig {
        effect_log: Some(EffectLog::new(move |effects| {
            let mut l = l.lock().unwrap();
            l.push(effects.to_vec());
            Ok(l.len() as u64)
        })),
        ..WriterConfig::default()
    };
    (Store::open(path, config).expect("open store"), logged)
}

/// Applies every batch logged so far to `copy`, in one write, as a follower of the log would.
pub fn apply_logged(copy: &Store, logged: &Logged) {
    let batches = logged.lock().unwrap().clone();
    copy.writer()
        .write_blocking(move |tx| {
            for batch in &batches {
                tx.apply_effects(batch)?;
            }
            Ok(())
        })
        .unwrap();
}

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
