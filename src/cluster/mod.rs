//! Cluster mode: several Parlor nodes over NATS JetStream (`CLUSTER.md`).
//!
//! What is here so far is the replicated log of a shard ([`log`]): the record of every
//! Writer batch, appended to a JetStream stream before the batch commits, fenced so that two
//! owners can never both append, and replayed into a copy with no business logic. The
//! single node, the default, uses none of it.

pub mod log;
