// Outbox's Vite plugin serves its service-worker files at /outbox/ in
// `vite dev` and `vite preview`, and emits them there on `vite build`, with
// /outbox/outbox-manifest.json (names and hashes, for a Workbox precache).
// With OUTBOX_CLIENT_ID and OUTBOX_CLIENT_SECRET set (and OUTBOX_REGION,
// e.g. mypurecloud.ie, or OUTBOX_LOGIN_URL), the dev server also answers
// the page's tokens at /token (outbox-genesys/broker: same-origin pages only).
import { defineConfig, type Plugin } from 'vite';
import { outbox } from 'outbox-genesys/vite';
import { tokenBroker } from 'outbox-genesys/broker';

const env = process.env;
const broker =
  env.OUTBOX_CLIENT_ID && env.OUTBOX_CLIENT_SECRET
    ? tokenBroker({
        clientId: env.OUTBOX_CLIENT_ID,
        clientSecret: env.OUTBOX_CLIENT_SECRET,
        region: env.OUTBOX_REGION,
        loginUrl: env.OUTBOX_LOGIN_URL,
      })
    : null;

/** The token broker as dev (and preview) server middleware. */
const tokens: Plugin = {
  name: 'token-broker',
  configureServer(server) {
    if (broker) server.middlewares.use(broker);
  },
  configurePreviewServer(server) {
    if (broker) server.middlewares.use(broker);
  },
};

export default defineConfig({
  plugins: [outbox({ path: '/outbox/' }), tokens],
  // The page module loads its core with `new URL('outbox-core.js', import.meta.url)`:
  // `vite build` emits it; `vite dev` must not pre-bundle the package.
  optimizeDeps: { exclude: ['outbox-genesys'] },
  build: { target: 'es2022' },
});
