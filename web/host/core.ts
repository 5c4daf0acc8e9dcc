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

/** `Uint8Array.fromBase64`, where the engine has it (Chromium 140, Firefox 133, Safari 18.2). */
type FromBase64 = { fromBase64?: (base64: string) => Uint8Array };

/**
 * The module's bytes from the string `outbox-core.js` sets (one character
 * per byte). Natively where the engine can: `btoa` reads a string of
 * bytes and `Uint8Array.fromBase64` writes them, together about a
 * millisecond for the whole core, where a loop over 250,000 characters,
 * run once in a worker that just started and not yet optimised, takes
 * several (this is on a cold start's path).
 */
export function stringBytes(s: string): Uint8Array {
  if (typeof (Uint8Array as FromBase64).fromBase64 === 'function') {
    return (Uint8Array as FromBase64).fromBase64!(btoa(s));
  }
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}

/** The module's bytes from `outbox-core.js`'s source text (its string literal, unescaped). */
export function scriptBytes(text: string): Uint8Array {
  const body = text.slice(text.indexOf('"') + 1, text.lastIndexOf('"'));
  // `\\`, `\"`, `\n`, `\r`: the only escapes the build writes.
  return stringBytes(body.replace(/\\([\s\S])/g, (_, e: string) => (e === 'n' ? '\n' : e === 'r' ? '\r' : e)));
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
