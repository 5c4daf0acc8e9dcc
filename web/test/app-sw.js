// An app's own service worker with Outbox added through the worker module,
// for the end-to-end tests (crates/e2e/tests/apps.rs). The app has its own
// POST route (/test/app/echo), and a maintenance switch under which it
// answers Outbox's routes itself with a 503 — handing them to Outbox.
importScripts('/outbox-worker.js');
const outbox = OutboxWorker.start(new URL(self.location.href).searchParams.get('config') || '{}');

let maintenance = false; // the app's own state (lost when the worker restarts)
self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'app-maintenance') maintenance = event.data.on;
});

self.addEventListener('fetch', (event) => {
  if (maintenance && outbox.owns(event.request)) {
    // The app would answer 503; Outbox keeps the request instead.
    event.respondWith(outbox.queue(event.request));
    return;
  }
  if (outbox.handle(event)) return;
  const url = new URL(event.request.url);
  if (event.request.method === 'POST' && url.pathname === '/test/app/echo') {
    event.respondWith(
      event.request.text().then(
        (body) =>
          new Response(JSON.stringify({ app: true, body }), {
            headers: { 'content-type': 'application/json' },
          }),
      ),
    );
  }
});
