/**
 * Where tokens come from when the core asks for one (`TOKENS`): a
 * same-origin token URL (`{access_token, expires_in}`: your token broker,
 * which holds the client secret on the server), else someone who can ask
 * the app (a worker posts `TOKEN_REFRESH_REQUIRED` to its pages; a page
 * calls the app's `getToken`). Tokens are kept by the core, in memory
 * only.
 */

import { fetchWithin } from './transport.js';

/** A token as it came: `[origin, token, expiresIn seconds | null]`. */
export type Came = [string, string, number | null];

/** A fresh token and its lifetime in seconds, if known. */
export interface Fresh {
  token: string;
  expiresIn: number | null;
}

/** Resolves a relative URL against this context's location. */
export function absolute(url: string): string {
  try {
    return new URL(url, location.href).href;
  } catch {
    return url;
  }
}

/** Fetches a token from a token URL: `{access_token, expires_in}`. */
export async function fetchToken(tokenUrl: string): Promise<Fresh | null> {
  const controller = new AbortController();
  const request = new Request(absolute(tokenUrl), {
    headers: { accept: 'application/json' },
    signal: controller.signal,
  });
  const response = await fetchWithin(request, 10_000, controller);
  if (!(response instanceof Response) || !response.ok) return null;
  try {
    const body = (await response.json()) as { access_token?: unknown; expires_in?: unknown };
    if (typeof body.access_token !== 'string') return null;
    return {
      token: body.access_token,
      expiresIn: typeof body.expires_in === 'number' ? body.expires_in : null,
    };
  } catch {
    return null;
  }
}

export class TokenSource {
  constructor(
    private readonly tokenUrl: string | null,
    /** Asks someone for a token of an origin (answered later, with `token`). */
    private readonly asker: ((origin: string) => void) | null,
  ) {}

  /** A token for each origin, from the token URL; else the asker is asked. */
  async ask(origins: readonly string[]): Promise<Came[]> {
    const came: Came[] = [];
    for (const origin of origins) {
      const fresh = this.tokenUrl ? await fetchToken(this.tokenUrl) : null;
      if (fresh) came.push([origin, fresh.token, fresh.expiresIn]);
      else this.asker?.(origin);
    }
    return came;
  }
}
