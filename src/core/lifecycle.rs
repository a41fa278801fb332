//! An account's life after its creation: its user changes the password ([`change_password`],
//! which revokes the user's other tokens), and the operator lists users ([`list`]),
//! disables and enables them ([`set_disabled`]), closes their sessions ([`kick`]) and deletes
//! them ([`delete`]).
//!
//! Every one of them that revokes tokens goes through one write that changes the user's
//! record and its gate ([`parlor_storage::GateRecord`]) together; the new gate is then
//! held in memory ([`crate::auth::Auth::set_gate`]), so that the next request with an older
//! token is refused, and the Router closes the user's sessions (all of them but the one of
//! the token a password change keeps) with code 1008 and a reason saying why.

use std::sync::Arc;

use parlor_actors::{notices, GroupOp, Kick, UserKey};
use parlor_storage::{GateRecord, UserRecord};
use serde_json::json;

use super::accounts::{check_password, hash_password, load, party, party_of, password_matches};
use super::groups;
use crate::auth::Claims;
use crate::error::ApiError;
use crate::state::AppState;

/// Most users one page of [`list`] holds.
pub const PAGE_MAX: usize = 1000;

/// Changes user `id`'s record with `user_change` and its gate with `gate_change` in one
/// write (bumping the gate's generation: every token issued before is refused unless
/// `keep`), holds the new gate, and closes the user's sessions but those of `keep`, saying
/// `reason`. Returns the user as stored; an unknown user is `NotFound`.
async fn revoke_tokens(
    state: &AppState,
    tenant: &str,
    id: u64,
    keep: Option<&str>,
    reason: &'static str,
    user_change: impl FnOnce(&mut UserRecord) + Send + 'static,
    gate_change: impl FnOnce(&mut GateRecord) + Send + 'static,
) -> Result<UserRecord, ApiError> {
    let t = tenant.to_owned();
    let kept = keep.map(str::to_owned);
    let now = parlor_actors::now_ms();
    let (user, gate) = state
        .store
        .writer()
        .write(move |tx| {
            let Some(mut user) = tx.user(&t, id)? else {
                return Ok(None);
            };
            user_change(&mut user);
            tx.put_user(&user)?;
            let gate = tx.change_gate(&t, id, now, |g| {
                g.kept_jti = kept;
                gate_change(g);
            })?;
            Ok(Some((user, gate)))
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {id} does not exist")))?;
    state.auth.set_gate(tenant, id, gate);
    state.router.do_send(Kick {
        user: UserKey::new(tenant, id),
        keep: keep.map(Arc::from),
        reason,
        forget: false,
    });
    Ok(user)
}

/// Changes the password of the caller of `claims` from `old` to `new` (checked by
/// [`check_password`]). The check of `old` counts against the login throttles of the
/// account and of `addr` and takes a turn of the hashing bound, like a login; a wrong one
/// is `Forbidden`. Every other token of the user is revoked and its sockets closed
/// (`password changed`); the caller's token stays valid. Accounts without a password
/// (visitors, users of an outside provider) are refused.
pub async fn change_password(
    state: &AppState,
    claims: &Claims,
    old: String,
    new: String,
    addr: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    if old.is_empty() {
        return Err(ApiError::invalid("oldPassword is required"));
    }
    check_password(&new)?;
    let tenant = claims.app_id.as_str();
    let user = load(state, tenant, claims.id).await?;
    if user.password_hash.is_empty() {
        return Err(ApiError::Forbidden(
            "this account has no password to change".into(),
        ));
    }
    state.guard.attempt(tenant, &user.username, addr)?;
    if !password_matches(state, user.password_hash.clone(), old).await? {
        return Err(ApiError::Forbidden("the old password is wrong".into()));
    }
    let hash = hash_password(state, new).await?;
    let now = parlor_actors::now_ms();
    revoke_tokens(
        state,
        tenant,
        claims.id,
        Some(&claims.jti),
        "password changed",
        move |u| {
            u.password_hash = hash;
            u.updated_ms = now;
        },
        |_| {},
    )
    .await?;
    Ok(())
}

/// Disables (or enables again) user `id`: while disabled, logins are refused
/// (`this account is disabled`, 403) and so are the user's tokens (401), and its sessions
/// are closed (`account disabled`). Enabling lets the user log in again; tokens issued
/// before the disable stay refused. Returns the user.
pub async fn set_disabled(
    state: &AppState,
    tenant: &str,
    id: u64,
    disabled: bool,
) -> Result<UserRecord, ApiError> {
    revoke_tokens(
        state,
        tenant,
        id,
        None,
        "account disabled",
        move |u| u.status = if disabled { 0 } else { 1 },
        move |g| g.disabled = disabled,
    )
    .await
}

/// Closes every session of user `id` (`kicked`) and revokes every token issued so far; the
/// user may log in again at once.
pub async fn kick(state: &AppState, tenant: &str, id: u64) -> Result<UserRecord, ApiError> {
    revoke_tokens(state, tenant, id, None, "kicked", |_| {}, |_| {}).await
}

/// What [`delete`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Groups the user left (as a member).
    pub groups_left: usize,
    /// Groups dissolved (the user owned them).
    pub groups_dissolved: usize,
    /// Messages replaced by their placeholder (with `erase`).
    pub messages_erased: usize,
}

/// Deletes user `id` of `tenant`:
///
/// 1. the account is marked deleted at once (its tokens refused, logins refused, its
///    sessions closed with `account deleted`);
/// 2. it leaves each of its groups through the group's actor (`groupQuit`), and the groups
///    it owns are dissolved (`groupDissolve`); its pending join requests are refused;
/// 3. with `erase`, each message it sent (system notices aside) becomes a placeholder
///    (same id, `seq` and time; `revoked`, `actionType` `erase`), otherwise its messages
///    stay as they are;
/// 4. the record goes with its indexes, friendships (both sides), applications, blocks,
///    cursors, conversation states and settings ([`parlor_storage::Tx::remove_user`]).
///
/// Uploads stay (nothing removes objects). A deletion cut short (a crash) leaves the
/// account marked deleted; deleting it again finishes the work.
pub async fn delete(state: &AppState, tenant: &str, id: u64, erase: bool) -> Result<Deleted, ApiError> {
    let user = revoke_tokens(
        state,
        tenant,
        id,
        None,
        "account deleted",
        |u| u.status = 0,
        |g| g.deleted = true,
    )
    .await?;
    let me = party(&user);
    let t = tenant.to_owned();
    let (groups, requests) = state
        .read(move |s| {
            let mut requests = Vec::new();
            for group in s.join_requests_by(&t, id)? {
                if let Some(g) = s.group(&t, group)?.filter(|g| g.status == 1) {
                    requests.push((group, g.owner));
                }
            }
            Ok((s.groups_of(&t, id)?, requests))
        })
        .await?;
    let mut done = Deleted::default();
    for group in groups {
        match groups::command(state, tenant, group, me.clone(), GroupOp::Leave).await {
            Ok(parlor_actors::GroupOutcome::Dissolved) => done.groups_dissolved += 1,
            Ok(_) => done.groups_left += 1,
            // Dissolved, or left, meanwhile.
            Err(ApiError::NotFound(_) | ApiError::Forbidden(_)) => {}
            Err(e) => return Err(e),
        }
    }
    for (group, owner) in requests {
        let by = party_of(state, tenant, owner).await?;
        let op = GroupOp::Approve {
            user: me.clone(),
            agree: false,
        };
        match groups::command(state, tenant, group, by, op).await {
            Ok(_) | Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if erase {
        done.messages_erased = erase_messages(state, tenant, id).await?;
    }
    let t = tenant.to_owned();
    state
        .store
        .writer()
        .write(move |tx| tx.remove_user(&t, id))
        .await?;
    state.router.do_send(Kick {
        user: UserKey::new(tenant, id),
        keep: None,
        reason: "account deleted",
        forget: true,
    });
    Ok(done)
}

/// Messages erased per write, so that a user with a long history does not hold the Writer.
const ERASE_BATCH: usize = 500;

/// Replaces every message user `id` sent by the erased placeholder; returns how many.
async fn erase_messages(state: &AppState, tenant: &str, id: u64) -> Result<usize, ApiError> {
    let t = tenant.to_owned();
    let positions = state.read(move |s| Ok(s.sent_by(&t, id)?)).await?;
    let text = notices::erased(state.config.server.locale);
    let data = json!({"data": text, "dataType": false, "otherData": null}).to_string();
    for batch in positions.chunks(ERASE_BATCH) {
        let (t, batch, data) = (tenant.to_owned(), batch.to_vec(), data.clone());
        state
            .store
            .writer()
            .write(move |tx| {
                for (conv, seq) in &batch {
                    if let Some(mut m) = tx.message(&t, conv, *seq)? {
                        m.revoked = true;
                        m.kind = "systemNotice".into();
                        m.action = Some("erase".into());
                        m.data = data.clone();
                        m.options = "{}".into();
                        tx.put_message(&t, &m)?;
                    }
                }
                Ok(())
            })
            .await?;
    }
    Ok(positions.len())
}

/// A page of the users of `tenant` in id order (those whose username or nickname contains
/// `keyword`, when given), skipping `offset`, at most `count` (1 to [`PAGE_MAX`]); with the
/// number of users that match.
pub async fn list(
    state: &AppState,
    tenant: &str,
    keyword: Option<String>,
    offset: usize,
    count: usize,
) -> Result<(usize, Vec<UserRecord>), ApiError> {
    if !(1..=PAGE_MAX).contains(&count) {
        return Err(ApiError::invalid(format!("count must be 1 to {PAGE_MAX}")));
    }
    if let Some(k) = &keyword {
        super::check_len("keyword", k, 1, 50)?;
    }
    let t = tenant.to_owned();
    state
        .read(move |s| Ok(s.users_page(&t, keyword.as_deref(), offset, count)?))
        .await
}
