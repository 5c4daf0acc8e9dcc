// Outbox's page module loads its wasm with `new URL(…, import.meta.url)`:
// `vite build` emits it; `vite dev` must not pre-bundle the package.
export default {
  optimizeDeps: { exclude: ['outbox-genesys'] },
  build: { target: 'es2022' },
};
