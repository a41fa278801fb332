//! Cluster mode: several Parlor nodes over NATS JetStream (`CLUSTER.md`).
//!
//! Its parts, each tested against a real `nats-server`: the replicated log of a shard
//! ([`log`]: the record of every Writer batch, appended before the batch commits, fenced so
//! that two owners can never both append, replayed into a copy with no business logic),
//! where tenants and shards go ([`placement`]), who is alive and owns which shard
//! ([`directory`]: leases and compare-and-swap claims), a node's copy of a shard with its
//! takeover ([`shard`]: claim, replay, epoch-start record, then every batch through the
//! log), the snapshots that let the log be truncated ([`snapshot`]), and the node that runs
//! them ([`node`]: leases, takeovers, standbys, hand-overs; its client listener, [`edge`]).
//! The single node, the default, uses none of it.

pub mod directory;
pub mod edge;
pub mod log;
pub mod node;
pub mod placement;
pub mod shard;
pub mod snapshot;

/// What a cluster operation on NATS can meet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The shard's log holds something past the position the appender expected: another
    /// owner appended. This appender must stop writing the shard.
    #[error("fenced: the log of this shard moved past position {expected}")]
    Fenced { expected: u64 },
    /// NATS did not answer, or answered an error: the operation may be tried again (an
    /// append with the same id).
    #[error("NATS is unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

/// Upper bounds of the takeover-time histogram, seconds.
pub const TAKEOVER_SECONDS_BOUNDS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What a node counts of its own work, for its `/metrics`.
#[derive(Debug)]
pub struct NodeMetrics {
    /// Shards this node took over (each a new epoch).
    pub takeovers: std::sync::atomic::AtomicU64,
    /// Takeovers that failed (another node was first, NATS did not answer, ...).
    pub takeover_failures: std::sync::atomic::AtomicU64,
    /// Time from the decision to take a shard over to serving it, seconds.
    pub takeover_seconds: parlor_storage::Histogram,
    /// Shards handed to the node that ranks first for them.
    pub handovers: std::sync::atomic::AtomicU64,
    /// Shards this node stopped serving because it was fenced or another node owns them.
    pub lost: std::sync::atomic::AtomicU64,
    /// Connections the edge tunnelled to a shard's server.
    pub tunnels: std::sync::atomic::AtomicU64,
    /// Requests the edge answered itself with an error (no owner, owner unreachable, bounds).
    pub refused: std::sync::atomic::AtomicU64,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            takeovers: Default::default(),
            takeover_failures: Default::default(),
            takeover_seconds: parlor_storage::Histogram::new(&TAKEOVER_SECONDS_BOUNDS),
            handovers: Default::default(),
            lost: Default::default(),
            tunnels: Default::default(),
            refused: Default::default(),
        }
    }
}
