/**
 * Where a context's time goes, for DevTools and the benchmark; nothing
 * here decides anything.
 *
 * Start-up marks: a context's first steps as User Timing marks named
 * `outbox:<step>`, each set once in the life of the context (a worker's
 * life ends when the browser stops it). DevTools' Performance panel shows
 * them, and `cargo xtask bench` reads them after each cold start of the
 * worker to tell where the start's time goes. Their times count from the
 * context's start (`performance.timeOrigin`): for a service worker, the
 * moment its global scope was made.
 *
 * Steps: `start` (`OutboxWorker.start` called), `core-script` (the core's
 * script evaluated), `core-compiled`, `engine` (the configuration read),
 * `store-open` (the database open), `flush` (the first flush starts),
 * `request` (the first request Outbox owns arrives), `live-sent` and
 * `live-answered` (its live attempt goes, and comes back), `answer` (the
 * core's answer to it is ready).
 */

const set = new Set<string>();

/** Marks `step` the first time it happens in this context. */
export function markOnce(step: string): void {
  if (set.has(step)) return;
  set.add(step);
  try {
    performance.mark(`outbox:${step}`);
  } catch {
    // No User Timing here: the marks are only a diagnostic.
  }
}

/** How many requests' timelines are kept. */
const RECENT = 100;
const recent: Record<string, number>[] = [];

/**
 * Starts the timeline of one request Outbox answers: each call of the
 * function returned records a step, in ms since the request arrived. The
 * last hundred are kept (`recentTimelines`): a diagnostic, read by the
 * benchmark to tell where a warm send's time goes.
 */
export function timeline(): (step: string) => void {
  const start = performance.now();
  const steps: Record<string, number> = {};
  recent.push(steps);
  if (recent.length > RECENT) recent.shift();
  return (step) => {
    steps[step] = performance.now() - start;
  };
}

/** The last requests' timelines, oldest first. */
export function recentTimelines(): Record<string, number>[] {
  return recent.slice();
}
