//! Settings: each tenant's policy (the revoke window, message size, send rate, replay round
//! and group size, numbered as the admin face's system settings) and per-user key/value
//! settings. A policy change is stored and takes effect for the next message, without a
//! restart.

use std::sync::Arc;

use parlor_actors::{GetPolicy, Policy, SetPolicy, TenantOf};

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
