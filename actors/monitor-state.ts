// Reading a monitor's persisted state at start-up (Monitor::preinit, Paxos::init,
// Elector::init): everything the machines need as input, from the layout of DESIGN.md §4.
import type { MonitorInput } from '../machines/monitor.ts';
import type { Uncommitted } from '../machines/paxos.ts';
import { authDataPrefix, authHistoryPrefix, authLoaded } from '../machines/services/auth.ts';
import { sessionPrefix, sessionsBootFrom } from '../machines/sessions.ts';
import { discardStage } from '../machines/sync.ts';
import type { Store } from '../storage/store.ts';
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
export async function discardSyncStage(store: Store): Promise<boolean> {
  const ops = discardStage();
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

export async function loadMonitorState(store: Store): Promise<LoadedMonitor> {
  await discardSyncStage(store);
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
  const versions = async (prefix: string) => ({
    firstCommitted: await store.getNumber(prefix, 'first_committed'),
    lastCommitted: await store.getNumber(prefix, 'last_committed'),
  });
  // LogMonitor's next sequence number: one past the newest entry (keys are zero-padded).
  let nextLogSeq = 1;
  for await (const [key] of store.iterate('log')) nextLogSeq = Math.max(nextLogSeq, Number(key) + 1);
  const healthBytes = await store.get('health', 'latest');
  let health: unknown = null;
  try {
    health = healthBytes ? JSON.parse(utf8.decode(healthBytes)) : null;
  } catch {
    health = null;
  }
  const storedAddr = await store.get('monitor', 'addr');
  const addr =
    monmap.mons.find((m) => m.name === name)?.addr ?? (storedAddr ? utf8.decode(storedAddr) : undefined);
  // What the services remember of their clients' updates (machines/sessions.ts): every record
  // still in the store, whatever was trimmed or synced since.
  const sessionEntries: [string, Uint8Array][] = [];
  for await (const entry of store.iterate(sessionPrefix)) sessionEntries.push(entry);
  const sessionsOf = (prefix: string) => sessionsBootFrom(prefix, sessionEntries);
  // AuthMonitor's database: the entities (KeyServer's data), read whole at start-up.
  const authVersions = await versions(authHistoryPrefix);
  const authEntries: [string, Uint8Array][] = [];
  for await (const entry of store.iterate(authDataPrefix)) authEntries.push(entry);
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
      services: {
        monmap: { versions: await versions('monmap'), loaded: monmap, sessions: sessionsOf('monmap') },
        'config-key': { versions: await versions('kv'), loaded: null, sessions: sessionsOf('kv') },
        log: { versions: await versions('logm'), loaded: nextLogSeq, sessions: sessionsOf('logm') },
        health: { versions: await versions('health'), loaded: health, sessions: sessionsOf('health') },
        auth: {
          versions: authVersions,
          loaded: authLoaded(authVersions, authEntries),
          sessions: sessionsOf(authHistoryPrefix),
        },
      },
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
