//! Export: `POST /admin/export` streams the export file of [`crate::dump`] while the server
//! has the database open.

use actix_web::{web, HttpResponse};

use super::{Result, Signed, State};
use crate::error::ApiError;

/// `POST /admin/export` `{"tenant": "..."}` (optional: every tenant when absent): the
/// export file of [`crate::dump`], streamed as `application/x-ndjson` from one read
/// transaction. What `parlor export` uses while the server has the database open.
pub(super) async fn export(state: State, signed: Signed) -> Result {
    let tenant = signed.opt_str("tenant")?;
    let store = state.store.clone();
    let prepared = web::block(move || crate::dump::Export::new(store.snapshot()?, tenant)).await?;
    let export = match prepared {
        Ok(export) => export,
        Err(crate::dump::DumpError::NoTenant(t)) => {
            return Err(ApiError::not_found(format!("not exist: no tenant named {t}")).into())
        }
        Err(e) => {
            tracing::error!(error = %e, "export failed");
            return Err(ApiError::Storage("storage failure: the export could not be read".into()).into());
        }
    };
    let (lines, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, ChunkSink(lines.clone()));
        if let Err(e) = export.write_to(&mut out) {
            tracing::warn!(error = %e, "export stopped");
            // The stream ends in an error: the client sees a cut answer without an end line.
            let _ = lines.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body))
}

/// Hands written chunks to a response stream; fails once the client is gone.
struct ChunkSink(tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>);

impl std::io::Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
