//! CORS on the client listener (`server.cors_origins`): real preflight requests and
//! cross-origin calls with an `Origin` header, answered or not per the configured origins.
//! The browser's side of it (a page on a second origin calling Parlor) is in `browser.rs`.

use crate::common;

use common::{assert_fail, TestServer};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;

const APP: &str = "http://app.example";

async fn start_with(origins: &[&str]) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
    let server = TestServer::start_in(dir.path(), |c| c.server.cors_origins = origins).await;
    (server, dir)
}

/// A preflight for `method` on `path` from `origin`, asking for `headers`.
async fn preflight(
    server: &TestServer,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> (StatusCode, HeaderMap) {
    let resp = server
        .http
        .request(Method::OPTIONS, server.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", headers)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.headers().clone())
}

/// A registration sent with an `Origin` header, as a page on that origin would send it.
async fn register_from(server: &TestServer, origin: &str, username: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/regChat"))
        .header("Origin", origin)
        .json(&json!({"username": username, "password": "secret123"}))
        .send()
        .await
        .unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// The comma-separated values of `name`, lowercased.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    header(headers, name)
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[actix_web::test]
async fn a_configured_origin_gets_preflights_answered_on_every_face() {
    let (server, _dir) = start_with(&[APP, "https://other.example:8443"]).await;
    // uni-app, chat-room, Chat21, an upload, the native read side: one answer for all.
    for (path, method, asked) in [
        ("/api/loginChat", "POST", "content-type"),
        ("/api/chat/goodfriendlist", "GET", "token"),
        ("/api/chat/uploadAliyun", "POST", "token"),
        ("/api/default/messages", "POST", "authorization,content-type"),
        ("/api/default/groups/g1/members/u1", "DELETE", "authorization"),
        ("/api/visitorRegister", "POST", "x-security-sign,content-type"),
        ("/user/login", "POST", "content-type"),
    ] {
        let (status, h) = preflight(&server, path, APP, method, asked).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&h, "access-control-allow-origin"), APP, "{path}");
        assert!(
            list(&h, "access-control-allow-methods").contains(&method.to_ascii_lowercase()),
            "{path}: {h:?}"
        );
        let allowed = list(&h, "access-control-allow-headers");
        for asked in asked.split(',') {
            assert!(
                allowed.contains(&asked.to_string()),
                "{path}: {asked} not in {allowed:?}"
            );
        }
        assert_eq!(header(&h, "access-control-max-age"), "3600", "{path}");
        // Never credentials: the faces authenticate with headers, not cookies.
        assert!(h.get("access-control-allow-credentials").is_none(), "{path}");
    }
    // The second configured origin is answered with itself.
    let (status, h) = preflight(
        &server,
        "/api/loginChat",
        "https://other.example:8443",
        "POST",
        "content-type",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        "https://other.example:8443"
    );
    server.stop().await;
}

#[actix_web::test]
async fn answers_to_an_allowed_origin_carry_the_headers_even_when_they_are_errors() {
    let (server, _dir) = start_with(&[APP]).await;
    // A success: a registration from the app's origin.
    let resp = register_from(&server, APP, "cors_alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(resp.headers(), "access-control-allow-origin"), APP);
    let vary = list(resp.headers(), "vary");
    assert!(vary.iter().any(|v| v == "origin"), "Vary: {vary:?}");
    let exposed = list(resp.headers(), "access-control-expose-headers");
    for name in ["retry-after", "etag", "content-range"] {
        assert!(
            exposed.contains(&name.to_string()),
            "{name} not exposed: {exposed:?}"
        );
    }
    // An error (no token) still carries them, so the page can read the reason.
    let resp = server
        .http
        .get(server.url("/api/chat/goodfriendlist"))
        .header("Origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(header(resp.headers(), "access-control-allow-origin"), APP);
    let got = TestServer::finish(resp).await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);
    // So does an unknown route's 404.
    let resp = server
        .http
        .get(server.url("/nowhere"))
        .header("Origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(resp.headers(), "access-control-allow-origin"), APP);
    server.stop().await;
}

#[actix_web::test]
async fn an_origin_not_listed_gets_no_cors_headers() {
    let (server, _dir) = start_with(&[APP]).await;
    let (status, h) = preflight(
        &server,
        "/api/loginChat",
        "http://evil.example",
        "POST",
        "content-type",
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    // The request itself is served (a non-browser client sends any Origin it likes), but
    // without the header a browser would need to hand the answer to the page.
    let resp = register_from(&server, "http://evil.example", "cors_bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // A prefix or a different port of a listed origin is another origin.
    for near in [
        "http://app.example:8080",
        "https://app.example",
        "http://app.example.evil",
    ] {
        let (_, h) = preflight(&server, "/api/loginChat", near, "POST", "content-type").await;
        assert!(h.get("access-control-allow-origin").is_none(), "{near}: {h:?}");
    }
    server.stop().await;
}

#[actix_web::test]
async fn without_origins_the_listener_is_same_origin_only() {
    let (server, _dir) = start_with(&[]).await;
    let (status, h) = preflight(&server, "/api/loginChat", APP, "POST", "content-type").await;
    assert!(status.is_client_error(), "{status}");
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    let resp = register_from(&server, APP, "cors_carol").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[actix_web::test]
async fn a_wildcard_allows_any_origin_without_credentials() {
    let (server, _dir) = start_with(&["*"]).await;
    let (status, h) = preflight(
        &server,
        "/api/chat/goodfriendlist",
        "http://anything.example",
        "GET",
        "token",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "access-control-allow-origin"), "*");
    assert!(h.get("access-control-allow-credentials").is_none());
    server.stop().await;
}

#[actix_web::test]
async fn the_admin_listener_never_answers_cors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.server.cors_origins = vec![APP.into()];
        c.admin.bind = "127.0.0.1:0".into();
        c.admin.secret = "cors-admin-secret".into();
    })
    .await;
    let admin = server.admin.expect("the admin listener");
    let resp = server
        .http
        .request(Method::OPTIONS, format!("http://{admin}/admin/healthcheck"))
        .header("Origin", APP)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}
