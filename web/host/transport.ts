/**
 * Sending with `fetch`, with a timeout, in a page or a worker alike; and
 * reading an answer into the form the core classifies (status, headers,
 * and the body of an error, up to 64 KiB).
 */

import type { Part } from './frame.js';

/** A request the core asks to send (`SEND`, `LIVE`). */
export interface Outgoing {
  method: string;
  url: string;
  headers: [string, string][];
  timeoutMs: number;
  unknownOutcome: boolean;
}

/** Largest error body read back (only error details are looked at). */
const ERROR_BODY_LIMIT = 64 * 1024;

/** A thrown value as text: `TypeError: Failed to fetch`. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.name ? `${e.name}: ${e.message}` : e.message;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

/** The failure of a send, as the core takes it. */
export function failed(kind: 'network' | 'timeout', message: string): Part[] {
  return [{ json: JSON.stringify({ error: kind, message }) }, null];
}

/** A `fetch` that gives up after `ms`: the response, or why not. */
export async function fetchWithin(
  request: Request,
  ms: number,
  controller: AbortController,
): Promise<Response | Part[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.min(ms, 2_147_483_647));
  });
  try {
    const outcome = await Promise.race([fetch(request), timeout]);
    if (outcome === 'timeout') {
      controller.abort();
      return failed('timeout', `no answer within ${ms} ms`);
    }
    return outcome;
  } catch (e) {
    return failed('network', errorText(e));
  } finally {
    clearTimeout(timer);
  }
}

/** The `Request` of what the core asks to send (credentials omitted, no caching). */
export function request(q: Outgoing, body: Uint8Array, controller: AbortController): Request {
  const headers = new Headers();
  for (const [name, value] of q.headers) headers.append(name, value);
  const init: RequestInit = {
    method: q.method,
    headers,
    mode: 'cors',
    credentials: 'omit',
    cache: 'no-store',
    signal: controller.signal,
  };
  if (body.byteLength > 0 && q.method !== 'GET' && q.method !== 'HEAD') init.body = body as Uint8Array<ArrayBuffer>;
  return new Request(q.url, init);
}

/** An answer as the core takes it: `{status, headers}` and the body of an error. */
export async function read(response: Response): Promise<Part[]> {
  const headers: [string, string][] = [];
  response.headers.forEach((value, name) => headers.push([name, value]));
  let body: Uint8Array = new Uint8Array(0);
  if (response.status >= 300) {
    try {
      const all = new Uint8Array(await response.arrayBuffer());
      body = all.subarray(0, ERROR_BODY_LIMIT);
    } catch {
      // An error body that cannot be read is an empty one.
    }
  }
  return [{ json: JSON.stringify({ status: response.status, headers }) }, body];
}

/**
 * Sends one request and reads its answer; `before` runs once the request
 * is built (a controlled page announces its replay then).
 */
export async function send(
  q: Outgoing,
  body: Uint8Array,
  before?: (request: Request) => Promise<void>,
): Promise<Part[]> {
  const controller = new AbortController();
  let r: Request;
  try {
    r = request(q, body, controller);
  } catch (e) {
    return failed('network', errorText(e));
  }
  if (before) await before(r);
  const outcome = await fetchWithin(r, q.timeoutMs, controller);
  return outcome instanceof Response ? read(outcome) : outcome;
}
