#!/usr/bin/env node
// `npx outbox-genesys copy-worker <dir>`: copies Outbox's service-worker
// files into <dir> (your site's public folder, as served):
//   sw.js             the stand-alone service worker (a site without one of its own)
//   outbox-worker.js  the worker module (importScripts from a worker of your own)
//   outbox-core.js    the core: one wasm module for the worker and the page,
//                     which both load it from beside themselves
// Every file it writes starts with a marker line (a comment); a file in
// <dir> without it is the app's own and is never overwritten (unless --force).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url)); // the package folder
const FILES = ['worker/sw.js', 'worker/outbox-worker.js', 'outbox-core.js'];
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
/** The first line of every file copy-worker writes (no quote: outbox-core.js's module is the text between its quotes). */
const MARK = '// Written by outbox-genesys copy-worker';
const USAGE = `usage: outbox-genesys copy-worker <dir> [--no-sw] [--force]

Copies sw.js, outbox-worker.js and outbox-core.js into <dir>.
  --no-sw          leave out sw.js (your site has a service worker of its own)
  --force          overwrite files copy-worker did not write
  --no-page-wasm   accepted for older scripts; nothing to leave out any more
                   (the core is one file for the page and the worker)
Each file written starts with the line \`${MARK} …\`; a file in <dir>
without that line is yours, and copy-worker stops rather than overwrite it.
`;

const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const OPTIONS = ['--no-page-wasm', '--no-sw', '--force'];
const [command, dir, ...rest] = args;
const unknown = rest.filter((a) => !OPTIONS.includes(a));
if (command !== 'copy-worker' || !dir || dir.startsWith('--') || unknown.length > 0) {
  process.stderr.write(
    (command && command !== 'copy-worker' ? `unknown command \`${command}\`\n` : '') +
      (unknown.length ? `unknown option \`${unknown[0]}\`\n` : '') +
      USAGE,
  );
  process.exit(2);
}
const force = rest.includes('--force');
const files = rest.includes('--no-sw') ? FILES.filter((f) => f !== 'worker/sw.js') : FILES;
const target = resolve(dir);
const plan = files.map((file) => ({ from: join(root, file), to: join(target, file.replace(/^worker[\\/]/, '')) }));
// Check every file before writing any: all or nothing.
const theirs = plan.filter(({ to }) => existsSync(to) && !readFileSync(to, 'utf8').startsWith(MARK));
if (theirs.length > 0 && !force) {
  process.stderr.write(
    theirs.map(({ to }) => `${to} exists and was not written by copy-worker: not overwritten\n`).join('') +
      (theirs.some(({ to }) => to.endsWith('sw.js') && !to.endsWith('outbox-worker.js'))
        ? 'Your site has a service worker of its own? Add --no-sw (or copy into a folder of its own, e.g. public/outbox).\n'
        : '') +
      'Add --force to overwrite.\n',
  );
  process.exit(1);
}
mkdirSync(target, { recursive: true });
for (const { from, to } of plan) {
  writeFileSync(to, `${MARK} ${version}: do not edit, copy-worker replaces it\n`);
  writeFileSync(to, readFileSync(from), { flag: 'a' });
  process.stdout.write(`${to}\n`);
}
