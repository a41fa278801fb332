//! Files: the file messages of a conversation, the file messages a user sent, and the file
//! of one message, completed from the upload metadata when the file is stored here. A
//! message is named by its number (`messageUid`, see [`messages::message_number`]) or its
//! id string (`messageId`).

use std::collections::HashMap;

use parlor_storage::{ChatType, FileRecord, MessageRecord, Snapshot};
use serde_json::{json, Value};

use super::{success, user, user_and_conversation, Result, Signed, State};
use crate::core::{conversations, messages};
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

/// A file message as the lists show it: `messageUid` its number (its id string when it
/// has none), `messageId` its id string, and the upload's metadata when stored here.
fn file_json(
    m: &MessageRecord,
    file: &StoredFile,
    numbers: &HashMap<String, u64>,
    users: &HashMap<u64, String>,
) -> Value {
    let mut out = json!({
        "messageUid": uid(m, numbers),
        "messageId": m.id,
        "filename": file.name,
        "url": file.url,
        "size": file.size,
        "type": m.kind,
        "from": users.get(&m.from_id).cloned().unwrap_or_else(|| m.from_id.to_string()),
        "conversation": {"type": if m.chat_type == ChatType::Group { 1 } else { 0 }, "key": m.conv, "line": 0},
        "timestamp": m.create_time,
    });
    if let (Some(f), Value::Object(map)) = (&file.upload, &mut out) {
        map.insert("fileId".into(), json!(f.id));
        map.insert("contentType".into(), json!(f.content_type));
        map.insert("sha256".into(), json!(f.sha256));
        map.insert("width".into(), json!(f.width));
        map.insert("height".into(), json!(f.height));
    }
    out
}

/// The `messageUid` of a message: its number, else its id string.
fn uid(m: &MessageRecord, numbers: &HashMap<String, u64>) -> Value {
    numbers
        .get(&m.conv)
        .and_then(|n| messages::message_number(*n, m.seq))
        .map_or_else(|| json!(m.id), |n| json!(n))
}

/// The numbers of the conversations of `files` (given to those that have none yet).
async fn numbers_of(
    state: &State,
    tenant: &str,
    files: &[(MessageRecord, StoredFile)],
) -> Result<HashMap<String, u64>> {
    let mut convs: Vec<String> = files.iter().map(|(m, _)| m.conv.clone()).collect();
    convs.sort();
    convs.dedup();
    Ok(conversations::numbers(state, tenant, convs).await?)
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
    let numbers = numbers_of(&state, &tenant, &files).await?;
    let list: Vec<Value> = files
        .iter()
        .map(|(m, file)| file_json(m, file, &numbers, &users))
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

/// The file messages a user sent, in every conversation the user can see, `offset`/`count`,
/// newest first unless `desc` is false.
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
    let (files, users) = state
        .read(move |s| {
            let wanted = offset as usize + limit;
            let mine = |m: &MessageRecord| m.from_id == my_id && file_of(m).is_some();
            let mut sent = Vec::new();
            for (conv, _) in s.cursors_of(&t, my_id)? {
                let Ok(floor) = conversations::history_floor(s, &t, my_id, &conv) else {
                    continue;
                };
                sent.extend(s.scan_messages(&t, &conv, floor, desc, mine, wanted)?);
            }
            sent.sort_by(|a, b| (a.create_time, &a.id).cmp(&(b.create_time, &b.id)));
            if desc {
                sent.reverse();
            }
            let mut files = Vec::new();
            for m in sent.into_iter().skip(offset as usize).take(limit) {
                if let Some(file) = stored_file_of(s, &t, &m)? {
                    files.push((m, file));
                }
            }
            let users = names(s, &t, files.iter().map(|(m, _)| m.from_id))?;
            Ok((files, users))
        })
        .await?;
    let numbers = numbers_of(&state, &tenant, &files).await?;
    let list: Vec<Value> = files
        .iter()
        .map(|(m, file)| file_json(m, file, &numbers, &users))
        .collect();
    Ok(success(Value::Array(list)))
}

/// The file of a file message.
struct StoredFile {
    url: String,
    name: String,
    size: u64,
    /// The upload's metadata when the file is stored here (same tenant).
    upload: Option<FileRecord>,
}

/// The file of a file message, its size and name completed from the metadata table when
/// the message points at a file stored here.
fn stored_file_of(
    s: &Snapshot,
    tenant: &str,
    m: &MessageRecord,
) -> std::result::Result<Option<StoredFile>, ApiError> {
    let Some((url, name, size)) = file_of(m) else {
        return Ok(None);
    };
    let upload = match files::stored_path(&url, "") {
        Some(path) => s.file_by_path(&path)?.filter(|f| f.tenant == tenant),
        None => None,
    };
    Ok(Some(match upload {
        Some(f) => StoredFile {
            url,
            name: if f.original_name.is_empty() {
                name
            } else {
                f.original_name.clone()
            },
            size: f.size,
            upload: Some(f),
        },
        None => StoredFile {
            url,
            name,
            size,
            upload: None,
        },
    }))
}

/// `file/get`: the file of the message `messageUid` names, by its number (a JSON number or
/// digits) or its id string.
pub(super) async fn file_get(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let id = body.str("messageUid")?;
    let number = id.parse::<u64>().ok();
    let (t, key) = (tenant.clone(), id.clone());
    let (m, file) = state
        .read(move |s| {
            let found = match number {
                Some(n) => messages::message_by_number(s, &t, n)?,
                None => s.message_by_id(&t, &key)?,
            };
            let m = found.ok_or_else(|| ApiError::NotFound(format!("message {key} does not exist")))?;
            let file = stored_file_of(s, &t, &m)?;
            Ok((m, file))
        })
        .await?;
    let file = file.ok_or_else(|| ApiError::not_found(format!("message {id} is not a file")))?;
    let numbers = conversations::numbers(&state, &tenant, vec![m.conv.clone()]).await?;
    Ok(success(json!({
        "messageUid": uid(&m, &numbers),
        "messageId": m.id,
        "filename": file.name,
        "url": file.url,
        "size": file.size,
        "type": m.kind,
    })))
}
