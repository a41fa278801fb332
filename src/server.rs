//! Starting and stopping the server: [`run`] opens the store, starts the shared actors once
//! (the Writer, the Router, its Tenants), binds the client listener and the admin listener
//! (when `admin.secret` is set) and returns a [`Running`] server; [`Running::wait`] serves
//! until a signal or [`Running::handle`] stops it, then lets the Router commit its cursors
//! and the Writer commit what it holds. Also the route tables of both listeners.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::dev::{Server, ServerHandle};
use actix_web::web::Data;
use actix_web::{middleware, App, HttpRequest, HttpResponse, HttpServer};
use parlor_actors::router::{FlushCursors, RouterConfig};
use parlor_actors::{CloseAll, Router, SetPolicy, TenantOf};
use parlor_storage::{Store, WriterConfig};

use crate::auth::{self, load_or_create_secret, Auth, DeviceLimiter};
use crate::config::{Config, VerifyOnStart};
use crate::error::ApiError;
use crate::guard::Guard;
use crate::intake::{self, Connections};
use crate::routes::Routes;
use crate::state::AppState;
use crate::{faces, files, metrics, openapi, web, ws};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] parlor_storage::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
    /// The database fails its integrity check at start.
    #[error("storage: {0}")]
    Damaged(String),
}

/// A started server.
pub struct Running {
    addr: SocketAddr,
    server: Server,
    admin: Option<(
        SocketAddr,
        ServerHandle,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    router: Addr<Router>,
    store: Store,
    arbiter: Arbiter,
    state: Data<AppState>,
    /// The webhook delivery task.
    webhooks: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The address the client listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the admin listener, when it is served (`admin.secret` set).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(a, _, _)| *a)
    }

    /// A handle to stop the server (`handle.stop(true)` lets connections finish).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The shared state (for tests and tools that need the store or the Router).
    pub fn state(&self) -> Data<AppState> {
        self.state.clone()
    }

    /// Serves until stopped, then stops the admin listener, commits the Router's cursors and
    /// everything the Writer holds, and stops the Router's thread.
    pub async fn wait(self) -> std::io::Result<()> {
        let Running {
            server,
            admin,
            router,
            store,
            arbiter,
            state,
            webhooks,
            ..
        } = self;
        // On SIGTERM or SIGINT every session is closed with 1001 (its client reconnects
        // elsewhere at once, and its last report reaches the Router), then the listener
        // stops and lets requests in flight finish.
        let stopper = {
            let (handle, router) = (server.handle(), router.clone());
            actix_web::rt::spawn(async move {
                stop_signal().await;
                tracing::info!("stopping: closing the sessions");
                let _ = router.send(CloseAll).await;
                handle.stop(true).await;
            })
        };
        let served = server.await;
        stopper.abort();
        // The admin listener stops with the client one: it holds the state, and so the store.
        if let Some((_, handle, task)) = admin {
            handle.stop(true).await;
            let _ = task.await;
        }
        let _ = router.send(FlushCursors).await;
        // Deliveries in flight are dropped: their events stay in the outbox for next time.
        webhooks.abort();
        let _ = webhooks.await;
        drop((router, state));
        // The core's actors hold the store: wait until their thread has ended, so that the
        // database is closed when this returns and can be opened again.
        arbiter.stop();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = arbiter.join();
            store.shutdown();
            // HTTP worker threads drop their copies of the state (and so of the store) a
            // moment after the server stopped; the file is closed with the last copy, so
            // wait for them (bounded) before saying the server stopped.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while store.handles() > 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
        .await;
        tracing::info!("stopped");
        served
    }
}

/// Waits for SIGTERM or SIGINT.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts Parlor on `listener` with `config`: one process over one database.
pub async fn run(listener: TcpListener, config: Config) -> Result<Running, StartError> {
    if config.cluster.enabled {
        return Err(StartError::Config(
            "cluster.enabled: a node of a cluster is started by parlor::cluster::node::start".into(),
        ));
    }
    let config = Arc::new(config);
    // A single node keeps no log of its writes.
    let store = open_store(&config, None)?;
    let secret = load_or_create_secret(&config.auth.jwt_secret, &config.storage.data_dir())?;
    let database = store.database_id()?;
    serve(listener, config, store, &secret, database).await
}

/// Opens the database at `storage.path` as `config` says (its start-up checks, its Writer),
/// with `effect_log` as the Writer's log of effects (cluster mode; `None` on a single node).
pub fn open_store(
    config: &Config,
    effect_log: Option<parlor_storage::effects::EffectLog>,
) -> Result<Store, StartError> {
    let storage = &config.storage;
    let empty = std::fs::metadata(&storage.path).is_ok_and(|m| m.is_file() && m.len() == 0);
    if empty && !storage.init_empty {
        return Err(StartError::Config(format!(
            "storage.path: {} is an empty file, not a database (was it truncated or replaced?); \
             set storage.init_empty = true to start a new database in it",
            storage.path.display()
        )));
    }
    let check = parlor_storage::StartCheck {
        verify: match storage.verify_on_start {
            VerifyOnStart::Always => parlor_storage::Verify::Always,
            VerifyOnStart::Unclean => parlor_storage::Verify::Unclean,
            VerifyOnStart::Never => parlor_storage::Verify::Never,
        },
        serve_damaged: storage.serve_damaged,
    };
    let writer = WriterConfig {
        max_batch: storage.max_batch,
        linger: std::time::Duration::from_micros(storage.commit_linger_us),
        queue: storage.write_queue,
        reopen_after: Config::ms(storage.reopen_after_ms),
        effect_log,
        dedup_window: std::time::Duration::from_secs(storage.dedup_window_secs),
    };
    let (store, opened) = match Store::open_checked(&storage.path, writer, check) {
        Ok(opened) => opened,
        Err(parlor_storage::Error::Damaged(what)) => {
            return Err(StartError::Damaged(format!(
                "{} fails its integrity check ({what}). `parlor check` reports what is damaged; \
                 restore it from an export, or set storage.serve_damaged = true to serve what \
                 redb can repair (it goes back to the newest commit that verifies)",
                storage.path.display()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    if !opened.clean {
        tracing::warn!(
            verified = opened.verified,
            "the database was not closed cleanly (a crash or kill -9); redb verified its newest commit"
        );
    }
    if opened.rolled_back {
        tracing::warn!(
            "the newest commit failed its checksums; the database went back to the commit before it{}",
            if opened.clean {
                " (storage.serve_damaged)"
            } else {
                " (a commit the crash cut short)"
            }
        );
    }
    Ok(store)
}

/// Serves `store` on `listener` with `config`: starts the core's actors over it (the
/// Router, its Tenants), the client listener, the admin listener (when `admin.secret` is
/// set) and the webhook deliveries. Tokens are signed with `secret` and name `database`.
pub async fn serve(
    listener: TcpListener,
    config: Arc<Config>,
    store: Store,
    secret: &[u8],
    database: u64,
) -> Result<Running, StartError> {
    let addr = listener.local_addr()?;
    let storage = &config.storage;
    let auth = Auth::new(secret, &config.auth).map_err(StartError::Config)?;
    let auth = Arc::new(auth.for_database(database));

    // What the core keeps in memory: offline queues, revoked tokens and the users' gates.
    let (startup, tenant_settings) = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let snapshot = store.snapshot()?;
            Ok::<_, parlor_storage::Error>((snapshot.startup_state()?, snapshot.all_tenant_settings()?))
        })
        .await
        .map_err(|e| StartError::Config(e.to_string()))??
    };
    let now = auth::now_secs();
    for (jti, exp) in &startup.revoked_tokens {
        if *exp >= now {
            auth.revoke(jti, *exp);
        }
    }
    for (tenant, id, gate) in &startup.gates {
        auth.set_gate(tenant, *id, gate.clone());
    }
    let pruned = store
        .writer()
        .write(move |tx| tx.prune_revoked_tokens(now))
        .await?;

    let router_config = RouterConfig {
        cursor_flush: Config::ms(config.router.cursor_flush_ms),
        mailbox: config.router.mailbox,
        hold_max: config.ws.mailbox.max(1024),
        default_policy: config.policy(),
        group_idle: std::time::Duration::from_secs(config.router.group_idle_secs),
        locale: config.server.locale,
        presence_grace: config
            .presence
            .enabled
            .then(|| Config::ms(config.presence.offline_grace_ms)),
    };
    let router = Router::new(store.clone(), router_config, &startup);
    let router_stats = router.stats();
    // The Router lives on its own thread, started once, outside the HTTP workers.
    let arbiter = Arbiter::new();
    let router = Router::start_in_arbiter(&arbiter.handle(), move |_| router);
    // Tenants with settings stored through the admin face get them before anything is served:
    // the Router checks even the first message or revoke after a restart against them.
    let mut policies: BTreeMap<String, parlor_actors::Policy> = BTreeMap::new();
    for (tenant, id, value) in tenant_settings {
        let policy = policies.entry(tenant).or_insert_with(|| config.policy());
        if let Err(e) = policy.set(id, &value) {
            tracing::warn!(id, error = %e, "stored setting ignored");
        }
    }
    for (tenant, policy) in policies {
        let started = |e: MailboxError| StartError::Config(format!("tenant {tenant}: {e}"));
        let tenant_addr = router
            .send(TenantOf(tenant.as_str().into()))
            .await
            .map_err(started)?;
        tenant_addr.send(SetPolicy(policy)).await.map_err(started)?;
        // The Tenant told the Router before answering; this round trip sees that through.
        router
            .send(TenantOf(tenant.as_str().into()))
            .await
            .map_err(started)?;
    }

    let files = Arc::new(files::Files::open(&config).map_err(StartError::Config)?);
    let proxies = crate::peer::Proxies::parse(&config.server.trusted_proxies)
        .map_err(|e| StartError::Config(format!("server.trusted_proxies: {e}")))?;
    let state = Data::new(AppState {
        config: config.clone(),
        proxies: proxies.clone(),
        files,
        store: store.clone(),
        router: router.clone(),
        router_stats,
        auth: auth.clone(),
        devices: DeviceLimiter::new(
            config.auth.visitor_requests_per_hour,
            config.auth.visitor_tracked_devices,
        ),
        guard: Guard::new(&config.login, &config.limits, &auth)
            .map_err(|e| StartError::Config(format!("login: {e}")))?,
        next_session: AtomicU64::new(1),
        webhooks: Arc::default(),
    });
    // Tenants with webhook endpoints hand them to their actors before anything is served:
    // the first message after a restart already queues its events.
    let hooked: std::collections::BTreeSet<String> = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.snapshot()?.webhooks(None))
            .await
            .map_err(|e| StartError::Config(e.to_string()))??
            .into_iter()
            .map(|h| h.tenant)
            .collect()
    };
    for tenant in hooked {
        crate::core::webhooks::publish(&state, &tenant)
            .await
            .map_err(|e| StartError::Config(format!("tenant {tenant}: webhooks: {e}")))?;
    }

    let app_state = state.clone();
    let http_metrics = Data::new(metrics::HttpMetrics::default());
    let client_metrics = http_metrics.clone();
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let connections = Connections::new(
        config.server.max_connections,
        config.server.max_connections_per_address,
        proxies.clone(),
    );
    let head_timeout = Config::ms(config.server.head_timeout_ms);
    let cors_origins = config.server.cors_origins.clone();
    let server = HttpServer::new(move || {
        let cors = crate::cors::middleware(&cors_origins);
        App::new()
            .app_data(app_state.clone())
            .app_data(client_metrics.clone())
            .wrap(middleware::from_fn(faces::chatroom::error_shape))
            .wrap(middleware::from_fn(intake::bound))
            .wrap(middleware::from_fn(metrics::track))
            // Outermost: a preflight is answered before any limit, and every answer (errors
            // from the limits included) carries the CORS headers.
            .wrap(middleware::Condition::new(
                cors.is_some(),
                cors.unwrap_or_default(),
            ))
            .configure(|cfg| client_routes(&mut Routes::serving(cfg)))
            .default_service(actix_web::web::to(not_found))
    })
    // Frames are small and latency matters: no Nagle delay on the sockets.
    .tcp_nodelay(true)
    .on_connect(on_connect(config.server.socket_send_buffer, connections))
    .client_request_timeout(head_timeout)
    .max_connections(intake::hard_cap(config.server.max_connections, workers))
    .listen(listener)?
    .workers(workers)
    .shutdown_timeout(config.server.shutdown_timeout_secs)
    // SIGTERM and SIGINT are handled in `Running::wait`: sessions are told first.
    .disable_signals()
    .run();

    let admin_server = if config.admin.secret.is_empty() {
        None
    } else {
        let listener = TcpListener::bind(&config.admin.bind).map_err(|e| {
            StartError::Config(format!("admin.bind: cannot listen on {}: {e}", config.admin.bind))
        })?;
        let admin_addr = listener.local_addr()?;
        let signatures = Data::new(faces::admin::Signatures::new(
            std::time::Duration::from_secs(config.admin.window_secs),
            config.admin.max_refusals,
        ));
        signatures.restore(&startup.admin_nonces);
        let admin_state = state.clone();
        let connections = Connections::new(
            config.admin.max_connections,
            config.admin.max_connections,
            proxies.clone(),
        );
        let server = HttpServer::new(move || {
            App::new()
                .app_data(admin_state.clone())
                .app_data(signatures.clone())
                .app_data(http_metrics.clone())
                .wrap(middleware::from_fn(intake::bound))
                .wrap(middleware::from_fn(metrics::track))
                .configure(|cfg| admin_routes(&mut Routes::serving(cfg)))
                .default_service(actix_web::web::to(faces::admin::not_found))
        })
        .on_connect(move |conn, data| connections.on_connect(conn, data))
        .client_request_timeout(head_timeout)
        .max_connections(intake::hard_cap(config.admin.max_connections, 1))
        .listen(listener)?
        .workers(1)
        .shutdown_timeout(config.server.shutdown_timeout_secs)
        .disable_signals()
        .run();
        // A server runs when polled: the admin one runs beside the client one.
        let handle = server.handle();
        Some((admin_addr, handle, actix_web::rt::spawn(server)))
    };
    let admin = match &admin_server {
        Some((a, _, _)) => a.to_string(),
        None => format!("{} (disabled: admin.secret is empty)", config.admin.bind),
    };
    let webhooks = crate::core::webhooks::delivery::spawn(
        store.clone(),
        config.webhooks.clone(),
        state.webhooks.clone(),
    );
    tracing::info!(
        listen = %addr,
        admin = %admin,
        data = %storage.path.display(),
        pending_users = startup.pending.len(),
        pruned_tokens = pruned,
        "parlor started"
    );
    Ok(Running {
        addr,
        server,
        admin: admin_server,
        router,
        store,
        arbiter,
        state,
        webhooks,
    })
}

/// Every route of the client listener: health, the WebSocket, the OpenAPI document, the
/// metrics, the web client and the client faces. [`RouteTable::client`](crate::routes::RouteTable::client)
/// lists them.
pub fn client_routes(r: &mut Routes) {
    r.get("/healthz", healthz)
        .get("/ws", ws::connect)
        .get("/openapi.json", openapi::client_document)
        .get("/metrics", metrics::serve);
    web::routes(r);
    faces::uniapp::routes(r);
    faces::chatroom::routes(r);
    faces::chatroom::conversation_routes(r);
    faces::chat21::routes(r);
    faces::chat21::conversation_routes(r);
}

/// Every route of the admin listener.
pub fn admin_routes(r: &mut Routes) {
    faces::admin::routes(r);
    r.get("/openapi.json", openapi::admin_document)
        .get("/metrics", metrics::serve_admin);
}

/// `GET /healthz`: 200 while the store reads and its last write succeeded; 503 with the
/// reason otherwise (after a failed commit, such as a full disk, redb refuses every write
/// until the database is opened again, which the Writer retries until it succeeds).
async fn healthz(state: Data<AppState>) -> HttpResponse {
    if state
        .store
        .writer()
        .stats()
        .failing
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "status": "unavailable",
            "error": "storage: the last write failed; writes are refused until the database can be opened again (retried)",
        }));
    }
    match state.read(|s| Ok(s.head("", "")?)).await {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "unavailable", "error": e.to_string()})),
    }
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    if faces::chatroom::owns(req.path()) {
        return faces::chatroom::unknown(&req);
    }
    ApiError::NotFound("no such route".into()).to_response()
}

/// The client listener's `on_connect` hook: counts the connection (see [`intake`]) and sets
/// the kernel send buffer of the connection to `bytes` (0: leave it to the kernel). Capped, the buffer makes a client that stops reading visible to its session
/// within a bounded amount of data: actix-http stops polling the session's frames once the
/// socket and its own write buffer are full, the session's mailbox fills, and the Router cuts
/// the session, leaving its messages pending for the next connection.
fn on_connect(
    bytes: usize,
    connections: Arc<Connections>,
) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
    move |conn, data| {
        connections.on_connect(conn, data);
        if bytes == 0 {
            return;
        }
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            if let Err(e) = socket2::SockRef::from(tcp).set_send_buffer_size(bytes) {
                tracing::warn!(error = %e, bytes, "cannot set the send buffer of a connection");
            }
        }
    }
}
