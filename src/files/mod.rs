//! Uploaded files. An upload is streamed to a temporary file while it is hashed, its size
//! bounded and its type detected from its bytes (magic numbers, never the name); the bytes
//! are then stored once per content in the object store ([`objects`], keyed by sha256)
//! and each upload gets its own generated path and a metadata record in redb (saved by
//! [`crate::core::files`]),
//! served under `/public/uploads/`. [`screenshot`] takes frames of videos with ffmpeg.
//! The message helpers here keep the `metadata` (`src`, `width`, `height`) of image and
//! video messages on every face.

pub mod objects;
pub mod screenshot;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use parlor_storage::FileRecord;
use rand::Rng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use crate::config::{Config, FilesConfig};
use crate::error::ApiError;
pub use objects::{object_key, Objects};

/// The URL prefix of served files.
pub const PUBLIC_PREFIX: &str = "/public/uploads/";

/// Bytes kept from the start of an upload: enough for the magic numbers and the header of
/// an image (its pixel size).
const HEAD_BYTES: usize = 64 * 1024;
/// Bytes needed before the type is decided (the longest signature `infer` reads).
const SNIFF_BYTES: usize = 8 * 1024;

/// The uploaded-file service every handler shares.
pub struct Files {
    config: FilesConfig,
    objects: Arc<dyn Objects>,
}

/// Which detected types a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Any type of `files.allowed_types`.
    Allowed,
    /// Only the images among them.
    Images,
}

/// A received upload, complete and checked, not yet stored.
pub struct Upload {
    temp: TempPath,
    pub size: u64,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    /// The detected type, e.g. `image/png`.
    pub content_type: String,
    /// The extension of the detected type, e.g. `png`.
    pub ext: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The client's name for the file, kept for display only.
    pub original_name: String,
}

fn internal(what: &str) -> impl Fn(std::io::Error) -> ApiError + '_ {
    move |e| {
        tracing::error!(error = %e, "files: {what}");
        ApiError::Internal(format!("cannot {what}"))
    }
}

impl Files {
    /// The service of `config`: the object store it names, its directory created.
    pub fn open(config: &Config) -> Result<Files, String> {
        let objects = objects::open(&config.files, &config.storage.files_dir())?;
        Ok(Files {
            config: config.files.clone(),
            objects,
        })
    }

    /// The object store.
    pub fn objects(&self) -> &dyn Objects {
        self.objects.as_ref()
    }

    /// The configuration of files.
    pub fn config(&self) -> &FilesConfig {
        &self.config
    }

    /// Receives an upload from `stream` into a temporary file, refusing it the moment it
    /// passes `files.max_bytes`, and refusing a type that is not accepted.
    pub async fn receive<S, E>(
        &self,
        stream: S,
        original_name: &str,
        accept: Accept,
    ) -> Result<Upload, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.receive_limited(stream, original_name, accept, self.config.max_bytes)
            .await
    }

    /// [`Files::receive`] with another size limit (`limit`).
    pub async fn receive_limited<S, E>(
        &self,
        mut stream: S,
        original_name: &str,
        accept: Accept,
        limit: u64,
    ) -> Result<Upload, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let temp = tempfile::NamedTempFile::new_in(self.objects.temp_dir())
            .map_err(internal("create a temporary file"))?;
        let (file, temp) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut size = 0u64;
        let mut kind = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::invalid(format!("cannot read the file: {e}")))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(ApiError::TooLarge(format!("the file is over {limit} bytes")));
            }
            if head.len() < HEAD_BYTES {
                let take = chunk.len().min(HEAD_BYTES - head.len());
                head.extend_from_slice(&chunk[..take]);
            }
            if kind.is_none() && head.len() >= SNIFF_BYTES {
                kind = Some(self.check_type(&head, accept)?);
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(internal("write the upload"))?;
        }
        if size == 0 {
            return Err(ApiError::invalid("the file is empty"));
        }
        let kind = match kind {
            Some(k) => k,
            None => self.check_type(&head, accept)?,
        };
        file.flush().await.map_err(internal("write the upload"))?;
        drop(file);
        let (width, height) = match kind.matcher_type() {
            infer::MatcherType::Image => imagesize::blob_size(&head)
                .ok()
                .map(|s| (u32::try_from(s.width).ok(), u32::try_from(s.height).ok()))
                .unwrap_or((None, None)),
            _ => (None, None),
        };
        Ok(Upload {
            temp,
            size,
            sha256: hex::encode(hasher.finalize()),
            content_type: kind.mime_type().to_owned(),
            ext: kind.extension().to_owned(),
            width,
            height,
            original_name: original_name.chars().take(255).collect(),
        })
    }

    fn check_type(&self, head: &[u8], accept: Accept) -> Result<infer::Type, ApiError> {
        let kind = infer::get(head)
            .ok_or_else(|| ApiError::invalid("the file's type is not recognized from its content"))?;
        let mime = kind.mime_type();
        let allowed = self.config.allowed_types.iter().any(|t| t == mime)
            && (accept == Accept::Allowed || kind.matcher_type() == infer::MatcherType::Image);
        if !allowed {
            let what = if accept == Accept::Images {
                "an image"
            } else {
                "allowed"
            };
            return Err(ApiError::invalid(format!(
                "files of type {mime} are not {what} here"
            )));
        }
        Ok(kind)
    }

    /// Puts an upload's bytes in the object store (once per content) and returns the
    /// metadata record of the upload at the served `path` (under [`PUBLIC_PREFIX`]) for
    /// `owner`, not yet saved: [`crate::core::files::keep`] saves it.
    pub async fn put_object(
        &self,
        upload: Upload,
        tenant: &str,
        owner: u64,
        path: String,
    ) -> Result<FileRecord, ApiError> {
        let key = object_key(&upload.sha256);
        if !self
            .objects
            .exists(&key)
            .await
            .map_err(internal("read the object store"))?
        {
            self.objects
                .put_file(&key, upload.temp, &upload.content_type)
                .await
                .map_err(internal("write to the object store"))?;
        }
        Ok(FileRecord {
            id: 0,
            tenant: tenant.to_owned(),
            owner,
            path,
            original_name: upload.original_name,
            content_type: upload.content_type,
            size: upload.size,
            sha256: upload.sha256,
            width: upload.width,
            height: upload.height,
            created_ms: parlor_actors::now_ms(),
        })
    }

    /// The public URL of a stored file in the object store's own terms: the bucket's URL
    /// when it has one, else the path served here.
    pub fn public_url(&self, file: &FileRecord) -> String {
        self.objects
            .public_url(&object_key(&file.sha256))
            .unwrap_or_else(|| served_url(&file.path))
    }
}

/// The URL, absolute path, of a file served here.
pub fn served_url(path: &str) -> String {
    format!("{PUBLIC_PREFIX}{path}")
}

/// A new file name: `<ms>_<random>.<ext>`.
pub fn new_name(prefix: &str, ext: &str) -> String {
    let random: u32 = rand::thread_rng().gen_range(10_000_000..100_000_000);
    format!("{prefix}{}_{random}.{ext}", parlor_actors::now_ms())
}

/// Today as `yyyymmdd` (the server's local time), the folder of the day's uploads.
pub fn today() -> String {
    chrono::Local::now().format("%Y%m%d").to_string()
}

/// Checks a client-chosen folder name: 1 to 64 letters, digits, `_` or `-`.
pub fn check_folder(name: &str) -> Result<(), ApiError> {
    if !crate::core::plain_name(name) {
        return Err(ApiError::invalid(
            "the folder must be 1 to 64 letters, digits, _ or -",
        ));
    }
    Ok(())
}

/// The stored path named by a URL of this server: `/public/uploads/<path>`, or a full
/// `http(s)://<host>/public/uploads/<path>` whose host is `own_host`. `None` for anything
/// else. The path is only ever looked up in the metadata table, never opened.
pub fn stored_path(url: &str, own_host: &str) -> Option<String> {
    let path = match url.split_once("://") {
        None => url,
        Some((scheme, rest)) => {
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return None;
            }
            let (host, path) = rest.split_at(rest.find('/')?);
            if !host.eq_ignore_ascii_case(own_host) {
                return None;
            }
            path
        }
    };
    let path = path.split(['?', '#']).next()?;
    path.strip_prefix(PUBLIC_PREFIX)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
}

/// Whether a message type carries a picture (`metadata` with `src`, `width`, `height`).
pub fn is_media(kind: &str) -> bool {
    matches!(kind, "image" | "video")
}

/// Puts the message's `metadata` into its options (JSON text): given metadata must be an
/// object whose `src` is a string and `width`, `height` numbers when present. Absent, the
/// options are kept as they are (metadata already in them survives).
pub fn with_metadata(options: String, metadata: Option<&Value>) -> Result<String, ApiError> {
    let metadata = match metadata {
        None | Some(Value::Null) => return Ok(options),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(options),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|_| ApiError::invalid("metadata must be a JSON object"))?,
        Some(other) => other.clone(),
    };
    check_metadata(&metadata)?;
    let mut parsed: Map<String, Value> = match serde_json::from_str(&options) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(ApiError::invalid(
                "options must be a JSON object to carry metadata",
            ))
        }
    };
    parsed.insert("metadata".into(), metadata);
    Ok(Value::Object(parsed).to_string())
}

fn check_metadata(m: &Value) -> Result<(), ApiError> {
    let Value::Object(o) = m else {
        return Err(ApiError::invalid("metadata must be a JSON object"));
    };
    let wrong = |k: &str, what: &str| ApiError::invalid(format!("metadata.{k} must be {what}"));
    if o.get("src").is_some_and(|v| !v.is_string()) {
        return Err(wrong("src", "a string"));
    }
    for k in ["width", "height"] {
        if o.get(k).is_some_and(|v| !v.is_number()) {
            return Err(wrong(k, "a number"));
        }
    }
    Ok(())
}

/// The URL an image or video message points at: its content as a string, or the `url`,
/// `src` or `path` of its content object.
pub fn media_url(data: &str) -> Option<String> {
    let data: Value = serde_json::from_str(data).ok()?;
    let data = match data {
        Value::String(s) => serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s)),
        other => other,
    };
    match &data {
        Value::String(s) => Some(s.clone()),
        other => ["url", "src", "path"]
            .iter()
            .find_map(|k| other.get(*k).and_then(Value::as_str).map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn folders_are_plain_names() {
        for ok in ["chatImgs", "a", "x-1_y", &"a".repeat(64)] {
            assert!(check_folder(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".",
            "a/b",
            "a\\b",
            "%2e%2e",
            "a b",
            &"a".repeat(65),
            "é",
        ] {
            assert!(check_folder(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stored_paths_come_only_from_this_servers_urls() {
        let host = "127.0.0.1:7001";
        assert_eq!(
            stored_path("/public/uploads/Diy/a/1/x.png", host).as_deref(),
            Some("Diy/a/1/x.png")
        );
        assert_eq!(
            stored_path("http://127.0.0.1:7001/public/uploads/a.png?x=1", host).as_deref(),
            Some("a.png")
        );
        assert_eq!(
            stored_path("http://evil.example/public/uploads/a.png", host),
            None
        );
        assert_eq!(stored_path("file:///public/uploads/a.png", host), None);
        assert_eq!(stored_path("/etc/passwd", host), None);
        assert_eq!(stored_path("/public/uploads/", host), None);
    }

    #[test]
    fn metadata_goes_into_the_options() {
        let o = with_metadata(
            "{}".into(),
            Some(&json!({"src": "/a.png", "width": 2, "height": 3})),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&o).unwrap();
        assert_eq!(v["metadata"]["width"], 2);
        let o = with_metadata("{}".into(), Some(&json!(r#"{"src":"/a.png"}"#))).unwrap();
        assert!(o.contains("/a.png"));
        assert!(with_metadata("{}".into(), Some(&json!({"width": "wide"}))).is_err());
        assert!(with_metadata("{}".into(), Some(&json!([1]))).is_err());
        assert_eq!(with_metadata("{\"a\":1}".into(), None).unwrap(), "{\"a\":1}");
    }

    #[test]
    fn media_urls_are_read_from_strings_and_objects() {
        assert_eq!(
            media_url("\"/public/uploads/a.png\"").as_deref(),
            Some("/public/uploads/a.png")
        );
        assert_eq!(media_url(r#"{"url":"/u.png"}"#).as_deref(), Some("/u.png"));
        assert_eq!(media_url("12"), None);
    }
}
