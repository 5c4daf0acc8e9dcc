// The app's own service worker, built with Workbox (bundled by esbuild).
// Outbox is one Workbox route, registered before the app's own routes.
import { registerRoute } from 'workbox-routing';

importScripts('/outbox/outbox-worker.js'); // copied by `outbox-genesys copy-worker dist/outbox`
const api = new URL(self.location.href).searchParams.get('api') || 'https://api.mypurecloud.ie';
const outbox = OutboxWorker.start({ origins: [api], apiBase: api, tokenUrl: '/token' });

let maintenance = false; // the app's own switch: under it, the app answers Genesys calls itself
self.addEventListener('message', (e) => {
  if (e.data && e.data.type === 'maintenance') maintenance = e.data.on;
});

// Outbox's requests (decided synchronously from its configuration).
registerRoute(
  ({ request }) => outbox.owns(request),
  ({ event, request }) =>
    // Instead of a 503 of its own, the app hands the request to Outbox: kept (202).
    maintenance ? outbox.queue(request) : outbox.respond(request, event.clientId),
  'POST',
);

// The app's own routes.
registerRoute(
  ({ url }) => url.pathname === '/app/notes',
  async () => Response.json({ handledBy: 'app', saved: true }),
  'POST',
);
