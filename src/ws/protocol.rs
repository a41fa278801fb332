//! The client frames of the WebSocket protocol. Server frames are built in
//! `parlor_actors::wire` (shared with the Router, which serializes each message once).
//!
//! Client → server, one JSON object per text frame, told apart by `type`:
//! - `{"type":"ping"}` → `{"type":"pong",...}`
//! - `{"type":"send","cid":"c1","to":2,"chatType":"single","msgType":"text","data":...,"options":{}}`
//!   → `{"type":"ack","cid":"c1","data":{message}}`
//! - `{"type":"ack","conversation":"d:1:2","seq":5}` moves the delivered cursor.
//! - `{"type":"read","conversation":"d:1:2","seq":5}` moves the read cursor.
//! - `{"type":"revoke","cid":"c2","id":"<message id>"}` → `{"type":"ack","cid":"c2","data":{revoke}}`
//!   (the revoke answer of `POST /api/chat/revokeMessage`).
//! - `{"type":"typing","to":2,"chatType":"single","state":"start"}` (`state` `start` by
//!   default, or `stop`) → a `typing` frame to the peer's or the group's online sessions;
//!   no answer unless refused.

use parlor_storage::ChatType;
use serde_json::{Map, Value};

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Ping,
    Send(SendFrame),
    Ack {
        conversation: String,
        seq: u64,
    },
    Read {
        conversation: String,
        seq: u64,
    },
    Revoke {
        cid: Option<String>,
        id: String,
    },
    Typing {
        cid: Option<String>,
        to: u64,
        chat_type: ChatType,
        stop: bool,
    },
}

/// The fields of a `send` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SendFrame {
    pub cid: Option<String>,
    pub to: u64,
    pub chat_type: ChatType,
    pub msg_type: String,
    pub data: Value,
    pub options: Option<Value>,
    /// The picture of an image or video message (`src`, `width`, `height`), kept in the
    /// options as `metadata`.
    pub metadata: Option<Value>,
}

/// Why a frame was refused: a snake_case code, a human message and the frame's `cid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub cid: Option<String>,
    pub code: &'static str,
    pub msg: String,
}

impl FrameError {
    /// The `error` frame of an operation's refusal: its code from the one table of
    /// [`ApiError::code`](crate::error::ApiError::code).
    pub fn of(cid: Option<String>, e: &crate::error::ApiError) -> Self {
        FrameError {
            cid,
            code: e.code(),
            msg: e.to_string(),
        }
    }
}

fn err(cid: &Option<String>, code: &'static str, msg: impl Into<String>) -> FrameError {
    FrameError {
        cid: cid.clone(),
        code,
        msg: msg.into(),
    }
}

fn u64_field(obj: &Map<String, Value>, names: &[&str], cid: &Option<String>) -> Result<u64, FrameError> {
    let name = names[0];
    let v = names
        .iter()
        .find_map(|n| obj.get(*n))
        .ok_or_else(|| err(cid, "missing_field", format!("{name} is required")))?;
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        err(
            cid,
            "wrong_type",
            format!("{name} must be a non-negative integer"),
        )
    })
}

fn str_field(
    obj: &Map<String, Value>,
    name: &str,
    cid: &Option<String>,
) -> Result<Option<String>, FrameError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err(cid, "wrong_type", format!("{name} must be a string"))),
    }
}

/// A frame's `chatType`: `single` when absent.
fn chat_type_of(name: Option<String>, cid: &Option<String>) -> Result<ChatType, FrameError> {
    match name {
        None => Ok(ChatType::Single),
        Some(name) => {
            ChatType::parse(&name).ok_or_else(|| err(cid, "invalid", "chatType must be single or group"))
        }
    }
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<ClientFrame, FrameError> {
    let none = None;
    let value: Value =
        serde_json::from_str(text).map_err(|e| err(&none, "bad_json", format!("frame is not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(err(&none, "bad_frame", "frame must be a JSON object"));
    };
    let cid = match obj.get("cid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(err(&none, "wrong_type", "cid must be a string")),
    };
    let kind =
        str_field(&obj, "type", &cid)?.ok_or_else(|| err(&cid, "missing_field", "type is required"))?;
    match kind.as_str() {
        "ping" => Ok(ClientFrame::Ping),
        "send" => {
            let to = u64_field(&obj, &["to", "sendto_id"], &cid)?;
            let chat_type = str_field(&obj, "chatType", &cid)?;
            let msg_type = str_field(&obj, "msgType", &cid)?.unwrap_or_else(|| "text".into());
            let data = obj
                .get("data")
                .cloned()
                .filter(|v| !v.is_null())
                .ok_or_else(|| err(&cid, "missing_field", "data is required"))?;
            let chat_type = chat_type_of(chat_type, &cid)?;
            Ok(ClientFrame::Send(SendFrame {
                cid,
                to,
                chat_type,
                msg_type,
                data,
                options: obj.get("options").cloned(),
                metadata: obj.get("metadata").cloned(),
            }))
        }
        "revoke" => {
            let id =
                str_field(&obj, "id", &cid)?.ok_or_else(|| err(&cid, "missing_field", "id is required"))?;
            Ok(ClientFrame::Revoke { cid, id })
        }
        "typing" => {
            let to = u64_field(&obj, &["to"], &cid)?;
            let chat_type = chat_type_of(str_field(&obj, "chatType", &cid)?, &cid)?;
            let stop = match str_field(&obj, "state", &cid)?.as_deref() {
                None | Some("start") => false,
                Some("stop") => true,
                Some(_) => return Err(err(&cid, "invalid", "state must be start or stop")),
            };
            Ok(ClientFrame::Typing {
                cid,
                to,
                chat_type,
                stop,
            })
        }
        "ack" | "read" => {
            let conversation = str_field(&obj, "conversation", &cid)?
                .ok_or_else(|| err(&cid, "missing_field", "conversation is required"))?;
            let seq = u64_field(&obj, &["seq"], &cid)?;
            Ok(if kind == "ack" {
                ClientFrame::Ack { conversation, seq }
            } else {
                ClientFrame::Read { conversation, seq }
            })
        }
        other => Err(err(&cid, "unknown_type", format!("unknown frame type {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_client_frame() {
        assert_eq!(decode(r#"{"type":"ping"}"#).unwrap(), ClientFrame::Ping);
        let ClientFrame::Send(s) = decode(r#"{"type":"send","cid":"c1","to":"2","data":"hi"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (s.to, s.chat_type, s.msg_type.as_str(), s.cid.as_deref()),
            (2, ChatType::Single, "text", Some("c1"))
        );
        assert_eq!(
            decode(r#"{"type":"ack","conversation":"d:1:2","seq":5}"#).unwrap(),
            ClientFrame::Ack {
                conversation: "d:1:2".into(),
                seq: 5
            }
        );
        assert_eq!(
            decode(r#"{"type":"read","conversation":"d:1:2","seq":"6"}"#).unwrap(),
            ClientFrame::Read {
                conversation: "d:1:2".into(),
                seq: 6
            }
        );
    }

    #[test]
    fn decodes_revoke() {
        assert_eq!(
            decode(r#"{"type":"revoke","cid":"c","id":"m1"}"#).unwrap(),
            ClientFrame::Revoke {
                cid: Some("c".into()),
                id: "m1".into()
            }
        );
        assert_eq!(decode(r#"{"type":"revoke"}"#).unwrap_err().code, "missing_field");
    }

    #[test]
    fn decodes_typing() {
        assert_eq!(
            decode(r#"{"type":"typing","to":"7","chatType":"group"}"#).unwrap(),
            ClientFrame::Typing {
                cid: None,
                to: 7,
                chat_type: ChatType::Group,
                stop: false
            }
        );
        assert_eq!(
            decode(r#"{"type":"typing","to":2,"state":"stop"}"#).unwrap(),
            ClientFrame::Typing {
                cid: None,
                to: 2,
                chat_type: ChatType::Single,
                stop: true
            }
        );
        assert_eq!(decode(r#"{"type":"typing"}"#).unwrap_err().code, "missing_field");
        let e = decode(r#"{"type":"typing","cid":"t","to":2,"chatType":"channel"}"#).unwrap_err();
        assert_eq!((e.code, e.cid.as_deref()), ("invalid", Some("t")));
        assert_eq!(
            decode(r#"{"type":"typing","to":2,"state":"dancing"}"#)
                .unwrap_err()
                .code,
            "invalid"
        );
        assert_eq!(
            decode(r#"{"type":"typing","to":2,"state":1}"#).unwrap_err().code,
            "wrong_type"
        );
    }

    #[test]
    fn refuses_bad_frames_with_codes() {
        assert_eq!(decode("nope").unwrap_err().code, "bad_json");
        assert_eq!(decode("[1]").unwrap_err().code, "bad_frame");
        assert_eq!(decode(r#"{"cid":"x"}"#).unwrap_err().code, "missing_field");
        assert_eq!(decode(r#"{"type":"dance"}"#).unwrap_err().code, "unknown_type");
        let e = decode(r#"{"type":"send","cid":"c8","to":2,"chatType":"room","data":1}"#).unwrap_err();
        assert_eq!((e.code, e.cid.as_deref()), ("invalid", Some("c8")));
        let e = decode(r#"{"type":"send","cid":"c9","to":"bob","data":1}"#).unwrap_err();
        assert_eq!((e.code, e.cid.as_deref()), ("wrong_type", Some("c9")));
        assert_eq!(
            decode(r#"{"type":"send","to":2}"#).unwrap_err().code,
            "missing_field"
        );
        assert_eq!(
            decode(r#"{"type":"ack","conversation":"d:1:2","seq":-1}"#)
                .unwrap_err()
                .code,
            "wrong_type"
        );
    }
}
