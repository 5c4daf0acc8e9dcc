//! Two tiny combinators (the `futures` crate's versions bring a pool of
//! machinery the service worker's size budget cannot afford): wait for
//! every future of a small batch, or for the first of two.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Resolves when every future has, with their outputs in order. Each wake
/// polls the unfinished ones again: meant for small batches (a flush
/// cycle's sends).
pub fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> JoinAll<F> {
    JoinAll {
        slots: futures
            .into_iter()
            .map(|f| Slot::Running(Box::pin(f)))
            .collect(),
    }
}

enum Slot<F: Future> {
    Running(Pin<Box<F>>),
    Done(Option<F::Output>),
}

/// The future of [`join_all`].
pub struct JoinAll<F: Future> {
    slots: Vec<Slot<F>>,
}

impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut pending = false;
        for slot in &mut self.slots {
            if let Slot::Running(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Slot::Done(Some(v)),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        let outputs = self
            .slots
            .iter_mut()
            .filter_map(|s| match s {
                Slot::Done(v) => v.take(),
                Slot::Running(_) => None,
            })
            .collect();
        Poll::Ready(outputs)
    }
}

/// Which of two futures finished first.
#[derive(Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first.
    Left(A),
    /// The second.
    Right(B),
}

/// Resolves with whichever of `a` and `b` finishes first (`a` wins a tie);
/// the other is dropped.
pub async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::run_until_stalled;

    /// Ready after `n` polls, waking itself each time.
    struct After(u32, &'static str);

    impl Future for After {
        type Output = &'static str;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
            if self.0 == 0 {
                Poll::Ready(self.1)
            } else {
                self.0 -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    #[test]
    fn join_all_keeps_order_whatever_finishes_first() {
        let out = run_until_stalled(join_all([After(3, "a"), After(0, "b"), After(1, "c")]));
        assert_eq!(out, Some(vec!["a", "b", "c"]));
        let none: Vec<After> = Vec::new();
        assert_eq!(run_until_stalled(join_all(none)), Some(vec![]));
    }

    #[test]
    fn race_returns_the_first_to_finish() {
        assert_eq!(
            run_until_stalled(race(After(2, "slow"), After(0, "fast"))),
            Some(Either::Right("fast"))
        );
        assert_eq!(
            run_until_stalled(race(After(0, "a"), After(0, "b"))),
            Some(Either::Left("a"))
        );
        // A future that never finishes loses.
        let out = run_until_stalled(race(std::future::pending::<()>(), After(1, "b")));
        assert_eq!(out, Some(Either::Right("b")));
    }
}
