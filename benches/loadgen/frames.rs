//! The few WebSocket frames the load generator writes and reads.
//!
//! A message's content is a JSON string `"<intended_ns>:<actual_ns>:<index>"`: the time the
//! schedule wanted it sent, the time it was written (both on the shared [`crate::clock`]) and
//! its global index `0..messages`. The server stores and pushes the content unchanged, so the
//! receiver of the `singleChat` push and the sender reading its `ack` both recover the
//! timestamps from the frame itself and need no table of in-flight messages. A frame is
//! read in one pass: the envelope and the message fields in its `data` together.
//!
//! A pushed message of another kind than `text` (a group's `systemNotice`, such as the
//! membership notice that opens every group's timeline) is not one of ours: it parses as
//! [`ServerFrame::Notice`], which the modes ignore when counting.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The timestamps and index a message carries in its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    pub intended_ns: u64,
    pub actual_ns: u64,
    pub index: u64,
}

impl Payload {
    fn encode(&self) -> String {
        format!("{}:{}:{}", self.intended_ns, self.actual_ns, self.index)
    }

    fn decode(text: &str) -> Option<Payload> {
        let mut parts = text.split(':').map(str::parse::<u64>);
        let payload = Payload {
            intended_ns: parts.next()?.ok()?,
            actual_ns: parts.next()?.ok()?,
            index: parts.next()?.ok()?,
        };
        parts.next().is_none().then_some(payload)
    }
}

/// The `send` frame of a direct text message; its `cid` is the message's global index.
pub fn send_frame(to: u64, payload: &Payload) -> String {
    format!(
        r#"{{"type":"send","cid":"{}","to":{to},"msgType":"text","data":"{}"}}"#,
        payload.index,
        payload.encode()
    )
}

/// The `send` frame of a group text message to group `group`; its `cid` is the message's
/// global index.
pub fn group_send_frame(group: u64, payload: &Payload) -> String {
    format!(
        r#"{{"type":"send","cid":"{}","to":{group},"chatType":"group","msgType":"text","data":"{}"}}"#,
        payload.index,
        payload.encode()
    )
}

/// A `send` frame of ours as a target that forwards it unchanged hands it on (`fanout
/// --target baseline|mqtt`): only its `data`, the encoded payload, matters.
#[derive(Deserialize)]
struct SendFrame<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// The payload of one of our own `send` frames, forwarded unchanged by a comparison target.
pub fn parse_send(text: &str) -> Result<Payload, String> {
    let frame: SendFrame =
        serde_json::from_str(text).map_err(|e| format!("not a send frame of ours: {e}"))?;
    Payload::decode(&frame.data).ok_or_else(|| format!("foreign message content {:?}", frame.data))
}

/// A server frame, reduced to what the generator counts.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerFrame {
    /// `connected`: the session is registered with the Router.
    Connected,
    /// `ack` of one of this client's sends.
    Ack(Payload),
    /// `singleChat`: a message pushed to this client, with its timeline position.
    Chat { payload: Payload, seq: u64 },
    /// `singleChat` of another kind than `text` (a notice), with its timeline position.
    Notice { seq: u64 },
    /// `error`; `answers_send` when it carries a `cid` (it refuses one of our sends).
    Error { code: String, answers_send: bool },
    /// Anything else (`pong`, notices): ignored.
    Other,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    cid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    data: MaybeMessage<'a>,
}

/// A frame's `data` read in the same pass as the envelope: the fields of a stored message
/// when it is an object (other objects leave them empty), nothing when it is not an object.
#[derive(Default)]
struct MaybeMessage<'a>(Option<MessageFields<'a>>);

#[derive(Default)]
struct MessageFields<'a> {
    kind: Option<Cow<'a, str>>,
    data: Option<&'a RawValue>,
    seq: u64,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Type,
    Data,
    Seq,
    #[serde(other)]
    Other,
}

/// A string, borrowed from the frame when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeMessage<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MaybeMessageVisitor(PhantomData))
    }
}

struct MaybeMessageVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for MaybeMessageVisitor<'a> {
    type Value = MaybeMessage<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a frame's data")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = MessageFields::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Type => m.kind = map.next_value::<Option<Text<'a>>>()?.map(|t| t.0),
                Field::Data => m.data = Some(map.next_value::<&'a RawValue>()?),
                Field::Seq => m.seq = map.next_value::<Option<u64>>()?.unwrap_or(0),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(MaybeMessage(Some(m)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(MaybeMessage(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MaybeMessage(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MaybeMessage(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(MaybeMessage(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(MaybeMessage(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(MaybeMessage(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(MaybeMessage(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(MaybeMessage(None))
    }
}

/// A stored message in a frame's `data`: one of ours (a `text` carrying a payload), or
/// another kind.
enum Stored {
    Ours(Payload, u64),
    Notice(u64),
}

fn stored_of(data: MaybeMessage) -> Result<Stored, String> {
    let msg = data.0.ok_or("message frame without a message object in data")?;
    if msg.kind.as_deref().is_some_and(|k| k != "text") {
        return Ok(Stored::Notice(msg.seq));
    }
    let content = msg.data.ok_or("message without content")?;
    let text: Text = serde_json::from_str(content.get())
        .map_err(|_| format!("foreign message content {}", content.get()))?;
    let payload = Payload::decode(&text.0).ok_or_else(|| format!("foreign message content {:?}", text.0))?;
    Ok(Stored::Ours(payload, msg.seq))
}

/// The payload and `seq` of the stored message in a frame's `data`, which must be ours.
fn message_of(data: MaybeMessage) -> Result<(Payload, u64), String> {
    match stored_of(data)? {
        Stored::Ours(payload, seq) => Ok((payload, seq)),
        Stored::Notice(seq) => Err(format!("a notice (seq {seq}) where a message of ours was due")),
    }
}

/// Decodes one server text frame; `Err` names what was unexpected.
pub fn parse(text: &str) -> Result<ServerFrame, String> {
    let env: Envelope = serde_json::from_str(text).map_err(|e| format!("frame is not JSON: {e}"))?;
    Ok(match env.kind.as_ref() {
        "connected" => ServerFrame::Connected,
        "ack" => ServerFrame::Ack(message_of(env.data)?.0),
        "singleChat" => match stored_of(env.data)? {
            Stored::Ours(payload, seq) => ServerFrame::Chat { payload, seq },
            Stored::Notice(seq) => ServerFrame::Notice { seq },
        },
        "error" => ServerFrame::Error {
            code: env.code.map_or_else(|| "unknown".into(), Cow::into_owned),
            answers_send: env.cid.is_some(),
        },
        _ => ServerFrame::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_through_frames() {
        let p = Payload {
            intended_ns: 10,
            actual_ns: 12,
            index: 7,
        };
        let sent: serde_json::Value = serde_json::from_str(&send_frame(3, &p)).unwrap();
        assert_eq!(sent["cid"], "7");
        assert_eq!(sent["to"], 3);
        let push = format!(
            r#"{{"type":"singleChat","data":{{"id":"x","data":{},"seq":1}},"timestamp":1}}"#,
            sent["data"]
        );
        assert_eq!(parse(&push).unwrap(), ServerFrame::Chat { payload: p, seq: 1 });
        let ack = format!(r#"{{"type":"ack","cid":"7","data":{{"data":{}}}}}"#, sent["data"]);
        assert_eq!(parse(&ack).unwrap(), ServerFrame::Ack(p));
    }

    #[test]
    fn group_send_frame_names_the_group() {
        let p = Payload {
            intended_ns: 1,
            actual_ns: 2,
            index: 3,
        };
        let sent: serde_json::Value = serde_json::from_str(&group_send_frame(9, &p)).unwrap();
        assert_eq!(
            (&sent["to"], &sent["chatType"], &sent["cid"]),
            (&9.into(), &"group".into(), &"3".into())
        );
        let push = format!(
            r#"{{"type":"singleChat","data":{{"chatType":"group","type":"text","data":{},"seq":2}}}}"#,
            sent["data"]
        );
        assert_eq!(parse(&push).unwrap(), ServerFrame::Chat { payload: p, seq: 2 });
    }

    #[test]
    fn forwarded_send_frames() {
        let p = Payload {
            intended_ns: 4,
            actual_ns: 5,
            index: 6,
        };
        assert_eq!(parse_send(&group_send_frame(0, &p)).unwrap(), p);
        assert_eq!(parse_send(&send_frame(2, &p)).unwrap(), p);
        assert!(parse_send(r#"{"type":"ack"}"#).is_err());
        assert!(parse_send(r#"{"data":"1:2"}"#).is_err());
        assert!(parse_send("nope").is_err());
    }

    #[test]
    fn other_frames() {
        assert_eq!(
            parse(r#"{"type":"connected","data":{"id":1},"timestamp":1}"#).unwrap(),
            ServerFrame::Connected
        );
        assert_eq!(
            parse(r#"{"type":"error","cid":"4","code":"rate_limited","msg":"x"}"#).unwrap(),
            ServerFrame::Error {
                code: "rate_limited".into(),
                answers_send: true
            }
        );
        assert_eq!(
            parse(r#"{"type":"pong","data":null}"#).unwrap(),
            ServerFrame::Other
        );
        assert!(parse(r#"{"type":"singleChat","data":{"data":"hello"}}"#).is_err());
        assert!(parse(r#"{"type":"singleChat","data":{"type":"text","data":{"a":1}}}"#).is_err());
        let notice = r#"{"type":"singleChat","data":{"chatType":"group","type":"systemNotice",
            "data":{"data":"x","dataType":false,"otherData":null},"seq":1},"timestamp":1}"#;
        assert_eq!(parse(notice).unwrap(), ServerFrame::Notice { seq: 1 });
        assert!(parse("nope").is_err());
        let connected = r#"{"type":"connected","data":{"id":1,"app_id":"default","session":3}}"#;
        assert_eq!(parse(connected).unwrap(), ServerFrame::Connected);
        let read = r#"{"type":"read","data":{"conversation":"g:1","seq":5,"user_id":2,"count":3}}"#;
        assert_eq!(parse(read).unwrap(), ServerFrame::Other);
        for data in ["\"text\"", "[1,{}]", "true", "1.5", "-2"] {
            let frame = format!(r#"{{"type":"pong","data":{data}}}"#);
            assert_eq!(parse(&frame).unwrap(), ServerFrame::Other, "{frame}");
        }
        assert!(parse(r#"{"type":"singleChat","data":null}"#).is_err());
        assert!(parse(r#"{"type":"singleChat","data":{"type":"text","seq":1}}"#).is_err());
    }
}
