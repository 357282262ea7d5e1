// Store sync, provider side (Ceph's Monitor::handle_sync_get_cookie / handle_sync_get_chunk).
// It reads the store, so it is part of the runtime, not of the pure machines; the requester's
// side is machines/sync.ts. Cookies name a sync in progress; an idle one expires after
// 2 × mon_sync_timeout (Ceph's sync_timeout on the provider).
import { syncPrefixes } from '../machines/sync.ts';
import type { Store } from '../storage/store.ts';
import { storeChunks, storeStats } from '../storage/sync-iterator.ts';
import { Transaction } from '../storage/transaction.ts';
import type { EntityName, MonSync } from '../transport/messages.ts';
import type { Transport } from '../transport/transport.ts';
import { decodeValue } from './io.ts';

export interface SyncProviderOptions {
  /** The prefixes a sync copies (machines/sync.ts syncPrefixesFor the monitor's services); default paxmon's own. */
  prefixes?: readonly string[];
  store: Store;
  transport: Transport;
  payloadBytesMax: number;
  payloadKeysMax: number;
  timeoutMs: number;
  /** Whether this monitor can provide now (not itself syncing, store complete). */
  canProvide: () => boolean;
  /** Wall-clock milliseconds (expiry of idle cookies). */
  now: () => number;
  onEvent?: (event: { op: string; peer: EntityName; cookie: number; keys?: number; bytes?: number }) => void;
}

interface Cookie {
  peer: EntityName;
  kind: 'full' | 'recent';
  /** Recent sync: the next Paxos version to send. */
  nextVersion: number;
  lastUsed: number;
}

/** The largest number of cookies kept (a limit on memory held for peers). */
const cookiesMax = 64;

export function createSyncProvider(options: SyncProviderOptions) {
  const cookies = new Map<number, Cookie>();
  let nextCookie = Math.floor(options.now() % 1_000_000) * 1000 + 1;

  const reply = (to: EntityName, msg: Omit<MonSync, 'type'>) =>
    options.transport.send(to, { type: 'mon.sync', ...msg });
  const noCookie = (to: EntityName, cookie = 0) => reply(to, { op: 'no_cookie', cookie, lastCommitted: 0 });

  function expire() {
    const now = options.now();
    for (const [id, cookie] of cookies) if (now - cookie.lastUsed > 2 * options.timeoutMs) cookies.delete(id);
  }

  async function handle(from: EntityName, msg: MonSync): Promise<void> {
    expire();
    const fc = await options.store.getNumber('paxos', 'first_committed');
    const lc = await options.store.getNumber('paxos', 'last_committed');
    if (msg.op === 'get_cookie_full' || msg.op === 'get_cookie_recent') {
      // A provider that is itself syncing (or holds an interrupted sync) has nothing whole to give.
      if (!options.canProvide() || cookies.size >= cookiesMax) return noCookie(from);
      if (msg.op === 'get_cookie_recent' && msg.lastCommitted + 1 < fc) {
        // The versions it misses are trimmed here: only a full sync can help it.
        return noCookie(from);
      }
      const cookie = nextCookie++;
      cookies.set(cookie, {
        peer: from,
        kind: msg.op === 'get_cookie_full' ? 'full' : 'recent',
        nextVersion: msg.lastCommitted + 1,
        lastUsed: options.now(),
      });
      const totals =
        msg.op === 'get_cookie_full'
          ? await storeStats(options.store, [...(options.prefixes ?? syncPrefixes)])
          : { keys: lc - msg.lastCommitted, bytes: undefined };
      options.onEvent?.({ op: msg.op, peer: from, cookie });
      return reply(from, {
        op: 'cookie',
        cookie,
        lastCommitted: lc,
        totalKeys: Math.max(0, totals.keys),
        ...(totals.bytes !== undefined ? { totalBytes: totals.bytes } : {}),
      });
    }
    if (msg.op !== 'get_chunk') return;
    const cookie = cookies.get(msg.cookie);
    if (!cookie || cookie.peer !== from || !options.canProvide()) return noCookie(from, msg.cookie);
    cookie.lastUsed = options.now();
    if (cookie.kind === 'full') {
      // Resume after the last key the requester applied (Ceph's WholeStoreIterator, stateless here).
      const chunks = storeChunks(options.store, [...(options.prefixes ?? syncPrefixes)], {
        payloadBytesMax: options.payloadBytesMax,
        payloadKeysMax: options.payloadKeysMax,
        ...(msg.lastKey ? { after: msg.lastKey } : {}),
      });
      const first = await chunks.next();
      await chunks.return(undefined);
      const chunk = first.done ? { tx: new Transaction(), lastKey: msg.lastKey, done: true } : first.value;
      if (chunk.done) cookies.delete(msg.cookie);
      options.onEvent?.({
        op: chunk.done ? 'last_chunk' : 'chunk',
        peer: from,
        cookie: msg.cookie,
        keys: chunk.tx.keys,
        bytes: chunk.tx.bytes,
      });
      return reply(from, {
        op: chunk.done ? 'last_chunk' : 'chunk',
        cookie: msg.cookie,
        lastCommitted: lc,
        chunk: chunk.tx.encode(),
        chunkKeys: chunk.tx.keys,
        ...(chunk.lastKey ? { lastKey: chunk.lastKey } : {}),
      });
    }
    // Recent: the missing Paxos versions, each stored and applied as Paxos::store_state would.
    const tx = new Transaction();
    let version = cookie.nextVersion;
    while (version <= lc && tx.bytes < options.payloadBytesMax && tx.keys < options.payloadKeysMax) {
      const value = await options.store.get('paxos', String(version));
      if (!value) break;
      tx.put('paxos', String(version), value);
      tx.append(decodeValue(value));
      tx.putNumber('paxos', 'last_committed', version);
      version += 1;
    }
    if (version <= cookie.nextVersion && cookie.nextVersion <= lc) {
      // A version it needs is gone (trimmed since the cookie was given): start over in full.
      cookies.delete(msg.cookie);
      return noCookie(from, msg.cookie);
    }
    cookie.nextVersion = version;
    const done = version > lc;
    if (done) cookies.delete(msg.cookie);
    options.onEvent?.({
      op: done ? 'last_chunk' : 'chunk',
      peer: from,
      cookie: msg.cookie,
      keys: tx.keys,
      bytes: tx.bytes,
    });
    return reply(from, {
      op: done ? 'last_chunk' : 'chunk',
      cookie: msg.cookie,
      lastCommitted: lc,
      chunk: tx.encode(),
      chunkKeys: tx.keys,
    });
  }

  return {
    /** Serve one sync request; failures answer no_cookie (the requester bootstraps and retries). */
    handle(from: EntityName, msg: MonSync): void {
      handle(from, msg).catch(() => noCookie(from, msg.cookie));
    },
    cookies: () => cookies.size,
  };
}
