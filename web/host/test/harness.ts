/**
 * The TypeScript host's IndexedDB store, for the store's wasm test suites
 * (`crates/host-tests`): a classic script (esbuild, IIFE) that sets
 * `globalThis.outboxStoreHarness`. The tests drive the same `Store` and
 * `Transaction` the host runs the core's transactions with; the core's side
 * (`IdbRun`) runs in the test's own wasm.
 */

import { writeFrame, type Part } from '../frame.js';
import { Store, Transaction, deleteDatabase, type Failure, type Schema } from '../store.js';

/** The answers of a batch as a frame (bytes). */
function frame(parts: Part[]): Uint8Array {
  let out = new Uint8Array(0);
  const used = writeFrame(parts, (len) => (out = new Uint8Array(len)));
  return out.subarray(0, used);
}

const harness = {
  /** The store of database `name` (opened on first use). */
  store(name: string, version: number, schema: string): Store {
    return new Store(name, version, JSON.parse(schema) as Schema);
  },
  /** Opens (or reopens) the store's connection; rejects with the open's error. */
  async connect(store: Store): Promise<void> {
    await store.connection();
  },
  close(store: Store): void {
    store.close();
  },
  deleteDatabase(name: string): Promise<void> {
    return deleteDatabase(name);
  },
  /** A transaction of mode `r`, `w` or `d` on the store. */
  async begin(store: Store, mode: string): Promise<Transaction> {
    return new Transaction(await store.connection(), mode);
  },
  /** Issues a batch; resolves with its reads' answers (a frame), or rejects with the transaction's failure. */
  execute(tx: Transaction, ops: string, blobs: Uint8Array[]): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      tx.done.then((failure) => reject(failure ?? { name: 'AbortError', message: 'ended before its reads' }));
      if (!tx.issue(JSON.parse(ops) as unknown[][], blobs, (answers) => resolve(frame(answers)))) {
        resolve(frame([]));
      }
    });
  },
  /** Issues the last batch and commits; resolves with the failure, if any. */
  finish(tx: Transaction, ops: string, blobs: Uint8Array[]): Promise<Failure | null> {
    tx.issue(JSON.parse(ops) as unknown[][], blobs, () => {});
    tx.commit();
    return tx.done;
  },
  /** Aborts; resolves once it ended. */
  abort(tx: Transaction): Promise<Failure | null> {
    tx.abort(null);
    return tx.done;
  },
};

(globalThis as unknown as { outboxStoreHarness: typeof harness }).outboxStoreHarness = harness;
