// Loads a raw IndexedDB dump (testdata/idb-v1/outbox.json: every store with
// its key path and indexes, every record with its key; bodies as
// {"$bytes": [...]}) into a fresh database, exactly as it was written —
// for the upgrade tests (crates/e2e/tests/upgrade.rs, crates/host-tests).
// `options.origin` replaces the dump's origin in every string (the
// emulator's port differs); `options.shift` adds that many ms to every time
// (a number from 10^12 up, in records and in the schedule's text), so that
// the entries are as old, relative to now, as when they were written.
globalThis.loadIdbFixture = async function loadIdbFixture(dump, options) {
  const from = 'http://127.0.0.1:8081';
  const origin = (options && options.origin) || from;
  const shift = (options && options.shift) || 0;
  const isTime = (n) => typeof n === 'number' && Number.isInteger(n) && n >= 1e12 && n < 1e14;
  const fix = (v) => {
    if (typeof v === 'string') {
      const moved = v.split(from).join(origin);
      // The schedule's text: times as words.
      return shift && /^\S+ \d/.test(moved)
        ? moved.replace(/\b\d{13}\b/g, (t) => String(Number(t) + shift))
        : moved;
    }
    if (isTime(v)) return v + shift;
    if (Array.isArray(v)) return v.map(fix);
    if (v && typeof v === 'object') {
      if (Array.isArray(v.$bytes)) return new Uint8Array(v.$bytes);
      const out = {};
      for (const [k, x] of Object.entries(v)) out[k] = fix(x);
      return out;
    }
    return v;
  };
  await new Promise((resolve, reject) => {
    const del = indexedDB.deleteDatabase(dump.name);
    del.onsuccess = resolve;
    del.onerror = () => reject(del.error);
  });
  const db = await new Promise((resolve, reject) => {
    const open = indexedDB.open(dump.name, dump.version);
    open.onupgradeneeded = () => {
      const d = open.result;
      for (const [name, s] of Object.entries(dump.stores)) {
        const store = d.createObjectStore(name, s.keyPath === null ? { autoIncrement: s.autoIncrement } : { keyPath: s.keyPath, autoIncrement: s.autoIncrement });
        for (const i of s.indexes) store.createIndex(i.name, i.keyPath, { unique: i.unique, multiEntry: i.multiEntry });
      }
    };
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  await new Promise((resolve, reject) => {
    const tx = db.transaction(Object.keys(dump.stores), 'readwrite');
    for (const [name, s] of Object.entries(dump.stores)) {
      const store = tx.objectStore(name);
      for (const r of s.records) {
        const value = fix(r.value);
        if (s.keyPath === null) store.put(value, r.key);
        else store.put(value);
      }
    }
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
  db.close();
  return true;
};
