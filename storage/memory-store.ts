// The simulator's MonitorDBStore: same semantics as RocksDBStore (byte-ordered `prefix\0key`,
// atomic transactions, erase_range [start, end)), plus the crash behaviour of a real disk.
//
// apply() makes a transaction visible at once, as RocksDB's memtable does, but it is durable
// only when its simulated fsync completes, `syncDelayMs` later on the injected clock. fsyncs
// complete in apply order, like one write-ahead log: when one completes, every transaction
// before it is durable too. crash() models the process dying: the store falls back to its
// durable state, losing the unsynced tail — except, with `random`, a prefix of that tail which
// had already reached the log — and the dead process's apply() promises never settle.
//
// Restart model: the same object is reused. After crash() it is open again over the durable
// data, as the restarted monitor's store; crash() after close() is a clean restart.
//
// Deterministic: no Math.random, no Date.now, no real timers; the clock and random source are
// the simulator's.

import type { ApplyOptions, IterateOptions, Store, StoreErrorCode } from './store.ts';
import { StoreError } from './store.ts';
import type { Transaction, TransactionOp } from './transaction.ts';
import { checkStoreKey, decodeNumber, storeRangeBytes } from './transaction.ts';

export interface SimulatedTimers {
  setTimeout(fn: () => void, ms: number): unknown;
}

export interface MemoryStoreOptions {
  /** Schedules simulated fsyncs; without one, an fsync completes in a microtask. */
  clock?: SimulatedTimers;
  /** How long after apply() a transaction becomes durable (only with a clock). */
  syncDelayMs?: number;
  /** Decides how much of the unsynced tail survives a crash; without it, all of it is lost. */
  random?: () => number;
  /** Names the store in error messages (RocksDBStore names its directory). */
  name?: string;
}

/** Transactions applied but not yet durable; past this apply() rejects with EAGAIN (as RocksDBStore). */
export const pendingTransactionsMax = 1 << 16;

/**
 * RocksDB's bytewise order of two keys of one prefix (`prefix\0key` as UTF-8 compares as the keys'
 * UTF-8 bytes do), on the JavaScript strings themselves: UTF-8 sorts by code point, and so does
 * UTF-16 except where a surrogate (half of a code point ≥ U+10000) meets a unit in U+E000–U+FFFF,
 * which JavaScript's `<` puts first. Comparing the strings, not their encodings, spares every
 * read and write an encoding (the store sees a few hundred thousand keys per simulated run).
 */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    let x = a.charCodeAt(index);
    let y = b.charCodeAt(index);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // U+E000–U+FFFF below the surrogates, the surrogates (code points ≥ U+10000) above them.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** Index of the first key ≥ `key` in `sorted` (byte order). */
function lowerBound(sorted: readonly string[], key: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareKeys(sorted[middle] as string, key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** One prefix's keys: a map for reads and writes, and their byte order, sorted when a range asks. */
class PrefixTable {
  readonly values: Map<string, Uint8Array>;
  /** The keys in byte order; null after a key was added or removed, until a range needs them. */
  #sorted: string[] | null;

  constructor(values = new Map<string, Uint8Array>(), sorted: string[] | null = null) {
    this.values = values;
    this.#sorted = sorted;
  }

  clone(): PrefixTable {
    return new PrefixTable(new Map(this.values), this.#sorted?.slice() ?? null);
  }

  set(key: string, value: Uint8Array): void {
    if (this.#sorted !== null && !this.values.has(key)) this.#sorted = null;
    this.values.set(key, value);
  }

  delete(key: string): void {
    if (this.values.delete(key)) this.#sorted = null;
  }

  /** Keys in [start, end) in byte order; end '' = to the end of the prefix. */
  range(start: string, end: string): string[] {
    this.#sorted ??= [...this.values.keys()].sort(compareKeys);
    const sorted = this.#sorted;
    const from = start === '' ? 0 : lowerBound(sorted, start);
    const to = end === '' ? sorted.length : lowerBound(sorted, end);
    return from < to ? sorted.slice(from, to) : [];
  }
}

/**
 * The store's keys, by prefix: every op and range of the Store interface stays inside one prefix
 * (a prefix holds no NUL, so `prefix\0key` sorts each prefix's keys together, as RocksDB does).
 */
class Table {
  readonly #prefixes = new Map<string, PrefixTable>();

  clone(): Table {
    const copy = new Table();
    for (const [prefix, table] of this.#prefixes) copy.#prefixes.set(prefix, table.clone());
    return copy;
  }

  get(prefix: string, key: string): Uint8Array | undefined {
    return this.#prefixes.get(prefix)?.values.get(key);
  }

  /** [key, value] in [start, end) of prefix, in byte order: a snapshot (the array is the caller's). */
  range(prefix: string, start: string, end: string): [string, Uint8Array][] {
    const table = this.#prefixes.get(prefix);
    if (!table) return [];
    return table.range(start, end).map((key) => [key, table.values.get(key) as Uint8Array]);
  }

  #table(prefix: string): PrefixTable {
    let table = this.#prefixes.get(prefix);
    if (!table) {
      table = new PrefixTable();
      this.#prefixes.set(prefix, table);
    }
    return table;
  }

  apply(ops: readonly TransactionOp[]): void {
    for (const op of ops) {
      switch (op.type) {
        case 'put':
          // The op already holds a private copy of the value (Transaction.put copies).
          this.#table(op.prefix).set(op.key, op.value);
          break;
        case 'erase':
          this.#prefixes.get(op.prefix)?.delete(op.key);
          break;
        case 'erase_range': {
          const table = this.#prefixes.get(op.prefix);
          if (table) for (const key of table.range(op.start, op.end)) table.delete(key);
          break;
        }
        case 'compact':
          // Nothing to compact in memory; the hint changes no data.
          break;
      }
    }
  }
}

interface PendingSync {
  readonly ops: readonly TransactionOp[];
  readonly resolve: () => void;
  /** false: an unsynced apply, waiting for a later fsync to cover it. */
  readonly sync: boolean;
}

export interface CrashOutcome {
  /** Unsynced transactions that reached the log anyway and survived. */
  survived: number;
  /** Unsynced transactions lost. */
  lost: number;
}

export class MemoryStore implements Store {
  readonly name: string;
  readonly #clock: SimulatedTimers | undefined;
  readonly #syncDelayMs: number;
  readonly #random: (() => number) | undefined;

  /** What is on the simulated disk. */
  #durable = new Table();
  /** What reads see: durable plus every pending transaction. */
  #visible = new Table();
  #pending: PendingSync[] = [];
  /** Bumped by crash(): fsyncs scheduled by a dead process complete into nothing. */
  #generation = 0;
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closed: Promise<void> | undefined;
  #closeWaiters: (() => void)[] = [];
  #failNext: StoreErrorCode | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    const syncDelayMs = options.syncDelayMs ?? 0;
    if (!Number.isFinite(syncDelayMs) || syncDelayMs < 0) {
      throw new RangeError(`syncDelayMs must be a non-negative number, got ${syncDelayMs}`);
    }
    this.name = options.name ?? 'memory';
    this.#clock = options.clock;
    this.#syncDelayMs = syncDelayMs;
    this.#random = options.random;
  }

  /** Transactions applied (visible) but not yet durable. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  #checkOpen(): void {
    if (this.#state !== 'open') throw new StoreError('ESHUTDOWN', `store ${this.name} is closed`);
  }

  async get(prefix: string, key: string): Promise<Uint8Array | undefined> {
    checkStoreKey(prefix, key);
    this.#checkOpen();
    // A copy, as RocksDB hands out fresh buffers: a caller scribbling on it cannot corrupt the store.
    return this.#visible.get(prefix, key)?.slice();
  }

  /** Ceph's MonitorDBStore::get(prefix, key) → version_t: a missing key reads as 0. */
  async getNumber(prefix: string, key: string): Promise<number> {
    const value = await this.get(prefix, key);
    return value === undefined ? 0 : decodeNumber(value);
  }

  async exists(prefix: string, key: string): Promise<boolean> {
    return (await this.get(prefix, key)) !== undefined;
  }

  /** Keys of one prefix in byte order, from a snapshot taken at the first step (like RocksDB's iterator). */
  async *iterate(
    prefix: string,
    options: IterateOptions = {},
  ): AsyncGenerator<[key: string, value: Uint8Array]> {
    // The same checks as RocksDBStore's bounds (a bound may be one byte longer than a key).
    storeRangeBytes(prefix, options.start, options.end);
    this.#checkOpen();
    const snapshot = this.#visible.range(prefix, options.start ?? '', options.end ?? '');
    for (const [key, value] of snapshot) yield [key, value.slice()];
  }

  /**
   * Visible at once, durable after the simulated fsync; resolves then. A crash before that
   * leaves the promise pending forever: the process that was waiting is gone.
   */
  apply(tx: Transaction, options: ApplyOptions = {}): Promise<void> {
    if (this.#state !== 'open')
      return Promise.reject(new StoreError('ESHUTDOWN', `store ${this.name} is closed`));
    const injected = this.#failNext;
    if (injected !== undefined) {
      this.#failNext = undefined;
      return Promise.reject(
        new StoreError(injected, `store ${this.name}: injected ${injected} failure while writing`),
      );
    }
    if (this.#pending.length >= pendingTransactionsMax) {
      return Promise.reject(
        new StoreError('EAGAIN', `store ${this.name} has ${pendingTransactionsMax} writes queued`),
      );
    }
    const ops = tx.ops.slice();
    this.#visible.apply(ops);
    if (options.sync === false) {
      // In the log but not fsynced: durable with the next synced apply, lost (with everything
      // unsynced after it) by a crash before that.
      this.#pending.push({ ops, resolve: () => {}, sync: false });
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const pending: PendingSync = { ops, resolve, sync: true };
      this.#pending.push(pending);
      const generation = this.#generation;
      const complete = (): void => this.#synced(pending, generation);
      if (this.#clock) this.#clock.setTimeout(complete, this.#syncDelayMs);
      else queueMicrotask(complete);
    });
  }

  /** Fault injection: the next apply() rejects with a StoreError and applies nothing. */
  failNextApply(code: StoreErrorCode = 'ENOSPC'): void {
    this.#failNext = code;
  }

  /** An fsync completed: `pending` and everything before it in the log is durable. */
  #synced(pending: PendingSync, generation: number): void {
    if (generation !== this.#generation) return;
    const index = this.#pending.indexOf(pending);
    if (index < 0) return;
    const durable = this.#pending.splice(0, index + 1);
    for (const each of durable) this.#durable.apply(each.ops);
    for (const each of durable) each.resolve();
    if (this.#pending.every((p) => !p.sync)) {
      // Closing: the clean close flushes what is left unsynced.
      if (this.#state === 'closing')
        for (const each of this.#pending.splice(0)) this.#durable.apply(each.ops);
      const waiters = this.#closeWaiters;
      this.#closeWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  /**
   * The process died. Unsynced transactions are lost, except that with `random` a prefix of
   * them, in order, survives (they reached the log before the power went); `random` is drawn
   * once, and only when something was pending. The store is then open again over its durable data.
   */
  crash(): CrashOutcome {
    const unsynced = this.#pending;
    let survived = 0;
    if (this.#random && unsynced.length > 0) {
      const draw = this.#random();
      if (!(draw >= 0 && draw < 1))
        throw new RangeError(`random() must return a number in [0, 1), got ${draw}`);
      survived = Math.floor(draw * (unsynced.length + 1));
    }
    for (const each of unsynced.slice(0, survived)) this.#durable.apply(each.ops);
    this.#pending = [];
    this.#generation++;
    this.#visible = this.#durable.clone();
    this.#state = 'open';
    this.#closed = undefined;
    this.#closeWaiters = [];
    this.#failNext = undefined;
    return { survived, lost: unsynced.length - survived };
  }

  /** Waits until every applied transaction is durable, then refuses further use. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#state = 'closing';
      const finish = (): void => {
        this.#state = 'closed';
        resolve();
      };
      // A clean close flushes the log: unsynced transactions become durable with it.
      if (this.#pending.every((p) => !p.sync)) {
        for (const each of this.#pending.splice(0)) this.#durable.apply(each.ops);
        finish();
      } else this.#closeWaiters.push(finish);
    });
    return this.#closed;
  }
}
