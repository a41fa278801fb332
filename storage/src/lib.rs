//! Parlor's storage layer: one redb file holding every tenant's state.
//!
//! - [`tables`] names the redb tables and their native tuple keys (keys are never
//!   bincode-encoded, so redb orders them and ranges over them).
//! - [`codec`] turns records into versioned bincode values and back.
//! - [`records`] are the values: users, messages, cursors, file metadata.
//! - [`Tx`] is the typed view of one write transaction; only the [`Writer`] makes one.
//! - [`Snapshot`] is the typed view of one read transaction, for readers off the actor threads.
//! - [`DumpRecord`]s are a whole-database copy: [`Snapshot::dump`] reads one out of a read
//!   transaction (or a [`ReadOnlyStore`] opened beside no writer), [`Tx::load`] writes it back.
//! - [`Writer`] is the group-commit writer: its own thread, one redb write transaction per
//!   batch, every waiter answered after the commit that holds its write.

pub mod codec;
mod dump;
mod error;
pub mod histogram;
pub mod records;
mod snapshot;
pub mod tables;
mod tx;
mod writer;

use std::path::Path;

use redb::ReadableDatabase;
use std::sync::Arc;

pub use dump::DumpRecord;
pub use error::{Error, Result};
pub use histogram::{Histogram, HistogramSnapshot};
pub use records::{
    ApplyRecord, ApplyStatus, ChatType, ConvState, Cursor, FileRecord, FriendRecord, GateRecord, GroupRecord,
    JoinRequest, MemberRecord, MessageRecord, Role, SettingRecord, UserRecord,
};
pub use snapshot::{HistoryPage, Snapshot, StartupState};
pub use tx::Tx;
pub use writer::{Writer, WriterConfig, WriterStats};

/// The opened database: a cheap-to-clone handle for readers plus the one [`Writer`].
#[derive(Clone)]
pub struct Store {
    db: Arc<redb::Database>,
    writer: Writer,
}

impl Store {
    /// Opens (or creates) the database file at `path`, creates missing tables and starts the
    /// Writer thread.
    pub fn open(path: impl AsRef<Path>, config: WriterConfig) -> Result<Store> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let new = !path.exists();
        let db = Arc::new(redb::Database::create(path)?);
        if new {
            // Messages and password hashes: readable by the server's user only.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        tables::create_all(&db)?;
        let writer = Writer::start(db.clone(), config)?;
        Ok(Store { db, writer })
    }

    /// The database's id: a random number given when its file was created, so that what
    /// was issued for one database (a token) is told apart from another's.
    pub fn database_id(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(tables::META)?;
        Ok(meta.get(tables::DATABASE_ID)?.map_or(0, |v| v.value()))
    }

    /// The group-commit writer (a clone of the one handle).
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Opens a read transaction. Call it from a blocking context, never an actor thread.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot::new(self.db.begin_read()?))
    }

    /// Size of the database file in bytes, as redb reports its allocated storage.
    pub fn file_size(&self, path: impl AsRef<Path>) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// How many handles share the open database (this one included); the file is closed
    /// when the last one is dropped.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.db)
    }

    /// Stops the Writer after it has committed everything already submitted.
    pub fn shutdown(&self) {
        self.writer.shutdown();
    }
}

/// What an integrity check of a database file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// Every page passed its checksum and the structure is whole.
    Sound,
    /// Pages failed their checksums; redb could repair the file by dropping what they held
    /// (what was in them would be lost).
    Damaged,
    /// The file could not be checked or repaired: the detail.
    Corrupted(String),
}

/// Checks the database file at `path` (redb's own integrity check: every page's checksum
/// and the tree structure) without changing it: the check runs on a copy next to it, which
/// is removed afterwards. The file must not be open in a running server.
pub fn check(path: impl AsRef<Path>) -> Result<Integrity> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(Error::NotFound(format!("no database at {}", path.display())));
    }
    let copy = path.with_extension("check");
    std::fs::copy(path, &copy)?;
    let outcome = match redb::Database::open(&copy) {
        Ok(mut db) => match db.check_integrity() {
            Ok(true) => Integrity::Sound,
            Ok(false) => Integrity::Damaged,
            Err(e) => Integrity::Corrupted(e.to_string()),
        },
        Err(e) => Integrity::Corrupted(e.to_string()),
    };
    let _ = std::fs::remove_file(&copy);
    Ok(outcome)
}

/// A database file opened read-only, for tools such as the export. redb refuses it
/// ([`Error::is_in_use`]) while a process (a running server) has the file open as a [`Store`].
pub struct ReadOnlyStore {
    db: redb::ReadOnlyDatabase,
}

impl ReadOnlyStore {
    /// Opens an existing database file without writing to it.
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnlyStore> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::NotFound(format!("no database at {}", path.display())));
        }
        Ok(ReadOnlyStore {
            db: redb::ReadOnlyDatabase::open(path)?,
        })
    }

    /// Opens a read transaction.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot::new(self.db.begin_read()?))
    }
}
