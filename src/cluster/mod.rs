//! Cluster mode: several Parlor nodes over NATS JetStream (`CLUSTER.md`).
//!
//! What is here so far are its building blocks, each tested against a real `nats-server`:
//! the replicated log of a shard ([`log`]: the record of every Writer batch, appended
//! before the batch commits, fenced so that two owners can never both append, replayed into
//! a copy with no business logic), where tenants and shards go ([`placement`]), who is
//! alive and owns which shard ([`directory`]: leases and compare-and-swap claims), and a
//! node's copy of a shard with its takeover ([`shard`]: claim, replay, epoch-start record,
//! then every batch through the log). The single node, the default, uses none of it.

pub mod directory;
pub mod log;
pub mod placement;
pub mod shard;

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
