/**
 * `outbox-genesys/esbuild`: an esbuild plugin that writes Outbox's
 * service-worker files into the build's output folder at `path` (so that
 * `esbuild --serve` and any static server serve them), with a manifest
 * (names and hashes) for an app's own Workbox precache.
 *
 *   import { outbox } from 'outbox-genesys/esbuild';
 *   await esbuild.build({ entryPoints: ['main.ts'], bundle: true, format: 'esm', outdir: 'dist', plugins: [outbox({ path: '/' , sw: true })] });
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { folder, manifestJson, manifestName, outboxFiles, type OutboxFilesOptions } from './files.js';

export type { OutboxFile, OutboxFilesOptions } from './files.js';
export { outboxFiles } from './files.js';

/** The part of esbuild's plugin build the plugin uses. */
export interface PluginBuild {
  initialOptions: { outdir?: string; outfile?: string; absWorkingDir?: string };
  onEnd(callback: (result: { errors: unknown[] }) => void): void;
}

/** An esbuild plugin (structurally: no dependency on esbuild's own types). */
export interface OutboxEsbuildPlugin {
  name: 'outbox-genesys';
  setup(build: PluginBuild): void;
}

/** The esbuild plugin: `plugins: [outbox({ path: '/outbox/' })]` (options: `OutboxFilesOptions`); needs `outdir` or `outfile`. */
export function outbox(options: OutboxFilesOptions = {}): OutboxEsbuildPlugin {
  return {
    name: 'outbox-genesys',
    setup(build) {
      const { outdir, outfile, absWorkingDir } = build.initialOptions;
      const out = outdir ?? (outfile ? dirname(outfile) : null);
      if (out === null) throw new Error('outbox-genesys/esbuild: the build needs outdir or outfile (the files go beside it)');
      const dir = join(absWorkingDir ?? process.cwd(), out, ...folder(options.path).split('/').filter(Boolean));
      build.onEnd((result) => {
        if (result.errors.length > 0) return;
        mkdirSync(dir, { recursive: true });
        const files = outboxFiles(options);
        for (const file of files) writeFileSync(join(dir, file.name), file.source);
        const manifest = manifestName(options);
        if (manifest) writeFileSync(join(dir, manifest), manifestJson(files));
      });
    },
  };
}

export default outbox;
