//! Bounds on the costly and the guessable parts of logging in, and on creating users by
//! naming them.
//!
//! - **Hashing.** An argon2 hash takes `auth.argon2_memory_kib` of memory and tens of
//!   milliseconds of a core, so password hashing and checking run at most
//!   `login.hash_concurrency` at a time; a request that cannot start within
//!   `login.hash_wait_ms` is refused as `overloaded` (503) instead of queueing memory.
//! - **Throttles.** Login attempts are counted per account and per client address with
//!   [`governor`]'s keyed limiters (`login.per_account_per_min`,
//!   `login.per_address_per_min`, each a burst refilled over a minute); past either, the
//!   attempt is refused before any work with `rate_limited` (429) and a `Retry-After`.
//!   Keys idle for a full refill are forgotten when a limiter grows.
//! - **New visitors.** A client address may create `login.visitors_per_address_per_min`
//!   visitor accounts a minute (429 with `Retry-After` past it); a known device's visitor
//!   logs in again freely.
//! - **New users.** Naming unknown outside (Chat21) ids creates users; a caller may create
//!   `limits.new_users_per_min` a minute (`rate_limited`, 429 with `Retry-After`, past it).
//! - **Unknown users.** A login of a user that does not exist (or has no password) checks
//!   the password against a decoy hash, so it costs what a known user's does and its time
//!   does not tell which usernames exist.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::auth::Auth;
use crate::config::{LimitsConfig, LoginConfig};
use crate::error::ApiError;

/// Keys a limiter holds before the idle ones are forgotten.
const PRUNE_AT: usize = 10_000;

/// The login bounds of one server; see the module doc.
pub struct Guard {
    hashing: Semaphore,
    hash_wait: Duration,
    per_account: DefaultKeyedRateLimiter<(String, String)>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    new_users: DefaultKeyedRateLimiter<(String, u64)>,
    new_visitors: DefaultKeyedRateLimiter<IpAddr>,
    decoy: String,
}

impl Guard {
    /// The bounds of `config`; the decoy hash is made with `auth`'s parameters.
    pub fn new(config: &LoginConfig, limits: &LimitsConfig, auth: &Auth) -> Result<Self, ApiError> {
        let permits = match config.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        let decoy: [u8; 16] = rand::random();
        Ok(Guard {
            hashing: Semaphore::new(permits),
            hash_wait: Duration::from_millis(config.hash_wait_ms),
            per_account: DefaultKeyedRateLimiter::keyed(quota(config.per_account_per_min)),
            per_address: DefaultKeyedRateLimiter::keyed(quota(config.per_address_per_min)),
            new_users: DefaultKeyedRateLimiter::keyed(quota(limits.new_users_per_min)),
            new_visitors: DefaultKeyedRateLimiter::keyed(quota(config.visitors_per_address_per_min)),
            decoy: auth.hash_password(&hex::encode(decoy))?,
        })
    }

    /// A turn to hash or check a password, waiting at most `login.hash_wait_ms`.
    pub async fn hashing(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        let busy = || ApiError::Overloaded("too many password checks in progress; retry".into());
        match tokio::time::timeout(self.hash_wait, self.hashing.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy()),
        }
    }

    /// Counts a login attempt of `username` in `tenant` from `addr`; refused when either
    /// throttle is used up, with the seconds until the next attempt may be made.
    pub fn attempt(&self, tenant: &str, username: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        if self.per_address.len() > PRUNE_AT {
            self.per_address.retain_recent();
        }
        if self.per_account.len() > PRUNE_AT {
            self.per_account.retain_recent();
        }
        let now = DefaultClock::default().now();
        if let Some(addr) = addr {
            if let Err(later) = self.per_address.check_key(&addr) {
                return Err(throttled("from this address", later.wait_time_from(now)));
            }
        }
        let account = (tenant.to_owned(), username.to_lowercase());
        if let Err(later) = self.per_account.check_key(&account) {
            return Err(throttled("for this account", later.wait_time_from(now)));
        }
        Ok(())
    }

    /// Counts `n` users that caller `by` of `tenant` is about to create by naming outside
    /// ids; refused when that is over the caller's `limits.new_users_per_min`.
    pub fn new_users(&self, tenant: &str, by: u64, n: usize) -> Result<(), ApiError> {
        if self.new_users.len() > PRUNE_AT {
            self.new_users.retain_recent();
        }
        let n = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX));
        let Some(n) = n else { return Ok(()) };
        let now = DefaultClock::default().now();
        match self.new_users.check_key_n(&(tenant.to_owned(), by), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(later)) => Err(ApiError::Throttled {
                msg: format!(
                    "too many new users created by this caller; retry in {} s",
                    later.wait_time_from(now).as_secs().max(1)
                ),
                retry_secs: later.wait_time_from(now).as_secs().max(1),
            }),
            Err(_) => Err(ApiError::invalid(
                "more new users than a caller may create in a minute",
            )),
        }
    }

    /// Counts a visitor account about to be created for a request from `addr`; refused
    /// past `login.visitors_per_address_per_min`.
    pub fn new_visitor(&self, addr: IpAddr) -> Result<(), ApiError> {
        if self.new_visitors.len() > PRUNE_AT {
            self.new_visitors.retain_recent();
        }
        let now = DefaultClock::default().now();
        self.new_visitors.check_key(&addr).map_err(|later| {
            let secs = later.wait_time_from(now).as_secs().max(1);
            ApiError::Throttled {
                msg: format!("too many new visitors from this address; retry in {secs} s"),
                retry_secs: secs,
            }
        })
    }

    /// The hash an unknown user's password is checked against.
    pub fn decoy(&self) -> &str {
        &self.decoy
    }
}

fn throttled(whom: &str, wait: Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::Throttled {
        msg: format!("too many login attempts {whom}; retry in {secs} s"),
        retry_secs: secs.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthConfig, LoginConfig};

    fn guard(config: LoginConfig) -> Guard {
        let auth = AuthConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            ..AuthConfig::default()
        };
        let auth = Auth::new(b"secret", &auth).unwrap();
        Guard::new(&config, &crate::config::LimitsConfig::default(), &auth).unwrap()
    }

    #[test]
    fn an_account_is_throttled_after_its_burst_and_others_are_not() {
        let g = guard(LoginConfig {
            per_account_per_min: 3,
            ..LoginConfig::default()
        });
        for _ in 0..3 {
            g.attempt("default", "alice", None).unwrap();
        }
        match g.attempt("default", "Alice", None) {
            Err(ApiError::Throttled { msg, retry_secs }) => {
                assert!(msg.contains("for this account"), "{msg}");
                assert!((1..=20).contains(&retry_secs), "{retry_secs}");
            }
            other => panic!("{other:?}"),
        }
        g.attempt("default", "bob", None).unwrap();
        g.attempt("acme", "alice", None).unwrap();
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let g = guard(LoginConfig {
            per_address_per_min: 2,
            ..LoginConfig::default()
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        g.attempt("default", "u1", Some(a)).unwrap();
        g.attempt("default", "u2", Some(a)).unwrap();
        let e = g.attempt("default", "u3", Some(a)).unwrap_err();
        assert!(e.to_string().contains("from this address"), "{e}");
        g.attempt("default", "u3", Some(b)).unwrap();
    }

    #[actix_web::test]
    async fn hashing_waits_its_bound_then_is_overloaded() {
        let g = guard(LoginConfig {
            hash_concurrency: 1,
            hash_wait_ms: 20,
            ..LoginConfig::default()
        });
        let held = g.hashing().await.unwrap();
        assert_eq!(g.hashing().await.unwrap_err().code(), "overloaded");
        drop(held);
        let _turn = g.hashing().await.unwrap();
    }
}
