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
import { checkStoreKey, decodeNumber, storeKeyBytes, storeRangeBytes } from './transaction.ts';

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
 * UTF-8 bytes as a string of char codes 0–255: JavaScript compares such strings code unit by
 * code unit, which is exactly RocksDB's bytewise order (plain JS strings compare UTF-16 units,
 * which sorts U+FFFF after U+10000 — the opposite of UTF-8).
 */
function binaryKey(bytes: Uint8Array): string {
  let text = '';
  for (let index = 0; index < bytes.length; index += 4096) {
    text += String.fromCharCode(...bytes.subarray(index, index + 4096));
  }
  return text;
}

interface Entry {
  readonly key: string;
  readonly value: Uint8Array;
}

/** A sorted map from binary keys to entries; a binary-searched array keeps it dependency-free. */
class Table {
  #keys: string[] = [];
  #entries = new Map<string, Entry>();

  clone(): Table {
    const copy = new Table();
    copy.#keys = this.#keys.slice();
    copy.#entries = new Map(this.#entries);
    return copy;
  }

  get(binary: string): Entry | undefined {
    return this.#entries.get(binary);
  }

  /** Index of the first key ≥ binary. */
  #lowerBound(binary: string): number {
    let low = 0;
    let high = this.#keys.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#keys[middle] as string) < binary) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  set(binary: string, entry: Entry): void {
    if (!this.#entries.has(binary)) this.#keys.splice(this.#lowerBound(binary), 0, binary);
    this.#entries.set(binary, entry);
  }

  delete(binary: string): void {
    if (!this.#entries.delete(binary)) return;
    this.#keys.splice(this.#lowerBound(binary), 1);
  }

  /** Binary keys in [gte, lt). */
  range(gte: string, lt: string): string[] {
    if (gte >= lt) return [];
    return this.#keys.slice(this.#lowerBound(gte), this.#lowerBound(lt));
  }

  apply(ops: readonly TransactionOp[]): void {
    for (const op of ops) {
      switch (op.type) {
        case 'put':
          // The op already holds a private copy of the value (Transaction.put copies).
          this.set(binaryKey(storeKeyBytes(op.prefix, op.key)), { key: op.key, value: op.value });
          break;
        case 'erase':
          this.delete(binaryKey(storeKeyBytes(op.prefix, op.key)));
          break;
        case 'erase_range': {
          const { gte, lt } = storeRangeBytes(op.prefix, op.start, op.end);
          for (const binary of this.range(binaryKey(gte), binaryKey(lt))) this.delete(binary);
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
    return this.#visible.get(binaryKey(storeKeyBytes(prefix, key)))?.value.slice();
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
    const { gte, lt } = storeRangeBytes(prefix, options.start, options.end);
    this.#checkOpen();
    const table = this.#visible;
    const snapshot = table.range(binaryKey(gte), binaryKey(lt)).map((binary) => table.get(binary) as Entry);
    for (const entry of snapshot) yield [entry.key, entry.value.slice()];
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
