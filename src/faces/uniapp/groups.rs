//! The uni-app face's group routes (document sections 二十一, 二十三 to 二十九, 三十五 to
//! 三十八): create from friends, list, info, name, notice, my nickname, dissolve or quit,
//! remove, invite, join setting, approve, and the group's QR code. Changes go through the
//! group's actor; reads come from redb.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use parlor_actors::wire::GroupJson;
use parlor_actors::{GroupOp, GroupOutcome};
use parlor_storage::{GroupRecord, MemberRecord, UserRecord};
use serde_json::{json, Value};

use super::social::paging;
use super::{ok, Form, Me, Result, State};
use crate::core::accounts::{self, load as load_user, party};
use crate::core::{check_len, groups};
use crate::error::ApiError;
use crate::faces::local_time;
use crate::routes::Routes;

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    r.post("/api/chat/group/create", create)
        .get("/api/chat/grouplist", list)
        .get("/api/chat/grouplist/{page}", list)
        .get("/api/chat/groupinfo/{id}", info)
        .post("/api/chat/groupUpdateName", rename)
        .post("/api/chat/groupremark", remark)
        .post("/api/chat/groupnickname", nickname)
        .post("/api/chat/groupDeleteOrQuit", delete_or_quit)
        .post("/api/chat/groupDeleteUser", delete_user)
        .post("/api/chat/groupInviteUser", invite)
        .post("/api/chat/groupAddUserSet", join_setting)
        .post("/api/chat/groupAgreeOrNo", agree_or_no)
        .get("/api/chat/groupQrcode/{id}", qrcode);
}

/// A group as the document shows it; `users` are the `group_users` rows to include.
pub fn group_json(g: &GroupRecord, users: Vec<Value>) -> Value {
    let mut v = serde_json::to_value(GroupJson::new(g)).expect("a group serializes");
    v["group_users"] = Value::Array(users);
    v
}

fn member_json(gid: u64, user: u64, m: &MemberRecord, u: Option<&UserRecord>) -> Value {
    let mut v = json!({
        "create_time": local_time(m.joined_ms),
        "id": m.row_id,
        "group_id": gid,
        "user_id": user,
        "nickname": m.nickname,
        "avatar": "",
        "status": 1,
        "order": 50,
        "groupId": gid,
    });
    if let Some(u) = u {
        v["user"] = json!({
            "id": u.id, "username": u.username, "avatar": u.avatar, "nickname": u.nickname,
            "role": u.role.as_str(), "uuid": u.uuid,
        });
    }
    v
}

/// The ids of a `userIds` field: a JSON array, repeated form fields, a comma list or a
/// JSON array in a string.
pub(super) fn id_list(form: &Form, name: &str) -> std::result::Result<Vec<u64>, ApiError> {
    let wrong = || ApiError::invalid(format!("{name} must be an array of user ids"));
    let one = |v: &Value| -> std::result::Result<u64, ApiError> {
        match v {
            Value::Number(n) => n.as_u64().ok_or_else(wrong),
            Value::String(s) => s.trim().parse().map_err(|_| wrong()),
            _ => Err(wrong()),
        }
    };
    match form.value(name) {
        None => Err(ApiError::invalid(format!("{name} is required"))),
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.starts_with('[') {
                let parsed: Value = serde_json::from_str(s).map_err(|_| wrong())?;
                parsed.as_array().ok_or_else(wrong)?.iter().map(one).collect()
            } else {
                s.split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| p.trim().parse().map_err(|_| wrong()))
                    .collect()
            }
        }
        Some(v) => Ok(vec![one(v)?]),
    }
}

/// Runs `op` on group `id` as the caller.
async fn run(state: &State, me: &Me, id: u64, op: GroupOp) -> std::result::Result<GroupOutcome, ApiError> {
    let by = party(&load_user(state, me.tenant(), me.id()).await?);
    groups::command(state, me.tenant(), id, by, op).await
}

async fn create(state: State, me: Me, form: Form) -> Result {
    me.not_visitor("create groups")?;
    let mut ids = id_list(&form, "userIds")?;
    ids.retain(|id| *id != me.id());
    if ids.is_empty() {
        return Err(ApiError::invalid("userIds must name at least one friend").into());
    }
    let (owner, members) =
        groups::friends_as_members(&state, me.tenant(), me.id(), ids, "your friend").await?;
    let members = members.iter().map(party).collect();
    groups::create(&state, me.tenant(), party(&owner), members, None, None).await?;
    Ok(ok("ok"))
}

async fn list(req: HttpRequest, state: State, me: Me) -> Result {
    let (page, limit) = paging(&req, &state, 30)?;
    let (tenant, my_id) = (me.tenant().to_owned(), me.id());
    let groups = state
        .read(move |s| {
            let mut ids = s.groups_of(&tenant, my_id)?;
            ids.reverse();
            let mut out = Vec::new();
            for id in ids.into_iter().skip((page - 1) * limit).take(limit) {
                if let (Some(g), Some(m)) = (s.group(&tenant, id)?, s.member(&tenant, id, my_id)?) {
                    out.push((g, m));
                }
            }
            Ok(out)
        })
        .await?;
    let list: Vec<Value> = groups
        .iter()
        .map(|(g, m)| {
            group_json(
                g,
                vec![json!({"group_id": g.id, "user_id": my_id, "nickname": m.nickname, "avatar": ""})],
            )
        })
        .collect();
    Ok(ok(list))
}

fn group_id(form: &Form) -> std::result::Result<u64, ApiError> {
    match form.opt_u64("group_id")? {
        Some(id) => Ok(id),
        None => form.u64("id"),
    }
}

async fn info(req: HttpRequest, state: State, me: Me) -> Result {
    let id: u64 = req
        .match_info()
        .get("id")
        .unwrap_or_default()
        .parse()
        .map_err(|_| ApiError::invalid("id must be a group id"))?;
    let (tenant, my_id) = (me.tenant().to_owned(), me.id());
    let (group, members, users) = state
        .read(move |s| {
            let group = s
                .group(&tenant, id)?
                .filter(|g| g.status == 1)
                .ok_or_else(|| ApiError::NotFound(format!("group {id} does not exist")))?;
            if s.member(&tenant, id, my_id)?.is_none() {
                return Err(ApiError::Forbidden("you are not a member of this group".into()));
            }
            let members = s.members_of(&tenant, id)?;
            let mut users = HashMap::with_capacity(members.len());
            for (uid, _) in &members {
                if let Some(u) = s.user(&tenant, *uid)? {
                    users.insert(*uid, u);
                }
            }
            Ok((group, members, users))
        })
        .await?;
    let rows: Vec<Value> = members
        .iter()
        .map(|(uid, m)| member_json(group.id, *uid, m, users.get(uid)))
        .collect();
    Ok(ok(group_json(&group, rows)))
}

async fn rename(state: State, me: Me, form: Form) -> Result {
    let id = group_id(&form)?;
    let name = form.str("name")?;
    check_len("name", name.trim(), 1, 20)?;
    run(&state, &me, id, GroupOp::Rename(name.trim().to_owned())).await?;
    Ok(ok("ok"))
}

async fn remark(state: State, me: Me, form: Form) -> Result {
    let id = group_id(&form)?;
    let remark = form.str("remark")?;
    check_len("remark", &remark, 1, 500)?;
    run(&state, &me, id, GroupOp::SetRemark(remark)).await?;
    Ok(ok("ok"))
}

async fn nickname(state: State, me: Me, form: Form) -> Result {
    let id = group_id(&form)?;
    let nickname = form.str("nickname")?;
    check_len("nickname", &nickname, 1, 20)?;
    run(&state, &me, id, GroupOp::SetNickname(nickname)).await?;
    Ok(ok("ok"))
}

async fn delete_or_quit(state: State, me: Me, form: Form) -> Result {
    let id = group_id(&form)?;
    run(&state, &me, id, GroupOp::Leave).await?;
    Ok(ok("ok"))
}

async fn delete_user(state: State, me: Me, form: Form) -> Result {
    let id = form.u64("group_id")?;
    let user = accounts::party_of(&state, me.tenant(), form.u64("user_id")?).await?;
    run(&state, &me, id, GroupOp::Remove(user)).await?;
    Ok(ok("删除群成员成功"))
}

async fn invite(state: State, me: Me, form: Form) -> Result {
    let id = form.u64("group_id")?;
    let user_id = form.u64("user_id")?;
    form.opt_u64("inviteuser_id")?;
    let desc = form.opt_str("addGroupDesc")?.unwrap_or_default();
    check_len("addGroupDesc", &desc, 0, 500)?;
    let user = party(&load_user(&state, me.tenant(), user_id).await?);
    let outcome = run(&state, &me, id, GroupOp::Invite { user, desc }).await?;
    Ok(ok(match outcome {
        GroupOutcome::Requested => "申请已提交，等待群主审核",
        _ => "加群成功",
    }))
}

async fn join_setting(state: State, me: Me, form: Form) -> Result {
    let id = form.u64("group_id")?;
    // The document takes 1 to 10: 1 (or 0) joins at once; 2 and above need the owner's
    // approval.
    let rule = match form.u64("addGroupSet")? {
        0 | 1 => 0,
        2..=10 => 1,
        _ => {
            return Err(ApiError::invalid(
                "addGroupSet must be 1 to 10: 1 joins at once, 2 to 10 need the owner's approval",
            )
            .into())
        }
    };
    run(&state, &me, id, GroupOp::SetJoinRule(rule)).await?;
    Ok(ok("设置成功"))
}

async fn agree_or_no(state: State, me: Me, form: Form) -> Result {
    let id = form.u64("group_id")?;
    let user = form.u64("user_id")?;
    let agree = match form.str("type")?.as_str() {
        "agree" => true,
        "no" => false,
        _ => return Err(ApiError::invalid("type must be agree or no").into()),
    };
    let user = accounts::party_of(&state, me.tenant(), user).await?;
    run(&state, &me, id, GroupOp::Approve { user, agree }).await?;
    Ok(ok("处理成功"))
}

async fn qrcode(req: HttpRequest, state: State, me: Me) -> Result {
    let id: u64 = req
        .match_info()
        .get("id")
        .unwrap_or_default()
        .parse()
        .map_err(|_| ApiError::invalid("id must be a group id"))?;
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid("malformed query string"))?
        .into_inner();
    let get = |k: &str| query.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let (tenant, my_id) = (me.tenant().to_owned(), me.id());
    let group = state
        .read(move |s| {
            let g = s
                .group(&tenant, id)?
                .filter(|g| g.status == 1)
                .ok_or_else(|| ApiError::NotFound(format!("group {id} does not exist")))?;
            if s.member(&tenant, id, my_id)?.is_none() {
                return Err(ApiError::Forbidden("you are not a member of this group".into()));
            }
            Ok(g)
        })
        .await?;
    let text = if get("type").as_deref() == Some("H5") {
        let base = get("http").unwrap_or_default();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() > 200 {
            return Err(ApiError::invalid("http must be the http(s) address of the H5 front end").into());
        }
        let chat_type = get("chatType").unwrap_or_else(|| "group".into());
        if chat_type != "group" && chat_type != "single" {
            return Err(ApiError::invalid("chatType must be single or group").into());
        }
        format!(
            "{}/#/pages/setpageInfo/setpageInfo?action=autoAddGroup&title=群介绍&id={}&chatType={}",
            base.trim_end_matches('/'),
            group.id,
            chat_type
        )
    } else {
        json!({"id": group.id, "name": group.name}).to_string()
    };
    let png = qr_png(&text).map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok().content_type("image/png").body(png))
}

/// A QR code of `text` as a PNG: 8 pixels a module, a 4-module quiet zone.
pub fn qr_png(text: &str) -> std::result::Result<Vec<u8>, String> {
    let code =
        ::qrcode::QrCode::new(text.as_bytes()).map_err(|e| format!("cannot encode the QR code: {e}"))?;
    let width = code.width();
    let colors = code.to_colors();
    let (scale, quiet) = (8usize, 4usize);
    let side = (width + 2 * quiet) * scale;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == ::qrcode::Color::Dark {
            let (x, y) = (i % width + quiet, i / width + quiet);
            for dy in 0..scale {
                let row = (y * scale + dy) * side;
                pixels[row + x * scale..row + (x + 1) * scale].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}
