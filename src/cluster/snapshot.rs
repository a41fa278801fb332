//! Snapshots of a shard and the truncation of its log (`CLUSTER.md` §4.10).
//!
//! Every `cluster.snapshot_interval_secs` the owner of a shard writes its copy, from one
//! read transaction, as an export ([`crate::dump`]: every row, and the `log_applied`
//! position the copy holds) to the JetStream object store `parlor_snapshots`, in one of two
//! slots per shard (`shard-<k>-0`, `shard-<k>-1`, the older one overwritten), the position
//! in the object's metadata. Then the log is purged below the older of the two snapshots:
//! a copy whose position is before the log's first record (a node that never held the
//! shard, or was away while the log moved on) loads the newest snapshot into an empty file
//! and replays the log from its position. Two snapshots are kept, so that a copy restoring
//! from the older one while the newer is written still finds the records after it.
//!
//! Object names are fixed and positions read with `info` (one direct read each): listing
//! the bucket would make a consumer, which a cluster with a server down may place on it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use tokio::io::AsyncReadExt;

use super::log::ShardLog;
use super::{unavailable, Error};
use crate::dump::{DumpError, Export};

/// The object store bucket of snapshots.
const BUCKET: &str = "parlor_snapshots";

/// The metadata key of a snapshot's log position.
const POSITION: &str = "position";

/// Longest wait for a slot's metadata.
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for a whole snapshot to be written or read (the object store streams it in
/// chunks; a server that went away mid-way must not hold the caller for ever).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);

/// The snapshots of every shard.
#[derive(Clone)]
pub struct Snapshots {
    objects: object_store::ObjectStore,
}

/// A snapshot read back: the log position it holds and its export.
pub struct Snapshot {
    pub position: u64,
    pub export: Vec<u8>,
}

impl Snapshot {
    /// Makes the database at `path` this snapshot: whatever file was there is replaced by
    /// the export imported into an empty one (its `log_applied` is the snapshot's position).
    /// Blocking: the import writes through a Writer of its own.
    pub fn load_into(&self, path: &Path) -> Result<(), DumpError> {
        let loading = path.with_extension("snapshot");
        std::fs::write(&loading, &self.export)?;
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_file(&loading);
                return Err(e.into());
            }
            _ => {}
        }
        let imported = crate::dump::import(&loading, path);
        let _ = std::fs::remove_file(&loading);
        imported.map(|_| ())
    }
}

fn slot(shard: u32, n: u8) -> String {
    format!("shard-{shard}-{n}")
}

impl Snapshots {
    /// Opens the bucket, making it (`replicas` copies) if there is none.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Snapshots, Error> {
        let objects = match js.get_object_store(BUCKET).await {
            Ok(objects) => objects,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: BUCKET.into(),
                    num_replicas: replicas.max(1),
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(unavailable)?,
        };
        Ok(Snapshots { objects })
    }

    /// The position of each of `shard`'s two slots (`None`: empty).
    async fn slots(&self, shard: u32) -> Result<[Option<u64>; 2], Error> {
        let mut positions = [None, None];
        for (n, position) in positions.iter_mut().enumerate() {
            let info = tokio::time::timeout(INFO_TIMEOUT, self.objects.info(slot(shard, n as u8)))
                .await
                .map_err(unavailable)?;
            match info {
                Ok(info) if !info.deleted => {
                    *position = info.metadata.get(POSITION).and_then(|p| p.parse().ok());
                }
                Ok(_) => {}
                Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(positions)
    }

    /// Writes a snapshot of `store` (the copy of `log`'s shard) over the older slot, then
    /// purges the log below the older snapshot kept. Answers the snapshot's position, or
    /// `None` when the newest snapshot already holds it (nothing was written since).
    pub async fn take(&self, store: &parlor_storage::Store, log: &ShardLog) -> Result<Option<u64>, Error> {
        let shard = log.shard();
        let slots = self.slots(shard).await?;
        let newest = slots.iter().flatten().copied().max();
        let store = store.clone();
        // The export only when the copy moved past the newest snapshot.
        let exported = tokio::task::spawn_blocking(move || -> Result<Option<(u64, Vec<u8>)>, String> {
            let snap = store.snapshot().map_err(|e| e.to_string())?;
            let position = snap.log_applied().map_err(|e| e.to_string())?;
            if newest.is_some_and(|n| n >= position) {
                return Ok(None);
            }
            let mut export = Vec::new();
            Export::new(snap, None)
                .and_then(|e| e.write_to(&mut export))
                .map_err(|e| e.to_string())?;
            Ok(Some((position, export)))
        })
        .await
        .map_err(unavailable)?
        .map_err(Error::Unavailable)?;
        let Some((position, export)) = exported else {
            return Ok(None);
        };
        // The empty or older slot.
        let n = match slots {
            [None, _] => 0,
            [_, None] => 1,
            [Some(a), Some(b)] => u8::from(b < a),
        };
        let meta = object_store::ObjectMetadata {
            name: slot(shard, n),
            metadata: HashMap::from([(POSITION.to_owned(), position.to_string())]),
            ..Default::default()
        };
        tokio::time::timeout(TRANSFER_TIMEOUT, self.objects.put(meta, &mut export.as_slice()))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        // The other slot is older than this snapshot (checked above).
        if let Some(older) = slots[usize::from(1 - n)] {
            log.purge_below(older + 1).await?;
        }
        tracing::info!(shard, position, bytes = export.len(), "snapshot written");
        Ok(Some(position))
    }

    /// The newest snapshot of `shard`, if any.
    pub async fn latest(&self, shard: u32) -> Result<Option<Snapshot>, Error> {
        let slots = self.slots(shard).await?;
        let newest = (0..2u8)
            .filter_map(|n| slots[usize::from(n)].map(|p| (p, n)))
            .max();
        let Some((position, n)) = newest else {
            return Ok(None);
        };
        let read = async {
            let mut object = self.objects.get(slot(shard, n)).await.map_err(unavailable)?;
            let mut export = Vec::new();
            object.read_to_end(&mut export).await.map_err(unavailable)?;
            Ok::<_, Error>(export)
        };
        let export = tokio::time::timeout(TRANSFER_TIMEOUT, read)
            .await
            .map_err(unavailable)??;
        Ok(Some(Snapshot { position, export }))
    }
}
