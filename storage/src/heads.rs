//! The heads of the conversations the Writer wrote lately: the last seq of each timeline,
//! kept in memory so that stamping a message's seq costs a hash lookup instead of a seek to
//! the end of the timeline in `messages`.
//!
//! A transaction notes the heads it reads or moves in a map of its own ([`NewHeads`]); the
//! Writer merges that map into [`Heads`] only after the transaction committed, so an aborted
//! or failed batch leaves nothing behind (a head it moved would stamp the next message one
//! past a seq that does not exist). Messages are never removed, so a committed head stays
//! true until a later commit moves it; rows applied from another Writer's log are not seen
//! here, so the Writer forgets every head then. At most [`CAPACITY`] conversations are held;
//! past that the map starts again from empty.

use std::collections::HashMap;

/// Most conversations whose heads are held.
pub(crate) const CAPACITY: usize = 100_000;

/// Heads by tenant, then conversation.
#[derive(Default)]
pub(crate) struct NewHeads(HashMap<String, HashMap<String, u64>>);

impl NewHeads {
    /// The head noted for `conv`, if any.
    pub(crate) fn get(&self, tenant: &str, conv: &str) -> Option<u64> {
        self.0.get(tenant)?.get(conv).copied()
    }

    /// Notes `head` as `conv`'s.
    pub(crate) fn set(&mut self, tenant: &str, conv: &str, head: u64) {
        let convs = match self.0.get_mut(tenant) {
            Some(convs) => convs,
            None => self.0.entry(tenant.to_owned()).or_default(),
        };
        match convs.get_mut(conv) {
            Some(h) => *h = head,
            None => {
                convs.insert(conv.to_owned(), head);
            }
        }
    }

    fn len(&self) -> usize {
        self.0.values().map(HashMap::len).sum()
    }
}

/// The committed heads the Writer holds; see the module doc.
#[derive(Default)]
pub(crate) struct Heads {
    held: NewHeads,
    len: usize,
}

impl Heads {
    /// The committed head of `conv`, if held.
    pub(crate) fn get(&self, tenant: &str, conv: &str) -> Option<u64> {
        self.held.get(tenant, conv)
    }

    /// Takes in the heads of a transaction that committed (their keys move in, no copy).
    pub(crate) fn merge(&mut self, new: NewHeads) {
        if self.len + new.len() > CAPACITY {
            self.clear();
        }
        for (tenant, convs) in new.0 {
            let held = self.held.0.entry(tenant).or_default();
            for (conv, head) in convs {
                if held.insert(conv, head).is_none() {
                    self.len += 1;
                }
            }
        }
    }

    /// Forgets every head (rows were applied that did not go through [`merge`](Self::merge)).
    pub(crate) fn clear(&mut self) {
        self.held = NewHeads::default();
        self.len = 0;
    }

    /// Conversations held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_heads_are_held_and_the_map_starts_again_past_its_capacity() {
        let mut heads = Heads::default();
        let mut new = NewHeads::default();
        new.set("t", "d:1:2", 3);
        new.set("t", "d:1:2", 4);
        new.set("u", "d:1:2", 1);
        assert_eq!(heads.get("t", "d:1:2"), None, "nothing before the merge");
        heads.merge(new);
        assert_eq!(
            (heads.get("t", "d:1:2"), heads.get("u", "d:1:2")),
            (Some(4), Some(1))
        );
        assert_eq!(heads.len(), 2);

        let mut many = NewHeads::default();
        for i in 0..CAPACITY {
            many.set("t", &format!("g:{i}"), 1);
        }
        heads.merge(many);
        assert_eq!(heads.len(), CAPACITY);
        assert_eq!(heads.get("u", "d:1:2"), None, "the full map started again");
        heads.clear();
        assert_eq!((heads.len(), heads.get("t", "g:0")), (0, None));
    }
}
