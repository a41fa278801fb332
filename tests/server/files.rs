//! Files: uploads on the uni-app and chat-room faces, serving stored files (types,
//! lengths, ranges, caching), refusals (no token, too large, a type disguised by its
//! name, folder traversal), content deduplication, video screenshots with ffmpeg, and
//! the `metadata` of image and video messages.

use crate::common;

use std::path::Path;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALIYUN: &str = "/api/chat/uploadAliyun";
const ROOM_IMAGE: &str = "/message/image";

/// Uploads to `uploadStreamSingleToServerDiy/{dir}` as the field `file`.
async fn upload(server: &TestServer, dir: &str, token: Option<&str>, bytes: Vec<u8>) -> (StatusCode, Value) {
    Upload::to(&format!("{DIY}{dir}"), token, "file")
        .send(server, bytes)
        .await
}

/// Uploads and returns the stored file's URL.
async fn upload_ok(server: &TestServer, dir: &str, user: &User, bytes: Vec<u8>) -> String {
    let data = assert_ok(&upload(server, dir, Some(&user.token), bytes).await);
    data["url"].as_str().expect("a url").to_owned()
}

/// GETs `url` (a path of the server) with one extra header.
async fn fetch(server: &TestServer, url: &str, header: Option<(&str, &str)>) -> reqwest::Response {
    let mut req = server.http.get(server.url(url));
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The objects in the files directory (one per distinct content).
fn objects_on_disk(dir: &Path) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&dir.join("files").join("objects"))
}

/// A multipart upload of `file` written by hand, for paths a client library would
/// normalize; returns the status code and the JSON body.
async fn raw_post(server: &TestServer, path: &str, token: &str, file: &[u8]) -> (u16, Value) {
    let mut body =
        b"--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n".to_vec();
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--X--\r\n");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\ntoken: {token}\r\nContent-Type: multipart/form-data; boundary=X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or_else(|| panic!("no JSON body in {answer}"));
    (status, body)
}

#[actix_web::test]
async fn an_upload_is_served_back_byte_identical_with_its_headers() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let image = png(3, 2, 7);
    let url = upload_ok(&server, "chatImgs", &alice, image.clone()).await;
    let day = chrono::Local::now().format("%Y%m%d").to_string();
    let prefix = format!("/public/uploads/Diy/chatImgs/{day}/");
    assert!(url.starts_with(&prefix), "{url}");
    let name = &url[prefix.len()..];
    let (ms, rest) = name.split_once('_').expect("<ms>_<random>.png");
    assert!(ms.parse::<u64>().is_ok() && rest.ends_with(".png"), "{name}");

    // No token is needed to read a file: URLs go in <img> tags.
    let resp = fetch(&server, &url, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["content-length"], image.len().to_string().as_str());
    let etag = format!("\"{}\"", sha256_hex(&image));
    assert_eq!(h["etag"], etag.as_str());
    assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), image.as_slice());

    // A single range.
    let resp = fetch(&server, &url, Some(("range", "bytes=2-9"))).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let expected = format!("bytes 2-9/{}", image.len());
    assert_eq!(resp.headers()["content-range"], expected.as_str());
    assert_eq!(resp.headers()["content-length"], "8");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &image[2..10]);
    let resp = fetch(&server, &url, Some(("range", "bytes=-4"))).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &image[image.len() - 4..]);
    // Unsatisfiable.
    let past = format!("bytes={}-", image.len());
    let resp = fetch(&server, &url, Some(("range", &past))).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let expected = format!("bytes */{}", image.len());
    assert_eq!(resp.headers()["content-range"], expected.as_str());

    // The client's copy is current.
    let resp = fetch(&server, &url, Some(("if-none-match", &etag))).await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(resp.headers()["etag"], etag.as_str());
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = fetch(&server, &url, Some(("if-none-match", "\"other\""))).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // HEAD answers the headers.
    let resp = server.http.head(server.url(&url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], image.len().to_string().as_str());

    // Unknown files, and paths that try to leave the store.
    for missing in [
        "/public/uploads/Diy/chatImgs/nope.png",
        "/public/uploads/",
        "/public/uploads/..%2F..%2Fparlor.redb",
        "/public/uploads/objects",
    ] {
        let resp = fetch(&server, missing, None).await;
        let got = TestServer::finish(resp).await;
        let reason = assert_fail(&got, StatusCode::NOT_FOUND);
        assert!(
            reason.starts_with("no file /public/uploads/"),
            "{missing}: {reason}"
        );
    }
    server.stop().await;
}

/// A file known to the database whose bytes are not in the object store (a database imported
/// without its files, a store cleaned by hand) is 404, like any missing file, never a 500.
#[actix_web::test]
async fn a_file_missing_from_the_object_store_is_404() {
    let (server, dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let url = upload_ok(&server, "chatImgs", &alice, png(4, 4, 1)).await;
    assert_eq!(fetch(&server, &url, None).await.status(), StatusCode::OK);
    let objects = dir.path().join("files").join("objects");
    assert_eq!(objects_on_disk(dir.path()), 1);
    std::fs::remove_dir_all(&objects).unwrap();

    let resp = fetch(&server, &url, None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["msg"], "fail", "{body}");
    assert!(body["data"].as_str().unwrap().contains("no file"), "{body}");
    let resp = fetch(&server, &url, Some(("range", "bytes=0-3"))).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The same file uploaded again is served again.
    let again = upload_ok(&server, "chatImgs", &alice, png(4, 4, 1)).await;
    assert_eq!(fetch(&server, &again, None).await.status(), StatusCode::OK);
    server.stop().await;
}

#[actix_web::test]
async fn uploads_are_refused_without_a_token_over_the_limit_and_of_disguised_types() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| c.files.max_bytes = 64 * 1024).await;
    let alice = server.register("alice").await;
    let me = Some(alice.token.as_str());

    let reason = assert_fail(
        &upload(&server, "chatImgs", None, png(2, 2, 1)).await,
        StatusCode::UNAUTHORIZED,
    );
    assert!(reason.contains("token"), "{reason}");
    let got = upload(&server, "chatImgs", Some("not-a-token"), png(2, 2, 1)).await;
    assert_fail(&got, StatusCode::UNAUTHORIZED);

    // Over the limit: a PNG signature followed by more than 64 KiB.
    let mut big = png(2, 2, 1);
    big.resize(64 * 1024 + 1, 0);
    let reason = assert_fail(
        &upload(&server, "chatImgs", me, big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    assert!(reason.contains("65536"), "{reason}");
    // Exactly at the limit is fine.
    let mut at_limit = png(2, 2, 2);
    at_limit.resize(64 * 1024, 0);
    upload_ok(&server, "chatImgs", &alice, at_limit).await;

    // The name says PNG; the bytes say otherwise.
    let reason = assert_fail(
        &upload(&server, "chatImgs", me, elf()).await,
        StatusCode::BAD_REQUEST,
    );
    assert!(reason.contains("not allowed"), "{reason}");
    let text = b"just some text\n".to_vec();
    let reason = assert_fail(
        &upload(&server, "chatImgs", me, text).await,
        StatusCode::BAD_REQUEST,
    );
    assert!(reason.contains("not recognized"), "{reason}");
    assert_fail(
        &upload(&server, "chatImgs", me, Vec::new()).await,
        StatusCode::BAD_REQUEST,
    );

    // The file must be in the field `file`, in a multipart body.
    let got = Upload::to(&format!("{DIY}chatImgs"), me, "image")
        .send(&server, png(2, 2, 1))
        .await;
    let reason = assert_fail(&got, StatusCode::BAD_REQUEST);
    assert!(reason.contains("file is required"), "{reason}");
    let got = server
        .post_form(&format!("{DIY}chatImgs"), me, &[("file", "x")])
        .await;
    assert_fail(&got, StatusCode::BAD_REQUEST);

    // Only the one accepted upload reached the store; no partial file is left behind.
    assert_eq!(objects_on_disk(dir.path()), 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("files/tmp")).unwrap().count(),
        0
    );
    server.stop().await;
}

#[actix_web::test]
async fn the_folder_is_a_plain_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let alice = server.register("alice").await;
    let long = "a".repeat(65);
    for bad in [
        "..",
        "%2e%2e",
        ".",
        "a%2Fb",
        "a%2F..%2F..",
        "a%5Cb",
        "a.b",
        "a%20b",
        &long,
    ] {
        // A real image, so that only the folder can be what is refused.
        let (status, body) = raw_post(&server, &format!("{DIY}{bad}"), &alice.token, &png(1, 1, 0)).await;
        assert_eq!(body["msg"], "fail", "{bad}: {body}");
        // A name the route takes is refused by the check; one that decodes to a path of more
        // than the route's one segment matches no route at all.
        let reason = match status {
            400 => "the folder must be 1 to 64 letters, digits, _ or -",
            404 if bad.contains("%2F") || bad.contains("%2e") => "no such route",
            _ => panic!("{bad}: {status} {body}"),
        };
        assert_eq!(body["data"], reason, "{bad}");
    }
    for bad in ["a/b", "../x", "x/../../y"] {
        let (status, body) = raw_post(&server, &format!("{DIY}{bad}"), &alice.token, &png(1, 1, 0)).await;
        assert_eq!(status, 404, "{bad}");
        assert_eq!(body, json!({"msg": "fail", "data": "no such route"}), "{bad}");
    }
    let got = upload(&server, &long, Some(&alice.token), png(1, 1, 0)).await;
    let reason = assert_fail(&got, StatusCode::BAD_REQUEST);
    assert!(reason.contains("folder"), "{reason}");
    assert_eq!(objects_on_disk(dir.path()), 0);
    // Nothing was written outside the store either.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let known = ["files", "parlor.redb", "jwt_secret"];
    assert!(names.iter().all(|n| known.contains(&n.as_str())), "{names:?}");
    let url = upload_ok(&server, &"a".repeat(64), &alice, png(1, 1, 0)).await;
    assert!(url.contains(&"a".repeat(64)));
    server.stop().await;
}

#[actix_web::test]
async fn identical_content_is_stored_once_with_one_record_per_upload() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    let image = png(4, 4, 9);
    let first = upload_ok(&server, "chatImgs", &alice, image.clone()).await;
    let second = upload_ok(&server, "other", &bob, image.clone()).await;
    assert_ne!(first, second);
    assert_eq!(objects_on_disk(dir.path()), 1);
    for url in [&first, &second] {
        let resp = fetch(&server, url, None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.bytes().await.unwrap().as_ref(), image.as_slice());
    }
    upload_ok(&server, "chatImgs", &alice, png(4, 4, 10)).await;
    assert_eq!(objects_on_disk(dir.path()), 2);
    server.stop().await;
}

#[actix_web::test]
async fn visitors_upload_and_upload_aliyun_answers_the_documents_shape() {
    let (server, _dir) = TestServer::start().await;
    let visitor = register_visitor(&server).await;
    let me = Some(visitor.token.as_str());
    let url = upload_ok(&server, "chatImgs", &visitor, png(2, 2, 3)).await;
    assert!(url.starts_with("/public/uploads/Diy/chatImgs/"));

    let got = Upload::to(ALIYUN, me, "img")
        .text("name", "img")
        .text("imageClassId", "3")
        .send(&server, png(5, 5, 5))
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["code"], 200);
    assert_eq!(got.1["msg"], "上传成功");
    let item = &got.1["data"][0];
    let path = item["path"].as_str().unwrap();
    assert!(path.starts_with("images/") && path.ends_with(".png"), "{path}");
    assert_eq!(item["url"], format!("/public/uploads/{path}"));
    assert_eq!(item["image_class_id"], 3);
    assert!(item["create_time"].as_u64().unwrap() > 1_700_000_000);
    let resp = fetch(&server, item["url"].as_str().unwrap(), None).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let bad = Upload::to(ALIYUN, me, "img")
        .text("imageClassId", "many")
        .send(&server, png(5, 5, 5))
        .await;
    assert!(assert_fail(&bad, StatusCode::BAD_REQUEST).contains("imageClassId"));
    let bad = Upload::to(ALIYUN, None, "img").send(&server, png(1, 1, 1)).await;
    assert_fail(&bad, StatusCode::UNAUTHORIZED);
    let bad = Upload::to(ALIYUN, me, "img").send(&server, elf()).await;
    assert_fail(&bad, StatusCode::BAD_REQUEST);
    let mut many = Upload::to(ALIYUN, me, "img");
    for _ in 0..33 {
        many = many.text("extra", "1");
    }
    let bad = many.send(&server, png(1, 1, 1)).await;
    assert!(assert_fail(&bad, StatusCode::BAD_REQUEST).contains("more than 32 fields"));
    let long = "x".repeat(5000);
    let bad = Upload::to(ALIYUN, me, "img")
        .text("imageClassId", &long)
        .send(&server, png(1, 1, 1))
        .await;
    assert!(assert_fail(&bad, StatusCode::BAD_REQUEST).contains("4096"));
    server.stop().await;
}

#[actix_web::test]
async fn the_chat_room_uploads_images() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let me = Some(alice.token.as_str());
    let image = png(6, 4, 1);
    let got = Upload::to(ROOM_IMAGE, me, "image")
        .send(&server, image.clone())
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["success"], true);
    let url = got.1["message"].as_str().unwrap();
    assert!(url.starts_with("/public/uploads/"), "{url}");
    assert_eq!(got.1["url"], url);
    assert_eq!(got.1["width"], 6);
    assert_eq!(got.1["height"], 4);
    let resp = fetch(&server, url, None).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), image.as_slice());

    let refused = |got: &(StatusCode, Value), status: StatusCode| {
        assert_eq!(got.0, status, "{}", got.1);
        assert_eq!(got.1["success"], false, "{}", got.1);
        got.1["message"].as_str().unwrap().to_owned()
    };
    let got = Upload::to(ROOM_IMAGE, None, "image")
        .send(&server, png(1, 1, 1))
        .await;
    refused(&got, StatusCode::UNAUTHORIZED);
    let got = Upload::to(ROOM_IMAGE, me, "file")
        .send(&server, png(1, 1, 1))
        .await;
    assert!(refused(&got, StatusCode::BAD_REQUEST).contains("image is required"));
    let got = Upload::to(ROOM_IMAGE, me, "image").send(&server, elf()).await;
    refused(&got, StatusCode::BAD_REQUEST);
    // A video is an allowed upload, but not an image.
    let mut mp4 = vec![0, 0, 0, 0x18];
    mp4.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2mp41");
    mp4.resize(64, 0);
    let got = Upload::to(ROOM_IMAGE, me, "image").send(&server, mp4).await;
    assert!(refused(&got, StatusCode::BAD_REQUEST).contains("image"));
    let got = server.post_json(ROOM_IMAGE, me, &json!({"image": "x"})).await;
    refused(&got, StatusCode::BAD_REQUEST);
    server.stop().await;
}

/// A one-second 128×96 test video made by ffmpeg. Fails, saying why, when ffmpeg is
/// missing: screenshots cannot be tested without it.
fn test_video(dir: &Path) -> Vec<u8> {
    let out = dir.join("out.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=1:size=128x96:rate=10",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("ffmpeg is required to test video screenshots (apt-get install -y ffmpeg): {e}")
        });
    assert!(status.success(), "ffmpeg could not make the test video");
    std::fs::read(out).unwrap()
}

/// The width of a PNG image, from its header.
fn png_width(image: &[u8]) -> u32 {
    assert_eq!(&image[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    u32::from_be_bytes(image[16..20].try_into().unwrap())
}

fn decode64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

const SHOT: &str = "/api/chat/getVideoScreenshot";

#[actix_web::test]
async fn a_screenshot_of_an_uploaded_video() {
    let dir = tempfile::tempdir().unwrap();
    let video = test_video(dir.path());
    let server = TestServer::start_in(&dir.path().join("server"), |_| {}).await;
    let alice = server.register("alice").await;
    let me = Some(alice.token.as_str());
    let url = upload_ok(&server, "videos", &alice, video.clone()).await;
    assert!(url.ends_with(".mp4"), "{url}");
    let resp = fetch(&server, &url, None).await;
    assert_eq!(resp.headers()["content-type"], "video/mp4");

    // The document's defaults: 20 ms, 260 px, png; a form body.
    let data = assert_ok(&server.post_form(SHOT, me, &[("videoUrl", &url)]).await);
    assert_eq!(data["format"], "png");
    assert_eq!(data["time"], 20);
    assert_eq!(data["width"], 260);
    let image = decode64(data["base64"].as_str().unwrap());
    assert_eq!(png_width(&image), 260);
    let shot = data["url"].as_str().unwrap();
    assert!(
        shot.starts_with("/public/uploads/Diy/VideoScreenshot/screenshot_"),
        "{shot}"
    );
    let resp = fetch(&server, shot, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), image.as_slice());

    // JSON, a full URL of this server, another time, width and format.
    let full = server.url(&url);
    let body = json!({"videoUrl": full, "time": 500, "width": 64, "format": "jpg"});
    let data = assert_ok(&server.post_json(SHOT, me, &body).await);
    assert_eq!(data["format"], "jpg");
    assert_eq!(data["width"], 64);
    let image = decode64(data["base64"].as_str().unwrap());
    assert_eq!(&image[..3], b"\xff\xd8\xff", "a JPEG");
    let body = json!({"videoUrl": url, "width": 32});
    let image = decode64(
        assert_ok(&server.post_json(SHOT, me, &body).await)["base64"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(png_width(&image), 32);

    // Refusals.
    let fail = |got: (StatusCode, Value), status| assert_fail(&got, status);
    fail(
        server.post_form(SHOT, None, &[("videoUrl", &url)]).await,
        StatusCode::UNAUTHORIZED,
    );
    let reason = fail(server.post_form(SHOT, me, &[]).await, StatusCode::BAD_REQUEST);
    assert!(reason.contains("videoUrl"), "{reason}");
    for (field, value) in [
        ("format", "gif"),
        ("width", "8"),
        ("width", "wide"),
        ("time", "-1"),
    ] {
        let got = server
            .post_form(SHOT, me, &[("videoUrl", &url), (field, value)])
            .await;
        fail(got, StatusCode::BAD_REQUEST);
    }
    // Past the end of the video there is no frame.
    let got = server
        .post_form(SHOT, me, &[("videoUrl", &url), ("time", "60000")])
        .await;
    assert!(fail(got, StatusCode::BAD_REQUEST).contains("no frame"));
    // A stored image is not a video.
    let image_url = upload_ok(&server, "chatImgs", &alice, png(2, 2, 2)).await;
    let got = server.post_form(SHOT, me, &[("videoUrl", &image_url)]).await;
    assert!(fail(got, StatusCode::BAD_REQUEST).contains("not a video"));
    // Unknown stored files are not found (other tenants' files: see the admin test).
    let got = server
        .post_form(SHOT, me, &[("videoUrl", "/public/uploads/Diy/x/1/none.mp4")])
        .await;
    fail(got, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[actix_web::test]
async fn screenshot_urls_are_fetched_only_from_allowed_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let video = test_video(dir.path());
    // This server is also the allowed host, under the name `localhost`.
    let server = TestServer::start_in(&dir.path().join("server"), |c| {
        c.files.fetch_allowed_hosts = vec!["localhost".into()];
    })
    .await;
    let alice = server.register("alice").await;
    let me = Some(alice.token.as_str());
    let url = upload_ok(&server, "videos", &alice, video).await;
    let port = server.addr.port();
    let remote = format!("http://localhost:{port}{url}");
    let data = assert_ok(
        &server
            .post_form(SHOT, me, &[("videoUrl", &remote), ("width", "40")])
            .await,
    );
    assert_eq!(png_width(&decode64(data["base64"].as_str().unwrap())), 40);

    let missing = format!("http://localhost:{port}/public/uploads/none.mp4");
    let reason = assert_fail(
        &server.post_form(SHOT, me, &[("videoUrl", &missing)]).await,
        StatusCode::BAD_REQUEST,
    );
    assert!(reason.contains("404"), "{reason}");
    for refused in [
        "http://example.com/video.mp4".to_owned(),
        format!("http://127.0.0.2:{port}{url}"),
        format!("ftp://localhost:{port}{url}"),
        "file:///etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        "../../parlor.redb".to_owned(),
        format!("http://localhost.evil.example:{port}{url}"),
    ] {
        let got = server.post_form(SHOT, me, &[("videoUrl", &refused)]).await;
        let reason = assert_fail(&got, StatusCode::FORBIDDEN);
        assert!(reason.contains("fetch_allowed_hosts"), "{refused}: {reason}");
    }
    server.stop().await;

    // With the default configuration nothing is fetched at all.
    let server = TestServer::start_in(&dir.path().join("server"), |_| {}).await;
    let alice = server
        .post_form(
            "/api/loginChat",
            None,
            &[("username", "alice"), ("password", "secret1")],
        )
        .await;
    let token = user_of(&alice.1).token;
    let got = server
        .post_form(SHOT, Some(&token), &[("videoUrl", &remote)])
        .await;
    assert_fail(&got, StatusCode::FORBIDDEN);
    // The stored file itself still works.
    assert_ok(&server.post_form(SHOT, Some(&token), &[("videoUrl", &url)]).await);
    server.stop().await;
}

#[actix_web::test]
async fn without_ffmpeg_a_screenshot_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let video = test_video(dir.path());
    let server = TestServer::start_in(&dir.path().join("server"), |c| {
        c.files.ffmpeg = "/nonexistent/ffmpeg".into();
    })
    .await;
    let alice = server.register("alice").await;
    let url = upload_ok(&server, "videos", &alice, video).await;
    let got = server
        .post_form(SHOT, Some(&alice.token), &[("videoUrl", &url)])
        .await;
    let reason = assert_fail(&got, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reason.contains("ffmpeg is not installed"), "{reason}");
    server.stop().await;

    // An ffmpeg that never finishes is stopped at files.ffmpeg_timeout_secs.
    let stuck = dir.path().join("stuck-ffmpeg");
    std::fs::write(&stuck, "#!/bin/sh\nexec sleep 60\n").unwrap();
    let mut perms = std::fs::metadata(&stuck).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&stuck, perms).unwrap();
    let server = TestServer::start_in(&dir.path().join("stuck"), |c| {
        c.files.ffmpeg = stuck.to_string_lossy().into_owned();
        c.files.ffmpeg_timeout_secs = 1;
    })
    .await;
    let alice = server.register("alice").await;
    let url = upload_ok(&server, "videos", &alice, test_video(dir.path())).await;
    let got = server
        .post_form(SHOT, Some(&alice.token), &[("videoUrl", &url)])
        .await;
    let reason = assert_fail(&got, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reason.contains("longer than 1 s"), "{reason}");
    server.stop().await;
}

const SEND: &str = "/api/chat/socket/sendmessage";

/// A uni-app REST send of a `kind` message to `to` with `fields`.
async fn send_media(
    server: &TestServer,
    from: &User,
    to: &User,
    kind: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let to = to.id.to_string();
    let mut form = vec![("sendto_id", to.as_str()), ("type", kind)];
    form.extend_from_slice(fields);
    server.post_form(SEND, Some(&from.token), &form).await
}

#[actix_web::test]
async fn image_and_video_messages_keep_their_metadata_on_every_face() {
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob_1").await;
    server.befriend(&alice, &bob).await;
    let url = upload_ok(&server, "chatImgs", &alice, png(3, 2, 1)).await;

    // uni-app: an image whose content is a file stored here gets that file's metadata.
    let sent = assert_ok(&send_media(&server, &alice, &bob, "image", &[("data", &url)]).await);
    let expected = json!({"src": url, "width": 3, "height": 2});
    assert_eq!(sent["options"]["metadata"], expected, "{sent}");
    // A full URL of this server works too.
    let full = server.url(&url);
    let sent = assert_ok(&send_media(&server, &alice, &bob, "image", &[("data", &full)]).await);
    assert_eq!(sent["options"]["metadata"]["width"], 3, "{sent}");
    // Given metadata is kept as given (a video elsewhere), as a field or in the options.
    let video_meta = json!({"src": "https://cdn.example.com/v.mp4", "width": 640, "height": 360});
    let meta_text = video_meta.to_string();
    let fields = [("data", "v"), ("metadata", meta_text.as_str())];
    let sent = assert_ok(&send_media(&server, &alice, &bob, "video", &fields).await);
    assert_eq!(sent["options"]["metadata"], video_meta);
    let options = json!({"metadata": video_meta}).to_string();
    let fields = [("data", "v"), ("options", options.as_str())];
    let sent = assert_ok(&send_media(&server, &alice, &bob, "video", &fields).await);
    assert_eq!(sent["options"]["metadata"], video_meta);
    for bad in [
        r#"{"src":"a","width":"wide"}"#,
        "[1,2]",
        "not json",
        r#"{"src":1}"#,
    ] {
        let got = send_media(
            &server,
            &alice,
            &bob,
            "image",
            &[("data", &url), ("metadata", bad)],
        )
        .await;
        assert!(
            assert_fail(&got, StatusCode::BAD_REQUEST).contains("metadata"),
            "{bad}"
        );
    }

    // WebSocket: `metadata` beside the frame's fields.
    let mut ws = server.ws(&alice.token).await;
    ws.send_json(&json!({
        "type": "send", "cid": "m1", "to": bob.id, "msgType": "image", "data": url,
        "metadata": {"src": url, "width": 3, "height": 2},
    }))
    .await;
    let ack = ws.next_of_type("ack").await;
    assert_eq!(ack["data"]["options"]["metadata"], expected, "{ack}");
    ws.send_json(
        &json!({"type": "send", "cid": "m2", "to": bob.id, "msgType": "image", "data": url, "metadata": 7}),
    )
    .await;
    let err = ws.next_of_type("error").await;
    assert_eq!(err["code"], "invalid", "{err}");

    // Bob's history (uni-app) and the chat-room history show it.
    let (_, history) = server
        .get(
            &format!("/api/chat/history/single/{}", alice.id),
            Some(&bob.token),
        )
        .await;
    let newest = &history["data"]["list"][0];
    assert_eq!(newest["options"]["metadata"], expected, "{history}");
    let created = server
        .post_json(
            &format!("/conversation/create?contactId={}", alice.id),
            Some(&bob.token),
            &json!({}),
        )
        .await;
    assert_eq!(created.0, StatusCode::OK, "{}", created.1);
    let n = created.1["conversation"]["id"].as_u64().unwrap();
    let (_, room) = server
        .get(&format!("/message/history/{n}"), Some(&bob.token))
        .await;
    let newest = &room["messages"][0];
    assert_eq!(newest["type"], "image", "{room}");
    assert_eq!(newest["metadata"], expected, "{room}");
    ws.close().await;
    server.stop().await;
}

/// A stand-in for another host: answers `/elsewhere` and `/file` with redirects (to a host
/// that is not allowed, and to `file://`), `/image` with a PNG and `/big` with a video
/// larger than the fetch limit. Returns its address.
async fn other_host() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = request.split(' ').nth(1).unwrap_or("/").to_owned();
                let (head, body): (String, Vec<u8>) = match path.as_str() {
                    "/elsewhere" => (
                        "302 Found\r\nLocation: http://127.0.0.1:1/v.mp4".into(),
                        Vec::new(),
                    ),
                    "/file" => ("302 Found\r\nLocation: file:///etc/passwd".into(), Vec::new()),
                    "/image" => ("200 OK\r\nContent-Type: video/mp4".into(), png(2, 2, 2)),
                    _ => {
                        let mut mp4 = vec![0, 0, 0, 0x18];
                        mp4.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2mp41");
                        mp4.resize(4096, 0);
                        ("200 OK\r\nContent-Type: video/mp4".into(), mp4)
                    }
                };
                let answer = format!(
                    "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    addr
}

#[actix_web::test]
async fn fetches_follow_no_redirect_off_the_allowed_hosts_and_are_bounded() {
    let other = other_host().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.files.fetch_allowed_hosts = vec![other.to_string()];
        c.files.fetch_max_bytes = 1024;
    })
    .await;
    let alice = server.register("alice").await;
    let me = Some(alice.token.as_str());
    let shot = |path: &str| {
        let url = format!("http://{other}{path}");
        let server = &server;
        async move { server.post_form(SHOT, me, &[("videoUrl", &url)]).await }
    };
    let reason = assert_fail(&shot("/elsewhere").await, StatusCode::FORBIDDEN);
    assert!(reason.contains("fetch_allowed_hosts"), "{reason}");
    assert_fail(&shot("/file").await, StatusCode::FORBIDDEN);
    // What the host sends is checked like an upload: a PNG is no video, whatever its header.
    let reason = assert_fail(&shot("/image").await, StatusCode::BAD_REQUEST);
    assert!(reason.contains("not a video"), "{reason}");
    let reason = assert_fail(&shot("/big").await, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reason.contains("1024"), "{reason}");
    server.stop().await;
}

/// A signed admin request (the admin listener of `server`); returns the answer.
async fn admin(server: &TestServer, path: &str, body: &Value) -> Value {
    let nonce = uuid::Uuid::new_v4().to_string();
    let timestamp = parlor_actors::now_ms().to_string();
    let resp = server
        .http
        .post(format!(
            "http://{}{path}",
            server.admin.expect("an admin listener")
        ))
        .header("nonce", &nonce)
        .header("timestamp", &timestamp)
        .header(
            "sign",
            parlor::faces::admin::sign(&nonce, "files-admin-secret", &timestamp),
        )
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[actix_web::test]
async fn the_admin_lists_uploads_of_its_own_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |c| {
        c.admin.bind = "127.0.0.1:0".into();
        c.admin.secret = "files-admin-secret".into();
    })
    .await;
    let alice = server.register_open("alice").await;
    let bob = server.register_open("bob_1").await;
    let url = upload_ok(&server, "chatImgs", &alice, png(2, 2, 2)).await;
    // The admin lists file messages: alice sends the upload.
    let to = bob.id.to_string();
    let data = json!(url).to_string();
    let form = [
        ("sendto_id", to.as_str()),
        ("chatType", "single"),
        ("type", "image"),
        ("data", data.as_str()),
    ];
    let (status, body) = server
        .post_form("/api/chat/socket/sendmessage", Some(&alice.token), &form)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = admin(&server, "/admin/file/user_files", &json!({"userId": alice.uuid})).await;
    assert_eq!(got["result"][0]["url"], url.as_str(), "{got}");

    // Another tenant: the user is unknown there, and its own users have no files.
    let body = json!({"userId": alice.uuid, "appId": "acme"});
    assert_eq!(admin(&server, "/admin/file/user_files", &body).await["code"], 253);
    let other = server.register_in("acme", "alice").await;
    let body = json!({"userId": other.uuid, "appId": "acme"});
    assert_eq!(
        admin(&server, "/admin/file/user_files", &body).await["result"],
        json!([])
    );
    // Nor can the other tenant's user use the file's URL as its own video.
    let got = server
        .post_form(SHOT, Some(&other.token), &[("videoUrl", &url)])
        .await;
    assert_fail(&got, StatusCode::NOT_FOUND);
    server.stop().await;
}
