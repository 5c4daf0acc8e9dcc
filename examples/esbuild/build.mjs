// The build: the page bundled as an ES module, and Outbox's esbuild plugin
// writing its service-worker files beside it (sw.js at the root, so that
// it controls the whole site), with outbox-manifest.json.
import { copyFileSync } from 'node:fs';
import * as esbuild from 'esbuild';
import { outbox } from 'outbox-genesys/esbuild';

await esbuild.build({
  entryPoints: ['main.ts'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  outdir: 'dist',
  plugins: [outbox({ path: '/', sw: true })],
});
copyFileSync('index.html', 'dist/index.html');
