// Store sync, requester side (Ceph's Monitor::sync_start / handle_sync_*; DESIGN.md §2
// "Synchronizing"). Pure step functions over the monitor's context; the monitor statechart's
// `synchronizing` state calls them. The provider side is machines/sync-provider.ts (its
// decisions; the io actor reads the store for it).
import type { EntityName, MonSync } from '../transport/messages.ts';
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
  'auth',
  'auth_entity',
  'mon_session',
] as const;

/**
 * The prefixes a store sync copies for a monitor running `services`: paxmon's own, and each
 * service's history and the data its load hook names — a custom PaxosService's store is copied
 * like a built-in's (without it, a monitor that synced in full kept an empty custom history).
 */
export function syncPrefixesFor(
  services: readonly { prefix: string; load?: { dataPrefixes?: readonly string[] } }[],
): string[] {
  const all = new Set<string>(syncPrefixes);
  for (const d of services) {
    all.add(d.prefix);
    for (const prefix of d.load?.dataPrefixes ?? []) all.add(prefix);
  }
  return [...all];
}

/**
 * A full sync builds the new store beside the old one: each chunk's puts go to the staging
 * prefix of their prefix (`sync_stage.paxos` …), and the last chunk switches over in one atomic
 * transaction (erase the synced prefixes, move the staged keys in, erase the staging area). Until
 * then the old store stays whole and in use: a sync that is cut off, times out or crashes leaves
 * the monitor with all it had, and the staging area is discarded when the next sync starts or
 * the monitor starts. (Ceph's sync_start clears the store first and marks it `in_sync`.)
 */
export const stagePrefix = (prefix: string) => `sync_stage.${prefix}`;

/**
 * The most a staged full sync may copy. The switch is one write batch holding the whole synced
 * store (RocksDB builds it in memory; Transaction's own limit is 256 MiB): a provider offering
 * more ends the sync (bootstrap) rather than a write that cannot be made.
 */
export const syncStageBytesMax = 128 * 1024 * 1024;

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
  /** The prefixes this sync stages and switches (syncPrefixesFor the monitor's services). */
  prefixes: readonly string[];
}

function message(op: MonSync['op'], fields: Partial<MonSync> = {}): MonSync {
  return { type: 'mon.sync', op, cookie: 0, lastCommitted: 0, ...fields };
}

const to = (sync: Pick<SyncProgress, 'provider' | 'providerAddr'>, msg: MonSync): Outgoing =>
  sync.providerAddr ? { to: sync.provider, addr: sync.providerAddr, msg } : { to: sync.provider, msg };

/**
 * Monitor::sync_start. A full sync discards whatever an earlier, interrupted one staged and asks
 * for a cookie; the store in use is not touched until the copy is complete (see stagePrefix). A
 * recent sync asks for the versions after my last_committed (each chunk only adds committed
 * versions to what I have).
 */
export function syncStart(
  kind: 'full' | 'recent',
  provider: EntityName,
  providerAddr: string | undefined,
  lastCommitted: number,
  prefixes: readonly string[] = syncPrefixes,
): { writes: StoreOp[]; messages: Outgoing[]; progress: SyncProgress } {
  const progress: SyncProgress = {
    prefixes,
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
  const writes: StoreOp[] = discardStage(prefixes);
  return { writes, messages: [to(progress, message('get_cookie_full', { lastCommitted }))], progress };
}

/** What a staged copy holds, and what the store in use holds, as the switch sees them. */
export interface StoreFacts {
  /** paxos/last_committed, and the top of the contiguous versions from first_committed. */
  paxosLastCommitted: number;
  paxosContiguousTop: number;
  /** monmap/last_committed, and the fsid of the map at that epoch ('' when it is missing). */
  monmapEpoch: number;
  fsid: string;
}

/**
 * Whether a full sync's staged copy may replace the store in use, or why not. A monitor never
 * ends a sync with less than it had: the copy must hold a monmap of this cluster, no older than
 * mine, and Paxos history (contiguous, as the monitor will load it) reaching at least as far as
 * mine. A provider that ends a sync early, or sends an empty last chunk, leaves the store as it
 * was (the staging is discarded; the monitor reloads over its own store and probes again).
 */
export function stagedCopyRefusal(staged: StoreFacts, live: StoreFacts): string | null {
  if (!staged.fsid) return `the copy has no monmap (epoch ${staged.monmapEpoch})`;
  if (live.fsid && staged.fsid !== live.fsid) return `the copy's monmap is of cluster ${staged.fsid}`;
  if (staged.monmapEpoch < live.monmapEpoch)
    return `the copy's monmap epoch ${staged.monmapEpoch} is older than mine, ${live.monmapEpoch}`;
  if (staged.paxosContiguousTop < live.paxosContiguousTop)
    return `the copy's Paxos history ends at ${staged.paxosContiguousTop}, mine at ${live.paxosContiguousTop}`;
  return null;
}

/** Erase every staging prefix (an abandoned full sync's partial copy). */
export function discardStage(prefixes: readonly string[] = syncPrefixes): StoreOp[] {
  return prefixes.map(
    (prefix): StoreOp => ({ op: 'erase_range', prefix: stagePrefix(prefix), start: '', end: '' }),
  );
}

/** A chunk's writes: staged for a full sync, applied for a recent one. */
function chunkWrites(sync: SyncProgress, chunk: Uint8Array | undefined): StoreOp[] {
  if (!chunk) return [];
  return sync.kind === 'full'
    ? [{ op: 'stage_encoded', value: chunk, prefixes: [...sync.prefixes] }]
    : [{ op: 'apply_encoded', value: chunk }];
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
 * Monitor::handle_sync_chunk: stage (full) or apply (recent) the chunk atomically; only once it
 * is durable ask for the next (the request rides after the write), so a crash never leaves a
 * half-written chunk.
 */
export function syncChunk(sync: SyncProgress, msg: MonSync) {
  const writes = chunkWrites(sync, msg.chunk);
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

/**
 * Monitor::sync_finish: the last chunk and, for a full sync, the switch to the staged copy, in
 * one transaction (with the markers an older paxmon's full sync left, mon_sync/in_sync …).
 */
export function syncFinish(sync: SyncProgress, msg: MonSync) {
  const writes = chunkWrites(sync, msg.chunk);
  if (sync.kind === 'full') {
    writes.push(
      { op: 'commit_stage', prefixes: [...sync.prefixes] },
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
