//! [`ConvKey`]: the key of a conversation's timeline, a direct pair or a group.
//!
//! Its text form is what the database keys and the wire carry: `d:<lo>:<hi>` for the direct
//! conversation of two users (the smaller id first, so both sides name the same timeline)
//! and `g:<id>` for a group. Only that canonical form parses: ids are decimal without sign
//! or leading zero, and a direct pair is in order.

use std::fmt;
use std::str::FromStr;

/// The conversation a timeline belongs to; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvKey {
    /// Two users; `lo <= hi` (build it with [`ConvKey::direct`]).
    Direct { lo: u64, hi: u64 },
    /// A group, by id.
    Group(u64),
}

/// A text that is not a conversation key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a conversation key")]
pub struct BadConvKey(pub String);

impl ConvKey {
    /// The direct conversation of `a` and `b`: the same whichever side is named first.
    pub fn direct(a: u64, b: u64) -> Self {
        ConvKey::Direct {
            lo: a.min(b),
            hi: a.max(b),
        }
    }

    /// The key written as `text`, or `None` when it is not one in canonical form.
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(rest) = text.strip_prefix("d:") {
            let (lo, hi) = rest.split_once(':')?;
            let (lo, hi) = (number(lo)?, number(hi)?);
            return (lo <= hi).then_some(ConvKey::Direct { lo, hi });
        }
        number(text.strip_prefix("g:")?).map(ConvKey::Group)
    }

    /// The two users of a direct conversation, smaller id first.
    pub fn pair(&self) -> Option<(u64, u64)> {
        match *self {
            ConvKey::Direct { lo, hi } => Some((lo, hi)),
            ConvKey::Group(_) => None,
        }
    }

    /// The other user of a direct conversation `user` takes part in.
    pub fn peer_of(&self, user: u64) -> Option<u64> {
        match *self {
            ConvKey::Direct { lo, hi } if user == lo => Some(hi),
            ConvKey::Direct { lo, hi } if user == hi => Some(lo),
            _ => None,
        }
    }

    /// The group of a group conversation.
    pub fn group_id(&self) -> Option<u64> {
        match *self {
            ConvKey::Group(id) => Some(id),
            ConvKey::Direct { .. } => None,
        }
    }
}

/// A decimal id as keys write it: digits only, no leading zero.
fn number(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

impl fmt::Display for ConvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvKey::Direct { lo, hi } => write!(f, "d:{lo}:{hi}"),
            ConvKey::Group(id) => write!(f, "g:{id}"),
        }
    }
}

impl FromStr for ConvKey {
    type Err = BadConvKey;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ConvKey::parse(text).ok_or_else(|| BadConvKey(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::ConvKey;

    #[test]
    fn direct_keys_order_the_pair() {
        assert_eq!(ConvKey::direct(7, 3), ConvKey::Direct { lo: 3, hi: 7 });
        assert_eq!(ConvKey::direct(3, 7), ConvKey::direct(7, 3));
        assert_eq!(ConvKey::direct(7, 3).to_string(), "d:3:7");
        assert_eq!(ConvKey::direct(5, 5).to_string(), "d:5:5");
        assert_eq!(ConvKey::Group(42).to_string(), "g:42");
    }

    #[test]
    fn text_round_trips() {
        let keys = [
            ConvKey::direct(1, 2),
            ConvKey::direct(0, u64::MAX),
            ConvKey::direct(9, 9),
            ConvKey::Group(0),
            ConvKey::Group(1),
            ConvKey::Group(u64::MAX),
        ];
        for key in keys {
            let text = key.to_string();
            assert_eq!(ConvKey::parse(&text), Some(key), "{text}");
            assert_eq!(text.parse::<ConvKey>(), Ok(key), "{text}");
            assert_eq!(ConvKey::parse(&text).unwrap().to_string(), text);
        }
        assert_eq!(ConvKey::parse("d:1:2"), Some(ConvKey::Direct { lo: 1, hi: 2 }));
        assert_eq!(ConvKey::parse("g:10"), Some(ConvKey::Group(10)));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let bad = [
            "",
            "d:",
            "d:1",
            "d:1:",
            "d::2",
            "d:2:1",
            "d:1:2:3",
            "d:01:2",
            "d:1:+2",
            "d:-1:2",
            "d: 1:2",
            "d:1:2 ",
            "D:1:2",
            "g:",
            "g:x",
            "g:01",
            "g:+1",
            "g:-1",
            "g:1:2",
            "g:1.5",
            "G:1",
            "x:1",
            "1:2",
            "g:18446744073709551616",
            "d:1:18446744073709551616",
        ];
        for text in bad {
            assert_eq!(ConvKey::parse(text), None, "{text:?}");
            let err = text.parse::<ConvKey>().unwrap_err();
            assert_eq!(err.0, text);
        }
    }

    #[test]
    fn accessors_answer_by_kind() {
        let d = ConvKey::direct(4, 2);
        assert_eq!(d.pair(), Some((2, 4)));
        assert_eq!(d.peer_of(2), Some(4));
        assert_eq!(d.peer_of(4), Some(2));
        assert_eq!(d.peer_of(3), None);
        assert_eq!(d.group_id(), None);
        assert_eq!(ConvKey::direct(6, 6).peer_of(6), Some(6));
        let g = ConvKey::Group(8);
        assert_eq!(g.group_id(), Some(8));
        assert_eq!(g.pair(), None);
        assert_eq!(g.peer_of(8), None);
    }
}
