//! The web chat client: the files of the repository's `web/` directory, built into the
//! binary and served at `GET /` (the page) and `GET /web/{file}` (its styles and scripts,
//! and `avatar.svg`, the avatar of a user who has not set one: `users.default_avatar`).
//! `GET /web/locale.json` says the language of the client's texts, the server's
//! `server.locale` (`{"locale":"zh-CN"}` or `{"locale":"en"}`).
//!
//! Each file is answered with its content type, `Cache-Control: no-cache` and a strong
//! `ETag` (a hash of its bytes): a browser keeps its copy and revalidates it, a request
//! carrying the current tag gets 304 without a body, and a new build is picked up at once.
//! The page sets a Content-Security-Policy that allows only its own scripts and styles and
//! connections to this server.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::routes::Routes;
use crate::state::AppState;

/// One served file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../web/", $name)),
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("socket.js", "text/javascript; charset=utf-8"),
    asset!("messages.js", "text/javascript; charset=utf-8"),
    asset!("i18n.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("avatar.svg", "image/svg+xml"),
];

/// The strong entity tag of each asset, in the order of [`ASSETS`].
static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12])))
        .collect()
});

/// What the page may load and connect to.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob: http: https:; connect-src 'self' ws: wss:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Registers `GET /`, `GET /web/locale.json` and `GET /web/{file}` (HEAD too).
pub fn routes(r: &mut Routes) {
    r.get("/", index)
        .head("/", index)
        .get("/web/locale.json", locale)
        .head("/web/locale.json", locale)
        .get("/web/{file}", file)
        .head("/web/{file}", file);
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

/// The server's locale, which the client's texts follow.
async fn locale(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .json(serde_json::json!({ "locale": state.config.server.locale }))
}

async fn file(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    serve(&req, &name)
}

fn serve(req: &HttpRequest, name: &str) -> HttpResponse {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::NotFound(format!("no file {name}")).to_response();
    };
    let (asset, tag) = (&ASSETS[i], &TAGS[i]);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, tag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if asset.name == "index.html" {
        resp.insert_header((header::CONTENT_SECURITY_POLICY, CSP))
            .insert_header((header::REFERRER_POLICY, "no-referrer"));
    }
    if fresh {
        return resp.finish();
    }
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)))
        .body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_name_and_tag() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        assert!(TAGS.iter().all(|t| t.len() == 26 && t.starts_with('"')));
    }
}
