// Outbox's Vite plugin serves its service-worker files at /outbox/ in
// `vite dev` and `vite preview`, and emits them there on `vite build`, with
// /outbox/outbox-manifest.json (names and hashes, for a Workbox precache).
import { defineConfig } from 'vite';
import { outbox } from 'outbox-genesys/vite';

export default defineConfig({
  plugins: [outbox({ path: '/outbox/' })],
  // The page module loads its core with `new URL('outbox-core.js', import.meta.url)`:
  // `vite build` emits it; `vite dev` must not pre-bundle the package.
  optimizeDeps: { exclude: ['outbox-genesys'] },
  build: { target: 'es2022' },
});
