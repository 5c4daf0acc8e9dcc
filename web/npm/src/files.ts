/**
 * The files an app's site serves for Outbox's service worker, as the
 * bundler plugins (`outbox-genesys/vite`, `outbox-genesys/esbuild`) serve
 * and emit them, with the manifest an app's own Workbox precache reads.
 * Node only (build tools).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Options of the bundler plugins. */
export interface OutboxFilesOptions {
  /**
   * The URL folder the files are served at and emitted under (default
   * `/outbox/`). Your own worker imports `<path>outbox-worker.js`, or, bundled,
   * passes `{ base: '<path>' }` to `start`. `/` puts them at the root, where
   * the stand-alone `sw.js` must be to control the whole site.
   */
  path?: string;
  /** Also serve and emit Outbox's stand-alone worker, `<path>sw.js` (default `false`: your site has a worker of its own). */
  sw?: boolean;
  /** The manifest's file name, in `path` (default `outbox-manifest.json`); `false`: none. */
  manifest?: string | false;
}

/**
 * One file, as a Workbox precache manifest entry (`{url, revision}`) with
 * where it comes from. The names stay the same from version to version (a
 * worker's script URL and what it imports must): `revision` (a hash of the
 * content) is what changes.
 */
export interface OutboxFile {
  /** Where the site serves it, e.g. `/outbox/outbox-core.js`. */
  url: string;
  /** The first 16 hex digits of the content's SHA-256. */
  revision: string;
  /** Its name in `path`. */
  name: string;
  /** Its content. */
  source: Uint8Array;
}

/** The package's files, by the name they are served under. */
const SOURCES: Record<string, string> = {
  'sw.js': './worker/sw.js',
  'outbox-worker.js': './worker/outbox-worker.js',
  'outbox-core.js': './outbox-core.js',
};

/** `path` as a folder URL: a leading and a trailing `/`. */
export function folder(path: string | undefined): string {
  const p = path ?? '/outbox/';
  if (/^[a-z]+:|\/\/|\.\./i.test(p)) throw new Error(`outbox: path must be a folder of your site, like /outbox/ (got ${p})`);
  return ('/' + p + '/').replace(/\/+/g, '/');
}

/** The files the options name, read from this package. */
export function outboxFiles(options: OutboxFilesOptions = {}): OutboxFile[] {
  const base = folder(options.path);
  return Object.entries(SOURCES)
    .filter(([name]) => name !== 'sw.js' || options.sw === true)
    .map(([name, from]) => {
      const source = new Uint8Array(readFileSync(fileURLToPath(new URL(from, import.meta.url))));
      const revision = createHash('sha256').update(source).digest('hex').slice(0, 16);
      return { url: base + name, revision, name, source };
    });
}

/** The manifest's name, or `null` for none. */
export function manifestName(options: OutboxFilesOptions = {}): string | null {
  return options.manifest === false ? null : (options.manifest ?? 'outbox-manifest.json');
}

/** The manifest: `{ "files": [{ "url", "revision" }] }` (Workbox's `additionalManifestEntries` takes `files`). */
export function manifestJson(files: OutboxFile[]): string {
  return JSON.stringify({ files: files.map(({ url, revision }) => ({ url, revision })) }, null, 2) + '\n';
}

/** The content type a file is served with. */
export function contentType(name: string): string {
  return name.endsWith('.json') ? 'application/json' : 'text/javascript';
}
