//! `fanout --target baseline`: the members as clients of the bare broadcast server
//! (`benches/baseline`), which forwards every frame unchanged to every other client.
//!
//! The members connect to `--url` (any path; the server greets each socket with
//! `connected` once it is in the broadcast set), the senders send the same `send` frames as
//! to Parlor, and every other member gets those very bytes. The sender's answer is a bare
//! `{"type":"ack"}` that does not carry the message: it belongs to the sender's oldest
//! unanswered send ([`crate::members::Recorded`]).

use crate::drive::Sink;
use crate::members::{self, Joined, Member, Recorded, Shared};
use crate::{setup, Common};

/// The server's answer to each frame a client sends.
pub const ACK: &str = r#"{"type":"ack"}"#;

/// Connects every member to the baseline server, each reader counting at once.
pub async fn connect(
    common: &Common,
    members: usize,
    shared: &Shared,
) -> Result<Joined<Recorded<Sink>>, String> {
    let connector = setup::Connector::new(&common.url, &common.source_ips)?;
    let tokens = std::iter::repeat_n("", members);
    let (joined, pending) = members::connect_ws(
        members,
        common.setup_concurrency,
        shared,
        &connector,
        tokens,
        |member, stream| members::read_ws(member, stream, on_text),
    )
    .await?;
    let outlets = joined
        .outlets
        .into_iter()
        .zip(pending)
        .map(|(sink, pending)| Recorded::new(sink, pending))
        .collect();
    Ok(Joined {
        readers: joined.readers,
        outlets,
    })
}

fn on_text(member: &mut Member, text: &str, now: u64) {
    if text == ACK {
        member.on_ack_in_order(now);
    } else {
        member.on_forwarded(text, now);
    }
}
