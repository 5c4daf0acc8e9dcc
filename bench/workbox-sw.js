/*
 * The Workbox background-sync worker that `cargo xtask bench` measures Outbox against.
 *
 * It is what the Workbox documentation recommends for "retry failed POSTs when back online":
 * a NetworkOnly strategy with the BackgroundSyncPlugin on the same routes Outbox intercepts.
 * A request that fails with a network error is stored in IndexedDB (workbox-background-sync's
 * Queue) and replayed on the `sync` event. The only addition is `handlerDidError`, which
 * answers the page `202` once the request is stored (as Outbox does), instead of a rejected
 * fetch: both doors then give the page the same answer.
 *
 * Bundled by esbuild at bench time (`cargo xtask bench`); never shipped.
 */
import { BackgroundSyncPlugin } from 'workbox-background-sync';
import { registerRoute } from 'workbox-routing';
import { NetworkOnly } from 'workbox-strategies';

// The agent-send route of Outbox's default route table.
const AGENT_SEND = /^\/api\/v2\/conversations\/messages\/[^/]+\/communications\/[^/]+\/messages$/;

const queued = {
  handlerDidError: async () =>
    new Response(JSON.stringify({ queued: true }), {
      status: 202,
      headers: { 'content-type': 'application/json' },
    }),
};

registerRoute(
  ({ url }) => AGENT_SEND.test(url.pathname),
  new NetworkOnly({
    plugins: [new BackgroundSyncPlugin('outbox-bench', { maxRetentionTime: 24 * 60 }), queued],
  }),
  'POST',
);

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
