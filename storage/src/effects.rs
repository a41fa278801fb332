//! Row effects: what a Writer batch changed, table by table, as raw redb bytes.
//!
//! With an [`EffectLog`] in its [`WriterConfig`](crate::WriterConfig), the Writer records
//! every insert and removal a batch makes through [`Tx`](crate::Tx) (the table
//! accessors of `Tx` are the only way to change a row, so nothing escapes the record) and
//! hands the batch's effects to the log before the commit: a log that refuses them aborts
//! the batch, and its writers are answered with the log's error. A copy of the database
//! that applies the same effects in the same order
//! ([`Tx::apply_logged`](crate::Tx::apply_logged)) holds the same rows: applying runs no
//! business logic (no clock, ids or rules), so it
//! cannot diverge. This is what a replicated log carries (cluster mode); a single node
//! records nothing.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Result;

/// One row changed: the table's id (fixed per table, see `Tx`), the key in redb's own
/// bytes, and the new value in redb's bytes, or `None` when the row was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    pub table: u16,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// The version byte in front of an encoded batch of effects.
const BATCH_VERSION: u8 = 1;

/// Encodes a batch's effects as one record: a version byte and the effects' bincode.
pub fn encode_batch(effects: &[Effect]) -> Vec<u8> {
    crate::codec::encode_versioned(BATCH_VERSION, effects)
}

/// Decodes a record written by [`encode_batch`].
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Effect>> {
    crate::codec::decode_versioned(BATCH_VERSION, bytes)
}

/// Where the Writer hands each batch's effects before it commits; see the module doc. It
/// runs on the Writer thread, once per batch that changed something, and answers the
/// position the batch took in the log, which the Writer writes as `META`'s
/// [`LOG_APPLIED`](crate::tables::LOG_APPLIED) in the batch's transaction; an error aborts
/// the batch. A batch the log accepted whose commit then
/// fails is in the log and not in the file: the log is the truth, and such a file is
/// brought back to it by replaying the log.
#[derive(Clone)]
pub struct EffectLog(Arc<Append>);

/// What an [`EffectLog`] does with a batch.
type Append = dyn Fn(&[Effect]) -> Result<u64> + Send + Sync;

impl EffectLog {
    pub fn new(log: impl Fn(&[Effect]) -> Result<u64> + Send + Sync + 'static) -> EffectLog {
        EffectLog(Arc::new(log))
    }

    pub(crate) fn append(&self, effects: &[Effect]) -> Result<u64> {
        (self.0)(effects)
    }
}

impl fmt::Debug for EffectLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EffectLog")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_and_damage_is_refused() {
        let effects = vec![
            Effect {
                table: 6,
                key: vec![0, 255, 7],
                value: Some(vec![1; 300]),
            },
            Effect {
                table: 9,
                key: b"k".to_vec(),
                value: None,
            },
        ];
        let bytes = encode_batch(&effects);
        assert_eq!(decode_batch(&bytes).unwrap(), effects);
        assert!(decode_batch(&[]).is_err());
        assert!(decode_batch(&[2]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_batch(&longer).is_err());
        assert!(decode_batch(&bytes[..bytes.len() - 1]).is_err());
    }
}
