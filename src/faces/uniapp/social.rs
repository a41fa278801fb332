//! The uni-app face's friend routes (document sections 五 to 十二, 十七, 十九, 三十三,
//! 三十九, 四十): applications, the friend list grouped by initial, friend settings,
//! blacklist and star, and the automatic friendship of users who need no approval.
//! Visitors may only use `autoAddFriendAndAgree`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest};
use parlor_actors::wire;
use parlor_storage::{ApplyRecord, ApplyStatus, FriendRecord, UserRecord};
use serde_json::{json, Value};

use super::{ok, userinfo_json, Form, Me, Result, State};
use crate::core::accounts::load as load_user;
use crate::core::{check_len, social};
use crate::error::ApiError;
use crate::faces::{iso_time, local_time};
use crate::routes::Routes;
use crate::state::AppState;

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    r.post("/api/chat/applyfriend", apply_friend)
        .get("/api/chat/listapplyfriend", list_apply)
        .get("/api/chat/listapplyfriend/{page}", list_apply)
        .post("/api/chat/handleapply/{id}", handle_apply)
        .get("/api/chat/goodfriendlist", friend_list)
        .get("/api/chat/goodfriendlist/{page}", friend_list)
        .get("/api/chat/getgoodfriendinfo/{id}", friend_info)
        .post("/api/chat/setblackgoodfriend/{id}", set_black)
        .post("/api/chat/setstargoodfriend/{id}", set_star)
        .post("/api/chat/setmeOrfriendCanSee/{id}", set_can_see)
        .post("/api/chat/isApplyfriend/{uuid}", is_apply_friend)
        .post("/api/chat/ismygoodfriend/{id}", is_my_friend)
        .post("/api/chat/deletegoodfriend/{id}", delete_friend)
        .post("/api/chat/getUserSetInfo", user_set_info)
        .post("/api/chat/autoAddFriendAndAgree", auto_add_friend);
}

/// `page` (from 1) and `limit` of a list route: from the path and `?limit=`, also the
/// document's `/1&limit=3` form. A limit over `limits.page_max` is clamped.
pub fn paging(
    req: &HttpRequest,
    state: &AppState,
    default_limit: usize,
) -> std::result::Result<(usize, usize), ApiError> {
    let raw = req.match_info().get("page").unwrap_or("1");
    let (page_text, inline) = match raw.split_once('&') {
        Some((p, rest)) => (p, Some(rest)),
        None => (raw, None),
    };
    let page: usize = page_text
        .parse()
        .map_err(|_| ApiError::invalid("page must be a positive integer"))?;
    if page == 0 {
        return Err(ApiError::invalid("page must be a positive integer"));
    }
    let mut limit_text = inline.and_then(|q| q.strip_prefix("limit=")).map(str::to_owned);
    if let Ok(q) = web::Query::<Vec<(String, String)>>::from_query(req.query_string()) {
        if let Some((_, v)) = q.iter().find(|(k, _)| k == "limit") {
            limit_text = Some(v.clone());
        }
    }
    let limit = match limit_text.filter(|t| !t.is_empty()) {
        None => default_limit,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("limit must be a positive integer"))?,
    };
    if limit == 0 {
        return Err(ApiError::invalid("limit must be a positive integer"));
    }
    let limit = limit.min(state.config.limits.page_max);
    // A page far past the end is empty; keep `(page - 1) * limit` from overflowing.
    Ok((page.min(usize::MAX / limit), limit))
}

fn path_id(req: &HttpRequest, name: &str) -> std::result::Result<u64, ApiError> {
    req.match_info()
        .get(name)
        .unwrap_or_default()
        .parse()
        .map_err(|_| ApiError::invalid(format!("{name} must be an integer")))
}

fn brief(u: &UserRecord) -> Value {
    json!({"id": u.id, "username": u.username, "avatar": u.avatar, "nickname": u.nickname})
}

fn apply_json(a: &ApplyRecord) -> Value {
    json!({
        "create_time": local_time(a.created_ms),
        "id": a.id,
        "user_id": a.applicant,
        "friend_id": a.target,
        "nickname": a.note,
        "friendlookme": 1,
        "melookfriend": 1,
        "ismystarfriend": 0,
        "isblack": 0,
        "status": a.status.as_str(),
        "order": 50,
        "update_time": iso_time(a.updated_ms),
        "userId": a.applicant,
    })
}

fn friend_json(me: u64, friend: u64, row: &FriendRecord, black: bool) -> Value {
    json!({
        "id": row.row_id,
        "user_id": me,
        "friend_id": friend,
        "nickname": row.remark,
        "friendlookme": row.friendlookme,
        "melookfriend": row.melookfriend,
        "ismystarfriend": u8::from(row.star),
        "isblack": u8::from(black),
        "status": 1,
    })
}

/// A `systemNotice` frame about the social graph, from `from` to `to`.
fn notice(action: &str, from: &UserRecord, to: u64, text: String, extra: Value) -> wire::Frame {
    let name = if from.nickname.is_empty() {
        &from.username
    } else {
        &from.nickname
    };
    wire::frame(
        "systemNotice",
        json!({
            "actionType": action,
            "chatType": "single",
            "from_id": from.id,
            "from_name": name,
            "from_avatar": from.avatar,
            "to_id": to,
            "data": {"data": text, "dataType": false, "otherData": extra},
            "create_time": parlor_actors::now_ms(),
        }),
    )
}

fn display_name(u: &UserRecord) -> &str {
    if u.nickname.is_empty() {
        &u.username
    } else {
        &u.nickname
    }
}

async fn apply_friend(state: State, me: Me, form: Form) -> Result {
    me.not_visitor("apply for friends")?;
    let target = form.u64("friend_id")?;
    let note = form.opt_str("nickname")?.unwrap_or_default();
    check_len("nickname", &note, 0, 50)?;
    let a = social::apply(&state, me.tenant(), me.id(), target, note).await?;
    let from = load_user(&state, me.tenant(), me.id()).await?;
    let text = format!("{}申请加您为好友", display_name(&from));
    let frame = notice("applyFriend", &from, target, text, apply_json(&a));
    social::notify(&state, me.tenant(), target, frame);
    Ok(ok("ok"))
}

async fn list_apply(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("have friend applications")?;
    let (page, limit) = paging(&req, &state, 10)?;
    let (tenant, id) = (me.tenant().to_owned(), me.id());
    let (items, pending) = state
        .read(move |s| {
            let (page, pending) = s.applies_to(&tenant, id, (page - 1) * limit, limit)?;
            let mut items = Vec::with_capacity(page.len());
            for a in page {
                let user = s.user(&tenant, a.applicant)?;
                items.push((a, user));
            }
            Ok((items, pending))
        })
        .await?;
    let alldata: Vec<Value> = items
        .iter()
        .map(|(a, u)| {
            let mut v = apply_json(a);
            v["user"] = u.as_ref().map(brief).unwrap_or(Value::Null);
            v
        })
        .collect();
    Ok(ok(json!({"alldata": alldata, "pendingCount": pending})))
}

async fn handle_apply(req: HttpRequest, state: State, me: Me, form: Form) -> Result {
    me.not_visitor("answer friend applications")?;
    let id = path_id(&req, "id")?;
    let status = form.str("status")?;
    let status = ApplyStatus::parse(&status)
        .ok_or_else(|| ApiError::invalid("status must be pending, refuse, agree or ignore"))?;
    let remark = form.opt_str("nickname")?.unwrap_or_default();
    check_len("nickname", &remark, 0, 50)?;
    if status == ApplyStatus::Pending {
        // Leaving it pending changes nothing, but the application must be mine.
        let (tenant, my_id) = (me.tenant().to_owned(), me.id());
        let a = state.read(move |s| Ok(s.apply(&tenant, id)?)).await?;
        return match a {
            None => Err(ApiError::NotFound(format!("application {id} does not exist")).into()),
            Some(a) if a.target != my_id => {
                Err(ApiError::Forbidden("this application is not addressed to you".into()).into())
            }
            Some(_) => Ok(ok("ok")),
        };
    }
    let a = social::handle(&state, me.tenant(), me.id(), id, status, remark).await?;
    if status == ApplyStatus::Agree {
        let from = load_user(&state, me.tenant(), me.id()).await?;
        let text = format!("{}同意了您的好友申请", display_name(&from));
        let frame = notice("agreeFriend", &from, a.applicant, text, apply_json(&a));
        social::notify(&state, me.tenant(), a.applicant, frame);
    }
    Ok(ok("ok"))
}

async fn friend_list(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("have friends")?;
    let (page, limit) = paging(&req, &state, 2000)?;
    let (tenant, id) = (me.tenant().to_owned(), me.id());
    let friends = state
        .read(move |s| {
            let mut out = Vec::new();
            for (friend, row) in s.friends_of(&tenant, id)? {
                if let Some(user) = s.user(&tenant, friend)? {
                    out.push((row, user));
                }
            }
            Ok(out)
        })
        .await?;
    let total = friends.len();
    let mut entries: Vec<(String, String, Value)> = friends
        .iter()
        .map(|(row, u)| {
            let name = if !row.remark.is_empty() {
                row.remark.clone()
            } else {
                display_name(u).to_owned()
            };
            let entry = json!({
                "id": row.row_id,
                "beizhu": row.remark,
                "username": u.username,
                "avatar": u.avatar,
                "friend_nickname": u.nickname,
                "friend_id": u.id,
                "name": name,
            });
            (social::initial(&name), name.to_lowercase(), entry)
        })
        .collect();
    // A to Z, then `#`; by name within a letter.
    entries.sort_by(|a, b| ((a.0 == "#"), &a.0, &a.1).cmp(&((b.0 == "#"), &b.0, &b.1)));
    let page_entries = entries.into_iter().skip((page - 1) * limit).take(limit);
    let mut groups: BTreeMap<(bool, String), Vec<Value>> = BTreeMap::new();
    for (title, _, entry) in page_entries {
        groups.entry((title == "#", title)).or_default().push(entry);
    }
    let index_list: Vec<&String> = groups.keys().map(|(_, t)| t).collect();
    let new_list: Vec<Value> = groups
        .iter()
        .map(|((_, t), list)| json!({"title": t, "list": list}))
        .collect();
    Ok(ok(json!({
        "count": total,
        "rows": {"newList": new_list, "indexList": index_list, "total": total},
    })))
}

async fn friend_info(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("have friends")?;
    let friend = path_id(&req, "id")?;
    let (tenant, id) = (me.tenant().to_owned(), me.id());
    let (row, user, black) = state
        .read(move |s| {
            let row = s
                .friend(&tenant, id, friend)?
                .ok_or_else(|| ApiError::NotFound(format!("user {friend} is not your friend")))?;
            let user = s
                .user(&tenant, friend)?
                .ok_or_else(|| ApiError::NotFound(format!("user {friend} does not exist")))?;
            let black = s.blocked(&tenant, id, friend)?;
            Ok((row, user, black))
        })
        .await?;
    let mut v = friend_json(me.id(), friend, &row, black);
    v["friendinfo"] = json!({
        "id": user.id,
        "username": user.username,
        "avatar": user.avatar,
        "nickname": user.nickname,
        "role": user.role.as_str(),
        "status": user.status,
        "userinfo": userinfo_json(&user),
    });
    Ok(ok(v))
}

/// A 0/1 field, or `None` when absent.
fn flag(form: &Form, name: &str) -> std::result::Result<Option<bool>, ApiError> {
    match form.opt_u64(name)? {
        None => Ok(None),
        Some(0) => Ok(Some(false)),
        Some(1) => Ok(Some(true)),
        Some(_) => Err(ApiError::invalid(format!("{name} must be 0 or 1"))),
    }
}

async fn set_black(req: HttpRequest, state: State, me: Me, form: Form) -> Result {
    me.not_visitor("keep a blacklist")?;
    let friend = path_id(&req, "id")?;
    let wanted = flag(&form, "isblack")?;
    let (tenant, id) = (me.tenant().to_owned(), me.id());
    let (is_friend, black) = state
        .read(move |s| {
            Ok((
                s.friend(&tenant, id, friend)?.is_some(),
                s.blocked(&tenant, id, friend)?,
            ))
        })
        .await?;
    if !is_friend {
        return Err(ApiError::NotFound(format!("user {friend} is not your friend")).into());
    }
    // Without `isblack` the route toggles, as the document's "move in or out".
    let on = wanted.unwrap_or(!black);
    social::set_block(&state, me.tenant(), me.id(), friend, on, false).await?;
    Ok(ok("ok"))
}

async fn set_star(req: HttpRequest, state: State, me: Me, form: Form) -> Result {
    me.not_visitor("star friends")?;
    let friend = path_id(&req, "id")?;
    let wanted = flag(&form, "star")?;
    social::update_friend(&state, me.tenant(), me.id(), friend, move |row| {
        row.star = wanted.unwrap_or(!row.star);
    })
    .await?;
    Ok(ok("ok"))
}

async fn set_can_see(req: HttpRequest, state: State, me: Me, form: Form) -> Result {
    me.not_visitor("change friend settings")?;
    let friend = path_id(&req, "id")?;
    let friendlookme = flag(&form, "friendlookme")?;
    let melookfriend = flag(&form, "melookfriend")?;
    if friendlookme.is_none() && melookfriend.is_none() {
        return Err(ApiError::invalid("friendlookme or melookfriend is required").into());
    }
    social::update_friend(&state, me.tenant(), me.id(), friend, move |row| {
        if let Some(v) = friendlookme {
            row.friendlookme = u8::from(v);
        }
        if let Some(v) = melookfriend {
            row.melookfriend = u8::from(v);
        }
    })
    .await?;
    Ok(ok("ok"))
}

async fn is_apply_friend(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("have friend applications")?;
    let uuid = req.match_info().get("uuid").unwrap_or_default().to_owned();
    let (tenant, id) = (me.tenant().to_owned(), me.id());
    let apply = state
        .read(move |s| {
            let applicant = s
                .user_by_uuid(&tenant, &uuid)?
                .ok_or_else(|| ApiError::NotFound(format!("user {uuid} does not exist")))?;
            Ok(s.apply_between(&tenant, applicant.id, id)?
                .filter(|a| a.status == ApplyStatus::Pending))
        })
        .await?;
    // `null`: that user has no pending application to me, so there is nothing to handle.
    Ok(ok(apply.as_ref().map(apply_json)))
}

async fn is_my_friend(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("have friends")?;
    let friend = path_id(&req, "id")?;
    let (tenant, id) = (me.tenant().to_owned(), me.id());
    let found = state
        .read(move |s| {
            s.user(&tenant, friend)?
                .ok_or_else(|| ApiError::NotFound(format!("user {friend} does not exist")))?;
            let row = s.friend(&tenant, id, friend)?;
            let black = s.blocked(&tenant, id, friend)?;
            Ok(row.map(|r| (r, black)))
        })
        .await?;
    // `false` when not friends.
    Ok(ok(found.map_or(json!(false), |(row, black)| {
        friend_json(me.id(), friend, &row, black)
    })))
}

async fn delete_friend(req: HttpRequest, state: State, me: Me) -> Result {
    me.not_visitor("have friends")?;
    let friend = path_id(&req, "id")?;
    social::unfriend(&state, me.tenant(), me.id(), friend).await?;
    Ok(ok("删除好友成功"))
}

async fn user_set_info(state: State, me: Me, form: Form) -> Result {
    me.not_visitor("read user settings")?;
    let target = form.u64("userid")?;
    let (tenant, id) = (me.tenant().to_owned(), me.id());
    let (user, friends, blocked) = state
        .read(move |s| {
            let user = s
                .user(&tenant, target)?
                .ok_or_else(|| ApiError::NotFound(format!("user {target} does not exist")))?;
            let friends = s.friend(&tenant, id, target)?.is_some();
            let blocked = s.blocked(&tenant, target, id)?;
            Ok((user, friends, blocked))
        })
        .await?;
    Ok(ok(json!({
        "id": user.id,
        "userset": user.userset,
        "invite_confirm": user.invite_confirm,
        "isgoodfriend": friends,
        // false when that user has blocked me: my messages would be refused.
        "isgoodfriend_status": !blocked,
    })))
}

async fn auto_add_friend(state: State, me: Me, form: Form) -> Result {
    let target = form.u64("friend_id")?;
    let note = form.opt_str("nickname")?.unwrap_or_default();
    check_len("nickname", &note, 0, 50)?;
    social::befriend(&state, me.tenant(), me.id(), target, note, true).await?;
    let from = load_user(&state, me.tenant(), me.id()).await?;
    let text = format!("{}已添加您为好友", display_name(&from));
    let frame = notice("addFriend", &from, target, text, json!({"friend_id": me.id()}));
    social::notify(&state, me.tenant(), target, frame);
    Ok(ok("ok"))
}
