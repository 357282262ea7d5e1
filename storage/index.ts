// storage/: MonitorDBStore for paxmon (DESIGN.md §4) — the Store port, Transaction and its
// encoding, the RocksDB backend, the simulator's in-memory backend and the sync-chunk iterator.

export type { CrashOutcome, MemoryStoreOptions, SimulatedTimers } from './memory-store.ts';
export { MemoryStore } from './memory-store.ts';
export type { RocksDBStoreStats } from './rocksdb-store.ts';
export { RocksDBStore } from './rocksdb-store.ts';
export type { IterateOptions, Store, StoreErrorCode } from './store.ts';
export { StoreError } from './store.ts';
export type { StoreChunk, StoreChunksOptions, StoreKey } from './sync-iterator.ts';
export { storeChunks, storeStats } from './sync-iterator.ts';
export type { TransactionOp } from './transaction.ts';
export {
  decodeNumber,
  encodeNumber,
  keyBytesMax,
  prefixBytesMax,
  Transaction,
  TransactionDecodeError,
  transactionBytesMax,
  transactionFormatVersion,
  transactionOpsMax,
  valueBytesMax,
} from './transaction.ts';
