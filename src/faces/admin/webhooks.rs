//! Webhook endpoints of a tenant: add (the URL checked, the secret given or generated and
//! shown only in this answer), list, remove, and the dead letters (listed, or put back in
//! the outbox to be tried again).

use parlor_storage::{OutboxEvent, WebhookRecord};
use serde_json::{json, Value};

use super::{success, Result, Signed, State};
use crate::core::webhooks;
use crate::error::ApiError;

/// An endpoint as the answers show it (never its secret).
fn endpoint_json(h: &WebhookRecord) -> Value {
    json!({"id": h.id, "url": h.url, "events": h.events, "createdAt": h.created_ms})
}

/// A dead letter as the answers show it.
fn letter_json(e: &OutboxEvent) -> Value {
    json!({
        "deliveryId": e.id,
        "endpointId": e.endpoint,
        "event": e.event,
        "attempts": e.attempts,
        "lastError": e.last_error,
        "createdAt": e.created_ms,
        "body": e.body,
    })
}

/// A positive id field.
fn id_field(body: &Signed, name: &str, required: bool) -> std::result::Result<Option<u64>, ApiError> {
    let v = if required {
        Some(body.req_int(name)?)
    } else {
        body.int(name)?
    };
    v.map(|n| {
        u64::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::invalid(format!("{name} must be a positive integer")))
    })
    .transpose()
}

pub(super) async fn add(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let url = body.str("url")?;
    let events: Vec<String> = match body.body.get("events") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::invalid("events must be a list of event names"))?,
        None | Some(Value::Null) => return Err(ApiError::invalid("events is required").into()),
        Some(_) => return Err(ApiError::invalid("events must be a list of event names").into()),
    };
    let secret = body.opt_str("secret")?;
    let hook = webhooks::add(&state, &tenant, &url, secret, events).await?;
    let mut answer = endpoint_json(&hook);
    answer["secret"] = json!(hook.secret);
    Ok(success(answer))
}

pub(super) async fn list(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let hooks = webhooks::list(&state, &tenant).await?;
    Ok(success(Value::Array(hooks.iter().map(endpoint_json).collect())))
}

pub(super) async fn remove(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let id = id_field(&body, "id", true)?.unwrap_or_default();
    webhooks::remove(&state, &tenant, id).await?;
    Ok(success(json!({})))
}

pub(super) async fn dead_letters(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let endpoint = id_field(&body, "id", false)?;
    let count = body.int("count")?.unwrap_or(100).clamp(1, 1000) as usize;
    let letters = webhooks::dead_letters(&state, &tenant, endpoint, count).await?;
    Ok(success(Value::Array(letters.iter().map(letter_json).collect())))
}

pub(super) async fn retry(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let endpoint = id_field(&body, "id", true)?.unwrap_or_default();
    let delivery = id_field(&body, "deliveryId", false)?;
    let count = webhooks::retry(&state, &tenant, endpoint, delivery).await?;
    Ok(success(json!({"count": count})))
}
