/**
 * Frames: what crosses the boundary with the core (`crates/outbox-wasm/src/frame.rs`).
 * An item is a tag byte, its length (u32, little-endian) and its payload:
 * `j` a JSON text, `t` a plain text, `b` bytes, `n` nothing.
 */

const JSON_TAG = 0x6a; // 'j'
const TEXT_TAG = 0x74; // 't'
const BYTES_TAG = 0x62; // 'b'
const NULL_TAG = 0x6e; // 'n'

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An item to write: a JSON text, a plain text, bytes, or nothing. */
export type Part =
  | { json: string }
  | string
  | Uint8Array
  | null
  | undefined;

/** The frame's bytes, written into `into(len)` (the core's input buffer). */
export function writeFrame(parts: readonly Part[], into: (len: number) => Uint8Array): number {
  let size = 0;
  for (const p of parts) {
    size += 5;
    if (p == null) continue;
    if (typeof p === 'string') size += p.length * 3;
    else if (p instanceof Uint8Array) size += p.byteLength;
    else size += p.json.length * 3;
  }
  const buf = into(size);
  let at = 0;
  const head = (tag: number, len: number, start: number) => {
    buf[start] = tag;
    buf[start + 1] = len & 0xff;
    buf[start + 2] = (len >>> 8) & 0xff;
    buf[start + 3] = (len >>> 16) & 0xff;
    buf[start + 4] = (len >>> 24) & 0xff;
  };
  for (const p of parts) {
    const start = at;
    at += 5;
    if (p == null) {
      head(NULL_TAG, 0, start);
    } else if (p instanceof Uint8Array) {
      buf.set(p, at);
      at += p.byteLength;
      head(BYTES_TAG, p.byteLength, start);
    } else {
      const text = typeof p === 'string' ? p : p.json;
      const { written } = encoder.encodeInto(text, buf.subarray(at));
      at += written;
      head(typeof p === 'string' ? TEXT_TAG : JSON_TAG, written, start);
    }
  }
  return at;
}

/** One item read. */
export type Item = { json: string } | { text: string } | { bytes: Uint8Array } | null;

/** Reads a frame's items (bytes are copied out of the core's memory). */
export class Reader {
  private at = 0;
  constructor(private readonly buf: Uint8Array) {}

  /** The next item; `undefined` at the end. */
  next(): Item | undefined {
    const b = this.buf;
    if (this.at + 5 > b.length) return undefined;
    const tag = b[this.at];
    const len = (b[this.at + 1] | (b[this.at + 2] << 8) | (b[this.at + 3] << 16) | (b[this.at + 4] << 24)) >>> 0;
    const start = this.at + 5;
    this.at = start + len;
    const payload = b.subarray(start, start + len);
    if (tag === JSON_TAG) return { json: decoder.decode(payload) };
    if (tag === TEXT_TAG) return { text: decoder.decode(payload) };
    if (tag === BYTES_TAG) return { bytes: payload.slice() };
    return null;
  }

  /** The next item as parsed JSON. */
  json<T>(): T {
    const item = this.next();
    if (item && 'json' in item) return JSON.parse(item.json) as T;
    throw new Error('outbox: the core gave no JSON where one was expected');
  }

  /** The next item as text (JSON or plain). */
  text(): string {
    const item = this.next();
    if (item && 'text' in item) return item.text;
    if (item && 'json' in item) return item.json;
    return '';
  }

  /** The next item's bytes (empty when it has none). */
  bytes(): Uint8Array {
    const item = this.next();
    return item && 'bytes' in item ? item.bytes : new Uint8Array(0);
  }
}
