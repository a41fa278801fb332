//! Files: the files sent in a conversation, the files a user uploaded, and the file of one
//! message, completed from the upload metadata when the file is stored here.

use std::collections::HashMap;

use parlor_storage::{ChatType, FileRecord, MessageRecord, Snapshot};
use serde_json::{json, Value};

use super::{success, user, user_and_conversation, Result, Signed, State};
use crate::core::conversations;
use crate::error::ApiError;
use crate::files;

/// The file of a file message: `(url, name, size)` from its content.
fn file_of(m: &MessageRecord) -> Option<(String, String, u64)> {
    if !matches!(m.kind.as_str(), "file" | "image" | "video" | "audio") || m.revoked {
        return None;
    }
    let mut data: Value = serde_json::from_str(&m.data).ok()?;
    if let Value::String(text) = &data {
        data = serde_json::from_str(text).unwrap_or(Value::String(text.clone()));
    }
    let options: Value = serde_json::from_str(&m.options).unwrap_or(Value::Null);
    let pick = |v: &Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
    };
    let url = match &data {
        Value::String(s) => Some(s.clone()),
        other => pick(other, &["url", "src", "path"]).or_else(|| pick(&options["metadata"], &["src", "url"])),
    }?;
    let name = pick(&data, &["name", "filename", "fileName"])
        .unwrap_or_else(|| url.rsplit('/').next().unwrap_or_default().to_owned());
    let size = ["size", "fileSize"]
        .iter()
        .find_map(|k| data.get(*k).and_then(Value::as_u64))
        .unwrap_or(0);
    Some((url, name, size))
}

fn file_json(m: &MessageRecord, url: &str, name: &str, size: u64, users: &HashMap<u64, String>) -> Value {
    json!({
        "messageUid": m.id,
        "filename": name,
        "url": url,
        "size": size,
        "type": m.kind,
        "from": users.get(&m.from_id).cloned().unwrap_or_else(|| m.from_id.to_string()),
        "conversation": {"type": if m.chat_type == ChatType::Group { 1 } else { 0 }, "key": m.conv, "line": 0},
        "timestamp": m.create_time,
    })
}

fn count(body: &Signed) -> Result<usize> {
    let n = body.int("count")?.unwrap_or(20);
    if !(1..=1000).contains(&n) {
        return Err(ApiError::invalid("count must be 1 to 1000").into());
    }
    Ok(n as usize)
}

pub(super) async fn conversation_files(state: State, body: Signed) -> Result {
    let (tenant, me, conv) = user_and_conversation(&state, &body).await?;
    let limit = count(&body)?;
    let from_time = body.int("fromTime")?.unwrap_or(0).max(0) as u64;
    let oldest_first = match body.int("order")? {
        None | Some(0) => false,
        Some(1) => true,
        Some(_) => {
            return Err(ApiError::invalid("order must be 0 (newest first) or 1 (oldest first)").into())
        }
    };
    let (t, my_id) = (tenant.clone(), me.id);
    let (files, users) = state
        .read(move |s| {
            let floor = conversations::history_floor(s, &t, my_id, &conv).map_err(|e| match e {
                ApiError::Forbidden(_) => ApiError::NotFound("the user is not in this conversation".into()),
                other => other,
            })?;
            // fromTime bounds the scan: newest first lists files up to it, oldest first after it.
            let keep = |m: &MessageRecord| {
                file_of(m).is_some()
                    && (from_time == 0
                        || if oldest_first {
                            m.create_time >= from_time
                        } else {
                            m.create_time <= from_time
                        })
            };
            let messages = s.scan_messages(&t, &conv, floor, !oldest_first, keep, limit)?;
            let mut files = Vec::with_capacity(messages.len());
            for m in messages {
                if let Some(file) = stored_file_of(s, &t, &m)? {
                    files.push((m, file));
                }
            }
            let users = names(s, &t, files.iter().map(|(m, _)| m.from_id))?;
            Ok((files, users))
        })
        .await?;
    let list: Vec<Value> = files
        .iter()
        .map(|(m, (url, name, size))| file_json(m, url, name, *size, &users))
        .collect();
    Ok(success(Value::Array(list)))
}

fn names(
    s: &Snapshot,
    tenant: &str,
    ids: impl Iterator<Item = u64>,
) -> std::result::Result<HashMap<u64, String>, ApiError> {
    let mut out = HashMap::new();
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(e) = out.entry(id) {
            if let Some(u) = s.user(tenant, id)? {
                e.insert(u.uuid);
            }
        }
    }
    Ok(out)
}

/// The files a user uploaded (the metadata table), `offset`/`count`, newest first unless
/// `desc` is false.
pub(super) async fn user_files(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let me = user(&state, &tenant, &body.str("userId")?).await?;
    let offset = body.int("offset")?.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("offset must not be negative").into());
    }
    let desc = body.bool("desc")?.unwrap_or(true);
    let limit = count(&body)?;
    let (t, my_id) = (tenant.clone(), me.id);
    let files = state
        .read(move |s| Ok(s.files_of(&t, my_id, desc, offset as usize, limit)?))
        .await?;
    let list: Vec<Value> = files.iter().map(|f| upload_json(f, &me.uuid)).collect();
    Ok(success(Value::Array(list)))
}

/// The message type a content type stands for.
fn kind_of(content_type: &str) -> &'static str {
    match content_type.split('/').next() {
        Some("image") => "image",
        Some("video") => "video",
        Some("audio") => "audio",
        _ => "file",
    }
}

fn upload_json(f: &FileRecord, from: &str) -> Value {
    let filename = if f.original_name.is_empty() {
        f.path.rsplit('/').next().unwrap_or_default()
    } else {
        &f.original_name
    };
    json!({
        "fileId": f.id,
        "filename": filename,
        "url": files::served_url(&f.path),
        "size": f.size,
        "type": kind_of(&f.content_type),
        "contentType": f.content_type,
        "sha256": f.sha256,
        "width": f.width,
        "height": f.height,
        "from": from,
        "timestamp": f.created_ms,
    })
}

/// The file of a file message, its size and name completed from the metadata table when
/// the message points at a file stored here.
fn stored_file_of(
    s: &Snapshot,
    tenant: &str,
    m: &MessageRecord,
) -> std::result::Result<Option<(String, String, u64)>, ApiError> {
    let Some((url, name, size)) = file_of(m) else {
        return Ok(None);
    };
    let stored = match files::stored_path(&url, "") {
        Some(path) => s.file_by_path(&path)?.filter(|f| f.tenant == tenant),
        None => None,
    };
    Ok(Some(match stored {
        Some(f) if !f.original_name.is_empty() => (url, f.original_name, f.size),
        Some(f) => (url, name, f.size),
        None => (url, name, size),
    }))
}

pub(super) async fn file_get(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let id = body.str("messageUid")?;
    let (t, key) = (tenant.clone(), id.clone());
    let (m, file) = state
        .read(move |s| {
            let m = s
                .message_by_id(&t, &key)?
                .ok_or_else(|| ApiError::NotFound(format!("message {key} does not exist")))?;
            let file = stored_file_of(s, &t, &m)?;
            Ok((m, file))
        })
        .await?;
    let (url, name, size) = file.ok_or_else(|| ApiError::not_found(format!("message {id} is not a file")))?;
    Ok(success(
        json!({"messageUid": m.id, "filename": name, "url": url, "size": size, "type": m.kind}),
    ))
}
