/*
 * Outbox worker module: adds Outbox to a service worker of your own.
 *
 *   importScripts('/outbox/outbox-worker.js');
 *   const outbox = OutboxWorker.start({ origins: ['https://api.example.com'], tokenUrl: '/token' });
 *   self.addEventListener('fetch', (e) => { if (outbox.handle(e)) return; ... your own handling ... });
 *
 * A classic script (for `importScripts`, at the top level of your worker,
 * before your own listeners). It loads the engine (`outbox_sw.js`,
 * `outbox_sw_bg.wasm`) from beside itself, whatever your worker's URL is.
 * It never calls `skipWaiting` or `clients.claim`: your worker's life cycle
 * stays yours. Whether a request is Outbox's is decided at once, from the
 * configured origins and routes alone, so Outbox never takes a request that
 * is not on one of its routes, even while its engine starts.
 *
 * Everything that decides what happens to an Outbox request lives in the
 * Rust engine; this file registers listeners at evaluation (as browsers
 * require), keeps the engine's wasm in Cache Storage (a worker started
 * offline still works), and hands events over.
 */
(function (self) {
  'use strict';
  // Filled in by `cargo xtask build`: the engine's content hash, the route
  // facts of outbox-core (Genesys regions, default routes) and the types of
  // the page → worker messages (outbox-web's protocol).
  const BUILD = '__OUTBOX_BUILD__';
  const FACTS = __OUTBOX_FACTS__;
  const SYNC_TAG = 'outbox-flush';
  const MESSAGES = FACTS.messages;

  // This script's own URL, captured while it is evaluated: an imported
  // script has no `document.currentScript`, and `self.location` is the
  // importing worker's URL. The first script URL of the stack is this one.
  const SCRIPT = (function () {
    const stack = String(new Error().stack || '');
    const found = stack.match(/(?:https?|file):\/\/[^\s()@]+?\.[cm]?js(?=[?#:]|$)/m);
    return found ? found[0] : self.location.href;
  })();

  let glueLoaded = false;
  let started = null;

  /** The request ownership test: method, origin and path template alone. */
  function matcher(config) {
    const origins = new Set();
    const add = (url) => {
      try {
        origins.add(new URL(url).origin);
      } catch (e) {
        throw new Error('OutboxWorker: `' + url + '` is not a URL');
      }
    };
    (config.origins || []).forEach(add);
    if (config.genesysRegions !== false) FACTS.regions.forEach((r) => add('https://api.' + r));
    if (config.apiBase) add(config.apiBase);
    else if (config.region) add('https://api.' + config.region);
    const routes = (config.defaultRoutes === false ? [] : FACTS.routes).concat(
      (config.routes || []).map((r) => ({ method: r.method || 'POST', path: r.path })),
    );
    const compiled = routes.map((r) => ({
      method: String(r.method).toUpperCase(),
      segments: String(r.path).split('/'),
    }));
    return function owns(request) {
      let url;
      try {
        url = new URL(request.url);
      } catch (e) {
        return false;
      }
      if (!origins.has(url.origin)) return false;
      const method = request.method.toUpperCase();
      const parts = url.pathname.split('/');
      return compiled.some(
        (route) =>
          route.method === method &&
          route.segments.length === parts.length &&
          route.segments.every((s, i) =>
            s.startsWith('{') && s.endsWith('}') ? parts[i] !== '' : s === parts[i],
          ),
      );
    };
  }

  /**
   * Starts Outbox in this worker. Call it once, at the top level of the
   * worker script (listeners must be added while the script is evaluated).
   * `config` is the configuration object of `Outbox.open` (or its JSON);
   * `options.base` overrides where the engine files are (default: beside
   * this script).
   */
  function start(config, options) {
    if (started) throw new Error('OutboxWorker.start runs once per worker');
    const json = typeof config === 'string' ? config || '{}' : JSON.stringify(config || {});
    const owns = matcher(JSON.parse(json));
    const base = options && options.base ? new URL(options.base, self.location.href).href : SCRIPT;
    if (!glueLoaded) {
      // Defines `outbox_wasm_bindgen` (the engine's no-modules glue).
      importScripts(new URL('outbox_sw.js', base).href);
      glueLoaded = true;
    }
    // A global lexical binding of the glue script (`let`), not a property of `self`.
    // eslint-disable-next-line no-undef
    const glue = outbox_wasm_bindgen;
    const cacheName = 'outbox-engine-' + BUILD;
    const wasmUrl = new URL('outbox_sw_bg.wasm', base).href;
    let engine = null; // Promise of the wasm OutboxWorker while starting or started

    async function wasmResponse() {
      const cache = await caches.open(cacheName);
      const hit = await cache.match(wasmUrl);
      if (hit) return hit;
      const fresh = await fetch(wasmUrl, { cache: 'no-cache' });
      if (!fresh.ok) throw new Error('cannot load ' + wasmUrl + ': HTTP ' + fresh.status);
      await cache.put(wasmUrl, fresh.clone());
      return fresh;
    }

    function ready() {
      if (!engine) {
        engine = (async () => {
          await glue({ module_or_path: wasmResponse() });
          return glue.OutboxWorker.start(json);
        })();
        // Never keep a failed start for the worker's life: the next event tries again.
        engine.catch((err) => {
          console.error('[outbox] engine failed to start:', err);
          engine = null;
        });
      }
      return engine;
    }

    self.addEventListener('install', (event) => {
      event.waitUntil(wasmResponse());
    });
    self.addEventListener('activate', (event) => {
      event.waitUntil(
        (async () => {
          for (const key of await caches.keys()) {
            if (key.startsWith('outbox-engine-') && key !== cacheName) await caches.delete(key);
          }
          await ready().catch(() => {});
        })(),
      );
    });
    self.addEventListener('message', (event) => {
      const data = event.data;
      if (!data || !MESSAGES.includes(data.type)) return;
      const source = event.source && event.source.id;
      event.waitUntil(
        ready()
          .then((w) => w.handleMessage(data, source || undefined))
          .then(
            () => event.ports[0] && event.ports[0].postMessage({ type: data.type, ok: true }),
            (err) => {
              console.error('[outbox] message failed:', err);
              if (event.ports[0]) event.ports[0].postMessage({ type: data.type, ok: false });
            },
          ),
      );
    });
    self.addEventListener('sync', (event) => {
      if (event.tag !== SYNC_TAG) return;
      event.waitUntil(ready().then((w) => w.handleSync(event.tag, event.lastChance)));
    });

    function respond(request, clientId) {
      return ready().then(
        (w) => w.respond(request, clientId || undefined),
        () => fetch(request), // no engine: behave as if there were no Outbox
      );
    }

    started = {
      /** Whether `request` is on one of Outbox's routes (synchronous). */
      owns,
      /** Takes a fetch event Outbox owns (`respondWith`) and returns true; false for any other. */
      handle(event) {
        if (!owns(event.request)) return false;
        const answer = respond(event.request, event.clientId);
        event.respondWith(answer);
        event.waitUntil(answer.catch(() => {}));
        return true;
      },
      /** Outbox's answer to a request it owns: forwarded live, or kept (202). */
      respond,
      /** Keeps a request at once, without a live attempt (your handler answered 503): 202, or 507/413. */
      queue(request) {
        if (!owns(request)) return Promise.reject(new Error('not on an Outbox route: ' + request.url));
        return ready().then((w) => w.queue(request));
      },
      /** Flushes now; resolves with `{delivered, attempts}`. */
      flush() {
        return ready().then((w) => w.flush());
      },
      /** Resolves once the engine has started. */
      ready() {
        return ready().then(() => undefined);
      },
    };
    ready().catch(() => {}); // a (re)started worker flushes what waited
    return started;
  }

  self.OutboxWorker = { start };
})(self);
