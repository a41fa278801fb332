//! What every handler shares: the configuration, the store, the Router, the auth
//! services and the files. Built once in [`crate::run`], outside the HTTP workers.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use actix::Addr;
use parlor_actors::router::RouterStats;
use parlor_actors::Router;
use parlor_storage::{Snapshot, Store};

use crate::auth::{Auth, DeviceLimiter};
use crate::config::Config;
use crate::error::ApiError;
use crate::files::Files;
use crate::guard::Guard;

/// Shared state of the HTTP and WebSocket handlers.
pub struct AppState {
    pub config: Arc<Config>,
    /// The reverse proxies whose forwarded client addresses are believed.
    pub proxies: crate::peer::Proxies,
    pub store: Store,
    pub router: Addr<Router>,
    pub router_stats: Arc<RouterStats>,
    pub auth: Arc<Auth>,
    /// Uploaded files and their object store.
    pub files: Arc<Files>,
    pub devices: DeviceLimiter,
    /// The bounds of logging in: the hashing pool and the login throttles.
    pub guard: Guard,
    /// Source of WebSocket session ids.
    pub next_session: AtomicU64,
    /// Counters of the webhook deliveries.
    pub webhooks: Arc<crate::core::webhooks::delivery::WebhookStats>,
}

impl AppState {
    /// Runs `f` on a read snapshot on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Snapshot) -> Result<T, ApiError> + Send + 'static,
    {
        let store = self.store.clone();
        actix_web::web::block(move || {
            let snap = store.snapshot()?;
            f(&snap)
        })
        .await?
    }
}
