//! The web client's files: `GET /` and `GET /web/{file}` with their content types, caching
//! headers and revalidation, every file the page refers to served, and the refusals (an
//! unknown file, another method) in the uni-app envelope; `/web/locale.json` says the
//! server's locale, which the client's texts follow.

use crate::common;

use common::TestServer;
use parlor_actors::notices::Locale;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    server.http.get(server.url(path)).send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    resp.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn the_page_and_its_files_have_types_and_cache_headers() {
    let (server, _dir) = TestServer::start().await;
    let page = get(&server, "/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&page, CACHE_CONTROL), "no-cache");
    assert!(header(&page, CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<script type="module" src="/web/app.js">"#),
        "{html}"
    );

    for (path, kind) in [
        ("/web/index.html", "text/html; charset=utf-8"),
        ("/web/style.css", "text/css; charset=utf-8"),
        ("/web/app.js", "text/javascript; charset=utf-8"),
        ("/web/icon.svg", "image/svg+xml"),
    ] {
        let resp = get(&server, path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&resp, CONTENT_TYPE), kind, "{path}");
        assert_eq!(header(&resp, CACHE_CONTROL), "no-cache", "{path}");
        assert_eq!(
            header(&resp, "x-content-type-options".parse().unwrap()),
            "nosniff"
        );
        assert!(!resp.bytes().await.unwrap().is_empty(), "{path}");
    }
    server.stop().await;
}

#[actix_web::test]
async fn every_file_the_page_and_its_modules_name_is_served() {
    let (server, _dir) = TestServer::start().await;
    let html = get(&server, "/").await.text().await.unwrap();
    let mut wanted: Vec<String> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/web/"))
        .map(str::to_owned)
        .collect();
    let mut seen = Vec::new();
    while let Some(path) = wanted.pop() {
        if seen.contains(&path) {
            continue;
        }
        let resp = get(&server, &path).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{path} is referred to and not served"
        );
        let text = resp.text().await.unwrap();
        if path.ends_with(".js") {
            // `import ... from './x.js'`: relative module paths, resolved under /web/.
            for part in text.split("from '").skip(1) {
                let module = part.split('\'').next().unwrap();
                let name = module.strip_prefix("./").expect("relative imports");
                wanted.push(format!("/web/{name}"));
            }
        }
        seen.push(path);
    }
    assert!(seen.iter().any(|p| p == "/web/socket.js"), "{seen:?}");
    assert!(seen.iter().any(|p| p == "/web/messages.js"), "{seen:?}");
    server.stop().await;
}

#[actix_web::test]
async fn a_current_tag_is_answered_with_304_and_a_stale_one_with_the_file() {
    let (server, _dir) = TestServer::start().await;
    let first = get(&server, "/web/app.js").await;
    let tag = header(&first, ETAG);
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    let body = first.bytes().await.unwrap();

    let again = server
        .http
        .get(server.url("/web/app.js"))
        .header(IF_NONE_MATCH, &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&again, ETAG), tag);
    assert!(again.bytes().await.unwrap().is_empty());

    let listed = server
        .http
        .get(server.url("/web/app.js"))
        .header(IF_NONE_MATCH, format!("\"stale\", {tag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::NOT_MODIFIED);

    let stale = server
        .http
        .get(server.url("/web/app.js"))
        .header(IF_NONE_MATCH, "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(stale.bytes().await.unwrap(), body);

    // Each file has its own tag.
    let css = get(&server, "/web/style.css").await;
    assert_ne!(header(&css, ETAG), tag);
    server.stop().await;
}

#[actix_web::test]
async fn head_answers_the_headers_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _dir) = TestServer::start().await;
    let page = get(&server, "/").await.bytes().await.unwrap();
    assert!(!page.is_empty());
    // Written by hand and read to the end of the connection: a client library would not
    // read a body after a HEAD answer even if one came.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "HEAD / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(common::FRAME_TIMEOUT, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("\r\ncontent-type: text/html; charset=utf-8"),
        "{head}"
    );
    // The length of the page a GET would send, and no byte of it.
    assert!(
        lower.contains(&format!("\r\ncontent-length: {}", page.len())),
        "{head}"
    );
    assert_eq!(body, "");
    server.stop().await;
}

#[actix_web::test]
async fn unknown_files_and_other_methods_are_refused_in_the_envelope() {
    let (server, _dir) = TestServer::start().await;
    for path in [
        "/web/nope.js",
        "/web/",
        "/web/..%2FCargo.toml",
        "/web/app.js/x",
        "/index.html",
    ] {
        let (status, body) = server.get(path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["msg"], "fail", "{path}: {body}");
        let reason = body["data"].as_str().unwrap();
        assert!(
            reason == "no such route" || reason.starts_with("no file "),
            "{path}: {body}"
        );
    }
    let resp = server.http.post(server.url("/")).send().await.unwrap();
    let no_route = (
        StatusCode::NOT_FOUND,
        json!({"msg": "fail", "data": "no such route"}),
    );
    assert_eq!(TestServer::finish(resp).await, no_route);
    let resp = server
        .http
        .delete(server.url("/web/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(TestServer::finish(resp).await, no_route);
    server.stop().await;
}

#[actix_web::test]
async fn the_locale_is_the_servers() {
    for (locale, name) in [(Locale::ZhCn, "zh-CN"), (Locale::En, "en")] {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_in(dir.path(), |c| c.server.locale = locale).await;
        let resp = get(&server, "/web/locale.json").await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        assert_eq!(header(&resp, CONTENT_TYPE), "application/json", "{name}");
        assert_eq!(header(&resp, CACHE_CONTROL), "no-cache", "{name}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, json!({"locale": name}));
        server.stop().await;
    }
    let (server, _dir) = TestServer::start().await;
    let (status, body) = server.get("/web/locale.json", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"locale": "zh-CN"})));
    let app = get(&server, "/web/app.js").await.text().await.unwrap();
    assert!(app.contains("from './i18n.js'"), "{app}");
    server.stop().await;
}
