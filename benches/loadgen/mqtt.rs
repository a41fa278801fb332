//! `fanout --target mqtt`: the members as clients of an MQTT broker (MQTT 5, `rumqttc`).
//!
//! Each member opens one connection to the broker named by `--url` (`mqtt://host:port`;
//! plain TCP), with a clean start, and subscribes to one run-unique topic with *no local*
//! set, so that a publisher does not get its own messages back: every message is then due
//! to `members − 1` subscribers, as in a Parlor group. A member counts as connected once
//! its subscription was acknowledged.
//!
//! Senders publish their `send` frames (the same bytes as to Parlor) at QoS 1: the broker's
//! PUBACK is the analogue of Parlor's ack and belongs to the sender's oldest unanswered
//! publish ([`crate::members::Recorded`]); a PUBACK with a failure reason counts as a
//! refusal. Subscriptions are at QoS 0, so deliveries are pushed without an
//! acknowledgement from the receiver, as Parlor pushes to an online session; a delivery the
//! broker dropped shows up as lost.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::NetworkOptions;

use crate::clock;
use crate::drive::{Outlet, Plan};
use crate::frames::Payload;
use crate::members::{Joined, Member, Recorded, Shared};
use crate::{setup, Common};

/// How long connecting and subscribing one member may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Keep-alive interval of each connection.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Requests (publishes) a client may queue for its event loop.
const REQUESTS: usize = 1024;

/// A sender's side of its connection: publishes to the run's topic.
pub struct Publisher {
    client: AsyncClient,
    topic: String,
}

impl Outlet for Publisher {
    async fn put(&mut self, plan: &Plan, payload: &Payload) -> Result<(), String> {
        self.client
            .publish(self.topic.as_str(), QoS::AtLeastOnce, false, plan.frame(payload))
            .await
            .map_err(|e| format!("mqtt publish: {e}"))
    }

    async fn end(self) {
        let _ = self.client.try_disconnect();
    }
}

/// `host` and `port` of `mqtt://host:port` (or `tcp://`, or a bare `host:port`).
fn broker(url: &str) -> Result<(String, u16), String> {
    let rest = ["mqtt://", "tcp://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .unwrap_or(url)
        .trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("--url {url}: expected mqtt://host:port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("--url {url}: `{port}` is not a port"))?;
    Ok((host.to_owned(), port))
}

/// Connects and subscribes every member, each reader counting at once; returns them and
/// the topic.
pub async fn connect(
    common: &Common,
    members: usize,
    shared: &Shared,
) -> Result<(Joined<Recorded<Publisher>>, String), String> {
    if !common.source_ips.is_empty() {
        return Err("--source-ips is not supported with --target mqtt".into());
    }
    let (host, port) = broker(&common.url)?;
    let prefix = setup::run_prefix();
    let topic = format!("loadgen/{prefix}");
    let t = Instant::now();
    let n = members;
    let progress = setup::Progress::new("subscribed", n);
    let mut opened = futures_util::stream::iter(0..n)
        .map(|i| subscribe(&host, port, format!("{prefix}_{i}"), &topic))
        .buffered(common.setup_concurrency.max(1));
    let mut joined = Joined::with_capacity(n);
    while let Some(client) = opened.next().await {
        let (client, events) = client.inspect_err(|_| joined.abort())?;
        let member = Member::new(joined.readers.len(), shared);
        let pending = member.pending.clone();
        joined.readers.push(tokio::spawn(read(member, events)));
        let publisher = Publisher {
            client,
            topic: topic.clone(),
        };
        joined.outlets.push(Recorded::new(publisher, pending));
        progress.tick();
    }
    drop(opened);
    eprintln!(
        "connected and subscribed {n} MQTT clients to {topic} in {:.1?}",
        t.elapsed()
    );
    Ok((joined, topic))
}

/// One member's connection, subscribed to `topic` (QoS 0, no local).
async fn subscribe(
    host: &str,
    port: u16,
    id: String,
    topic: &str,
) -> Result<(AsyncClient, EventLoop), String> {
    let mut options = MqttOptions::new(id.as_str(), host, port);
    options.set_keep_alive(KEEP_ALIVE).set_clean_start(true);
    let mut network = NetworkOptions::new();
    // Nagle off: the messages are small and latency is what is measured.
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    let (client, mut events) = AsyncClient::new(options, REQUESTS);
    let filter = Filter {
        nolocal: true,
        ..Filter::new(topic, QoS::AtMostOnce)
    };
    client
        .subscribe_many([filter])
        .await
        .map_err(|e| format!("mqtt subscribe {id}: {e}"))?;
    let subscribed = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    return match ack.return_codes.as_slice() {
                        [SubscribeReasonCode::Success(_)] => Ok(()),
                        codes => Err(format!("mqtt subscribe {id}: refused: {codes:?}")),
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(format!("mqtt connect {id}: {e}")),
            }
        }
    };
    tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed)
        .await
        .map_err(|_| format!("mqtt connect {id}: no SUBACK within {SUBSCRIBE_TIMEOUT:?}"))??;
    Ok((client, events))
}

/// Drives one member's connection and counts what arrives, until the task is aborted or
/// the connection fails (the event loop would reconnect; the run counts it as an error).
async fn read(mut member: Member, mut events: EventLoop) {
    loop {
        let event = events.poll().await;
        let now = clock::now_ns();
        match event {
            Ok(Event::Incoming(Packet::Publish(publish))) => match std::str::from_utf8(&publish.payload) {
                Ok(text) => member.on_forwarded(text, now),
                Err(_) => member.stats.error("mqtt payload is not UTF-8"),
            },
            Ok(Event::Incoming(Packet::PubAck(ack))) => match ack.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => member.on_ack_in_order(now),
                reason => member.on_refused_in_order(&format!("mqtt puback {reason:?}")),
            },
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                return member
                    .stats
                    .error(&format!("disconnected by the broker: {:?}", d.reason_code))
            }
            Ok(_) => {}
            Err(e) => return member.stats.error(&format!("mqtt connection: {e}")),
        }
    }
}
