//! Chat21 groups: create, read, rename, join, set the members of and leave a group.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use parlor_actors::{GroupOp, Party, SendError};
use parlor_storage::GroupRecord;
use serde_json::{json, Map, Value};

use super::{body, text_field, Chat21User, Result, State};
use crate::core::accounts::party;
use crate::core::external::{find_external, resolve_externals};
use crate::core::groups;
use crate::error::ApiError;
use crate::routes::Routes;

/// Registers the group routes.
pub(super) fn routes(r: &mut Routes) {
    r.post("/api/{app_id}/groups", create_group)
        .get("/api/{app_id}/groups/{group_id}", get_group)
        .put("/api/{app_id}/groups/{group_id}", update_group)
        .post("/api/{app_id}/groups/{group_id}/members", join_group)
        .put("/api/{app_id}/groups/{group_id}/members", set_members)
        .delete("/api/{app_id}/groups/{group_id}/members/{member_id}", leave_group);
}

/// The group a Chat21 group id names (`group-<uuid>` or the numeric id).
pub(super) async fn resolve_group(
    state: &State,
    tenant: &str,
    id: &str,
) -> std::result::Result<GroupRecord, ApiError> {
    let (t, key) = (tenant.to_owned(), id.to_owned());
    state
        .read(move |s| {
            let gid = match s.group_id_by_ext(&t, &key)? {
                Some(gid) => Some(gid),
                None => key.parse::<u64>().ok(),
            };
            let group = match gid {
                Some(gid) => s.group(&t, gid)?,
                None => None,
            };
            group
                .filter(|g| g.status == 1)
                .ok_or_else(|| ApiError::NotFound("Group doesn't exist".into()))
        })
        .await
}

/// A group in Chat21's shape: members as `{id: 1}` by Chat21 id.
async fn group_json(state: &State, tenant: &str, g: &GroupRecord) -> std::result::Result<Value, ApiError> {
    let (t, gid, owner) = (tenant.to_owned(), g.id, g.owner);
    let (members, owner_id) = state
        .read(move |s| {
            let mut members = Map::new();
            for (uid, _) in s.members_of(&t, gid)? {
                if let Some(u) = s.user(&t, uid)? {
                    members.insert(u.uuid, json!(1));
                }
            }
            let owner_id = s
                .user(&t, owner)?
                .map(|u| u.uuid)
                .unwrap_or_else(|| owner.to_string());
            Ok((members, owner_id))
        })
        .await?;
    Ok(json!({
        "uid": g.ext_id.clone().unwrap_or_else(|| g.id.to_string()),
        "id": g.id,
        "name": g.name,
        "owner": owner_id,
        "members": members,
        "createdOn": g.created_ms,
        "updatedOn": g.updated_ms,
    }))
}

/// The ids of a `{"<id>": 1}` members map (an array of ids is read too).
fn member_ids(map: &Map<String, Value>, name: &str) -> std::result::Result<Vec<String>, ApiError> {
    match map.get(name) {
        Some(Value::Object(m)) => Ok(m.keys().cloned().collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(ApiError::invalid(format!("{name} must map member ids to 1"))),
            })
            .collect(),
        None | Some(Value::Null) => Err(ApiError::invalid(format!("{name} is mandatory"))),
        Some(_) => Err(ApiError::invalid(format!("{name} must map member ids to 1"))),
    }
}

/// The members `ids` name, created when new (see [`resolve_externals`]), by id.
async fn parties(
    state: &State,
    me: &Chat21User,
    ids: &[String],
) -> std::result::Result<Vec<Party>, ApiError> {
    let users = resolve_externals(state, me.tenant(), me.namer(), ids).await?;
    let seen: BTreeMap<u64, Party> = users.iter().map(|u| (u.id, party(u))).collect();
    Ok(seen.into_values().collect())
}

/// Refuses a group of `count` members (the owner included) over the configured size, before
/// any member is looked up or created.
fn check_size(state: &State, count: usize) -> std::result::Result<(), ApiError> {
    let limit = state.config.limits.group_max_members;
    if count > limit {
        return Err(SendError::Full { limit }.into());
    }
    Ok(())
}

/// The distinct ids of `ids`, the caller's own left out.
fn others(me: &Chat21User, ids: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !me.is(&id) && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

async fn create_group(req: HttpRequest, state: State, me: Chat21User, payload: web::Payload) -> Result {
    let map = body(&req, payload).await?;
    let name = text_field(&map, "group_name")?;
    if name.chars().count() > 100 {
        return Err(ApiError::invalid("group_name must be at most 100 characters").into());
    }
    let ids = member_ids(&map, "group_members")?;
    let ext_id = match map.get("group_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 && !s.contains('/') => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::invalid("group_id must be a string of at most 128 characters").into())
        }
    };
    let ids = others(&me, ids);
    check_size(&state, ids.len() + 1)?;
    if let Some(ext) = ext_id.clone() {
        let t = me.tenant().to_owned();
        if state
            .read(move |s| Ok(s.group_id_by_ext(&t, &ext)?))
            .await?
            .is_some()
        {
            return Ok(HttpResponse::Conflict().json(json!({"success": false, "err": "group_id exists"})));
        }
    }
    let members = parties(&state, &me, &ids).await?;
    let created = groups::create(&state, me.tenant(), party(&me.user), members, Some(name), ext_id).await;
    let record = match created {
        Ok(record) => record,
        // A taken group_id is a conflict (409), not one of the 405 refusals of a change.
        Err(ApiError::Conflict(_)) => {
            return Ok(HttpResponse::Conflict().json(json!({"success": false, "err": "group_id exists"})))
        }
        Err(other) => return Err(other.into()),
    };
    let group = group_json(&state, me.tenant(), &record).await?;
    Ok(HttpResponse::Created().json(json!({"success": true, "group": group})))
}

async fn get_group(req: HttpRequest, state: State, me: Chat21User) -> Result {
    let id = req.match_info().get("group_id").unwrap_or_default().to_owned();
    let group = resolve_group(&state, me.tenant(), &id).await?;
    let (t, gid, uid) = (me.tenant().to_owned(), group.id, me.user.id);
    if !state.read(move |s| Ok(s.member(&t, gid, uid)?.is_some())).await? {
        return Err(ApiError::Unauthorized("Permission denied".into()).into());
    }
    Ok(HttpResponse::Ok()
        .json(json!({"success": true, "result": group_json(&state, me.tenant(), &group).await?})))
}

async fn command(state: &State, me: &Chat21User, group: &GroupRecord, op: GroupOp) -> Result {
    groups::command(state, me.tenant(), group.id, party(&me.user), op).await?;
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

/// The group of the path, and whether the caller is one of its members.
async fn path_group(
    req: &HttpRequest,
    state: &State,
    me: &Chat21User,
) -> std::result::Result<(GroupRecord, bool), ApiError> {
    let id = req.match_info().get("group_id").unwrap_or_default().to_owned();
    let group = resolve_group(state, me.tenant(), &id).await?;
    let (t, gid, uid) = (me.tenant().to_owned(), group.id, me.user.id);
    let member = state.read(move |s| Ok(s.member(&t, gid, uid)?.is_some())).await?;
    Ok((group, member))
}

/// Adds a member. The group must exist and the caller be a member (or be adding
/// themselves) before a new member is created; the group's actor decides the rest.
async fn join_group(req: HttpRequest, state: State, me: Chat21User, payload: web::Payload) -> Result {
    let map = body(&req, payload).await?;
    let member = text_field(&map, "member_id")?;
    let (group, is_member) = path_group(&req, &state, &me).await?;
    if !is_member && !me.is(&member) {
        return Err(ApiError::from(SendError::Forbidden("only members may invite".into())).into());
    }
    let user = match resolve_externals(&state, me.tenant(), me.namer(), &[member])
        .await?
        .pop()
    {
        Some(u) => party(&u),
        None => return Err(ApiError::invalid("member_id is mandatory").into()),
    };
    let op = GroupOp::Invite {
        user,
        desc: String::new(),
    };
    command(&state, &me, &group, op).await
}

/// Replaces the member list: the owner's, within the group size, checked before any new
/// member is created.
async fn set_members(req: HttpRequest, state: State, me: Chat21User, payload: web::Payload) -> Result {
    let map = body(&req, payload).await?;
    let ids = others(&me, member_ids(&map, "members")?);
    let (group, _) = path_group(&req, &state, &me).await?;
    if group.owner != me.user.id {
        let refusal = SendError::Forbidden("only the group owner may set the members".into());
        return Err(ApiError::from(refusal).into());
    }
    check_size(&state, ids.len() + 1)?;
    let members = parties(&state, &me, &ids).await?;
    command(&state, &me, &group, GroupOp::ReplaceMembers(members)).await
}

/// Removes a member (the owner's), or quits when the member is the caller (the owner's
/// quitting dissolves the group). Never creates a user: an unknown member is not one.
async fn leave_group(req: HttpRequest, state: State, me: Chat21User) -> Result {
    let member = req.match_info().get("member_id").unwrap_or_default().to_owned();
    let (group, _) = path_group(&req, &state, &me).await?;
    if me.is(&member) {
        return command(&state, &me, &group, GroupOp::Leave).await;
    }
    let (t, key) = (me.tenant().to_owned(), member.clone());
    let user = state
        .read(move |s| Ok(find_external(s, &t, &key)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {member} is not a member")))?;
    command(&state, &me, &group, GroupOp::Remove(party(&user))).await
}

async fn update_group(req: HttpRequest, state: State, me: Chat21User, payload: web::Payload) -> Result {
    let map = body(&req, payload).await?;
    let name = text_field(&map, "group_name")?;
    if name.chars().count() > 100 {
        return Err(ApiError::invalid("group_name must be at most 100 characters").into());
    }
    let (group, _) = path_group(&req, &state, &me).await?;
    command(&state, &me, &group, GroupOp::Rename(name)).await
}
