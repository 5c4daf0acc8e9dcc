/**
 * The page API's public types: what `Outbox.open` takes, what its methods
 * resolve with, and every event. The configuration's fields are the ones
 * `outbox-core`'s parser reads (`crates/outbox-core/src/config.rs`); a test
 * (`cargo test -p xtask config_types_are_cores`) holds the two to each
 * other.
 */

/** What a lane does when its head becomes a dead letter: `hold` (later entries wait until it is retried or discarded) or `skip` (the lane goes on). */
export type OnDead = 'hold' | 'skip';

/** Configuration of an outbox: every field is optional. */
export interface OutboxConfig {
  /** Origins the routes apply to, besides every Genesys region's `https://api.<domain>` (your proxy, the emulator). */
  origins?: string[];
  /** Include the Genesys region origins (default true). */
  genesysRegions?: boolean;
  /** Include the four default message routes (default true). */
  defaultRoutes?: boolean;
  /** Extra routes. */
  routes?: OutboxRoute[];
  /** What a lane does when its head becomes a dead letter, by route name (default `hold` for every route). */
  onDead?: Record<string, OnDead>;
  /** Also carry the idempotency key in an `Idempotency-Key` header on every route without a header carrier (default false: CORS may refuse it). */
  idempotencyHeaders?: boolean;
  /** Extra (non-credential) request headers to keep at rest. */
  keepHeaders?: string[];
  /** Same-origin URL answering `{access_token, expires_in}` (your token broker). */
  tokenUrl?: string;
  /** Page only: called when a fresh token is needed and there is no `tokenUrl`. */
  getToken?: () => Promise<string | { token: string; expiresIn?: number }>;
  /** Base of the Genesys API for `sendAgentMessage`/`sendOpenMessage`, e.g. `https://api.mypurecloud.ie`; also added to `origins`. */
  apiBase?: string;
  /** A Genesys region domain, e.g. `mypurecloud.ie` (sets `apiBase`). */
  region?: string;
  /** IndexedDB database name (default "outbox"). */
  database?: string;
  /** BroadcastChannel name for events (default "outbox"). */
  channel?: string;
  /** Queue limit (default 10000); beyond it a send is refused, never the oldest dropped. */
  maxEntries?: number;
  /** Largest request kept, in bytes (default 262144). */
  maxEntryBytes?: number;
  /** Backoff (full jitter) and dead-letter limits. */
  retry?: RetryConfig;
  /** Requests per minute per origin, the burst, and the herd throttle. */
  pacer?: PacerConfig;
  /** Lane heads sent concurrently per flush cycle (default 8). */
  batchSize?: number;
  /** Timeout of a replay (default 30000 ms). */
  sendTimeoutMs?: number;
  /** How long an in-flight entry is leased (default 60000 ms; more than `sendTimeoutMs`). */
  leaseMs?: number;
  /** Timeout of the service worker's first, live attempt (default 10000 ms). */
  forwardTimeoutMs?: number;
  /** Longest `Retry-After` honoured (default 6 h). */
  retryAfterCapMs?: number;
}

/** Backoff and dead-letter limits. */
export interface RetryConfig {
  /** First backoff (default 2000 ms). */
  baseMs?: number;
  /** Backoff growth per failure (default 2). */
  factor?: number;
  /** Longest backoff (default 60000 ms). */
  capMs?: number;
  /** Server failures before a dead letter (default 25). */
  maxAttempts?: number;
  /** Age at which an entry becomes a dead letter (default 72 h). */
  maxAgeMs?: number;
  /** `401`s in a row before a dead letter (default 3; see `authWindowMs`). */
  maxAuthFailures?: number;
  /** How long a run of `401`s must span, on the clock and in the backoff schedule, before it is a dead letter (default 60 s). */
  authWindowMs?: number;
}

/** Pacing per origin. */
export interface PacerConfig {
  /** Requests a minute per origin (default 150: half of Genesys's 300 per token). */
  ratePerMinute?: number;
  /** Requests sent at once before the rate applies (default 10). */
  burst?: number;
  /** The herd throttle: one probe while an origin gives no answer, a rate that follows the server's shed share. */
  throttle?: ThrottleConfig;
}

/** The herd throttle's settings (README, "Herd safety"). */
export interface ThrottleConfig {
  /** Default `true`. */
  enabled?: boolean;
  /** Shed answers (429, 408, 502, 503, 504) tolerated without slowing, percent of recent answers (default 30). */
  tolerancePercent?: number;
  /** Each this many points of shed share beyond the tolerance halve the rate (default 5). */
  stepPercent?: number;
  /** How long the shed share takes to fade by half without answers (default 120000). */
  memoryMs?: number;
  /** The slowest rate: one request every this long (default 120000). */
  maxIntervalMs?: number;
}

/** What the herd throttle does to an origin: `probing` (it gives no answer: one request at a time) or `shedding` (its server sheds load: a reduced rate). */
export type ThrottleState =
  | { origin: string; reason: 'probing' }
  | { origin: string; reason: 'shedding'; ratePerMinute: number; shedPercent: number };

/** Configuration of a guest outbox (`Outbox.guest`). */
export interface GuestConfig {
  /** The Web Messaging deployment. */
  deploymentId: string;
  /** A Genesys Cloud region domain, e.g. `mypurecloud.ie` (socket `wss://webmessaging.<region>/v1`). */
  region?: string;
  /** The socket URL instead of a region (e.g. the emulator's `ws://127.0.0.1:8081/v1`). */
  url?: string;
  /** Base of the history endpoint (default `https://api.<region>`, or the socket's host). */
  apiBase?: string;
  /** IndexedDB database name (default "outbox-guest"). */
  database?: string;
  /** BroadcastChannel name for events (default "outbox-guest"). */
  channel?: string;
  /** Queue limit (default 10000). */
  maxEntries?: number;
  /** Backoff and dead-letter limits. */
  retry?: RetryConfig;
  /** Default 60 a minute with a burst of 1: under the 2 messages a second per session. */
  pacer?: PacerConfig;
  /** Timeout of a send, until its echo (default 15000 ms). */
  sendTimeoutMs?: number;
}

/** An extra route the outbox applies to. */
export interface OutboxRoute {
  name: string;
  /** Path template, e.g. `/chat/{room}/send`. */
  path: string;
  /** Default "POST". */
  method?: string;
  /** Lane sources: `path:NAME` or `body:a.b`; the first that yields a value wins. */
  lane: string[];
  /** Idempotency carriers: `header:NAME` or `body:a.b`. */
  carriers?: string[];
  /** A `409` means "already delivered". */
  conflictMeansDelivered?: boolean;
  /** Attach a bearer token at send time (default true). */
  needsToken?: boolean;
  /** What its lane does when its head becomes a dead letter (default `hold`). */
  onDead?: OnDead;
}

/** A request for `send`. */
export interface OutboxRequest {
  url: string;
  /** Default "POST". */
  method?: string;
  /** Any `HeadersInit`: a `Headers`, pairs, or a record. */
  headers?: HeadersInit;
  /** A string, a Uint8Array, or an object (sent as JSON). */
  body?: string | Uint8Array | object;
}

/** Options of `sendOpenMessage`. */
export interface OpenMessageOptions {
  /** Default "Opaque". */
  idType?: 'Email' | 'Phone' | 'Opaque';
  nickname?: string;
}

/** Options of `registerServiceWorker`. */
export interface RegisterOptions {
  /** The worker's scope (default: the script's folder). A scope above the script's folder needs `Service-Worker-Allowed`. */
  scope?: string;
  /**
   * Whether a new version of the worker takes over at once (default `true`: Outbox's stand-alone worker serves none
   * of the app's files, so its update changes nothing a page has loaded). `false`: it waits, as service workers do,
   * until every page the old one controls is closed, or until the app calls the `waiting` event's `skipWaiting()`.
   */
  skipWaiting?: boolean;
  /** Called at each step of the worker's life cycle (as workbox-window reports them): `installed`, `waiting`, `activated`, `controlling`, `redundant`. */
  onLifecycle?: (event: WorkerLifecycleEvent) => void;
}

/**
 * A step in the life of the registration's worker. `isUpdate`: a worker was already active when this one was
 * installed (a new version). `waiting` comes only with `skipWaiting: false`, for an update that waits.
 */
export type WorkerLifecycleEvent =
  | { type: 'installed' | 'activated' | 'controlling' | 'redundant'; worker: ServiceWorker; isUpdate: boolean }
  | {
      type: 'waiting';
      worker: ServiceWorker;
      isUpdate: true;
      /** Lets the waiting worker take over now (it posts `{type: 'SKIP_WAITING'}` to it, as workbox-window's `messageSkipWaiting` does); `controlling` follows. */
      skipWaiting(): void;
    };

/** What a send resolves with: the entry, durable in IndexedDB. */
export interface Accepted {
  id: string;
  lane: string;
  seq: number;
  state: EntryState;
}

/** The Genesys error of a failed attempt. */
export interface OutboxError {
  status?: number;
  code?: string;
  message: string;
  contextId?: string;
}

export type EntryState = 'pending' | 'in-flight' | 'awaiting-token' | 'dead';

/** A queued entry or dead letter. */
export interface OutboxEntry {
  id: string;
  seq: number;
  lane: string;
  route: string;
  origin: string;
  /** As `stats()` counts it: an entry whose sender stopped mid-send, its lease run out, is `"pending"`. */
  state: EntryState;
  attempts: number;
  createdAt: number;
  notBefore: number;
  /** While `"in-flight"`: when its lease runs out. */
  leaseUntil?: number;
  deadAt?: number;
  method: string;
  url: string;
  idempotencyKey: string;
  body: string;
  lastError?: OutboxError;
}

/** Counts per state. */
export interface OutboxStats {
  /** Waiting their turn (an entry whose sender stopped mid-send, its lease run out, counts here). */
  pending: number;
  /** Being sent: leased, the lease still standing. */
  inFlight: number;
  awaitingToken: number;
  dead: number;
  queued: number;
  lanes: number;
  oldestCreatedAt: number | null;
  bytes: number;
  paused: { origin: string; until: number }[];
  /** Lanes waiting for a dead letter (`id`) to be retried or discarded. */
  held: { lane: string; id: string }[];
  /** Origins the herd throttle limits, with how and why (a slow drain is never a mystery). */
  throttled: ThrottleState[];
}

/** What `flush` resolves with. */
export interface FlushReport {
  delivered: number;
  attempts: number;
  nextWake: number | null;
  /** The controlling service worker was asked to flush (the counts are then 0). */
  worker?: true;
}

/** What `purge` resolves with: how many were removed. */
export interface Purged {
  queued: number;
  dead: number;
}

export type CancelResult = 'cancelled' | 'in-flight' | 'not-found';

/** Every event of every tab and of the worker (on a BroadcastChannel). */
export type OutboxEvent =
  | { type: 'queued'; id: string; lane: string; reason: string; at: number }
  | { type: 'sending'; id: string; lane: string; attempt: number; at: number }
  | { type: 'sent'; id: string; lane: string; status: number; duplicate: boolean; at: number }
  | { type: 'retrying'; id: string; lane: string; attempt: number; nextAttemptAt: number; error: OutboxError; at: number }
  | { type: 'awaiting-token'; id: string; lane: string; origin: string; at: number }
  | { type: 'paused'; origin: string; until: number; reason: string; at: number }
  | { type: 'dead'; id: string; lane: string; error: OutboxError; at: number }
  | { type: 'held'; id: string; lane: string; at: number }
  | { type: 'revived'; id: string; lane: string; at: number }
  | { type: 'discarded'; id: string; at: number }
  | { type: 'cancelled'; id: string; at: number }
  | { type: 'purged'; queued: number; dead: number; at: number }
  | (({ reason: 'none'; origin: string } | ThrottleState) & { type: 'throttle'; at: number });

/** What a guest outbox sends: text, or the answer to an agent's quick reply (durable like text). */
export type GuestMessage = string | { text: string } | { quickReply: { text: string; payload?: string } };

/** Where the core comes from (`init`): `outbox-core.js` (its URL, a `Response`, its text), or the bare module (bytes, a compiled `WebAssembly.Module`). */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;
