// The built site (dist/) served by plain Node `http`, with the token broker
// at /token (outbox-genesys/broker: it mints Genesys Cloud tokens with the
// OAuth client's credentials, which stay in this process, and hands them to
// same-origin pages only).
//
//   OUTBOX_REGION=mypurecloud.ie OUTBOX_CLIENT_ID=… OUTBOX_CLIENT_SECRET=… node server.mjs
//
// OUTBOX_LOGIN_URL replaces the region's login server (a stand-in); PORT
// (default 8080; 0 picks a free one) and HOST (default 127.0.0.1).
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { tokenBroker } from 'outbox-genesys/broker';

const env = process.env;
const broker = tokenBroker({
  clientId: env.OUTBOX_CLIENT_ID ?? '',
  clientSecret: env.OUTBOX_CLIENT_SECRET ?? '',
  region: env.OUTBOX_REGION,
  loginUrl: env.OUTBOX_LOGIN_URL,
});
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };
const root = join(import.meta.dirname, 'dist');

const server = createServer((req, res) => {
  broker(req, res, async () => {
    // Everything else: a file of dist/ (index.html for a folder).
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const file = normalize(join(root, path.endsWith('/') ? path + 'index.html' : path));
    if (!file.startsWith(root)) return void res.writeHead(403).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, {
        'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
        // A worker's script and its imports are checked for updates on every visit.
        'Cache-Control': 'no-cache',
      });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
});
server.listen(Number(env.PORT ?? 8080), env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address();
  console.log(`listening on http://${address}:${port}/`);
});
