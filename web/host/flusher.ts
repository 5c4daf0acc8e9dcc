/**
 * Runs an outbox's flush: one at a time per context (calls made while one
 * runs are folded into one more run), under the origin-wide flush lock
 * (Web Locks: one sender per database across every tab and the worker),
 * and again when the core says something becomes ready.
 *
 * "Again" is a timer in this context, and a timer lives only as long as
 * its context: a service worker is stopped about 30 s after its last event
 * (Firefox, Safari) whatever timers it has. So a flusher also tells
 * someone else when its next run is due (`onNextWake`): the worker tells
 * its pages, whose timers then wake it with a `flush` message.
 */

import type { Outbox, Report } from './engine.js';
import { markOnce } from './marks.js';

/** The prefix of the lock every flusher takes (followed by the database name). */
export const FLUSH_LOCK = 'outbox-flush';

/** Whether Web Locks exist here. */
export function locksAvailable(): boolean {
  return typeof navigator !== 'undefined' && !!navigator.locks;
}

/** Runs `work` holding the exclusive lock `name` (unlocked where Web Locks are missing: leases still keep two senders off one entry). */
function withLock<T>(name: string, work: () => Promise<T>): Promise<T> {
  if (!locksAvailable()) return work();
  return navigator.locks.request(name, work) as Promise<T>;
}

export class Flusher {
  private readonly lock: string;
  private running = false;
  private again = false;
  private waiting: (() => void)[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt: number | null = null;
  private last: Report | null = null;
  /** The start-up flush waits for the first request's answer (`startUp`). */
  private startup = false;
  /** Told the next wake-up after every run that leaves one. */
  onNextWake: ((at: number) => void) | null = null;

  constructor(private readonly outbox: Outbox) {
    this.lock = `${FLUSH_LOCK}:${outbox.facts.database}`;
  }

  /** What the last flush reported (the sum of its runs). */
  lastReport(): Report | null {
    return this.last;
  }

  /**
   * Flushes until nothing is ready now. If a flush is already running in
   * this context, asks it to go round once more and waits for it to end:
   * an event that asked for a flush keeps a worker alive until it is done.
   */
  async run(): Promise<Report | null> {
    if (this.running) {
      this.again = true;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
      return this.last;
    }
    this.running = true;
    let report: Report | null = null;
    try {
      report = await this.loop();
      return report;
    } finally {
      this.running = false;
      const waiting = this.waiting;
      this.waiting = [];
      for (const resolve of waiting) resolve();
      if (report?.nextWake != null) {
        this.schedule(report.nextWake);
        this.onNextWake?.(report.nextWake);
      }
    }
  }

  private async loop(): Promise<Report> {
    markOnce('flush');
    this.startup = false;
    const total: Report = { cycles: 0, attempts: 0, delivered: 0, retried: 0, dead: 0, awaitingToken: 0, nextWake: null };
    for (;;) {
      this.again = false;
      // Under the lock no other sender is alive: leases still standing
      // are orphaned and may be taken over at once.
      const exclusive = locksAvailable();
      const report = await withLock(this.lock, () => this.outbox.flush(exclusive));
      total.cycles += report.cycles;
      total.attempts += report.attempts;
      total.delivered += report.delivered;
      total.retried += report.retried;
      total.dead += report.dead;
      total.awaitingToken += report.awaitingToken;
      total.nextWake = report.nextWake;
      this.last = { ...total };
      const dueNow = report.nextWake !== null && report.nextWake <= Date.now();
      if (!(this.again || dueNow)) return total;
    }
  }

  /** Sets (or moves earlier) the timer for the next flush. */
  private schedule(at: number): void {
    if (this.timerAt !== null && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timerAt = null;
        this.kick();
      },
      Math.min(Math.max(at - Date.now(), 0), 2_147_483_647),
    );
  }

  /**
   * Schedules a (re)started context's first flush: once it has answered
   * its first request (`served`), or after `graceMs` if none comes. A
   * stopped worker is started for an event: the request that woke it goes
   * first, instead of waiting for the store behind the flush's first
   * claim (a read-write transaction made as soon as the database opens).
   */
  startUp(graceMs: number): void {
    this.startup = true;
    this.schedule(Date.now() + graceMs);
  }

  /** A request was answered: the start-up flush, if it still waits, goes now. */
  served(): void {
    if (!this.startup) return;
    this.startup = false;
    this.schedule(Date.now());
  }

  /** Starts a flush without waiting for it. */
  kick(): void {
    this.run().catch((e: unknown) => console.error('[outbox] flush failed:', e));
  }

  /** Cancels the timer (the outbox is closed). */
  stop(): void {
    clearTimeout(this.timer);
    this.timerAt = null;
  }
}
