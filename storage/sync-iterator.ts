// The sync provider's side of a full sync: Ceph's MonitorDBStore::get_synchronizer and
// WholeStoreIteratorImpl::get_chunk_tx. The store's keys under the synced prefixes are cut into
// chunks, each one Transaction of puts that the requester applies atomically; a chunk holds at
// most `payloadBytesMax` bytes and `payloadKeysMax` keys (mon_sync_max_payload_size /
// mon_sync_max_payload_keys) but always at least one key, so an oversized value still moves.
//
// Ceph walks the whole key space of one RocksDB snapshot and filters by a *set* of prefixes;
// paxmon walks the prefixes in the order given, so a caller can send the paxos versions first
// and the services after (DESIGN.md §2). Each prefix is read through its own iterator, which is
// a snapshot from the moment that prefix is reached: as in Ceph, writes racing a sync are
// repaired by the Paxos catch-up that follows it (sync_finish → bootstrap → recovery).
import type { Store } from './store.ts';
import { Transaction, utf8Length } from './transaction.ts';

export interface StoreKey {
  prefix: string;
  key: string;
}

export interface StoreChunk {
  /** Puts recreating this part of the store. */
  tx: Transaction;
  /** The last key in tx (resume with `after: lastKey`); undefined when tx is empty. */
  lastKey: StoreKey | undefined;
  /** This is the last chunk (Ceph's last_chunk): nothing follows lastKey in the synced prefixes. */
  done: boolean;
}

export interface StoreChunksOptions {
  payloadBytesMax: number;
  payloadKeysMax: number;
  /** Resume after this key (exclusive): the lastKey of the previous chunk (Ceph's upper_bound(last_key)). */
  after?: StoreKey;
}

/** Limits on the limits: a chunk bound must be a positive integer no larger than these. */
export const syncPayloadBytesMaxLimit = 64 * 1024 * 1024;
export const syncPayloadKeysMaxLimit = 1 << 20;
/** Prefixes per sync; Ceph syncs a handful of service prefixes. */
export const syncPrefixesMax = 256;

function checkPrefixes(prefixes: readonly string[]): void {
  if (prefixes.length > syncPrefixesMax)
    throw new RangeError(`${prefixes.length} sync prefixes, limit ${syncPrefixesMax}`);
  if (new Set(prefixes).size !== prefixes.length) throw new RangeError('sync prefixes must be distinct');
}

function checkBound(name: string, value: number, limit: number): void {
  if (!Number.isSafeInteger(value) || value < 1 || value > limit) {
    throw new RangeError(`${name} must be an integer in [1, ${limit}], got ${value}`);
  }
}

/** The bytes an entry adds to a chunk: Transaction.bytes of its put. */
function entryBytes(prefix: string, key: string, value: Uint8Array): number {
  return utf8Length(prefix) + utf8Length(key) + value.length;
}

/**
 * Chunks of the store under `prefixes`, in prefix order then key byte order. The final chunk has
 * done = true (an empty store yields one empty, done chunk). Restart the generator with
 * `after: chunk.lastKey` to resume where a previous one stopped.
 */
export async function* storeChunks(
  store: Store,
  prefixes: readonly string[],
  { payloadBytesMax, payloadKeysMax, after }: StoreChunksOptions,
): AsyncGenerator<StoreChunk> {
  checkPrefixes(prefixes);
  checkBound('payloadBytesMax', payloadBytesMax, syncPayloadBytesMaxLimit);
  checkBound('payloadKeysMax', payloadKeysMax, syncPayloadKeysMaxLimit);
  let firstPrefix = 0;
  if (after !== undefined) {
    firstPrefix = prefixes.indexOf(after.prefix);
    if (firstPrefix < 0)
      throw new RangeError(`resume key's prefix ${JSON.stringify(after.prefix)} is not being synced`);
  }

  let tx = new Transaction();
  let lastKey: StoreKey | undefined;
  for (let index = firstPrefix; index < prefixes.length; index++) {
    const prefix = prefixes[index] as string;
    // key + '\0' is the least key greater than key in byte order: resume exclusively after it.
    const start = after !== undefined && index === firstPrefix ? `${after.key}\0` : '';
    for await (const [key, value] of store.iterate(prefix, { start })) {
      // WholeStoreIteratorImpl::get_chunk_tx: take the key if the chunk is empty or it still fits.
      const fits = tx.bytes + entryBytes(prefix, key, value) <= payloadBytesMax && tx.keys < payloadKeysMax;
      if (!tx.empty && !fits) {
        yield { tx, lastKey, done: false };
        tx = new Transaction();
        lastKey = undefined;
      }
      tx.put(prefix, key, value);
      lastKey = { prefix, key };
    }
  }
  yield { tx, lastKey, done: true };
}

/** Totals under `prefixes`, counted as Transaction.keys / Transaction.bytes count puts: sync progress. */
export async function storeStats(
  store: Store,
  prefixes: readonly string[],
): Promise<{ keys: number; bytes: number }> {
  checkPrefixes(prefixes);
  let keys = 0;
  let bytes = 0;
  for (const prefix of prefixes) {
    for await (const [key, value] of store.iterate(prefix)) {
      keys++;
      bytes += entryBytes(prefix, key, value);
    }
  }
  return { keys, bytes };
}
