/**
 * Outbox worker module: adds Outbox to a service worker of your own.
 *
 *   importScripts('/outbox/outbox-worker.js');
 *   const outbox = OutboxWorker.start({ origins: ['https://api.example.com'], tokenUrl: '/token' });
 *   self.addEventListener('fetch', (e) => { if (outbox.handle(e)) return; ... your own handling ... });
 *
 * or, in a worker your bundler builds (Workbox's injectManifest style):
 *
 *   import { start } from 'outbox-genesys/worker';
 *   const outbox = start({ region: 'mypurecloud.ie', tokenUrl: '/token' }, { base: '/outbox/' });
 *
 * Built twice from this file: a classic script (`outbox-worker.js`, for
 * `importScripts`, at the top level of your worker, before your own
 * listeners) and an ES module (`worker.js` of the package, for a bundler).
 * It loads the core (`outbox-core.js`) from
 * beside itself, whatever your worker's URL is, and compiles it at once: it
 * answers whether a request is Outbox's (the core's route table) while its
 * script is evaluated, and a worker started offline has it (imported
 * scripts are kept with the worker). It never calls `skipWaiting` or
 * `clients.claim`: your worker's life cycle stays yours.
 *
 * Everything that decides what happens to an Outbox request is the core's;
 * this file registers listeners at evaluation (as browsers require) and
 * carries out what the core asks.
 */

import { stringBytes } from './core.js';
import { markOnce, recentTimelines, timeline } from './marks.js';
import { Outbox, failure, flushReport, memoryBytes, useModule } from './engine.js';
import { Outbox as Engine } from './engine.js';
import { Flusher } from './flusher.js';
import type { Part } from './frame.js';
import { TO_WORKER, readMessage, type Message } from './protocol.js';
import { TokenSource } from './tokens.js';
import { errorText, fetchWithin, read, request as buildRequest, type Outgoing } from './transport.js';
import type { FlushReport, OutboxConfig } from './types.js';

declare const self: ServiceWorkerGlobalScope & { outboxCore?: string };

declare global {
  /** Defined by `importScripts('…/outbox-worker.js')`. */
  var OutboxWorker: {
    /** Starts Outbox in this worker; call it once, at the top level of the worker script. */
    start(config?: OutboxWorkerConfig | string, options?: OutboxWorkerOptions): OutboxWorkerHandle;
  };
}

/** The configuration a worker takes: the page's, minus the page-only `getToken`. */
export type OutboxWorkerConfig = Omit<OutboxConfig, 'getToken'>;

/** Where the core is. */
export interface OutboxWorkerOptions {
  /** The folder of `outbox-core.js`, e.g. `/outbox/` (default: beside `outbox-worker.js`; bundled into your worker: beside your worker's script). */
  base?: string | URL;
}

/** What a worker's flush resolves with (the page's `FlushReport`, by the same code). */
export interface WorkerFlushReport {
  delivered: number;
  attempts: number;
  /** When the next entry is due (ms since the epoch), or `null` when nothing waits on time. */
  nextWake: number | null;
}

/** Outbox in a service worker of your own. */
export interface OutboxWorkerHandle {
  /** Whether `request` is on one of Outbox's routes (its method, origin and path; synchronous). */
  owns(request: Request): boolean;
  /** Answers a fetch event Outbox owns (`respondWith`) and returns true; returns false, untouched, for any other. */
  handle(event: FetchEvent): boolean;
  /**
   * Outbox's answer to a request it owns: the server's, or `202 {"queued":true,"id","lane","reason"}`.
   * `from` is the fetch event (Workbox hands its handlers the event typed as an `ExtendableEvent`: pass it as it is)
   * or the id of the client that made the request: a page's own sends, which it announces, are never kept twice.
   */
  respond(request: Request, from?: FetchEvent | ExtendableEvent | string): Promise<Response>;
  /** Keeps a request it owns at once, with no live attempt (your handler answered 503): `202`, or `507`/`413` (not kept). */
  queue(request: Request): Promise<Response>;
  /** Flushes now. */
  flush(): Promise<WorkerFlushReport>;
  /** Resolves once the database is open. */
  ready(): Promise<void>;
}

/** The Background Sync tag the worker registers while entries wait. */
const SYNC_TAG = 'outbox-flush';
/** How long a (re)started worker's first flush waits for the request that woke it to be answered. */
const STARTUP_GRACE_MS = 100;
/** How long one `sync` event keeps flushing before handing back (Chromium allows about three minutes). */
const SYNC_BUDGET_MS = 150_000;

// This script's own URL, captured while it is evaluated: an imported
// script has no `document.currentScript`, and `self.location` is the
// importing worker's URL. The first frame of the stack is this script's.
// Its URL is the one `importScripts` was given, which need not be
// absolute: Firefox, evaluating a restarted worker's stored copy, names
// it as written (`/outbox/outbox-worker.js`), so it is resolved against
// the worker's URL, as `importScripts` resolved it.
const SCRIPT = scriptUrl(String(new Error().stack ?? ''), self.location.href);

/**
 * The URL of the first frame of `stack` that names a script (V8's
 * `at url:line:col` or `at name (url:line:col)`; SpiderMonkey's and
 * JavaScriptCore's `name@url:line:col`), resolved against `base`; `base`
 * when none does.
 */
function scriptUrl(stack: string, base: string): string {
  for (const line of stack.split('\n')) {
    const frame = /(?:^\s*at\s+(?:.*\()?|@)(.+?):\d+:\d+\)?\s*$/.exec(line);
    if (!frame?.[1]) continue;
    try {
      return new URL(frame[1], base).href;
    } catch {
      // Not a URL (an engine's own frame): the next one.
    }
  }
  return base;
}

let started: OutboxWorkerHandle | null = null;

/** Posts `message` to every page of the origin. */
async function tellPages(message: Message): Promise<void> {
  const pages = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const page of pages) page.postMessage(message);
}

/** Asks the browser for a `sync` event (Chromium; elsewhere pages and timers drive the flush). */
async function registerSync(): Promise<void> {
  const sync = (self.registration as ServiceWorkerRegistration & { sync?: { register(tag: string): Promise<void> } }).sync;
  try {
    await sync?.register(SYNC_TAG);
  } catch {
    // Not allowed here: pages and timers drive the flush.
  }
}

/** A request's headers as pairs. */
function pairs(headers: Headers): [string, string][] {
  const out: [string, string][] = [];
  headers.forEach((value, name) => out.push([name, value]));
  return out;
}

/** The id of the client a fetch event came from (`''` for any other event). */
function clientOf(event: ExtendableEvent | undefined): string {
  const id: unknown = event && 'clientId' in event ? event.clientId : undefined;
  return typeof id === 'string' ? id : '';
}

/** What the core made of an intercepted request (`Respond` in `host.rs`). */
type Respond = { pass: 'original' | 'live' } | { status: number; body: string; kick: boolean } | { error: string };

/**
 * Starts Outbox in this worker. Call it once, at the top level of the
 * worker script (listeners must be added while the script is evaluated).
 * `config` is the configuration object of `Outbox.open` (or its JSON);
 * `options.base` is the folder of `outbox-core.js` (default: beside
 * `outbox-worker.js`, or, bundled into your worker, beside your worker).
 */
export function start(config?: OutboxWorkerConfig | string, options?: OutboxWorkerOptions): OutboxWorkerHandle {
  if (started) throw new Error('OutboxWorker.start runs once per worker');
  const json = typeof config === 'string' ? config || '{}' : JSON.stringify(config ?? {});
  const base = options?.base ? new URL(String(options.base), self.location.href).href : SCRIPT;
  markOnce('start');
  if (self.outboxCore === undefined) importScripts(new URL('outbox-core.js', base).href);
  markOnce('core-script');
  useModule(new WebAssembly.Module(stringBytes(self.outboxCore ?? '') as BufferSource));
  markOnce('core-compiled');
  let outbox: Outbox | null = null;
  try {
    outbox = new Outbox(false, json, new TokenSource(null, null));
    markOnce('engine');
  } catch (e) {
    // A configuration the core refuses: the worker behaves as if there
    // were no Outbox (every request goes as it would without it).
    console.error('[outbox] the configuration was refused:', errorText(e));
  }
  const database = outbox?.facts.database ?? '';
  if (outbox) {
    outbox.tokens = new TokenSource(outbox.facts.tokenUrl, (origin) => {
      void tellPages({ type: 'TOKEN_REFRESH_REQUIRED', queueId: database, origin });
    });
  }
  const flusher = outbox ? new Flusher(outbox) : null;
  if (flusher) {
    // This worker's timers die with it (stopped when idle): its pages keep
    // the next wake-up and send `flush` then.
    flusher.onNextWake = (at) => void tellPages({ type: 'OUTBOX_WAKE', queueId: database, at });
  }

  async function flush(): Promise<FlushReport> {
    const report = flusher ? await flusher.run() : null;
    if (report?.nextWake != null) await registerSync();
    return flushReport(report, false);
  }

  async function answer(request: Request, clientId: string, queue: boolean): Promise<Response> {
    try {
      return await answerNow(request, clientId, queue);
    } finally {
      flusher?.served();
    }
  }

  async function answerNow(request: Request, clientId: string, queue: boolean): Promise<Response> {
    if (!outbox) {
      if (queue) throw new Error('Outbox is not running in this worker (see the console)');
      return fetch(request);
    }
    markOnce('request');
    const step = timeline();
    const method = request.method;
    const url = request.url;
    // Read a clone: the original stays unread for a plain pass-through.
    const body = new Uint8Array(await request.clone().arrayBuffer());
    step('body');
    let liveResponse: Response | null = null;
    const live = async (q: Outgoing, b: Uint8Array): Promise<Part[]> => {
      const controller = new AbortController();
      markOnce('live-sent');
      step('live-sent');
      const outcome = await fetchWithin(buildRequest(q, b, controller), q.timeoutMs, controller);
      markOnce('live-answered');
      step('live-answered');
      if (!(outcome instanceof Response)) return outcome;
      liveResponse = outcome;
      return read(outcome.clone());
    };
    const result = await outbox.run<Respond>(
      (core, engine) =>
        core.in([method, url, { json: JSON.stringify(pairs(request.headers)) }, body, clientId]).x.respond(engine, queue ? 1 : 0),
      live,
      step,
    );
    markOnce('answer');
    step('answer');
    if ('pass' in result) {
      if (result.pass === 'live' && liveResponse) return liveResponse;
      return fetch(request);
    }
    const error = failure(result);
    if (error) throw error;
    const kept = result as { status: number; body: string; kick: boolean };
    if (kept.kick) {
      flusher?.kick();
      await registerSync();
    }
    return new Response(kept.body, {
      status: kept.status,
      headers: { 'content-type': 'application/json', 'x-outbox': '1' },
    });
  }

  async function handleMessage(data: unknown, client: string | undefined): Promise<void> {
    const message = readMessage(data);
    if (!message || !outbox) return;
    switch (message.type) {
      case 'OUTBOX_REPLAY':
        if (!client) throw new Error('OUTBOX_REPLAY needs a client');
        outbox.replay(client, message.key);
        return;
      case 'TOKEN_UPDATED':
        await outbox.token(message.token, message.expiresIn ?? null, message.origin ?? null);
        await flush();
        return;
      case 'flush':
        await flush();
        return;
      case 'online':
        // A page's `online` event (workers get none in Chromium): what
        // waited only for the network is due now.
        await outbox.networkBack();
        await flush();
        return;
      default:
        // One for pages.
        return;
    }
  }

  async function handleSync(lastChance: boolean): Promise<void> {
    const began = Date.now();
    for (;;) {
      const report = flusher ? await flusher.run() : null;
      const next = report?.nextWake;
      if (next == null) return;
      const wait = Math.max(next - Date.now(), 0);
      if (Date.now() + wait - began > SYNC_BUDGET_MS) {
        if (lastChance) return;
        throw new Error('entries still waiting; sync again later');
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  self.addEventListener('activate', (event) => {
    // The engine of older versions lived in Cache Storage: gone.
    event.waitUntil(
      (async () => {
        for (const key of await caches.keys()) {
          if (key.startsWith('outbox-engine-')) await caches.delete(key);
        }
      })(),
    );
  });
  self.addEventListener('message', (event) => {
    const data = event.data as { type?: unknown } | null;
    if (!data || typeof data.type !== 'string' || !TO_WORKER.includes(data.type)) return;
    const source = event.source && 'id' in event.source ? event.source.id : undefined;
    const port = event.ports[0];
    if (data.type === 'OUTBOX_CONFIG') {
      // A page reads its configuration with this worker's core.
      const m = readMessage(data);
      let answer: object;
      try {
        answer = { type: data.type, ok: true, facts: Engine.describe(false, m?.type === 'OUTBOX_CONFIG' ? m.config : '{}') };
      } catch (e) {
        answer = { type: data.type, ok: false, error: e instanceof Error ? e.message : String(e) };
      }
      port?.postMessage(answer);
      return;
    }
    event.waitUntil(
      handleMessage(data, source).then(
        () => port?.postMessage({ type: data.type, ok: true }),
        (err: unknown) => {
          console.error('[outbox] message failed:', err);
          port?.postMessage({ type: data.type, ok: false });
        },
      ),
    );
  });
  self.addEventListener('sync', (event) => {
    const e = event as ExtendableEvent & { tag?: string; lastChance?: boolean };
    if (e.tag !== SYNC_TAG) return;
    e.waitUntil(handleSync(!!e.lastChance));
  });

  const owns = (request: Request): boolean => !!outbox && outbox.owns(request.method, request.url);
  const respond = (request: Request, from?: FetchEvent | ExtendableEvent | string) =>
    answer(request, typeof from === 'string' ? from : clientOf(from), false);
  started = {
    owns,
    handle(event: FetchEvent): boolean {
      if (!owns(event.request)) return false;
      const reply = respond(event.request, event.clientId);
      event.respondWith(reply);
      event.waitUntil(reply.catch(() => {}));
      return true;
    },
    respond,
    queue(request: Request): Promise<Response> {
      if (!owns(request)) return Promise.reject(new Error('not on an Outbox route: ' + request.url));
      return answer(request, '', true);
    },
    flush,
    async ready(): Promise<void> {
      await outbox?.store.connection();
    },
  };
  // A (re)started worker flushes what waited, once the request that woke
  // it is answered (or soon, if something else woke it).
  flusher?.startUp(STARTUP_GRACE_MS);
  return started;
}

globalThis.OutboxWorker = { start };
// Diagnostics the browser benchmark reads: the core's memory in bytes, and
// the timelines of the last requests answered (`marks.ts`).
(globalThis as unknown as { outboxCoreMemory: () => number }).outboxCoreMemory = memoryBytes;
(globalThis as unknown as { outboxTimelines: () => Record<string, number>[] }).outboxTimelines = recentTimelines;
