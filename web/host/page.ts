/**
 * Outbox: a durable outbox for Genesys Cloud messaging in the browser —
 * the page API.
 *
 * Every message is made durable in IndexedDB before `send` resolves, then
 * delivered in order (by the controlling service worker, or by this page
 * under an origin-wide lock). The decisions are the core's
 * (`outbox-core.js`, one wasm module for the page and the worker); a page
 * that a worker controls loads it only once it must decide something
 * itself (a send, a listing): until then it reads its configuration with
 * the worker's core, and its flushes and tokens go to the worker.
 */

import { scriptBytes } from './core.js';
import { Outbox as Engine, type Facts, failure, flushReport, haveModule, useModule } from './engine.js';
import { Events } from './events.js';
import { Flusher } from './flusher.js';
import { GuestLink } from './guest.js';
import { readMessage, type Message } from './protocol.js';
import { TokenSource, absolute, fetchToken, type Fresh } from './tokens.js';
import { send as fetchSend } from './transport.js';
import type {
  Accepted,
  CancelResult,
  FlushReport,
  GuestConfig,
  GuestMessage,
  InitInput,
  OpenMessageOptions,
  OutboxConfig,
  OutboxEntry,
  OutboxEvent,
  OutboxRequest,
  OutboxStats,
  Purged,
  RegisterOptions,
  WorkerLifecycleEvent,
} from './types.js';

export type * from './types.js';

declare global {
  // `[Symbol.dispose]` (explicit resource management) exists in lib
  // ESNext; declaring it here keeps the classes usable with lib ES2022.
  interface SymbolConstructor {
    readonly dispose: unique symbol;
  }
}

/** How long a page waits for its controller to answer (a controller without Outbox never does). */
const WORKER_ANSWER_MS = 3_000;
/**
 * How long after the worker's own wake-up a page asks for a flush: a live
 * worker's timer fires first, and the `OUTBOX_WAKE` it sends after that
 * run replaces the page's timer before it fires, so only a stopped worker
 * is woken by its pages (that late), not every live one twice.
 */
const WAKE_GRACE_MS = 2_000;

// --- loading the core -------------------------------------------------

let loading: Promise<void> | null = null;

/** The module's bytes, whatever form `init` was given. */
async function bytesOf(input: RequestInfo | URL | Response | BufferSource): Promise<Uint8Array> {
  if (typeof input !== 'string') {
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  }
  const response = input instanceof Response ? input : await fetch(input as RequestInfo | URL);
  if (!response.ok) throw new Error(`outbox: cannot load the core from ${response.url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  // `outbox-core.js` (the module as a string), or the bare module.
  const isWasm = bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d;
  return isWasm ? bytes : scriptBytes(new TextDecoder().decode(bytes));
}

/**
 * Throws when this module has no URL to find the core beside: a bundle
 * that is not an ES module (esbuild's `--format=iife`, CommonJS) has no
 * `import.meta.url`. Says what to do instead.
 */
function noModuleUrl(): void {
  const url: unknown = import.meta.url;
  if (typeof url === 'string' && url !== '') return;
  throw new Error(
    'outbox: this bundle has no import.meta.url (an iife or CommonJS bundle?), so the core cannot be found beside it: ' +
      "load it first with init({ module_or_path: '/outbox-core.js' }) (where copy-worker put it), or bundle as an ES module (--format=esm)",
  );
}

/**
 * Loads the core: by default `outbox-core.js` beside this module (the file
 * the worker loads too). Optional: the methods that need it load it.
 */
export default function init(
  input?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<void> {
  if (haveModule()) return Promise.resolve();
  if (!loading) {
    loading = (async () => {
      let source = await (input && typeof input === 'object' && 'module_or_path' in input ? input.module_or_path : input);
      if (source === undefined || source === null) {
        noModuleUrl();
        // Written so (a literal beside `import.meta.url`) for bundlers that emit the file it names (Vite).
        source = new URL('outbox-core.js', import.meta.url);
      }
      useModule(
        source instanceof WebAssembly.Module
          ? source
          : await WebAssembly.compile((await bytesOf(source as RequestInfo | URL | Response | BufferSource)) as BufferSource),
      );
    })();
    // A failed load is not kept: the next call tries again.
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}

/** Loads the core synchronously from its bytes or a compiled module. */
export function initSync(module: { module: BufferSource | WebAssembly.Module } | BufferSource | WebAssembly.Module): void {
  const m: unknown = module && typeof module === 'object' && 'module' in module ? module.module : module;
  if (m instanceof WebAssembly.Module) return useModule(m);
  const view = m as ArrayBufferView | ArrayBuffer;
  const bytes = ArrayBuffer.isView(view)
    ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
    : new Uint8Array(view);
  const isWasm = bytes[0] === 0 && bytes[1] === 0x61;
  useModule(new WebAssembly.Module((isWasm ? bytes : scriptBytes(new TextDecoder().decode(bytes))) as BufferSource));
}

// --- the page and its worker ------------------------------------------

function container(): ServiceWorkerContainer | null {
  return typeof navigator !== 'undefined' && navigator.serviceWorker ? navigator.serviceWorker : null;
}

function controller(): ServiceWorker | null {
  return container()?.controller ?? null;
}

/** Posts to the controlling service worker; whether there is one. */
function tellWorker(message: Message): boolean {
  const c = controller();
  if (!c) return false;
  c.postMessage(message);
  return true;
}

/** Posts to the controller and waits (bounded) for its answer on a port; `null`: none came. */
function askWorker<T>(message: object): Promise<T | null> {
  const c = controller();
  if (!c) return Promise.resolve(null);
  const channel = new MessageChannel();
  return new Promise<T | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), WORKER_ANSWER_MS);
    channel.port1.onmessage = (e: MessageEvent) => {
      clearTimeout(timer);
      resolve(e.data as T);
    };
    c.postMessage(message, [channel.port2]);
  }).finally(() => channel.port1.close());
}

/** The JSON text of a configuration object (functions such as `getToken` left out). */
function configText(config: unknown): string {
  if (config === undefined || config === null) return '{}';
  return JSON.stringify(config) ?? '{}';
}

/** What both outboxes share: an engine loaded when first needed, the page's listeners, who flushes. */
class Page {
  /** The engine, once the core is loaded. */
  engine: Engine | null = null;
  flusher: Flusher | null = null;
  readonly events: Events;
  private readonly stops: (() => void)[] = [];
  private wake: ReturnType<typeof setTimeout> | undefined;
  private wakeAt: number | null = null;
  private closed = false;

  constructor(
    readonly facts: Facts,
    readonly configJson: string,
    readonly getToken: (() => Promise<unknown>) | null,
    readonly guestLink: GuestLink | null,
  ) {
    this.events = new Events(facts.channel);
    this.stops.push(this.events.relay());
    this.listen();
  }

  /** The engine, loading the core first when needed. */
  async needEngine(): Promise<Engine> {
    if (this.engine) return this.engine;
    await init();
    if (this.engine) return this.engine;
    const tokens = new TokenSource(this.facts.tokenUrl, (origin) => {
      void this.tokenFromApp().then((fresh) => {
        if (!fresh || !this.engine) return;
        void this.engine.token(fresh.token, fresh.expiresIn, origin).then(() => this.deliver());
      });
    });
    const engine = new Engine(!!this.guestLink, this.configJson, tokens, this.transport(), this.events);
    this.engine = engine;
    this.flusher = new Flusher(engine);
    return engine;
  }

  /** How this page sends: its guest link, or `fetch` (announced to a controlling worker). */
  private transport() {
    const link = this.guestLink;
    if (link) return link.send.bind(link);
    return (q: Parameters<typeof fetchSend>[0], body: Uint8Array) =>
      fetchSend(q, body, async (request) => {
        // A page's own send must never be queued again by the worker that
        // controls it: announce it, and wait for the acknowledgement.
        if (!controller() || !this.engine) return;
        const key = this.engine.replayKey(request.method, request.url, body);
        await askWorker({ type: 'OUTBOX_REPLAY', key });
      });
  }

  /** Gets queued entries delivered: by the controlling worker (it alone sends), else by this page. */
  deliver(): void {
    if (this.closed) return;
    // A guest outbox is the page's alone (no worker sees its socket).
    if (!this.guestLink && tellWorker({ type: 'flush' })) return;
    void this.needEngine().then(() => this.flusher?.kick());
  }

  /** Asks the app for a token: `getToken()` (a string or `{token, expiresIn}`), else the token URL. */
  async tokenFromApp(): Promise<Fresh | null> {
    if (this.getToken) {
      try {
        const value = await this.getToken();
        if (typeof value === 'string') return { token: value, expiresIn: null };
        if (value && typeof value === 'object' && typeof (value as { token?: unknown }).token === 'string') {
          const v = value as { token: string; expiresIn?: unknown };
          return { token: v.token, expiresIn: typeof v.expiresIn === 'number' ? v.expiresIn : null };
        }
      } catch (e) {
        console.error('[outbox] getToken failed:', e);
      }
      return null;
    }
    return this.facts.tokenUrl ? fetchToken(this.facts.tokenUrl) : null;
  }

  /** Takes a token for `origin` (or every configured origin) and passes it to the worker. */
  async giveToken(token: string, expiresIn: number | null, origin: string | null): Promise<void> {
    if (this.engine || !controller()) {
      const engine = await this.needEngine();
      await engine.token(token, expiresIn, origin);
    }
    const message: Message = { type: 'TOKEN_UPDATED', token };
    if (origin !== null) message.origin = origin;
    if (expiresIn !== null) message.expiresIn = expiresIn;
    if (!tellWorker(message)) this.flusher?.kick();
  }

  private listen(): void {
    const add = (target: EventTarget, name: string, f: (e: Event) => void) => {
      target.addEventListener(name, f);
      this.stops.push(() => target.removeEventListener(name, f));
    };
    // Pages get `online`; workers do not (Chromium): pass it on.
    add(globalThis, 'online', () => {
      if (!this.guestLink && tellWorker({ type: 'online' })) return;
      void this.needEngine().then(async (engine) => {
        await engine.networkBack();
        this.flusher?.kick();
      });
    });
    // The worker's token requests and wake-ups (a guest outbox has no worker).
    const sw = container();
    if (sw && !this.guestLink) {
      add(sw, 'message', (e) => {
        let m: Message | null = null;
        try {
          m = readMessage((e as MessageEvent).data);
        } catch {
          return;
        }
        if (m?.type === 'TOKEN_REFRESH_REQUIRED') {
          const origin = m.origin;
          void this.tokenFromApp().then((fresh) => {
            if (fresh) void this.giveToken(fresh.token, fresh.expiresIn, origin);
          });
        } else if (m?.type === 'OUTBOX_WAKE' && m.queueId === this.facts.database) {
          this.wakeWorkerAt(m.at);
        }
      });
    }
  }

  /**
   * Asks for a flush soon after `at`, the worker's next wake-up: an idle
   * worker is stopped with its timers (Firefox, Safari: ~30 s after its
   * last event, and no Background Sync), this page is not.
   */
  private wakeWorkerAt(at: number): void {
    const when = at + WAKE_GRACE_MS;
    if (this.wakeAt === when || this.closed) return;
    clearTimeout(this.wake);
    this.wakeAt = when;
    this.wake = setTimeout(
      () => {
        this.wakeAt = null;
        this.deliver();
      },
      Math.min(Math.max(when - Date.now(), 0), 2_147_483_647),
    );
  }

  /** Runs an admin call on the engine. */
  async admin<T>(op: number, n = 0, id = ''): Promise<T> {
    return (await this.needEngine()).admin<T>(op, n, id);
  }

  on(listener: (event: OutboxEvent) => void): () => void {
    return this.events.listen(listener);
  }

  /** Counts per state, lanes, oldest age, pauses. */
  stats(): Promise<OutboxStats> {
    return this.admin<OutboxStats>(0);
  }

  /** Queued entries, oldest first (at most `limit`, default 1000). */
  queued(limit = 1000): Promise<OutboxEntry[]> {
    return this.admin<OutboxEntry[]>(1, limit);
  }

  /** Dead letters, oldest first, each with its error. */
  deadLetters(limit = 1000): Promise<OutboxEntry[]> {
    return this.admin<OutboxEntry[]>(2, limit);
  }

  /** Puts a dead letter back in its lane and flushes; `false` when no dead letter has that id. */
  async retry(id: string): Promise<boolean> {
    const found = await this.admin<boolean>(3, 0, id);
    if (found) this.deliver();
    return found;
  }

  /** Deletes a dead letter (and flushes: the conversation it held goes on); `false` when none has that id. */
  async discard(id: string): Promise<boolean> {
    const found = await this.admin<boolean>(4, 0, id);
    if (found) this.deliver();
    return found;
  }

  /** Removes a queued entry before it is sent. */
  cancel(id: string): Promise<CancelResult> {
    return this.admin<CancelResult>(5, 0, id);
  }

  /** Flushes now: asks the controlling service worker to (resolving with `{worker: true}`), or flushes in this page under the origin-wide lock. */
  async flush(): Promise<FlushReport> {
    if (!this.guestLink && tellWorker({ type: 'flush' })) return flushReport(null, true);
    await this.needEngine();
    return flushReport(this.flusher ? await this.flusher.run() : null, false);
  }

  /** Deletes every queued entry and dead letter (log-out on a shared device). */
  purge(): Promise<Purged> {
    return this.admin<Purged>(6);
  }

  /** Stops listening to events, and the socket of a guest outbox (the database stays as it is). */
  close(): void {
    this.closed = true;
    this.guestLink?.close();
    clearTimeout(this.wake);
    this.flusher?.stop();
    for (const stop of this.stops.splice(0)) stop();
  }

  /** Frees the engine's memory (after `close`). */
  free(): void {
    this.engine?.free();
    this.engine = null;
  }

  [Symbol.dispose](): void {
    this.close();
    this.free();
  }
}

/** The configuration as the core reads it: the page's own core, or the controlling worker's. */
async function readConfig(guest: boolean, json: string): Promise<Facts> {
  if (!guest && controller()) {
    const answer = await askWorker<{ ok: boolean; facts?: Facts; error?: string }>({ type: 'OUTBOX_CONFIG', config: json });
    if (answer?.ok && answer.facts) return answer.facts;
    if (answer && !answer.ok) throw new Error(answer.error ?? 'the configuration was refused');
  }
  await init();
  return Engine.describe(guest, json);
}

/** A send's result: the entry accepted, or the refusal thrown. */
function accepted(page: Page, result: unknown, deliver: boolean): Accepted {
  const error = failure(result);
  if (error) throw error;
  if (deliver) page.deliver();
  else page.flusher?.kick();
  return (result as { accepted: Accepted }).accepted;
}

/** A durable outbox for Genesys Cloud REST messages, in a page. */
/** The page a public outbox speaks for, and how it is given one (see `OutboxBase`). */
let pageOf: (outbox: OutboxBase) => Page;
let attach: (outbox: OutboxBase, page: Page) => void;

/**
 * What `Outbox` and `GuestOutbox` share: events, stats, listings, dead
 * letters, cancel, flush, purge and their end. The page stays private
 * (`#page`, kept out of the published types); the two classes give it with
 * `attach` and reach it through `pageOf`.
 */
export abstract class OutboxBase {
  #page!: Page;

  static {
    pageOf = (outbox) => outbox.#page;
    attach = (outbox, page) => {
      outbox.#page = page;
    };
  }

  /** Made by `Outbox.open` and `Outbox.guest` only. */
  protected constructor() {}

  /** Listens to every event of every tab (and the worker, for `Outbox`); returns the function that stops listening. */
  on(listener: (event: OutboxEvent) => void): () => void {
    return this.#page.on(listener);
  }
  /** Counts per state, lanes, oldest age, pauses, held lanes, throttled origins. */
  stats(): Promise<OutboxStats> {
    return this.#page.stats();
  }
  /** Queued entries, oldest first (at most `limit`, default 1000). */
  queued(limit?: number): Promise<OutboxEntry[]> {
    return this.#page.queued(limit);
  }
  /** Dead letters, oldest first, each with its error. */
  deadLetters(limit?: number): Promise<OutboxEntry[]> {
    return this.#page.deadLetters(limit);
  }
  /** Puts a dead letter back in its lane and flushes; `false` when no dead letter has that id. */
  retry(id: string): Promise<boolean> {
    return this.#page.retry(id);
  }
  /** Deletes a dead letter; `false` when none has that id. */
  discard(id: string): Promise<boolean> {
    return this.#page.discard(id);
  }
  /** Removes a queued entry before it is sent. */
  cancel(id: string): Promise<CancelResult> {
    return this.#page.cancel(id);
  }
  /** Flushes now (`Outbox`: or asks the controlling worker to; `GuestOutbox`: in this page). */
  flush(): Promise<FlushReport> {
    return this.#page.flush();
  }
  /** Deletes every queued entry and dead letter (log-out on a shared device). */
  purge(): Promise<Purged> {
    return this.#page.purge();
  }
  /** Stops listening to events, and a guest's socket (the database stays as it is). */
  close(): void {
    this.#page.close();
  }
  /** Frees the engine's memory (after `close`). */
  free(): void {
    this.#page.free();
  }
  [Symbol.dispose](): void {
    this.close();
    this.free();
  }
}

export class Outbox extends OutboxBase {
  private constructor(page: Page) {
    super();
    attach(this, page);
  }

  /** Opens the outbox (the core is loaded when this page must decide something itself). */
  static async open(config?: OutboxConfig): Promise<Outbox> {
    const json = configText(config);
    const facts = await readConfig(false, json);
    const page = new Page(facts, json, typeof config?.getToken === 'function' ? config.getToken : null, null);
    if (!controller()) await page.needEngine();
    page.deliver();
    return new Outbox(page);
  }

  /** Opens a guest's outbox on the Web Messaging Guest WebSocket. */
  static guest(config: GuestConfig): Promise<GuestOutbox> {
    return GuestOutbox.open(config);
  }

  /**
   * Registers the Outbox service worker (e.g. `/sw.js`) with this
   * configuration (in the script URL's `config` parameter), within
   * `options.scope` when given, and resolves with the registration once its
   * worker is active; rejects when the worker fails to install.
   */
  async registerServiceWorker(url: string, options?: RegisterOptions): Promise<ServiceWorkerRegistration> {
    const sw = container();
    if (!sw) throw new Error('service workers are not available here (a secure context is needed)');
    const skipWaiting = options?.skipWaiting ?? true;
    const full =
      url +
      (url.includes('?') ? '&' : '?') +
      'config=' +
      encodeURIComponent(pageOf(this).facts.config) +
      (skipWaiting ? '' : '&skipWaiting=0');
    const registration = await sw.register(full, options?.scope ? { scope: options.scope } : undefined);
    if (options?.onLifecycle) followLifecycle(sw, registration, skipWaiting, options.onLifecycle);
    await active(registration, skipWaiting);
    return registration;
  }

  /** Makes a request to a configured route durable, then delivers it. Resolves once it is in IndexedDB; rejects with the reason when it cannot be kept (the caller still holds it). */
  async send(request: OutboxRequest): Promise<Accepted> {
    if (!request || typeof request.url !== 'string') throw new Error('send() needs a `url`');
    const headers: [string, string][] = [];
    new Headers(request.headers).forEach((value, name) => headers.push([name, value]));
    let body: Uint8Array;
    const b = request.body;
    if (b === undefined || b === null) body = new Uint8Array(0);
    else if (typeof b === 'string') body = new TextEncoder().encode(b);
    else if (b instanceof Uint8Array) body = b;
    else {
      if (!headers.some(([n]) => n.toLowerCase() === 'content-type')) headers.push(['content-type', 'application/json']);
      const text = JSON.stringify(b);
      if (text === undefined) throw new Error('body must be a string, a Uint8Array or a JSON-serialisable object');
      body = new TextEncoder().encode(text);
    }
    const engine = await pageOf(this).needEngine();
    const method = request.method ?? 'POST';
    const result = await engine.run((core, e) =>
      core.in([method, absolute(request.url), { json: JSON.stringify(headers) }, body]).x.submit(e),
    );
    return accepted(pageOf(this), result, true);
  }

  /** `POST {apiBase}/api/v2/conversations/messages/{conversationId}/communications/{communicationId}/messages`. */
  async sendAgentMessage(conversationId: string, communicationId: string, text: string): Promise<Accepted> {
    const engine = await pageOf(this).needEngine();
    const result = await engine.run((core, e) =>
      core.in([conversationId, communicationId, text]).x.submit_genesys(e, 0),
    );
    return accepted(pageOf(this), result, true);
  }

  /** `POST {apiBase}/api/v2/conversations/messages/{integrationId}/inbound/open/message` from `fromId`. */
  async sendOpenMessage(
    integrationId: string,
    fromId: string,
    text: string,
    options?: OpenMessageOptions,
  ): Promise<Accepted> {
    const engine = await pageOf(this).needEngine();
    const time = new Date().toISOString();
    const result = await engine.run((core, e) =>
      core
        .in([integrationId, fromId, text, options?.idType ?? '', options?.nickname ?? '', time])
        .x.submit_genesys(e, 1),
    );
    return accepted(pageOf(this), result, true);
  }

  /** A fresh access token (memory only) for `origin` or every configured origin; passed on to the worker. */
  setToken(token: string, expiresIn?: number, origin?: string): Promise<void> {
    return pageOf(this).giveToken(token, expiresIn ?? null, origin ?? null);
  }
}

/** A guest's durable outbox on the Guest WebSocket (`Outbox.guest`). */
export class GuestOutbox extends OutboxBase {
  readonly #link: GuestLink;

  private constructor(page: Page, link: GuestLink) {
    super();
    attach(this, page);
    this.#link = link;
  }

  /** Opens a guest's outbox (`Outbox.guest`). */
  static async open(config: GuestConfig): Promise<GuestOutbox> {
    const json = configText(config);
    const facts = await readConfig(true, json);
    const g = facts.guest;
    if (!g) throw new Error('not a guest configuration');
    const link = new GuestLink(g.linkUrl, g.deploymentId, g.historyBase, g.storageKey);
    const page = new Page(facts, json, null, link);
    await page.needEngine();
    page.deliver();
    return new GuestOutbox(page, link);
  }

  /** The guest's session token (kept in local storage: a reload continues the conversation). */
  get sessionToken(): string {
    return this.#link.sessionToken();
  }

  /** Makes a text message, or a quick-reply answer, durable, then sends it in order; `sent` only when its echo arrives. */
  async send(message: GuestMessage): Promise<Accepted> {
    const engine = await pageOf(this).needEngine();
    const token = this.#link.sessionToken();
    const result = await engine.run((core, e) =>
      core.in([token, { json: JSON.stringify(message ?? null) }]).x.guest_send(e),
    );
    return accepted(pageOf(this), result, false);
  }

  /** Tells the agent the guest is typing: best-effort, never queued. Whether it was sent. */
  sendTyping(): boolean {
    return this.#link.typing();
  }
}

/**
 * Reports the life cycle of `registration`'s workers to `report`: each one
 * installing now or later (`updatefound`), one already waiting, and the
 * page's controller changing to one of them.
 */
function followLifecycle(
  sw: ServiceWorkerContainer,
  registration: ServiceWorkerRegistration,
  skipWaiting: boolean,
  report: (event: WorkerLifecycleEvent) => void,
): void {
  const followed = new Set<ServiceWorker>();
  const updates = new Set<ServiceWorker>();
  const tell = (event: WorkerLifecycleEvent) => {
    try {
      report(event);
    } catch (e) {
      console.error('[outbox] onLifecycle failed:', e);
    }
  };
  const waiting = (worker: ServiceWorker) =>
    tell({ type: 'waiting', worker, isUpdate: true, skipWaiting: () => worker.postMessage({ type: 'SKIP_WAITING' }) });
  const follow = (worker: ServiceWorker | null, isUpdate: boolean) => {
    if (!worker || followed.has(worker)) return;
    followed.add(worker);
    if (isUpdate) updates.add(worker);
    worker.addEventListener('statechange', () => {
      const state = worker.state;
      if (state === 'installed') {
        tell({ type: 'installed', worker, isUpdate });
        // A worker that does not skip waiting waits while another is active.
        if (isUpdate && !skipWaiting) waiting(worker);
      } else if (state === 'activated' || state === 'redundant') {
        tell({ type: state, worker, isUpdate });
      }
    });
  };
  // Installed by an earlier visit, and still waiting.
  const already = registration.waiting;
  if (already && registration.active && !skipWaiting) {
    follow(already, true);
    waiting(already);
  }
  follow(registration.installing, !!registration.active);
  registration.addEventListener('updatefound', () => follow(registration.installing, !!registration.active));
  sw.addEventListener('controllerchange', () => {
    const worker = sw.controller;
    if (worker && followed.has(worker)) tell({ type: 'controlling', worker, isUpdate: updates.has(worker) });
  });
}

/**
 * Resolves once `registration` has an active worker (with `skipWaiting`,
 * the newest: an update takes over at once), or fails when the worker
 * installing becomes `redundant`.
 */
async function active(registration: ServiceWorkerRegistration, skipWaiting: boolean): Promise<void> {
  for (;;) {
    if (!skipWaiting && registration.active) return;
    const worker = registration.installing ?? registration.waiting;
    if (!worker) {
      if (registration.active) return;
      throw new Error('the service worker registration has no worker');
    }
    if (worker.state === 'activated') return;
    if (worker.state === 'redundant') {
      throw new Error('the service worker failed to install (see the worker\'s console)');
    }
    await new Promise<void>((resolve) => worker.addEventListener('statechange', () => resolve(), { once: true }));
  }
}
