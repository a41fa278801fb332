//! [`Inbox`]: how an actor learns of its writes' commits, one wake-up per batch.
//!
//! The Writer calls each write's completion on its own thread, in commit order. Sending the
//! actor one message per completion wakes the actor's thread once per write, and a batch
//! of twenty writes costs twenty wake-ups and twenty mailbox envelopes. Instead the
//! completions are queued here and the actor is sent a single "drain" message when the
//! queue goes from empty to not empty; the actor then takes everything queued at once, in
//! commit order.
//!
//! No completion is stranded: an item pushed onto a non-empty queue is behind one whose
//! push sent a drain message, and that message's handler takes the queue as it is then.

use std::sync::Mutex;

/// Completions waiting for their actor; see the module doc.
#[derive(Debug)]
pub struct Inbox<T> {
    items: Mutex<Vec<T>>,
}

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Inbox {
            items: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Inbox<T> {
    /// Queues `item`; returns true when the queue was empty, in which case the caller sends
    /// the actor its drain message.
    pub fn push(&self, item: T) -> bool {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.push(item);
        items.len() == 1
    }

    /// Everything queued, oldest first, leaving the queue empty.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::Inbox;

    #[test]
    fn asks_for_a_drain_only_when_the_queue_was_empty() {
        let inbox = Inbox::default();
        assert!(inbox.push(1));
        assert!(!inbox.push(2));
        assert!(!inbox.push(3));
        assert_eq!(inbox.take(), vec![1, 2, 3]);
        assert!(inbox.take().is_empty());
        assert!(inbox.push(4));
        assert_eq!(inbox.take(), vec![4]);
    }

    #[test]
    fn keeps_order_across_threads() {
        let inbox = std::sync::Arc::new(Inbox::default());
        let writer = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                let mut drains = 0;
                for i in 0..10_000u32 {
                    if inbox.push(i) {
                        drains += 1;
                    }
                }
                drains
            })
        };
        let mut seen = Vec::new();
        while seen.len() < 10_000 {
            seen.extend(inbox.take());
        }
        let drains = writer.join().expect("the pushing thread ends");
        assert!(drains >= 1);
        assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
    }
}
