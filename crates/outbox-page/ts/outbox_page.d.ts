/**
 * Outbox: a durable outbox for Genesys Cloud messaging in the browser.
 *
 * The page API. Every message is made durable in IndexedDB before `send`
 * resolves, then delivered in order (by the controlling service worker, or
 * by this page under an origin-wide lock). `Outbox.open` loads the engine
 * (`init()`) itself when it has not been loaded yet.
 */

declare global {
  // `[Symbol.dispose]` (explicit resource management) exists in lib
  // ESNext; declaring it here keeps the classes usable with lib ES2022.
  interface SymbolConstructor {
    readonly dispose: unique symbol;
  }
}

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
  /** Requests per minute per origin, and the burst. */
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
  baseMs?: number;
  factor?: number;
  capMs?: number;
  maxAttempts?: number;
  maxAgeMs?: number;
  maxAuthFailures?: number;
  /** How long a run of `401`s must span, on the clock and in the backoff schedule, before it is a dead letter (default 60 s). */
  authWindowMs?: number;
}

/** Pacing per origin. */
export interface PacerConfig {
  ratePerMinute?: number;
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
  | { origin: string; reason: "probing" }
  | { origin: string; reason: "shedding"; ratePerMinute: number; shedPercent: number };

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
  maxEntries?: number;
  retry?: RetryConfig;
  /** Default 60 a minute with a burst of 1: under the 2 messages a second per session. */
  pacer?: PacerConfig;
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
}

/** A request for `send`. */
export interface OutboxRequest {
  url: string;
  /** Default "POST". */
  method?: string;
  headers?: Record<string, string> | [string, string][];
  /** A string, a Uint8Array, or an object (sent as JSON). */
  body?: string | Uint8Array | object;
}

/** Options of `sendOpenMessage`. */
export interface OpenMessageOptions {
  /** Default "Opaque". */
  idType?: "Email" | "Phone" | "Opaque";
  nickname?: string;
}

/** Options of `registerServiceWorker`. */
export interface RegisterOptions {
  /** The worker's scope (default: the script's folder). A scope above the script's folder needs `Service-Worker-Allowed`. */
  scope?: string;
}

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

export type EntryState = "pending" | "in-flight" | "awaiting-token" | "dead";

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

export type CancelResult = "cancelled" | "in-flight" | "not-found";

/** Every event of every tab and of the worker (on a BroadcastChannel). */
export type OutboxEvent =
  | { type: "queued"; id: string; lane: string; reason: string; at: number }
  | { type: "sending"; id: string; lane: string; attempt: number; at: number }
  | { type: "sent"; id: string; lane: string; status: number; duplicate: boolean; at: number }
  | { type: "retrying"; id: string; lane: string; attempt: number; nextAttemptAt: number; error: OutboxError; at: number }
  | { type: "awaiting-token"; id: string; lane: string; origin: string; at: number }
  | { type: "paused"; origin: string; until: number; reason: string; at: number }
  | { type: "dead"; id: string; lane: string; error: OutboxError; at: number }
  | { type: "held"; id: string; lane: string; at: number }
  | { type: "revived"; id: string; lane: string; at: number }
  | { type: "discarded"; id: string; at: number }
  | { type: "cancelled"; id: string; at: number }
  | { type: "purged"; queued: number; dead: number; at: number }
  | (({ reason: "none"; origin: string } | ThrottleState) & { type: "throttle"; at: number });

/** The queue methods of both outboxes. */
interface QueueMethods {
  /** Listens to every event of every tab and the worker; returns the function that stops listening. */
  on(listener: (event: OutboxEvent) => void): () => void;
  /** Counts per state, lanes, oldest age, pauses. */
  stats(): Promise<OutboxStats>;
  /** Queued entries, oldest first (at most `limit`, default 1000). */
  queued(limit?: number): Promise<OutboxEntry[]>;
  /** Dead letters, oldest first, each with its error. */
  deadLetters(limit?: number): Promise<OutboxEntry[]>;
  /** Puts a dead letter back in its lane and flushes; `false` when no dead letter has that id. */
  retry(id: string): Promise<boolean>;
  /** Deletes a dead letter; `false` when none has that id. */
  discard(id: string): Promise<boolean>;
  /** Removes a queued entry before it is sent. */
  cancel(id: string): Promise<CancelResult>;
  /** Flushes now (or asks the controlling worker to). */
  flush(): Promise<FlushReport>;
  /** Deletes every queued entry and dead letter (log-out on a shared device). */
  purge(): Promise<Purged>;
  /** Stops listening to events (the database stays as it is). */
  close(): void;
  /** Frees the engine's memory (after `close`). */
  free(): void;
  [Symbol.dispose](): void;
}

/** A durable outbox for Genesys Cloud REST messages, in a page. */
export class Outbox implements QueueMethods {
  private constructor();
  /** Opens the outbox (loading the engine first if `init()` has not run). */
  static open(config?: OutboxConfig): Promise<Outbox>;
  /** Opens a guest's outbox on the Web Messaging Guest WebSocket. */
  static guest(config: GuestConfig): Promise<GuestOutbox>;
  /** Registers the Outbox service worker (e.g. `/sw.js`) with this configuration; resolves once its worker is active. */
  registerServiceWorker(url: string, options?: RegisterOptions): Promise<ServiceWorkerRegistration>;
  /** Makes a request to a configured route durable, then delivers it. */
  send(request: OutboxRequest): Promise<Accepted>;
  /** `POST {apiBase}/api/v2/conversations/messages/{conversationId}/communications/{communicationId}/messages`. */
  sendAgentMessage(conversationId: string, communicationId: string, text: string): Promise<Accepted>;
  /** `POST {apiBase}/api/v2/conversations/messages/{integrationId}/inbound/open/message` from `fromId`. */
  sendOpenMessage(integrationId: string, fromId: string, text: string, options?: OpenMessageOptions): Promise<Accepted>;
  /** A fresh access token (memory only) for `origin` or every configured origin; passed on to the worker. */
  setToken(token: string, expiresIn?: number, origin?: string): Promise<void>;
  on(listener: (event: OutboxEvent) => void): () => void;
  stats(): Promise<OutboxStats>;
  queued(limit?: number): Promise<OutboxEntry[]>;
  deadLetters(limit?: number): Promise<OutboxEntry[]>;
  retry(id: string): Promise<boolean>;
  discard(id: string): Promise<boolean>;
  cancel(id: string): Promise<CancelResult>;
  flush(): Promise<FlushReport>;
  purge(): Promise<Purged>;
  close(): void;
  free(): void;
  [Symbol.dispose](): void;
}

/** What a guest outbox sends: text, or the answer to an agent's quick reply (durable like text). */
export type GuestMessage = string | { text: string } | { quickReply: { text: string; payload?: string } };

/** A guest's durable outbox on the Guest WebSocket (`Outbox.guest`). */
export class GuestOutbox implements QueueMethods {
  private constructor();
  /** The guest's session token (kept in local storage: a reload continues the conversation). */
  readonly sessionToken: string;
  /** Makes a text message, or a quick-reply answer, durable, then sends it in order; `sent` only when its echo arrives. */
  send(message: GuestMessage): Promise<Accepted>;
  /** Tells the agent the guest is typing: best-effort, never queued. Whether it was sent. */
  sendTyping(): boolean;
  on(listener: (event: OutboxEvent) => void): () => void;
  stats(): Promise<OutboxStats>;
  queued(limit?: number): Promise<OutboxEntry[]>;
  deadLetters(limit?: number): Promise<OutboxEntry[]>;
  retry(id: string): Promise<boolean>;
  discard(id: string): Promise<boolean>;
  cancel(id: string): Promise<CancelResult>;
  flush(): Promise<FlushReport>;
  purge(): Promise<Purged>;
  close(): void;
  free(): void;
  [Symbol.dispose](): void;
}

/** Where the engine's wasm comes from. */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/** The loaded engine. */
export interface InitOutput {
  readonly memory: WebAssembly.Memory;
}

/** Loads the engine synchronously from bytes or a compiled module. */
export function initSync(module: { module: BufferSource | WebAssembly.Module } | BufferSource | WebAssembly.Module): InitOutput;

/**
 * Loads the engine (by default `outbox_page_bg.wasm` next to this module).
 * Optional: `Outbox.open` and `Outbox.guest` call it when needed.
 */
export default function init(
  moduleOrPath?:
    | { module_or_path: InitInput | Promise<InitInput> }
    | InitInput
    | Promise<InitInput>,
): Promise<InitOutput>;
