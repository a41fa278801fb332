//! The delivery of webhook events: one tokio task (never an actor thread) reads the outbox
//! through snapshots on blocking threads every `webhooks.poll_ms` while it holds events
//! (while it is empty, only after a commit that touched it), POSTs the head event of
//! each (endpoint, conversation) that is due, and records the outcome through the Writer:
//! delivered events leave the outbox, failed ones are tried again after a doubling wait and
//! become dead letters after `webhooks.max_attempts` failures. One conversation's events go
//! to an endpoint one after the other, in commit order; a failing head holds back only its
//! own conversation at that endpoint. Deliveries are bounded (`webhooks.concurrency` at
//! once, `webhooks.timeout_ms` each) and nothing here is on the path of a send: a dead
//! endpoint's events wait in the outbox.
//!
//! Each POST carries the event's JSON body and the headers `X-Parlor-Event`,
//! `X-Parlor-Delivery` (the event id: the same on every try, for idempotency),
//! `X-Parlor-Attempt`, `X-Parlor-Timestamp` (seconds) and `X-Parlor-Signature:
//! sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the endpoint's secret>`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use parlor_storage::{OutboxEvent, Store, WebhookRecord};
use sha2::Sha256;
use tokio::sync::{mpsc, Semaphore};

use crate::config::WebhooksConfig;

/// Events read per endpoint and round: an endpoint's backlog beyond them waits for the
/// next rounds.
const SCAN_PER_ENDPOINT: usize = 1000;
/// Longest error text kept with an event.
const ERROR_MAX: usize = 300;

/// Counters of the deliveries (relaxed atomics, read by `/metrics`).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events an endpoint answered with a 2xx.
    pub delivered: AtomicU64,
    /// Tries that failed (an error, a timeout, a status other than 2xx).
    pub failed: AtomicU64,
    /// Failed tries after which the event was scheduled again.
    pub retries: AtomicU64,
    /// Events moved to the dead letters.
    pub dead: AtomicU64,
    /// Events waiting in the outbox, as last read.
    pub outbox_depth: AtomicU64,
    /// Dead letters kept, as last read.
    pub dead_letters: AtomicU64,
}

/// `sha256=<hex>`: the signature of `body` sent at `timestamp` (seconds) with `secret`.
pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before try `attempts + 1`, after `attempts` failures.
pub fn backoff(config: &WebhooksConfig, attempts: u32) -> Duration {
    let factor = 1u64 << attempts.saturating_sub(1).min(32);
    Duration::from_millis(
        config
            .backoff_ms
            .saturating_mul(factor)
            .min(config.max_backoff_ms),
    )
}

/// Starts the delivery task on the current tokio runtime.
pub fn spawn(store: Store, config: WebhooksConfig, stats: Arc<WebhookStats>) -> tokio::task::JoinHandle<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(config.timeout_ms.max(1)))
        .connect_timeout(Duration::from_millis(config.timeout_ms.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Parlor-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a reqwest client with rustls");
    let worker = Worker {
        store,
        config: Arc::new(config),
        stats,
        client,
    };
    tokio::spawn(worker.run())
}

/// What one round read from the outbox.
struct Round {
    hooks: HashMap<u64, WebhookRecord>,
    events: Vec<(String, OutboxEvent)>,
    depth: (u64, u64),
}

/// An (endpoint, conversation) being delivered to.
type Lane = (u64, String);

#[derive(Clone)]
struct Worker {
    store: Store,
    config: Arc<WebhooksConfig>,
    stats: Arc<WebhookStats>,
    client: reqwest::Client,
}

impl Worker {
    async fn run(self) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut busy: HashSet<Lane> = HashSet::new();
        let (done_tx, mut done) = mpsc::unbounded_channel::<Lane>();
        // Deliveries in flight end with this task (at shutdown): their events stay waiting.
        let mut flying = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.poll_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether the last round found the outbox empty: then nothing is read again until a
        // commit touches the outbox (the Writer is its only writer), so an idle server does
        // no work here. A round that fails to read polls again on the next tick.
        let mut empty = false;
        loop {
            tokio::select! {
                _ = tick.tick(), if !empty => {}
                _ = self.store.writer().outbox_changed(), if empty => {}
                lane = done.recv() => {
                    if let Some(lane) = lane {
                        busy.remove(&lane);
                    }
                }
            }
            while let Ok(lane) = done.try_recv() {
                busy.remove(&lane);
            }
            while flying.try_join_next().is_some() {}
            empty = false;
            let store = self.store.clone();
            let read = tokio::task::spawn_blocking(move || read_round(&store)).await;
            let round = match read {
                Ok(Ok(round)) => round,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "webhooks: cannot read the outbox");
                    continue;
                }
                Err(_) => continue,
            };
            empty = round.depth.0 == 0 && busy.is_empty();
            self.stats.outbox_depth.store(round.depth.0, Relaxed);
            self.stats.dead_letters.store(round.depth.1, Relaxed);
            let now = parlor_actors::now_ms();
            let mut heads: HashSet<Lane> = HashSet::new();
            for (tenant, event) in round.events {
                let lane = (event.endpoint, event.order.clone());
                // Only the oldest waiting event of a lane may go.
                if !heads.insert(lane.clone()) || busy.contains(&lane) || event.next_ms > now {
                    continue;
                }
                let Some(hook) = round.hooks.get(&event.endpoint).cloned() else {
                    continue;
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    break;
                };
                busy.insert(lane.clone());
                let (worker, done_tx) = (self.clone(), done_tx.clone());
                flying.spawn(async move {
                    worker.deliver(&tenant, &hook, event).await;
                    drop(slot);
                    let _ = done_tx.send(lane);
                });
            }
        }
    }

    /// One try of one event, and its outcome recorded.
    async fn deliver(&self, tenant: &str, hook: &WebhookRecord, mut event: OutboxEvent) {
        let outcome = self.post(hook, &event).await;
        let (tenant, endpoint, id) = (tenant.to_owned(), event.endpoint, event.id);
        let written = match outcome {
            Ok(()) => {
                self.stats.delivered.fetch_add(1, Relaxed);
                self.store
                    .writer()
                    .write(move |tx| tx.delivered_event(&tenant, endpoint, id))
                    .await
            }
            Err(error) => {
                self.stats.failed.fetch_add(1, Relaxed);
                event.attempts += 1;
                let dead = event.attempts >= self.config.max_attempts;
                if dead {
                    self.stats.dead.fetch_add(1, Relaxed);
                } else {
                    self.stats.retries.fetch_add(1, Relaxed);
                }
                tracing::debug!(endpoint, id, attempts = event.attempts, dead, %error, "webhooks: delivery failed");
                event.next_ms =
                    parlor_actors::now_ms() + backoff(&self.config, event.attempts).as_millis() as u64;
                event.last_error = error.chars().take(ERROR_MAX).collect();
                self.store
                    .writer()
                    .write(move |tx| tx.failed_event(&tenant, &event, dead))
                    .await
            }
        };
        if let Err(e) = written {
            // The event stays as it was and is tried again: at least once.
            tracing::warn!(error = %e, "webhooks: cannot record a delivery");
        }
    }

    /// POSTs an event: `Ok` on a 2xx answer, the reason otherwise.
    async fn post(&self, hook: &WebhookRecord, event: &OutboxEvent) -> Result<(), String> {
        // Checked again at each try: a name may resolve elsewhere since it was added.
        super::check_url(&self.config, &hook.url)
            .await
            .map_err(|e| e.to_string())?;
        let timestamp = parlor_actors::now_ms() / 1000;
        let resp = self
            .client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-parlor-event", &event.event)
            .header("x-parlor-delivery", event.id.to_string())
            .header("x-parlor-attempt", (event.attempts + 1).to_string())
            .header("x-parlor-timestamp", timestamp.to_string())
            .header(
                "x-parlor-signature",
                signature(&hook.secret, timestamp, &event.body),
            )
            .body(event.body.clone())
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }
}

/// Reads the endpoints, each one's first waiting events, and the outbox's size.
fn read_round(store: &Store) -> parlor_storage::Result<Round> {
    let snap = store.snapshot()?;
    let hooks = snap.webhooks(None)?;
    let mut events = Vec::new();
    for hook in &hooks {
        for event in snap.outbox_of(&hook.tenant, hook.id, SCAN_PER_ENDPOINT)? {
            events.push((hook.tenant.clone(), event));
        }
    }
    Ok(Round {
        hooks: hooks.into_iter().map(|h| (h.id, h)).collect(),
        events,
        depth: snap.outbox_len()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_readmes_example() {
        // README "Webhooks": printf '%s.%s' 1764867600 "$BODY" | openssl dgst -sha256 -hmac whsec_example
        let body = r#"{"event":"message.sent","tenant":"default","createdAt":1764867600000,"data":{}}"#;
        assert_eq!(
            signature("whsec_example", 1_764_867_600, body),
            "sha256=33f3d241fe1aa8d4ec0f07cfc9d2b8eb80cb95eb5ab16717ae3182ff50480611"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let c = WebhooksConfig {
            backoff_ms: 100,
            max_backoff_ms: 1000,
            ..WebhooksConfig::default()
        };
        assert_eq!(backoff(&c, 1), Duration::from_millis(100));
        assert_eq!(backoff(&c, 2), Duration::from_millis(200));
        assert_eq!(backoff(&c, 4), Duration::from_millis(800));
        assert_eq!(backoff(&c, 5), Duration::from_millis(1000));
        assert_eq!(backoff(&c, 60), Duration::from_millis(1000));
    }
}
