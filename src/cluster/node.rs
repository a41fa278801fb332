//! A node of a cluster (`CLUSTER.md` §4.5): what `parlor` runs when `cluster.enabled`.
//!
//! A node renews its lease in the directory every third of `cluster.lease_ttl_ms` and, on
//! every such tick, reads who is alive and who owns which shard, then acts on each shard:
//!
//! - nobody owns it, or its owner's lease ran out, and this node ranks first for it among
//!   the live nodes (rendezvous ranking): take it over;
//! - the directory names this node but it does not serve the shard (a hand-over to it, or
//!   its own claim from before a restart): take it over;
//! - it serves the shard but was fenced, or the directory names another node: stop serving
//!   (its server drains off the loop, as below);
//! - it serves the shard but another live node ranks first for it (for three ticks in a
//!   row): stop serving it, then hand it over in the directory (that node takes it over).
//!
//! To serve a shard is to run the single node's server over the node's copy of the shard
//! (`shards/<k>.redb` beside `storage.path`), on a port of its own at `cluster.advertise`:
//! the same Router, Tenants, Groups and Writer, with every Writer batch appended to the
//! shard's log before it commits ([`super::shard`]). The client listener is the [`edge`]:
//! it tunnels each request to the server of its tenant's shard, wherever that runs.
//!
//! Each shard another live node owns has a *standby*: the node that ranks first for it after
//! its owner (the one that would take it over). The standby keeps its copy of the shard open
//! and applies the log to it every tick, so that a takeover replays only the last tick's
//! records, not the shard's history; `/healthz` lists the shards a node follows and the
//! position of each copy.
//!
//! The owner of a shard also writes its snapshots every `cluster.snapshot_interval_secs`
//! ([`super::snapshot`]); a copy behind the log's start (truncated while the node neither
//! owned nor followed the shard) is replaced by the newest snapshot before it catches up.
//! The lease is renewed by a task of its own, so that a takeover waiting on NATS does not
//! let it lapse.
//!
//! A node that cannot renew its lease for a whole lease stops serving its shards (another
//! node takes them over; a write it would still try is fenced anyway). Their servers drain
//! off the node's loop: a drain waits for requests whose commits wait for NATS, which can
//! take seconds while NATS elects leaders, and the loop must meanwhile take over the shards
//! of a node whose lease runs out next. A shard is taken over (or followed) again only once
//! its own drain has ended and released its copy; until then the loop passes it by.
//!
//! A node that stops (SIGTERM) closes its sessions, drains its shards and gives its lease
//! up, so the others take its shards over at their next tick.
//!
//! NATS runs on a runtime of the node's own (two threads): the Writers' appends block on it.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::dev::ServerHandle;
use async_nats::jetstream;
use parlor_actors::{CloseAll, Router};
use tokio::sync::watch;

use super::directory::{ClusterMeta, Directory, NodeInfo, Seen};
use super::edge::{self, Edge, Table};
use super::log::{LogSettings, ShardLog};
use super::placement;
use super::shard::{LocalShard, Ownership, TakeoverError};
use super::snapshot::Snapshots;
use super::NodeMetrics;
use crate::config::Config;
use crate::server::{open_store, serve, StartError};

/// How many ticks in a row a better-ranked node must be alive before a shard is handed to it.
const HAND_OVER_AFTER: u32 = 3;

/// How long a starting node waits for JetStream to answer.
const START_WAIT: Duration = Duration::from_secs(60);

/// A started node; [`Node::wait`] runs it until a signal stops it.
pub struct Node {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    manager: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Runtime,
}

/// What the node's tasks share.
struct Shared {
    config: Arc<Config>,
    id: String,
    /// NATS, the directory and the log appends run here.
    runtime: tokio::runtime::Handle,
    js: jetstream::Context,
    directory: Arc<Directory>,
    log: LogSettings,
    meta: ClusterMeta,
    metrics: Arc<NodeMetrics>,
    edge: Arc<Edge>,
    snapshots: Snapshots,
}

/// A copy of a shard another node owns that this node keeps up with the log (a standby):
/// a task on the NATS runtime applies the log to it every tick until it is stopped.
struct Standby {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Option<LocalShard>>,
    /// The log position the copy has reached.
    at: Arc<AtomicU64>,
}

impl Standby {
    /// Starts following `shard` on the node's runtime: opens the node's copy (from the
    /// newest snapshot if the log moved past it), then catches up every `tick`. Every wait
    /// of the task gives way to [`Standby::finish`] at once: the node's loop, which waits
    /// for it at a takeover, must not wait on NATS.
    fn start(shared: &Arc<Shared>, shard: u32, tick: Duration) -> Standby {
        let (stop, mut stopped) = watch::channel(false);
        let at = Arc::new(AtomicU64::new(0));
        let (shared, reached) = (shared.clone(), at.clone());
        let task = shared.runtime.clone().spawn(async move {
            let local = tokio::select! {
                opened = shared.open_copy(shard, None) => match opened {
                    Ok(local) => local,
                    // The copy is still closing after the node served it, or NATS did not
                    // answer: the node's next tick starts another standby.
                    Err(e) => {
                        tracing::debug!(shard, error = %e, "cannot open the shard's copy to follow it");
                        return None;
                    }
                },
                _ = stopped.wait_for(|s| *s) => return None,
            };
            tracing::info!(shard, "following the shard as its standby");
            let mut log = None;
            loop {
                let round = async {
                    if let Some(log) = shared.shard_log(shard, &mut log).await {
                        match local.catch_up(log).await {
                            Ok(position) => reached.store(position, Relaxed),
                            Err(e) => tracing::debug!(shard, error = %e, "the standby could not catch up"),
                        }
                    }
                    tokio::time::sleep(tick).await;
                };
                tokio::select! {
                    _ = round => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
            Some(local)
        });
        Standby { stop, task, at }
    }

    /// Stops following; answers the copy (still open), unless it was never opened.
    async fn finish(self) -> Option<LocalShard> {
        let _ = self.stop.send(true);
        self.task.await.ok().flatten()
    }

    /// Stops following and closes the copy.
    async fn close(self) {
        if let Some(local) = self.finish().await {
            local.store.shutdown();
        }
    }

    /// Whether the task ended by itself (its copy could not be opened).
    fn ended(&self) -> bool {
        self.task.is_finished()
    }
}

/// A shard this node serves.
struct Served {
    ownership: Arc<Ownership>,
    state: Arc<crate::state::AppState>,
    addr: String,
    handle: ServerHandle,
    router: Addr<Router>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Writes the shard's snapshots every `cluster.snapshot_interval_secs` (none at 0).
    snapshotter: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    /// Closes its sessions (their clients reconnect, through any node, to the new owner),
    /// stops its server and waits until its Writer committed what it held.
    async fn stop(self) {
        let Served {
            state,
            router,
            handle,
            done,
            snapshotter,
            ..
        } = self;
        if let Some(task) = snapshotter {
            task.abort();
            let _ = task.await;
        }
        // The server closes the database once every holder of its state let go.
        drop(state);
        let _ = router.send(CloseAll).await;
        handle.stop(true).await;
        let _ = done.await;
    }
}

impl Node {
    /// Starts a node with `config` (`cluster.enabled`), its client listener on `listener`:
    /// connects to NATS, checks the cluster's fixed settings, starts the edge and the task
    /// that renews the lease and serves shards.
    pub async fn start(listener: TcpListener, config: Config) -> Result<Node, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("parlor-node")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        match Self::start_on(handle, listener, config).await {
            Ok((addr, stop, manager)) => Ok(Node {
                addr,
                stop,
                manager,
                runtime,
            }),
            Err(e) => {
                // A runtime may not be dropped (blocking) inside an asynchronous context.
                runtime.shutdown_background();
                Err(e)
            }
        }
    }

    async fn start_on(
        runtime: tokio::runtime::Handle,
        listener: TcpListener,
        config: Config,
    ) -> Result<(SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>), StartError> {
        let config = Arc::new(config);
        let cluster = &config.cluster;
        let addr = listener.local_addr()?;
        let urls = cluster
            .nats_urls
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StartError::Config(format!("cluster.nats_urls: {e}")))?;
        let lease = Config::ms(cluster.lease_ttl_ms);
        let (replicas, shards) = (cluster.replicas, cluster.shards);
        let proposed = ClusterMeta {
            shards,
            id: rand::random::<u64>() >> 1,
        };
        let connected = runtime
            .spawn(async move {
                let client = async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connect(urls)
                    .await
                    .map_err(|e| e.to_string())?;
                let js = jetstream::new(client);
                // NATS servers that start with the nodes elect JetStream's leader first.
                let deadline = Instant::now() + START_WAIT;
                loop {
                    let opened = async {
                        let directory = Directory::open(&js, lease, replicas).await?;
                        let meta = directory.meta(&proposed).await?;
                        let snapshots = Snapshots::open(&js, replicas).await?;
                        Ok::<_, super::Error>((directory, meta, snapshots))
                    };
                    match tokio::time::timeout(Duration::from_secs(5), opened).await {
                        Ok(Ok((directory, meta, snapshots))) => {
                            return Ok::<_, String>((js, directory, meta, snapshots))
                        }
                        Ok(Err(e)) if Instant::now() >= deadline => return Err(e.to_string()),
                        Err(_) if Instant::now() >= deadline => {
                            return Err("JetStream did not answer".to_owned())
                        }
                        Ok(Err(e)) => tracing::info!(error = %e, "waiting for JetStream"),
                        Err(_) => tracing::info!("waiting for JetStream"),
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
            .await
            .map_err(|e| StartError::Config(e.to_string()))?;
        let (js, directory, meta, snapshots) =
            connected.map_err(|e| StartError::Config(format!("cluster: cannot reach NATS: {e}")))?;
        if meta.shards != shards {
            return Err(StartError::Config(format!(
                "cluster.shards: this cluster was created with {} shards, not {shards} (a tenant's shard \
                 would change; moving tenants between shards is an export and import)",
                meta.shards
            )));
        }
        std::fs::create_dir_all(shards_dir(&config))?;
        let log = LogSettings {
            replicas,
            ..LogSettings::default()
        };
        let metrics = Arc::new(NodeMetrics::default());
        let edge = Edge::new(&config, metrics.clone(), log.metrics.clone())
            .map_err(|e| StartError::Config(format!("server.trusted_proxies: {e}")))?;
        let edge = Arc::new(edge);
        let shared = Arc::new(Shared {
            id: cluster.node_id.clone(),
            runtime: runtime.clone(),
            js,
            directory: Arc::new(directory),
            log,
            meta,
            metrics,
            edge: edge.clone(),
            config: config.clone(),
            snapshots,
        });
        let (stop, stopped) = watch::channel(false);
        listener.set_nonblocking(true)?;
        let listening = runtime.spawn({
            let stopped = stopped.clone();
            async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                tokio::spawn(edge::serve(listener, edge, stopped));
                Ok::<_, std::io::Error>(())
            }
        });
        listening.await.map_err(|e| StartError::Config(e.to_string()))??;
        let manager = actix_web::rt::spawn(manage(shared, stopped));
        tracing::info!(listen = %addr, node = %cluster.node_id, shards, "parlor node started");
        Ok((addr, stop, manager))
    }

    /// The address of the client listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs until SIGTERM or SIGINT, then stops serving (sessions closed, shards drained,
    /// lease given up).
    pub async fn wait(self) -> std::io::Result<()> {
        crate::server::stop_signal().await;
        tracing::info!("stopping: handing the shards back");
        let _ = self.stop.send(true);
        let _ = self.manager.await;
        self.runtime.shutdown_background();
        tracing::info!("stopped");
        Ok(())
    }
}

fn shards_dir(config: &Config) -> std::path::PathBuf {
    config.storage.data_dir().join("shards")
}

/// The configuration of the server of shard `shard`: the node's, over the shard's file,
/// with the shard's own thread count; its listener is reached by nodes only, which pass
/// the client's address on.
fn shard_config(config: &Config, shard: u32) -> Config {
    let mut c = config.clone();
    c.storage.path = shards_dir(config).join(format!("{shard}.redb"));
    c.server.workers = config.cluster.shard_workers;
    c.server.trusted_proxies = vec!["0.0.0.0/0".into(), "::/0".into()];
    c
}

impl Shared {
    /// Runs `f` on the node's NATS runtime.
    async fn nats<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.runtime.spawn(f).await.ok()
    }

    /// `shard`'s log held in `cache`, opened first when it is not yet (`None` while NATS
    /// does not answer: the caller's next round tries again).
    async fn shard_log<'a>(&self, shard: u32, cache: &'a mut Option<ShardLog>) -> Option<&'a ShardLog> {
        if cache.is_none() {
            *cache = ShardLog::open(self.js.clone(), shard, &self.log).await.ok();
        }
        cache.as_ref()
    }

    /// Opens the node's copy of `shard` (with the configuration of its server).
    async fn open_local(&self, shard: u32) -> Result<LocalShard, TakeoverError> {
        let config = shard_config(&self.config, shard);
        tokio::task::spawn_blocking(move || {
            LocalShard::open_with(shard, |log| open_store(&config, Some(log)))
        })
        .await
        .map_err(serving)?
        .map_err(serving)
    }

    /// The node's copy of `shard`, `held` if open already (a standby's), ready to catch up
    /// with the log: a copy whose position is before the log's first record (truncated
    /// below a snapshot while the node did not follow the shard) is replaced by the newest
    /// snapshot.
    async fn open_copy(&self, shard: u32, held: Option<LocalShard>) -> Result<LocalShard, TakeoverError> {
        let local = match held {
            Some(local) => local,
            None => self.open_local(shard).await?,
        };
        let applied = local.store.snapshot()?.log_applied()?;
        let (js, settings, snapshots) = (self.js.clone(), self.log.clone(), self.snapshots.clone());
        let snapshot = self
            .nats(async move {
                let first = ShardLog::open(js, shard, &settings).await?.first().await?;
                if applied + 1 >= first {
                    return Ok(None);
                }
                match snapshots.latest(shard).await? {
                    Some(s) if s.position + 1 >= first => Ok(Some(s)),
                    _ => Err(super::Error::Unavailable(format!(
                        "shard {shard}: the log starts at {first}, after this copy's {applied}, and no \
                         snapshot reaches it"
                    ))),
                }
            })
            .await
            .ok_or_else(|| serving("the node's runtime stopped"))??;
        let Some(snapshot) = snapshot else {
            return Ok(local);
        };
        tracing::info!(
            shard,
            applied,
            position = snapshot.position,
            "loading the shard's snapshot"
        );
        local.store.shutdown();
        drop(local);
        let path = shard_config(&self.config, shard).storage.path;
        tokio::task::spawn_blocking(move || snapshot.load_into(&path))
            .await
            .map_err(serving)?
            .map_err(serving)?;
        self.open_local(shard).await
    }

    /// Takes `shard` over from `seen` with the node's copy (`standby`'s when it followed
    /// the shard, else opened now) and serves it.
    async fn take_over(
        self: &Arc<Self>,
        shard: u32,
        seen: Option<Seen>,
        standby: Option<LocalShard>,
    ) -> Result<Served, TakeoverError> {
        let config = Arc::new(shard_config(&self.config, shard));
        let listener = TcpListener::bind((self.config.cluster.advertise.as_str(), 0)).map_err(|e| {
            serving(format!(
                "cluster.advertise: cannot listen on {}: {e}",
                self.config.cluster.advertise
            ))
        })?;
        let addr = listener.local_addr().map_err(serving)?.to_string();
        let local = self.open_copy(shard, standby).await?;
        let (directory, js, settings, node, at) = (
            self.directory.clone(),
            self.js.clone(),
            self.log.clone(),
            self.id.clone(),
            addr.clone(),
        );
        let (local, taken) = self
            .nats(async move {
                let taken = local
                    .take_over(&directory, js, &settings, &node, &at, seen.as_ref())
                    .await;
                (local, taken)
            })
            .await
            .ok_or_else(|| serving("the node's runtime stopped"))?;
        let LocalShard { store, ownership, .. } = local;
        if let Err(e) = taken {
            store.shutdown();
            return Err(e);
        }
        let snapshotter = self.snapshotter(shard, &store);
        let secret = self.config.auth.jwt_secret.as_bytes().to_vec();
        let running = serve(listener, config, store, &secret, self.meta.id)
            .await
            .map_err(serving)?;
        let state = running.state().into_inner();
        let (handle, router) = (running.handle(), state.router.clone());
        let done = actix_web::rt::spawn(running.wait());
        tracing::info!(shard, %addr, "serving the shard");
        Ok(Served {
            ownership,
            state,
            addr,
            handle,
            router,
            done,
            snapshotter,
        })
    }

    /// Starts writing snapshots of `shard`, served here over `store`, every
    /// `cluster.snapshot_interval_secs` (none at 0).
    fn snapshotter(
        self: &Arc<Self>,
        shard: u32,
        store: &parlor_storage::Store,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let every = Duration::from_secs(self.config.cluster.snapshot_interval_secs);
        if every.is_zero() {
            return None;
        }
        let (store, shared) = (store.clone(), self.clone());
        Some(self.runtime.spawn(async move {
            let mut log = None;
            loop {
                tokio::time::sleep(every).await;
                let Some(log) = shared.shard_log(shard, &mut log).await else {
                    continue;
                };
                if let Err(e) = shared.snapshots.take(&store, log).await {
                    tracing::warn!(shard, error = %e, "the snapshot was not written; trying again later");
                }
            }
        }))
    }
}

/// `f`'s answer, or unavailable after `tick`: a directory call can hang while a NATS server
/// is down (a listing of keys, for one), and the lease must be renewed meanwhile.
async fn within<T>(
    tick: Duration,
    f: impl std::future::Future<Output = Result<T, super::Error>>,
) -> Result<T, super::Error> {
    tokio::time::timeout(tick, f).await.unwrap_or_else(|_| {
        Err(super::Error::Unavailable(
            "the directory did not answer within a tick".into(),
        ))
    })
}

fn serving(e: impl std::fmt::Display) -> TakeoverError {
    TakeoverError::Serve(e.to_string())
}

/// The node's loop: see the module doc.
async fn manage(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let cluster = &shared.config.cluster;
    let lease = Config::ms(cluster.lease_ttl_ms);
    let tick = (lease / 3).min(Duration::from_secs(1));
    let info = NodeInfo {
        advertise: cluster.advertise.clone(),
    };
    let mut served: BTreeMap<u32, Served> = BTreeMap::new();
    let mut standbys: BTreeMap<u32, Standby> = BTreeMap::new();
    // Servers of shards given up without a hand-over, still draining.
    let mut draining: Draining = BTreeMap::new();
    let mut streaks: HashMap<String, u32> = HashMap::new();
    // The lease is renewed by a task of its own: a takeover that waits on NATS (a replay, a
    // snapshot) holds this loop up, and must not let the node's lease lapse meanwhile.
    let renewed: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let renewer = shared.runtime.spawn({
        let (shared, renewed, mut stopped) = (shared.clone(), renewed.clone(), stopped.clone());
        async move {
            loop {
                let started = Instant::now();
                match within(tick, shared.directory.renew(&shared.id, &info)).await {
                    Ok(()) => *renewed.lock().expect("lease lock") = Some(started),
                    Err(e) => tracing::warn!(error = %e, "cannot renew the lease"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(tick.saturating_sub(started.elapsed())) => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
        }
    });
    loop {
        let started = Instant::now();
        let lease_ok = renewed
            .lock()
            .expect("lease lock")
            .is_some_and(|at| at.elapsed() < lease);
        if !lease_ok {
            if !served.is_empty() {
                tracing::warn!("the lease ran out: no longer serving any shard");
            }
            let stopping = std::mem::take(&mut served);
            // Said before the servers drain (a commit waiting for NATS can hold one for
            // seconds): from now on `/healthz` and the edge name no shard of this node.
            publish(&shared, false, &[], &[], &served, &standbys);
            for (shard, s) in stopping {
                draining.insert(shard, actix_web::rt::spawn(s.stop()));
            }
        } else {
            let directory = shared.directory.clone();
            let shards = cluster.shards;
            let read = shared
                .nats(async move {
                    let read = async {
                        let live = directory.live_nodes().await?;
                        let claims = directory.claims(shards).await?;
                        Ok((live, claims))
                    };
                    within(tick, read).await
                })
                .await;
            match read {
                Some(Ok((live, claims))) => {
                    for node in &live {
                        *streaks.entry(node.clone()).or_default() += 1;
                    }
                    streaks.retain(|n, _| live.contains(n));
                    draining.retain(|_, drain| !drain.is_finished());
                    step(
                        &shared,
                        &live,
                        &claims,
                        &streaks,
                        &mut served,
                        &mut standbys,
                        &mut draining,
                    )
                    .await;
                    follow(&shared, &live, &claims, &served, &draining, &mut standbys, tick);
                    publish(&shared, true, &live, &claims, &served, &standbys);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "cannot read the directory"),
                None => break,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick.saturating_sub(started.elapsed())) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    for (_, s) in std::mem::take(&mut served) {
        s.stop().await;
    }
    for (_, drain) in std::mem::take(&mut draining) {
        let _ = drain.await;
    }
    for (_, s) in std::mem::take(&mut standbys) {
        s.close().await;
    }
    renewer.abort();
    let _ = renewer.await;
    let (directory, id) = (shared.directory.clone(), shared.id.clone());
    let _ = shared.nats(async move { directory.leave(&id).await }).await;
}

/// The drains of servers given up without a hand-over (the lease ran out, or another node
/// owns the shard now), by shard.
type Draining = BTreeMap<u32, tokio::task::JoinHandle<()>>;

/// One tick's decisions, shard by shard (see the module doc).
async fn step(
    shared: &Arc<Shared>,
    live: &[String],
    claims: &[Option<Seen>],
    streaks: &HashMap<String, u32>,
    served: &mut BTreeMap<u32, Served>,
    standbys: &mut BTreeMap<u32, Standby>,
    draining: &mut Draining,
) {
    let me = shared.id.as_str();
    let nodes: Vec<&str> = live.iter().map(String::as_str).collect();
    for (shard, seen) in claims.iter().enumerate() {
        let shard = shard as u32;
        let preferred = placement::ranking(shard, &nodes).first().copied();
        let owner = seen.as_ref().map(|s| s.claim.owner.as_str());
        let owner_live = owner.is_some_and(|o| live.iter().any(|n| n == o));
        if let Some(s) = served.get(&shard) {
            let fenced = !s.ownership.owning();
            if fenced || owner != Some(me) {
                tracing::warn!(shard, fenced, owner, "no longer the shard's owner: stopping it");
                shared.metrics.lost.fetch_add(1, Relaxed);
                // Another node serves it now: nothing waits for this drain but the shard's
                // own next takeover here.
                if let Some(s) = served.remove(&shard) {
                    draining.insert(shard, actix_web::rt::spawn(s.stop()));
                }
                continue;
            }
            let better = preferred.filter(|p| *p != me);
            let steady = better.is_some_and(|p| streaks.get(p).copied().unwrap_or(0) >= HAND_OVER_AFTER);
            if let (Some(to), true, Some(seen)) = (better, steady, seen) {
                tracing::info!(shard, to, "handing the shard to the node that ranks first for it");
                if let Some(s) = served.remove(&shard) {
                    s.stop().await;
                }
                let (directory, to, seen) = (shared.directory.clone(), to.to_owned(), seen.clone());
                let handed = shared
                    .nats(async move { directory.hand_over(shard, &to, &seen).await })
                    .await;
                shared.metrics.handovers.fetch_add(1, Relaxed);
                if !matches!(handed, Some(Ok(Some(_)))) {
                    tracing::warn!(
                        shard,
                        ?handed,
                        "the hand-over was not recorded; the shard is free again"
                    );
                }
            }
            continue;
        }
        let take = match owner {
            Some(o) if o == me => true,
            _ => !owner_live && preferred == Some(me),
        };
        if take {
            // This node's own server of the shard may still be draining (ended drains left
            // the map before this step): its copy is free once the drain has ended. Until
            // then the shard waits for a later tick, and the other shards are not held up.
            if draining.contains_key(&shard) {
                continue;
            }
            let started = Instant::now();
            let standby = match standbys.remove(&shard) {
                Some(s) => s.finish().await,
                None => None,
            };
            match shared.take_over(shard, seen.clone(), standby).await {
                Ok(s) => {
                    shared.metrics.takeovers.fetch_add(1, Relaxed);
                    shared
                        .metrics
                        .takeover_seconds
                        .record(started.elapsed().as_secs_f64());
                    served.insert(shard, s);
                }
                // Nodes that start together race for the same shards: one wins.
                Err(TakeoverError::Lost) => tracing::info!(shard, "another node took the shard first"),
                Err(e) => {
                    shared.metrics.takeover_failures.fetch_add(1, Relaxed);
                    tracing::warn!(shard, error = %e, "the takeover failed; trying again next tick");
                }
            }
        }
    }
}

/// Follows the shards this node is the standby of (see the module doc), and stops following
/// the others.
fn follow(
    shared: &Arc<Shared>,
    live: &[String],
    claims: &[Option<Seen>],
    served: &BTreeMap<u32, Served>,
    draining: &Draining,
    standbys: &mut BTreeMap<u32, Standby>,
    tick: Duration,
) {
    let me = shared.id.as_str();
    let nodes: Vec<&str> = live.iter().map(String::as_str).collect();
    let wanted: Vec<u32> = (0..claims.len() as u32)
        .filter(|shard| !served.contains_key(shard) && !draining.contains_key(shard))
        .filter(|&shard| {
            let owner = claims[shard as usize].as_ref().map(|s| s.claim.owner.as_str());
            let owned_elsewhere = owner.is_some_and(|o| o != me && nodes.contains(&o));
            owned_elsewhere && placement::standby(shard, &nodes, owner) == Some(me)
        })
        .collect();
    let dropped: Vec<u32> = standbys.keys().copied().filter(|s| !wanted.contains(s)).collect();
    for shard in dropped {
        if let Some(s) = standbys.remove(&shard) {
            tracing::info!(shard, "no longer the shard's standby");
            // Its catch-up may be under way: let it finish off the node's loop.
            shared.runtime.spawn(s.close());
        }
    }
    for shard in wanted {
        if standbys.get(&shard).is_some_and(|s| !s.ended()) {
            continue;
        }
        standbys.insert(shard, Standby::start(shared, shard, tick));
    }
}

/// Tells the edge where each shard is served now.
fn publish(
    shared: &Shared,
    lease: bool,
    live: &[String],
    claims: &[Option<Seen>],
    served: &BTreeMap<u32, Served>,
    standbys: &BTreeMap<u32, Standby>,
) {
    let mut routes = vec![None; shared.config.cluster.shards as usize];
    for (shard, seen) in claims.iter().enumerate() {
        if let Some(seen) = seen {
            let live_owner = live.contains(&seen.claim.owner);
            if live_owner && !seen.claim.addr.is_empty() {
                routes[shard] = Some(seen.claim.addr.clone());
            }
        }
    }
    for (shard, s) in served {
        routes[*shard as usize] = Some(s.addr.clone());
    }
    shared.edge.update(Table {
        routes,
        lease,
        owns: served.keys().copied().collect(),
        follows: standbys.iter().map(|(k, s)| (*k, s.at.load(Relaxed))).collect(),
        live: live.to_vec(),
        served: served
            .iter()
            .map(|(k, s)| (*k, Arc::downgrade(&s.state)))
            .collect(),
    });
}
