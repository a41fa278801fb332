//! Uploads shared by the faces: a `multipart/form-data` body's file, received and checked
//! by [`crate::files`], and the small text fields beside it.

use std::collections::HashMap;

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest};
use futures_util::{StreamExt, TryStreamExt};
use parlor_storage::FileRecord;

use crate::core::files as core_files;
use crate::error::ApiError;
use crate::files::{self as store, Accept, Upload};
use crate::state::AppState;

/// Most bytes of a text field beside the file.
const TEXT_FIELD_MAX: usize = 4096;
/// Most text fields beside the file.
const TEXT_FIELDS_MAX: usize = 32;

/// Reads a `multipart/form-data` body: the file in one of `names` (received and checked,
/// see [`crate::files::Files::receive`]) and the small text fields beside it.
pub async fn receive_multipart(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    names: &[&str],
    accept: Accept,
) -> std::result::Result<(Upload, HashMap<String, String>), ApiError> {
    let mut form = Multipart::new(req.headers(), payload);
    let mut upload = None;
    let mut texts = HashMap::new();
    let mut fields = 0;
    while let Some(field) = form.next().await {
        let mut field =
            field.map_err(|e| ApiError::invalid(format!("the body must be multipart/form-data: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        if upload.is_none() && names.contains(&name.as_str()) {
            let original = field
                .content_disposition()
                .and_then(|d| d.get_filename())
                .unwrap_or_default()
                .to_owned();
            upload = Some(state.files.receive(&mut field, &original, accept).await?);
            continue;
        }
        fields += 1;
        if fields > TEXT_FIELDS_MAX {
            return Err(ApiError::invalid(format!(
                "more than {TEXT_FIELDS_MAX} fields beside the file"
            )));
        }
        let mut text = Vec::new();
        while let Some(chunk) = field
            .try_next()
            .await
            .map_err(|e| ApiError::invalid(format!("cannot read {name}: {e}")))?
        {
            if text.len() + chunk.len() > TEXT_FIELD_MAX {
                return Err(ApiError::invalid(format!(
                    "{name} is over {TEXT_FIELD_MAX} bytes (the file goes in {})",
                    names[0]
                )));
            }
            text.extend_from_slice(&chunk);
        }
        texts.insert(name, String::from_utf8_lossy(&text).into_owned());
    }
    let upload = upload.ok_or_else(|| {
        ApiError::invalid(format!(
            "{} is required: send the file as the multipart field {}",
            names[0], names[0]
        ))
    })?;
    Ok((upload, texts))
}

/// Receives the file of a multipart request and stores it under `folder/<new name>`.
pub async fn upload_to(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    who: (&str, u64),
    names: &[&str],
    accept: Accept,
    folder: &str,
) -> std::result::Result<(FileRecord, HashMap<String, String>), ApiError> {
    let (upload, texts) = receive_multipart(state, req, payload, names, accept).await?;
    let path = format!("{folder}/{}", store::new_name("", &upload.ext));
    let file = core_files::keep(state, upload, who.0, who.1, path).await?;
    Ok((file, texts))
}
