//! The typing notes of one session: which are forwarded and which dropped.
//!
//! Clients send a `typing` frame on every key press; receivers need one every
//! `presence.typing_interval_ms` at most. A `start` to a conversation is forwarded when no
//! `start` to it was forwarded within the interval; a `stop` only after a forwarded `start`,
//! once. A refusal (not a member, blocked) is remembered for the interval and answered
//! again without asking the core, so a client repeating a refused note costs no lookups.
//! Plain data: the session drives it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::protocol::FrameError;

/// Conversations one session remembers notes for; past it, the memory starts over.
const REMEMBERED: usize = 256;

/// A conversation as a typing note names it: `(group?, peer or group id)`.
pub type Target = (bool, u64);

/// What to do with a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ask the core to forward it.
    Forward,
    /// Too soon after the last one, or a `stop` with nothing started: drop it silently.
    Drop,
    /// Refused within the interval: answer with this again.
    Refused(FrameError),
}

#[derive(Debug, Clone)]
struct Note {
    at: Instant,
    open: bool,
    refused: Option<FrameError>,
}

/// The notes of one session.
#[derive(Debug)]
pub struct Notes {
    interval: Duration,
    last: HashMap<Target, Note>,
}

impl Notes {
    pub fn new(interval: Duration) -> Self {
        Notes {
            interval,
            last: HashMap::new(),
        }
    }

    /// Decides about a note to `target` (`stop` or start) at `now`; a `Forward` counts as
    /// forwarded from now on.
    pub fn note(&mut self, target: Target, stop: bool, now: Instant) -> Verdict {
        if self.last.len() >= REMEMBERED && !self.last.contains_key(&target) {
            self.last.clear();
        }
        let recent = |n: &Note| now.saturating_duration_since(n.at) < self.interval;
        match self.last.get_mut(&target) {
            Some(n) if recent(n) && n.refused.is_some() => {
                Verdict::Refused(n.refused.clone().expect("checked"))
            }
            // A refused note is never open.
            Some(n) if stop => {
                if n.open {
                    n.open = false;
                    Verdict::Forward
                } else {
                    Verdict::Drop
                }
            }
            None if stop => Verdict::Drop,
            Some(n) if recent(n) && n.open => Verdict::Drop,
            _ => {
                self.last.insert(
                    target,
                    Note {
                        at: now,
                        open: true,
                        refused: None,
                    },
                );
                Verdict::Forward
            }
        }
    }

    /// The core refused a note to `target`: remembered for the interval.
    pub fn refused(&mut self, target: Target, e: FrameError, now: Instant) {
        self.last.insert(
            target,
            Note {
                at: now,
                open: false,
                refused: Some(e),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: Target = (false, 2);

    #[test]
    fn one_start_per_interval_and_one_stop_per_start() {
        let t = Instant::now();
        let mut n = Notes::new(Duration::from_secs(1));
        assert_eq!(n.note(PEER, true, t), Verdict::Drop, "nothing started");
        assert_eq!(n.note(PEER, false, t), Verdict::Forward);
        let soon = t + Duration::from_millis(300);
        assert_eq!(n.note(PEER, false, soon), Verdict::Drop, "within the interval");
        assert_eq!(
            n.note((true, 2), false, soon),
            Verdict::Forward,
            "another conversation"
        );
        assert_eq!(
            n.note(PEER, true, soon),
            Verdict::Forward,
            "the stop of a forwarded start"
        );
        assert_eq!(n.note(PEER, true, soon), Verdict::Drop, "once");
        assert_eq!(
            n.note(PEER, false, soon),
            Verdict::Forward,
            "a start after a stop"
        );
        let later = soon + Duration::from_millis(1000);
        assert_eq!(
            n.note(PEER, false, later),
            Verdict::Forward,
            "the interval passed"
        );
    }

    #[test]
    fn a_refusal_is_answered_again_for_the_interval() {
        let t = Instant::now();
        let mut n = Notes::new(Duration::from_secs(1));
        assert_eq!(n.note(PEER, false, t), Verdict::Forward);
        let e = FrameError {
            cid: None,
            code: "forbidden",
            msg: "blocked".into(),
        };
        n.refused(PEER, e.clone(), t);
        let soon = t + Duration::from_millis(500);
        assert_eq!(n.note(PEER, false, soon), Verdict::Refused(e.clone()));
        assert_eq!(n.note(PEER, true, soon), Verdict::Refused(e));
        let later = t + Duration::from_millis(1500);
        assert_eq!(n.note(PEER, true, later), Verdict::Drop, "nothing was started");
        assert_eq!(n.note(PEER, false, later), Verdict::Forward, "asked again");
    }

    #[test]
    fn the_memory_is_bounded() {
        let t = Instant::now();
        let mut n = Notes::new(Duration::from_secs(1));
        for id in 0..(REMEMBERED as u64 * 3) {
            assert_eq!(n.note((false, id), false, t), Verdict::Forward);
        }
        assert!(n.last.len() <= REMEMBERED);
    }
}
