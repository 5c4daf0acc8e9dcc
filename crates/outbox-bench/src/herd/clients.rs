//! The three strategies Outbox is measured against, as small state
//! machines faithful to their code (quoted in the comments).

use std::collections::VecDeque;

use outbox_core::clock::{Millis, Random, SplitMix64};

use super::server::{Answer, Server};
use super::{Client, ClientEnd, ClientSetup};

/// Chromium Background Sync: tries per registration.
const SYNC_MAX_ATTEMPTS: u32 = 3;
/// Chromium Background Sync: first retry delay (then ×3).
const SYNC_RETRY_MS: Millis = 5 * 60_000;

fn min_opt(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The writes a client makes: each is the app's `fetch`, which fails while
/// the network is down (the tutorials and Workbox then store the message).
struct Writes {
    times: Vec<Millis>,
    next: usize,
}

impl Writes {
    fn due(&mut self, now: Millis) -> Option<usize> {
        let t = *self.times.get(self.next)?;
        (t <= now).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
    fn next_at(&self) -> Option<Millis> {
        self.times.get(self.next).copied()
    }
}

// ---------------------------------------------------------------------------

enum BatchStep {
    Idle,
    Awaiting {
        k: usize,
        answer: Answer,
        at: Millis,
    },
    Sleeping {
        k: usize,
        until: Millis,
    },
}

/// Tutorial `000` (`sw.ts`): `self.addEventListener('online', processQueue)`;
/// `processQueue` walks the queue by timestamp in batches of 5 and
/// `flushBatch` sends each item with `await fetch(...)`, one after another:
/// `2xx` → delete; `429` → `await delay(Retry-After || 5 s)`, `retryCount++`;
/// `5xx` → `await delay(min(2 ** retryCount * 1000, 30000))`, `retryCount++`;
/// network error → `retryCount++`. Nothing is ever dropped.
///
/// As written, `processQueue` runs only on `online` (which Chromium never
/// fires in a worker), so what fails in a pass would wait for the next
/// network change; the model is generous and starts another pass at once.
pub struct SeedBatch {
    index: usize,
    first: usize,
    writes: Writes,
    online_at: Millis,
    online: bool,
    present: Vec<bool>,
    retry: Vec<u32>,
    pass: VecDeque<usize>,
    step: BatchStep,
}

impl SeedBatch {
    /// A client.
    pub fn new(s: ClientSetup) -> Self {
        let m = s.writes.len();
        Self {
            index: s.index,
            first: s.first_message,
            writes: Writes {
                times: s.writes,
                next: 0,
            },
            online_at: s.online_at,
            online: false,
            present: vec![false; m],
            retry: vec![0; m],
            pass: VecDeque::new(),
            step: BatchStep::Idle,
        }
    }

    /// Sends the pass's next present item; at the end of a pass, starts
    /// another while anything is left (see the type's docs).
    fn next_item(&mut self, now: Millis, server: &mut Server) {
        loop {
            while let Some(k) = self.pass.pop_front() {
                if self.present[k] {
                    let (answer, at) = server.handle(now, self.index, self.first + k);
                    self.step = BatchStep::Awaiting { k, answer, at };
                    return;
                }
            }
            self.pass = (0..self.present.len())
                .filter(|k| self.present[*k])
                .collect();
            if self.pass.is_empty() {
                self.step = BatchStep::Idle;
                return;
            }
        }
    }
}

impl Client for SeedBatch {
    fn wake(&mut self, now: Millis, server: &mut Server) -> Option<Millis> {
        while let Some(k) = self.writes.due(now) {
            // The page's fetch fails offline; the worker stores the body.
            let _ = server.handle(now, self.index, self.first + k);
            self.present[k] = true;
        }
        if !self.online && now >= self.online_at {
            self.online = true;
            if matches!(self.step, BatchStep::Idle) {
                self.pass.clear();
                self.next_item(now, server);
            }
        }
        loop {
            match self.step {
                BatchStep::Idle => break,
                BatchStep::Awaiting { k, answer, at } if at <= now => match answer {
                    Answer::Ok { .. } => {
                        self.present[k] = false;
                        self.next_item(now, server);
                    }
                    Answer::TooMany { retry_after_s, .. } => {
                        self.step = BatchStep::Sleeping {
                            k,
                            until: now + retry_after_s * 1000,
                        };
                    }
                    Answer::Unavailable | Answer::Failed(_) => {
                        let backoff = (1000u64 << self.retry[k].min(20)).min(30_000);
                        self.step = BatchStep::Sleeping {
                            k,
                            until: now + backoff,
                        };
                    }
                    Answer::LostAck | Answer::Offline => {
                        self.retry[k] += 1;
                        self.next_item(now, server);
                    }
                },
                BatchStep::Sleeping { k, until } if until <= now => {
                    self.retry[k] += 1;
                    self.next_item(now, server);
                }
                BatchStep::Awaiting { at, .. } => return Some(at),
                BatchStep::Sleeping { until, .. } => return Some(until),
            }
        }
        min_opt(
            self.writes.next_at(),
            (!self.online).then_some(self.online_at),
        )
    }

    fn end(&self) -> ClientEnd {
        ClientEnd {
            dropped: 0,
            queued: self.present.iter().filter(|p| **p).count() as u64,
            dead: 0,
        }
    }
}

// ---------------------------------------------------------------------------

struct JitterPass {
    items: VecDeque<(usize, u32)>,
    awaiting: Option<(usize, u32, Answer, Millis)>,
    timer: bool,
}

/// Tutorial `001` (`RetryScheduler`): a `setTimeout` 5 s after each check
/// runs `flushPendingMessages`, which sends every due message one after
/// another; the page's `online` listener runs it too, with no guard
/// against the one already running. `attemptSend`: `retryCount >= 5` →
/// remove (dropped); `2xx` → remove; `429` → `nextRetryAt = Retry-After ||
/// 30 s`; `5xx` or network error → `nextRetryAt = calculateBackoff(++retryCount)`
/// with `min(2000 · 2ⁿ + random · 1000, 60000)`. A failure writes back the
/// pass's copy (`queue.enqueue(msg)`), so two passes may send a message
/// twice and a failing copy may resurrect one the other delivered.
///
/// As written, readiness is `timestamp + nextRetryAt <= now` — the delay
/// counts from the message's creation, so after an outage longer than a
/// minute every message is always due; the model counts it from the last
/// attempt, as the tutorial's prose intends (kinder to the tutorial).
pub struct SeedJitter {
    index: usize,
    first: usize,
    writes: Writes,
    online_at: Millis,
    online: bool,
    present: Vec<bool>,
    retry: Vec<u32>,
    next_at: Vec<Millis>,
    timer_at: Option<Millis>,
    passes: Vec<JitterPass>,
    rng: SplitMix64,
    dropped: u64,
}

impl SeedJitter {
    /// A client.
    pub fn new(s: ClientSetup) -> Self {
        let m = s.writes.len();
        let mut rng = SplitMix64::new(s.seed);
        let first_check = s.writes.first().copied().unwrap_or(super::T0) + rng.below_or_eq(5_000);
        Self {
            index: s.index,
            first: s.first_message,
            writes: Writes {
                times: s.writes,
                next: 0,
            },
            online_at: s.online_at,
            online: false,
            present: vec![false; m],
            retry: vec![0; m],
            next_at: vec![0; m],
            timer_at: Some(first_check),
            passes: Vec::new(),
            rng,
            dropped: 0,
        }
    }

    fn backoff(&mut self, retry: u32) -> Millis {
        (2_000u64 * (1u64 << retry.min(20)) + self.rng.below_or_eq(1_000)).min(60_000)
    }

    fn new_pass(&mut self, now: Millis, timer: bool) {
        let items = (0..self.present.len())
            .filter(|k| self.present[*k] && self.next_at[*k] <= now)
            .map(|k| (k, self.retry[k]))
            .collect();
        self.passes.push(JitterPass {
            items,
            awaiting: None,
            timer,
        });
    }

    /// Advances pass `p` as far as `now` allows; true when it finished.
    fn step(&mut self, p: usize, now: Millis, server: &mut Server) -> bool {
        loop {
            if let Some((k, r, answer, at)) = self.passes[p].awaiting {
                if at > now {
                    return false;
                }
                self.passes[p].awaiting = None;
                match answer {
                    Answer::Ok { .. } => self.present[k] = false,
                    Answer::TooMany { retry_after_s, .. } => {
                        self.present[k] = true;
                        self.retry[k] = r + 1;
                        self.next_at[k] = now + retry_after_s * 1000;
                    }
                    Answer::Unavailable | Answer::Failed(_) | Answer::LostAck | Answer::Offline => {
                        self.present[k] = true;
                        self.retry[k] = r + 1;
                        self.next_at[k] = now + self.backoff(r + 1);
                    }
                }
            }
            let Some((k, r)) = self.passes[p].items.pop_front() else {
                return true;
            };
            if r >= 5 {
                if self.present[k] {
                    self.present[k] = false;
                    self.dropped += 1;
                }
                continue;
            }
            let (answer, at) = server.handle(now, self.index, self.first + k);
            self.passes[p].awaiting = Some((k, r, answer, at));
        }
    }
}

impl Client for SeedJitter {
    fn wake(&mut self, now: Millis, server: &mut Server) -> Option<Millis> {
        while let Some(k) = self.writes.due(now) {
            // Persisted first; offline, not sent: nextRetryAt = backoff(0).
            self.present[k] = true;
            self.retry[k] = 0;
            self.next_at[k] = now + self.backoff(0);
        }
        if !self.online && now >= self.online_at {
            self.online = true;
            self.new_pass(now, false);
        }
        if self.timer_at.is_some_and(|t| t <= now) {
            self.timer_at = None;
            self.new_pass(now, true);
        }
        let mut p = 0;
        while p < self.passes.len() {
            if self.step(p, now, server) {
                let pass = self.passes.swap_remove(p);
                if pass.timer {
                    // The scheduler stops polling for good once nothing is
                    // left and nothing more will be written (it would only
                    // find an empty queue).
                    let idle = !self.present.iter().any(|x| *x) && self.writes.next_at().is_none();
                    self.timer_at = (!idle).then_some(now + 5_000);
                }
            } else {
                p += 1;
            }
        }
        let awaiting = self
            .passes
            .iter()
            .filter_map(|p| p.awaiting.map(|a| a.3))
            .min();
        let mut next = min_opt(awaiting, self.timer_at);
        next = min_opt(next, self.writes.next_at());
        if !self.online {
            next = min_opt(next, Some(self.online_at));
        }
        next
    }

    fn end(&self) -> ClientEnd {
        ClientEnd {
            dropped: self.dropped,
            queued: self.present.iter().filter(|p| **p).count() as u64,
            dead: 0,
        }
    }
}

// ---------------------------------------------------------------------------

/// Workbox background sync (`workbox-background-sync` 7): the failed
/// request is pushed on the queue and a `sync` registered;
/// `replayRequests` does `while (entry = await shiftRequest()) { try {
/// await fetch(entry.request) } catch { await unshiftRequest(entry); throw } }`:
/// one request at a time, deleted before it is sent, any HTTP answer
/// (`429`, `503`) taken as success, no backoff. A thrown sync is retried by
/// Chromium after 5 min, then 15 min, then given up (3 tries).
pub struct Workbox {
    index: usize,
    first: usize,
    writes: Writes,
    online_at: Millis,
    online: bool,
    queue: VecDeque<usize>,
    registered: bool,
    attempts: u32,
    fire_at: Option<Millis>,
    replay: Option<(usize, Answer, Millis)>,
    replaying: bool,
    dropped: u64,
}

impl Workbox {
    /// A client.
    pub fn new(s: ClientSetup) -> Self {
        Self {
            index: s.index,
            first: s.first_message,
            writes: Writes {
                times: s.writes,
                next: 0,
            },
            online_at: s.online_at,
            online: false,
            queue: VecDeque::new(),
            registered: false,
            attempts: 0,
            fire_at: None,
            replay: None,
            replaying: false,
            dropped: 0,
        }
    }

    fn shift_and_send(&mut self, now: Millis, server: &mut Server) {
        match self.queue.pop_front() {
            Some(k) => {
                let (answer, at) = server.handle(now, self.index, self.first + k);
                self.replay = Some((k, answer, at));
            }
            None => {
                // Replayed everything: the sync succeeded.
                self.replaying = false;
                self.registered = false;
            }
        }
    }
}

impl Client for Workbox {
    fn wake(&mut self, now: Millis, server: &mut Server) -> Option<Millis> {
        while let Some(k) = self.writes.due(now) {
            // fetch fails → fetchDidFail → pushRequest → registerSync.
            let _ = server.handle(now, self.index, self.first + k);
            self.queue.push_back(k);
            if !self.registered {
                self.registered = true;
                self.attempts = 0;
                self.fire_at = self.online.then_some(now);
            }
        }
        if !self.online && now >= self.online_at {
            self.online = true;
            if self.registered && self.fire_at.is_none() && !self.replaying {
                self.fire_at = Some(now);
            }
        }
        if !self.replaying && self.fire_at.is_some_and(|t| t <= now) {
            self.fire_at = None;
            self.replaying = true;
            self.shift_and_send(now, server);
        }
        while let Some((k, answer, at)) = self.replay {
            if at > now {
                break;
            }
            self.replay = None;
            if answer.is_network_error() {
                self.queue.push_front(k);
                self.replaying = false;
                self.attempts += 1;
                if self.attempts < SYNC_MAX_ATTEMPTS {
                    self.fire_at = Some(now + SYNC_RETRY_MS * 3u64.pow(self.attempts - 1));
                } else {
                    self.registered = false; // given up; entries stay queued
                }
            } else {
                if !answer.is_ok() {
                    self.dropped += 1; // a 429 or 503 "replayed successfully"
                }
                self.shift_and_send(now, server);
            }
        }
        let mut next = min_opt(self.replay.map(|r| r.2), self.fire_at);
        next = min_opt(next, self.writes.next_at());
        if !self.online {
            next = min_opt(next, Some(self.online_at));
        }
        next
    }

    fn end(&self) -> ClientEnd {
        ClientEnd {
            dropped: self.dropped,
            queued: self.queue.len() as u64,
            dead: 0,
        }
    }
}
