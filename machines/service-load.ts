// A service's state at start-up, from what the store holds of it — one path for every service,
// paxmon's own and an app's (Ceph: Monitor::preinit → PaxosService::refresh → update_from_paxos,
// which reads the service's newest full version and the incrementals after it).
//
// The runtime reads the same things for every service (actors/monitor-state.ts loadService): its
// versions (`<prefix>/first_committed`, `last_committed`), its newest full stash
// (`<prefix>/full_latest` names N, `<prefix>/full_<N>` holds it), the incrementals after it
// (`<prefix>/<N>`), and the prefixes its `load` hook names. Pure: what was read comes in as data.
//
// What `init` receives:
// - a service without a `load` hook: null when it has no history yet; else its state rebuilt by
//   its own hooks — init(null), then updateFromPaxos over the full stash (its put of
//   `<prefix>/full_<N>`, with lastCommitted = N) and over each incremental after it (its put of
//   `<prefix>/<N>`, with lastCommitted = N). Its `init` takes that state as it is
//   (`init: (loaded) => loaded ?? empty`), so a restarted monitor goes on from it: same state,
//   and its next version after its last committed one.
// - a service with a `load` hook: what the hook makes of the stored data (its state lives
//   outside its history: config-key's keys, the auth database, the log's entries).
import type { MonMap } from '../transport/messages.ts';
import type { AppliedOp } from './effects.ts';
import type { ServiceDefinition, ServiceVersions } from './paxos-service.ts';

/** Where a service keeps its full stashes (Ceph's PaxosService full_prefix_name/"full_latest"). */
export const fullLatestKey = 'full_latest';
export const fullKey = (version: number) => `full_${version}`;

export interface StoredVersion {
  version: number;
  value: Uint8Array;
}

/** What the store held of one service at start-up. */
export interface StoredService {
  versions: ServiceVersions;
  /**
   * The newest full stash, if the service keeps them (its encodeFull writes `<prefix>/full_<N>`
   * and names N in `<prefix>/full_latest`, as a number or its decimal text): the state at N.
   */
  full?: StoredVersion;
  /** The incrementals after the full stash (or all those kept), `<prefix>/<N>`, oldest first. */
  incrementals: StoredVersion[];
  /** Every (key, value) of each prefix the `load` hook names, in key order. */
  data: Readonly<Record<string, readonly (readonly [string, Uint8Array])[]>>;
  /** The monitor's map as it starts with it (the store's, or the newer one an interrupted sync stashed). */
  monmap: MonMap;
}

/** How a service whose state lives outside its own history is loaded. */
export interface ServiceLoad {
  /** Prefixes read whole for it (its data: `auth_entity` for the auth database). */
  dataPrefixes?: readonly string[];
  /** What its `init` receives, from what the store held. */
  loaded(stored: StoredService): unknown;
}

/**
 * A ServiceDefinition with the optional start-up hook. (Its own interface, beside the template's:
 * a definition without it is loaded by replaying its history.)
 */
export type LoadableService<State = unknown, Pending = unknown> = ServiceDefinition<State, Pending> & {
  load?: ServiceLoad;
};

/** The data prefixes a service's load hook reads, if any. */
export const dataPrefixesOf = (definition: ServiceDefinition): readonly string[] =>
  (definition as LoadableService).load?.dataPrefixes ?? [];

/** What the service's `init` receives at start-up (see the top of this file). */
export function loadedOf(definition: ServiceDefinition, stored: StoredService): unknown {
  const load = (definition as LoadableService).load;
  if (load) return load.loaded(stored);
  if (stored.versions.lastCommitted === 0 && !stored.full) return null;
  return rebuildState(definition, stored);
}

/** init(null), then updateFromPaxos over the newest full stash and the incrementals after it. */
export function rebuildState(definition: ServiceDefinition, stored: StoredService): unknown {
  const { prefix } = definition;
  const firstCommitted = stored.versions.firstCommitted;
  let state = definition.init(null);
  const replay = (key: string, { version, value }: StoredVersion) => {
    const ops: AppliedOp[] = [{ op: 'put', prefix, key, value }];
    state = definition.updateFromPaxos(state, ops, { firstCommitted, lastCommitted: version });
  };
  if (stored.full) replay(fullKey(stored.full.version), stored.full);
  for (const incremental of stored.incrementals) replay(String(incremental.version), incremental);
  return state;
}
