//! Parlor's core actors: the [`Router`] that delivers messages, keeps the
//! online registry and the offline queues, and one [`Tenant`] per APP_ID
//! holding that tenant's policy. Nothing here knows about HTTP or WebSockets: sessions are
//! reached only as `Recipient<Deliver>`.
//!
//! All message types between actors are in [`messages`]; the JSON shapes pushed to clients
//! are built once per message in [`wire`].

pub mod commit;
pub mod conv;
pub mod error;
pub mod group;
pub mod hooks;
pub mod inbox;
pub mod messages;
pub mod notices;
pub mod policy;
pub mod revoke;
pub mod router;
pub mod rules;
pub mod tenant;
pub mod wire;

pub use conv::ConvKey;
pub use error::SendError;
pub use group::Group;
pub use messages::*;
pub use policy::Policy;
pub use router::Router;
pub use tenant::Tenant;

/// Milliseconds since the Unix epoch, by the server's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new message id: a UUID v7, ordered by time, so the message-id index grows at its end.
pub fn message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
