//! Uploaded files in the store: saving an upload's metadata record, finding the stored
//! file a URL of this server names, and completing an image or video message's metadata
//! from it. The bytes themselves are [`crate::files`]'s.

use parlor_storage::FileRecord;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::files::{is_media, media_url, stored_path, Upload};
use crate::state::AppState;

/// Stores an upload at the served `path` for `owner`: the bytes once per content, the
/// metadata once per upload.
pub async fn keep(
    state: &AppState,
    upload: Upload,
    tenant: &str,
    owner: u64,
    path: String,
) -> Result<FileRecord, ApiError> {
    let record = state.files.put_object(upload, tenant, owner, path).await?;
    Ok(state
        .store
        .writer()
        .write(move |tx| {
            let mut record = record;
            tx.insert_file(&mut record)?;
            Ok(record)
        })
        .await?)
}

/// Stores an upload under `folder/<new name>` for `owner` (see [`keep`]).
pub async fn keep_in(
    state: &AppState,
    upload: Upload,
    tenant: &str,
    owner: u64,
    folder: &str,
) -> Result<FileRecord, ApiError> {
    let path = format!("{folder}/{}", crate::files::new_name("", &upload.ext));
    keep(state, upload, tenant, owner, path).await
}

/// The stored file named by a URL of this server (see [`stored_path`]), in `tenant`.
pub async fn stored_file(
    state: &AppState,
    tenant: &str,
    url: &str,
    own_host: &str,
) -> Result<Option<FileRecord>, ApiError> {
    let Some(path) = stored_path(url, own_host) else {
        return Ok(None);
    };
    let tenant = tenant.to_owned();
    state
        .read(move |s| Ok(s.file_by_path(&path)?.filter(|f| f.tenant == tenant)))
        .await
}

/// For an image or video message without `metadata` whose content is a file stored here,
/// the metadata of that file (`src`, `width`, `height`) in its options.
pub async fn fill_metadata(
    state: &AppState,
    tenant: &str,
    kind: &str,
    data: &str,
    options: String,
    own_host: &str,
) -> Result<String, ApiError> {
    if !is_media(kind) {
        return Ok(options);
    }
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&options) else {
        return Ok(options);
    };
    if map.get("metadata").is_some_and(|m| !m.is_null()) {
        return Ok(options);
    }
    let Some(url) = media_url(data) else {
        return Ok(options);
    };
    let Some(file) = stored_file(state, tenant, &url, own_host).await? else {
        return Ok(options);
    };
    let mut metadata = json!({"src": url});
    if let (Some(w), Some(h)) = (file.width, file.height) {
        metadata["width"] = json!(w);
        metadata["height"] = json!(h);
    }
    map.insert("metadata".into(), metadata);
    Ok(Value::Object(map).to_string())
}
