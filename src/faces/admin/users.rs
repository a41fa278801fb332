//! Users' lifecycle: `POST /admin/user/list` (a page of the tenant's users), `disable`,
//! `enable`, `kick` (close the sessions and revoke the tokens) and `delete` (the account,
//! its friendships and memberships; its messages kept or erased as `eraseMessages` says).

use parlor_storage::UserRecord;
use serde_json::{json, Value};

use super::{success, user, Result, Signed, State};
use crate::core::lifecycle;
use crate::error::ApiError;

/// A user as the list shows it.
fn user_json(u: &UserRecord) -> Value {
    json!({
        "id": u.id,
        "userId": u.uuid,
        "username": u.username,
        "nickname": u.nickname,
        "role": u.role.as_str(),
        "disabled": u.status != 1,
        "createTime": u.created_ms,
        "lastLoginTime": u.last_login_ms,
    })
}

/// A non-negative integer field, `default` when absent.
fn count_field(body: &Signed, name: &str, default: usize) -> Result<usize> {
    match body.int(name)? {
        None => Ok(default),
        Some(n) => Ok(usize::try_from(n)
            .map_err(|_| ApiError::invalid(format!("{name} must be a non-negative integer")))?),
    }
}

pub(super) async fn list(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let offset = count_field(&body, "offset", 0)?;
    let count = count_field(&body, "count", 20)?;
    let keyword = body.opt_str("keyword")?;
    let (total, users) = lifecycle::list(&state, &tenant, keyword, offset, count).await?;
    let users: Vec<Value> = users.iter().map(user_json).collect();
    Ok(success(json!({"total": total, "users": users})))
}

/// The tenant and the user `userId` names (253 when none).
async fn named_user(state: &State, body: &Signed) -> Result<(String, UserRecord)> {
    let tenant = body.tenant()?;
    let u = user(state, &tenant, &body.str("userId")?).await?;
    Ok((tenant, u))
}

/// Disables or enables the user; answers the user as the list shows it.
async fn set_disabled(state: State, body: Signed, disabled: bool) -> Result {
    let (tenant, u) = named_user(&state, &body).await?;
    let u = lifecycle::set_disabled(&state, &tenant, u.id, disabled).await?;
    Ok(success(user_json(&u)))
}

pub(super) async fn disable(state: State, body: Signed) -> Result {
    set_disabled(state, body, true).await
}

pub(super) async fn enable(state: State, body: Signed) -> Result {
    set_disabled(state, body, false).await
}

pub(super) async fn kick(state: State, body: Signed) -> Result {
    let (tenant, u) = named_user(&state, &body).await?;
    let u = lifecycle::kick(&state, &tenant, u.id).await?;
    Ok(success(user_json(&u)))
}

pub(super) async fn delete(state: State, body: Signed) -> Result {
    let erase = body.bool("eraseMessages")?.ok_or_else(|| {
        ApiError::invalid("eraseMessages is required: true erases the user's messages, false keeps them")
    })?;
    let (tenant, u) = named_user(&state, &body).await?;
    let done = lifecycle::delete(&state, &tenant, u.id, erase).await?;
    Ok(success(json!({
        "userId": u.uuid,
        "id": u.id,
        "groupsLeft": done.groups_left,
        "groupsDissolved": done.groups_dissolved,
        "messagesErased": done.messages_erased,
    })))
}
