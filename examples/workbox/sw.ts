// The app's own service worker, written in TypeScript with Workbox and
// bundled by esbuild (Workbox's injectManifest style). Outbox is imported
// like any other module and is one Workbox route, registered before the
// app's own routes.
/// <reference lib="webworker" />
import { registerRoute } from 'workbox-routing';
import { start } from 'outbox-genesys/worker';

declare const self: ServiceWorkerGlobalScope;

const api = new URL(self.location.href).searchParams.get('api') ?? 'https://api.mypurecloud.ie';
// The core (outbox-core.js) is where `outbox-genesys copy-worker dist/outbox --no-sw` put it.
const outbox = start({ origins: [api], apiBase: api, tokenUrl: '/token' }, { base: '/outbox/' });

let maintenance = false; // the app's own switch: under it, the app answers Genesys calls itself
self.addEventListener('message', (e: ExtendableMessageEvent) => {
  const data = e.data as { type?: string; on?: boolean } | null;
  if (data?.type === 'maintenance') maintenance = !!data.on;
});

// Outbox's requests (decided synchronously from its configuration).
registerRoute(
  ({ request }) => outbox.owns(request),
  ({ event, request }) =>
    // Instead of a 503 of its own, the app hands the request to Outbox: kept (202).
    maintenance ? outbox.queue(request) : outbox.respond(request, event),
  'POST',
);

// The app's own routes.
registerRoute(
  ({ url }) => url.pathname === '/app/notes',
  async () => Response.json({ handledBy: 'app', saved: true }),
  'POST',
);
