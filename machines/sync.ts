// Store sync, requester side (Ceph's Monitor::sync_start / handle_sync_*; DESIGN.md §2
// "Synchronizing"). Pure step functions over the monitor's context; the monitor statechart's
// `synchronizing` state calls them. The provider side reads the store, so it lives with the
// runtime (actors/sync-provider.ts).
import type { EntityName, MonMap, MonSync } from '../transport/messages.ts';
import type { Outgoing, StoreOp } from './effects.ts';

/**
 * What a full sync copies, in this order (Ceph's get_sync_targets: paxos first). Paxos versions
 * go first so that service data copied later is never older than the last version copied:
 * whatever committed meanwhile is replayed by Paxos after the sync.
 */
export const syncPrefixes = [
  'paxos',
  'monmap',
  'kv',
  'config-key',
  'logm',
  'log',
  'health',
  'mon_session',
] as const;

export interface SyncProgress {
  kind: 'full' | 'recent';
  provider: EntityName;
  providerAddr: string | undefined;
  cookie: number;
  keys: number;
  bytes: number;
  totalKeys: number | undefined;
  totalBytes: number | undefined;
  lastKey: { prefix: string; key: string } | undefined;
}

function message(op: MonSync['op'], fields: Partial<MonSync> = {}): MonSync {
  return { type: 'mon.sync', op, cookie: 0, lastCommitted: 0, ...fields };
}

const to = (sync: Pick<SyncProgress, 'provider' | 'providerAddr'>, msg: MonSync): Outgoing =>
  sync.providerAddr ? { to: sync.provider, addr: sync.providerAddr, msg } : { to: sync.provider, msg };

/**
 * Monitor::sync_start. A full sync first persists that it is in progress (so a crash restarts it
 * cleanly), the floor and the latest monmap, and clears everything it will copy; a recent sync
 * asks for the versions after my last_committed.
 */
export function syncStart(
  kind: 'full' | 'recent',
  provider: EntityName,
  providerAddr: string | undefined,
  lastCommitted: number,
  monmap: MonMap,
): { writes: StoreOp[]; messages: Outgoing[]; progress: SyncProgress } {
  const progress: SyncProgress = {
    kind,
    provider,
    providerAddr,
    cookie: 0,
    keys: 0,
    bytes: 0,
    totalKeys: undefined,
    totalBytes: undefined,
    lastKey: undefined,
  };
  if (kind === 'recent') {
    return {
      writes: [],
      messages: [to(progress, message('get_cookie_recent', { lastCommitted }))],
      progress,
    };
  }
  const writes: StoreOp[] = [
    { op: 'put_number', prefix: 'mon_sync', key: 'in_sync', value: 1 },
    { op: 'put_number', prefix: 'mon_sync', key: 'last_committed_floor', value: lastCommitted },
    { op: 'put', prefix: 'mon_sync', key: 'latest_monmap', value: JSON.stringify(monmap) },
    ...syncPrefixes.map((prefix): StoreOp => ({ op: 'erase_range', prefix, start: '', end: '' })),
  ];
  return { writes, messages: [to(progress, message('get_cookie_full', { lastCommitted }))], progress };
}

/** Monitor::handle_sync_cookie: remember the cookie, ask for the first chunk. */
export function syncCookie(sync: SyncProgress, msg: MonSync) {
  const progress: SyncProgress = {
    ...sync,
    cookie: msg.cookie,
    totalKeys: msg.totalKeys ?? sync.totalKeys,
    totalBytes: msg.totalBytes ?? sync.totalBytes,
  };
  return { progress, messages: [to(progress, message('get_chunk', { cookie: msg.cookie }))] };
}

/**
 * Monitor::handle_sync_chunk: apply the chunk atomically; only once it is durable ask for the
 * next (the request rides after the write), so a crash never leaves a half-applied chunk.
 */
export function syncChunk(sync: SyncProgress, msg: MonSync) {
  const writes: StoreOp[] = msg.chunk ? [{ op: 'apply_encoded', value: msg.chunk }] : [];
  const progress: SyncProgress = {
    ...sync,
    keys: sync.keys + (msg.chunkKeys ?? 0),
    bytes: sync.bytes + (msg.chunk?.length ?? 0),
    lastKey: msg.lastKey ?? sync.lastKey,
  };
  const next = message('get_chunk', {
    cookie: sync.cookie,
    ...(progress.lastKey ? { lastKey: progress.lastKey } : {}),
  });
  return { writes, progress, messages: [to(progress, next)] };
}

/** Monitor::sync_finish: the last chunk, and the sync markers erased in the same transaction. */
export function syncFinish(sync: SyncProgress, msg: MonSync) {
  const writes: StoreOp[] = msg.chunk ? [{ op: 'apply_encoded', value: msg.chunk }] : [];
  if (sync.kind === 'full') {
    writes.push(
      { op: 'erase', prefix: 'mon_sync', key: 'in_sync' },
      { op: 'erase', prefix: 'mon_sync', key: 'last_committed_floor' },
      { op: 'erase', prefix: 'mon_sync', key: 'latest_monmap' },
    );
  }
  const progress: SyncProgress = {
    ...sync,
    keys: sync.keys + (msg.chunkKeys ?? 0),
    bytes: sync.bytes + (msg.chunk?.length ?? 0),
  };
  return { writes, progress };
}
