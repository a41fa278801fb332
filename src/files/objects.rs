//! The object store: where the bytes of uploaded files live, keyed by their sha256. One
//! interface, [`Objects`], with two backends: [`LocalObjects`], a directory next to the
//! database (the embedded default), and [`BucketObjects`], an S3-compatible bucket for
//! deployments that outgrow one disk. File metadata is never here: it is in redb.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::{Attribute, Attributes, GetOptions, GetRange, ObjectStore};
use tempfile::TempPath;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::config::FilesConfig;

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// The key of the object holding content with this sha256 (lowercase hex).
pub fn object_key(sha256: &str) -> String {
    format!("objects/{}/{sha256}", &sha256[..2])
}

/// Where uploaded bytes are kept. Keys come from [`object_key`], never from a client.
#[async_trait]
pub trait Objects: Send + Sync {
    /// Whether the object exists.
    async fn exists(&self, key: &str) -> io::Result<bool>;

    /// Stores the finished temporary file as `key` (moved when the store is a directory).
    async fn put_file(&self, key: &str, file: TempPath, content_type: &str) -> io::Result<()>;

    /// Streams `len` bytes of the object from `start`.
    async fn read(&self, key: &str, start: u64, len: u64) -> io::Result<ByteStream>;

    /// A path on this machine holding the object, when the store is a directory.
    fn local_path(&self, key: &str) -> Option<PathBuf>;

    /// The public URL of the object, when the store has one of its own.
    fn public_url(&self, key: &str) -> Option<String>;

    /// Where partial uploads are written before they are stored.
    fn temp_dir(&self) -> &Path;
}

/// The store for `config`: a directory (`dir`) or the configured bucket.
pub fn open(config: &FilesConfig, dir: &Path) -> Result<Arc<dyn Objects>, String> {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)
        .map_err(|e| format!("storage.files_dir: cannot create {}: {e}", tmp.display()))?;
    // Uploads cut short by a stop leave their partial files behind: none is in use now.
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(match config.backend {
        crate::config::FilesBackend::Local => Arc::new(LocalObjects {
            dir: dir.to_owned(),
            tmp: dir.join("tmp"),
        }),
        crate::config::FilesBackend::S3 => Arc::new(BucketObjects::new(config, dir)?),
    })
}

/// A directory: objects at `<dir>/objects/<2 hex>/<sha256>`, partial uploads in
/// `<dir>/tmp` (the same file system, so storing one is a rename).
pub struct LocalObjects {
    dir: PathBuf,
    tmp: PathBuf,
}

#[async_trait]
impl Objects for LocalObjects {
    async fn exists(&self, key: &str) -> io::Result<bool> {
        tokio::fs::try_exists(self.dir.join(key)).await
    }

    async fn put_file(&self, key: &str, file: TempPath, _content_type: &str) -> io::Result<()> {
        let dest = self.dir.join(key);
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Identical content under the same name: a concurrent store of it is harmless.
            file.persist(&dest).map_err(|e| e.error)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn read(&self, key: &str, start: u64, len: u64) -> io::Result<ByteStream> {
        let mut file = tokio::fs::File::open(self.dir.join(key)).await?;
        file.seek(io::SeekFrom::Start(start)).await?;
        let stream = futures_util::stream::try_unfold(
            (file.take(len), vec![0u8; 64 * 1024]),
            |(mut file, mut buf)| async move {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Ok(None);
                }
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                Ok(Some((chunk, (file, buf))))
            },
        );
        Ok(Box::pin(stream))
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.dir.join(key))
    }

    fn public_url(&self, _key: &str) -> Option<String> {
        None
    }

    fn temp_dir(&self) -> &Path {
        &self.tmp
    }
}

/// An S3-compatible bucket through `object_store`; partial uploads wait in a local
/// temporary directory and are sent once complete (multipart for large ones).
pub struct BucketObjects {
    store: Arc<dyn ObjectStore>,
    public_url: String,
    temp: PathBuf,
}

impl BucketObjects {
    /// The bucket of `config` (`files.s3_*`; unset credentials come from `AWS_*`).
    pub fn new(config: &FilesConfig, dir: &Path) -> Result<Self, String> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.s3_bucket)
            .with_region(&config.s3_region)
            .with_allow_http(config.s3_allow_http);
        if !config.s3_endpoint.is_empty() {
            builder = builder.with_endpoint(&config.s3_endpoint);
        }
        if !config.s3_access_key_id.is_empty() {
            builder = builder
                .with_access_key_id(&config.s3_access_key_id)
                .with_secret_access_key(&config.s3_secret_access_key);
        }
        let store = builder.build().map_err(|e| format!("files.s3_bucket: {e}"))?;
        Ok(BucketObjects {
            store: Arc::new(store),
            public_url: config.s3_public_url.trim_end_matches('/').to_owned(),
            temp: dir.join("tmp"),
        })
    }
}

#[async_trait]
impl Objects for BucketObjects {
    async fn exists(&self, key: &str) -> io::Result<bool> {
        match self.store.head(&key.into()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io::Error::other(e)),
        }
    }

    async fn put_file(&self, key: &str, file: TempPath, content_type: &str) -> io::Result<()> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.to_owned().into());
        let mut writer = BufWriter::new(self.store.clone(), key.into()).with_attributes(attributes);
        let mut source = tokio::fs::File::open(&file).await?;
        tokio::io::copy(&mut source, &mut writer).await?;
        writer.shutdown().await?;
        drop(file);
        Ok(())
    }

    async fn read(&self, key: &str, start: u64, len: u64) -> io::Result<ByteStream> {
        let options = GetOptions {
            range: (len > 0).then(|| GetRange::Bounded(start..start + len)),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&key.into(), options)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
                e => io::Error::other(e),
            })?;
        Ok(Box::pin(got.into_stream().map_err(io::Error::other)))
    }

    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }

    fn public_url(&self, key: &str) -> Option<String> {
        (!self.public_url.is_empty()).then(|| format!("{}/{key}", self.public_url))
    }

    fn temp_dir(&self) -> &Path {
        &self.temp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_stores_reads_ranges_and_knows_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let objects = open(&FilesConfig::default(), dir.path()).unwrap();
        let key = object_key("ab12cd");
        assert!(!objects.exists(&key).await.unwrap());
        let temp = tempfile::NamedTempFile::new_in(dir.path().join("tmp")).unwrap();
        std::fs::write(temp.path(), b"hello world").unwrap();
        objects
            .put_file(&key, temp.into_temp_path(), "text/plain")
            .await
            .unwrap();
        assert!(objects.exists(&key).await.unwrap());
        let chunks: Vec<Bytes> = objects
            .read(&key, 6, 5)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(chunks.concat(), b"world");
        assert!(objects.public_url(&key).is_none());
    }

    #[test]
    fn a_bucket_is_built_from_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let config = FilesConfig {
            backend: crate::config::FilesBackend::S3,
            s3_bucket: "parlor".into(),
            s3_endpoint: "http://127.0.0.1:9000".into(),
            s3_access_key_id: "key".into(),
            s3_secret_access_key: "secret".into(),
            s3_allow_http: true,
            s3_public_url: "https://cdn.example.com/".into(),
            ..FilesConfig::default()
        };
        let objects = open(&config, dir.path()).unwrap();
        assert_eq!(
            objects.public_url("objects/ab/abc").as_deref(),
            Some("https://cdn.example.com/objects/ab/abc")
        );
        assert!(objects.local_path("objects/ab/abc").is_none());
    }
}
