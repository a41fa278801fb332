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
//! - [`effects`]: the rows a batch changed, recorded for a replicated log and applied to a
//!   copy with [`Tx::apply_logged`].
//! - [`Writer`] is the group-commit writer: its own thread, one redb write transaction per
//!   batch, every waiter answered after the commit that holds its write.

pub mod codec;
mod dump;
pub mod effects;
mod error;
mod handle;
mod heads;
pub mod histogram;
mod recent;
pub mod records;
mod snapshot;
pub mod tables;
mod tx;
mod writer;

use std::path::Path;

use redb::ReadableDatabase;
use std::sync::Arc;

pub use dump::DumpRecord;
pub use effects::{Effect, EffectLog};
pub use error::{Error, Result};
pub use histogram::{Histogram, HistogramSnapshot};
pub use records::{
    ApplyRecord, ApplyStatus, ChatType, ConvState, Cursor, FileRecord, FriendRecord, GateRecord, GroupRecord,
    JoinRequest, MemberRecord, MessageRecord, OutboxEvent, Presence, Role, SettingRecord, UserRecord,
    WebhookRecord,
};
pub use snapshot::{HistoryPage, Snapshot, StartupState};
pub use tx::Tx;
pub use writer::{Writer, WriterConfig, WriterStats};

/// Milliseconds since the Unix epoch, by the server's clock.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The opened database: a cheap-to-clone handle for readers plus the one [`Writer`].
#[derive(Clone)]
pub struct Store {
    db: Arc<handle::Handle>,
    writer: Writer,
}

impl Store {
    /// Opens (or creates) the database file at `path`, creates missing tables and starts the
    /// Writer thread. The file is verified as [`StartCheck::default`] says.
    pub fn open(path: impl AsRef<Path>, config: WriterConfig) -> Result<Store> {
        Ok(Store::open_checked(path, config, StartCheck::default())?.0)
    }

    /// [`open`](Self::open), verifying the file first as `check` says, and telling what the
    /// verification found. A file that fails it is refused ([`Error::Damaged`]) unless
    /// `check.serve_damaged`; then redb's repair goes back to the last commit that verifies.
    pub fn open_checked(
        path: impl AsRef<Path>,
        config: WriterConfig,
        check: StartCheck,
    ) -> Result<(Store, Opened)> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let new = !path.exists();
        let clean = if new { Some(true) } else { closed_cleanly(path)? };
        let verify = match check.verify {
            Verify::Always => true,
            Verify::Unclean => clean == Some(false),
            Verify::Never => false,
        };
        // The repair callback is how redb says what it found: it calls it at progress 0.3
        // only when the newest commit failed its checksums and is to be rolled back.
        let rolled_back = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = rolled_back.clone();
        // After a crash a commit cut short fails its checksums and going back is the repair;
        // after a clean close it can only be damage.
        let refuse = !check.serve_damaged && clean != Some(false);
        let db = redb::Database::builder()
            .set_check_integrity_on_open(verify)
            .set_repair_callback(move |session| {
                if (0.3..0.6).contains(&session.progress()) {
                    seen.store(true, std::sync::atomic::Ordering::Relaxed);
                    if refuse {
                        session.abort();
                    }
                }
            })
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::RepairAborted => Error::Damaged(
                    "the newest commit fails its checksums although the file was closed cleanly: \
                     it was changed outside the server"
                        .into(),
                ),
                redb::DatabaseError::Storage(redb::StorageError::Corrupted(what)) => Error::Damaged(what),
                e => Error::from(e),
            })?;
        let opened = Opened {
            clean: clean.unwrap_or(true),
            verified: verify,
            rolled_back: rolled_back.load(std::sync::atomic::Ordering::Relaxed),
        };
        if new {
            // Messages and password hashes: readable by the server's user only.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        tables::create_all(&db)?;
        let db = Arc::new(handle::Handle::new(path, db));
        let writer = Writer::start(db.clone(), config)?;
        Ok((Store { db, writer }, opened))
    }

    /// The database's id: a random number given when its file was created, so that what
    /// was issued for one database (a token) is told apart from another's.
    pub fn database_id(&self) -> Result<u64> {
        let txn = self.db.get()?.begin_read()?;
        let meta = txn.open_table(tables::META)?;
        Ok(meta.get(tables::DATABASE_ID)?.map_or(0, |v| v.value()))
    }

    /// The group-commit writer (a clone of the one handle).
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Opens a read transaction. Call it from a blocking context, never an actor thread.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot::new(self.db.get()?.begin_read()?))
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

/// When the database file is verified as it is opened (redb's integrity check: every page
/// of the newest commit against its checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// Every time: a changed byte anywhere is found before anything is served. Reads the
    /// whole file.
    #[default]
    Always,
    /// Only after an unclean shutdown (redb then verifies the newest commit in any case).
    Unclean,
    /// Never (redb still verifies after an unclean shutdown).
    Never,
}

/// How a database is checked as it is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartCheck {
    pub verify: Verify,
    /// Open a file that fails the check anyway: redb goes back to the newest commit that
    /// verifies (what the newer ones held is lost).
    pub serve_damaged: bool,
}

/// What opening the database found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The file was closed cleanly last time (or is new).
    pub clean: bool,
    /// Every page of the newest commit was verified.
    pub verified: bool,
    /// The newest commit failed its checksums and redb went back to the one before it: after
    /// an unclean shutdown, a commit the crash cut short (never acknowledged); after a clean
    /// close, damage (only with `serve_damaged`).
    pub rolled_back: bool,
}

/// Whether the redb file at `path` was closed cleanly: `None` when it is not a redb file
/// (empty, or another format; opening it says more). Reads redb's header: after its 9-byte
/// magic number comes the "god byte", whose bit 2 is set while the file is open for
/// writing and cleared when it is closed cleanly (redb 4's file format).
pub fn closed_cleanly(path: impl AsRef<Path>) -> Result<Option<bool>> {
    use std::io::Read;
    const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    const RECOVERY_REQUIRED: u8 = 2;
    let mut head = [0u8; 10];
    let mut file = std::fs::File::open(path)?;
    match file.read_exact(&mut head) {
        Ok(()) if head[..9] == MAGIC => Ok(Some(head[9] & RECOVERY_REQUIRED == 0)),
        Ok(()) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e.into()),
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
