//! The few WebSocket frames the load generator writes and reads.
//!
//! A message's content is a JSON string `"<intended_ns>:<actual_ns>:<index>"`: the time the
//! schedule wanted it sent, the time it was written (both on the shared [`crate::clock`]) and
//! its global index `0..messages`. The server stores and pushes the content unchanged, so the
//! receiver of the `singleChat` push and the sender reading its `ack` both recover the
//! timestamps from the frame itself and need no table of in-flight messages.

use std::borrow::Cow;

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

/// A server frame, reduced to what the generator counts.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerFrame {
    /// `connected`: the session is registered with the Router.
    Connected,
    /// `ack` of one of this client's sends.
    Ack(Payload),
    /// `singleChat`: a message pushed to this client, with its timeline position.
    Chat { payload: Payload, seq: u64 },
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
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
    #[serde(default)]
    seq: u64,
}

/// The payload and `seq` of the stored message in a frame's `data`.
fn message_of(data: Option<&RawValue>) -> Result<(Payload, u64), String> {
    let data = data.ok_or("message frame without data")?;
    let msg: Message = serde_json::from_str(data.get()).map_err(|e| format!("message data: {e}"))?;
    let payload =
        Payload::decode(&msg.data).ok_or_else(|| format!("foreign message content {:?}", msg.data))?;
    Ok((payload, msg.seq))
}

/// Decodes one server text frame; `Err` names what was unexpected.
pub fn parse(text: &str) -> Result<ServerFrame, String> {
    let env: Envelope = serde_json::from_str(text).map_err(|e| format!("frame is not JSON: {e}"))?;
    Ok(match env.kind.as_ref() {
        "connected" => ServerFrame::Connected,
        "ack" => ServerFrame::Ack(message_of(env.data)?.0),
        "singleChat" => {
            let (payload, seq) = message_of(env.data)?;
            ServerFrame::Chat { payload, seq }
        }
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
        assert!(parse("nope").is_err());
    }
}
