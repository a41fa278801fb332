//! Commit, then answer: how an actor hands a write to the Writer and acts on its commit.
//!
//! Two shapes, one error mapping ([`outcome`]): a refused submission (the write queue is
//! full) is the submission's error (`overloaded`), a storage failure is mapped by
//! `SendError::from`, a refusal decided inside the transaction is passed on, and a Writer
//! that dropped the write without an answer is `overloaded`.
//!
//! - [`Commits`]: for the hot path (sends). The Writer thread queues each commit in the
//!   actor's [`Inbox`] in commit order and wakes the actor with one [`DrainCommitted`] per
//!   run of commits; the actor [`take`](Commits::take)s them and, for each, acts (fans out)
//!   and then answers the requester ([`Committed::answer`]).
//! - [`submit`]: for the rarer writes an actor awaits in its own context (revokes, group
//!   changes, group creation): the future of the commit's outcome.

use std::future::Future;
use std::sync::Arc;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use parlor_storage::{Tx, Writer};
use tokio::sync::oneshot;

use crate::inbox::Inbox;
use crate::SendError;

/// What a write inside the Writer's transaction gives: a storage failure, or the write's
/// own answer (a refusal writes nothing).
pub type Written<T> = parlor_storage::Result<Result<T, SendError>>;

/// The outcome of a write as the requester sees it; see the module doc.
pub fn outcome<T>(res: Result<Written<T>, oneshot::error::RecvError>) -> Result<T, SendError> {
    match res {
        Ok(written) => written.map_err(SendError::from).and_then(|r| r),
        Err(_) => Err(SendError::Overloaded),
    }
}

/// Hands `write` to the Writer; the future answers after its commit.
pub fn submit<T, W>(
    writer: &Writer,
    write: W,
) -> Result<impl Future<Output = Result<T, SendError>>, SendError>
where
    T: Send + 'static,
    W: FnOnce(&Tx<'_>) -> Written<T> + Send + 'static,
{
    let rx = writer.submit(write)?;
    Ok(async move { outcome(rx.await) })
}

/// Writer → actor: commits wait in the actor's [`Commits`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainCommitted;

/// One commit waiting for its actor: what the actor kept from the request (`note`), what
/// the write gave, and who waits for the answer.
pub struct Committed<N, T, R> {
    pub note: N,
    pub result: Result<T, SendError>,
    reply: oneshot::Sender<Result<R, SendError>>,
}

impl<N, T, R> Committed<N, T, R> {
    /// Answers the requester: a refusal as it is, a commit with what `act` makes of it
    /// (`act` runs first, so whatever it pushes goes out before the answer).
    pub fn answer(self, act: impl FnOnce(N, T) -> R) {
        let Committed { note, result, reply } = self;
        let answer = result.map(|written| act(note, written));
        // A requester that stopped waiting has nothing to be told.
        let _ = reply.send(answer);
    }
}

/// Commits of one actor's writes waiting for the actor, in commit order; see the module doc.
pub struct Commits<N, T, R> {
    inbox: Arc<Inbox<Committed<N, T, R>>>,
}

impl<N, T, R> Default for Commits<N, T, R> {
    fn default() -> Self {
        Commits {
            inbox: Arc::default(),
        }
    }
}

impl<N, T, R> Commits<N, T, R>
where
    N: Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    /// Hands `write` to the Writer. After its commit, on the Writer thread, the result is
    /// queued with `note` and `actor` is sent [`DrainCommitted`] when the queue was empty.
    /// Returns the future of the requester's answer, or the refusal of the submission.
    pub fn submit<A, W>(
        &self,
        writer: &Writer,
        actor: Addr<A>,
        note: N,
        write: W,
    ) -> Result<impl Future<Output = Result<R, SendError>>, SendError>
    where
        A: Actor + Handler<DrainCommitted>,
        A::Context: ToEnvelope<A, DrainCommitted>,
        W: FnOnce(&Tx<'_>) -> Written<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let inbox = self.inbox.clone();
        writer.submit_then(write, move |res| {
            let result = outcome(Ok(res));
            if inbox.push(Committed { note, result, reply }) {
                actor.do_send(DrainCommitted);
            }
        })?;
        Ok(async move { answer.await.unwrap_or(Err(SendError::Overloaded)) })
    }

    /// Everything committed since the last call, in commit order.
    pub fn take(&self) -> Vec<Committed<N, T, R>> {
        self.inbox.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_errors_once() {
        assert_eq!(outcome::<u8>(Ok(Ok(Ok(7)))), Ok(7));
        assert_eq!(
            outcome::<u8>(Ok(Ok(Err(SendError::Forbidden("no".into()))))),
            Err(SendError::Forbidden("no".into()))
        );
        assert_eq!(
            outcome::<u8>(Ok(Err(parlor_storage::Error::Unavailable("write queue is full")))),
            Err(SendError::Overloaded)
        );
        assert_eq!(
            outcome::<u8>(Ok(Err(parlor_storage::Error::NotFound("x".into())))),
            Err(SendError::NotFound("x".into()))
        );
        let (tx, rx) = oneshot::channel::<Written<u8>>();
        drop(tx);
        let dropped = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(rx);
        assert_eq!(outcome(dropped), Err(SendError::Overloaded));
    }

    #[test]
    fn an_answer_follows_what_the_actor_did() {
        let (reply, mut answer) = oneshot::channel();
        let mut log = Vec::new();
        let c = Committed {
            note: "n",
            result: Ok(2),
            reply,
        };
        c.answer(|note, t| {
            log.push(format!("{note}{t}"));
            t * 10
        });
        assert_eq!(log, ["n2"]);
        assert_eq!(answer.try_recv().unwrap(), Ok(20));

        let (reply, mut answer) = oneshot::channel::<Result<u8, SendError>>();
        let refused = Committed {
            note: (),
            result: Err(SendError::Overloaded),
            reply,
        };
        refused.answer(|_, _: u8| unreachable!("a refusal is not acted on"));
        assert_eq!(answer.try_recv().unwrap(), Err(SendError::Overloaded));
    }
}
