//! Video screenshots: one frame of a video, taken by `ffmpeg` run as a subprocess with a
//! timeout. The video is a file stored here, or one fetched from a host of
//! `files.fetch_allowed_hosts` (http or https only, redirects only to allowed hosts, size
//! bounded): no other URL is ever fetched, and no client-named path is ever opened.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::TryStreamExt;
use reqwest::Url;
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use super::{object_key, Accept, Files, Upload};
use crate::config::FilesConfig;
use crate::error::ApiError;
use parlor_storage::FileRecord;

/// The image format of a screenshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpg,
}

impl Format {
    /// Parses the document's `format` (`png`, `jpg`; `jpeg` too).
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Some(Format::Png),
            "jpg" | "jpeg" => Some(Format::Jpg),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpg => "jpg",
        }
    }

    fn codec(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpg => "mjpeg",
        }
    }
}

/// A video on this machine, ready for ffmpeg: a stored object's own file, or a temporary
/// copy (removed when dropped).
pub enum Video {
    Stored(PathBuf),
    Temporary(TempPath),
}

impl Video {
    pub fn path(&self) -> &Path {
        match self {
            Video::Stored(p) => p,
            Video::Temporary(t) => t,
        }
    }
}

fn not_a_video(content_type: &str) -> ApiError {
    ApiError::invalid(format!("videoUrl is not a video (it is {content_type})"))
}

/// The video of a stored file, as a file ffmpeg can read.
pub async fn stored_video(files: &Files, file: &FileRecord) -> Result<Video, ApiError> {
    if !file.content_type.starts_with("video/") {
        return Err(not_a_video(&file.content_type));
    }
    let key = object_key(&file.sha256);
    if let Some(path) = files.objects().local_path(&key) {
        return Ok(Video::Stored(path));
    }
    let failed = |e: std::io::Error| {
        tracing::error!(error = %e, "files: reading a video from the object store");
        ApiError::Internal("cannot read the video from the object store".into())
    };
    let temp = tempfile::NamedTempFile::new_in(files.objects().temp_dir()).map_err(failed)?;
    let (file_handle, temp) = temp.into_parts();
    let mut out = tokio::fs::File::from_std(file_handle);
    let mut stream = files.objects().read(&key, 0, file.size).await.map_err(failed)?;
    while let Some(chunk) = stream.try_next().await.map_err(failed)? {
        out.write_all(&chunk).await.map_err(failed)?;
    }
    out.flush().await.map_err(failed)?;
    Ok(Video::Temporary(temp))
}

/// Whether `url`'s host (with its port when it has one) is one of `allowed`: an entry
/// `name` allows the host on any port, `name:port` that port only.
pub(crate) fn host_allowed(url: &Url, allowed: &[String]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let with_port = url.port().map(|p| format!("{host}:{p}"));
    allowed.iter().any(|a| {
        a.eq_ignore_ascii_case(host) || with_port.as_deref().is_some_and(|hp| a.eq_ignore_ascii_case(hp))
    })
}

fn fetchable(url: &Url, config: &FilesConfig) -> bool {
    matches!(url.scheme(), "http" | "https") && host_allowed(url, &config.fetch_allowed_hosts)
}

/// Fetches a video from an allowed host into a temporary file, bounded by
/// `files.fetch_max_bytes` and `files.fetch_timeout_secs`.
pub async fn fetch_video(files: &Files, url: &str) -> Result<Video, ApiError> {
    let config = files.config();
    let refused = || {
        ApiError::Forbidden(
            "videoUrl must be a file of this server or an http(s) URL on a host of files.fetch_allowed_hosts"
                .into(),
        )
    };
    let parsed = Url::parse(url).map_err(|_| refused())?;
    if !fetchable(&parsed, config) {
        return Err(refused());
    }
    let allowed = config.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.fetch_timeout_secs))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 || !fetchable(attempt.url(), &allowed) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| ApiError::Internal(format!("cannot build the HTTP client: {e}")))?;
    let unreachable = |e: reqwest::Error| ApiError::invalid(format!("cannot fetch videoUrl: {e}"));
    let resp = client.get(parsed).send().await.map_err(unreachable)?;
    if resp.status().is_redirection() {
        return Err(refused());
    }
    if !resp.status().is_success() {
        return Err(ApiError::invalid(format!(
            "cannot fetch videoUrl: the host answered {}",
            resp.status()
        )));
    }
    let limit = config.fetch_max_bytes;
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(format!("the video is over {limit} bytes")));
    }
    let body = futures_util::stream::try_unfold(resp, |mut r| async move {
        Ok::<_, reqwest::Error>(r.chunk().await?.map(|c| (c, r)))
    });
    let upload: Upload = files
        .receive_limited(Box::pin(body), "", Accept::Allowed, limit)
        .await?;
    if !upload.content_type.starts_with("video/") {
        return Err(not_a_video(&upload.content_type));
    }
    Ok(Video::Temporary(upload.temp))
}

/// One frame of `video` at `time_ms`, `width` pixels wide, in `format`: the image's bytes.
pub async fn frame(
    files: &Files,
    video: &Video,
    time_ms: u64,
    width: u32,
    format: Format,
) -> Result<Vec<u8>, ApiError> {
    let config = files.config();
    let failed = |e: std::io::Error| {
        tracing::error!(error = %e, "files: screenshot output");
        ApiError::Internal("cannot write the screenshot".into())
    };
    let out = tempfile::Builder::new()
        .suffix(&format!(".{}", format.as_str()))
        .tempfile_in(files.objects().temp_dir())
        .map_err(failed)?
        .into_temp_path();
    let seek = format!("{}.{:03}", time_ms / 1000, time_ms % 1000);
    let mut command = tokio::process::Command::new(&config.ffmpeg);
    command
        .args(["-nostdin", "-v", "error", "-y", "-ss", &seek, "-i"])
        .arg(video.path())
        .args([
            "-frames:v",
            "1",
            "-vf",
            &format!("scale={width}:-2"),
            "-f",
            "image2",
            "-c:v",
        ])
        .arg(format.codec())
        .arg(&*out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiError::Internal(format!(
                "ffmpeg is not installed on the server (files.ffmpeg = \"{}\"): video screenshots need it",
                config.ffmpeg
            ))
        } else {
            ApiError::Internal(format!("cannot run ffmpeg: {e}"))
        }
    })?;
    let limit = Duration::from_secs(config.ffmpeg_timeout_secs);
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| {
            ApiError::Unavailable(format!(
                "ffmpeg took longer than {} s on this video",
                config.ffmpeg_timeout_secs
            ))
        })?
        .map_err(|e| ApiError::Internal(format!("ffmpeg failed: {e}")))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Err(ApiError::invalid(format!(
            "cannot take a frame of this video: {last}"
        )));
    }
    let bytes = tokio::fs::read(&*out).await.map_err(failed)?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(format!(
            "the video has no frame at {time_ms} ms"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_hosts_and_http_schemes_are_fetched() {
        let config = FilesConfig {
            fetch_allowed_hosts: vec!["media.example.com".into(), "127.0.0.1:9000".into()],
            ..FilesConfig::default()
        };
        let ok = |u: &str| fetchable(&Url::parse(u).unwrap(), &config);
        assert!(ok("https://media.example.com/v.mp4"));
        assert!(ok("http://MEDIA.example.com:8080/v.mp4"));
        assert!(ok("http://127.0.0.1:9000/v.mp4"));
        assert!(!ok("http://127.0.0.1:9001/v.mp4"));
        assert!(!ok("http://127.0.0.1/v.mp4"));
        assert!(!ok("ftp://media.example.com/v.mp4"));
        assert!(!ok("file:///etc/passwd"));
        assert!(!ok("https://media.example.com.evil.net/v.mp4"));
        assert!(!fetchable(
            &Url::parse("https://media.example.com/").unwrap(),
            &FilesConfig::default()
        ));
    }

    #[test]
    fn formats() {
        assert_eq!(Format::parse("PNG"), Some(Format::Png));
        assert_eq!(Format::parse("jpeg"), Some(Format::Jpg));
        assert_eq!(Format::parse("gif"), None);
    }
}
