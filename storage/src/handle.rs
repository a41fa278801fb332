//! The open database as a replaceable handle. After an I/O error in a commit (a full disk),
//! redb refuses every later operation on that `Database` value until it is opened again; the
//! Writer does that here ([`Handle::reopen`]) once the failure may have passed, so a server
//! whose disk filled up writes again when room returns, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::{tables, Error, Result};

/// The database file and its current opening; readers and the Writer take a reference per
/// transaction.
pub(crate) struct Handle {
    path: PathBuf,
    current: RwLock<Option<Arc<redb::Database>>>,
}

impl Handle {
    pub(crate) fn new(path: &Path, db: redb::Database) -> Handle {
        Handle {
            path: path.to_owned(),
            current: RwLock::new(Some(Arc::new(db))),
        }
    }

    /// The open database. While it is not open (a reopen after failed writes could not open
    /// it yet) the error is redb's own for that state: a previous I/O error.
    pub(crate) fn get(&self) -> Result<Arc<redb::Database>> {
        self.current
            .read()
            .expect("database handle lock")
            .clone()
            .ok_or_else(|| Error::Database(Arc::new(redb::Error::PreviousIo)))
    }

    /// Closes the database and opens its file again (redb repairs what the failed commit
    /// left: the file goes back to the last commit that completed). The old opening must be
    /// let go by every reader first; waits up to `wait` for that, and keeps it when a reader
    /// holds on. When the file cannot be opened (no room yet), nothing is open until a later
    /// call succeeds: readers and writers are refused meanwhile. Either way, try again later.
    pub(crate) fn reopen(&self, wait: Duration) -> Result<()> {
        let old = self.current.write().expect("database handle lock").take();
        if let Some(mut old) = old {
            // Readers clone the handle only to open a transaction: they let go at once.
            let deadline = Instant::now() + wait;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if Instant::now() < deadline => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(still) => {
                        *self.current.write().expect("database handle lock") = Some(still);
                        return Err(Error::Unavailable("the database is still in use"));
                    }
                }
            }
        }
        let db = redb::Database::create(&self.path)?;
        tables::create_all(&db)?;
        *self.current.write().expect("database handle lock") = Some(Arc::new(db));
        Ok(())
    }
}
