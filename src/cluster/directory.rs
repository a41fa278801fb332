//! Who is alive and who owns which shard (`CLUSTER.md` §4.5), in two JetStream key-value
//! buckets:
//!
//! - `parlor_nodes`: one key per live node, re-put every third of the lease; the bucket's
//!   `max_age` is the lease, so a node that stops renewing disappears by itself, and one
//!   that stops cleanly purges its key. The live nodes are listed from the stream's
//!   subjects (one request to the stream's leader), not with the client's key listing: that
//!   makes a consumer, and while one server of three is down the cluster can place it
//!   there, so the listing hangs until the server comes back.
//! - `parlor_shards`: `shard.<k>` → the shard's [`Claim`] (owner and epoch), changed only by
//!   compare-and-swap on the revision the claimant read: of two nodes that race to take a
//!   shard, exactly one wins, and every takeover raises the epoch.
//!
//! The buckets are made as explicit streams (`KV_<name>` over `$KV.<name>.>`) and opened with
//! `get_key_value`: the client's `create_key_value` needs account fields that the NATS 2.9
//! servers of the tests do not send.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
use async_nats::jetstream::{self};
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::{unavailable, Error};

/// The owner of a shard and the epoch of its ownership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub owner: String,
    pub epoch: u64,
    /// Where the owner serves the shard (`host:port`); empty while it is being handed over.
    #[serde(default)]
    pub addr: String,
}

/// A claim as read, with the revision a change must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub claim: Claim,
    pub revision: u64,
}

/// What a node tells the others in its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Where the node's HTTP listener is reached by the other nodes (`host:port`).
    pub advertise: String,
}

const NODES: &str = "parlor_nodes";
const SHARDS: &str = "parlor_shards";
const META: &str = "parlor_meta";

/// What is fixed when a cluster is created: its shard count, and an id that tokens name
/// (a token of one cluster is refused by another that shares the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    pub shards: u32,
    pub id: u64,
}

/// The two buckets; see the module doc.
pub struct Directory {
    nodes: kv::Store,
    shards: kv::Store,
    meta: kv::Store,
}

/// Makes (or finds) the stream of bucket `name`.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, Error> {
    let config = Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: StorageType::File,
        num_replicas: replicas.max(1),
        discard: DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Config::default()
    };
    js.get_or_create_stream(config).await.map_err(unavailable)?;
    js.get_key_value(name).await.map_err(unavailable)
}

impl Directory {
    /// Opens the buckets, making them if needed: node keys live `lease` after their last
    /// renewal; `replicas` copies of each.
    pub async fn open(js: &jetstream::Context, lease: Duration, replicas: usize) -> Result<Directory, Error> {
        Ok(Directory {
            nodes: bucket(js, NODES, lease, replicas).await?,
            shards: bucket(js, SHARDS, Duration::ZERO, replicas).await?,
            meta: bucket(js, META, Duration::ZERO, replicas).await?,
        })
    }

    /// The cluster's fixed settings: those stored by the first node that started, or
    /// `proposed` stored now if this is that node.
    pub async fn meta(&self, proposed: &ClusterMeta) -> Result<ClusterMeta, Error> {
        let value = Bytes::from(serde_json::to_vec(proposed).expect("meta serializes"));
        match self.meta.create("cluster", value).await {
            Ok(_) => return Ok(proposed.clone()),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable(e)),
        }
        let stored = self.meta.get("cluster").await.map_err(unavailable)?;
        let stored =
            stored.ok_or_else(|| Error::Unavailable("parlor_meta: the cluster key vanished".into()))?;
        serde_json::from_slice(&stored).map_err(unavailable)
    }

    /// Puts (renews) `node`'s lease.
    pub async fn renew(&self, node: &str, info: &NodeInfo) -> Result<(), Error> {
        let value = serde_json::to_vec(info).expect("node info serializes");
        self.nodes
            .put(node, Bytes::from(value))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Ends `node`'s lease now (a node that stops): its shards go to others at once. The
    /// key is purged, leaving no marker, so that the subject listing no longer names it.
    pub async fn leave(&self, node: &str) -> Result<(), Error> {
        self.nodes
            .stream
            .purge()
            .filter(format!("$KV.{NODES}.{node}"))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The nodes whose lease is current, in name order: the subjects of the bucket's stream
    /// (expired leases are gone from it).
    pub async fn live_nodes(&self) -> Result<Vec<String>, Error> {
        let prefix = format!("$KV.{NODES}.");
        let subjects = self
            .nodes
            .stream
            .info_with_subjects(format!("{prefix}>"))
            .await
            .map_err(unavailable)?;
        let subjects: Vec<(String, usize)> = subjects.try_collect().await.map_err(unavailable)?;
        let mut nodes: Vec<String> = subjects
            .into_iter()
            .filter_map(|(subject, _)| subject.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }

    /// The lease of `node`, if current.
    pub async fn node(&self, node: &str) -> Result<Option<NodeInfo>, Error> {
        match self.nodes.get(node).await.map_err(unavailable)? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(unavailable),
            None => Ok(None),
        }
    }

    /// The claim on `shard`, if anyone ever took it.
    pub async fn owner(&self, shard: u32) -> Result<Option<Seen>, Error> {
        let entry = self
            .shards
            .entry(format!("shard.{shard}"))
            .await
            .map_err(unavailable)?;
        match entry {
            Some(e) if !e.value.is_empty() => {
                let claim = serde_json::from_slice(&e.value).map_err(unavailable)?;
                Ok(Some(Seen {
                    claim,
                    revision: e.revision,
                }))
            }
            _ => Ok(None),
        }
    }

    /// Takes `shard` for `node`, replacing `seen` (what the caller read; `None`: nobody
    /// ever owned it) with the next epoch. `Ok(None)` when the claim changed since it was
    /// read: someone else took the shard first, and the caller must read again.
    pub async fn take(
        &self,
        shard: u32,
        node: &str,
        addr: &str,
        seen: Option<&Seen>,
    ) -> Result<Option<Seen>, Error> {
        let claim = Claim {
            owner: node.to_owned(),
            epoch: seen.map_or(1, |s| s.claim.epoch + 1),
            addr: addr.to_owned(),
        };
        self.swap(shard, claim, seen).await
    }

    /// Hands `shard` to `node` (its preferred owner), replacing `seen`, the owner's own claim,
    /// after the owner stopped writing it: the epoch stays, so the new owner's takeover still
    /// raises it. `Ok(None)` when the claim changed since it was read.
    pub async fn hand_over(&self, shard: u32, node: &str, seen: &Seen) -> Result<Option<Seen>, Error> {
        let claim = Claim {
            owner: node.to_owned(),
            epoch: seen.claim.epoch,
            addr: String::new(),
        };
        self.swap(shard, claim, Some(seen)).await
    }

    /// Every shard's claim, by shard (`None`: never taken).
    pub async fn claims(&self, shards: u32) -> Result<Vec<Option<Seen>>, Error> {
        let mut all = Vec::with_capacity(shards as usize);
        for shard in 0..shards {
            all.push(self.owner(shard).await?);
        }
        Ok(all)
    }

    async fn swap(&self, shard: u32, claim: Claim, seen: Option<&Seen>) -> Result<Option<Seen>, Error> {
        let value = Bytes::from(serde_json::to_vec(&claim).expect("claim serializes"));
        let key = format!("shard.{shard}");
        let revision = match seen {
            None => match self.shards.create(&key, value).await {
                Ok(revision) => revision,
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => return Ok(None),
                Err(e) => return Err(unavailable(e)),
            },
            Some(seen) => match self.shards.update(&key, value, seen.revision).await {
                Ok(revision) => revision,
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => return Ok(None),
                Err(e) => return Err(unavailable(e)),
            },
        };
        Ok(Some(Seen { claim, revision }))
    }
}
