/**
 * Types of `outbox-worker.js`, the classic script a service worker of your
 * own imports (`importScripts`) to add Outbox:
 *
 * ```ts
 * /// <reference lib="webworker" />
 * /// <reference types="outbox-genesys/worker" />
 * importScripts('/outbox/outbox-worker.js');
 * const outbox = OutboxWorker.start({ tokenUrl: '/token' });
 * self.addEventListener('fetch', (e) => { if (outbox.handle(e)) return; ... });
 * ```
 */
import type { OutboxConfig } from '../outbox_page.js';

/** The configuration a worker takes: the page's, minus the page-only `getToken`. */
export type OutboxWorkerConfig = Omit<OutboxConfig, 'getToken'>;

/** Where the engine files are. */
export interface OutboxWorkerOptions {
  /** The folder of `outbox_sw.js` and `outbox_sw_bg.wasm` (default: beside `outbox-worker.js`). */
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
  /** Outbox's answer to a request it owns: the server's, or `202 {"queued":true,"id","lane","reason"}`. */
  respond(request: Request, clientId?: string): Promise<Response>;
  /** Keeps a request it owns at once, with no live attempt (your handler answered 503): `202`, or `507`/`413` (not kept). */
  queue(request: Request): Promise<Response>;
  /** Flushes now. */
  flush(): Promise<WorkerFlushReport>;
  /** Resolves once the engine has started. */
  ready(): Promise<void>;
}

declare global {
  /** Defined by `importScripts('…/outbox-worker.js')`. */
  var OutboxWorker: {
    /** Starts Outbox in this worker; call it once, at the top level of the worker script. */
    start(config?: OutboxWorkerConfig | string, options?: OutboxWorkerOptions): OutboxWorkerHandle;
  };
}
