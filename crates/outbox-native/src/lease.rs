//! No request leaves through a lease that has run out: the transport's
//! enforcement of [`OutgoingRequest::leave_by`].
//!
//! # Why
//!
//! Instances that share a PostgreSQL queue lease entries for a while
//! (`leaseMs`); once a lease has run out, another instance may take the
//! entry and send it, and the entries behind it. Core fences each send
//! ([`outbox_core::queue::Fence`]): right before a send it re-reads the
//! leases and sends only those that still stand for longer than a send.
//! That read and the request leaving the process are still apart by a few
//! awaits (the fence's commit, the engine's loop, the HTTP client's pool);
//! a process paused in between (SIGSTOP, a frozen VM) for longer than its
//! lease had left used to wake up and send once through a lease that had
//! passed on, after the new holder had delivered the entries behind it:
//! a copy out of lane order.
//!
//! # What
//!
//! Core decides the time each request of a fenced flush must leave by (the
//! lease's end less [`LEASE_MARGIN_MS`]); this module only enforces it,
//! with the wall clock the host's engine stamps leases with
//! ([`SystemClock`]; leases are never on the database's clock). Three
//! checks, all "is the clock at or past `leave_by`":
//!
//! 1. **Before the request starts** ([`check_start`]): one that is already
//!    too late is not started at all.
//! 2. **On every poll of the request** ([`LeaseGuard`]): the guard checks
//!    the clock *before* it polls the request, and once the time has come
//!    it drops the request without polling it again. A timer wakes it at
//!    `leave_by`, so a request stalled on the network (nothing polls it)
//!    is dropped then too. A paused process resumes by polling its
//!    futures, so the first poll after the pause sees the clock past the
//!    lease and drops the request before more of it is written.
//! 3. **On every chunk of the body** ([`GuardedBody`]): the HTTP client
//!    writes the request in a connection task of its own, which the
//!    runtime may poll before the guard after a pause. It takes the body
//!    from this type a chunk at a time, and each chunk checks the clock:
//!    past `leave_by` the body fails, the client abandons the request
//!    before the chunk (and with a small body, the head buffered with it)
//!    is written, and closes the connection. A server never receives the
//!    whole request, so never acts on it.
//!
//! A request cut or not started is reported as getting no answer
//! ([`FailureKind::Timeout`], [`LeaseEnded`] as its message): core treats it
//! as any unanswered attempt, and its settlement is skipped as stale if the
//! lease has meanwhile passed on; whoever holds the lane sends it.
//!
//! # What remains
//!
//! A check and the write that follows it are one poll apart: a process
//! paused *inside* the single poll that writes the request's last bytes —
//! after the check, before the `write` system call — and resumed after its
//! lease passed on still writes them. That window is the length of one
//! poll (microseconds), where it was a database round trip, the engine's
//! loop and the client's queueing before (milliseconds, on a loaded
//! machine tens of them). Bytes written before the deadline are in the
//! kernel's hands and reach the server while the process is paused; the
//! margin covers their way there and the skew between the instances'
//! clocks (see [`LEASE_MARGIN_MS`]). A request without a body (none that
//! Outbox queues) has only checks 1 and 2.
//!
//! [`LEASE_MARGIN_MS`]: outbox_core::queue::LEASE_MARGIN_MS
//! [`OutgoingRequest::leave_by`]: outbox_core::request::OutgoingRequest::leave_by

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use outbox_core::classify::{FailureKind, Response, TransportError};
use outbox_core::clock::{Clock, Millis};

use crate::clock::SystemClock;

/// The body is handed to the HTTP client in chunks of this size, each
/// checked against the deadline (a chunk is what one write may take).
pub const CHUNK: usize = 16 * 1024;

/// The longest the guard's timer sleeps at once: a wall clock set back
/// makes it look again rather than overflow.
const LONGEST_SLEEP: Duration = Duration::from_secs(3_600);

/// Why a request was not sent, or not sent whole: its lease (less the
/// margin) ended first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaseEnded {
    /// Too late before it started: nothing of it was written.
    #[error("its lease ends (less the margin) at {leave_by} ms: not sent (now {now} ms)")]
    BeforeStart {
        /// The time it had to leave by.
        leave_by: Millis,
        /// The time it was about to start.
        now: Millis,
    },
    /// The time came while it was under way: dropped, not polled again.
    #[error("its lease ended (less the margin) at {leave_by} ms while it was under way: cut")]
    MidSend {
        /// The time it had to leave by.
        leave_by: Millis,
    },
}

impl From<LeaseEnded> for TransportError {
    fn from(e: LeaseEnded) -> Self {
        TransportError {
            kind: FailureKind::Timeout,
            message: e.to_string(),
        }
    }
}

/// The wall clock the host stamps leases with.
fn wall_now() -> Millis {
    SystemClock.now()
}

/// Check 1: whether a request that must leave by `leave_by` may start now.
pub fn check_start(leave_by: Millis) -> Result<(), LeaseEnded> {
    let now = wall_now();
    if now >= leave_by {
        Err(LeaseEnded::BeforeStart { leave_by, now })
    } else {
        Ok(())
    }
}

/// Check 2: a request's future that must be answered by `leave_by`, or is
/// dropped (see the [module](self)).
pub struct LeaseGuard<F> {
    request: Option<Pin<Box<F>>>,
    leave_by: Millis,
    timer: Pin<Box<tokio::time::Sleep>>,
    now: fn() -> Millis,
}

impl<F> LeaseGuard<F>
where
    F: Future<Output = Result<Response, TransportError>>,
{
    /// Guards `request` with the deadline `leave_by` on the wall clock.
    pub fn new(request: F, leave_by: Millis) -> Self {
        Self::with_clock(request, leave_by, wall_now)
    }

    fn with_clock(request: F, leave_by: Millis, now: fn() -> Millis) -> Self {
        Self {
            request: Some(Box::pin(request)),
            leave_by,
            timer: Box::pin(tokio::time::sleep(until(leave_by, now()))),
            now,
        }
    }
}

/// How long to sleep from `now` to `leave_by` (at most [`LONGEST_SLEEP`]).
fn until(leave_by: Millis, now: Millis) -> Duration {
    Duration::from_millis(leave_by.saturating_sub(now)).min(LONGEST_SLEEP)
}

impl<F> Future for LeaseGuard<F>
where
    F: Future<Output = Result<Response, TransportError>>,
{
    type Output = Result<Response, TransportError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            // The clock first, before the request may write anything.
            let now = (this.now)();
            if now >= this.leave_by {
                // Dropped here: the client abandons it and closes its
                // connection.
                this.request = None;
                return Poll::Ready(Err(LeaseEnded::MidSend {
                    leave_by: this.leave_by,
                }
                .into()));
            }
            let Some(request) = this.request.as_mut() else {
                // Polled after it finished: a caller's bug; answer as cut.
                return Poll::Ready(Err(LeaseEnded::MidSend {
                    leave_by: this.leave_by,
                }
                .into()));
            };
            if let Poll::Ready(answer) = request.as_mut().poll(cx) {
                this.request = None;
                return Poll::Ready(answer);
            }
            // Wake at the deadline; a timer that has already fired (the
            // wall clock behind the timer's) is set again from the clock.
            match this.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let deadline = tokio::time::Instant::now() + until(this.leave_by, (this.now)());
                    this.timer.as_mut().reset(deadline);
                    // The clock may have reached the deadline meanwhile:
                    // look again (without polling the request first).
                    if (this.now)() >= this.leave_by {
                        continue;
                    }
                    // Registered with the timer just reset.
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// Check 3: a request body that fails, rather than give the client another
/// chunk, once its deadline has come (see the [module](self)). Its exact
/// length is known, so the client sends `content-length` as for a plain
/// body.
#[derive(Debug)]
pub struct GuardedBody {
    rest: Bytes,
    leave_by: Millis,
    now: fn() -> Millis,
}

impl GuardedBody {
    /// `body`, to be written before `leave_by` on the wall clock or not at
    /// all.
    pub fn new(body: Bytes, leave_by: Millis) -> Self {
        Self::with_clock(body, leave_by, wall_now)
    }

    fn with_clock(body: Bytes, leave_by: Millis, now: fn() -> Millis) -> Self {
        Self {
            rest: body,
            leave_by,
            now,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = LeaseEnded;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, LeaseEnded>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return Poll::Ready(None);
        }
        if (this.now)() >= this.leave_by {
            this.rest = Bytes::new();
            return Poll::Ready(Some(Err(LeaseEnded::MidSend {
                leave_by: this.leave_by,
            })));
        }
        let chunk = this.rest.split_to(this.rest.len().min(CHUNK));
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::Waker;

    static NOW: AtomicU64 = AtomicU64::new(0);

    fn fake_now() -> Millis {
        NOW.load(Ordering::SeqCst)
    }

    fn frame(body: &mut GuardedBody) -> Option<Result<Bytes, LeaseEnded>> {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(body).poll_frame(&mut cx) {
            Poll::Ready(f) => f.map(|f| f.map(|f| f.into_data().unwrap_or_default())),
            Poll::Pending => panic!("a guarded body is never pending"),
        }
    }

    #[test]
    fn a_body_gives_no_chunk_once_its_deadline_has_come() {
        NOW.store(1_000, Ordering::SeqCst);
        let whole = Bytes::from(vec![7u8; CHUNK * 2 + 10]);
        let mut body = GuardedBody::with_clock(whole.clone(), 2_000, fake_now);
        assert_eq!(body.size_hint().exact(), Some(whole.len() as u64));
        let first = frame(&mut body).unwrap().unwrap();
        assert_eq!(first.len(), CHUNK, "a chunk at a time");
        // The process is paused here, past its lease.
        NOW.store(2_000, Ordering::SeqCst);
        assert_eq!(
            frame(&mut body),
            Some(Err(LeaseEnded::MidSend { leave_by: 2_000 })),
            "no further chunk at the deadline"
        );
        assert!(body.is_end_stream(), "and none after");
        assert_eq!(frame(&mut body), None);
    }

    #[test]
    fn a_body_in_time_is_given_whole() {
        let whole = Bytes::from((0..CHUNK * 3 + 1).map(|i| i as u8).collect::<Vec<_>>());
        let mut body = GuardedBody::with_clock(whole.clone(), Millis::MAX, wall_now);
        let mut got = Vec::new();
        while let Some(chunk) = frame(&mut body) {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, whole);
    }

    #[test]
    fn a_guard_polls_no_request_once_the_deadline_has_come() {
        use std::cell::Cell;
        use std::rc::Rc;
        static GUARD_NOW: AtomicU64 = AtomicU64::new(0);
        fn now() -> Millis {
            GUARD_NOW.load(Ordering::SeqCst)
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            GUARD_NOW.store(5_000, Ordering::SeqCst);
            let polls = Rc::new(Cell::new(0u32));
            let counted = polls.clone();
            let request = std::future::poll_fn(move |_| {
                counted.set(counted.get() + 1);
                Poll::<Result<Response, TransportError>>::Pending
            });
            let mut guard = LeaseGuard::with_clock(request, 6_000, now);
            let mut cx = Context::from_waker(Waker::noop());
            assert!(Pin::new(&mut guard).poll(&mut cx).is_pending());
            assert_eq!(polls.get(), 1, "in time, the request is polled");
            // Paused past the deadline; the first poll after it:
            GUARD_NOW.store(6_000, Ordering::SeqCst);
            let Poll::Ready(Err(e)) = Pin::new(&mut guard).poll(&mut cx) else {
                panic!("the request is dropped at its deadline");
            };
            assert_eq!(polls.get(), 1, "and not polled again");
            assert_eq!(e.kind, FailureKind::Timeout);
            assert!(e.message.contains("cut"), "{}", e.message);
        });
    }
}
