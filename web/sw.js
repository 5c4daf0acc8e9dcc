/*
 * Outbox's stand-alone service worker, for a site that has none of its own.
 *
 * Register it with the configuration in its URL (the page API's
 * `registerServiceWorker` does this for you):
 *   navigator.serviceWorker.register('/sw.js?config=' + encodeURIComponent(JSON.stringify(config)))
 *
 * It is the worker module (`outbox-worker.js`, which a site with a worker of
 * its own imports instead) plus the life cycle of a worker that is alone:
 * a new version takes over at once (`skipWaiting`) unless the URL says
 * `skipWaiting=0` (`registerServiceWorker(url, { skipWaiting: false })`):
 * then it waits until the old one's pages are closed or a page posts it
 * `{type: 'SKIP_WAITING'}`. It controls the pages of its scope once active
 * (`clients.claim`).
 * Build: __OUTBOX_BUILD__ (the core's content hash; a new core changes this file).
 */
'use strict';
importScripts('./outbox-worker.js');

const params = new URL(self.location.href).searchParams;
const outbox = OutboxWorker.start(params.get('config') || '{}');

self.addEventListener('install', () => {
  if (params.get('skipWaiting') !== '0') self.skipWaiting();
});
self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'SKIP_WAITING') self.skipWaiting();
});
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  outbox.handle(event); // Outbox's routes only; every other request goes to the network as usual
});
