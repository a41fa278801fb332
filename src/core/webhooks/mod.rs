//! Webhooks: a tenant's endpoints (added, listed and removed through the admin face, kept in
//! redb), the check of their URLs, the dead letters, and the subscriptions handed to the
//! tenant's actors ([`SetHooks`]) whenever the endpoints change and at start, so that the
//! actors queue each event in the transaction of what it tells. [`delivery`] POSTs them.

pub mod delivery;

use std::net::IpAddr;
use std::sync::Arc;

use parlor_actors::hooks::{HookSub, EVENTS};
use parlor_actors::{SetHooks, TenantOf};
use parlor_storage::{OutboxEvent, WebhookRecord};
use rand::RngCore;
use reqwest::Url;

use crate::config::WebhooksConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Most endpoints of one tenant.
pub const MAX_ENDPOINTS: usize = 32;

/// Whether `ip` is an address of the public internet (not private, loopback, link-local,
/// shared, multicast, documentation or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Checks an endpoint URL: `http` or `https`, with a host that is one of
/// `webhooks.allowed_hosts` or resolves to public addresses only. Returns the parsed URL.
pub async fn check_url(config: &WebhooksConfig, url: &str) -> Result<Url, ApiError> {
    let parsed = Url::parse(url).map_err(|e| ApiError::invalid(format!("url is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::invalid("url must be http or https"));
    }
    let Some(host) = parsed.host_str().map(str::to_owned) else {
        return Err(ApiError::invalid("url has no host"));
    };
    if crate::files::screenshot::host_allowed(&parsed, &config.allowed_hosts) {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((bare.as_str(), port))
            .await
            .map_err(|e| ApiError::invalid(format!("url: cannot resolve {host}: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() {
        return Err(ApiError::invalid(format!("url: {host} has no address")));
    }
    if let Some(ip) = addrs.iter().find(|ip| !is_public(**ip)) {
        return Err(ApiError::invalid(format!(
            "url: {host} is a private, loopback or link-local address ({ip}); list it in webhooks.allowed_hosts to allow it"
        )));
    }
    Ok(parsed)
}

/// Checks event names: at least one, each known.
fn check_events(events: &[String]) -> Result<(), ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid(format!(
            "events must name at least one of {}",
            EVENTS.join(", ")
        )));
    }
    if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(ApiError::invalid(format!(
            "unknown event {bad}: events are {}",
            EVENTS.join(", ")
        )));
    }
    Ok(())
}

/// A new random secret: 32 bytes, hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

/// Adds an endpoint to `tenant`: the URL checked, the events known, the secret given or
/// generated. Returns the stored endpoint (with its secret, which is shown only here).
pub async fn add(
    state: &AppState,
    tenant: &str,
    url: &str,
    secret: Option<String>,
    mut events: Vec<String>,
) -> Result<WebhookRecord, ApiError> {
    check_events(&events)?;
    events.sort();
    events.dedup();
    if url.len() > 2048 {
        return Err(ApiError::invalid("url is at most 2048 bytes"));
    }
    let url = check_url(&state.config.webhooks, url).await?.to_string();
    let secret = match secret {
        Some(s) if s.len() < 16 || s.len() > 256 => {
            return Err(ApiError::invalid("secret must be 16 to 256 bytes"))
        }
        Some(s) => s,
        None => new_secret(),
    };
    let t = tenant.to_owned();
    let count = state.read(move |s| Ok(s.webhooks(Some(&t))?.len())).await?;
    if count >= MAX_ENDPOINTS {
        return Err(ApiError::invalid(format!(
            "a tenant has at most {MAX_ENDPOINTS} webhook endpoints"
        )));
    }
    let mut hook = WebhookRecord {
        id: 0,
        tenant: tenant.to_owned(),
        url,
        secret,
        events,
        created_ms: parlor_actors::now_ms(),
    };
    let hook = state
        .store
        .writer()
        .write(move |tx| {
            tx.put_webhook(&mut hook)?;
            Ok(hook)
        })
        .await?;
    publish(state, tenant).await?;
    Ok(hook)
}

/// The endpoints of `tenant`.
pub async fn list(state: &AppState, tenant: &str) -> Result<Vec<WebhookRecord>, ApiError> {
    let t = tenant.to_owned();
    state.read(move |s| Ok(s.webhooks(Some(&t))?)).await
}

/// Removes an endpoint of `tenant` with its waiting events and dead letters.
pub async fn remove(state: &AppState, tenant: &str, id: u64) -> Result<(), ApiError> {
    let t = tenant.to_owned();
    let existed = state
        .store
        .writer()
        .write(move |tx| tx.remove_webhook(&t, id))
        .await?;
    if !existed {
        return Err(ApiError::NotFound(format!("webhook {id} does not exist")));
    }
    publish(state, tenant).await
}

/// The dead letters of `tenant` (of one endpoint when given), oldest first.
pub async fn dead_letters(
    state: &AppState,
    tenant: &str,
    endpoint: Option<u64>,
    limit: usize,
) -> Result<Vec<OutboxEvent>, ApiError> {
    let t = tenant.to_owned();
    state
        .read(move |s| {
            if let Some(e) = endpoint {
                if s.webhook(&t, e)?.is_none() {
                    return Err(ApiError::NotFound(format!("webhook {e} does not exist")));
                }
            }
            Ok(s.dead_letters(&t, endpoint, limit)?)
        })
        .await
}

/// Puts dead letters of an endpoint back in its outbox (one, or all when `id` is `None`);
/// returns how many.
pub async fn retry(
    state: &AppState,
    tenant: &str,
    endpoint: u64,
    id: Option<u64>,
) -> Result<usize, ApiError> {
    let t = tenant.to_owned();
    let known = state
        .read(move |s| Ok(s.webhook(&t, endpoint)?.is_some()))
        .await?;
    if !known {
        return Err(ApiError::NotFound(format!("webhook {endpoint} does not exist")));
    }
    let t = tenant.to_owned();
    let now = parlor_actors::now_ms();
    let moved = state
        .store
        .writer()
        .write(move |tx| tx.retry_dead_letters(&t, endpoint, id, now))
        .await?;
    if moved == 0 && id.is_some() {
        return Err(ApiError::NotFound("no such dead letter".into()));
    }
    Ok(moved)
}

/// The subscriptions of stored endpoints, as the actors keep them.
pub fn subscriptions(hooks: &[WebhookRecord]) -> Arc<[HookSub]> {
    hooks.iter().map(|h| HookSub::new(h.id, &h.events)).collect()
}

/// Hands `tenant`'s endpoints, as stored now, to its actors; answers once the Tenant took
/// them (the Router and groups are told in its mailbox order).
pub async fn publish(state: &AppState, tenant: &str) -> Result<(), ApiError> {
    let hooks = list(state, tenant).await?;
    let tenant_addr = state.router.send(TenantOf(Arc::from(tenant))).await?;
    tenant_addr.send(SetHooks(subscriptions(&hooks))).await?;
    // The Tenant told the Router before answering; this round trip sees that through.
    state.router.send(TenantOf(Arc::from(tenant))).await?;
    Ok(())
}
