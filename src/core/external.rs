//! Users of an outside identity provider (Chat21): they have no sign-up in Parlor, so a
//! user a validly signed outside token names is created on first use, and so are the
//! members and recipients such a caller names by id, once every other check of the request
//! passed and within the limits of [`resolve_externals`]. Their uuid is the outside id.

use parlor_storage::{Role, UserRecord};

use super::accounts::{new_user, OPEN_USERSET};
use crate::auth::ExternalClaims;
use crate::error::ApiError;
use crate::state::AppState;

/// The user an outside identity (a Chat21 `sub`) names, by uuid or by numeric id.
pub fn find_external(
    s: &parlor_storage::Snapshot,
    tenant: &str,
    id: &str,
) -> parlor_storage::Result<Option<UserRecord>> {
    if let Some(u) = s.user_by_uuid(tenant, id)? {
        return Ok(Some(u));
    }
    match id.parse::<u64>() {
        Ok(n) => s.user(tenant, n),
        Err(_) => Ok(None),
    }
}

fn check_external_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid(
            "a user id must be 1 to 128 characters without spaces",
        ));
    }
    Ok(())
}

/// A new user for the outside identity `id`: its uuid is the id, its username too unless
/// that is taken, and it takes messages from anyone.
fn external_user(state: &AppState, tenant: &str, id: &str) -> UserRecord {
    let mut user = new_user(state, tenant, id, Role::User);
    user.uuid = id.to_owned();
    user.userset = OPEN_USERSET.into();
    user
}

/// Who names users by outside id: a caller with an outside (Chat21) token may bring the
/// ones Parlor has not seen into existence; a caller with a Parlor token may not.
#[derive(Debug, Clone, Copy)]
pub struct Namer {
    pub id: u64,
    pub outside: bool,
}

/// The users outside ids name, in the order given (repeats once). Unknown ones are
/// created, all in one transaction, only when `by` has an outside token, within
/// `limits.new_users_per_request` and `by`'s `limits.new_users_per_min`; otherwise the
/// first unknown id is `NotFound`. Call it after every other check of the operation.
pub async fn resolve_externals(
    state: &AppState,
    tenant: &str,
    by: Namer,
    ids: &[String],
) -> Result<Vec<UserRecord>, ApiError> {
    let mut wanted: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        check_external_id(id)?;
        if !wanted.contains(id) {
            wanted.push(id.clone());
        }
    }
    let lookup = |wanted: Vec<String>| {
        let t = tenant.to_owned();
        state.read(move |s| {
            wanted
                .into_iter()
                .map(|id| Ok((find_external(s, &t, &id)?, id)))
                .collect::<Result<Vec<_>, ApiError>>()
        })
    };
    let found = lookup(wanted.clone()).await?;
    let unknown: Vec<&String> = found
        .iter()
        .filter(|(u, _)| u.is_none())
        .map(|(_, id)| id)
        .collect();
    if unknown.is_empty() {
        return Ok(found.into_iter().filter_map(|(u, _)| u).collect());
    }
    if !by.outside {
        return Err(ApiError::NotFound(format!("user {} does not exist", unknown[0])));
    }
    let cap = state.config.limits.new_users_per_request;
    if unknown.len() > cap {
        return Err(ApiError::invalid(format!(
            "{} users are new; at most {cap} may be created by one request",
            unknown.len()
        )));
    }
    state.guard.new_users(tenant, by.id, unknown.len())?;
    let mut users: Vec<UserRecord> = unknown
        .iter()
        .map(|id| external_user(state, tenant, id))
        .collect();
    let t = tenant.to_owned();
    state
        .store
        .writer()
        .write(move |tx| {
            for user in &mut users {
                if tx.user_id_by_username(&t, &user.username)?.is_some() {
                    user.username = format!("c21-{}", uuid::Uuid::new_v4().simple());
                }
                match tx.insert_user(user) {
                    // A concurrent first use created it: the lookup below finds that one.
                    Ok(()) | Err(parlor_storage::Error::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await?;
    let all = lookup(wanted).await?;
    all.into_iter()
        .map(|(u, id)| u.ok_or_else(|| ApiError::Internal(format!("user {id} could not be created"))))
        .collect()
}

/// The user an outside identity names, created when Parlor has not seen it (Chat21 has no
/// sign-up: its users come from the provider): the caller of an outside token on first use.
/// Such users take messages from anyone.
pub async fn resolve_external(state: &AppState, tenant: &str, id: &str) -> Result<UserRecord, ApiError> {
    check_external_id(id)?;
    let lookup = || {
        let (t, key) = (tenant.to_owned(), id.to_owned());
        state.read(move |s| Ok(find_external(s, &t, &key)?))
    };
    if let Some(u) = lookup().await? {
        return Ok(u);
    }
    let mut user = external_user(state, tenant, id);
    let t = tenant.to_owned();
    let created = state
        .store
        .writer()
        .write(move |tx| {
            if tx.user_id_by_username(&t, &user.username)?.is_some() {
                user.username = format!("c21-{}", uuid::Uuid::new_v4().simple());
            }
            match tx.insert_user(&mut user) {
                Ok(()) => Ok(Some(user)),
                // A concurrent first use created it: read that one.
                Err(parlor_storage::Error::Conflict(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await?;
    match created {
        Some(u) => Ok(u),
        None => lookup()
            .await?
            .ok_or_else(|| ApiError::Internal(format!("user {id} could not be created"))),
    }
}

/// The user an outside-face token names (its `sub`, in its `app_id`, `default` when it has
/// none), created on first use by [`resolve_external`], once its claims pass the user's
/// gate ([`Auth::admit_external`](crate::auth::Auth::admit_external)).
///
/// One of Parlor's own tokens names its user by id: that user must exist (its gate is
/// checked first, so the token of a deleted user says so), it is never created.
pub async fn resolve_caller(state: &AppState, claims: &ExternalClaims) -> Result<UserRecord, ApiError> {
    let tenant = claims.app_id.as_deref().unwrap_or("default");
    let user = match claims.id.filter(|_| claims.issued_here()) {
        Some(id) => {
            let jti = claims.jti.as_deref().unwrap_or("");
            state.auth.admit(tenant, id, jti, claims.issued())?;
            let t = tenant.to_owned();
            state
                .read(move |s| Ok(s.user(&t, id)?))
                .await?
                .ok_or_else(|| ApiError::Unauthorized("the token's user no longer exists".into()))?
        }
        None => resolve_external(state, tenant, &claims.sub).await?,
    };
    state.auth.admit_external(claims, &user)?;
    Ok(user)
}
