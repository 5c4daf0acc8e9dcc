/*
 * Outbox service worker shim.
 *
 * Register it with the configuration in its URL:
 *   navigator.serviceWorker.register('/sw.js?config=' + encodeURIComponent(JSON.stringify(config)))
 * (the page API's `registerServiceWorker` does this for you).
 *
 * Everything that decides lives in the Rust engine (outbox_sw_bg.wasm). This file only
 * registers the listeners during the first evaluation, as browsers require, and loads the
 * engine from Cache Storage so that a worker started while offline still works.
 */
'use strict';
importScripts('./outbox_sw.js'); // wasm-bindgen glue (no-modules): defines `wasm_bindgen`

const BUILD = '__OUTBOX_BUILD__'; // the engine's content hash, set by `cargo xtask build`
const CACHE = 'outbox-engine-' + BUILD;
const WASM = new URL('./outbox_sw_bg.wasm', self.location).href;
const CONFIG = new URL(self.location.href).searchParams.get('config') || '{}';

let engine = null; // Promise<OutboxWorker> while starting or started
let started = null; // the OutboxWorker once started

async function wasmResponse() {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(WASM);
  if (hit) return hit;
  const fresh = await fetch(WASM, { cache: 'no-cache' });
  if (!fresh.ok) throw new Error('cannot load ' + WASM + ': HTTP ' + fresh.status);
  await cache.put(WASM, fresh.clone());
  return fresh;
}

function ready() {
  if (!engine) {
    engine = (async () => {
      await wasm_bindgen({ module_or_path: wasmResponse() });
      started = await wasm_bindgen.OutboxWorker.start(CONFIG);
      return started;
    })();
    // Never keep a rejected start for the worker's life: the next event tries again.
    engine.catch((err) => {
      console.error('[outbox] engine failed to start:', err);
      engine = null;
    });
  }
  return engine;
}

self.addEventListener('install', (event) => {
  event.waitUntil(wasmResponse().then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith('outbox-engine-') && key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
    await ready().catch(() => {});
  })());
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'POST') return;
  // A page's own Outbox replay (see REPLAY_REFERRER_PATH): never queue it again.
  if (request.referrer.endsWith('/__outbox_replay__')) return;
  if (started && !started.isCandidate(request.method, request.url)) return;
  const answer = ready().then(
    (w) => (w.isCandidate(request.method, request.url) ? w.respond(request) : fetch(request)),
    () => fetch(request), // no engine: behave as if there were no worker
  );
  event.respondWith(answer);
  event.waitUntil(answer.catch(() => {}));
});

self.addEventListener('message', (event) => {
  event.waitUntil(ready().then((w) => w.handleMessage(event.data)).catch((err) => {
    console.error('[outbox] message failed:', err);
  }));
});

self.addEventListener('sync', (event) => {
  event.waitUntil(ready().then((w) => w.handleSync(event.tag, event.lastChance)));
});

ready().catch(() => {}); // a (re)started worker flushes what waited
