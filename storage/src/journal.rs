//! The journal of a single node: each Writer batch's row effects, appended to a file of
//! their own and synced before the batch's redb commit, so that the commit need not sync.
//!
//! A redb commit that syncs writes every page its batch dirtied (the leaves of the
//! conversation, of the `cid` index, of the sender's cursor: about four per message, each a
//! random 4 KB write) and then waits for the disk; most of a durable direct message's CPU was
//! that. With the journal the Writer appends one record per batch (the
//! [effects](crate::effects) a cluster's log carries), syncs it (one sequential write), and
//! commits to redb without a sync (redb's `Durability::None`: the pages stay in its write
//! buffer). Every so often (by journal bytes or by time, see [`JournalConfig`]) a commit is
//! durable: it writes the pages once however many batches changed them, and then the
//! journal starts again from its beginning. A crash loses what redb held only in memory;
//! opening the store replays the journal's records after the last position the file holds
//! ([`LOG_APPLIED`](crate::tables::LOG_APPLIED)), running no business logic, so the file
//! comes back to every acknowledged write.
//!
//! The format: records one after another from offset 0, each
//! `[length: u32][crc32: u32][position: u64][database: u64][payload: length bytes]`
//! (little-endian; the checksum covers the position, the database and the payload), the
//! positions consecutive. The database is the id of the file the journal belongs to: a
//! journal left beside a database made anew holds no record for it. Starting again
//! overwrites the file from offset 0 and keeps its length: overwriting blocks the file
//! already has syncs without a metadata update, about half the cost of an append. Reading
//! stops at the first record that is cut short, fails its checksum or does not follow its
//! predecessor: what lies beyond is older than the newest durable commit.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::effects::{encode_batch, Effect};
use crate::{Error, Result};

/// Bytes in front of each record's payload.
const HEADER: usize = 24;

/// When the Writer makes a durable commit with a journal.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The journal file (created when missing).
    pub path: PathBuf,
    /// A durable commit once the journal holds this many bytes since the last one.
    pub checkpoint_bytes: u64,
    /// A durable commit once the oldest write it would make durable is this old (an idle
    /// server's last writes reach the file within it).
    pub checkpoint_interval: Duration,
}

impl JournalConfig {
    /// The journal beside the database at `db`: its path with the extension `journal`.
    pub fn beside(db: &Path) -> JournalConfig {
        JournalConfig {
            path: db.with_extension("journal"),
            checkpoint_bytes: 32 << 20,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// The open journal; see the module doc. Only the Writer (and the opening of the store,
/// before the Writer starts) uses it.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    offset: u64,
    /// The position the next record takes.
    next: u64,
    /// The id of the database the records belong to.
    database: u64,
    /// The record being written, kept between appends.
    buf: Vec<u8>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("next", &self.next)
            .finish()
    }
}

impl Journal {
    /// Opens the journal at `path`, creating an empty one (readable by its owner only) when
    /// there is none. The next record goes at offset 0 with position 1 until
    /// [`start_after`](Self::start_after) says otherwise.
    pub fn open(path: &Path) -> Result<Journal> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path)?;
        Ok(Journal {
            file,
            path: path.to_owned(),
            offset: 0,
            next: 1,
            database: 0,
            buf: Vec::new(),
        })
    }

    /// Opens the journal at `path` to read it only (it must exist).
    pub fn open_read_only(path: &Path) -> Result<Journal> {
        Ok(Journal {
            file: File::open(path)?,
            path: path.to_owned(),
            offset: 0,
            next: 1,
            database: 0,
            buf: Vec::new(),
        })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the journal the one of the database with the id `database`: reads take its
    /// records only, and appends are marked with it.
    pub fn belong_to(&mut self, database: u64) {
        self.database = database;
    }

    /// Calls `f` with each record's position and payload, from the first record on, in
    /// order, up to the first one that is cut short, damaged, out of sequence or of another
    /// database. Returns the position of the last record read (0 when there is none).
    pub fn read(&self, mut f: impl FnMut(u64, &[u8]) -> Result<()>) -> Result<u64> {
        let len = self.file.metadata()?.len();
        let mut reader = BufReader::with_capacity(1 << 20, &self.file);
        let mut at = 0u64;
        let mut last: Option<u64> = None;
        let mut payload = Vec::new();
        loop {
            if len - at < HEADER as u64 {
                break;
            }
            let mut head = [0u8; HEADER];
            reader.read_exact(&mut head)?;
            let size = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as u64;
            let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
            let pos = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
            let database = u64::from_le_bytes(head[16..24].try_into().expect("8 bytes"));
            if database != self.database || size == 0 || size > len - at - HEADER as u64 {
                break;
            }
            if last.is_some_and(|l| pos != l + 1) {
                break;
            }
            payload.resize(size as usize, 0);
            reader.read_exact(&mut payload)?;
            if checksum(pos, database, &payload) != crc {
                break;
            }
            f(pos, &payload)?;
            last = Some(pos);
            at += HEADER as u64 + size;
        }
        Ok(last.unwrap_or(0))
    }

    /// Makes the next record go at offset 0 with position `applied + 1`: call it once
    /// everything up to `applied` is in a durable commit.
    pub fn start_after(&mut self, applied: u64) {
        self.offset = 0;
        self.next = applied + 1;
    }

    /// The position the next record takes.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Bytes written since the journal last started again.
    pub fn written(&self) -> u64 {
        self.offset
    }

    /// Appends a record of `effects`, syncs it and answers its position. After an error
    /// the next record is written where this one was to go, with the same position.
    pub fn append(&mut self, effects: &[Effect]) -> Result<u64> {
        let pos = self.next;
        let payload = encode_batch(effects);
        let size = u32::try_from(payload.len()).map_err(|_| {
            Error::Codec(format!(
                "a batch of {} bytes is too large for the journal",
                payload.len()
            ))
        })?;
        self.buf.clear();
        self.buf.extend_from_slice(&size.to_le_bytes());
        self.buf
            .extend_from_slice(&checksum(pos, self.database, &payload).to_le_bytes());
        self.buf.extend_from_slice(&pos.to_le_bytes());
        self.buf.extend_from_slice(&self.database.to_le_bytes());
        self.buf.extend_from_slice(&payload);
        let written = self
            .file
            .write_all_at(&self.buf, self.offset)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Best effort: a record that failed is not left readable (if the disk takes
            // this much) for a replay to apply what its writers were told failed.
            let _ = self.file.write_all_at(&[0; HEADER], self.offset);
            return Err(e.into());
        }
        self.offset += self.buf.len() as u64;
        self.next = pos + 1;
        Ok(pos)
    }
}

fn checksum(pos: u64, database: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&pos.to_le_bytes());
    hasher.update(&database.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(n: u8) -> Vec<Effect> {
        vec![Effect {
            table: 2,
            key: vec![n],
            value: Some(vec![n; 10 + n as usize]),
        }]
    }

    fn positions(journal: &Journal) -> Vec<u64> {
        let mut seen = Vec::new();
        journal
            .read(|pos, payload| {
                let effects = crate::effects::decode_batch(payload)?;
                assert_eq!(effects, effect(effects[0].key[0]));
                seen.push(pos);
                Ok(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn records_read_back_in_order_and_a_restart_hides_the_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = Journal::open(&path).unwrap();
        assert_eq!(positions(&journal), Vec::<u64>::new());
        for n in 1..=5 {
            assert_eq!(journal.append(&effect(n)).unwrap(), n as u64);
        }
        assert_eq!(positions(&Journal::open(&path).unwrap()), vec![1, 2, 3, 4, 5]);
        // Another database's journal: none of these records are its.
        let mut other = Journal::open(&path).unwrap();
        other.belong_to(42);
        assert_eq!(positions(&other), Vec::<u64>::new());

        // Everything up to 5 is durable elsewhere: the next records overwrite from 0, and
        // the older records beyond them are not read (out of sequence or cut).
        journal.start_after(5);
        assert_eq!(journal.append(&effect(9)).unwrap(), 6);
        assert_eq!(journal.append(&effect(9)).unwrap(), 7);
        assert_eq!(positions(&Journal::open(&path).unwrap()), vec![6, 7]);
        // Before any new record, the old ones are still read; their positions tell the
        // reader they are already applied.
        journal.start_after(7);
        assert_eq!(positions(&journal), vec![6, 7]);
    }

    #[test]
    fn a_damaged_or_cut_record_ends_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = Journal::open(&path).unwrap();
        for n in 1..=3 {
            journal.append(&effect(n)).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        let first = HEADER + u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let second =
            first + HEADER + u32::from_le_bytes(bytes[first..first + 4].try_into().unwrap()) as usize;

        // A flipped byte in the second record's payload.
        let mut damaged = bytes.clone();
        damaged[first + HEADER + 2] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        assert_eq!(positions(&Journal::open(&path).unwrap()), vec![1]);

        // The third record cut short.
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(positions(&Journal::open(&path).unwrap()), vec![1, 2]);

        // A length that runs past the end.
        let mut long = bytes.clone();
        long[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &long).unwrap();
        assert_eq!(positions(&Journal::open(&path).unwrap()), vec![1, 2]);

        // Zeros (a file extended but never written) are no record.
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        assert_eq!(positions(&Journal::open(&path).unwrap()), Vec::<u64>::new());
    }
}
