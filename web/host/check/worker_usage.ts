// Type-checked by `cargo xtask test` (tsc --noEmit --strict, lib ES2022 +
// WebWorker): a service worker of an app's own adding Outbox with the
// worker module, as its README shows.
/// <reference lib="webworker" />
import type { OutboxWorkerHandle } from './worker/outbox-worker.js';
// A worker an app bundles imports the module (`outbox-genesys/worker`).
import { start } from './worker/outbox-worker.js';

declare const self: ServiceWorkerGlobalScope;

importScripts('/outbox/outbox-worker.js');
const outbox: OutboxWorkerHandle = OutboxWorker.start({ region: 'mypurecloud.ie', tokenUrl: '/token' });
self.addEventListener('fetch', (e: FetchEvent) => {
  if (outbox.handle(e)) return;
  if (outbox.owns(e.request)) e.respondWith(outbox.queue(e.request)); // an app's own 503, handed over
});
OutboxWorker.start('{"origins":["https://proxy.example"]}', { base: '/outbox/' });
void outbox.flush().then((r) => r.delivered + r.attempts);
void outbox.respond(new Request('https://api.mypurecloud.ie/'), 'client-id');
// Workbox hands its route handlers the event as an ExtendableEvent.
declare const workboxEvent: ExtendableEvent;
void outbox.respond(new Request('https://api.mypurecloud.ie/'), workboxEvent);
// @ts-expect-error `getToken` is the page's alone
OutboxWorker.start({ getToken: async () => 'token' });
// Bundled: the same handle, the core's folder given.
export const bundled: OutboxWorkerHandle = start({ region: 'mypurecloud.ie' }, { base: new URL('/outbox/', self.location.href) });
