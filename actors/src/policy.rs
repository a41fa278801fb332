//! A tenant's policy: the limits the core enforces for every user of that tenant.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::messages::{SendMessage, UserKey};
use crate::SendError;

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
    /// Most members of a group.
    pub max_group_members: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            revoke_window_secs: 300,
            max_message_bytes: 16 * 1024,
            rate_per_sec: 500,
            rate_burst: 1000,
            offline_replay_max: 10_000,
            max_group_members: 10_000,
        }
    }
}

impl Policy {
    /// Checks the parts of a send every conversation shares: type, client id, size.
    pub fn check_content(&self, msg: &SendMessage) -> Result<(), SendError> {
        if msg.kind.is_empty() || msg.kind.len() > 32 {
            return Err(SendError::Invalid("type must be 1 to 32 characters".into()));
        }
        if let Some(cid) = &msg.cid {
            if cid.is_empty() || cid.len() > 64 {
                return Err(SendError::Invalid("cid must be 1 to 64 characters".into()));
            }
        }
        let size = msg.data.len() + msg.options.len();
        if size > self.max_message_bytes {
            return Err(SendError::TooLarge {
                size,
                limit: self.max_message_bytes,
            });
        }
        Ok(())
    }
}

/// Token buckets of senders, owned by one actor (no lock).
#[derive(Default)]
pub struct RateLimiter {
    buckets: HashMap<UserKey, (f64, Instant)>,
}

impl RateLimiter {
    /// Takes one token for `user`, refusing when the bucket is empty.
    pub fn check(&mut self, user: &UserKey, policy: &Policy) -> Result<(), SendError> {
        if policy.rate_per_sec == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let burst = policy.rate_burst.max(1) as f64;
        let (tokens, at) = self.buckets.entry(user.clone()).or_insert((burst, now));
        let refill = now.duration_since(*at).as_secs_f64() * policy.rate_per_sec as f64;
        *tokens = (*tokens + refill).min(burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(SendError::RateLimited {
                per_sec: policy.rate_per_sec,
            });
        }
        *tokens -= 1.0;
        Ok(())
    }
}
