/**
 * The core: Outbox's one wasm module (`crates/outbox-wasm`), every
 * decision's home. This file loads it and calls its plain exports; it
 * decides nothing.
 *
 * The module ships inside `outbox-core.js`, a classic script that sets
 * `self.outboxCore` to the module's bytes as a string (one character per
 * byte): a service worker `importScripts` it and compiles it at once
 * (`new WebAssembly.Module`, allowed in workers), so that it can tell
 * synchronously, while its script is evaluated, which requests are
 * Outbox's, and start offline (imported scripts are kept with the
 * worker); a page fetches the same file and compiles it asynchronously.
 */

import { Reader, writeFrame, type Part } from './frame.js';

/** The core's exports (`crates/outbox-wasm/src/abi.rs`). */
interface Exports {
  readonly memory: WebAssembly.Memory;
  input(len: number): number;
  output(): number;
  output_len(): number;
  engine(guest: number, seedLo: number, seedHi: number): number;
  drop_engine(engine: number): void;
  drop_job(job: number): void;
  owns(engine: number): number;
  replay(engine: number): void;
  flush(engine: number, exclusive: number): number;
  respond(engine: number, queue: number): number;
  submit(engine: number): number;
  submit_genesys(engine: number, open: number): number;
  guest_send(engine: number): number;
  token(engine: number, expiresIn: number): number;
  network_back(engine: number): number;
  admin(engine: number, op: number, n: number, now: number): number;
  step(job: number, now: number): number;
  tx(job: number, now: number): number;
  /** Returns 1 when the host replaces its connection (the failure may have spoilt it). */
  tx_end(job: number, ok: number, now: number): number;
  reply(job: number, now: number): void;
  answer(job: number, k: number, now: number): void;
  replay_key(): void;
  guest_frame(kind: number): void;
  guest_read(kind: number): void;
}

/** A loaded core: its exports, called with frames. */
export class Core {
  constructor(readonly x: Exports) {}

  /** Writes `parts` as the next call's input. */
  in(parts: readonly Part[]): this {
    writeFrame(parts, (len) => {
      // `input` may grow the memory (detaching any earlier view): view it after.
      const at = this.x.input(len);
      return new Uint8Array(this.x.memory.buffer, at, len);
    });
    return this;
  }

  /** The last call's output. */
  out(): Reader {
    const x = this.x;
    return new Reader(new Uint8Array(x.memory.buffer, x.output(), x.output_len()));
  }
}

/** The module's bytes from the string `outbox-core.js` sets (one character per byte). */
export function stringBytes(s: string): Uint8Array {
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}

/** The module's bytes from `outbox-core.js`'s source text (its string literal, unescaped). */
export function scriptBytes(text: string): Uint8Array {
  const start = text.indexOf('"');
  const end = text.lastIndexOf('"');
  const body = text.slice(start + 1, end);
  const bytes = new Uint8Array(body.length);
  let n = 0;
  for (let i = 0; i < body.length; i++) {
    let c = body.charCodeAt(i);
    if (c === 92) {
      // `\\`, `\"`, `\n`, `\r`: the only escapes the build writes.
      const e = body.charCodeAt(++i);
      c = e === 110 ? 10 : e === 114 ? 13 : e;
    }
    bytes[n++] = c;
  }
  return bytes.subarray(0, n);
}

/** Instantiates a compiled module (it imports nothing). */
export function instantiate(module: WebAssembly.Module): Core {
  return new Core(new WebAssembly.Instance(module, {}).exports as unknown as Exports);
}

/** 64 random bits, as two numbers, for the core's ids and jitter. */
export function seed(): [number, number] {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  return [words[0], words[1]];
}
