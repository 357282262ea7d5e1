// Reading a monitor's persisted state at start-up (Monitor::preinit, Paxos::init,
// Elector::init): everything the machines need as input, from the layout of DESIGN.md §4.
import type { MonitorInput } from '../machines/monitor.ts';
import type { Uncommitted } from '../machines/paxos.ts';
import type { ServiceDefinition, ServiceVersions } from '../machines/paxos-service.ts';
import type { LoadableService } from '../machines/service-load.ts';
import {
  dataPrefixesOf,
  fullKey,
  fullLatestKey,
  loadedOf,
  type StoredService,
  type StoredVersion,
} from '../machines/service-load.ts';
import { type SessionsBoot, sessionPrefix, sessionsBootFrom } from '../machines/sessions.ts';
import { discardStage, syncPrefixes, syncPrefixesFor } from '../machines/sync.ts';
import type { Store } from '../storage/store.ts';
import { decodeNumber } from '../storage/transaction.ts';
import {
  type ConnectionTracker,
  checkConnectionTracker,
  type MonMap,
  validateMonMap,
} from '../transport/messages.ts';
import { toTransaction } from './io.ts';

const utf8 = new TextDecoder();

export class MonitorStateError extends Error {
  readonly code = 'EINVAL';
}

export function encodeMonMap(monmap: MonMap): string {
  return JSON.stringify(monmap);
}

export function decodeMonMap(bytes: Uint8Array): MonMap {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch (error) {
    throw new MonitorStateError(`monmap is not valid JSON: ${(error as Error).message}`);
  }
  const reason = validateMonMap(value);
  if (reason) throw new MonitorStateError(reason);
  return value as MonMap;
}

export async function loadMonMap(store: Store): Promise<MonMap> {
  const epoch = await store.getNumber('monmap', 'last_committed');
  // A joining monitor's map is epoch 0 (mkfs --addr): older than any map of a cluster.
  const bytes = await store.get('monmap', String(epoch));
  const stored = bytes ? decodeMonMap(bytes) : undefined;
  // Monitor::obtain_monmap: a full sync erases the monmap prefix first and copies it back only
  // after the Paxos versions; interrupted in between, the map it stashed at sync_start is the one.
  if ((await store.getNumber('mon_sync', 'in_sync')) > 0) {
    const stashed = await store.get('mon_sync', 'latest_monmap');
    const latest = stashed ? decodeMonMap(stashed) : undefined;
    if (latest && (!stored || latest.epoch > stored.epoch)) return latest;
  }
  if (!stored) throw new MonitorStateError('store has no monmap (was it created with paxmon mkfs?)');
  return stored;
}

export interface LoadedMonitor {
  name: string;
  fsid: string;
  /** Where this monitor listens: its monmap address, or the one given at mkfs when it is joining. */
  addr: string | undefined;
  /** mon_sync/in_sync was set: a store sync was interrupted; the synced data must be cleared and copied again. */
  inSync: boolean;
  /** Why the stored connectivity scores were not used (the elector starts with fresh ones), if so. */
  scoresRefused?: string;
  input: Omit<MonitorInput, 'config'>;
}

/**
 * Discard what an interrupted full sync staged (machines/sync.ts stagePrefix): the store in use
 * was never touched, so the monitor starts over it. Writes only when something is staged.
 */
export async function discardSyncStage(
  store: Store,
  prefixes: readonly string[] = syncPrefixes,
): Promise<boolean> {
  const ops = discardStage(prefixes);
  let staged = false;
  for (const op of ops) {
    if (op.op !== 'erase_range') continue;
    for await (const _ of store.iterate(op.prefix)) {
      staged = true;
      break;
    }
  }
  // Not synced: a crash that loses it finds the staging again and discards it again.
  if (staged) await store.apply(toTransaction(ops), { sync: false });
  return staged;
}

/**
 * Everything a monitor starts from (Monitor::preinit): its identity, monmap, Paxos state,
 * election epoch and scores, and the state of each service it runs — `services`, paxmon's own and
 * an app's alike, each loaded the one same way (loadService). The monitor passes every service it
 * runs; a caller that needs only the identity (name, fsid, address) passes none.
 */
export async function loadMonitorState(
  store: Store,
  services: readonly ServiceDefinition[] = [],
): Promise<LoadedMonitor> {
  await discardSyncStage(store, syncPrefixesFor(services as readonly LoadableService[]));
  const nameBytes = await store.get('monitor', 'name');
  const fsidBytes = await store.get('monitor', 'fsid');
  if (!nameBytes || !fsidBytes)
    throw new MonitorStateError('store has no monitor name/fsid (was it created with paxmon mkfs?)');
  const name = utf8.decode(nameBytes);
  const fsid = utf8.decode(fsidBytes);
  const monmap = await loadMonMap(store);
  if (monmap.fsid !== fsid)
    throw new MonitorStateError(`monmap fsid ${monmap.fsid} differs from the store's fsid ${fsid}`);

  // A store copied by sync while the provider kept committing may name versions it does not
  // hold (or miss the oldest ones, trimmed meanwhile): Paxos starts from the contiguous history
  // it really has, and the versions above are shared again by the leader after bootstrap.
  let firstCommitted = await store.getNumber('paxos', 'first_committed');
  let lastCommitted = await store.getNumber('paxos', 'last_committed');
  if (lastCommitted > 0) {
    while (firstCommitted < lastCommitted && !(await store.exists('paxos', String(firstCommitted))))
      firstCommitted += 1;
    let top = firstCommitted;
    while (top < lastCommitted && (await store.exists('paxos', String(top + 1)))) top += 1;
    if (!(await store.exists('paxos', String(firstCommitted)))) {
      firstCommitted = 0;
      top = 0;
    }
    lastCommitted = top;
  }
  let uncommitted: Uncommitted | null = null;
  // Paxos::init: an accepted value at lc+1 is still uncommitted; its pn is pending_pn.
  const pendingValue = await store.get('paxos', String(lastCommitted + 1));
  if (pendingValue) {
    const pendingV = await store.getNumber('paxos', 'pending_v');
    const pendingPn = await store.getNumber('paxos', 'pending_pn');
    uncommitted = {
      version: lastCommitted + 1,
      pn: pendingV === lastCommitted + 1 ? pendingPn : 0,
      value: pendingValue,
    };
  }
  const storedAddr = await store.get('monitor', 'addr');
  const addr =
    monmap.mons.find((m) => m.name === name)?.addr ?? (storedAddr ? utf8.decode(storedAddr) : undefined);
  // What the services remember of their clients' updates (machines/sessions.ts): every record
  // still in the store, whatever was trimmed or synced since.
  const sessionEntries: [string, Uint8Array][] = [];
  if (services.length > 0) for await (const entry of store.iterate(sessionPrefix)) sessionEntries.push(entry);
  const loadedServices: NonNullable<MonitorInput['services']> = {};
  for (const definition of services)
    loadedServices[definition.name] = await loadService(store, definition, monmap, sessionEntries);
  const scores = await loadConnectivityScores(
    store,
    monmap.mons.findIndex((m) => m.name === name),
  );
  return {
    name,
    fsid,
    addr,
    inSync: (await store.getNumber('mon_sync', 'in_sync')) > 0,
    ...(scores.refused ? { scoresRefused: scores.refused } : {}),
    input: {
      connectivityScores: scores.tracker,
      services: loadedServices,
      name,
      monmap,
      hasEverJoined: (await store.getNumber('monitor', 'joined')) > 0,
      electionEpoch: await store.getNumber('monitor', 'election_epoch'),
      paxos: {
        firstCommitted,
        lastCommitted,
        acceptedPn: await store.getNumber('paxos', 'accepted_pn'),
        lastPn: await store.getNumber('paxos', 'last_pn'),
        uncommitted,
      },
    },
  };
}

/**
 * One service's start-up entry, read the same way for every service, built-in or an app's
 * (PaxosService::refresh): its versions, its newest full stash and the incrementals after it,
 * the prefixes its load hook names, and its session records (machines/sessions.ts). What its
 * `init` receives is machines/service-load.ts's to say.
 */
export async function loadService(
  store: Store,
  definition: ServiceDefinition,
  monmap: MonMap,
  sessionEntries: [string, Uint8Array][],
): Promise<{ versions: ServiceVersions; loaded: unknown; sessions: SessionsBoot }> {
  const { prefix } = definition;
  const versions: ServiceVersions = {
    firstCommitted: await store.getNumber(prefix, 'first_committed'),
    lastCommitted: await store.getNumber(prefix, 'last_committed'),
  };
  let full: StoredVersion | undefined;
  const latest = await store.get(prefix, fullLatestKey);
  const fullVersion = latest ? versionOf(latest) : 0;
  if (fullVersion > 0 && fullVersion <= versions.lastCommitted) {
    const value = await store.get(prefix, fullKey(fullVersion));
    if (value) full = { version: fullVersion, value };
  }
  // The incrementals still kept after the full stash. A store copied by a sync may miss some
  // (or name versions it does not hold): what is there is replayed, and Paxos replays the rest.
  const from = Math.max(versions.firstCommitted, (full?.version ?? 0) + 1);
  const incrementals: StoredVersion[] = [];
  for await (const [key, value] of store.iterate(prefix)) {
    if (!versionKey.test(key)) continue;
    const version = Number(key);
    if (version >= from && version <= versions.lastCommitted) incrementals.push({ version, value });
  }
  incrementals.sort((a, b) => a.version - b.version);
  const data: Record<string, [string, Uint8Array][]> = {};
  for (const dataPrefix of dataPrefixesOf(definition)) {
    const entries: [string, Uint8Array][] = [];
    for await (const entry of store.iterate(dataPrefix)) entries.push(entry);
    data[dataPrefix] = entries;
  }
  const stored: StoredService = { versions, ...(full ? { full } : {}), incrementals, data, monmap };
  return {
    versions,
    loaded: loadedOf(definition, stored),
    sessions: sessionsBootFrom(prefix, sessionEntries),
  };
}

/** A version key (`<prefix>/<N>`): digits, no leading zero. */
const versionKey = /^[1-9][0-9]{0,14}$/;

/** `full_latest`: a number as the template writes numbers (8 bytes), or its decimal text (the log's). */
function versionOf(bytes: Uint8Array): number {
  const text = utf8.decode(bytes);
  if (/^[0-9]{1,15}$/.test(text)) return Number(text);
  try {
    return decodeNumber(bytes);
  } catch {
    return 0;
  }
}

/**
 * The elector's scores (Elector's constructor reads monitor/connectivity_scores). Scores that do
 * not decode, or were made at another rank (the monmap changed while the monitor was down), are
 * not used: the elector starts with fresh ones, and the reason is logged.
 */
export async function loadConnectivityScores(
  store: Store,
  rank: number,
): Promise<{ tracker: ConnectionTracker | null; refused?: string }> {
  const bytes = await store.get('monitor', 'connectivity_scores');
  if (!bytes) return { tracker: null };
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch (error) {
    return { tracker: null, refused: `connectivity_scores is not valid JSON: ${(error as Error).message}` };
  }
  const reason = checkConnectionTracker(value);
  if (reason) return { tracker: null, refused: `connectivity_scores: ${reason}` };
  const tracker = value as ConnectionTracker;
  if (tracker.rank !== rank)
    return {
      tracker: null,
      refused: `connectivity_scores were made at rank ${tracker.rank}, I am rank ${rank}`,
    };
  return { tracker };
}
