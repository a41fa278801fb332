//! The file routes of the uni-app face — `uploadStreamSingleToServerDiy/{diydir}`,
//! `uploadAliyun`, `getVideoScreenshot` — and `GET /public/uploads/...`, which serves
//! stored files (content type, length, single ranges, `ETag` = sha256, immutable caching).
//! Uploads need a token (visitors too); names and paths are generated here, never taken from
//! the client.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde_json::json;

use super::{ok, Form, Me, Result, State};
use crate::core::files as core_files;
use crate::error::ApiError;
use crate::faces::receive_multipart;
use crate::files::screenshot::{self, Format};
use crate::files::{self as store, Accept};
use crate::routes::Routes;

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    r.post("/api/chat/uploadStreamSingleToServerDiy/{diydir}", upload_diy)
        .post("/api/chat/uploadAliyun", upload_aliyun)
        .post("/api/chat/getVideoScreenshot", video_screenshot)
        .get("/public/uploads/{path:.*}", serve)
        .head("/public/uploads/{path:.*}", serve);
}

async fn upload_diy(
    req: HttpRequest,
    state: State,
    me: Me,
    diydir: web::Path<String>,
    payload: web::Payload,
) -> Result {
    let diydir = diydir.into_inner();
    store::check_folder(&diydir)?;
    let folder = format!("Diy/{diydir}/{}", store::today());
    let (upload, _) = receive_multipart(&state, &req, payload, &["file"], Accept::Allowed).await?;
    let file = core_files::keep_in(&state, upload, me.tenant(), me.id(), &folder).await?;
    Ok(ok(json!({"url": store::served_url(&file.path)})))
}

async fn upload_aliyun(req: HttpRequest, state: State, me: Me, payload: web::Payload) -> Result {
    let folder = format!("images/{}", store::today());
    let (upload, texts) = receive_multipart(&state, &req, payload, &["img", "file"], Accept::Allowed).await?;
    let class = match texts.get("imageClassId").map(|s| s.trim()) {
        None | Some("") => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| ApiError::invalid("imageClassId must be an integer"))?,
    };
    let file = core_files::keep_in(&state, upload, me.tenant(), me.id(), &folder).await?;
    Ok(HttpResponse::Ok().json(json!({
        "code": 200,
        "msg": "上传成功",
        "data": [{
            "url": state.files.public_url(&file),
            "path": file.path,
            "image_class_id": class,
            "create_time": file.created_ms / 1000,
        }],
    })))
}

/// This server's own host as the request names it (`Host`), to recognize full URLs of
/// files stored here.
fn own_host(req: &HttpRequest) -> String {
    req.connection_info().host().to_owned()
}

async fn video_screenshot(req: HttpRequest, state: State, me: Me, form: Form) -> Result {
    let url = form.str("videoUrl")?;
    let url = url.trim();
    if url.is_empty() {
        return Err(ApiError::invalid("videoUrl is required").into());
    }
    let time = form.opt_u64("time")?.unwrap_or(20);
    if time > 24 * 3600 * 1000 {
        return Err(ApiError::invalid("time must be at most 86400000 ms").into());
    }
    let width = form.opt_u64("width")?.unwrap_or(260);
    if !(16..=4096).contains(&width) {
        return Err(ApiError::invalid("width must be 16 to 4096").into());
    }
    let format = match form.opt_str("format")? {
        None => Format::Png,
        Some(f) if f.trim().is_empty() => Format::Png,
        Some(f) => Format::parse(f.trim()).ok_or_else(|| ApiError::invalid("format must be png or jpg"))?,
    };
    let video = if store::stored_path(url, &own_host(&req)).is_some() {
        let file = core_files::stored_file(&state, me.tenant(), url, &own_host(&req))
            .await?
            .ok_or_else(|| ApiError::NotFound("videoUrl names no file stored here".into()))?;
        screenshot::stored_video(&state.files, &file).await?
    } else {
        screenshot::fetch_video(&state.files, url).await?
    };
    let image = screenshot::frame(&state.files, &video, time, width as u32, format).await?;
    drop(video);
    let base64 = base64::engine::general_purpose::STANDARD.encode(&image);
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(image)) });
    let upload = state.files.receive(Box::pin(body), "", Accept::Images).await?;
    let path = format!(
        "Diy/VideoScreenshot/{}",
        store::new_name("screenshot_", &upload.ext)
    );
    let file = core_files::keep(&state, upload, me.tenant(), me.id(), path).await?;
    Ok(ok(json!({
        "base64": base64,
        "url": store::served_url(&file.path),
        "format": format.as_str(),
        "time": time,
        "width": width,
    })))
}

/// A single `Range: bytes=...` of a `size`-byte file: `Ok(None)` serves the whole file
/// (no range, or several), `Err(())` is unsatisfiable.
fn byte_range(value: &str, size: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| ())?;
        if suffix == 0 {
            return Err(());
        }
        (size.saturating_sub(suffix), size.checked_sub(1).ok_or(())?)
    } else {
        let start: u64 = start.parse().map_err(|_| ())?;
        let end = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            end.parse::<u64>().map_err(|_| ())?.min(size.saturating_sub(1))
        };
        (start, end)
    };
    if range.0 >= size || range.0 > range.1 {
        return Err(());
    }
    Ok(Some(range))
}

async fn serve(req: HttpRequest, state: State, path: web::Path<String>) -> Result {
    let path = path.into_inner();
    let lookup = path.clone();
    let file = state
        .read(move |s| Ok(s.file_by_path(&lookup)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no file {}", store::served_url(&path))))?;
    let etag = format!("\"{}\"", file.sha256);
    let resp = |status| {
        let mut r = HttpResponse::build(status);
        r.insert_header((header::ETAG, etag.clone()))
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .insert_header((header::ACCEPT_RANGES, "bytes"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
        r
    };
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag)
        });
    if matches {
        return Ok(resp(actix_web::http::StatusCode::NOT_MODIFIED).finish());
    }
    let range = match req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => match byte_range(v, file.size) {
            Ok(r) => r,
            Err(()) => {
                return Ok(resp(actix_web::http::StatusCode::RANGE_NOT_SATISFIABLE)
                    .insert_header((header::CONTENT_RANGE, format!("bytes */{}", file.size)))
                    .finish())
            }
        },
    };
    let (status, start, len) = match range {
        Some((a, b)) => (actix_web::http::StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (actix_web::http::StatusCode::OK, 0, file.size),
    };
    let key = store::object_key(&file.sha256);
    let stream = state.files.objects().read(&key, start, len).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            // Known here but not in the object store (an import without the files, a
            // store cleaned by hand): the client sees a missing file, the operator a warning.
            tracing::warn!(path = %file.path, key = %key, "files: a stored file's object is missing");
            ApiError::NotFound(format!("no file {}", store::served_url(&file.path)))
        } else {
            tracing::error!(error = %e, path = %file.path, "files: stored object unreadable");
            ApiError::Internal("the file cannot be read".into())
        }
    })?;
    let mut r = resp(status);
    r.insert_header((header::CONTENT_TYPE, file.content_type.as_str()));
    if range.is_some() {
        r.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", start + len - 1, file.size),
        ));
    }
    Ok(r.no_chunking(len).streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-3", 10), Ok(Some((0, 3))));
        assert_eq!(byte_range("bytes=4-", 10), Ok(Some((4, 9))));
        assert_eq!(byte_range("bytes=-3", 10), Ok(Some((7, 9))));
        assert_eq!(byte_range("bytes=5-100", 10), Ok(Some((5, 9))));
        assert_eq!(byte_range("bytes=0-1,4-5", 10), Ok(None));
        assert_eq!(byte_range("items=0-1", 10), Ok(None));
        assert_eq!(byte_range("bytes=10-", 10), Err(()));
        assert_eq!(byte_range("bytes=5-2", 10), Err(()));
        assert_eq!(byte_range("bytes=x-2", 10), Err(()));
        assert_eq!(byte_range("bytes=-0", 10), Err(()));
    }
}
