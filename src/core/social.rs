//! The social graph, shared by the faces: friendships (one relation, whether made by a
//! uni-app application, `autoAddFriendAndAgree` or a chat-room contact), friend
//! applications and blocks. Every change goes through the Writer in one transaction that
//! checks before it writes; an application made or answered queues its `friend.request`
//! webhook event in that transaction.

use parlor_storage::{ApplyRecord, ApplyStatus, FriendRecord, UserRecord};

use crate::error::ApiError;
use crate::state::AppState;

/// A refusal decided inside a write transaction, or a storage failure.
enum Outcome<T> {
    Done(T),
    Refused(ApiError),
}

type TxResult<T> = parlor_storage::Result<Outcome<T>>;

async fn write<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&parlor_storage::Tx<'_>) -> TxResult<T> + Send + 'static,
{
    match state.store.writer().write(f).await? {
        Outcome::Done(v) => Ok(v),
        Outcome::Refused(e) => Err(e),
    }
}

fn friend_row(remark: &str, now: u64) -> FriendRecord {
    FriendRecord {
        row_id: 0,
        remark: remark.to_owned(),
        friendlookme: 1,
        melookfriend: 1,
        star: false,
        created_ms: now,
        updated_ms: now,
    }
}

/// Marks the pending applications between `a` and `b`, either way, as agreed: once they
/// are friends, there is nothing left to answer.
fn settle_pending(
    tx: &parlor_storage::Tx<'_>,
    tenant: &str,
    a: u64,
    b: u64,
    now: u64,
) -> parlor_storage::Result<()> {
    for (from, to) in [(a, b), (b, a)] {
        if let Some(mut p) = tx
            .apply_between(tenant, from, to)?
            .filter(|p| p.status == ApplyStatus::Pending)
        {
            p.status = ApplyStatus::Agree;
            p.updated_ms = now;
            tx.put_apply(tenant, &mut p)?;
        }
    }
    Ok(())
}

/// Checks that `target` exists and is not `me`.
pub async fn other_user(
    state: &AppState,
    tenant: &str,
    me: u64,
    target: u64,
) -> Result<UserRecord, ApiError> {
    if target == me {
        return Err(ApiError::invalid("that is you"));
    }
    let t = tenant.to_owned();
    state
        .read(move |s| {
            s.user(&t, target)?
                .ok_or_else(|| ApiError::NotFound(format!("user {target} does not exist")))
        })
        .await
}

/// Applies to become friends with `target`. Refuses friends, a pending application from me,
/// and a target who blocked me.
pub async fn apply(
    state: &AppState,
    tenant: &str,
    me: u64,
    target: u64,
    note: String,
) -> Result<ApplyRecord, ApiError> {
    // A visitor cannot list or answer applications: one to a visitor would wait forever.
    if other_user(state, tenant, me, target).await?.role == parlor_storage::Role::Visitor {
        return Err(ApiError::Forbidden(
            "visitors cannot be applied to; they add friends themselves".into(),
        ));
    }
    let tenant = tenant.to_owned();
    write(state, move |tx| {
        if tx.friend(&tenant, me, target)?.is_some() {
            return Ok(Outcome::Refused(ApiError::Conflict(
                "you are already friends".into(),
            )));
        }
        if tx.blocked(&tenant, target, me)? {
            return Ok(Outcome::Refused(ApiError::Forbidden(
                "this user has blocked you".into(),
            )));
        }
        if tx
            .apply_between(&tenant, me, target)?
            .is_some_and(|a| a.status == ApplyStatus::Pending)
        {
            return Ok(Outcome::Refused(ApiError::Conflict(
                "you already applied; wait for an answer".into(),
            )));
        }
        let now = parlor_actors::now_ms();
        let mut a = ApplyRecord {
            id: 0,
            applicant: me,
            target,
            note,
            status: ApplyStatus::Pending,
            created_ms: now,
            updated_ms: now,
        };
        tx.put_apply(&tenant, &mut a)?;
        parlor_actors::hooks::friend_request(tx, &tenant, &a)?;
        Ok(Outcome::Done(a))
    })
    .await
}

/// Answers an application addressed to `me`. `agree` makes both sides friends, `remark`
/// being my name for the applicant.
pub async fn handle(
    state: &AppState,
    tenant: &str,
    me: u64,
    id: u64,
    status: ApplyStatus,
    remark: String,
) -> Result<ApplyRecord, ApiError> {
    let tenant = tenant.to_owned();
    write(state, move |tx| {
        let Some(mut a) = tx.apply(&tenant, id)? else {
            return Ok(Outcome::Refused(ApiError::NotFound(format!(
                "application {id} does not exist"
            ))));
        };
        if a.target != me {
            return Ok(Outcome::Refused(ApiError::Forbidden(
                "this application is not addressed to you".into(),
            )));
        }
        if a.status != ApplyStatus::Pending {
            return Ok(Outcome::Refused(ApiError::Conflict(format!(
                "this application was already answered: {}",
                a.status.as_str()
            ))));
        }
        let now = parlor_actors::now_ms();
        if status == ApplyStatus::Agree && tx.user(&tenant, a.applicant)?.is_some() {
            if tx.friend(&tenant, me, a.applicant)?.is_none() {
                tx.put_friend(&tenant, me, a.applicant, &mut friend_row(&remark, now))?;
            }
            if tx.friend(&tenant, a.applicant, me)?.is_none() {
                tx.put_friend(&tenant, a.applicant, me, &mut friend_row("", now))?;
            }
            // Becoming friends lifts my block of the applicant.
            tx.set_block(&tenant, me, a.applicant, false, now)?;
            settle_pending(tx, &tenant, me, a.applicant, now)?;
        }
        a.status = status;
        a.updated_ms = now;
        tx.put_apply(&tenant, &mut a)?;
        parlor_actors::hooks::friend_request(tx, &tenant, &a)?;
        Ok(Outcome::Done(a))
    })
    .await
}

/// Makes `me` and `target` friends at once (an application recorded as agreed). With
/// `need_open`, only when the target does not require approval (`invite_confirm` 0).
pub async fn befriend(
    state: &AppState,
    tenant: &str,
    me: u64,
    target: u64,
    note: String,
    need_open: bool,
) -> Result<(), ApiError> {
    let user = other_user(state, tenant, me, target).await?;
    if need_open && user.invite_confirm != 0 {
        return Err(ApiError::Forbidden(
            "this user approves friend requests: apply instead".into(),
        ));
    }
    let tenant = tenant.to_owned();
    write(state, move |tx| {
        if tx.friend(&tenant, me, target)?.is_some() && tx.friend(&tenant, target, me)?.is_some() {
            return Ok(Outcome::Refused(ApiError::Conflict(
                "you are already friends".into(),
            )));
        }
        if tx.blocked(&tenant, target, me)? {
            return Ok(Outcome::Refused(ApiError::Forbidden(
                "this user has blocked you".into(),
            )));
        }
        let now = parlor_actors::now_ms();
        if tx.friend(&tenant, me, target)?.is_none() {
            tx.put_friend(&tenant, me, target, &mut friend_row("", now))?;
        }
        if tx.friend(&tenant, target, me)?.is_none() {
            tx.put_friend(&tenant, target, me, &mut friend_row("", now))?;
        }
        tx.set_block(&tenant, me, target, false, now)?;
        settle_pending(tx, &tenant, me, target, now)?;
        let mut a = ApplyRecord {
            id: 0,
            applicant: me,
            target,
            note,
            status: ApplyStatus::Agree,
            created_ms: now,
            updated_ms: now,
        };
        tx.put_apply(&tenant, &mut a)?;
        parlor_actors::hooks::friend_request(tx, &tenant, &a)?;
        Ok(Outcome::Done(()))
    })
    .await
}

/// Ends a friendship on both sides. Refuses when there is none.
pub async fn unfriend(state: &AppState, tenant: &str, me: u64, friend: u64) -> Result<(), ApiError> {
    let tenant = tenant.to_owned();
    write(state, move |tx| {
        if tx.friend(&tenant, me, friend)?.is_none() {
            return Ok(Outcome::Refused(ApiError::NotFound(format!(
                "user {friend} is not your friend"
            ))));
        }
        tx.remove_friend(&tenant, me, friend)?;
        tx.remove_friend(&tenant, friend, me)?;
        Ok(Outcome::Done(()))
    })
    .await
}

/// Changes my side of a friendship. Refuses when there is none.
pub async fn update_friend<F>(
    state: &AppState,
    tenant: &str,
    me: u64,
    friend: u64,
    change: F,
) -> Result<FriendRecord, ApiError>
where
    F: FnOnce(&mut FriendRecord) + Send + 'static,
{
    let tenant = tenant.to_owned();
    write(state, move |tx| {
        let Some(mut row) = tx.friend(&tenant, me, friend)? else {
            return Ok(Outcome::Refused(ApiError::NotFound(format!(
                "user {friend} is not your friend"
            ))));
        };
        change(&mut row);
        row.updated_ms = parlor_actors::now_ms();
        tx.put_friend(&tenant, me, friend, &mut row)?;
        Ok(Outcome::Done(row))
    })
    .await
}

/// Blocks (`on`) or unblocks `target`. `strict` refuses a block that already exists and an
/// unblock of a user not blocked (the chat-room face); otherwise it is idempotent.
pub async fn set_block(
    state: &AppState,
    tenant: &str,
    me: u64,
    target: u64,
    on: bool,
    strict: bool,
) -> Result<(), ApiError> {
    other_user(state, tenant, me, target).await?;
    let tenant = tenant.to_owned();
    write(state, move |tx| {
        let was = tx.blocked(&tenant, me, target)?;
        if strict && was == on {
            return Ok(Outcome::Refused(if on {
                ApiError::Conflict(format!("user {target} is already blocked"))
            } else {
                ApiError::NotFound(format!("user {target} is not blocked"))
            }));
        }
        tx.set_block(&tenant, me, target, on, parlor_actors::now_ms())?;
        Ok(Outcome::Done(()))
    })
    .await
}

/// The capital letter a friend list files `name` under: its first letter, the pinyin
/// initial of a Chinese first character, or `#`.
pub fn initial(name: &str) -> String {
    use pinyin::ToPinyin;
    let Some(first) = name.trim().chars().next() else {
        return "#".into();
    };
    if first.is_ascii_alphabetic() {
        return first.to_ascii_uppercase().to_string();
    }
    match first.to_pinyin() {
        Some(p) => p.first_letter().to_ascii_uppercase(),
        None => "#".into(),
    }
}

/// Pushes a notice frame about the social graph (an application, an answer, a friendship)
/// to every session of user `to`; nothing is stored, and nobody offline gets it later.
pub fn notify(state: &AppState, tenant: &str, to: u64, frame: parlor_actors::wire::Frame) {
    state.router.do_send(parlor_actors::Notify {
        user: parlor_actors::UserKey::new(tenant, to),
        frame,
    });
}

#[cfg(test)]
mod tests {
    use super::initial;

    #[test]
    fn initials() {
        assert_eq!(initial("alice"), "A");
        assert_eq!(initial("Bob"), "B");
        assert_eq!(initial("魂牵一梦"), "H");
        assert_eq!(initial("张三"), "Z");
        assert_eq!(initial("好友"), "H");
        assert_eq!(initial("123"), "#");
        assert_eq!(initial("_x"), "#");
        assert_eq!(initial(""), "#");
        assert_eq!(initial("😀"), "#");
    }
}
