//! The operations of the server, once: every face (uni-app, chat room, Chat21, admin) and
//! the WebSocket session parse their input, call one function here and render its result
//! in their own envelope. Only this module writes to the store or calls the core's actors;
//! the faces may read snapshots.
//!
//! One module per domain: [`accounts`] (users, passwords, visitors, tokens), [`external`]
//! (users of an outside identity provider, created on first use), [`messages`] (sending,
//! history, offline replay), [`lifecycle`] (password changes; listing, disabling, kicking
//! and deleting users), [`groups`] (creating groups and running commands on their
//! actors), [`social`] (friendships, applications, blocks), [`conversations`] (the
//! conversation list, read positions, revoke, archive, delete, pin), [`files`] (upload
//! records, the stored file of a URL) [`settings`] (per-tenant policy and per-user
//! settings), [`presence`] (who is online, last seen, typing notes), [`webhooks`] (endpoints, dead letters and the delivery of events). Each
//! operation takes the [`AppState`](crate::state::AppState) and plain typed
//! arguments and returns a typed result or an [`ApiError`]; validation that belongs to the
//! domain (lengths, ranges, who may do what) lives here.

pub mod accounts;
pub mod conversations;
pub mod external;
pub mod files;
pub mod groups;
pub mod lifecycle;
pub mod messages;
pub mod presence;
pub mod settings;
pub mod social;
pub mod webhooks;

use crate::error::ApiError;

/// Checks that `value` has `min` to `max` characters; the error names the field.
pub fn check_len(name: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid(format!(
            "{name} must be {min} to {max} characters"
        )));
    }
    Ok(())
}

/// Whether `name` is 1 to 64 ASCII letters, digits, `_` or `-`: safe as a key, a path
/// segment or a folder.
pub fn plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
