#!/usr/bin/env node
// `npx outbox-genesys copy-worker <dir>`: copies Outbox's service-worker
// files into <dir> (your site's public folder, as served), and the page
// API's wasm for bundlers that do not emit it themselves (esbuild):
//   sw.js               the stand-alone service worker (a site without one of its own)
//   outbox-worker.js    the worker module (importScripts from a worker of your own)
//   outbox_sw.js, outbox_sw_bg.wasm   the engine both load from beside themselves
//   outbox_page_bg.wasm the page engine (default `init()` loads it beside the bundle)
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url)); // the package folder
const WORKER = ['sw.js', 'outbox-worker.js', 'outbox_sw.js', 'outbox_sw_bg.wasm'];
const USAGE = `usage: outbox-genesys copy-worker <dir> [--no-page-wasm]

Copies ${WORKER.join(', ')} and outbox_page_bg.wasm into <dir>.
  --no-page-wasm   leave out outbox_page_bg.wasm (your bundler emits it, e.g. Vite)
`;

const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const [command, dir, ...rest] = args;
const unknown = rest.filter((a) => a !== '--no-page-wasm');
if (command !== 'copy-worker' || !dir || unknown.length > 0) {
  process.stderr.write(
    (command && command !== 'copy-worker' ? `unknown command \`${command}\`\n` : '') +
      (unknown.length ? `unknown option \`${unknown[0]}\`\n` : '') +
      USAGE,
  );
  process.exit(2);
}
const target = resolve(dir);
mkdirSync(target, { recursive: true });
const files = WORKER.map((f) => join('worker', f));
if (!rest.includes('--no-page-wasm')) files.push('outbox_page_bg.wasm');
for (const file of files) {
  const to = join(target, file.replace(/^worker[\\/]/, ''));
  copyFileSync(join(root, file), to);
  process.stdout.write(`${to}\n`);
}
