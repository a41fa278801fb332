//! A tenant's policy: the limits the core enforces for every user of that tenant.

use serde::{Deserialize, Serialize};

/// Limits of one tenant. Every tenant starts from the configured defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// How long after sending a sender may revoke a message, in seconds.
    pub revoke_window_secs: u64,
    /// Largest message content (`data` plus `options`) in bytes.
    pub max_message_bytes: usize,
    /// Messages one user may send per second (sustained); 0 turns the limit off.
    pub rate_per_sec: u32,
    /// Messages one user may send in a burst above the sustained rate.
    pub rate_burst: u32,
    /// Most messages pushed to a session when it connects; older ones stay in history.
    pub offline_replay_max: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            revoke_window_secs: 300,
            max_message_bytes: 16 * 1024,
            rate_per_sec: 500,
            rate_burst: 1000,
            offline_replay_max: 10_000,
        }
    }
}
