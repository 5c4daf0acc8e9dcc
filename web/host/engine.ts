/**
 * One outbox over the core: its engine (a configuration the core read),
 * its database, its events, its token source and its transport; and the
 * loop that runs a job of the core to its end, doing each thing it asks
 * (`crates/outbox-wasm/src/host.rs` describes the asks). The loop decides
 * nothing: what to read, write, send or tell is the core's.
 */

import { Core, instantiate, seed } from './core.js';
import { Events } from './events.js';
import type { Part } from './frame.js';
import { Store, type Schema } from './store.js';
import { TokenSource, type Came } from './tokens.js';
import { errorText, failed, send as fetchSend, type Outgoing } from './transport.js';
import type { FlushReport } from './types.js';

/** What the core asks of a job (`ask` in `host.rs`). */
const DONE = 0;
const STORE = 1;
const TOKENS = 2;
const SEND = 3;
const LIVE = 4;
const WAIT = 5;

/** The configuration as the core read it. */
export interface Facts {
  database: string;
  channel: string;
  tokenUrl: string | null;
  apiBase: string | null;
  forwardTimeoutMs: number;
  origins: string[];
  /** The configuration's text. */
  config: string;
  schemaVersion: number;
  schema: Schema;
  guest?: { socketUrl: string; linkUrl: string; deploymentId: string; historyBase: string; storageKey: string };
}

/** What a flush reports (the core's `FlushReport`). */
export interface Report {
  cycles: number;
  attempts: number;
  delivered: number;
  retried: number;
  dead: number;
  awaitingToken: number;
  nextWake: number | null;
}

/** A result the core gave as `{error}`: the operation failed, with this message. */
export function failure(result: unknown): Error | null {
  if (result && typeof result === 'object' && 'error' in result) {
    return new Error(String((result as { error: unknown }).error));
  }
  return null;
}

/** Sends what the core asks to send: one request and its body, answered as the core takes it. */
export type Transport = (request: Outgoing, body: Uint8Array) => Promise<Part[]>;

/** The compiled core, and its one live instance (a trap, a bug, discards it). */
let compiled: WebAssembly.Module | null = null;
let current: Core | null = null;

/** The core's linear memory in bytes (0 before it runs): for diagnostics (the benchmark reads it). */
export function memoryBytes(): number {
  return current ? current.x.memory.buffer.byteLength : 0;
}

/** Sets the compiled core. */
export function useModule(module: WebAssembly.Module): void {
  compiled = module;
}

/** Whether the core is there to use. */
export function haveModule(): boolean {
  return compiled !== null;
}

/** The live core (a new instance after a trap). */
export function theCore(): Core {
  if (!current) {
    if (!compiled) throw new Error('outbox: the core is not loaded');
    current = instantiate(compiled);
  }
  return current;
}

/** Reads a configuration with the core: the engine's handle and facts, or the error. */
function open(core: Core, guest: boolean, config: string): { handle: number; facts: Facts } {
  const [lo, hi] = seed();
  const handle = core.in([config, location.origin]).x.engine(guest ? 1 : 0, lo, hi);
  const out = core.out();
  if (handle === 0) throw new Error(out.text());
  return { handle, facts: out.json<Facts>() };
}

/** An outbox over the core. */
export class Outbox {
  readonly facts: Facts;
  readonly store: Store;
  readonly events: Events;
  private core: Core;
  private handle: number;

  constructor(
    private readonly guest: boolean,
    private readonly config: string,
    public tokens: TokenSource,
    public transport: Transport = (q, body) => fetchSend(q, body),
    events?: Events,
  ) {
    this.core = theCore();
    const { handle, facts } = open(this.core, guest, config);
    this.handle = handle;
    this.facts = facts;
    this.store = new Store(facts.database, facts.schemaVersion, facts.schema);
    this.events = events ?? new Events(facts.channel);
  }

  /** How the core reads a configuration (its facts), or why it refuses it. */
  static describe(guest: boolean, config: string): Facts {
    const core = theCore();
    const { handle, facts } = open(core, guest, config);
    core.x.drop_engine(handle);
    return facts;
  }

  /** Forgets the engine in the core (the outbox is no longer used). */
  free(): void {
    if (this.core === current) this.core.x.drop_engine(this.handle);
    this.store.close();
  }

  /** The core and this outbox's engine in it (made again if the core was replaced). */
  private engine(): [Core, number] {
    const core = theCore();
    if (core !== this.core) {
      this.core = core;
      this.handle = open(core, this.guest, this.config).handle;
    }
    return [core, this.handle];
  }

  /** Whether a request is on one of this outbox's routes (synchronous). */
  owns(method: string, url: string): boolean {
    const [core, engine] = this.engine();
    return core.in([method, url]).x.owns(engine) === 1;
  }

  /** The replay key of a request a page sends itself (see `protocol.ts`). */
  replayKey(method: string, url: string, body: Uint8Array): string {
    const [core] = this.engine();
    core.in([method, url, body]).x.replay_key();
    return core.out().text();
  }

  /** A page announced a replay (`OUTBOX_REPLAY`, in the worker). */
  replay(client: string, key: string): void {
    const [core, engine] = this.engine();
    core.in([client, key]).x.replay(engine);
  }

  /**
   * Runs a job the core starts (`start` calls one of its exports) to its
   * end: its result, parsed. `live` answers the worker's live attempt;
   * `step` is told when each store transaction ended (`tx <name>`: a
   * request's timeline, `marks.ts`).
   */
  async run<T>(
    start: (core: Core, engine: number) => number,
    live?: (request: Outgoing, body: Uint8Array) => Promise<Part[]>,
    step?: (name: string) => void,
  ): Promise<T> {
    const [core, engine] = this.engine();
    let job = 0;
    // The answers to the requests out (`SEND`), by number, as they come:
    // each is given to the core on its own, so that what it lets go (the
    // next message of a lane it cleared) goes without waiting for the rest.
    const arrived: [number, Part[]][] = [];
    let wake: (() => void) | null = null;
    const answered = (k: number, parts: Part[]) => {
      arrived.push([k, parts]);
      wake?.();
    };
    try {
      job = start(core, engine);
      if (job === 0) throw new Error(core.out().text() || 'outbox: the core refused the job');
      for (;;) {
        const kind = core.x.step(job, Date.now());
        const out = core.out();
        const events = out.json<object[]>();
        // Told before the ask is carried out, but for a send: its requests
        // go first, and the events (its `sending`, the answer's `sent`)
        // are told while they are out, not on the path of the next
        // message of a lane.
        if (kind !== SEND) this.events.tell(events);
        switch (kind) {
          case DONE:
            return out.json<T>();
          case STORE: {
            const name = out.text();
            const mode = out.text();
            await this.store.run(core, job, name, mode);
            step?.(`tx ${name}`);
            break;
          }
          case TOKENS: {
            const came: Came[] = await this.tokens.ask(out.json<string[]>());
            core.in([{ json: JSON.stringify(came) }]).x.reply(job, Date.now());
            break;
          }
          case SEND: {
            const first = Number(out.text());
            const requests = out.json<Outgoing[]>();
            const bodies = requests.map(() => out.bytes());
            requests.forEach((q, i) => {
              this.transport(q, bodies[i]).then(
                (parts) => answered(first + i, parts),
                (e: unknown) => answered(first + i, failed('network', errorText(e))),
              );
            });
            this.events.tell(events);
            break;
          }
          case WAIT: {
            while (arrived.length === 0) await new Promise<void>((resolve) => (wake = resolve));
            wake = null;
            for (const [k, parts] of arrived.splice(0)) core.in(parts).x.answer(job, k, Date.now());
            break;
          }
          case LIVE: {
            const [q] = out.json<Outgoing[]>();
            const answer = await (live ?? this.transport)(q, out.bytes());
            core.in(answer).x.reply(job, Date.now());
            break;
          }
          default:
            throw new Error('outbox: the core asked for nothing known (' + kind + ')');
        }
      }
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) {
        // A trap is a bug of the core: this instance is left as it is, and
        // the next call gets a new one.
        if (current === core) current = null;
        console.error('[outbox] the core failed:', e);
      }
      throw e;
    } finally {
      if (job !== 0 && current === core) core.x.drop_job(job);
    }
  }

  /** A flush; `exclusive`: under the origin-wide flush lock. Rejects with the store's error. */
  async flush(exclusive: boolean): Promise<Report> {
    const result = await this.run<Report | { error: string }>((c, e) => c.x.flush(e, exclusive ? 1 : 0));
    const error = failure(result);
    if (error) throw error;
    return result as Report;
  }

  /** The network is back: how many retries became due. */
  async networkBack(): Promise<number> {
    const result = await this.run<{ due: number } | { error: string }>((c, e) => c.x.network_back(e));
    const error = failure(result);
    if (error) throw error;
    return (result as { due: number }).due;
  }

  /** A token arrived for `origin` (`null`: every configured origin); the entries that waited for it are released. */
  async token(token: string, expiresIn: number | null, origin: string | null): Promise<void> {
    const result = await this.run<unknown>((c, e) =>
      c.in([origin ?? '', token]).x.token(e, expiresIn ?? Number.NaN),
    );
    const error = failure(result);
    if (error) throw error;
  }

  /** One admin transaction (see `Module::admin`): its result. */
  async admin<T>(op: number, n = 0, id = ''): Promise<T> {
    const result = await this.run<T | { error: string }>((c, e) => c.in([id]).x.admin(e, op, n, Date.now()));
    const error = failure(result);
    if (error) throw error;
    return result as T;
  }
}

/** The page's view of a flush (`flush()` resolves with it). */
export function flushReport(report: Report | null, byWorker: boolean): FlushReport {
  const out: FlushReport = {
    delivered: report?.delivered ?? 0,
    attempts: report?.attempts ?? 0,
    nextWake: report?.nextWake ?? null,
  };
  if (byWorker) out.worker = true;
  return out;
}
