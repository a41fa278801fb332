//! Users: registration on every face, password login, visitors (a device's account, upgraded
//! to a user keeping its id), robots, profile changes and logout (users of an outside
//! identity provider are in [`super::external`]). Every new user starts from
//! [`new_user`] (the `[users]` defaults) and is stored by one write that refuses a taken
//! username with the same error on every face.

use std::net::IpAddr;
use std::sync::Arc;

use parlor_actors::{Logout, Party};
use parlor_storage::{Role, UserRecord};

use crate::auth::Claims;
use crate::error::ApiError;
use crate::state::AppState;

/// A user and a token just issued for them.
pub struct Login {
    pub user: UserRecord,
    pub token: String,
}

impl Login {
    fn issue(state: &AppState, user: UserRecord) -> Login {
        let (token, _) = state.auth.issue(&user);
        Login { user, token }
    }

    /// A token under the gate's `generation` read with the user (see
    /// [`Auth::issue_under`](crate::auth::Auth::issue_under)).
    fn issue_under(state: &AppState, user: UserRecord, generation: u64) -> Login {
        let (token, _) = state.auth.issue_under(&user, generation);
        Login { user, token }
    }
}

/// How messages name a user: the nickname, else the username.
pub fn party(u: &UserRecord) -> Party {
    let name = if u.nickname.is_empty() {
        u.username.clone()
    } else {
        u.nickname.clone()
    };
    Party {
        id: u.id,
        name,
        avatar: u.avatar.clone(),
    }
}

/// The `chatset` of users anyone may message (outside-provider users and robots).
pub(super) const OPEN_USERSET: &str = r#"{"chatset":{"visitor":2,"user":2}}"#;

// ---------------------------------------------------------------------------------------
// Input rules

/// A uni-app username: 4 to 20 letters, digits or `_`.
pub fn check_username(name: &str) -> Result<(), ApiError> {
    let ok = (4..=20).contains(&name.chars().count())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid("username must be 4 to 20 letters, digits or _"))
    }
}

/// A uni-app password: 6 to 20 characters.
pub fn check_password(pw: &str) -> Result<(), ApiError> {
    if (6..=20).contains(&pw.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::invalid("password must be 6 to 20 characters"))
    }
}

// ---------------------------------------------------------------------------------------
// Creating users

/// A user of `tenant` named `username` with the configured defaults, not stored yet.
pub fn new_user(state: &AppState, tenant: &str, username: &str, role: Role) -> UserRecord {
    let defaults = &state.config.users;
    let now = parlor_actors::now_ms();
    UserRecord {
        id: 0,
        uuid: uuid::Uuid::new_v4().to_string(),
        tenant: tenant.to_owned(),
        username: username.to_owned(),
        password_hash: String::new(),
        nickname: String::new(),
        avatar: defaults.default_avatar.clone(),
        role,
        status: 1,
        mobile: None,
        email: None,
        gender: "unknown".into(),
        birthday: None,
        bio: None,
        location: None,
        website: None,
        userset: defaults.default_userset.clone(),
        invite_confirm: defaults.default_invite_confirm,
        device_id: None,
        uniplatform: String::new(),
        devicemodel: String::new(),
        deviceos: String::new(),
        devicebrand: String::new(),
        created_ms: now,
        updated_ms: now,
        last_login_ms: None,
    }
}

/// The argon2 hash of `password`, computed on a blocking thread.
pub async fn hash_password(state: &AppState, password: String) -> Result<String, ApiError> {
    let _turn = state.guard.hashing().await?;
    let auth = state.auth.clone();
    actix_web::web::block(move || auth.hash_password(&password)).await?
}

/// Whether `password` matches `hash`: checked on a blocking thread, in a turn of the
/// hashing bound.
pub async fn password_matches(state: &AppState, hash: String, password: String) -> Result<bool, ApiError> {
    let _turn = state.guard.hashing().await?;
    let auth = state.auth.clone();
    Ok(actix_web::web::block(move || auth.check_password(&hash, &password)).await?)
}

/// A taken username, the same refusal on every face.
fn taken(username: &str) -> impl FnOnce(parlor_storage::Error) -> ApiError + '_ {
    move |e| match e {
        parlor_storage::Error::Conflict(_) => {
            ApiError::Conflict(format!("username {username} is already taken"))
        }
        other => other.into(),
    }
}

/// Stores a new user; a taken username is a conflict.
pub async fn insert(state: &AppState, mut user: UserRecord) -> Result<UserRecord, ApiError> {
    let username = user.username.clone();
    state
        .store
        .writer()
        .write(move |tx| {
            tx.insert_user(&mut user)?;
            Ok(user)
        })
        .await
        .map_err(taken(&username))
}

/// What a registration carries beside the username and password.
#[derive(Debug, Default)]
pub struct Profile {
    pub nickname: Option<String>,
    pub email: Option<String>,
}

/// Registers a user with a password and returns it with a token.
pub async fn register(
    state: &AppState,
    tenant: &str,
    username: &str,
    password: String,
    profile: Profile,
) -> Result<Login, ApiError> {
    let mut user = new_user(state, tenant, username, Role::User);
    if let Some(n) = profile.nickname {
        user.nickname = n;
    }
    user.email = profile.email;
    user.password_hash = hash_password(state, password).await?;
    let user = insert(state, user).await?;
    Ok(Login::issue(state, user))
}

/// A robot named `name`: a new one (with `uuid` when given), or the robot `existing` renamed;
/// either way with a new password hash. Anyone may message a robot; its login name is `rb`
/// and 12 hex digits, free in the tenant.
pub async fn put_robot(
    state: &AppState,
    tenant: &str,
    existing: Option<UserRecord>,
    uuid: Option<String>,
    name: String,
    password: String,
) -> Result<UserRecord, ApiError> {
    let hash = hash_password(state, password).await?;
    if let Some(mut u) = existing {
        if u.role != Role::Robot {
            return Err(ApiError::invalid(format!("user {} is not a robot", u.uuid)));
        }
        u.nickname = name;
        u.password_hash = hash;
        u.updated_ms = parlor_actors::now_ms();
        let stored = u.clone();
        state.store.writer().write(move |tx| tx.put_user(&stored)).await?;
        return Ok(u);
    }
    let mut u = new_user(state, tenant, "", Role::Robot);
    u.uuid = uuid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    u.nickname = name;
    u.password_hash = hash;
    u.userset = OPEN_USERSET.into();
    state
        .store
        .writer()
        .write(move |tx| {
            loop {
                u.username = format!("rb{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                if tx.user_id_by_username(&u.tenant, &u.username)?.is_none() {
                    break;
                }
            }
            tx.insert_user(&mut u)?;
            Ok(u)
        })
        .await
        .map_err(|e| match e {
            parlor_storage::Error::Conflict(m) => ApiError::Invalid(m),
            other => other.into(),
        })
}

// ---------------------------------------------------------------------------------------
// Reading and changing users

/// User `id` of `tenant` as named in a notice; an unknown id is named by its number, and
/// the operation it is for refuses it (not a member, no pending request).
pub async fn party_of(state: &AppState, tenant: &str, id: u64) -> Result<Party, ApiError> {
    let t = tenant.to_owned();
    let user = state.read(move |s| Ok(s.user(&t, id)?)).await?;
    Ok(user.map_or_else(
        || Party {
            id,
            name: id.to_string(),
            avatar: String::new(),
        },
        |u| party(&u),
    ))
}

/// A user of `tenant`, refusing an unknown id.
pub async fn load(state: &AppState, tenant: &str, id: u64) -> Result<UserRecord, ApiError> {
    let tenant = tenant.to_owned();
    state
        .read(move |s| {
            s.user(&tenant, id)?
                .ok_or_else(|| ApiError::NotFound(format!("user {id} does not exist")))
        })
        .await
}

/// Changes a stored user in one write and returns it.
pub async fn update<F>(state: &AppState, tenant: &str, id: u64, change: F) -> Result<UserRecord, ApiError>
where
    F: FnOnce(&mut UserRecord) + Send + 'static,
{
    let tenant = tenant.to_owned();
    Ok(state
        .store
        .writer()
        .write(move |tx| {
            let mut u = tx
                .user(&tenant, id)?
                .ok_or_else(|| parlor_storage::Error::NotFound(format!("user {id}")))?;
            change(&mut u);
            tx.put_user(&u)?;
            Ok(u)
        })
        .await?)
}

/// Changes a user's profile, stamping its update time.
pub async fn update_profile<F>(
    state: &AppState,
    tenant: &str,
    id: u64,
    change: F,
) -> Result<UserRecord, ApiError>
where
    F: FnOnce(&mut UserRecord) + Send + 'static,
{
    update(state, tenant, id, move |u| {
        change(u);
        u.updated_ms = parlor_actors::now_ms();
    })
    .await
}

/// The user `username` of `tenant` if `password` is theirs, with the generation of the
/// user's gate read with it (the token is issued under it); a disabled account is refused
/// after the password was checked. The attempt counts against the login throttles of the
/// account and of `addr` first; an unknown user's password is checked against a decoy, so
/// a refusal takes the same time whether the user exists or not.
pub async fn check_login(
    state: &AppState,
    tenant: &str,
    username: &str,
    password: String,
    addr: Option<IpAddr>,
) -> Result<(UserRecord, u64), ApiError> {
    let wrong = || ApiError::Unauthorized("username or password is wrong".into());
    state.guard.attempt(tenant, username, addr)?;
    let (t, name) = (tenant.to_owned(), username.to_owned());
    let (user, generation) = state
        .read(move |s| {
            let user = s.user_by_username(&t, &name)?;
            let generation = match &user {
                Some(u) => s.gate(&t, u.id)?.generation,
                None => 0,
            };
            Ok((user, generation))
        })
        .await?;
    let user = user.filter(|u| !u.password_hash.is_empty());
    let hash = user
        .as_ref()
        .map_or_else(|| state.guard.decoy().to_owned(), |u| u.password_hash.clone());
    let matches = password_matches(state, hash, password).await?;
    let user = match user {
        Some(u) if matches => u,
        _ => return Err(wrong()),
    };
    if user.status != 1 {
        return Err(ApiError::Forbidden("this account is disabled".into()));
    }
    Ok((user, generation))
}

/// Logs `username` in: checks the password, records the login (time and, for a visitor's
/// device, its fields) and issues a token.
pub async fn login(
    state: &AppState,
    tenant: &str,
    username: &str,
    password: String,
    device: Option<Device>,
    addr: Option<IpAddr>,
) -> Result<Login, ApiError> {
    let (user, generation) = check_login(state, tenant, username, password, addr).await?;
    let user = touch_login(state, tenant, user.id, device).await?;
    Ok(Login::issue_under(state, user, generation))
}

/// Logs `username` in without recording the login (the chat-room face's login).
pub async fn login_quietly(
    state: &AppState,
    tenant: &str,
    username: &str,
    password: String,
    addr: Option<IpAddr>,
) -> Result<Login, ApiError> {
    let (user, generation) = check_login(state, tenant, username, password, addr).await?;
    Ok(Login::issue_under(state, user, generation))
}

/// Records a login (time and device fields) and returns the updated user.
async fn touch_login(
    state: &AppState,
    tenant: &str,
    id: u64,
    device: Option<Device>,
) -> Result<UserRecord, ApiError> {
    update(state, tenant, id, move |u| {
        u.last_login_ms = Some(parlor_actors::now_ms());
        if let Some(d) = device {
            d.apply(u);
        }
    })
    .await
}

/// Revokes the token of `claims` (at once in memory, persisted) and closes its sockets.
pub async fn logout(state: &AppState, claims: &Claims) -> Result<(), ApiError> {
    let (jti, exp) = (claims.jti.clone(), claims.exp);
    state.auth.revoke(&jti, exp);
    let persisted = jti.clone();
    state
        .store
        .writer()
        .write(move |tx| tx.revoke_token(&persisted, exp))
        .await?;
    state.router.do_send(Logout {
        user: parlor_actors::UserKey::new(&claims.app_id, claims.id),
        jti: Arc::from(jti.as_str()),
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Visitors

/// The device fields a visitor request may carry.
#[derive(Debug, Clone)]
pub struct Device {
    pub device_id: String,
    pub uniplatform: Option<String>,
    pub devicemodel: Option<String>,
    pub deviceos: Option<String>,
    pub devicebrand: Option<String>,
}

impl Device {
    fn apply(self, u: &mut UserRecord) {
        u.device_id = Some(self.device_id);
        if let Some(v) = self.uniplatform {
            u.uniplatform = v;
        }
        if let Some(v) = self.devicemodel {
            u.devicemodel = v;
        }
        if let Some(v) = self.deviceos {
            u.deviceos = v;
        }
        if let Some(v) = self.devicebrand {
            u.devicebrand = v;
        }
    }
}

/// The visitor account of a device (only a visitor: once upgraded the device gets a new one).
async fn visitor_of(state: &AppState, tenant: &str, device: &str) -> Result<Option<UserRecord>, ApiError> {
    let (t, d) = (tenant.to_owned(), device.to_owned());
    Ok(state
        .read(move |s| Ok(s.user_by_device(&t, &d)?))
        .await?
        .filter(|u| u.role == Role::Visitor))
}

/// The device's visitor, logged in again, or a new visitor named `VIS` and the first 8 hex
/// digits of the device id (all 32 when another device took that name).
pub async fn visitor(
    state: &AppState,
    tenant: &str,
    device: Device,
    addr: Option<IpAddr>,
) -> Result<Login, ApiError> {
    let user = match visitor_of(state, tenant, &device.device_id).await? {
        Some(u) => touch_login(state, tenant, u.id, Some(device)).await?,
        None => {
            if let Some(addr) = addr {
                state.guard.new_visitor(addr)?;
            }
            let compact: String = device.device_id.chars().filter(|c| *c != '-').collect();
            let short = format!("VIS{}", &compact[..8.min(compact.len())]);
            let long = format!("VIS{compact}");
            let t = tenant.to_owned();
            let mut u = new_user(state, tenant, &short, Role::Visitor);
            state
                .store
                .writer()
                .write(move |tx| {
                    if tx.user_id_by_username(&t, &short)?.is_some() {
                        u.username = long;
                    }
                    u.last_login_ms = Some(u.created_ms);
                    device.apply(&mut u);
                    tx.insert_user(&mut u)?;
                    tx.bind_device(&t, u.device_id.as_deref().unwrap_or_default(), u.id)?;
                    Ok(u)
                })
                .await?
        }
    };
    Ok(Login::issue(state, user))
}

/// Registers `username` from a device: the device's visitor becomes that user (same id, so
/// its conversations carry over), or a new user is made.
pub async fn register_from_device(
    state: &AppState,
    tenant: &str,
    username: &str,
    password: String,
    device: Device,
) -> Result<Login, ApiError> {
    let password_hash = hash_password(state, password).await?;
    let user = match visitor_of(state, tenant, &device.device_id).await? {
        Some(v) => {
            let (t, name) = (tenant.to_owned(), username.to_owned());
            state
                .store
                .writer()
                .write(move |tx| {
                    let mut u = tx
                        .user(&t, v.id)?
                        .ok_or_else(|| parlor_storage::Error::NotFound("visitor".into()))?;
                    u.username = name;
                    u.password_hash = password_hash;
                    u.role = Role::User;
                    u.updated_ms = parlor_actors::now_ms();
                    u.last_login_ms = Some(u.updated_ms);
                    device.apply(&mut u);
                    tx.put_user(&u)?;
                    Ok(u)
                })
                .await
                .map_err(taken(username))?
        }
        None => {
            let mut u = new_user(state, tenant, username, Role::User);
            u.password_hash = password_hash;
            u.last_login_ms = Some(u.created_ms);
            device.apply(&mut u);
            insert(state, u).await?
        }
    };
    Ok(Login::issue(state, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_passwords() {
        assert!(check_username("my01").is_ok());
        assert!(check_username("my_user_2024").is_ok());
        assert!(check_username("abc").is_err());
        assert!(check_username("a".repeat(21).as_str()).is_err());
        assert!(check_username("bad-name").is_err());
        assert!(check_password("123456").is_ok());
        assert!(check_password("12345").is_err());
        assert!(check_password(&"x".repeat(21)).is_err());
    }
}
