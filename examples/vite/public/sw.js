// The app's own service worker. Three lines add Outbox to it; the rest is the app's.
importScripts('/outbox/outbox-worker.js'); // served by the outbox-genesys/vite plugin (vite.config.ts)
const api = new URL(self.location.href).searchParams.get('api') || 'https://api.mypurecloud.ie';
const outbox = OutboxWorker.start({ origins: [api], apiBase: api, tokenUrl: '/token' });

let maintenance = false; // the app's own switch: under it, the app answers Genesys calls itself
self.addEventListener('message', (e) => {
  if (e.data && e.data.type === 'maintenance') maintenance = e.data.on;
});

self.addEventListener('fetch', (event) => {
  if (maintenance && outbox.owns(event.request)) {
    // Instead of answering 503, hand the request to Outbox: kept (202), delivered later.
    event.respondWith(outbox.queue(event.request));
    return;
  }
  if (outbox.handle(event)) return;
  // The app's own routes.
  const url = new URL(event.request.url);
  if (event.request.method === 'POST' && url.pathname === '/app/notes') {
    event.respondWith(Response.json({ handledBy: 'app', saved: true }));
  }
});
