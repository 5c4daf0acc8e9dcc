/*
 * Outbox's stand-alone service worker, for a site that has none of its own.
 *
 * Register it with the configuration in its URL (the page API's
 * `registerServiceWorker` does this for you):
 *   navigator.serviceWorker.register('/sw.js?config=' + encodeURIComponent(JSON.stringify(config)))
 *
 * It is the worker module (`outbox-worker.js`, which a site with a worker of
 * its own imports instead) plus the life cycle of a worker that is alone:
 * it takes over at once (`skipWaiting`, `clients.claim`).
 * Build: __OUTBOX_BUILD__ (the core's content hash; a new core changes this file).
 */
'use strict';
importScripts('./outbox-worker.js');

const outbox = OutboxWorker.start(new URL(self.location.href).searchParams.get('config') || '{}');

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  outbox.handle(event); // Outbox's routes only; every other request goes to the network as usual
});
