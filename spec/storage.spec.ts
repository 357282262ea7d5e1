// The Store port against both backends (real RocksDB in a temp dir, and the simulator's
// MemoryStore): atomic batches, byte-ordered prefix iteration, erase_range, group commit,
// durability across reopen, the LOCK against a second monitor, clear errors, crash semantics,
// fault injection, a real full disk (tmpfs, when we may mount), and sync chunks that rebuild a
// store exactly. Deterministic: no sleeps; the MemoryStore runs on a hand-stepped clock.
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryStore } from '../storage/memory-store.ts';
import { RocksDBStore, readCacheKeysMax } from '../storage/rocksdb-store.ts';
import type { Store } from '../storage/store.ts';
import { StoreError } from '../storage/store.ts';
import type { StoreKey } from '../storage/sync-iterator.ts';
import { storeChunks, storeStats } from '../storage/sync-iterator.ts';
import { Transaction } from '../storage/transaction.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const text = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8');

async function collect(store: Store, prefix: string, options: { start?: string; end?: string } = {}) {
  const entries: [string, string][] = [];
  for await (const [key, value] of store.iterate(prefix, options)) entries.push([key, text(value) as string]);
  return entries;
}

async function keysOf(store: Store, prefix: string, options: { start?: string; end?: string } = {}) {
  return (await collect(store, prefix, options)).map(([key]) => key);
}

/** Settle every queued microtask and I/O callback without waiting on a timer. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function rejection(promise: Promise<unknown>): Promise<StoreError> {
  let rejected = false;
  let reason: unknown;
  try {
    await promise;
  } catch (error) {
    rejected = true;
    reason = error;
  }
  if (!rejected) assert.unreachable('expected a rejection');
  assert.instance(reason, StoreError);
  return reason as StoreError;
}

/** A hand-stepped clock for MemoryStore's simulated fsyncs. */
class StepClock {
  nowMs = 0;
  #timers: { atMs: number; order: number; fn: () => void }[] = [];
  #order = 0;

  setTimeout(fn: () => void, ms: number): unknown {
    this.#timers.push({ atMs: this.nowMs + ms, order: this.#order++, fn });
    return this.#order;
  }

  /** Run every timer due within ms, in time order. */
  async advance(ms: number): Promise<void> {
    const targetMs = this.nowMs + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.atMs - b.atMs || a.order - b.order);
      const next = this.#timers[0];
      if (next === undefined || next.atMs > targetMs) break;
      this.#timers.shift();
      this.nowMs = next.atMs;
      next.fn();
      await turn();
    }
    this.nowMs = targetMs;
    await turn();
  }
}

let scratchRoot = '';
let scratchCount = 0;
/** A fresh, not yet created path under this run's temp root. */
async function scratchDir(name: string): Promise<string> {
  if (scratchRoot === '') scratchRoot = await mkdtemp(join(tmpdir(), 'paxmon-storage-'));
  return join(scratchRoot, `${name}-${++scratchCount}`);
}

async function removeScratch(): Promise<void> {
  if (scratchRoot !== '') await rm(scratchRoot, { recursive: true, force: true });
  scratchRoot = '';
}

// ---------------------------------------------------------------------------------------------
// The contract both backends keep.

type FaultyStore = Store & { failNextApply(code?: 'ENOSPC' | 'EIO'): void };
interface Backend {
  name: string;
  open(): Promise<FaultyStore>;
}

const backends: Backend[] = [
  {
    name: 'RocksDBStore',
    async open() {
      return RocksDBStore.open(await scratchDir('contract'), { create: true });
    },
  },
  { name: 'MemoryStore', open: async () => new MemoryStore() },
];

for (const backend of backends) {
  const Contract = suite(`storage contract: ${backend.name}`);
  let store: FaultyStore;
  Contract.before.each(async () => {
    store = await backend.open();
  });
  Contract.after.each(async () => {
    await store.close();
  });
  Contract.after(removeScratch);

  Contract('get, getNumber, exists; a missing number reads as 0', async () => {
    await store.apply(new Transaction().put('p', 'k', 'v').putNumber('paxos', 'last_committed', 42));
    assert.is(text(await store.get('p', 'k')), 'v');
    assert.is(await store.get('p', 'nope'), undefined);
    assert.ok(await store.exists('p', 'k'));
    assert.not.ok(await store.exists('p', 'nope'));
    assert.not.ok(await store.exists('pp', 'k'));
    assert.is(await store.getNumber('paxos', 'last_committed'), 42);
    assert.is(await store.getNumber('paxos', 'first_committed'), 0);
  });

  Contract('values read back are copies', async () => {
    await store.apply(new Transaction().put('p', 'k', 'v'));
    const value = (await store.get('p', 'k')) as Uint8Array;
    value[0] = 0x78;
    assert.is(text(await store.get('p', 'k')), 'v');
  });

  Contract('iterate one prefix in byte order, not UTF-16 order', async () => {
    const keys = ['', '10', '9', 'a', 'a\0b', 'b', 'é', '\uFFFF', '\u{10000}', 'Z'];
    const tx = new Transaction();
    for (const key of keys) tx.put('p', key, `v${key}`);
    await store.apply(tx);
    const expected = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    // U+FFFF is EF BF BF in UTF-8, before U+10000's F0 90 80 80 — though not in UTF-16.
    assert.ok(expected.indexOf('\uFFFF') < expected.indexOf('\u{10000}'));
    assert.equal(await keysOf(store, 'p'), expected);
    assert.equal((await collect(store, 'p')).at(-1), ['\u{10000}', 'v\u{10000}']);
  });

  Contract('start/end bounds are [start, end)', async () => {
    const tx = new Transaction();
    for (const key of ['a', 'b', 'c', 'd', 'e']) tx.put('p', key, key);
    await store.apply(tx);
    assert.equal(await keysOf(store, 'p', { start: 'b' }), ['b', 'c', 'd', 'e']);
    assert.equal(await keysOf(store, 'p', { start: 'b', end: 'd' }), ['b', 'c']);
    assert.equal(await keysOf(store, 'p', { start: 'bb', end: 'dd' }), ['c', 'd']);
    assert.equal(await keysOf(store, 'p', { end: 'c' }), ['a', 'b']);
    assert.equal(await keysOf(store, 'p', { start: 'd', end: 'b' }), []);
    assert.equal(await keysOf(store, 'p', { start: 'z' }), []);
  });

  Contract('no leak into neighbouring prefixes (a, ab, a\\x01, a b)', async () => {
    await store.apply(
      new Transaction()
        .put('a', 'k', '1')
        .put('ab', 'k', '2')
        .put('a\x01', 'k', '3')
        .put('a b', 'k', '4')
        .put('`', 'k', '5')
        .put('a', '\xff\xff', '6'),
    );
    assert.equal(await collect(store, 'a'), [
      ['k', '1'],
      ['\xff\xff', '6'],
    ]);
    assert.equal(await collect(store, 'ab'), [['k', '2']]);
    assert.equal(await collect(store, 'a\x01'), [['k', '3']]);
    assert.equal(await keysOf(store, 'nothing'), []);
  });

  Contract('erase_range and puts apply as one transaction, in order', async () => {
    const setup = new Transaction();
    for (const key of ['a', 'b', 'c', 'd', 'e']) setup.put('p', key, 'old');
    setup.put('q', 'c', 'neighbour');
    await store.apply(setup);
    await store.apply(
      new Transaction().eraseRange('p', 'b', 'd').put('p', 'c', 'new').put('p', 'z', 'new').erase('p', 'a'),
    );
    assert.equal(await collect(store, 'p'), [
      ['c', 'new'],
      ['d', 'old'],
      ['e', 'old'],
      ['z', 'new'],
    ]);
    assert.equal(await collect(store, 'q'), [['c', 'neighbour']]);
    // A put then an erase_range over it in one transaction: the erase wins.
    await store.apply(new Transaction().put('p', 'm', 'gone').eraseRange('p', 'd', 'n'));
    assert.equal(await keysOf(store, 'p'), ['c', 'z']);
    // end '' means the end of the prefix.
    await store.apply(new Transaction().eraseRange('p', 'd', ''));
    assert.equal(await keysOf(store, 'p'), ['c']);
    await store.apply(new Transaction().eraseRange('p', '', '').compact('p'));
    assert.equal(await keysOf(store, 'p'), []);
    assert.equal(await collect(store, 'q'), [['c', 'neighbour']]);
  });

  Contract('an injected ENOSPC rejects the transaction and applies none of it', async () => {
    await store.apply(new Transaction().put('p', 'before', '1'));
    store.failNextApply('ENOSPC');
    const error = await rejection(store.apply(new Transaction().put('p', 'x', '1').eraseRange('p', '', '')));
    assert.is(error.code, 'ENOSPC');
    assert.equal(await keysOf(store, 'p'), ['before']);
    await store.apply(new Transaction().put('p', 'after', '1'));
    assert.equal(await keysOf(store, 'p'), ['after', 'before']);
  });

  Contract('close is idempotent and later use fails with ESHUTDOWN', async () => {
    await store.apply(new Transaction().put('p', 'k', 'v'));
    await Promise.all([store.close(), store.close()]);
    await store.close();
    assert.is((await rejection(store.apply(new Transaction().put('p', 'k', 'w')))).code, 'ESHUTDOWN');
    assert.is((await rejection(store.get('p', 'k'))).code, 'ESHUTDOWN');
    assert.is((await rejection(keysOf(store, 'p'))).code, 'ESHUTDOWN');
  });

  Contract.run();
}

// ---------------------------------------------------------------------------------------------
// RocksDB: durability, group commit, locking, errors.

const Rocks = suite('storage: RocksDBStore');

Rocks('reopen after close keeps the data', async () => {
  const dir = await scratchDir('reopen');
  const first = await RocksDBStore.open(dir, { create: true });
  await first.apply(new Transaction().put('monitor', 'name', 'a').putNumber('paxos', 'last_committed', 7));
  await first.close();
  const second = await RocksDBStore.open(dir);
  assert.is(text(await second.get('monitor', 'name')), 'a');
  assert.is(await second.getNumber('paxos', 'last_committed'), 7);
  await second.close();
});

Rocks('sync: false is visible at once and kept by a clean close', async () => {
  const dir = await scratchDir('nosync');
  const first = await RocksDBStore.open(dir, { create: true });
  await first.apply(new Transaction().put('paxos', 'a', 'x'), { sync: false });
  assert.is(text(await first.get('paxos', 'a')), 'x');
  await first.close();
  const second = await RocksDBStore.open(dir);
  assert.is(text(await second.get('paxos', 'a')), 'x');
  await second.close();
});

Rocks('close waits for queued writes', async () => {
  const dir = await scratchDir('close-waits');
  const store = await RocksDBStore.open(dir, { create: true });
  const settled: number[] = [];
  const writes = Array.from({ length: 20 }, (_, index) =>
    store
      .apply(new Transaction().putNumber('p', String(index).padStart(2, '0'), index))
      .then(() => settled.push(index)),
  );
  await store.close();
  assert.is(settled.length, 20);
  await Promise.all(writes);
  const reopened = await RocksDBStore.open(dir);
  assert.is((await keysOf(reopened, 'p')).length, 20);
  await reopened.close();
});

Rocks('group commit: writes queued behind a batch share the next synced batch', async () => {
  const store = await RocksDBStore.open(await scratchDir('group'), { create: true });
  const writes: Promise<void>[] = [];
  for (let index = 0; index < 64; index++)
    writes.push(store.apply(new Transaction().put('p', `k${index}`, 'v')));
  await Promise.all(writes);
  assert.is(store.stats.transactions, 64);
  assert.ok(store.stats.batches < 64, `64 concurrent writes took ${store.stats.batches} batches`);
  await store.close();
});

Rocks('erase_range sees the puts of earlier transactions in the same group', async () => {
  const store = await RocksDBStore.open(await scratchDir('group-range'), { create: true });
  await store.apply(new Transaction().put('p', 'old', 'v'));
  const first = store.apply(new Transaction().put('p', 'a', 'v'));
  const second = store.apply(new Transaction().put('p', 'k1', 'v').put('q', 'k1', 'v'));
  const third = store.apply(new Transaction().eraseRange('p', '', ''));
  const fourth = store.apply(new Transaction().put('p', 'k2', 'v'));
  await Promise.all([first, second, third, fourth]);
  assert.ok(store.stats.batches < store.stats.transactions, 'the writes were grouped');
  assert.equal(await keysOf(store, 'p'), ['k2']);
  assert.equal(await keysOf(store, 'q'), ['k1']);
  await store.close();
});

Rocks('a failed group rejects every transaction in it and applies none', async () => {
  const store = await RocksDBStore.open(await scratchDir('group-fail'), { create: true });
  store.failNextApply('EIO');
  const writes = [1, 2, 3].map((index) => store.apply(new Transaction().put('p', `k${index}`, 'v')));
  const errors = await Promise.all(writes.map(rejection));
  assert.equal(
    errors.map((error) => error.code),
    ['EIO', 'EIO', 'EIO'],
  );
  assert.equal(await keysOf(store, 'p'), []);
  assert.is(store.stats.failedTransactions, 3);
  await store.apply(new Transaction().put('p', 'k4', 'v'));
  assert.equal(await keysOf(store, 'p'), ['k4']);
  await store.close();
});

Rocks(
  'read cache: a second get of a key skips RocksDB; a write, an erase or an erase_range is seen at once',
  async () => {
    const store = await RocksDBStore.open(await scratchDir('cache'), { create: true });
    await store.apply(new Transaction().put('p', 'a', 'v1').put('p', 'b', 'w1'));
    assert.is(text(await store.get('p', 'a')), 'v1');
    assert.is(await store.get('p', 'missing'), undefined);
    const reads = store.stats.reads;
    assert.is(text(await store.get('p', 'a')), 'v1');
    assert.is(await store.get('p', 'missing'), undefined);
    assert.is(await store.exists('p', 'missing'), false);
    assert.is(store.stats.reads, reads, 'answered from the cache');
    assert.is(store.stats.cacheHits, 3);
    await store.apply(new Transaction().put('p', 'a', 'v2').put('p', 'missing', 'now'));
    assert.is(text(await store.get('p', 'a')), 'v2');
    assert.is(text(await store.get('p', 'missing')), 'now');
    await store.apply(new Transaction().erase('p', 'a'));
    assert.is(await store.get('p', 'a'), undefined);
    assert.is(text(await store.get('p', 'b')), 'w1');
    await store.apply(new Transaction().eraseRange('p', '', ''));
    assert.is(await store.get('p', 'b'), undefined);
    assert.is(await store.get('p', 'missing'), undefined);
    await store.close();
  },
);

Rocks(
  'read cache: a get that read the old value while a batch was applied leaves nothing stale',
  async () => {
    const store = await RocksDBStore.open(await scratchDir('cache-race'), { create: true });
    await store.apply(new Transaction().put('p', 'k', 'v0'));
    let stale = 0;
    for (let round = 1; round <= 40; round++) {
      // The read of k leaves first, in one multi-get with 2,000 other keys; the unsynced write of
      // k leaves just after. The read sees the old value and caches it before the batch ends: the
      // batch must drop it. (When the batch ends first, the store keeps nothing the multi-get read:
      // RocksDB's thread pool decides that order, which a spec cannot force.)
      const read = store.get('p', 'k');
      const others = Array.from({ length: 2000 }, (_, i) => store.get('p', `other${round}_${i}`));
      await turn();
      const write = store.apply(new Transaction().put('p', 'k', `v${round}`), { sync: false });
      const seen = text(await read);
      assert.ok(seen === `v${round - 1}` || seen === `v${round}`, `round ${round}: read ${seen}`);
      await Promise.all([write, ...others]);
      if (seen === `v${round - 1}`) stale += 1;
      for (let again = 0; again < 2; again++) assert.is(text(await store.get('p', 'k')), `v${round}`);
    }
    assert.ok(stale > 0, 'no read of the old value: the case was not exercised');
    await store.close();
  },
);

Rocks('read cache: a failed batch leaves every key reading what the store holds', async () => {
  const store = await RocksDBStore.open(await scratchDir('cache-fail'), { create: true });
  await store.apply(new Transaction().put('p', 'k', 'v1'));
  assert.is(text(await store.get('p', 'k')), 'v1');
  store.failNextApply('ENOSPC');
  await rejection(store.apply(new Transaction().put('p', 'k', 'v2')));
  assert.is(text(await store.get('p', 'k')), 'v1');
  await store.close();
});

Rocks('read cache: bounded in keys, and values read after a reopen come from the disk', async () => {
  const dir = await scratchDir('cache-bound');
  const store = await RocksDBStore.open(dir, { create: true });
  const tx = new Transaction();
  for (let index = 0; index < readCacheKeysMax + 100; index++) tx.put('p', `k${index}`, `v${index}`);
  await store.apply(tx);
  for (let index = 0; index < readCacheKeysMax + 100; index++) await store.get('p', `k${index}`);
  const reads = store.stats.reads;
  // The oldest went; the newest stayed.
  assert.is(text(await store.get('p', 'k0')), 'v0');
  assert.is(store.stats.reads, reads + 1);
  assert.is(text(await store.get('p', `k${readCacheKeysMax + 99}`)), `v${readCacheKeysMax + 99}`);
  assert.is(store.stats.reads, reads + 1);
  await store.close();
  const reopened = await RocksDBStore.open(dir);
  assert.is(text(await reopened.get('p', 'k1')), 'v1');
  assert.is(reopened.stats.reads, 1);
  await reopened.close();
});

Rocks('an iterator left by break is closed, and close ends abandoned ones', async () => {
  const store = await RocksDBStore.open(await scratchDir('iterators'), { create: true });
  const tx = new Transaction();
  for (let index = 0; index < 100; index++) tx.put('p', String(index).padStart(3, '0'), 'v');
  await store.apply(tx);
  for await (const [key] of store.iterate('p')) {
    if (key === '005') break;
  }
  assert.is(store.openIteratorCount, 0);
  const abandoned = store.iterate('p')[Symbol.asyncIterator]();
  assert.ok(!(await abandoned.next()).done);
  assert.is(store.openIteratorCount, 1);
  await store.close();
  assert.is((await rejection(abandoned.next())).code, 'ESHUTDOWN');
  assert.is(store.openIteratorCount, 0);
});

Rocks('a second open in the same process fails: store DIR is in use by another monitor', async () => {
  const dir = await scratchDir('lock-same');
  const store = await RocksDBStore.open(dir, { create: true });
  for (const again of [dir, `${dir}/`, join(dir, '.')]) {
    const error = await rejection(RocksDBStore.open(again));
    assert.is(error.code, 'EBUSY');
    assert.is(error.message, `store ${again} is in use by another monitor`);
  }
  assert.is((await rejection(RocksDBStore.open(dir, { create: true }))).code, 'EBUSY');
  await store.close();
  const reopened = await RocksDBStore.open(dir);
  await reopened.close();
});

Rocks('an open from a child process fails: store DIR is in use by another monitor', async () => {
  const dir = await scratchDir('lock-child');
  const store = await RocksDBStore.open(dir, { create: true });
  const moduleUrl = new URL('../storage/rocksdb-store.ts', import.meta.url).href;
  const script = `
    const { RocksDBStore } = await import(${JSON.stringify(moduleUrl)});
    try { const s = await RocksDBStore.open(${JSON.stringify(dir)}); await s.close(); console.log(JSON.stringify({ opened: true })); }
    catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })); }`;
  const output = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: repoRoot, timeout: 30_000 },
      (error, stdout) => (error ? reject(error) : resolve(stdout)),
    );
  });
  assert.equal(JSON.parse(output.trim().split('\n').at(-1) as string), {
    code: 'EBUSY',
    message: `store ${dir} is in use by another monitor`,
  });
  await store.close();
});

Rocks('a missing store names the directory and says to run paxmon mkfs', async () => {
  const missing = join(await scratchDir('missing'), 'nowhere');
  const error = await rejection(RocksDBStore.open(missing));
  assert.is(error.code, 'ENOENT');
  assert.ok(error.message.includes(missing), error.message);
  assert.match(error.message, /paxmon mkfs/);
  assert.is(await stat(missing).catch(() => undefined), undefined, 'opening must not create the directory');

  const empty = await scratchDir('empty');
  await mkdir(empty, { recursive: true });
  const emptyError = await rejection(RocksDBStore.open(empty));
  assert.is(emptyError.code, 'ENOENT');
  assert.ok(emptyError.message.includes(empty), emptyError.message);
  assert.match(emptyError.message, /paxmon mkfs/);
  assert.equal(await readdir(empty), [], 'opening must leave an empty directory untouched');
});

Rocks('a corrupt store is reported as EIO naming the directory', async () => {
  const dir = await scratchDir('corrupt');
  const store = await RocksDBStore.open(dir, { create: true });
  await store.apply(new Transaction().put('p', 'k', 'v'));
  await store.close();
  const manifest = (await readFile(join(dir, 'CURRENT'), 'utf8')).trim();
  await writeFile(join(dir, manifest), 'this is not a RocksDB manifest');
  const error = await rejection(RocksDBStore.open(dir));
  assert.is(error.code, 'EIO');
  assert.ok(error.message.includes(dir), error.message);
  // The failed open released the directory: it is not reported as in use.
  assert.is((await rejection(RocksDBStore.open(dir))).code, 'EIO');
});

Rocks('a full disk (tmpfs) fails with ENOSPC and leaves earlier data intact', async () => {
  if (process.platform !== 'linux') return;
  const mountPoint = await scratchDir('tmpfs');
  await mkdir(mountPoint, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint], { stdio: 'ignore' });
  } catch {
    // Not permitted here (not root, or no CAP_SYS_ADMIN): there is no honest way to fill a disk.
    console.log('  (skipped the full-disk case: cannot mount a tmpfs)');
    return;
  }
  const dir = join(mountPoint, 'store.db');
  try {
    let store = await RocksDBStore.open(dir, { create: true });
    const value = new Uint8Array(4096).fill(0x5a);
    let written = 0;
    let failure: StoreError | undefined;
    for (; written < 10_000; written++) {
      try {
        await store.apply(
          new Transaction().put('p', String(written).padStart(5, '0'), value).putNumber('n', 'last', written),
        );
      } catch (error) {
        failure = error as StoreError;
        break;
      }
    }
    assert.ok(failure, 'a 2 MiB tmpfs filled up');
    assert.instance(failure, StoreError);
    assert.is(failure.code, 'ENOSPC');
    assert.ok(failure.message.includes(dir), failure.message);
    assert.ok(written > 10, `${written} writes fit`);
    const failedKey = String(written).padStart(5, '0');
    // Nothing of the failed transaction, everything of the earlier ones.
    assert.is(await store.get('p', failedKey), undefined);
    assert.is(await store.getNumber('n', 'last'), written - 1);
    assert.is((await keysOf(store, 'p')).length, written);
    // RocksDB stays read-only after a write error: later writes fail the same way.
    assert.is((await rejection(store.apply(new Transaction().put('p', 'later', 'v')))).code, 'ENOSPC');
    await store.close();
    // Give the disk room again and reopen: the data is intact and the failed write absent.
    execFileSync('mount', ['-o', 'remount,size=16m', mountPoint], { stdio: 'ignore' });
    store = await RocksDBStore.open(dir);
    assert.is(await store.get('p', failedKey), undefined);
    assert.is(await store.get('p', 'later'), undefined);
    assert.is(await store.getNumber('n', 'last'), written - 1);
    const keys = await keysOf(store, 'p');
    assert.is(keys.length, written);
    assert.is(keys.at(-1), String(written - 1).padStart(5, '0'));
    assert.equal(await store.get('p', '00000'), Buffer.from(value));
    await store.close();
  } finally {
    execFileSync('umount', [mountPoint], { stdio: 'ignore' });
  }
});

Rocks.after(removeScratch);

Rocks.run();

// ---------------------------------------------------------------------------------------------
// MemoryStore: crash semantics on a simulated clock.

const Memory = suite('storage: MemoryStore crashes');

Memory('visible at once, durable after the simulated fsync', async () => {
  const clock = new StepClock();
  const store = new MemoryStore({ clock, syncDelayMs: 10 });
  let durable = false;
  const write = store.apply(new Transaction().put('p', 'k', 'v')).then(() => {
    durable = true;
  });
  assert.is(text(await store.get('p', 'k')), 'v', 'reads see it before the fsync');
  assert.is(store.pendingCount, 1);
  await clock.advance(9);
  assert.not.ok(durable);
  await clock.advance(1);
  assert.ok(durable);
  assert.is(store.pendingCount, 0);
  await write;
});

Memory('a crash loses exactly the unsynced transactions, never a synced one', async () => {
  const clock = new StepClock();
  const store = new MemoryStore({ clock, syncDelayMs: 10 });
  const resolved: string[] = [];
  const apply = (key: string): void => {
    void store.apply(new Transaction().put('p', key, key)).then(() => resolved.push(key));
  };
  apply('a');
  await clock.advance(5);
  apply('b');
  await clock.advance(5); // a synced
  apply('c');
  await clock.advance(4); // now 14: b syncs at 15, c at 20
  assert.equal(resolved, ['a']);
  assert.equal(await keysOf(store, 'p'), ['a', 'b', 'c']);
  assert.equal(store.crash(), { survived: 0, lost: 2 });
  assert.equal(await keysOf(store, 'p'), ['a']);
  // The dead process's promises never settle, even when its fsync timers fire.
  await clock.advance(100);
  assert.equal(resolved, ['a']);
  assert.is(store.pendingCount, 0);
  // The same object serves the restarted monitor.
  apply('d');
  await clock.advance(10);
  assert.equal(resolved, ['a', 'd']);
  assert.equal(await keysOf(store, 'p'), ['a', 'd']);
});

Memory(
  'sync: false resolves at once; the next fsync or a clean close makes it durable, a crash before loses it',
  async () => {
    const clock = new StepClock();
    const store = new MemoryStore({ clock, syncDelayMs: 10 });
    await store.apply(new Transaction().put('p', 'a', 'a'), { sync: false });
    assert.is(text(await store.get('p', 'a')), 'a', 'visible when it resolves');
    assert.equal(store.crash(), { survived: 0, lost: 1 });
    assert.equal(await keysOf(store, 'p'), []);
    // A later synced write covers the earlier unsynced one (the log keeps order).
    await store.apply(new Transaction().put('p', 'b', 'b'), { sync: false });
    const synced = store.apply(new Transaction().put('p', 'c', 'c'));
    await clock.advance(10);
    await synced;
    assert.equal(store.crash(), { survived: 0, lost: 0 });
    assert.equal(await keysOf(store, 'p'), ['b', 'c']);
    // A clean close flushes it.
    await store.apply(new Transaction().put('p', 'd', 'd'), { sync: false });
    await store.close();
    assert.equal(store.crash(), { survived: 0, lost: 0 });
    assert.equal(await keysOf(store, 'p'), ['b', 'c', 'd']);
  },
);

Memory('with random, a prefix of the unsynced tail survives, in order', async () => {
  const clock = new StepClock();
  const draws = [0.5, 0.99, 0];
  const store = new MemoryStore({ clock, syncDelayMs: 10, random: () => draws.shift() as number });
  const applyAll = (keys: string[]): void => {
    for (const key of keys) void store.apply(new Transaction().put('p', key, key));
  };
  applyAll(['a', 'b', 'c']);
  assert.equal(store.crash(), { survived: 2, lost: 1 }); // floor(0.5 × 4)
  assert.equal(await keysOf(store, 'p'), ['a', 'b']);
  applyAll(['d', 'e']);
  assert.equal(store.crash(), { survived: 2, lost: 0 }); // floor(0.99 × 3)
  assert.equal(await keysOf(store, 'p'), ['a', 'b', 'd', 'e']);
  applyAll(['f']);
  assert.equal(store.crash(), { survived: 0, lost: 1 });
  assert.equal(await keysOf(store, 'p'), ['a', 'b', 'd', 'e']);
  assert.equal(draws, []);
  assert.equal(store.crash(), { survived: 0, lost: 0 }, 'nothing pending: random is not drawn');
});

Memory(
  'property: after any crash the store is a prefix of the applies that includes every resolved one',
  async () => {
    type Step = { kind: 'apply'; erase: boolean } | { kind: 'advance'; ms: number } | { kind: 'crash' };
    const stepArb: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('apply' as const), erase: fc.boolean() }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 15 }) }),
      fc.record({ kind: fc.constant('crash' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb, { maxLength: 30 }),
        fc.array(fc.double({ min: 0, max: 0.999, noNaN: true })),
        async (steps, draws) => {
          const clock = new StepClock();
          const store = new MemoryStore({ clock, syncDelayMs: 10, random: () => draws.shift() ?? 0 });
          // The model: the history of applied transactions since the last crash, and the durable state.
          let durable: string[] = [];
          let pending: { keys: (state: string[]) => string[]; resolved: boolean }[] = [];
          let counter = 0;
          for (const step of steps) {
            if (step.kind === 'apply') {
              const key = `k${String(counter++).padStart(3, '0')}`;
              const tx = step.erase
                ? new Transaction().eraseRange('p', '', '').put('p', key, '')
                : new Transaction().put('p', key, '');
              const entry = {
                keys: (state: string[]) => (step.erase ? [key] : [...state, key].sort()),
                resolved: false,
              };
              pending.push(entry);
              void store.apply(tx).then(() => {
                entry.resolved = true;
              });
            } else if (step.kind === 'advance') {
              await clock.advance(step.ms);
              while (pending[0]?.resolved)
                durable = (pending.shift() as (typeof pending)[number]).keys(durable);
              assert.ok(!pending.some((entry) => entry.resolved), 'fsyncs complete in order');
            } else {
              const { survived, lost } = store.crash();
              assert.is(survived + lost, pending.length);
              for (const entry of pending.slice(0, survived)) durable = entry.keys(durable);
              pending = [];
              assert.equal(await keysOf(store, 'p'), durable);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  },
);

Memory('close waits until every apply is durable', async () => {
  const clock = new StepClock();
  const store = new MemoryStore({ clock, syncDelayMs: 10 });
  void store.apply(new Transaction().put('p', 'k', 'v'));
  let closed = false;
  const closing = store.close().then(() => {
    closed = true;
  });
  await turn();
  assert.not.ok(closed);
  assert.is((await rejection(store.apply(new Transaction().put('p', 'x', 'v')))).code, 'ESHUTDOWN');
  await clock.advance(10);
  assert.ok(closed);
  await closing;
  // crash() after close() is a clean restart: nothing lost.
  assert.equal(store.crash(), { survived: 0, lost: 0 });
  assert.equal(await keysOf(store, 'p'), ['k']);
});

Memory('without a clock an apply is durable in a microtask', async () => {
  const store = new MemoryStore();
  await store.apply(new Transaction().put('p', 'k', 'v'));
  assert.is(store.pendingCount, 0);
  store.crash();
  assert.is(text(await store.get('p', 'k')), 'v');
});

Memory.run();

// ---------------------------------------------------------------------------------------------
// Sync chunks: Ceph's WholeStoreIterator rebuilding a second store.

const Sync = suite('storage: sync chunks');

/** Fill a store with several prefixes, unicode keys and binary values, including one big value. */
async function populate(store: Store): Promise<void> {
  const tx = new Transaction();
  for (let version = 1; version <= 25; version++)
    tx.put('paxos', String(version), new Uint8Array([version, 0, 255]));
  tx.putNumber('paxos', 'first_committed', 1).putNumber('paxos', 'last_committed', 25);
  tx.putNumber('monmap', 'last_committed', 3).put('monmap', '3', 'monmap v3');
  for (const key of ['', 'a', 'é', '\u{1F600}', 'a\0b', 'zz']) tx.put('kv', key, `value of ${key}`);
  tx.put('kv', 'big', new Uint8Array(300).fill(9));
  tx.put('ab', 'k', 'neighbour of a');
  tx.put('a', 'k', 'a');
  tx.put('mon_sync', 'in_sync', 'not synced');
  await store.apply(tx);
}

const syncedPrefixes = ['paxos', 'monmap', 'kv', 'a', 'ab'];

async function dump(store: Store, prefixes: readonly string[]): Promise<[string, string, string][]> {
  const entries: [string, string, string][] = [];
  for (const prefix of prefixes) {
    for await (const [key, value] of store.iterate(prefix))
      entries.push([prefix, key, Buffer.from(value).toString('hex')]);
  }
  return entries;
}

/** Copy source into target chunk by chunk, restarting the generator every `restartEvery` chunks. */
async function syncStores(source: Store, target: Store, restartEvery: number) {
  const bounds = { payloadBytesMax: 48, payloadKeysMax: 4 };
  const chunks: Transaction[] = [];
  const lastKeys: StoreKey[] = [];
  let after: StoreKey | undefined;
  let restarts = 0;
  for (let done = false; !done; restarts++) {
    assert.ok(restarts < 1000, 'sync makes progress');
    let taken = 0;
    for await (const chunk of storeChunks(source, syncedPrefixes, after ? { ...bounds, after } : bounds)) {
      await target.apply(chunk.tx);
      chunks.push(chunk.tx);
      assert.ok(chunk.tx.keys >= 1 || chunk.done, 'every chunk but an empty last one carries a key');
      assert.ok(chunk.tx.keys <= bounds.payloadKeysMax);
      assert.ok(
        chunk.tx.bytes <= bounds.payloadBytesMax || chunk.tx.keys === 1,
        'bytes bound, unless one big key',
      );
      if (chunk.lastKey) {
        lastKeys.push(chunk.lastKey);
        after = chunk.lastKey;
      }
      done = chunk.done;
      if (done || ++taken === restartEvery) break;
    }
  }
  return { chunks, lastKeys, restarts };
}

for (const [name, open] of [
  ['RocksDB', async () => RocksDBStore.open(await scratchDir('sync'), { create: true })],
  ['MemoryStore', async () => new MemoryStore()],
] as const) {
  Sync(`${name}: chunks rebuild the store exactly, resumed from lastKey across restarts`, async () => {
    const source = await open();
    const target = await open();
    await populate(source);
    await target.apply(new Transaction().put('mon_sync', 'in_sync', 'target keeps its own'));
    const { chunks, lastKeys, restarts } = await syncStores(source, target, 2);
    assert.ok(chunks.length > 5, `${chunks.length} chunks`);
    assert.ok(restarts > 2, `${restarts} restarts`);
    assert.equal(await dump(target, syncedPrefixes), await dump(source, syncedPrefixes));
    assert.is(
      text(await target.get('mon_sync', 'in_sync')),
      'target keeps its own',
      'unsynced prefixes stay out',
    );
    // Prefixes in the order given (paxos first), each key once.
    assert.is(lastKeys[0]?.prefix, 'paxos');
    const order = chunks.flatMap((tx) =>
      tx.ops.map((op) => (op.type === 'put' ? `${op.prefix}/${op.key}` : '?')),
    );
    assert.is(new Set(order).size, order.length);
    assert.equal([...new Set(order.map((entry) => entry.split('/')[0]))], syncedPrefixes);
    // Progress totals match what was sent.
    const stats = await storeStats(source, syncedPrefixes);
    assert.is(
      stats.keys,
      chunks.reduce((sum, tx) => sum + tx.keys, 0),
    );
    assert.is(
      stats.bytes,
      chunks.reduce((sum, tx) => sum + tx.bytes, 0),
    );
    await source.close();
    await target.close();
  });
}

Sync('an empty store gives one empty, final chunk', async () => {
  const store = new MemoryStore();
  const chunks = [];
  for await (const chunk of storeChunks(store, ['paxos'], { payloadBytesMax: 10, payloadKeysMax: 10 }))
    chunks.push(chunk);
  assert.is(chunks.length, 1);
  assert.ok(chunks[0]?.done);
  assert.ok(chunks[0]?.tx.empty);
  assert.is(chunks[0]?.lastKey, undefined);
});

Sync('chunks travel encoded and apply identically on another monitor', async () => {
  const source = new MemoryStore();
  const target = new MemoryStore();
  await populate(source);
  for await (const chunk of storeChunks(source, syncedPrefixes, {
    payloadBytesMax: 100,
    payloadKeysMax: 5,
  })) {
    await target.apply(Transaction.decode(chunk.tx.encode()));
  }
  assert.equal(await dump(target, syncedPrefixes), await dump(source, syncedPrefixes));
});

Sync('bad bounds and unknown resume prefixes are rejected', async () => {
  const store = new MemoryStore();
  const first = (options: Parameters<typeof storeChunks>[2]) => storeChunks(store, ['paxos'], options).next();
  for (const options of [
    { payloadBytesMax: 0, payloadKeysMax: 1 },
    { payloadBytesMax: 1, payloadKeysMax: 0.5 },
    { payloadBytesMax: 1, payloadKeysMax: 1, after: { prefix: 'kv', key: 'x' } },
  ]) {
    try {
      await first(options);
      assert.unreachable('expected a RangeError');
    } catch (error) {
      assert.instance(error, RangeError);
    }
  }
});

Sync.after(removeScratch);

Sync.run();
