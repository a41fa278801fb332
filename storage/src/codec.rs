//! The one codec for stored values: a version byte followed by the record's bincode (2.x,
//! standard configuration, serde). Keys are never encoded here: they are native redb tuples.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// A value stored in redb. `VERSION` is written in front of every encoding so that a later
/// release can read older records and migrate them.
pub trait Record: Serialize + DeserializeOwned {
    /// Current encoding version of this record.
    const VERSION: u8;
}

/// Encodes `value` as `[VERSION][bincode]`.
pub fn encode<T: Record>(value: &T) -> Vec<u8> {
    encode_versioned(T::VERSION, value)
}

/// Decodes a value written by [`encode`], refusing unknown versions.
pub fn decode<T: Record>(bytes: &[u8]) -> Result<T> {
    decode_versioned(T::VERSION, bytes)
}

/// `[version][bincode of value]`: the layout of every record, and of a batch of effects.
pub(crate) fn encode_versioned<T: Serialize + ?Sized>(version: u8, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(version);
    // Encoding into a Vec cannot fail for these plain data records.
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .expect("bincode encoding into a Vec");
    out
}

/// Reads what [`encode_versioned`] wrote with `version`, refusing any other version and
/// trailing bytes.
pub(crate) fn decode_versioned<T: DeserializeOwned>(version: u8, bytes: &[u8]) -> Result<T> {
    let (&found, body) = bytes
        .split_first()
        .ok_or_else(|| Error::Codec("empty value".into()))?;
    if found != version {
        return Err(Error::Codec(format!(
            "unknown record version {found} (expected {version})"
        )));
    }
    let (value, used) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| Error::Codec(e.to_string()))?;
    if used != body.len() {
        return Err(Error::Codec(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ChatType, MessageRecord};

    fn sample() -> MessageRecord {
        MessageRecord {
            id: "m-1".into(),
            seq: 7,
            conv: "d:1:2".into(),
            chat_type: ChatType::Single,
            from_id: 1,
            from_name: "alice".into(),
            from_avatar: String::new(),
            to_id: 2,
            to_name: "bob".into(),
            to_avatar: String::new(),
            kind: "text".into(),
            data: "\"hi\"".into(),
            options: "{}".into(),
            cid: Some("c1".into()),
            create_time: 1,
            revoked: false,
            action: None,
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(decode::<MessageRecord>(&encode(&m)).unwrap(), m);
    }

    #[test]
    fn refuses_unknown_version_and_garbage() {
        let mut bytes = encode(&sample());
        bytes[0] = 99;
        assert!(matches!(decode::<MessageRecord>(&bytes), Err(Error::Codec(_))));
        assert!(decode::<MessageRecord>(&[]).is_err());
        let mut trailing = encode(&sample());
        trailing.push(0);
        assert!(decode::<MessageRecord>(&trailing).is_err());
        let truncated = &encode(&sample())[..5];
        assert!(decode::<MessageRecord>(truncated).is_err());
    }
}
