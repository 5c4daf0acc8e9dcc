#!/usr/bin/env node
// `npx outbox-genesys copy-worker <dir>`: copies Outbox's service-worker
// files into <dir> (your site's public folder, as served):
//   sw.js             the stand-alone service worker (a site without one of its own)
//   outbox-worker.js  the worker module (importScripts from a worker of your own)
//   outbox-core.js    the core: one wasm module for the worker and the page,
//                     which both load it from beside themselves
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url)); // the package folder
const FILES = ['worker/sw.js', 'worker/outbox-worker.js', 'outbox-core.js'];
const USAGE = `usage: outbox-genesys copy-worker <dir>

Copies sw.js, outbox-worker.js and outbox-core.js into <dir>.
  --no-page-wasm   accepted for older scripts; nothing to leave out any more
                   (the core is one file for the page and the worker)
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
for (const file of FILES) {
  const to = join(target, file.replace(/^worker[\\/]/, ''));
  copyFileSync(join(root, file), to);
  process.stdout.write(`${to}\n`);
}
