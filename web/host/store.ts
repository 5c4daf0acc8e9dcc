/**
 * IndexedDB, as the core asks for it: open the database the core
 * describes, and run the core's transactions — each step a batch of
 * operations (`crates/outbox-wasm/src/idb.rs` lists them) issued at once,
 * the next step asked for inside the last read's `success` callback so
 * that the transaction stays active. Nothing here knows a record's shape,
 * a rule or a read's meaning.
 */

import type { Core } from './core.js';
import type { Part } from './frame.js';
import { markOnce } from './marks.js';

/** The core's schema: stores with their key path and indexes. */
export type Schema = [name: string, keyPath: string | null, indexes: [string, string, boolean][]][];

/** What a store transaction step asks (`tx` in the core): 1 operations, then more; 2 operations, then commit; 3 failed. */
const COMMIT = 2;
const FAILED = 3;

/** A failure the host reports to the core: a DOMException's name and message. */
export interface Failure {
  name: string;
  message: string;
}

function failureOf(e: unknown): Failure {
  if (e && typeof e === 'object' && 'name' in e) {
    const x = e as { name: unknown; message?: unknown };
    return { name: String(x.name), message: String(x.message ?? '') };
  }
  return { name: 'Error', message: String(e) };
}

/** An error with the failure's name, for the app. */
function thrown(f: Failure, operation: string): Error {
  const e = new Error(`IndexedDB ${operation} failed: ${f.name}: ${f.message}`);
  e.name = f.name;
  return e;
}

/** How many index ids an upgrade of an existing database skips first (WebKit, below). */
const SKIPPED_INDEX_IDS = 16;
const SCRATCH_STORE = 'outbox-upgrade-scratch';

/** Settles with a request's result. */
function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * Opens `name` at `version`, creating what a database at an older version
 * lacks (stores, indexes: a later version only adds). A database at a newer
 * version (written by newer code) is refused and left as it is.
 */
export async function openDatabase(name: string, version: number, schema: Schema): Promise<IDBDatabase> {
  const request = indexedDB.open(name, version);
  let upgradeError: Failure | null = null;
  request.onupgradeneeded = (event) => {
    const db = request.result;
    const tx = request.transaction;
    try {
      if (!tx) throw new DOMException('no versionchange transaction', 'InvalidStateError');
      // WebKit: after an aborted upgrade that created an index on an
      // existing store, the next upgrade is handed the same index ids
      // again, and creating an index on that store aborts it (`open` then
      // fails with AbortError, every time). Creating and dropping a few
      // indexes on a scratch store first moves the next ids past them.
      if (event.oldVersion >= 1) {
        const scratch = db.createObjectStore(SCRATCH_STORE);
        for (let i = 0; i < SKIPPED_INDEX_IDS; i++) scratch.createIndex('i' + i, 'i');
        db.deleteObjectStore(SCRATCH_STORE);
      }
      for (const [storeName, keyPath, indexes] of schema) {
        const store = db.objectStoreNames.contains(storeName)
          ? tx.objectStore(storeName)
          : db.createObjectStore(storeName, keyPath === null ? undefined : { keyPath });
        for (const [index, path, unique] of indexes) {
          if (!store.indexNames.contains(index)) store.createIndex(index, path, { unique });
        }
      }
    } catch (e) {
      upgradeError = failureOf(e);
      tx?.abort();
    }
  };
  try {
    return await done(request);
  } catch (e) {
    if (upgradeError) throw thrown(upgradeError, 'upgrade');
    const f = failureOf(e);
    if (f.name === 'VersionError') throw await newerVersion(name, version);
    throw thrown(f, 'open');
  }
}

/** The error for a database found at a version above `supported` (never upgraded or deleted). */
async function newerVersion(name: string, supported: number): Promise<Error> {
  let found = 0;
  try {
    const probe = indexedDB.open(name);
    // Should the database have vanished meanwhile, do not create an empty one.
    probe.onupgradeneeded = () => probe.transaction?.abort();
    const db = await done(probe);
    found = db.version;
    db.close();
  } catch {
    // Its version stays unknown.
  }
  const e = new Error(
    `database \`${name}\` has schema version ${found}, newer than version ${supported} that this code ` +
      'understands; it was left untouched (is an older build running next to a newer one?)',
  );
  e.name = 'VersionError';
  return e;
}

/** Deletes the database `name` (open connections of this code close themselves). */
export function deleteDatabase(name: string): Promise<void> {
  return done(indexedDB.deleteDatabase(name)).then(() => undefined);
}

const STORES = ['entries', 'dead', 'bodies', 'meta'];

type Key = IDBValidKey | { lo: IDBValidKey; hi: IDBValidKey } | null;

function range(key: Key): IDBValidKey | IDBKeyRange | null {
  if (key !== null && typeof key === 'object' && 'lo' in key) return IDBKeyRange.bound(key.lo, key.hi);
  return key;
}

/** A value read, as the core takes it: JSON (`null` when absent), or bytes. */
function part(value: unknown): Part {
  if (value === undefined || value === null) return null;
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return { json: json(value) };
}

/** JSON of anything IndexedDB holds (a BigInt as its digits; what cannot be written, `null`). */
function json(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null';
  } catch {
    return 'null';
  }
}

/** The database of one outbox: one connection, reopened after another context upgraded or deleted it. */
export class Store {
  private db: IDBDatabase | null = null;
  private opening: Promise<IDBDatabase> | null = null;

  constructor(
    readonly name: string,
    private readonly version: number,
    private readonly schema: Schema,
  ) {}

  /** The open connection, (re)opening it when needed. */
  connection(): Promise<IDBDatabase> {
    if (this.db) return Promise.resolve(this.db);
    if (!this.opening) {
      this.opening = openDatabase(this.name, this.version, this.schema).then(
        (db) => {
          markOnce('store-open');
          this.opening = null;
          // Let newer code (or a delete) proceed; the next operation reopens.
          const forget = () => {
            db.close();
            if (this.db === db) this.db = null;
          };
          db.onversionchange = forget;
          db.onclose = forget;
          this.db = db;
          return db;
        },
        (e: unknown) => {
          this.opening = null;
          throw e;
        },
      );
    }
    return this.opening;
  }

  /** Closes the connection; the next operation reopens. */
  close(): void {
    this.db?.close();
    this.db = null;
  }

  /**
   * Runs the job's open store transaction (`name`, mode `r`, `w` or `d`)
   * to its end, and tells the core how it ended (`tx_end`). The core is
   * asked for each next step synchronously, inside the last read's
   * `success` callback: the transaction never waits for anything else.
   */
  async run(core: Core, job: number, name: string, mode: string): Promise<void> {
    let failure: Failure | null;
    try {
      const tx = new Transaction(await this.connection(), mode);
      const step = (answers: Part[]) => {
        let kind: number;
        let ops: unknown[][];
        const blobs: Uint8Array[] = [];
        try {
          kind = core.in(answers).x.tx(job, Date.now());
          if (kind === FAILED) return tx.abort(null);
          const out = core.out();
          ops = out.json<unknown[][]>();
          for (let b = out.next(); b; b = out.next()) if ('bytes' in b) blobs.push(b.bytes);
        } catch (e) {
          // The core trapped: a bug; the transaction goes with it.
          return tx.abort({ name: TRAPPED, message: String(e) });
        }
        if (!tx.issue(ops, blobs, step)) {
          if (kind === COMMIT) tx.commit();
          else step([]);
        }
      };
      step([]);
      failure = await tx.done;
    } catch (e) {
      failure = failureOf(e);
    }
    if (failure?.name === TRAPPED) throw new Error('outbox: the core failed in ' + name + ': ' + failure.message);
    if (failure) {
      console.warn(`[outbox] IndexedDB ${name} failed: ${failure.name}: ${failure.message}`);
      core.in([failure.name, failure.message]);
    }
    if (core.x.tx_end(job, failure ? 0 : 1, Date.now())) this.close();
  }
}

/** The name of the failure of a transaction the core trapped in. */
const TRAPPED = 'OutboxCoreTrapped';

/**
 * One IndexedDB transaction over the outbox's stores, carrying out batches
 * of the core's operations; `done` settles with how it ended.
 */
export class Transaction {
  readonly done: Promise<Failure | null>;
  private readonly tx: IDBTransaction | null = null;
  private end!: (failure: Failure | null) => void;
  /** The first failing request's error (see the constructor). */
  private failed: Failure | null = null;

  constructor(
    db: IDBDatabase,
    private readonly mode: string,
  ) {
    let settled = false;
    this.done = new Promise((resolve) => {
      this.end = (failure) => {
        if (!settled) {
          settled = true;
          resolve(failure);
        }
      };
    });
    let tx: IDBTransaction;
    try {
      // The durability the core asks (`Access` in `outbox-core`): `strict`
      // for an enqueue (answered once on disk), `relaxed` for the rest (a
      // flush cycle, an admin call: safe against a crash of the browser; a
      // power cut may undo the last, which at worst sends a message again
      // with its key). Chromium's default is `strict` for every write,
      // which cost each flush cycle a sync.
      tx =
        mode === 'r'
          ? db.transaction(STORES, 'readonly')
          : db.transaction(STORES, 'readwrite', { durability: mode === 'd' ? 'strict' : 'relaxed' });
    } catch (e) {
      this.end(failureOf(e));
      return;
    }
    this.tx = tx;
    // After an explicit commit an aborted transaction reports only
    // AbortError (Firefox) or nothing (WebKit): the first failing
    // request's error is kept, so that a quota failure is recognised in
    // every engine.
    tx.onerror = (event) => {
      const error = (event.target as IDBRequest | null)?.error;
      if (!this.failed && error) this.failed = failureOf(error);
    };
    tx.onabort = () => {
      const own = tx.error;
      this.end(
        own && own.name !== 'AbortError'
          ? failureOf(own)
          : (this.failed ?? failureOf(own ?? new DOMException('', 'AbortError'))),
      );
    };
    tx.oncomplete = () => this.end(null);
  }

  /**
   * Issues a batch of operations, in order; when its reads have all
   * answered, calls `answered` with their results, inside the last one's
   * `success` callback. Returns whether any read is waiting (none: the
   * batch is done at once).
   */
  issue(ops: unknown[][], blobs: Uint8Array[], answered: (answers: Part[]) => void): boolean {
    const tx = this.tx;
    if (!tx) return true; // It never opened: `done` has the failure.
    const answers: Part[] = [];
    let waiting = 0;
    const one = () => {
      if (--waiting === 0) answered(answers);
    };
    try {
      for (const op of ops) if (issue(tx, op, blobs, answers, one)) waiting++;
    } catch (e) {
      // An operation refused at once (a value that cannot be stored).
      this.abort(failureOf(e));
      return true;
    }
    return waiting > 0;
  }

  /** Commits (a read-only transaction is done: it ends by itself). */
  commit(): void {
    if (this.mode === 'r' || !this.tx) return this.end(null);
    (this.tx as IDBTransaction & { commit?: () => void }).commit?.();
  }

  /** Aborts, with the failure to report (`null`: the abort's own). */
  abort(failure: Failure | null): void {
    if (failure && !this.failed) this.failed = failure;
    try {
      this.tx?.abort();
    } catch {
      // Already finishing.
    }
    if (!this.tx) this.end(this.failed);
  }
}

/**
 * Issues one operation; a read puts its result at its place in `answers`
 * and calls `answered`. Returns whether it is a read.
 */
function issue(
  tx: IDBTransaction,
  op: unknown[],
  blobs: Uint8Array[],
  answers: Part[],
  answered: () => void,
): boolean {
  const [name, storeName] = op as [string, string];
  const store = tx.objectStore(storeName);
  const source = (index: unknown) => (typeof index === 'string' ? store.index(index) : store);
  const slot = answers.length;
  const read = (request: IDBRequest, map: (v: unknown) => Part = part) => {
    answers.push(null);
    request.onsuccess = () => {
      answers[slot] = map(request.result);
      answered();
    };
    return true;
  };
  switch (name) {
    case 'get':
      return read(source(op[2]).get(range(op[3] as Key) as IDBValidKey));
    case 'key':
      return read(source(op[2]).getKey(range(op[3] as Key) as IDBValidKey));
    case 'all':
      return read(source(op[2]).getAll(range(op[3] as Key), (op[4] as number) || undefined));
    case 'keys':
      return read(source(op[2]).getAllKeys(range(op[3] as Key), (op[4] as number) || undefined));
    case 'count':
      return read(store.count());
    case 'first': {
      // The first value of each index key: a cursor that seeks past each
      // key once its first record is read (O(keys · log n)).
      const values: unknown[] = [];
      answers.push(null);
      const cursor = source(op[2]).openCursor();
      cursor.onsuccess = () => {
        const c = cursor.result;
        if (!c) {
          answers[slot] = { json: json(values) };
          answered();
          return;
        }
        values.push(c.value);
        if (typeof c.key === 'string') c.continue(c.key + '\0');
        else c.continue();
      };
      return true;
    }
    case 'page': {
      const [, , index, key, after, limit, field, equals] = op as [
        string,
        string,
        string | null,
        IDBValidKey | null,
        number,
        number,
        string | null,
        string | null,
      ];
      const values: unknown[] = [];
      let next: IDBValidKey | null = null;
      answers.push(null);
      const cursor =
        index === null
          ? store.openCursor(after > 0 ? IDBKeyRange.lowerBound(after, true) : null)
          : store.index(index).openCursor(key === null ? null : IDBKeyRange.only(key));
      const finish = () => {
        answers[slot] = { json: json({ next, values }) };
        answered();
      };
      cursor.onsuccess = () => {
        const c = cursor.result;
        if (!c) return finish();
        if (index !== null && key !== null && (c.primaryKey as number) <= after) {
          // Straight to the first record after the last page's.
          c.continuePrimaryKey(key, after + 1);
          return;
        }
        const value = c.value as Record<string, unknown> | null;
        if (field === null || (value && value[field] === equals)) {
          values.push(value);
          if (values.length === limit) {
            next = c.primaryKey;
            return finish();
          }
        }
        c.continue();
      };
      return true;
    }
    case 'put':
      if (op[3] === null) store.put(op[2]);
      else store.put(op[2], op[3] as IDBValidKey);
      return false;
    case 'add':
      if (op[3] === null) store.add(op[2]);
      else store.add(op[2], op[3] as IDBValidKey);
      return false;
    case 'body':
      store.add(blobs[op[2] as number], op[3] as IDBValidKey);
      return false;
    case 'del':
      store.delete(range(op[2] as Key) as IDBValidKey);
      return false;
    case 'clear':
      store.clear();
      return false;
    default:
      throw new Error('outbox: unknown store operation ' + String(name));
  }
}
