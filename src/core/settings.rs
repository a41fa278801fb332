//! Settings: each tenant's system settings and per-user key/value settings. A system
//! setting is either Parlor policy (the revoke window, message size, send rate, replay round
//! group size and the group size of presence: ids 1-7 of [`SETTINGS`], values checked, a change taking effect for the
//! next message without a restart) or a generic setting, any other id, kept with its value
//! and description as given.

use std::sync::Arc;

use parlor_actors::policy::SETTINGS;
use parlor_actors::{GetPolicy, Policy, SetPolicy, TenantOf};
use parlor_storage::SettingRecord;

use crate::error::ApiError;
use crate::state::AppState;

/// The policy `tenant` runs with now.
pub async fn policy(state: &AppState, tenant: &str) -> Result<Policy, ApiError> {
    let tenant_addr = state.router.send(TenantOf(Arc::from(tenant))).await?;
    Ok(tenant_addr.send(GetPolicy).await?)
}

/// Sets policy setting `id` of `tenant` to `value` (refused with the reason when the value is
/// out of range), stores it and applies it.
pub async fn set_policy(state: &AppState, tenant: &str, id: u32, value: &str) -> Result<(), ApiError> {
    let tenant_addr = state.router.send(TenantOf(Arc::from(tenant))).await?;
    let mut policy = tenant_addr.send(GetPolicy).await?;
    policy.set(id, value).map_err(ApiError::Invalid)?;
    let (t, v) = (tenant.to_owned(), value.trim().to_owned());
    state
        .store
        .writer()
        .write(move |tx| tx.put_tenant_setting(&t, id, &v))
        .await?;
    tenant_addr.send(SetPolicy(policy)).await?;
    Ok(())
}

/// System setting `id` of `tenant`: its value and description (a policy id's description is
/// Parlor's), or `None` when a generic id was never set.
pub async fn system_setting(
    state: &AppState,
    tenant: &str,
    id: u32,
) -> Result<Option<SettingRecord>, ApiError> {
    if let Some((_, desc)) = SETTINGS.iter().find(|(i, _)| *i == id) {
        let value = policy(state, tenant).await?.setting(id).unwrap_or_default();
        return Ok(Some(SettingRecord {
            value: value.to_string(),
            desc: (*desc).to_owned(),
        }));
    }
    let t = tenant.to_owned();
    state.read(move |s| Ok(s.system_setting(&t, id)?)).await
}

/// Sets system setting `id` of `tenant`: a policy id through [`set_policy`] (its value
/// checked, `desc` not kept), any other id stored with `value` and `desc` (an absent `desc`
/// keeps the stored one).
pub async fn set_system_setting(
    state: &AppState,
    tenant: &str,
    id: u32,
    value: String,
    desc: Option<String>,
) -> Result<(), ApiError> {
    if SETTINGS.iter().any(|(i, _)| *i == id) {
        return set_policy(state, tenant, id, &value).await;
    }
    let t = tenant.to_owned();
    state
        .store
        .writer()
        .write(move |tx| {
            let kept = tx.system_setting(&t, id)?.map(|s| s.desc).unwrap_or_default();
            let desc = desc.unwrap_or(kept);
            tx.put_system_setting(&t, id, &SettingRecord { value, desc })
        })
        .await?;
    Ok(())
}

/// Stores `key` = `value` in `scope` of user `user`.
pub async fn put_user_setting(
    state: &AppState,
    tenant: &str,
    user: u64,
    scope: u32,
    key: String,
    value: String,
) -> Result<(), ApiError> {
    let t = tenant.to_owned();
    state
        .store
        .writer()
        .write(move |tx| tx.put_user_setting(&t, user, scope, &key, &value))
        .await?;
    Ok(())
}

/// Remembers an admin request's nonce for `keep` (in the store, so across a restart); a
/// nonce remembered already is refused as a replay.
pub async fn remember_nonce(
    state: &AppState,
    nonce: String,
    keep: std::time::Duration,
) -> Result<(), ApiError> {
    let now = parlor_actors::now_ms();
    let until = now.saturating_add(keep.as_millis() as u64);
    let fresh = state
        .store
        .writer()
        .write(move |tx| tx.remember_nonce(&nonce, now, until))
        .await?;
    if fresh {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "auth failure: the nonce was used already".into(),
        ))
    }
}
