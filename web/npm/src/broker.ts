/**
 * `outbox-genesys/broker`: a same-origin token broker for Node — the
 * `tokenUrl` the outbox fetches its tokens from. It mints a Genesys Cloud
 * token with your OAuth client's credentials (client-credentials grant; the
 * secret stays in the server process) and hands it only to pages of the
 * server's own origin (`Sec-Fetch-Site: same-origin`, or a matching
 * `Origin`), `403` otherwise. Every request mints a new token, so that a page
 * refused one (`401`) gets a different one; the outbox keeps the token in
 * memory until it expires.
 *
 *   import { createServer } from 'node:http';
 *   import { tokenBroker } from 'outbox-genesys/broker';
 *   const broker = tokenBroker({ region: 'mypurecloud.ie', clientId, clientSecret });
 *   createServer((req, res) => broker(req, res, () => { res.statusCode = 404; res.end(); })).listen(8080);
 *
 * Put it behind your own sign-in: the broker hands a token to any page of
 * your origin.
 */

/** Options of `tokenBroker`. */
export interface TokenBrokerOptions {
  /** The OAuth client's id. */
  clientId: string;
  /** The OAuth client's secret (server-side only). */
  clientSecret: string;
  /** A Genesys Cloud region domain, e.g. `mypurecloud.ie`: tokens from `https://login.<region>/oauth/token`. */
  region?: string;
  /** The login server's base URL instead of a region (a stand-in, such as the emulator). */
  loginUrl?: string;
  /** The URL path it answers (default `/token`); `null`: every path it is given (mounted under one already). */
  path?: string | null;
}

/** The part of a request the broker reads (Node's `IncomingMessage` has it). */
export interface BrokerRequest {
  url?: string;
  method?: string;
  headers: Record<string, string | string[] | undefined>;
}

/** The part of a response the broker writes (Node's `ServerResponse` has it). */
export interface BrokerResponse {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body?: string): unknown;
}

/** A connect-style handler: Node `http`, Express, Vite's dev server (`server.middlewares.use`). */
export type TokenBroker = (req: BrokerRequest, res: BrokerResponse, next?: (error?: unknown) => void) => void;

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Whether the request comes from a page of the server's own origin. */
function sameOrigin(req: BrokerRequest): boolean {
  const site = one(req.headers['sec-fetch-site']);
  if (site !== undefined) return site === 'same-origin';
  const origin = one(req.headers['origin']);
  const host = one(req.headers['host']);
  if (origin === undefined || host === undefined) return false;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** The token broker's handler. */
export function tokenBroker(options: TokenBrokerOptions): TokenBroker {
  const { clientId, clientSecret } = options;
  if (!clientId || !clientSecret) throw new Error('outbox-genesys/broker: clientId and clientSecret are needed');
  const login = options.loginUrl ?? (options.region ? `https://login.${options.region}` : null);
  if (!login) throw new Error('outbox-genesys/broker: give a region (e.g. mypurecloud.ie) or a loginUrl');
  const endpoint = new URL('/oauth/token', login).href;
  const basic = Buffer.from(`${clientId}:${clientSecret}`).toString('base64');
  const path = options.path === undefined ? '/token' : options.path;
  const answer = (res: BrokerResponse, status: number, body: object) => {
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Cache-Control', 'no-store');
    res.end(JSON.stringify(body));
  };
  return (req, res, next) => {
    const url = (req.url ?? '/').split(/[?#]/)[0];
    if (path !== null && url !== path) {
      if (next) return next();
      return answer(res, 404, { error: 'not-found' });
    }
    if (req.method !== 'GET') return answer(res, 405, { error: 'method-not-allowed' });
    if (!sameOrigin(req)) {
      return answer(res, 403, { error: 'forbidden', message: 'tokens are handed to same-origin pages only' });
    }
    void (async () => {
      try {
        const r = await fetch(endpoint, {
          method: 'POST',
          headers: {
            authorization: `Basic ${basic}`,
            accept: 'application/json',
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: 'grant_type=client_credentials',
          signal: AbortSignal.timeout(15_000),
        });
        const text = await r.text();
        const grant = r.ok ? (JSON.parse(text) as { access_token?: unknown; expires_in?: unknown }) : null;
        if (!grant || typeof grant.access_token !== 'string') {
          return answer(res, 502, { error: 'token-upstream', message: `${endpoint}: HTTP ${r.status} ${text.slice(0, 200)}` });
        }
        answer(res, 200, {
          access_token: grant.access_token,
          token_type: 'bearer',
          expires_in: typeof grant.expires_in === 'number' ? grant.expires_in : 3600,
        });
      } catch (e) {
        answer(res, 502, { error: 'token-upstream', message: `${endpoint}: ${e instanceof Error ? e.message : String(e)}` });
      }
    })();
  };
}

export default tokenBroker;
