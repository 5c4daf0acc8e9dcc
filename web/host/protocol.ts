/**
 * The page ↔ service worker messages: every message that crosses
 * `postMessage` between an Outbox page and the Outbox worker, one type and
 * one reader. A message is a plain object, `{type, …fields}`:
 *
 * | `type` | direction | fields | meaning |
 * |---|---|---|---|
 * | `TOKEN_UPDATED` | page → worker | `token`, `origin?`, `expiresIn?` | a fresh token, for one origin or every configured one; kept in memory only |
 * | `flush` | page → worker | — | deliver what is due now |
 * | `online` | page → worker | — | the page saw `online` (workers get no such event in Chromium): what waited only for the network is due |
 * | `OUTBOX_REPLAY` | page → worker | `key` | the page is about to send a request itself: let the next request of this client with this replay key pass untouched; acknowledged on the transferred port |
 * | `TOKEN_REFRESH_REQUIRED` | worker → page | `origin`, `queueId` | entries wait for a token of `origin`: the page asks its app (`getToken`) and answers `TOKEN_UPDATED` |
 * | `OUTBOX_CONFIG` | page → worker | `config` | a page a worker controls reads its configuration (JSON text) with the worker's core: answered on the transferred port with `{ok, facts}` or `{ok: false, error}` |
 * | `OUTBOX_WAKE` | worker → page | `queueId`, `at` | the worker's next flush is due at `at` (ms since the epoch): each page keeps a timer and sends `flush` then, because an idle worker's own timer dies with it |
 *
 * Reading is strict about the messages it knows (a missing or mistyped
 * field is an error naming it) and quiet about the rest: a message with
 * another `type` — an app's own, on a worker the app shares with Outbox —
 * reads as `null` and is left to the app.
 */

export type Message =
  | { type: 'TOKEN_UPDATED'; token: string; origin?: string; expiresIn?: number }
  | { type: 'flush' }
  | { type: 'online' }
  | { type: 'OUTBOX_REPLAY'; key: string }
  | { type: 'OUTBOX_CONFIG'; config: string }
  | { type: 'TOKEN_REFRESH_REQUIRED'; queueId: string; origin: string }
  | { type: 'OUTBOX_WAKE'; queueId: string; at: number };

/** The types a worker takes from pages. */
export const TO_WORKER: readonly string[] = ['TOKEN_UPDATED', 'flush', 'online', 'OUTBOX_REPLAY', 'OUTBOX_CONFIG'];

function field(data: Record<string, unknown>, type: string, name: string, kind: 'string' | 'number', optional: boolean): unknown {
  const v = data[name];
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new Error(`${type}: field \`${name}\` missing`);
  }
  if (typeof v !== kind || (kind === 'number' && !Number.isFinite(v))) {
    throw new Error(`${type}: field \`${name}\` not a ${kind}`);
  }
  return v;
}

/** Reads a received `data`: `null` when it is not an Outbox message. */
export function readMessage(data: unknown): Message | null {
  if (!data || typeof data !== 'object') return null;
  const d = data as Record<string, unknown>;
  const type = d.type;
  const s = (name: string, optional = false) => field(d, String(type), name, 'string', optional) as string;
  const n = (name: string, optional = false) => field(d, String(type), name, 'number', optional) as number;
  switch (type) {
    case 'TOKEN_UPDATED': {
      const m: Message = { type, token: s('token') };
      const origin = s('origin', true);
      const expiresIn = n('expiresIn', true);
      if (origin !== undefined) m.origin = origin;
      if (expiresIn !== undefined) m.expiresIn = expiresIn;
      return m;
    }
    case 'flush':
    case 'online':
      return { type };
    case 'OUTBOX_REPLAY':
      return { type, key: s('key') };
    case 'OUTBOX_CONFIG':
      return { type, config: s('config') };
    case 'TOKEN_REFRESH_REQUIRED':
      return { type, queueId: s('queueId', true) ?? '', origin: s('origin') };
    case 'OUTBOX_WAKE':
      return { type, queueId: s('queueId'), at: n('at') };
    default:
      return null;
  }
}
