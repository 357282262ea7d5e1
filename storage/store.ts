// The Store port (Ceph's MonitorDBStore): keys are `prefix + '\0' + key`, values are bytes, and
// every write is one atomic, durable Transaction. Two implementations stand behind it:
// RocksDBStore (production; storage/rocksdb-store.ts) and MemoryStore (the simulator, with
// crash semantics; storage/memory-store.ts).
import type { Transaction } from './transaction.ts';

export interface IterateOptions {
  /** First key to yield (inclusive), within the prefix. */
  start?: string;
  /** Key to stop before (exclusive), within the prefix. */
  end?: string;
}

export interface ApplyOptions {
  /**
   * false: resolve once the transaction is applied and visible, without waiting for an fsync.
   * It becomes durable with the next synced apply (the log keeps order: a synced write makes
   * everything before it durable) or a clean close; a crash may lose it and every later unsynced
   * transaction, never an earlier one. Default true (MonitorDBStore's submit_transaction_sync).
   */
  sync?: boolean;
}

export interface Store {
  /** The value at prefix/key, or undefined. */
  get(prefix: string, key: string): Promise<Uint8Array | undefined>;
  /** A version_t-style number at prefix/key; a missing key reads as 0 (Ceph's get(prefix, key) → version_t). */
  getNumber(prefix: string, key: string): Promise<number>;
  exists(prefix: string, key: string): Promise<boolean>;
  /** Keys of one prefix in byte order, with their values. */
  iterate(prefix: string, options?: IterateOptions): AsyncIterable<[key: string, value: Uint8Array]>;
  /** Apply a transaction atomically and durably (one synced write batch). Rejects, applying nothing, on failure. */
  apply(tx: Transaction, options?: ApplyOptions): Promise<void>;
  close(): Promise<void>;
}

/**
 * Why a store operation failed, as the errno Ceph would log (MonitorDBStore aborts on a failed
 * submit_transaction_sync; paxmon reports the error and lets the monitor decide).
 * EBUSY: another monitor holds the store's LOCK. ENOENT: no store (run `paxmon mkfs`).
 * EIO: corruption or an I/O error. ENOSPC: the disk is full. ESHUTDOWN: the store is closed.
 * EAGAIN: too many writes queued.
 */
export type StoreErrorCode = 'EBUSY' | 'ENOENT' | 'ENOTDIR' | 'EIO' | 'ENOSPC' | 'ESHUTDOWN' | 'EAGAIN';

/** A failed store operation; the message names the store's directory. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}
