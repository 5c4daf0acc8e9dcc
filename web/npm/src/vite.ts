/**
 * `outbox-genesys/vite`: a Vite plugin that serves Outbox's service-worker
 * files in `vite dev` (and `vite preview`) at `path` and emits them there on
 * `vite build`, with a manifest (names and hashes) for an app's own Workbox
 * precache.
 *
 *   import { outbox } from 'outbox-genesys/vite';
 *   export default { plugins: [outbox({ path: '/outbox/' })] };
 */
import { contentType, folder, manifestJson, manifestName, outboxFiles, type OutboxFilesOptions } from './files.js';

export type { OutboxFile, OutboxFilesOptions } from './files.js';
export { outboxFiles } from './files.js';

/** The part of a request the plugin reads. */
export interface DevRequest {
  url?: string;
  method?: string;
}

/** The part of a response the plugin writes. */
export interface DevResponse {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body?: Uint8Array | string): unknown;
}

/** A connect-style middleware. */
export type DevMiddleware = (req: DevRequest, res: DevResponse, next: (error?: unknown) => void) => void;

/** The part of Vite's dev and preview servers the plugin uses. */
export interface DevServer {
  middlewares: { use(handler: DevMiddleware): unknown };
}

/** The part of Rollup's plugin context the plugin uses. */
export interface EmitContext {
  emitFile(file: { type: 'asset'; fileName: string; source: string | Uint8Array }): string;
}

/** A Vite plugin (structurally: no dependency on Vite's own types). */
export interface OutboxVitePlugin {
  name: 'outbox-genesys';
  configureServer(server: DevServer): void;
  configurePreviewServer(server: DevServer): void;
  generateBundle(this: EmitContext): void;
}

/** The middleware answering `GET`/`HEAD` of the files (and the manifest), `no-cache`. */
export function outboxMiddleware(options: OutboxFilesOptions = {}): DevMiddleware {
  const base = folder(options.path);
  const manifest = manifestName(options);
  return (req, res, next) => {
    const url = (req.url ?? '').split(/[?#]/)[0] ?? '';
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !url.startsWith(base)) return next();
    const name = url.slice(base.length);
    // Read at each request: a reinstalled package is served at once.
    const files = outboxFiles(options);
    const file = files.find((f) => f.name === name);
    const body = file ? file.source : name === manifest ? manifestJson(files) : null;
    if (body === null) return next();
    res.statusCode = 200;
    res.setHeader('Content-Type', contentType(name));
    res.setHeader('Cache-Control', 'no-cache');
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}

/** The Vite plugin: `plugins: [outbox({ path: '/outbox/' })]` (options: `OutboxFilesOptions`). */
export function outbox(options: OutboxFilesOptions = {}): OutboxVitePlugin {
  const middleware = outboxMiddleware(options);
  return {
    name: 'outbox-genesys',
    configureServer(server) {
      server.middlewares.use(middleware);
    },
    configurePreviewServer(server) {
      // `vite preview` serves what the build emitted; the same answer
      // before a build, rather than the HTML fallback.
      server.middlewares.use(middleware);
    },
    generateBundle() {
      const files = outboxFiles(options);
      const dir = folder(options.path).slice(1);
      for (const file of files) this.emitFile({ type: 'asset', fileName: dir + file.name, source: file.source });
      const manifest = manifestName(options);
      if (manifest) this.emitFile({ type: 'asset', fileName: dir + manifest, source: manifestJson(files) });
    },
  };
}

export default outbox;
