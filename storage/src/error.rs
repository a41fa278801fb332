//! Errors of the storage layer: one enum, with `From` impls for every redb error.

use std::sync::Arc;

/// Result of the storage layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in storage.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// redb refused or failed (I/O, corruption, a transaction error).
    #[error("database: {0}")]
    Database(Arc<redb::Error>),
    /// A stored value could not be decoded (unknown version, truncated bytes).
    #[error("codec: {0}")]
    Codec(String),
    /// The file system failed outside redb.
    #[error("io: {0}")]
    Io(Arc<std::io::Error>),
    /// A write would break a uniqueness rule (a taken username, a bound device).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The thing a write refers to does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database file fails its integrity check: what was found.
    #[error("the database is damaged: {0}")]
    Damaged(String),
    /// The Writer is stopped or its queue is full.
    #[error("writer unavailable: {0}")]
    Unavailable(&'static str),
}

impl Error {
    /// Whether the database file is open in another process (a running server).
    pub fn is_in_use(&self) -> bool {
        matches!(self, Error::Database(e) if matches!(**e, redb::Error::DatabaseAlreadyOpen))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Database(Arc::new(e.into()))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}
