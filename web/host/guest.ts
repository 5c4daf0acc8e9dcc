/**
 * The Guest WebSocket link: the transport of a guest outbox.
 *
 * It connects when something is to be sent, configures the session with
 * the persisted session token, sends each entry as `onMessage` and answers
 * only on its echo (matched by `tracingId`). After a drop, before sending
 * again anything whose outcome is unknown, it reads the session's history
 * once per connection (`getJwt`, then the history endpoint) and counts a
 * message found there as delivered. Typing indicators go straight to an
 * open socket, never queued. Every frame is built and read by the core
 * (`outbox-core`'s `guest` module): what an answer means, when a session
 * must start afresh, what history says.
 */

import { theCore } from './engine.js';
import type { Part } from './frame.js';
import { errorText, failed, type Outgoing } from './transport.js';

/** How long opening a socket and configuring the session may take. */
const CONNECT_TIMEOUT_MS = 10_000;
/** History pages read when reconciling (newest first, 100 a page). */
const HISTORY_PAGES = 3;

/** What the core read of a frame (`guest_read` 0). */
interface Frame {
  tracingId: string | null;
  ended: boolean;
  /** A `configureSession` answer: what to do with the session. */
  session: 'ready' | 'rotate' | 'refused' | null;
  /** After an `onMessage`, the session is gone: start a new one. */
  rotates: boolean;
  jwt: string | null;
  message: string;
}

class Failure extends Error {
  constructor(
    message: string,
    readonly kind: 'network' | 'timeout' = 'network',
  ) {
    super(message);
  }
}

/** Builds a frame with the core (`guest_frame`). */
function frame(kind: number, parts: (string | Uint8Array)[]): string {
  const core = theCore();
  core.in(parts).x.guest_frame(kind);
  return core.out().text();
}

/** Reads a frame with the core. */
function readFrame(text: string): Frame {
  const core = theCore();
  core.in([text]).x.guest_read(0);
  return core.out().json<Frame>();
}

function storage(): Storage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

export class GuestLink {
  private socket: WebSocket | null = null;
  private ready = false;
  /** Increments with every configured connection. */
  private epoch = 0;
  private readonly waiters = new Map<string, { resolve: (text: string) => void; reject: (e: Failure) => void }>();
  /** Outbox ids found in history, and the connection they were read on. */
  private history: { epoch: number; ids: Set<string> } | null = null;
  private nextTracing = 0;
  private token: string;

  constructor(
    private readonly url: string,
    private readonly deploymentId: string,
    private readonly historyBase: string,
    private readonly storageKey: string,
  ) {
    const kept = storage()?.getItem(storageKey);
    this.token = kept && kept.length <= 2048 ? kept : this.newToken();
  }

  /** The guest's session token (persisted across reloads). */
  sessionToken(): string {
    return this.token;
  }

  private newToken(): string {
    const token = crypto.randomUUID();
    storage()?.setItem(this.storageKey, token);
    return token;
  }

  private tracingId(what: string): string {
    return `${what}-${++this.nextTracing}`;
  }

  /** Closes the socket (queued entries stay queued). */
  close(): void {
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    this.dropped('closed by the page');
  }

  /** The connection is gone: every waiter learns it (their outcome is unknown). */
  private dropped(why: string): void {
    this.ready = false;
    for (const w of this.waiters.values()) w.reject(new Failure(why));
    this.waiters.clear();
  }

  /** Sends a frame and waits for the answer with the same tracing id: its text, and what the core read of it. */
  private request(tracingId: string, text: string, timeoutMs: number): Promise<{ read: Frame; text: string }> {
    const socket = this.socket;
    if (!socket) return Promise.reject(new Failure('not connected'));
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(tracingId);
        reject(new Failure(`no answer within ${timeoutMs} ms`, 'timeout'));
      }, timeoutMs);
      this.waiters.set(tracingId, {
        resolve: (t) => {
          clearTimeout(timer);
          resolve(t);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      try {
        socket.send(text);
      } catch (e) {
        this.waiters.delete(tracingId);
        clearTimeout(timer);
        reject(new Failure(errorText(e)));
      }
    }).then((t) => ({ read: readFrame(t), text: t }));
  }

  private async connect(): Promise<void> {
    if (this.ready) return;
    await this.open();
    for (let i = 0; i < 2; i++) {
      const tracing = this.tracingId('session');
      const { read: answer } = await this.request(
        tracing,
        frame(0, [this.deploymentId, this.token, tracing]),
        CONNECT_TIMEOUT_MS,
      );
      if (answer.session === 'ready') {
        this.ready = true;
        this.epoch++;
        return;
      }
      // The conversation ended, or the session expired or is unknown:
      // start a new session and configure again.
      if (answer.session === 'rotate') this.token = this.newToken();
      else throw new Failure(answer.message);
    }
    throw new Failure('could not configure a session');
  }

  /** Opens the socket and wires its handlers. */
  private open(): Promise<void> {
    const old = this.socket;
    this.socket = null;
    old?.close();
    this.dropped('reconnecting');
    return new Promise<void>((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.url);
      } catch (e) {
        reject(new Failure(errorText(e)));
        return;
      }
      const timer = setTimeout(() => {
        ws.close();
        reject(new Failure('connecting timed out'));
      }, CONNECT_TIMEOUT_MS);
      ws.onmessage = (e: MessageEvent) => {
        if (typeof e.data !== 'string') return;
        let read: Frame;
        try {
          read = readFrame(e.data);
        } catch {
          return;
        }
        if (read.ended) this.ready = false;
        const waiter = read.tracingId === null ? undefined : this.waiters.get(read.tracingId);
        if (waiter && read.tracingId !== null) {
          this.waiters.delete(read.tracingId);
          waiter.resolve(e.data);
        }
      };
      ws.onclose = () => {
        clearTimeout(timer);
        reject(new Failure('the socket closed before opening'));
        if (this.socket === ws) this.socket = null;
        this.dropped('the socket closed before the answer');
      };
      ws.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      this.socket = ws;
    });
  }

  /** Whether the session's history holds the message tagged `outboxId` (read once per connection). */
  private async inHistory(outboxId: string): Promise<boolean> {
    if (this.history && this.history.epoch === this.epoch) return this.history.ids.has(outboxId);
    const tracing = this.tracingId('jwt');
    const { read: answer } = await this.request(tracing, frame(1, [this.token, tracing]), CONNECT_TIMEOUT_MS);
    if (answer.jwt === null) throw new Failure('getJwt failed: ' + answer.message);
    const ids = new Set<string>();
    for (let page = 1; ; page++) {
      const url = `${this.historyBase.replace(/\/+$/, '')}/api/v2/webmessaging/messages?pageSize=100&pageNumber=${page}`;
      let response: Response;
      try {
        response = await fetch(url, {
          headers: { authorization: `Bearer ${answer.jwt}`, accept: 'application/json' },
          signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
        });
      } catch (e) {
        throw new Failure(errorText(e));
      }
      const body = new Uint8Array(await response.arrayBuffer());
      if (response.status !== 200) {
        throw new Failure(`history answered ${response.status}; resending would risk a duplicate`);
      }
      const core = theCore();
      core.in([body]).x.guest_read(2);
      const read = core.out().json<{ ids: string[]; pageCount: number } | { error: string }>();
      if ('error' in read) throw new Failure(read.error);
      for (const id of read.ids) ids.add(id);
      if (page >= Math.min(read.pageCount, HISTORY_PAGES)) break;
    }
    this.history = { epoch: this.epoch, ids };
    return ids.has(outboxId);
  }

  /** Sends a typing indicator if the socket is open and configured (best-effort). */
  typing(): boolean {
    const socket = this.ready ? this.socket : null;
    if (!socket) return false;
    try {
      socket.send(frame(2, [this.token, this.tracingId('typing'), new Date().toISOString()]));
      return true;
    } catch {
      return false;
    }
  }

  /** Sends one entry (the core's `SEND`): its answer as the core takes it. */
  async send(q: Outgoing, body: Uint8Array): Promise<Part[]> {
    const id = q.headers.find(([n]) => n === 'idempotency-key')?.[1];
    if (!id) return failed('network', 'guest entry without an id');
    try {
      await this.connect();
      if (q.unknownOutcome && (await this.inHistory(id))) {
        // The server had it: its echo was lost. Delivered, not resent.
        const core = theCore();
        core.in([]).x.guest_read(3);
        const out = core.out();
        return [{ json: out.text() }, out.bytes()];
      }
      const text = frame(3, [this.token, id, body, new Date().toISOString()]);
      if (!text) return failed('network', 'not a guest entry');
      const { read: answer, text: raw } = await this.request(id, text, q.timeoutMs);
      if (answer.rotates) {
        this.token = this.newToken();
        this.ready = false;
      }
      const core = theCore();
      core.in([raw]).x.guest_read(1);
      const out = core.out();
      const head = out.text();
      if (!head) return failed('network', 'unexpected answer: ' + answer.message);
      return [{ json: head }, out.bytes()];
    } catch (e) {
      if (e instanceof Failure) return failed(e.kind, e.message);
      return failed('network', errorText(e));
    }
  }
}
