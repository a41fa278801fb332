//! Why the core refused a send or a cursor move. Each face renders these in its own
//! envelope; [`SendError::code`] is the snake_case kind used on the WebSocket.

/// A refusal from the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The request is malformed (a missing or wrong field).
    #[error("{0}")]
    Invalid(String),
    /// The content is longer than the tenant allows.
    #[error("message is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The sender sends faster than the tenant allows.
    #[error("too many messages: at most {per_sec} per second")]
    RateLimited { per_sec: u32 },
    /// The sender may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The target does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It is so already (a member invited twice).
    #[error("{0}")]
    Conflict(String),
    /// A group is at its member limit.
    #[error("the group is full: at most {limit} members")]
    Full { limit: usize },
    /// The write queue is full; retry with the same `cid`.
    #[error("server is busy, retry")]
    Overloaded,
    /// Storage failed; nothing was acknowledged.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl SendError {
    /// The snake_case kind of the error, as WebSocket `error` frames carry it.
    pub fn code(&self) -> &'static str {
        match self {
            SendError::Invalid(_) => "invalid",
            SendError::TooLarge { .. } => "too_large",
            SendError::RateLimited { .. } => "rate_limited",
            SendError::Forbidden(_) => "forbidden",
            SendError::NotFound(_) => "not_found",
            SendError::Conflict(_) => "conflict",
            SendError::Full { .. } => "group_full",
            SendError::Overloaded => "overloaded",
            SendError::Storage(_) => "storage",
        }
    }
}

impl From<parlor_storage::Error> for SendError {
    fn from(e: parlor_storage::Error) -> Self {
        match e {
            parlor_storage::Error::Unavailable(_) => SendError::Overloaded,
            parlor_storage::Error::NotFound(what) => SendError::NotFound(what),
            parlor_storage::Error::Conflict(what) => SendError::Conflict(what),
            other => SendError::Storage(other.to_string()),
        }
    }
}
