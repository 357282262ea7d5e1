// MonitorDBStore over RocksDB (src/mon/MonitorDBStore.h, src/kv/RocksDBStore.cc): keys are
// `prefix\0key`, every Transaction is one synced WriteBatch (submit_transaction_sync), and
// writes are serialised through one queue like Ceph's io_work Finisher. Unlike Ceph, the queue
// group-commits: transactions that arrive while a batch is being fsynced go together into the
// next batch, so 64 concurrent writers cost about one fsync per round instead of 64.
//
// The directory given to open() is the RocksDB directory itself (Ceph's `<mon_data>/store.db`).
import { mkdir, realpath, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { ApplyOptions, IterateOptions, Store, StoreErrorCode } from './store.ts';
import { StoreError } from './store.ts';
import type { Transaction, TransactionOp } from './transaction.ts';
import {
  checkStoreKey,
  compareBytes,
  decodeKeyPart,
  decodeNumber,
  storeKeyBytes,
  storeRangeBytes,
  utf8Length,
} from './transaction.ts';

export type { StoreErrorCode } from './store.ts';
export { StoreError } from './store.ts';

/** Transactions waiting for their batch; past this apply() rejects with EAGAIN (a limit on everything). */
export const applyQueueLengthMax = 1 << 16;
/** One group commit takes at most this many transactions … */
export const groupTransactionsMax = 1024;
/** … and at most about this many bytes (Transaction.bytes), but always at least one transaction. */
export const groupBytesMax = 64 * 1024 * 1024;
/** Compactions are hints (Ceph's compact_*_async); beyond this many queued, new ones are dropped. */
export const compactionQueueLengthMax = 64;

// The subset of the `rocksdb` package (abstract-leveldown 7) this file uses. It ships no types.
type Callback<T = void> = (error: Error | null | undefined, result?: T) => void;
interface PendingGet {
  key: Buffer;
  prefix: string;
  name: string;
  cacheKey: string;
  resolve: (value: Uint8Array | undefined) => void;
  reject: (error: unknown) => void;
}

interface NativeBatchOp {
  type: 'put' | 'del';
  key: Buffer;
  value?: Buffer;
}
interface NativeIterator {
  next(callback: (error: Error | null | undefined, key?: Buffer, value?: Buffer) => void): void;
  end(callback: Callback): void;
}
interface NativeDB {
  open(options: { createIfMissing: boolean; errorIfExists: boolean }, callback: Callback): void;
  close(callback: Callback): void;
  getMany(keys: Buffer[], options: { asBuffer: boolean }, callback: Callback<(Buffer | undefined)[]>): void;
  batch(ops: NativeBatchOp[], options: { sync: boolean }, callback: Callback): void;
  iterator(options: {
    gte: Buffer;
    lt: Buffer;
    keys: boolean;
    values: boolean;
    keyAsBuffer: boolean;
    valueAsBuffer: boolean;
  }): NativeIterator;
  compactRange(start: Buffer, end: Buffer, callback: Callback): void;
}
type NativeFactory = (location: string) => NativeDB;

let nativeFactory: NativeFactory | undefined;
/** Load the native binding on first use, so importing storage/ (e.g. in the simulator) never does. */
function loadNative(): NativeFactory {
  nativeFactory ??= createRequire(import.meta.url)('rocksdb') as NativeFactory;
  return nativeFactory;
}

/**
 * Directories open in this process. RocksDB's LOCK is an fcntl lock, which POSIX grants again to
 * the same process; RocksDB adds its own in-process check keyed on the path string, but `dir`,
 * `dir/` and a symlink would slip past it. Keyed on realpath, this closes that gap.
 */
const openDirectories = new Set<string>();

function promisify<T = void>(call: (callback: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    // A synchronous throw from the binding becomes a rejection too.
    call((error, result) => (error ? reject(error) : resolve(result as T)));
  });
}

function busyError(dir: string, cause?: unknown): StoreError {
  return new StoreError('EBUSY', `store ${dir} is in use by another monitor`, { cause });
}

function missingError(dir: string, why: string, cause?: unknown): StoreError {
  return new StoreError(
    'ENOENT',
    `no monitor store in ${dir} (${why}): run \`paxmon mkfs --dir …\` to create one`,
    {
      cause,
    },
  );
}

/** Map a RocksDB status message (Status::ToString()) to a StoreError naming the directory. */
function storeErrorFrom(error: unknown, dir: string, doing: string): StoreError {
  if (error instanceof StoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  // Same process: "lock hold by current process … LOCK: No locks available";
  // another process: "While lock file: …/LOCK: Resource temporarily unavailable".
  if (
    /lock hold by current process|While lock file|\/LOCK: (Resource temporarily unavailable|No locks available)/.test(
      message,
    )
  ) {
    return busyError(dir, error);
  }
  if (/No space left on device|ENOSPC/i.test(message)) {
    return new StoreError('ENOSPC', `store ${dir} is out of space while ${doing}: ${message}`, {
      cause: error,
    });
  }
  if (/does not exist \(create_if_missing is false\)/.test(message)) {
    return missingError(dir, 'no CURRENT file', error);
  }
  if (/^Corruption/.test(message)) {
    return new StoreError('EIO', `store ${dir} is corrupt (${doing}): ${message}`, { cause: error });
  }
  return new StoreError('EIO', `store ${dir} failed while ${doing}: ${message}`, { cause: error });
}

interface PendingApply {
  readonly ops: readonly TransactionOp[];
  readonly bytes: number;
  readonly sync: boolean;
  readonly resolve: () => void;
  readonly reject: (error: StoreError) => void;
}

/** One open native iterator; end() is idempotent, because the binding never calls back a second end(). */
class Cursor {
  readonly #native: NativeIterator;
  #ended: Promise<void> | undefined;

  constructor(native: NativeIterator) {
    this.#native = native;
  }

  get ended(): boolean {
    return this.#ended !== undefined;
  }

  next(): Promise<[key: Buffer, value: Buffer] | undefined> {
    return new Promise((resolve, reject) => {
      this.#native.next((error, key, value) => {
        if (error) reject(error);
        else if (key === undefined) resolve(undefined);
        else resolve([key, value ?? Buffer.alloc(0)]);
      });
    });
  }

  end(): Promise<void> {
    // An end error leaves nothing to do: the iterator is gone either way.
    this.#ended ??= promisify((callback) => this.#native.end(callback)).catch(() => undefined);
    return this.#ended;
  }
}

export interface RocksDBStoreStats {
  /** Synced write batches submitted (group commits). */
  batches: number;
  /** Transactions applied durably. */
  transactions: number;
  /** Transactions rejected because their batch failed. */
  failedTransactions: number;
  /** Gets answered from the read cache, without RocksDB. */
  cacheHits: number;
  /** Gets read from RocksDB (their multi-gets). */
  reads: number;
}

/** The read cache holds at most this many keys … */
export const readCacheKeysMax = 4096;
/** … and about this many bytes of values (a larger value is read but not kept). */
export const readCacheBytesMax = 4 * 1024 * 1024;
const readCacheValueMax = 64 * 1024;
/** A cached absence (the key is not in the store). */
const absent = null;

export class RocksDBStore implements Store {
  readonly dir: string;
  readonly #db: NativeDB;
  readonly #realDir: string;
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closed: Promise<void> | undefined;

  readonly #queue: PendingApply[] = [];
  #draining: Promise<void> | undefined;
  #compactions: Promise<void> = Promise.resolve();
  #compactionsQueued = 0;
  readonly #cursors = new Set<Cursor>();
  #failNext: StoreErrorCode | undefined;
  readonly #stats: RocksDBStoreStats = {
    batches: 0,
    transactions: 0,
    failedTransactions: 0,
    cacheHits: 0,
    reads: 0,
  };
  /**
   * Values recently read, by `prefix\0key` (null: not in the store), oldest first. A monitor's
   * reads go to a few hot keys (the maps, config-key values clients poll): answered here they skip
   * the multi-get's hop to libuv's pool and its native call (on this VM a read served by RocksDB
   * costs its monitor ~50 µs of CPU in all, one from here ~25). Filled only by reads, so writes
   * never grow it; every applied batch drops the keys it wrote before its writers hear of it, and
   * a read that was under way while a batch was applied is not kept (it may hold the value before).
   * The cache keeps its own copy of each value and hands out copies.
   */
  readonly #cache = new Map<string, Uint8Array | null>();
  #cacheBytes = 0;
  /** Batches applied so far: a multi-get keeps its values only if none was applied meanwhile. */
  #applied = 0;

  private constructor(dir: string, realDir: string, db: NativeDB) {
    this.dir = dir;
    this.#realDir = realDir;
    this.#db = db;
  }

  /**
   * Open the store in dir. Without `create`, the directory must already hold a store (as
   * ceph-mon refuses to start without `--mkfs`); with it, the directory is made if missing.
   */
  static async open(dir: string, { create = false }: { create?: boolean } = {}): Promise<RocksDBStore> {
    if (create) {
      try {
        await mkdir(dir, { recursive: true });
      } catch (error) {
        throw storeErrorFrom(error, dir, 'creating the directory');
      }
    } else {
      // Check before RocksDB does: with create_if_missing=false it still mkdirs dir and leaves a
      // LOCK file behind, which would turn a typo into a stray directory.
      let isDirectory: boolean;
      try {
        isDirectory = (await stat(dir)).isDirectory();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT')
          throw missingError(dir, 'directory does not exist', error);
        throw storeErrorFrom(error, dir, 'opening');
      }
      if (!isDirectory) throw new StoreError('ENOTDIR', `store ${dir} is not a directory`);
      try {
        await stat(`${dir}/CURRENT`);
      } catch (error) {
        throw missingError(dir, 'no RocksDB store in the directory', error);
      }
    }
    let realDir: string;
    try {
      realDir = await realpath(dir);
    } catch (error) {
      throw storeErrorFrom(error, dir, 'resolving the path');
    }
    if (openDirectories.has(realDir)) throw busyError(dir);
    openDirectories.add(realDir);
    try {
      const db = loadNative()(dir);
      try {
        await promisify((callback) => db.open({ createIfMissing: create, errorIfExists: false }, callback));
      } catch (error) {
        throw storeErrorFrom(error, dir, 'opening');
      }
      return new RocksDBStore(dir, realDir, db);
    } catch (error) {
      openDirectories.delete(realDir);
      throw error;
    }
  }

  /** Gets asked in this turn of the event loop, read together (#flushGets). */
  #gets: PendingGet[] = [];
  /** Multi-gets under way, and who waits for them to end (close). */
  #reads = 0;
  #readsIdle: (() => void) | undefined;

  /** Native iterators currently open (iterate() generators not yet finished or returned). */
  get openIteratorCount(): number {
    return this.#cursors.size;
  }

  get stats(): Readonly<RocksDBStoreStats> {
    return { ...this.#stats };
  }

  #checkOpen(): void {
    if (this.#state !== 'open') throw new StoreError('ESHUTDOWN', `store ${this.dir} is closed`);
  }

  /**
   * One key's value. The gets of one turn of the event loop go to RocksDB together, as one
   * multi-get: each native call is a hop to libuv's thread pool, and on a busy host the wake-up
   * of a pool thread costs the calling thread more than the read itself (64 reads in flight: one
   * hop per turn instead of one per read). A get still reads what every write applied before it
   * was asked (writes resolve only once RocksDB applied them), and it leaves for RocksDB before the
   * event loop next waits for I/O (setImmediate).
   */
  get(prefix: string, key: string): Promise<Uint8Array | undefined> {
    try {
      checkStoreKey(prefix, key);
      this.#checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    const cacheKey = `${prefix}\0${key}`;
    const cached = this.#cache.get(cacheKey);
    if (cached !== undefined) {
      this.#stats.cacheHits++;
      // A copy: the store's readers own what they read (the contract's "values read back are copies").
      return Promise.resolve(cached === absent ? undefined : Buffer.from(cached));
    }
    return new Promise((resolve, reject) => {
      this.#gets.push({
        key: Buffer.from(storeKeyBytes(prefix, key)),
        prefix,
        name: key,
        cacheKey,
        resolve,
        reject,
      });
      if (this.#gets.length === 1) setImmediate(() => this.#flushGets());
    });
  }

  #cacheValue(cacheKey: string, value: Uint8Array | undefined): void {
    const size = value?.length ?? 0;
    if (size > readCacheValueMax || this.#cache.has(cacheKey)) return;
    this.#cache.set(cacheKey, value === undefined ? absent : Buffer.from(value));
    this.#cacheBytes += size;
    for (const [oldest, old] of this.#cache) {
      if (this.#cache.size <= readCacheKeysMax && this.#cacheBytes <= readCacheBytesMax) break;
      this.#cache.delete(oldest);
      this.#cacheBytes -= old?.length ?? 0;
    }
  }

  /** A batch was applied (or failed): forget what it wrote, before its writers are told. */
  #forgetWritten(group: PendingApply[]): void {
    this.#applied++;
    if (this.#cache.size === 0) return;
    for (const pending of group) {
      for (const op of pending.ops) {
        if (op.type === 'put' || op.type === 'erase') {
          const cacheKey = `${op.prefix}\0${op.key}`;
          const old = this.#cache.get(cacheKey);
          if (old === undefined) continue;
          this.#cache.delete(cacheKey);
          this.#cacheBytes -= old?.length ?? 0;
        } else if (op.type === 'erase_range') {
          // A store sync starting over: rare, and its range may be any part of a prefix.
          this.#cache.clear();
          this.#cacheBytes = 0;
        }
      }
    }
  }

  #flushGets(): void {
    const gets = this.#gets;
    if (gets.length === 0) return;
    this.#gets = [];
    const fail = (error: unknown) => {
      for (const g of gets) g.reject(storeErrorFrom(error, this.dir, `reading ${g.prefix}/${g.name}`));
    };
    this.#reads += 1;
    this.#stats.reads += gets.length;
    const appliedBefore = this.#applied;
    const done = () => {
      this.#reads -= 1;
      if (this.#reads === 0) this.#readsIdle?.();
    };
    try {
      if (this.#state === 'closed') throw new StoreError('ESHUTDOWN', `store ${this.dir} is closed`);
      this.#db.getMany(
        gets.map((g) => g.key),
        { asBuffer: true },
        (error, values?: (Buffer | undefined)[]) => {
          done();
          if (error) return fail(error);
          // Kept only when no batch was applied while RocksDB read them.
          const keep = this.#applied === appliedBefore && this.#state === 'open';
          for (const [i, g] of gets.entries()) {
            const value = values?.[i] ?? undefined;
            if (keep) this.#cacheValue(g.cacheKey, value);
            g.resolve(value);
          }
        },
      );
    } catch (error) {
      done();
      fail(error);
    }
  }

  /** Ceph's MonitorDBStore::get(prefix, key) → version_t: a missing key reads as 0. */
  async getNumber(prefix: string, key: string): Promise<number> {
    const value = await this.get(prefix, key);
    return value === undefined ? 0 : decodeNumber(value);
  }

  async exists(prefix: string, key: string): Promise<boolean> {
    return (await this.get(prefix, key)) !== undefined;
  }

  /**
   * Keys of one prefix in byte order. The native iterator reads an implicit snapshot taken at
   * the first step, and it is closed when the loop ends, breaks or throws, or when the store closes.
   */
  async *iterate(
    prefix: string,
    options: IterateOptions = {},
  ): AsyncGenerator<[key: string, value: Uint8Array]> {
    const { gte, lt } = storeRangeBytes(prefix, options.start, options.end);
    this.#checkOpen();
    if (compareBytes(gte, lt) >= 0) return;
    const prefixBytes = utf8Length(prefix);
    let cursor: Cursor;
    try {
      cursor = new Cursor(
        this.#db.iterator({
          gte: Buffer.from(gte),
          lt: Buffer.from(lt),
          keys: true,
          values: true,
          keyAsBuffer: true,
          valueAsBuffer: true,
        }),
      );
    } catch (error) {
      throw storeErrorFrom(error, this.dir, `iterating ${prefix}`);
    }
    this.#cursors.add(cursor);
    try {
      for (;;) {
        if (cursor.ended)
          throw new StoreError('ESHUTDOWN', `store ${this.dir} closed during iteration of ${prefix}`);
        let entry: [Buffer, Buffer] | undefined;
        try {
          entry = await cursor.next();
        } catch (error) {
          throw storeErrorFrom(error, this.dir, `iterating ${prefix}`);
        }
        if (entry === undefined) return;
        let key: string;
        try {
          key = decodeKeyPart(entry[0], prefixBytes);
        } catch (error) {
          throw new StoreError('EIO', `store ${this.dir} holds a key in ${prefix} that is not UTF-8`, {
            cause: error,
          });
        }
        yield [key, entry[1]];
      }
    } finally {
      this.#cursors.delete(cursor);
      await cursor.end();
    }
  }

  /**
   * Apply tx atomically and durably: it joins the write queue and goes out in the next synced
   * batch. Resolves once that batch is on disk; rejects with a StoreError, having applied
   * nothing of tx, if the batch failed.
   */
  apply(tx: Transaction, options: ApplyOptions = {}): Promise<void> {
    if (this.#state !== 'open')
      return Promise.reject(new StoreError('ESHUTDOWN', `store ${this.dir} is closed`));
    if (this.#queue.length >= applyQueueLengthMax) {
      return Promise.reject(
        new StoreError('EAGAIN', `store ${this.dir} has ${applyQueueLengthMax} writes queued`),
      );
    }
    // Snapshot the op list: a caller adding ops after apply() must not change what is written.
    const ops = tx.ops.slice();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ ops, bytes: tx.bytes, sync: options.sync ?? true, resolve, reject });
      this.#draining ??= this.#drain();
    });
  }

  /**
   * Fault injection for specs: the next batch fails with `code` before reaching RocksDB, and
   * every transaction in it is rejected with nothing applied (MemoryStore has the same hook).
   */
  failNextApply(code: StoreErrorCode = 'ENOSPC'): void {
    this.#failNext = code;
  }

  async #drain(): Promise<void> {
    // Yield once first: applies issued in the same tick join the first batch, and #draining is
    // always assigned before the finally below can clear it.
    await Promise.resolve();
    try {
      while (this.#queue.length > 0) await this.#commitGroup(this.#takeGroup());
    } finally {
      // Runs in the same microtask as the final empty-queue check, so no apply() can slip between.
      this.#draining = undefined;
    }
  }

  #takeGroup(): PendingApply[] {
    let bytes = 0;
    let count = 0;
    for (const pending of this.#queue) {
      if (count >= groupTransactionsMax || (count > 0 && bytes + pending.bytes > groupBytesMax)) break;
      bytes += pending.bytes;
      count++;
    }
    return this.#queue.splice(0, count);
  }

  /** Write one group as one batch, synced unless nobody in it asked for that; never throws (every outcome settles the group's promises). */
  async #commitGroup(group: PendingApply[]): Promise<void> {
    let batch: NativeBatchOp[];
    try {
      batch = await this.#buildBatch(group);
      const injected = this.#failNext;
      if (injected !== undefined) {
        this.#failNext = undefined;
        throw new StoreError(injected, `store ${this.dir}: injected ${injected} failure while writing`);
      }
      this.#stats.batches++;
      // One fsync when anyone in the group needs it; RocksDB's WAL is written in order, so it
      // also makes every earlier unsynced batch durable.
      const sync = group.some((pending) => pending.sync);
      await promisify((callback) => this.#db.batch(batch, { sync }, callback));
    } catch (error) {
      // Nothing of the batch should have been applied; the cache forgets its keys all the same.
      this.#forgetWritten(group);
      const failure = storeErrorFrom(error, this.dir, 'writing a transaction');
      this.#stats.failedTransactions += group.length;
      for (const pending of group) pending.reject(failure);
      return;
    }
    this.#stats.transactions += group.length;
    this.#forgetWritten(group);
    for (const pending of group) {
      for (const op of pending.ops) if (op.type === 'compact') this.#queueCompaction(op);
    }
    for (const pending of group) pending.resolve();
  }

  /**
   * Translate a group's ops to one RocksDB batch, in order. erase_range becomes one delete per
   * key: RocksDB's DeleteRange is not exposed by this binding, and enumerating first keeps the
   * range erase in the same atomic batch. Applies are serialised, so nothing changes the store
   * between the enumeration and the write — except earlier transactions of this same group, whose
   * puts are tracked in `putKeys` and erased too.
   */
  async #buildBatch(group: PendingApply[]): Promise<NativeBatchOp[]> {
    const batch: NativeBatchOp[] = [];
    const putKeys = new Map<string, Buffer>();
    for (const pending of group) {
      for (const op of pending.ops) {
        switch (op.type) {
          case 'put': {
            const key = Buffer.from(storeKeyBytes(op.prefix, op.key));
            putKeys.set(key.toString('latin1'), key);
            batch.push({
              type: 'put',
              key,
              value: Buffer.from(op.value.buffer, op.value.byteOffset, op.value.length),
            });
            break;
          }
          case 'erase': {
            const key = Buffer.from(storeKeyBytes(op.prefix, op.key));
            putKeys.delete(key.toString('latin1'));
            batch.push({ type: 'del', key });
            break;
          }
          case 'erase_range': {
            const { gte, lt } = storeRangeBytes(op.prefix, op.start, op.end);
            if (compareBytes(gte, lt) >= 0) break;
            for (const key of await this.#keysInRange(Buffer.from(gte), Buffer.from(lt)))
              batch.push({ type: 'del', key });
            for (const [name, key] of putKeys) {
              if (compareBytes(key, gte) >= 0 && compareBytes(key, lt) < 0) {
                batch.push({ type: 'del', key });
                putKeys.delete(name);
              }
            }
            break;
          }
          case 'compact':
            break;
        }
      }
    }
    return batch;
  }

  async #keysInRange(gte: Buffer, lt: Buffer): Promise<Buffer[]> {
    const cursor = new Cursor(
      this.#db.iterator({ gte, lt, keys: true, values: false, keyAsBuffer: true, valueAsBuffer: true }),
    );
    const keys: Buffer[] = [];
    try {
      for (;;) {
        const entry = await cursor.next();
        if (entry === undefined) return keys;
        keys.push(entry[0]);
      }
    } finally {
      await cursor.end();
    }
  }

  /** Ceph runs compact_prefix_async / compact_range_async after a successful apply; so do we, one at a time. */
  #queueCompaction(op: Extract<TransactionOp, { type: 'compact' }>): void {
    if (this.#compactionsQueued >= compactionQueueLengthMax) return;
    this.#compactionsQueued++;
    const { gte, lt } = storeRangeBytes(op.prefix, op.start, op.end);
    this.#compactions = this.#compactions.then(async () => {
      try {
        if (this.#state === 'closed') return;
        await promisify((callback) => this.#db.compactRange(Buffer.from(gte), Buffer.from(lt), callback));
      } catch {
        // A failed compaction changes no data; the next write reports a real I/O problem.
      } finally {
        this.#compactionsQueued--;
      }
    });
  }

  /** Wait for queued writes and compactions, end open iterators, close RocksDB. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#state = 'closing';
    try {
      while (this.#draining) await this.#draining;
      await this.#compactions;
      // Gets asked before the close are read before it.
      this.#flushGets();
      if (this.#reads > 0) await new Promise<void>((resolve) => (this.#readsIdle = resolve));
      // The binding never calls back an end() of an iterator that db close ended itself, so end
      // them here first and let their generators report ESHUTDOWN.
      await Promise.all([...this.#cursors].map((cursor) => cursor.end()));
      await promisify((callback) => this.#db.close(callback));
    } catch (error) {
      throw storeErrorFrom(error, this.dir, 'closing');
    } finally {
      this.#state = 'closed';
      openDirectories.delete(this.#realDir);
    }
  }
}
