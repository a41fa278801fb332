//! The uni-app chat face (`shared/seeds/002_*`), one module per area: [`accounts`]
//! (accounts and visitors), [`messages`] (sending over REST, offline messages, history),
//! [`social`] (friends and applications), [`groups`], [`conversations`] (revoke, read
//! receipts, the conversation list) and [`files`] (uploads and served files). Routes, form
//! fields and response shapes are the document's; success is `{"msg":"ok","data":...}`,
//! failure `{"msg":"fail","data":"reason"}` with the status of [`ApiError::status`].

pub mod accounts;
pub mod conversations;
pub mod files;
pub mod groups;
pub mod messages;
pub mod social;

use actix_web::{web, HttpResponse};
use parlor_storage::UserRecord;
use serde::Serialize;
use serde_json::{json, Value};

use super::{iso_time, local_time, Caller, Face, FaceError, Fields};
use crate::error::ApiError;
use crate::routes::Routes;
use crate::state::AppState;

/// The uni-app face's envelope.
pub struct UniApp;

impl Face for UniApp {
    fn render(err: &ApiError) -> HttpResponse {
        err.to_response()
    }
}

type Result<T = HttpResponse> = std::result::Result<T, FaceError<UniApp>>;
type Me = Caller<UniApp>;
type Form = Fields<UniApp>;
type State = web::Data<AppState>;

fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(json!({"msg": "ok", "data": data}))
}

/// Registers every route of the face.
pub fn routes(r: &mut Routes) {
    accounts::routes(r);
    messages::routes(r);
    social::routes(r);
    groups::routes(r);
    conversations::routes(r);
    files::routes(r);
}

// ---------------------------------------------------------------------------------------
// Rendering

/// A user as the account routes return it, with a token when one was issued.
pub fn user_json(u: &UserRecord, token: Option<&str>) -> Value {
    let mut v = json!({
        "create_time": local_time(u.created_ms),
        "id": u.id,
        "uuid": u.uuid,
        "username": u.username,
        "nickname": u.nickname,
        "avatar": u.avatar,
        "mobile": u.mobile,
        "email": u.email,
        "status": u.status,
        "last_login": u.last_login_ms.map(iso_time),
        "last_login_ip": null,
        "register_time": iso_time(u.created_ms),
        "register_ip": null,
        "is_deleted": 0,
        "wechat_openid": null,
        "qq_openid": null,
        "weibo_uid": null,
        "role": u.role.as_str(),
        "is_email_verified": 0,
        "is_mobile_verified": 0,
        "order": 50,
        "update_time": iso_time(u.updated_ms),
        "app_id": u.tenant,
    });
    if let Some(device) = &u.device_id {
        v["devicefingeruuid"] = json!(device);
        v["uniplatform"] = json!(u.uniplatform);
        v["devicemodel"] = json!(u.devicemodel);
        v["deviceos"] = json!(u.deviceos);
        v["devicebrand"] = json!(u.devicebrand);
    }
    if let Some(token) = token {
        v["token"] = json!(token);
    }
    v
}

/// The `userinfo` sub-object of profiles.
pub fn userinfo_json(u: &UserRecord) -> Value {
    json!({
        "id": u.id,
        "gender": u.gender,
        "birthday": u.birthday,
        "bio": u.bio,
        "location": u.location,
        "website": u.website,
    })
}
