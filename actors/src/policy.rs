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
    /// Largest group whose members are told of each other's presence; 0: only friends are.
    #[serde(default)]
    pub presence_group_max: usize,
    /// The tenant's webhook endpoints and their events (empty: none, and events cost
    /// nothing). Set apart from the settings ([`SetHooks`](crate::SetHooks)).
    #[serde(skip)]
    pub webhooks: std::sync::Arc<[crate::hooks::HookSub]>,
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
            presence_group_max: 0,
            webhooks: std::sync::Arc::default(),
        }
    }
}

/// The system settings of the admin face: `(id, description)`; each is a [`Policy`] field.
pub const SETTINGS: [(u32, &str); 7] = [
    (1, "revoke window in seconds"),
    (2, "largest message content in bytes"),
    (3, "messages one user may send per second (0: no limit)"),
    (4, "burst of messages above that rate"),
    (5, "most offline messages pushed on connect"),
    (6, "most members of a group"),
    (
        7,
        "largest group whose members see each other's presence (0: friends only)",
    ),
];

impl Policy {
    /// The value of system setting `id`, if there is one.
    pub fn setting(&self, id: u32) -> Option<u64> {
        Some(match id {
            1 => self.revoke_window_secs,
            2 => self.max_message_bytes as u64,
            3 => u64::from(self.rate_per_sec),
            4 => u64::from(self.rate_burst),
            5 => self.offline_replay_max as u64,
            6 => self.max_group_members as u64,
            7 => self.presence_group_max as u64,
            _ => return None,
        })
    }

    /// Sets system setting `id` from its text; refuses an unknown id or a bad value.
    pub fn set(&mut self, id: u32, value: &str) -> Result<(), String> {
        let v: u64 = value
            .trim()
            .parse()
            .map_err(|_| format!("setting {id} takes a non-negative integer"))?;
        let small = |v: u64| u32::try_from(v).map_err(|_| format!("setting {id} is at most {}", u32::MAX));
        let out_of_range = || Err(format!("setting {id} is out of range"));
        match id {
            1 => self.revoke_window_secs = v,
            2 if v == 0 => return out_of_range(),
            2 => self.max_message_bytes = v as usize,
            3 => self.rate_per_sec = small(v)?,
            4 => self.rate_burst = small(v)?,
            5 if v == 0 => return out_of_range(),
            5 => self.offline_replay_max = v as usize,
            6 if v < 2 => return out_of_range(),
            6 => self.max_group_members = v as usize,
            7 => self.presence_group_max = v as usize,
            _ => return Err(format!("setting {id} does not exist")),
        }
        Ok(())
    }

    /// Checks the parts of a send every conversation shares: type, client id, size.
    pub fn check_content(&self, msg: &SendMessage) -> Result<(), SendError> {
        let kind = msg.kind.chars().count();
        if kind == 0 || kind > 32 {
            return Err(SendError::Invalid("type must be 1 to 32 characters".into()));
        }
        if msg.kind.chars().any(char::is_control) {
            return Err(SendError::Invalid(
                "type must not contain control characters".into(),
            ));
        }
        if let Some(cid) = &msg.cid {
            let n = cid.chars().count();
            if n == 0 || n > 64 {
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
