// The monitor: the root statechart of one paxmon monitor (Ceph's Monitor.cc, seed 004).
//
//   probing → (synchronizing) → electing → inQuorum.leader | inQuorum.peon        (+ shutdown)
//
// Children: `io` (provided by the runtime: TCP + RocksDB, or the simulator's network and store),
// `elector`, and one actor per PaxosService. Paxos is not a child: as Ceph's Paxos object lives
// inside Monitor, its states are regions of `inQuorum.leader` and `inQuorum.peon` and its steps
// are the pure functions of machines/paxos/.
//
// One door in, one door out. Every input — a message, a client command, a forward, a route, a
// timer, an io completion — enters here and goes to the one part that needs it (Ceph's
// Monitor::dispatch_op): election messages to the elector, paxos messages to the Paxos regions,
// commands to the service whose prefix they carry. Every output leaves through the io actor, the
// only one that does anything: one record per step (its writes, the messages to send once they
// are durable, the answers), in the manner of etcd-raft's Ready. Children hand their effects to
// this machine (sendParent), never to the io actor or to each other.
import {
  type ActorRefFrom,
  type AnyActorLogic,
  and,
  assertEvent,
  assign,
  enqueueActions,
  fromCallback,
  raise,
  type SnapshotFrom,
  sendTo,
  setup,
  stateIn,
} from 'xstate';
import type {
  ConnectionTracker,
  EntityName,
  MonForward,
  MonMap,
  MonProbe,
  MonRoute,
  MonSync,
} from '../transport/messages.ts';
import { defaultConfig, type MonConfig } from './config.ts';
import {
  effects,
  type IoClockEvent,
  type IoEffectsEvent,
  type IoWrittenEvent,
  type MessageEvent,
  type Outgoing,
  type StoreAppliedEvent,
  type StoreOp,
} from './effects.ts';
import { type ElectorParentEvent, electorMachine, rankOf } from './elector.ts';
import {
  nothing,
  PREFIX as PAXOS,
  type PaxosContext,
  type PaxosEvent,
  readVersion,
  type Step,
  type Uncommitted,
} from './paxos/context.ts';
import {
  begin,
  collect,
  commitFinish,
  commitStart,
  failProposals,
  handleBegin,
  handleCollect,
  handleCommit,
  handleLast,
  proposalValue,
  takeQueue,
  trimProposal,
} from './paxos/core.ts';
import { extendLease, handleLease } from './paxos/lease.ts';
import {
  isReadable,
  isWriteable,
  leaderLeaseValid,
  paxosStateName,
  paxosStatus,
  peonLeaseValid,
  statusKey,
} from './paxos/status.ts';
import {
  createPaxosService,
  type FastPath,
  forwardTidStride,
  type MonitorView,
  opsConcern,
  type PaxosStamp,
  preprocessNow,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceRequest,
  type ServiceVersions,
} from './paxos-service.ts';
import type { LoadableService } from './service-load.ts';
import { defaultServices } from './services/index.ts';
import type { SessionsBoot } from './sessions.ts';
import { type StatusFacts, scoresUsage, statusCommandOf, statusReply } from './status.ts';
import {
  type SyncProgress,
  syncChunk,
  syncCookie,
  syncFinish,
  syncPrefixesFor,
  syncStageBytesMax,
  syncStart,
} from './sync.ts';
import { type IoSyncServeEvent, syncProviderMachine } from './sync-provider.ts';

export interface MonitorInput {
  name: string;
  monmap: MonMap;
  config: MonConfig;
  hasEverJoined: boolean;
  electionEpoch: number;
  paxos: {
    firstCommitted: number;
    lastCommitted: number;
    acceptedPn: number;
    lastPn: number;
    uncommitted: Uncommitted | null;
  };
  /** What each service loaded from the store at start-up (its versions and init data), by name. */
  services?: Record<string, { versions: ServiceVersions; loaded: unknown; sessions?: SessionsBoot }>;
  /** mon_sync/in_sync was found set at start-up (Monitor::preinit: sync again from scratch). */
  inSync?: boolean;
  /** This monitor's own address when its monmap does not name it yet (it is joining). */
  addr?: string;
  /** The connectivity scores found in the store (monitor/connectivity_scores), for the elector. */
  connectivityScores?: ConnectionTracker | null;
}

/** What the store holds for the monitor (Monitor::preinit): its input without the config, which is the runtime's. */
export type StoredInput = Omit<MonitorInput, 'config'>;

/**
 * Monitor::sync_finish → init_paxos: the synced store is whole, and the monitor asks the io
 * actor (the only one that reads the store) what it now holds. The io actor answers with
 * `monitor.loaded`, read the way a monitor's start reads it (actors/monitor-state.ts).
 */
export interface IoLoadEvent {
  type: 'io.load';
}

/** Why and from whom this monitor would sync (Monitor::handle_probe_reply), kept visible in the state. */
export interface SyncDecision {
  kind: 'full' | 'recent';
  provider: string;
  reason: string;
}

// The context's rarely changed fields are grouped: XState copies the context (Object.assign) at
// every assign, and V8 copies an object of more than 19 properties as a slow dictionary (~5 µs
// instead of ~0.3 µs here, several times per write).

/** Why and how this monitor syncs. */
export interface SyncState {
  /** Why and from whom this monitor syncs (Monitor::handle_probe_reply), shown by mon_status. */
  decision: SyncDecision | null;
  /** The last chunk is being written (the monitor reloads once it is durable). */
  finishing: boolean;
  /** The store holds an interrupted sync (mon_sync/in_sync): sync in full from the first peer. */
  forceFull: boolean;
}

/** What the monitor knows of its peers and of the quorum they form with it. */
export interface Peers {
  /** Monitors whose session reset and that have not spoken since (Ceph's ms_handle_reset). */
  down: string[];
  /** Clock skew of each monitor against this one (the leader's time checks), by name, in ms. */
  clockSkewsMs: Record<string, number>;
  /**
   * Wall-clock ms when this monitor entered its current quorum (quorum_age), as the io actor
   * told it just after; null outside a quorum and until then.
   */
  quorumSinceMs: number | null;
}

export interface MonmapNews {
  /** A committed monmap the leader adopts once its own commit has been answered. */
  pending: MonMap | null;
  /** Why the monitor shut down (e.g. removed from the monmap), for the runtime's exit message. */
  shutdownReason: string;
}

export interface Boot {
  /** What the services loaded at start-up; handed to each service child once. */
  services: Record<string, { versions: ServiceVersions; loaded: unknown; sessions?: SessionsBoot }>;
  /** What the elector loaded at start-up (its connectivity scores); handed to it once. */
  elector: { connectivityScores: ConnectionTracker | null };
}

export interface MonitorContext {
  name: string;
  rank: number;
  monmap: MonMap;
  config: MonConfig;
  hasEverJoined: boolean;
  electionEpoch: number;
  quorum: number[];
  leader: number;
  /** Monitors (by name) heard from while probing that are not in a quorum either. */
  outsideQuorum: string[];
  /** Paxos (machines/paxos/): its versions, proposal numbers, round and lease bookkeeping. */
  paxos: PaxosContext;
  /** The sync in progress (provider, cookie, keys and bytes copied). */
  sync: SyncProgress | null;
  /** What decides and ends a sync (see SyncState). */
  syncState: SyncState;
  /** My address (from the monmap, or the one given to a joining monitor at mkfs). */
  addr: string;
  /** What the monitor knows of its peers (see Peers). */
  peers: Peers;
  /** Why the last bootstrap happened (shown by mon_status and the logs). */
  lastBootstrapReason: string;
  /** Monmap news (see MonmapNews). */
  monmapNews: MonmapNews;
  /** What the children loaded at start-up, handed to each once (see Boot). */
  boot: Boot;
  /** The last committed version applied to the store and handed to the services it concerns. */
  appliedVersion: number;
  /**
   * Services that may be holding requests until Paxos changes (they were last told Paxos while
   * it was not ready for them): they hear of each change (serviceNews). The others hear of
   * Paxos only with the events they get anyway.
   */
  servicesWaiting: string[];
}

export type MonitorEvent =
  | MessageEvent
  | ElectorParentEvent
  | PaxosEvent
  /** A child's effects (the elector's, a service's), for the io actor. */
  | IoEffectsEvent
  | { type: 'monitor.bootstrap'; reason: string }
  | { type: 'monitor.start_election' }
  | { type: 'monitor.sync'; decision: SyncDecision }
  | { type: 'monitor.shutdown' }
  /** A client command, stamped by the runtime with the time it arrived. */
  | { type: 'monitor.command'; request: ServiceRequest }
  /**
   * Client commands and peons' forwards that arrived together (one read of the sockets): each
   * service gets its share in one event rather than one event per request.
   */
  | {
      type: 'monitor.commands';
      requests: ServiceRequest[];
      forwards: (MessageEvent<MonForward> & { receivedAt?: number })[];
    }
  /** Replies to forwarded requests (mon.route) read together: one event per service, not per reply. */
  | { type: 'monitor.routes'; routes: MessageEvent<MonRoute>[] }
  /** The runtime's tick (mon_tick_interval): services' tick(); `now` is the wall clock. */
  | { type: 'monitor.tick'; now: number }
  /** The io actor's time, asked for as a quorum formed (quorum_age). */
  | { type: 'monitor.quorum_time'; now: number }
  /** A provider-side mon.sync (get_cookie_*, get_chunk) for the sync provider. */
  | { type: 'monitor.sync_request'; from: EntityName; msg: MonSync; receivedAt: number }
  /** The io actor served a sync chunk (where the cookie is now, or that it is done). */
  | { type: 'monitor.sync_served'; cookie: number; nextVersion?: number; done: boolean }
  | IoSyncServeEvent
  | IoWrittenEvent
  /** The io actor's answer to io.load: what the synced store holds (Monitor::init_paxos reads it). */
  | { type: 'monitor.loaded'; input: StoredInput }
  /** The io actor: a monitor's session was lost / the monitor spoke again. */
  | { type: 'monitor.peer_reset'; peer: EntityName }
  | { type: 'monitor.peer_alive'; peer: EntityName }
  /** Internal: the leader's session was lost while I am its peon. */
  | { type: 'monitor.leader_lost'; peer: EntityName }
  /** Internal: a quorum member's session was lost while I lead it. */
  | { type: 'monitor.quorum_member_lost'; peer: EntityName }
  /** Internal: take a committed monmap (MonmapMonitor::update_from_paxos → bootstrap). */
  | { type: 'monitor.adopt_monmap'; monmap: MonMap }
  /** `connection scores reset` (Ceph's admin-socket command): the elector forgets its scores. */
  | { type: 'monitor.connection_scores_reset' };

/**
 * A sync message of the sync under way: from its provider and for its cookie (Ceph's
 * handle_sync_chunk drops a chunk whose cookie is not sync_cookie). Anything else is stale: a
 * chunk of an earlier sync from the same provider, delivered after this one restarted, would
 * move lastKey past keys the restart erased and never copied.
 */
function fromProvider(context: MonitorContext, event: MonitorEvent): boolean {
  if (event.type !== 'mon.sync' || context.sync === null || context.syncState.finishing) return false;
  if (event.from !== context.sync.provider) return false;
  const msg = (event as MessageEvent<MonSync>).msg;
  // The cookie reply is the one message taken before a cookie is known; no_cookie may answer
  // the cookie request (cookie 0) or a chunk request (the cookie asked with).
  if (msg.op === 'cookie') return context.sync.cookie === 0;
  if (msg.op === 'no_cookie') return msg.cookie === 0 || msg.cookie === context.sync.cookie;
  return msg.cookie === context.sync.cookie;
}

/** Ranks of the named monitors that are in the map. */
function downRanks(monmap: MonMap, peers: string[]): number[] {
  return monmap.mons.filter((m) => peers.includes(`mon.${m.name}`)).map((m) => m.rank);
}

/** MonMap::min_quorum_size. */
/**
 * Monitor-protocol messages that act on the quorum: taken only from a monitor in the receiver's
 * current monmap (issue 13). A `mon.*` session name can only be had with the `mon.` key
 * (transport/session-crypto.ts), so a name here is one a monitor proved — but a monitor that was
 * removed, or a process that has the key and calls itself mon.zz, is not one of ours. As in
 * Ceph (Elector::dispatch: "discarding election message … not in my monmap"; Paxos and the
 * forward/route of Monitor::dispatch_op need a quorum member). The exceptions: probes and
 * mon.join (a monitor not yet in the map must be able to find the cluster and ask to join), and
 * a sync *request* (`get_*`): a copy of the committed store is what a monitor removed while it
 * was down needs to learn that it was removed. A sync *provider's* answers (cookies, chunks) are
 * taken only from a member.
 */
export const quorumMessageTypes: ReadonlySet<string> = new Set([
  'mon.election',
  'mon.paxos',
  'mon.sync',
  'mon.forward',
  'mon.route',
  'mon.ping',
]);

/** Why a message from monitor `from` is refused under `monmap`, or null (see quorumMessageTypes). */
export function nonMemberRefusal(
  from: string,
  msg: { type: string; op?: unknown },
  monmap: MonMap,
): string | null {
  if (!quorumMessageTypes.has(msg.type) || !from.startsWith('mon.')) return null;
  if (msg.type === 'mon.sync' && typeof msg.op === 'string' && msg.op.startsWith('get_')) return null;
  const name = from.slice('mon.'.length);
  if (monmap.mons.some((m) => m.name === name)) return null;
  return `${msg.type} from ${from}: not in monmap epoch ${monmap.epoch}`;
}

export const minQuorumSize = (monmap: MonMap) => Math.floor(monmap.mons.length / 2) + 1;

function probeMessage(context: MonitorContext, op: MonProbe['op']): MonProbe {
  return {
    type: 'mon.probe',
    op,
    fsid: context.monmap.fsid,
    name: context.name,
    quorum: context.quorum,
    monmap: context.monmap,
    paxosFirstVersion: context.paxos.firstCommitted,
    paxosLastVersion: context.paxos.lastCommitted,
    hasEverJoined: context.hasEverJoined,
  };
}

/** Persist a monmap as the monmap service stores it: the full map at its epoch. */
export function monmapWrites(monmap: MonMap): StoreOp[] {
  return [
    { op: 'put', prefix: 'monmap', key: String(monmap.epoch), value: JSON.stringify(monmap) },
    { op: 'put_number', prefix: 'monmap', key: 'last_committed', value: monmap.epoch },
  ];
}

type ProbeOutcome =
  | { kind: 'ignore' }
  | { kind: 'adopt_monmap'; monmap: MonMap }
  | { kind: 'sync'; decision: SyncDecision }
  | { kind: 'start_election' }
  | { kind: 'join'; to: EntityName; addr?: string }
  | { kind: 'wait'; outsideQuorum: string[] };

/** Monitor::handle_probe_reply, while probing. Pure: the machine acts on the outcome. */
export function handleProbeReply(context: MonitorContext, from: EntityName, msg: MonProbe): ProbeOutcome {
  if (msg.fsid !== context.monmap.fsid) return { kind: 'ignore' };
  // A monitor syncs only from a monitor of its own map (a joining one's map is the cluster's,
  // learnt from a probe reply): a stranger's store is never copied over mine.
  const fromMyMap = rankOf(context.monmap, from) >= 0;
  // A newer monmap from a monitor that has been in a quorum: adopt it and start over.
  if (msg.hasEverJoined && msg.monmap.epoch > context.monmap.epoch) {
    // Ceph adopts any newer map a peer shows and, if it leaves this monitor out, stops. paxmon
    // adopts a probe reply's map only when it names me (or I am a joining monitor, out of my
    // own map already: it learns the cluster's map); a map that leaves me out is neither
    // written nor obeyed — a probe reply is one message, and "removed" must come from the
    // committed history. So I sync that history from the peer (a monitor of my map): if I was
    // removed, the synced store holds the committed monmap and the restart over it stops me.
    const namesMe = msg.monmap.mons.some((m) => m.name === context.name);
    if (namesMe || (context.rank < 0 && !context.hasEverJoined))
      return { kind: 'adopt_monmap', monmap: msg.monmap };
    if (!fromMyMap) return { kind: 'ignore' };
    const full = context.paxos.lastCommitted < msg.paxosFirstVersion && msg.paxosFirstVersion > 1;
    return {
      kind: 'sync',
      decision: {
        kind: full ? 'full' : 'recent',
        provider: from,
        reason: `${from} shows monmap epoch ${msg.monmap.epoch} without me: learn it from the committed history`,
      },
    };
  }
  const sync = probeSync(context, from, msg);
  if (sync) return fromMyMap ? sync : { kind: 'ignore' };
  if (msg.quorum.length > 0) {
    // There is a quorum: if I am in the map, an election pulls me in; otherwise ask to join.
    if (context.rank >= 0) return { kind: 'start_election' };
    const leader = msg.monmap.mons[Math.min(...msg.quorum)];
    if (!leader || !context.addr) return { kind: 'ignore' };
    return { kind: 'join', to: `mon.${leader.name}`, addr: leader.addr };
  }
  if (!fromMyMap) return { kind: 'ignore' }; // not part of my monmap
  const name = from.slice(4);
  const outsideQuorum = context.outsideQuorum.includes(name)
    ? context.outsideQuorum
    : [...context.outsideQuorum, name];
  // Only a monitor of the map stands (a joining one waits to be added).
  if (
    context.rank >= 0 &&
    outsideQuorum.length >= minQuorumSize(context.monmap) &&
    outsideQuorum.includes(context.name)
  ) {
    return { kind: 'start_election' };
  }
  return { kind: 'wait', outsideQuorum };
}

/** Monitor::handle_probe_reply's sync decisions: full, recent, or none. */
function probeSync(context: MonitorContext, from: EntityName, msg: MonProbe): ProbeOutcome | null {
  if (context.syncState.forceFull) {
    return {
      kind: 'sync',
      decision: {
        kind: 'full',
        provider: from,
        reason: 'an interrupted sync (mon_sync/in_sync) must start over',
      },
    };
  }
  if (context.paxos.lastCommitted < msg.paxosFirstVersion && msg.paxosFirstVersion > 1) {
    return {
      kind: 'sync',
      decision: {
        kind: 'full',
        provider: from,
        reason: `my last_committed ${context.paxos.lastCommitted} < peer first_committed ${msg.paxosFirstVersion}`,
      },
    };
  }
  if (context.paxos.lastCommitted + context.config.paxosMaxJoinDrift < msg.paxosLastVersion) {
    return {
      kind: 'sync',
      decision: {
        kind: 'recent',
        provider: from,
        reason: `my last_committed ${context.paxos.lastCommitted} + paxos_max_join_drift ${context.config.paxosMaxJoinDrift} < peer last_committed ${msg.paxosLastVersion}`,
      },
    };
  }
  return null;
}

/** The monitor's view as its services see it (role follows the monitor's state). */
export function monitorView(context: MonitorContext, role: MonitorView['role']): MonitorView {
  return {
    name: context.name,
    rank: context.rank,
    monmap: context.monmap,
    electionEpoch: context.electionEpoch,
    quorum: context.quorum,
    leader: context.leader,
    role,
    clockSkewsMs: context.peers.clockSkewsMs,
  };
}

const serviceId = (name: string) => `service:${name}`;

/** The monitor's role as its services see it. */
export function roleOf(context: Pick<MonitorContext, 'rank' | 'leader' | 'quorum'>): MonitorView['role'] {
  if (context.quorum.length === 0 || context.leader < 0) return 'none';
  return context.leader === context.rank ? 'leader' : 'peon';
}

/** Paxos as a service needs it now (PaxosStamp). */
export function paxosStamp(context: Pick<MonitorContext, 'paxos' | 'appliedVersion'>): PaxosStamp {
  return {
    readable: context.paxos.status.readable,
    writeable: context.paxos.status.writeable,
    lastCommitted: context.paxos.lastCommitted,
    applied: context.appliedVersion,
  };
}

/** Monitor::dispatch_op: the service a command belongs to (by its prefix), if any. */
export function serviceOf(
  services: readonly ServiceDefinition[],
  cmd: string[],
): ServiceDefinition | undefined {
  return services.find((d) => d.handles(cmd));
}

/**
 * The read fast path (Ceph answers preprocess_query in the dispatching thread): the answer to a
 * read, from the service's snapshot and Paxos as the monitor has it now; `update` when
 * preprocess_query found an update (the statechart goes on from there, without running it
 * again); null when the statechart must decide all of it (an unknown command, not readable now).
 * The runtime calls this as a request arrives; the service's own dispatch makes the same
 * decision with the same pure functions (isServiceReadable, preprocess_query).
 */
export function fastRead(
  services: readonly ServiceDefinition[],
  contextOf: (name: string) => ServiceContext | undefined,
  monitor: Pick<MonitorContext, 'paxos' | 'appliedVersion'>,
  request: ServiceRequest,
): FastPath {
  const definition = serviceOf(services, request.cmd);
  const context = definition ? contextOf(definition.name) : undefined;
  if (!definition || !context) return null;
  return preprocessNow(definition, context, request, paxosStamp(monitor));
}

/** What a status answer needs beside the context: the state names and tags of a snapshot. */
export function statusFacts(
  snapshot: { value: unknown; status?: string; hasTag(tag: string): boolean; context: MonitorContext },
  nowMs: number,
): StatusFacts {
  return {
    state: monitorStateName(snapshot),
    paxos:
      snapshot.status === undefined || snapshot.status === 'active'
        ? {
            state: paxosStateName(snapshot),
            readable: isReadable(snapshot),
            writeable: isWriteable(snapshot),
          }
        : null,
    nowMs,
  };
}

/** The Ceph state name of a monitor snapshot: probing, synchronizing, electing, leader, peon, … */
export function monitorStateName(snapshot: { value: unknown }): string {
  const value = snapshot.value;
  if (typeof value === 'string') return value;
  const [top, sub] = Object.entries(value as Record<string, unknown>)[0] ?? ['unknown', undefined];
  if (top === 'inQuorum' && sub && typeof sub === 'object') return Object.keys(sub)[0] ?? top;
  return top;
}

/**
 * Paxos's invariants after every step (TigerBeetle's `defer self.invariants()`): a broken one is
 * a bug, and the monitor stops with the state printed rather than go on from a state Paxos
 * cannot be in.
 */
export function assertPaxosInvariants(before: PaxosContext, after: PaxosContext, step: string): void {
  const broken: string[] = [];
  if (after.lastCommitted < before.lastCommitted) broken.push('last_committed went back');
  if (after.acceptedPn < before.acceptedPn) broken.push('accepted_pn went back');
  if (after.lastPn < before.lastPn) broken.push('last_pn went back');
  if (after.lastCommitted > 0 && after.firstCommitted > after.lastCommitted)
    broken.push('first_committed is beyond last_committed');
  if (after.uncommitted && after.uncommitted.version !== after.lastCommitted + 1)
    broken.push('an uncommitted value is not at last_committed + 1');
  if (after.accepted.some((rank) => !after.quorum.includes(rank)))
    broken.push('an accept counted from outside the quorum');
  if (broken.length === 0) return;
  const show = (c: PaxosContext) =>
    JSON.stringify({
      rank: c.rank,
      electionEpoch: c.electionEpoch,
      quorum: c.quorum,
      firstCommitted: c.firstCommitted,
      lastCommitted: c.lastCommitted,
      acceptedPn: c.acceptedPn,
      lastPn: c.lastPn,
      uncommitted: c.uncommitted ? { version: c.uncommitted.version, pn: c.uncommitted.pn } : null,
      accepted: c.accepted,
    });
  throw new Error(
    `Paxos invariant broken by ${step}: ${broken.join('; ')}; before ${show(before)}; after ${show(after)}`,
  );
}

/** Paxos's state at start-up (Paxos::init), outside any quorum. */
function initialPaxos(input: MonitorInput, rank: number): PaxosContext {
  return {
    rank,
    monmap: input.monmap,
    electionEpoch: 0,
    quorum: [],
    leader: -1,
    firstCommitted: input.paxos.firstCommitted,
    lastCommitted: input.paxos.lastCommitted,
    acceptedPn: input.paxos.acceptedPn,
    lastPn: input.paxos.lastPn,
    uncommitted: input.paxos.uncommitted,
    timeouts: input.config,
    collectAbovePn: 0,
    numLast: 0,
    recovered: null,
    accepted: [],
    inFlight: null,
    queue: [],
    ackedLease: [],
    trimmingTo: 0,
    leaseSeq: 0,
    ackedSeq: 0,
    promiseSeq: 0,
    promiseActive: false,
    promiseEpoch: 0,
    deferredCollect: null,
    collectDeferred: false,
    status: {
      firstCommitted: input.paxos.firstCommitted,
      lastCommitted: input.paxos.lastCommitted,
      readable: false,
      writeable: false,
    },
    reportPending: false,
    renewDue: false,
    peonTokens: {},
    leaseTokenSeq: 0,
    leaseTokensEnded: 0,
    heldToken: 0,
    leaseEchoes: [],
    collected: { pn: 0, lastCommitted: 0 },
  };
}

/** What a step's actions need of XState's `enqueue` (enqueueActions). */
interface Enqueue {
  assign(
    assigner: ((args: { context: MonitorContext }) => Partial<MonitorContext>) | Partial<MonitorContext>,
  ): void;
  raise(event: MonitorEvent, options?: { delay?: number }): void;
  sendTo(
    to: 'io',
    event: IoEffectsEvent | { type: 'io.refused'; from: EntityName; message: string; reason: string },
  ): void;
}

/**
 * MonmapMonitor::update_from_paxos: a newer monmap committed. A peon adopts it at once; the
 * leader first lets its round finish (paxos.committed), then adopts it.
 */
function noticeMonmap(enqueue: Enqueue, context: MonitorContext, ops: StoreAppliedEvent['ops']): void {
  for (const op of ops) {
    if (op.op !== 'put' || op.prefix !== 'monmap' || !/^[0-9]+$/.test(op.key)) continue;
    if (Number(op.key) <= context.monmap.epoch) continue;
    let monmap: MonMap;
    try {
      monmap = JSON.parse(new TextDecoder().decode(op.value)) as MonMap;
    } catch {
      continue;
    }
    if (context.leader === context.rank && context.rank >= 0)
      enqueue.assign({ monmapNews: { ...context.monmapNews, pending: monmap } });
    else enqueue.raise({ type: 'monitor.adopt_monmap', monmap });
  }
}

/** One Paxos step: its context changes, its record for the io actor, its events; then the invariants. */
function runStep(enqueue: Enqueue, context: MonitorContext, step: Step): void {
  const before = context.paxos;
  const after: PaxosContext = step.context ? { ...before, ...step.context } : before;
  assertPaxosInvariants(before, after, step.notify ?? step.raise?.type ?? 'a step');
  if (step.context) enqueue.assign({ paxos: after });
  if (step.refused) enqueue.sendTo('io', { type: 'io.refused', ...step.refused });
  if (step.writes?.length || step.messages?.length || step.notify || step.replies?.length) {
    const io: IoEffectsEvent = effects(step.writes ?? [], step.messages ?? [], step.notify, {
      ...(step.durability ? { durability: step.durability } : {}),
      ...(step.sendBeforeDurable ? { sendBeforeDurable: true } : {}),
    });
    if (step.replies?.length) io.replies = step.replies;
    enqueue.sendTo('io', io);
  }
  // The step's own event first, so that a status report runs after it (see reporting).
  if (step.raise) enqueue.raise(step.raise);
  for (const event of step.outcomes ?? []) enqueue.raise(event);
  if (step.report) reporting(enqueue, { ...context, paxos: after });
  for (const { event, delayMs } of step.later ?? []) enqueue.raise(event, { delay: delayMs });
}

/** enqueue.assign of Paxos changes, merged into the context as it stands when it runs. */
function assignPaxos(enqueue: Enqueue, changes: Partial<PaxosContext>): void {
  enqueue.assign(({ context }) => ({ paxos: { ...context.paxos, ...changes } }));
}

/**
 * Ask for a status report after this step: `paxos.report` is raised and runs after the other
 * events of the step, and tells the services waiting for Paxos only if the status changed. A
 * commit on a peon changes the versions, the round and the lease in one macrostep: one report.
 */
function reporting(enqueue: Enqueue, context: MonitorContext): void {
  if (context.paxos.reportPending) return;
  assignPaxos(enqueue, { reportPending: true });
  enqueue.raise({ type: 'paxos.report' });
}

/**
 * A service told `stamp` can act on everything it holds: readable with every committed version
 * applied, and (on the leader) writeable. One that is not may hold requests until Paxos changes.
 */
function readyFor(stamp: PaxosStamp, role: MonitorView['role']): boolean {
  if (role === 'none') return false;
  const readable = stamp.readable && (stamp.applied ?? 0) >= stamp.lastCommitted;
  return readable && (role !== 'leader' || stamp.writeable);
}

/**
 * The waiting list after telling `told` the stamp: a service not ready for it may hold
 * requests until Paxos changes again.
 */
function noteTold(context: MonitorContext, told: string[], stamp: PaxosStamp): string[] {
  if (readyFor(stamp, roleOf(context))) {
    const left = context.servicesWaiting.filter((name) => !told.includes(name));
    return left.length === context.servicesWaiting.length ? context.servicesWaiting : left;
  }
  const added = told.filter((name) => !context.servicesWaiting.includes(name));
  return added.length ? [...context.servicesWaiting, ...added] : context.servicesWaiting;
}

/**
 * The monitor statechart with a given set of PaxosServices (Ceph's Monitor with its
 * paxos_service[] array). `monitorMachine` is the one with paxmon's services.
 */
/** Monitor::handle_forward: the request a peon forwarded, answered back through that peon. */
function forwardedRequest(e: MessageEvent<MonForward> & { receivedAt?: number }): ServiceRequest {
  return {
    client: e.msg.client as EntityName,
    tid: e.msg.clientTid,
    cmd: e.msg.request.cmd,
    receivedAt: e.receivedAt ?? 0,
    via: { peer: e.from, forwardTid: e.msg.tid },
    ...(e.msg.request.deadline !== undefined ? { deadline: e.msg.request.deadline } : {}),
    ...(e.msg.request.inbuf ? { inbuf: e.msg.request.inbuf } : {}),
  };
}

export function createMonitorMachine(services: ServiceDefinition[]) {
  const serviceActors = Object.fromEntries(
    services.map((d) => [serviceId(d.name), createPaxosService(d)]),
  ) as Record<string, AnyActorLogic>;
  if (services.length > forwardTidStride)
    throw new RangeError(`a monitor runs at most ${forwardTidStride} services (${services.length} given)`);
  const serviceFor = (cmd: string[]) => serviceOf(services, cmd);
  const prefixesToSync = syncPrefixesFor(services as readonly LoadableService[]);
  /** A service child's input: what it loaded from the store (context.boot.services) and its settings. */
  const serviceInput = (context: MonitorContext, d: ServiceDefinition, slot: number) => ({
    monitor: monitorView(context, 'none'),
    versions: context.boot.services[d.name]?.versions ?? { firstCommitted: 0, lastCommitted: 0 },
    loaded: context.boot.services[d.name]?.loaded ?? null,
    ...(context.boot.services[d.name]?.sessions ? { sessions: context.boot.services[d.name]?.sessions } : {}),
    forwardSlot: slot,
    proposeIntervalMs: context.config.paxosProposeIntervalMs,
    proposeGatherMs: context.config.paxosProposeGatherMs,
    trimMin: context.config.paxosServiceTrimMin,
    trimMax: context.config.paxosServiceTrimMax,
    answersMax: context.config.monSessionAnswersMax,
    deadlineMaxMs: context.config.monClientDeadlineMaxMs,
    appliedPaxosVersion: context.paxos.lastCommitted,
  });
  /** Start the service children from `context` (see startServices). */
  const spawnServices = (
    enqueue: { spawnChild(src: never, options: never): void },
    context: MonitorContext,
  ) => {
    for (const [slot, d] of services.entries()) {
      const id = serviceId(d.name);
      // Service children are built from the definitions given, so their `src` is not a literal
      // type XState can check here.
      enqueue.spawnChild(id as never, { id, systemId: id, input: serviceInput(context, d, slot) } as never);
    }
  };
  const unknownCommand = (cmd: string[]) =>
    `unknown command '${cmd.join(' ')}' (valid: mon dump|stat|getmap, config-key set|get|rm|exists|ls|dump, log, log last, health, status, quorum_status, mon_status)`;
  return setup({
    types: {
      context: {} as MonitorContext,
      events: {} as MonitorEvent,
      input: {} as MonitorInput,
    },
    actors: {
      ...serviceActors,
      elector: electorMachine,
      syncProvider: syncProviderMachine,
      // The runtime provides the real one (actors/io.ts: TCP + RocksDB, or the simulator's
      // network and store) with monitorMachine.provide({ actors: { io } }).
      io: fromCallback(() => {
        throw new Error('monitorMachine needs an io actor: monitorMachine.provide({ actors: { io } })');
      }),
    },
    delays: {
      tick: ({ context }) => context.config.monTickIntervalMs,
      probeTimeout: ({ context }) => context.config.monProbeTimeoutMs,
      syncTimeout: ({ context }) => context.config.monSyncTimeoutMs,
      acceptTimeout: ({ context }) => context.config.monAcceptTimeoutFactor * context.config.monLeaseMs,
      leaseMs: ({ context }) => context.config.monLeaseMs,
      leaseRenew: ({ context }) => context.config.monLeaseMs * context.config.monLeaseRenewIntervalFactor,
      leaseAckTimeout: ({ context }) => context.config.monLeaseAckTimeoutFactor * context.config.monLeaseMs,
    },
    actions: {
      /** The next tick (mon_tick_interval): the io actor answers it with monitor.tick and the time. */
      scheduleTick: sendTo('io', { type: 'io.clock', reply: 'monitor.tick' } satisfies IoClockEvent, {
        delay: 'tick',
        id: 'monitor.tick',
      }),
      /** A quorum formed: ask the io actor for the time (quorum_age counts from it). */
      quorumFormed: enqueueActions(({ enqueue, context }) => {
        enqueue.assign({ peers: { ...context.peers, quorumSinceMs: null } });
        enqueue.sendTo('io', { type: 'io.clock', reply: 'monitor.quorum_time' } satisfies IoClockEvent);
      }),
      /** Tell every service about the monitor (role, quorum, monmap): PaxosService::election_finished / restart. */
      announce: enqueueActions(({ enqueue, context }, params: { role: MonitorView['role'] }) => {
        const monitor = monitorView(context, params.role);
        const paxos = paxosStamp(context);
        for (const d of services)
          enqueue.sendTo(serviceId(d.name), { type: 'service.monitor', monitor, paxos });
        // The role changes with this announcement (roleOf follows the quorum, set just before).
        const waiting = readyFor(paxos, params.role) ? [] : services.map((d) => d.name);
        enqueue.assign({ servicesWaiting: waiting });
      }),
      /**
       * Paxos moved (status, an applied version, a commit): the services that may be waiting for
       * it hear of it; the others learn it with their next event. A service that has nothing to
       * do with a change does not receive it.
       */
      serviceNews: enqueueActions(({ enqueue, context }, params: { except?: string[] }) => {
        if (context.servicesWaiting.length === 0) return;
        const paxos = paxosStamp(context);
        const told = context.servicesWaiting.filter((name) => !params.except?.includes(name));
        for (const name of told) enqueue.sendTo(serviceId(name), { type: 'paxos.status', ...paxos });
        enqueue.assign({ servicesWaiting: noteTold(context, told, paxos) });
      }),
      /**
       * update_from_paxos: a committed version reaches the services whose prefix it carries
       * (and paxos, when it moves first_committed); `applied` moves for all.
       */
      applied: enqueueActions(({ enqueue, context, event }) => {
        assertEvent(event, 'io.written');
        if (!event.applied?.length) return;
        let appliedVersion = context.appliedVersion;
        let paxos = context.paxos;
        const told = new Set<string>();
        for (const { version, ops } of event.applied) {
          appliedVersion = Math.max(appliedVersion, version);
          // The leader's own round: its services learn in the same event that their proposals
          // committed (C_Committed), so they need no second one.
          const committed =
            event.token === `commit:${version}` && paxos.inFlight ? { committed: paxos.inFlight.ids } : {};
          const stamp = paxosStamp({ paxos, appliedVersion });
          for (const d of services) {
            if (!opsConcern(d.prefix, ops)) continue;
            told.add(d.name);
            enqueue.sendTo(serviceId(d.name), {
              type: 'store.applied',
              version,
              ops,
              paxos: stamp,
              ...committed,
            });
          }
          // Paxos::commit_finish / store_state re-read first_committed: a committed trim moved it.
          const put = ops.find((o) => o.op === 'put' && o.prefix === PAXOS && o.key === 'first_committed');
          if (put?.op === 'put') {
            const firstCommitted = readVersion(put.value);
            const trimmingTo =
              paxos.trimmingTo !== 0 && firstCommitted >= paxos.trimmingTo ? 0 : paxos.trimmingTo;
            paxos = { ...paxos, firstCommitted, trimmingTo };
          }
          noticeMonmap(enqueue, context, ops);
        }
        enqueue.assign({ appliedVersion, paxos });
        if (paxos !== context.paxos) reporting(enqueue, { ...context, paxos });
        if (told.size) {
          const stamp = paxosStamp({ paxos, appliedVersion });
          enqueue.assign({ servicesWaiting: noteTold({ ...context, appliedVersion }, [...told], stamp) });
        }
      }),
      /** Monitor::dispatch_op → the service whose commands these are (or EINVAL). */
      routeCommand: enqueueActions(({ enqueue, context, event, self }) => {
        const requests: ServiceRequest[] = [];
        if (event.type === 'monitor.command') requests.push(event.request);
        else if (event.type === 'mon.forward') {
          requests.push(forwardedRequest(event as MessageEvent<MonForward> & { receivedAt?: number }));
        } else if (event.type === 'monitor.commands') {
          requests.push(...event.requests, ...event.forwards.map(forwardedRequest));
        }
        const unknown: { target: ServiceRequest; reply: { r: number; rs: string; data?: string } }[] = [];
        const byService = new Map<string, ServiceRequest[]>();
        for (const request of requests) {
          // The commands the monitor answers itself (Monitor::handle_command), from its context
          // and its state as it stands; the connectivity scores are the elector's.
          const status = statusCommandOf(request.cmd);
          if (status === 'mon_status' || status === 'quorum_status') {
            unknown.push({
              target: request,
              reply: statusReply(status, context, statusFacts(self.getSnapshot(), request.receivedAt)),
            });
            continue;
          }
          if (status === 'scores_dump') {
            enqueue.sendTo('elector', { type: 'elector.scores_dump', target: request });
            continue;
          }
          if (status === 'scores_reset') {
            enqueue.sendTo('elector', { type: 'elector.scores_reset' });
            unknown.push({ target: request, reply: { r: 0, rs: '', data: '{}' } });
            continue;
          }
          if (status === 'scores_usage') {
            unknown.push({ target: request, reply: { r: -22, rs: scoresUsage } });
            continue;
          }
          const service = serviceFor(request.cmd);
          if (!service) {
            unknown.push({ target: request, reply: { r: -22, rs: unknownCommand(request.cmd) } });
            continue;
          }
          const share = byService.get(service.name) ?? [];
          share.push(request);
          byService.set(service.name, share);
        }
        if (unknown.length) {
          const io: IoEffectsEvent = { ...effects([], []), replies: unknown };
          enqueue.sendTo('io', io);
        }
        const paxos = paxosStamp(context);
        for (const [name, share] of byService) {
          enqueue.sendTo(
            serviceId(name),
            share.length === 1
              ? { type: 'service.request', request: share[0] as ServiceRequest, paxos }
              : { type: 'service.requests', requests: share, paxos },
          );
        }
        if (byService.size)
          enqueue.assign({ servicesWaiting: noteTold(context, [...byService.keys()], paxos) });
      }),
      /** Monitor::sync_start, from the decision taken while probing. */
      syncStart: enqueueActions(({ enqueue, context }) => {
        const decision = context.syncState.decision;
        if (!decision) return;
        const provider = decision.provider as EntityName;
        const addr = context.monmap.mons.find((m) => `mon.${m.name}` === provider)?.addr;
        const start = syncStart(decision.kind, provider, addr, context.paxos.lastCommitted, prefixesToSync);
        enqueue.assign({ sync: start.progress, syncState: { ...context.syncState, finishing: false } });
        // Ceph's sync_start clears the store and resets Paxos. paxmon's full sync builds the
        // copy beside the store in use (machines/sync.ts stagePrefix) and switches at the last
        // chunk: until then this store is whole, its probe replies stay true, and an abandoned
        // sync leaves it as it was.
        enqueue.sendTo('io', effects(start.writes, start.messages));
      }),
      /**
       * The PaxosService children (Ceph's paxos_service[]), one per service, each started from
       * what the store held for it (context.boot.services): at start, and again after a store
       * sync (reload).
       */
      startServices: enqueueActions(({ enqueue, context }) => spawnServices(enqueue, context)),
      /**
       * Monitor::sync_finish → init_paxos → bootstrap, from what the io actor read of the synced
       * store (monitor.loaded). Ceph's init_paxos runs Paxos::init (the versions and proposal
       * numbers, read again) and every PaxosService's init and refresh over the store as the sync
       * left it, in the same Monitor. Here Paxos and the monitor's map are context, set from
       * what was read; the services are actors started from what they loaded, so each is stopped
       * and started again from its loaded state (paxmon's and an app's alike), under the same id
       * and system id. The monitor's own actor, the io actor, the elector (its epoch and scores
       * are not synced: it is told the new monmap) and the sync provider live on, as Ceph's
       * Monitor and Elector do: whoever holds or inspects the actor keeps it.
       *
       * The services are spawned (startServices) rather than invoked in a compound state that a
       * reentering transition would restart: that state would wrap probing … inQuorum, and every
       * state path (stateIn({ inQuorum: … }), the tags' states, status names) would move under it.
       *
       * What Paxos keeps is what a bootstrap keeps: the lease and promise bookkeeping, which
       * lives in memory only (their delayed events are still scheduled, and a promise given
       * holds until it runs out). The requests the old services held (waiting to be readable or
       * writeable, or forwarded to a leader and not answered yet) go to the new ones, as Ceph
       * retries its waiting ops after a bootstrap (C_RetryMessage, resend_routed_requests).
       */
      reload: enqueueActions(({ enqueue, context, event, self }) => {
        assertEvent(event, 'monitor.loaded');
        const input = event.input;
        const children = self.getSnapshot().children as Record<
          string,
          { getSnapshot(): unknown } | undefined
        >;
        const held = new Map<string, ServiceRequest[]>();
        for (const d of services) {
          const old = (children[serviceId(d.name)]?.getSnapshot() as { context?: ServiceContext } | undefined)
            ?.context;
          const requests = old
            ? [...old.waitingForReadable, ...old.waitingForWriteable, ...old.routed.map((r) => r.request)]
            : [];
          if (requests.length) held.set(d.name, requests);
          enqueue.stopChild(serviceId(d.name));
        }
        const rank = input.monmap.mons.findIndex((m) => m.name === context.name);
        const stored = input.paxos;
        const paxos: PaxosContext = {
          ...context.paxos,
          rank,
          monmap: input.monmap,
          firstCommitted: stored.firstCommitted,
          lastCommitted: stored.lastCommitted,
          acceptedPn: stored.acceptedPn,
          lastPn: stored.lastPn,
          uncommitted: stored.uncommitted,
          status: {
            firstCommitted: stored.firstCommitted,
            lastCommitted: stored.lastCommitted,
            readable: false,
            writeable: false,
          },
        };
        const next: MonitorContext = {
          ...context,
          rank,
          monmap: input.monmap,
          addr: input.monmap.mons.find((m) => m.name === context.name)?.addr ?? input.addr ?? context.addr,
          hasEverJoined: context.hasEverJoined || input.hasEverJoined,
          paxos,
          appliedVersion: stored.lastCommitted,
          boot: { ...context.boot, services: input.services ?? {} },
          servicesWaiting: services.map((d) => d.name),
          sync: null,
          syncState: { decision: null, finishing: false, forceFull: input.inSync ?? false },
          monmapNews: { ...context.monmapNews, pending: null },
          lastBootstrapReason: `store synced from ${context.sync?.provider ?? 'a peer'}`,
        };
        enqueue.assign(next);
        enqueue.sendTo('elector', { type: 'elector.monmap', monmap: next.monmap, rank });
        spawnServices(enqueue, next);
        const stamp = paxosStamp(next);
        for (const [name, requests] of held)
          enqueue.sendTo(serviceId(name), { type: 'service.requests', requests, paxos: stamp });
      }),
      /** Monitor::win_election / lose_election: remember that I have been in a quorum (monitor/joined). */
      joined: enqueueActions(({ enqueue, context }) => {
        if (context.hasEverJoined) return;
        enqueue.assign({ hasEverJoined: true });
        enqueue.sendTo('elector', { type: 'elector.joined' });
        enqueue.sendTo('io', effects([{ op: 'put_number', prefix: 'monitor', key: 'joined', value: 1 }], []));
      }),
      io: sendTo('io', (_, params: IoEffectsEvent) => params),
      // ---- Paxos (machines/paxos/): the steps' results become context, one io record, events.
      /** One Paxos step: its context changes, its record for the io actor, its events; then the invariants. */
      paxosStep: enqueueActions(({ enqueue, context }, step: Step) => runStep(enqueue, context, step)),
      /** A Paxos timeout Ceph answers with mon->bootstrap(). */
      paxosBootstrap: raise((_, params: { reason: string }) => ({
        type: 'paxos.bootstrap' as const,
        reason: params.reason,
      })),
      /** The round or the lease moved: report the status once the step is over. */
      paxosReport: enqueueActions(({ enqueue, context }) => reporting(enqueue, context)),
      /**
       * Paxos::restart (leaving the quorum): what was proposed is answered EAGAIN and its
       * services told; the round's bookkeeping is forgotten.
       */
      paxosRestart: enqueueActions(({ enqueue, context }, params: { reason: string }) => {
        runStep(enqueue, context, failProposals(context.paxos, params.reason));
        assignPaxos(enqueue, {
          queue: [],
          inFlight: null,
          accepted: [],
          ackedLease: [],
          numLast: 0,
          recovered: null,
        });
        reporting(enqueue, context);
      }),
      /** Monitor::win_election → Paxos::leader_init. */
      paxosLeaderInit: assign(({ context }) => ({
        paxos: {
          ...context.paxos,
          rank: context.rank,
          monmap: context.monmap,
          electionEpoch: context.electionEpoch,
          quorum: context.quorum,
          leader: context.rank,
          collectAbovePn: 0,
          renewDue: true,
          // Only leases of this leadership can be confirmed (acked by this quorum).
          ackedSeq: context.paxos.leaseSeq,
        },
      })),
      /** Monitor::lose_election → Paxos::peon_init. */
      paxosPeonInit: assign(({ context }) => ({
        paxos: {
          ...context.paxos,
          rank: context.rank,
          monmap: context.monmap,
          electionEpoch: context.electionEpoch,
          quorum: context.quorum,
          leader: context.leader,
          // Leases of another leadership confirm nothing here.
          leaseEchoes: [],
          collected: { pn: 0, lastCommitted: 0 },
        },
      })),
      /**
       * PaxosService::propose_pending → Paxos::trigger_propose: the pending change's ops, encoded
       * here (machines/transaction.ts), queued with the answers owed once it commits.
       */
      enqueueProposal: enqueueActions(({ enqueue, context, event }) => {
        assertEvent(event, 'paxos.propose');
        const proposal = { id: event.id, value: proposalValue(event.ops), replies: event.replies };
        assignPaxos(enqueue, { queue: [...context.paxos.queue, proposal] });
      }),
      /** Paxos::finish_round → trim when due, as a proposal of its own (queued before the round starts). */
      maybeTrim: enqueueActions(({ enqueue, context }) => {
        if (context.paxos.queue.length > 0) return;
        const trim = trimProposal(context.paxos);
        if (!trim) return;
        const proposal = { id: `paxos:trim:${trim.trimTo}`, value: proposalValue(trim.ops), replies: [] };
        assignPaxos(enqueue, { trimmingTo: trim.trimTo, queue: [proposal] });
      }),
      // Paxos::begin counts the leader's own accept; paxmon counts it once its begin write is durable.
      countSelfAccept: enqueueActions(({ context: { paxos }, event, enqueue }) => {
        assertEvent(event, 'paxos.written');
        if (event.token !== `begin:${paxos.lastCommitted + 1}`) return;
        const accepted = paxos.accepted.includes(paxos.rank)
          ? paxos.accepted
          : [...paxos.accepted, paxos.rank];
        assignPaxos(enqueue, { accepted });
        if (paxos.quorum.every((r) => accepted.includes(r))) enqueue.raise({ type: 'paxos.commit_start' });
      }),
      // Paxos::handle_accept: commit only when every quorum member accepted, so that any readable
      // peon is up to date (DESIGN.md §2).
      handleAccept: enqueueActions(({ context: { paxos }, event, enqueue }) => {
        assertEvent(event, 'mon.paxos');
        if (event.msg.op !== 'accept') return;
        if (event.msg.pn !== paxos.acceptedPn || event.msg.lastCommitted !== paxos.lastCommitted) return;
        const from = rankOf(paxos.monmap, event.from);
        const accepted = paxos.accepted.includes(from) ? paxos.accepted : [...paxos.accepted, from];
        assignPaxos(enqueue, { accepted });
        if (paxos.quorum.every((r) => accepted.includes(r))) enqueue.raise({ type: 'paxos.commit_start' });
      }),
      /** Leader: a peon's newest lease token, echoed in the next lease to it. */
      notePeonToken: enqueueActions(({ context: { paxos }, event, enqueue }) => {
        assertEvent(event, 'mon.paxos');
        const peonTokens = {
          ...paxos.peonTokens,
          [rankOf(paxos.monmap, event.from)]: event.msg.leaseToken ?? 0,
        };
        assignPaxos(enqueue, { peonTokens });
      }),
      /** Leader: a lease ack of the lease in force; every peon's makes the lease valid. */
      handleLeaseAck: enqueueActions(({ context: { paxos }, event, enqueue }) => {
        assertEvent(event, 'mon.paxos');
        const from = rankOf(paxos.monmap, event.from);
        const peonTokens = { ...paxos.peonTokens, [from]: event.msg.leaseToken ?? 0 };
        assignPaxos(enqueue, { peonTokens });
        // Only acks of the lease in force count (an old ack says nothing about it).
        if (event.msg.leaseSeq !== undefined && event.msg.leaseSeq !== paxos.leaseSeq) return;
        const ackedLease = paxos.ackedLease.includes(from) ? paxos.ackedLease : [...paxos.ackedLease, from];
        assignPaxos(enqueue, { ackedLease });
        if (paxos.quorum.every((r) => ackedLease.includes(r))) {
          assignPaxos(enqueue, { ackedSeq: paxos.leaseSeq });
          enqueue.raise({ type: 'paxos.lease_all_acked' });
        }
      }),
      /**
       * A peon's Paxos::dispatch: one switch on the message, one handler each. Only the leader of
       * this election epoch is heard (guard fromLeader).
       */
      peonMessage: enqueueActions(({ context, event, enqueue }) => {
        assertEvent(event, 'mon.paxos');
        const { paxos } = context;
        const msg = event.msg;
        switch (msg.op) {
          case 'collect':
            runStep(enqueue, context, handleCollect(paxos, msg, event.from));
            return;
          case 'begin':
            runStep(enqueue, context, handleBegin(paxos, msg));
            return;
          case 'commit': {
            const stored = handleCommit(paxos, msg, event.from);
            // Nothing accepted beyond the new last_committed: no commit can happen without me,
            // so a lease still held serves reads again.
            const committed =
              stored === nothing || stored.refused || stored.context?.uncommitted
                ? stored
                : { ...stored, raise: { type: 'paxos.peon_committed' } as const };
            runStep(enqueue, context, committed);
            return;
          }
          case 'lease':
            runStep(enqueue, context, handleLease(paxos, msg));
            return;
          default:
            return; // last, accept, lease_ack are the leader's
        }
      }),
      /** Monitor::_reset: forget the quorum; the elector restarts (Paxos did, leaving the quorum). */
      reset: enqueueActions(({ enqueue, context }) => {
        enqueue.assign({
          quorum: [],
          leader: -1,
          outsideQuorum: [context.name],
          sync: null,
          syncState: { ...context.syncState, finishing: false },
        });
        enqueue.sendTo('elector', { type: 'elector.reset' });
      }),
      /** Monitor::bootstrap: probe every other rank (a one-monitor map wins at once instead). */
      probeAll: enqueueActions(({ enqueue, context }) => {
        // A monitor not (yet) in its own monmap still probes the ones it knows: it is joining.
        // Monitor::bootstrap: only the one monitor of a one-monitor map wins alone (monmap->size() == 1
        // && rank == 0); a joining monitor whose map names a single peer must probe it instead.
        if (context.monmap.mons.length === 1 && context.rank === 0) {
          enqueue.raise({ type: 'monitor.start_election' });
          return;
        }
        const messages: Outgoing[] = context.monmap.mons
          .filter((m) => m.rank !== context.rank)
          .map((m) => ({
            to: `mon.${m.name}` as EntityName,
            addr: m.addr,
            msg: probeMessage(context, 'probe'),
          }));
        enqueue.sendTo('io', effects([], messages));
      }),
      /** Monitor::handle_probe_probe: answer with what I know, in any state. */
      replyProbe: enqueueActions(({ enqueue, context, event }) => {
        if (event.type !== 'mon.probe' || event.msg.op !== 'probe') return;
        if (event.msg.fsid !== context.monmap.fsid) return;
        const mon = context.monmap.mons.find((m) => m.name === event.msg.name);
        const reply: Outgoing = { to: event.from, msg: probeMessage(context, 'reply') };
        if (mon) reply.addr = mon.addr;
        enqueue.sendTo('io', effects([], [reply]));
      }),
    },
    guards: {
      /** The commit write of the round in flight is applied (writing / writing_previous). */
      commitApplied: ({ context: { paxos }, event }) =>
        event.type === 'paxos.written' && event.token === `commit:${paxos.lastCommitted + 1}`,
      fromQuorum: ({ context: { paxos }, event }) => {
        if (event.type !== 'mon.paxos') return false;
        // Monitor::dispatch_op: paxos messages from another election epoch are discarded.
        if (event.msg.electionEpoch !== paxos.electionEpoch) return false;
        const from = rankOf(paxos.monmap, event.from);
        return from >= 0 && paxos.quorum.includes(from);
      },
      leaseAckFromQuorum: and([
        'fromQuorum',
        ({ event }) => event.type === 'mon.paxos' && event.msg.op === 'lease_ack',
      ]),
      lastFromQuorum: and([
        'fromQuorum',
        ({ event }) => event.type === 'mon.paxos' && event.msg.op === 'last',
      ]),
      fromLeader: ({ context: { paxos }, event }) =>
        event.type === 'mon.paxos' &&
        event.msg.electionEpoch === paxos.electionEpoch &&
        rankOf(paxos.monmap, event.from) === paxos.leader,
      // Monitor::handle_probe_probe: a peer that trimmed beyond me sends me back to probing (and to
      // a sync) — only a monitor of my map, or any message could cost a quorum its member.
      probeFromBeyondMe: ({ context, event }) =>
        event.type === 'mon.probe' &&
        event.msg.op === 'probe' &&
        event.msg.paxosFirstVersion > context.paxos.lastCommitted + 1 &&
        event.msg.fsid === context.monmap.fsid &&
        rankOf(context.monmap, event.from) >= 0,
    },
  }).createMachine({
    id: 'monitor',
    context: ({ input }) => ({
      name: input.name,
      rank: input.monmap.mons.findIndex((m) => m.name === input.name),
      paxos: initialPaxos(
        input,
        input.monmap.mons.findIndex((m) => m.name === input.name),
      ),
      monmap: input.monmap,
      config: input.config,
      hasEverJoined: input.hasEverJoined,
      electionEpoch: input.electionEpoch,
      quorum: [],
      leader: -1,
      outsideQuorum: [],
      lastBootstrapReason: 'startup',
      boot: {
        services: input.services ?? {},
        elector: { connectivityScores: input.connectivityScores ?? null },
      },
      monmapNews: { pending: null, shutdownReason: '' },
      sync: null,
      syncState: { decision: null, finishing: false, forceFull: input.inSync ?? false },
      appliedVersion: input.paxos.lastCommitted,
      servicesWaiting: services.map((d) => d.name),
      addr: input.monmap.mons.find((m) => m.name === input.name)?.addr ?? input.addr ?? '',
      peers: { down: [], clockSkewsMs: {}, quorumSinceMs: null },
    }),
    invoke: [
      { id: 'io', systemId: 'io', src: 'io' },
      {
        id: 'elector',
        systemId: 'elector',
        src: 'elector',
        input: ({ context }) => ({
          rank: context.rank,
          monmap: context.monmap,
          persistedEpoch: context.electionEpoch,
          hasEverJoined: context.hasEverJoined,
          electionTimeoutMs: context.config.monElectionTimeoutMs,
          deferExtraMs: context.config.monElectionDeferExtraMs,
          connectivityScores: context.boot.elector.connectivityScores,
          tracking: {
            pingTimeoutMs: context.config.monElectorPingTimeoutMs,
            pingDivisor: context.config.monElectorPingDivisor,
            halfLifeS: context.config.monConTrackerScoreHalflifeS,
            persistInterval: context.config.monConTrackerPersistInterval,
            ignoreProposeMargin: context.config.monElectorIgnoreProposeMargin,
          },
        }),
      },
      {
        id: 'syncProvider',
        src: 'syncProvider',
        input: ({ context }) => ({
          prefixes: prefixesToSync,
          payloadBytesMax: context.config.monSyncMaxPayloadSizeBytes,
          payloadKeysMax: context.config.monSyncMaxPayloadKeys,
          timeoutMs: context.config.monSyncTimeoutMs,
        }),
      },
    ],
    // Monitor::tick every mon_tick_interval, on XState's clock (the simulator's in the simulator):
    // the io actor answers with the wall-clock time (monitor.tick), and each tick schedules the
    // next. The services start here (startServices), beside the children invoked above.
    entry: ['scheduleTick', 'startServices'],
    initial: 'probing',
    // Root transitions never use `reenter: true`: that would re-enter the root and restart its
    // children (elector, paxos, io), losing their state. A root transition to '.probing' already
    // exits and re-enters probing (Monitor::bootstrap from any state).
    on: {
      'elector.epoch': { actions: assign(({ event }) => ({ electionEpoch: event.epoch })) },
      // The io actor's report: what a record wrote (update_from_paxos for each committed version
      // it applied, then the token a step asked to hear of).
      'io.written': {
        actions: [
          'applied',
          { type: 'serviceNews', params: {} },
          enqueueActions(({ enqueue, event }) => {
            assertEvent(event, 'io.written');
            if (event.token) enqueue.raise({ type: 'paxos.written', token: event.token });
          }),
        ],
      },
      // A child's effects (a service's answers, reads and forwards; the elector's messages): the
      // io actor is the one that does them.
      'io.effects': { actions: sendTo('io', ({ event }) => event) },
      'io.sync_serve': { actions: sendTo('io', ({ event }) => event) },
      // Monitor::handle_sync_get_cookie / handle_sync_get_chunk: the provider decides, with what
      // the monitor knows — a monitor that is itself syncing (or holds an interrupted sync) has
      // no whole store to give.
      'monitor.sync_request': {
        actions: sendTo('syncProvider', ({ context, event, self }) => ({
          type: 'sync.request' as const,
          from: event.from,
          msg: event.msg,
          nowMs: event.receivedAt,
          canProvide:
            !self.getSnapshot().matches('synchronizing') &&
            !self.getSnapshot().matches('reloading') &&
            !context.syncState.forceFull,
          firstCommitted: context.paxos.firstCommitted,
        })),
      },
      'monitor.sync_served': {
        actions: sendTo('syncProvider', ({ event }) => ({
          type: 'sync.served' as const,
          cookie: event.cookie,
          done: event.done,
          ...(event.nextVersion !== undefined ? { nextVersion: event.nextVersion } : {}),
        })),
      },
      'paxos.committed': {
        // MonmapMonitor: the leader adopts a monmap it committed once the round is over.
        actions: enqueueActions(({ enqueue, context }) => {
          if (context.monmapNews.pending)
            enqueue.raise({ type: 'monitor.adopt_monmap', monmap: context.monmapNews.pending });
        }),
      },
      // Paxos::finish_round's status: the services that may be waiting for Paxos hear of a change.
      'paxos.report': {
        actions: enqueueActions(({ enqueue, context, check }) => {
          const status = paxosStatus(context.paxos, {
            readable: check(stateIn(leaderLeaseValid)) || check(stateIn(peonLeaseValid)),
            writeable: check(stateIn(leaderLeaseValid)),
          });
          const changed = statusKey(status) !== statusKey(context.paxos.status);
          assignPaxos(enqueue, changed ? { reportPending: false, status } : { reportPending: false });
          if (changed) enqueue({ type: 'serviceNews', params: {} });
        }),
      },
      // Outside a quorum nothing is proposed; a service asking now is told so at once.
      'paxos.propose': {
        actions: enqueueActions(({ enqueue, event }) => {
          assertEvent(event, 'paxos.propose');
          enqueue({
            type: 'paxosStep',
            params: {
              replies: event.replies.map((owed) => ({
                target: owed.target,
                reply: { r: -11, rs: 'update not committed (not in quorum); retry' },
              })),
              outcomes: [{ type: 'paxos.aborted', ids: [event.id], reason: 'not in quorum' }],
            },
          });
        }),
      },
      'paxos.fail': { actions: raise(({ event }) => ({ type: 'paxos.bootstrap', reason: event.reason })) },
      // The leader's lease ends mon_lease after it was sent, unless a newer one was acked since.
      'paxos.lease_deadline': {
        guard: ({ context, event }) => event.seq === context.paxos.ackedSeq,
        actions: raise({ type: 'paxos.lease_expired' }),
      },
      'paxos.lease_window_end': {
        actions: enqueueActions(({ enqueue, context: { paxos }, event }) => {
          assignPaxos(enqueue, { leaseTokensEnded: Math.max(paxos.leaseTokensEnded, event.token) });
          if (event.token === paxos.heldToken) enqueue.raise({ type: 'paxos.held_lease_ended' });
        }),
      },
      'paxos.promise_expired': {
        guard: ({ context, event }) => event.seq === context.paxos.promiseSeq,
        actions: enqueueActions(({ enqueue, context: { paxos } }) => {
          assignPaxos(enqueue, { promiseActive: false, deferredCollect: null, collectDeferred: false });
          if (paxos.deferredCollect) {
            enqueue.raise({
              type: 'mon.paxos',
              from: paxos.deferredCollect.from,
              msg: paxos.deferredCollect.msg,
            });
          }
          if (paxos.collectDeferred) enqueue.raise({ type: 'paxos.collect_again', abovePn: 0 });
        }),
      },
      'monitor.adopt_monmap': [
        {
          // A monitor that has been in a quorum and is no longer in the map was removed: it stops
          // (Ceph's Monitor exits: "removed from monmap, suicide").
          guard: ({ context, event }) =>
            context.hasEverJoined && !event.monmap.mons.some((m) => m.name === context.name),
          target: '.shutdown',
          actions: assign(({ event }) => ({
            monmap: event.monmap,
            rank: -1,
            monmapNews: {
              pending: null,
              shutdownReason: `removed from the monmap (epoch ${event.monmap.epoch})`,
            },
          })),
        },
        {
          target: '.probing',
          actions: [
            assign(({ context, event }) => ({
              monmap: event.monmap,
              rank: event.monmap.mons.findIndex((m) => m.name === context.name),
              addr: event.monmap.mons.find((m) => m.name === context.name)?.addr ?? context.addr,
              monmapNews: { ...context.monmapNews, pending: null },
              lastBootstrapReason: `monmap epoch ${event.monmap.epoch}`,
            })),
            enqueueActions(({ enqueue, context }) => {
              enqueue.sendTo('elector', {
                type: 'elector.monmap',
                monmap: context.monmap,
                rank: context.rank,
              });
              assignPaxos(enqueue, { monmap: context.monmap, rank: context.rank });
            }),
          ],
        },
      ],
      // MMonJoin: a new monitor asks to be added (Monitor::handle_join → MonmapMonitor::prepare_join).
      'mon.join': {
        actions: enqueueActions(({ enqueue, event }) => {
          const e = event as MessageEvent<import('../transport/messages.ts').MonJoin> & {
            receivedAt?: number;
          };
          enqueue.raise({
            type: 'monitor.command',
            request: {
              client: e.from,
              tid: 0,
              cmd: ['mon', 'add', e.msg.name, e.msg.addr],
              receivedAt: e.receivedAt ?? 0,
            },
          });
        }),
      },
      // The services whose proposals were abandoned propose again (their clients were answered).
      'paxos.aborted': {
        actions: enqueueActions(({ enqueue, event }) => {
          for (const d of services)
            if (event.ids.some((id) => id.startsWith(`${d.name}:`))) enqueue.sendTo(serviceId(d.name), event);
        }),
      },
      // Monitor::handle_route: the reply goes to the service that forwarded the request (its
      // slot is in the tid).
      'monitor.routes': {
        actions: enqueueActions(({ enqueue, context, event }) => {
          if (event.type !== 'monitor.routes') return;
          const bySlot = new Map<number, MonRoute[]>();
          for (const { msg } of event.routes) {
            const slot = msg.tid % forwardTidStride;
            const share = bySlot.get(slot) ?? [];
            share.push(msg);
            bySlot.set(slot, share);
          }
          for (const [slot, routes] of bySlot) {
            const service = services[slot];
            if (service)
              enqueue.sendTo(serviceId(service.name), {
                type: 'service.routes',
                routes,
                paxos: paxosStamp(context),
              });
          }
        }),
      },
      'monitor.command': { actions: 'routeCommand' },
      'monitor.commands': { actions: 'routeCommand' },
      'mon.forward': { actions: 'routeCommand' },
      // mon_tick_interval: the services' tick, and the leader's time checks; then the next tick.
      'monitor.tick': {
        actions: enqueueActions(({ enqueue, context, event, check }) => {
          enqueue('scheduleTick');
          // Monitor::timecheck_start: the leader pings every other quorum member with its clock;
          // outside the leadership the skews it measured mean nothing.
          let clockSkewsMs = context.peers.clockSkewsMs;
          if (check(stateIn({ inQuorum: 'leader' }))) {
            const pings: Outgoing[] = [];
            for (const rank of context.quorum) {
              const mon = context.monmap.mons[rank];
              if (!mon || rank === context.rank) continue;
              pings.push({
                to: `mon.${mon.name}`,
                addr: mon.addr,
                msg: { type: 'mon.ping', op: 'ping', stamp: event.now },
              });
            }
            if (pings.length) enqueue.sendTo('io', effects([], pings));
          } else if (Object.keys(clockSkewsMs).length) {
            clockSkewsMs = {};
            enqueue.assign({ peers: { ...context.peers, clockSkewsMs } });
          }
          const paxos = paxosStamp(context);
          for (const d of services)
            enqueue.sendTo(serviceId(d.name), { type: 'service.tick', now: event.now, paxos, clockSkewsMs });
          enqueue.assign({
            servicesWaiting: noteTold(
              context,
              services.map((d) => d.name),
              paxos,
            ),
          });
        }),
      },

      // A lost session (kill -9 of a peer on this host resets at once): the elector need not wait
      // for that monitor's ack, and a peon need not wait 2 × mon_lease to notice its leader is gone.
      'monitor.peer_reset': {
        actions: enqueueActions(({ enqueue, context, event }) => {
          const downPeers = context.peers.down.includes(event.peer)
            ? context.peers.down
            : [...context.peers.down, event.peer];
          enqueue.assign({ peers: { ...context.peers, down: downPeers } });
          enqueue.sendTo('elector', { type: 'elector.down', ranks: downRanks(context.monmap, downPeers) });
          const leader = context.monmap.mons[context.leader];
          if (leader && context.leader !== context.rank && event.peer === `mon.${leader.name}`) {
            enqueue.raise({ type: 'monitor.leader_lost', peer: event.peer });
          }
          // A leader whose quorum member's session reset (kill -9 of a process, a host gone)
          // calls an election now: Ceph waits out the lease-ack timeout (2 × mon_lease), and every
          // write waits with it, since a commit needs the whole quorum. The elector, told the
          // member is down, does not wait for its ack (issue 16: writes stalled ~3 s per lost peon).
          const rank = rankOf(context.monmap, event.peer);
          if (context.leader === context.rank && context.rank >= 0 && context.quorum.includes(rank))
            enqueue.raise({ type: 'monitor.quorum_member_lost', peer: event.peer });
        }),
      },
      'monitor.peer_alive': {
        actions: enqueueActions(({ enqueue, context, event }) => {
          const downPeers = context.peers.down.filter((p) => p !== event.peer);
          enqueue.assign({ peers: { ...context.peers, down: downPeers } });
          enqueue.sendTo('elector', { type: 'elector.down', ranks: downRanks(context.monmap, downPeers) });
        }),
      },
      // MMonPing: with scores it is the elector's (connectivity), in every state — Monitor::dispatch_op
      // hands it to the Elector whatever the monitor is doing; without, a time check.
      'mon.ping': {
        actions: enqueueActions(({ enqueue, context, event, check }) => {
          assertEvent(event, 'mon.ping');
          const msg = event.msg;
          if (msg.scoring) {
            enqueue.sendTo('elector', event);
            return;
          }
          // When the io actor received it, on this monitor's clock (the runtime's, not the machine's).
          const receivedAt = (event as { receivedAt?: number }).receivedAt ?? 0;
          if (msg.op === 'ping') {
            // Monitor::handle_timecheck_peon: answer with my clock.
            const addr = context.monmap.mons.find((m) => `mon.${m.name}` === event.from)?.addr;
            const reply: Outgoing = {
              to: event.from,
              msg: { type: 'mon.ping', op: 'reply', stamp: receivedAt, echo: msg.stamp },
            };
            if (addr) reply.addr = addr;
            enqueue.sendTo('io', effects([], [reply]));
            return;
          }
          // Monitor::handle_timecheck_leader: the peer's skew, taking its stamp as halfway
          // through the round trip.
          if (msg.echo === undefined || !check(stateIn({ inQuorum: 'leader' }))) return;
          const skew = Math.round(msg.stamp - (msg.echo + (receivedAt - msg.echo) / 2));
          enqueue.assign({
            peers: {
              ...context.peers,
              clockSkewsMs: { ...context.peers.clockSkewsMs, [event.from.slice(4)]: skew },
            },
          });
        }),
      },
      'monitor.connection_scores_reset': { actions: sendTo('elector', { type: 'elector.scores_reset' }) },
      'mon.probe': { actions: 'replyProbe' },
      'monitor.bootstrap': {
        target: '.probing',
        actions: assign(({ event }) => ({ lastBootstrapReason: event.reason })),
      },
      'paxos.bootstrap': {
        target: '.probing',
        actions: assign(({ event }) => ({ lastBootstrapReason: event.reason })),
      },
      'elector.reset_election': {
        target: '.probing',
        actions: assign({ lastBootstrapReason: 'election expired without a quorum' }),
      },
      'monitor.shutdown': { target: '.shutdown' },
    },
    states: {
      probing: {
        // Monitor::bootstrap: a monitor that has been in a quorum and is not in its own map was
        // removed (found at start, say after a store sync brought the map without it).
        always: {
          guard: ({ context }) => context.hasEverJoined && context.rank < 0,
          target: 'shutdown',
          actions: assign(({ context }) => ({
            monmapNews: {
              ...context.monmapNews,
              shutdownReason: `removed from the monmap (epoch ${context.monmap.epoch})`,
            },
          })),
        },
        entry: ['reset', { type: 'announce', params: { role: 'none' } }, 'probeAll'],
        after: {
          probeTimeout: {
            target: 'probing',
            reenter: true,
            actions: assign({ lastBootstrapReason: 'probe timeout' }),
          },
        },
        on: {
          'mon.probe': [
            {
              guard: ({ event }) => event.type === 'mon.probe' && event.msg.op === 'probe',
              actions: 'replyProbe',
            },
            {
              guard: ({ event }) => event.type === 'mon.probe' && event.msg.op === 'reply',
              actions: enqueueActions(({ enqueue, context, event }) => {
                const e = event as MessageEvent<MonProbe>;
                const outcome = handleProbeReply(context, e.from, e.msg);
                switch (outcome.kind) {
                  case 'adopt_monmap': {
                    const rank = outcome.monmap.mons.findIndex((m) => m.name === context.name);
                    // Only a map that names me is written (a joining monitor keeps the map it
                    // was made with on disk; the sync that joins it brings the cluster's).
                    if (rank >= 0) enqueue({ type: 'io', params: effects(monmapWrites(outcome.monmap), []) });
                    enqueue.assign({ monmap: outcome.monmap, rank });
                    enqueue.sendTo('elector', { type: 'elector.monmap', monmap: outcome.monmap, rank });
                    assignPaxos(enqueue, { monmap: outcome.monmap, rank });
                    enqueue.raise({
                      type: 'monitor.bootstrap',
                      reason: `adopted monmap epoch ${outcome.monmap.epoch} from ${e.from}`,
                    });
                    return;
                  }
                  case 'sync':
                    enqueue.raise({ type: 'monitor.sync', decision: outcome.decision });
                    return;
                  case 'start_election':
                    enqueue.raise({ type: 'monitor.start_election' });
                    return;
                  case 'join': {
                    // MMonJoin: ask the quorum to add me at my address (Monitor::handle_probe_reply).
                    if (!context.addr) return;
                    const join: Outgoing = {
                      to: outcome.to,
                      msg: { type: 'mon.join', name: context.name, addr: context.addr },
                    };
                    if (outcome.addr) join.addr = outcome.addr;
                    enqueue({ type: 'io', params: effects([], [join]) });
                    return;
                  }
                  case 'wait':
                    enqueue.assign({ outsideQuorum: outcome.outsideQuorum });
                    return;
                  case 'ignore':
                    return;
                }
              }),
            },
          ],
          'monitor.sync': {
            target: 'synchronizing',
            actions: assign(({ context, event }) => ({
              syncState: { ...context.syncState, decision: event.decision },
            })),
          },
          'monitor.start_election': {
            target: 'electing',
            actions: sendTo('elector', { type: 'elector.start' }),
          },
          // Elector::dispatch is not reached while probing (Monitor::dispatch_op drops election messages).
        },
      },
      synchronizing: {
        // Monitor::sync_start … sync_finish. Every message from the provider re-arms
        // mon_sync_timeout; a timeout or no_cookie sends the monitor back to bootstrap, which
        // probes again and may pick another provider. The last chunk is durable before the
        // monitor reloads what the synced store holds (reloading).
        entry: 'syncStart',
        initial: 'waiting',
        states: {
          waiting: {
            after: {
              syncTimeout: {
                actions: raise(({ context }) => ({
                  type: 'monitor.bootstrap',
                  reason: `sync timeout: no answer from ${context.sync?.provider ?? 'the provider'}`,
                })),
              },
            },
          },
        },
        on: {
          'mon.sync': [
            {
              guard: ({ context, event }) =>
                fromProvider(context, event) && (event as MessageEvent<MonSync>).msg.op === 'cookie',
              // A transition to a child re-enters it (re-arming mon_sync_timeout) without
              // re-entering `synchronizing`; `reenter: true` would run sync_start again.
              target: '.waiting',
              actions: enqueueActions(({ enqueue, context, event }) => {
                const step = syncCookie(context.sync as SyncProgress, (event as MessageEvent<MonSync>).msg);
                enqueue.assign({ sync: step.progress });
                enqueue.sendTo('io', effects([], step.messages));
              }),
            },
            {
              guard: ({ context, event }) =>
                fromProvider(context, event) && (event as MessageEvent<MonSync>).msg.op === 'chunk',
              // A transition to a child re-enters it (re-arming mon_sync_timeout) without
              // re-entering `synchronizing`; `reenter: true` would run sync_start again.
              target: '.waiting',
              actions: enqueueActions(({ enqueue, context, event }) => {
                const step = syncChunk(context.sync as SyncProgress, (event as MessageEvent<MonSync>).msg);
                if (step.progress.kind === 'full' && step.progress.bytes > syncStageBytesMax) {
                  // The switch would be one batch of the whole copy: more than a staged sync takes.
                  enqueue.raise({
                    type: 'monitor.bootstrap',
                    reason: `sync from ${step.progress.provider}: ${step.progress.bytes} bytes, more than a staged sync takes (${syncStageBytesMax})`,
                  });
                  return;
                }
                enqueue.assign({ sync: step.progress });
                enqueue.sendTo('io', effects(step.writes, step.messages));
              }),
            },
            {
              guard: ({ context, event }) =>
                fromProvider(context, event) && (event as MessageEvent<MonSync>).msg.op === 'last_chunk',
              // A transition to a child re-enters it (re-arming mon_sync_timeout) without
              // re-entering `synchronizing`; `reenter: true` would run sync_start again.
              target: '.waiting',
              actions: enqueueActions(({ enqueue, context, event }) => {
                const step = syncFinish(context.sync as SyncProgress, (event as MessageEvent<MonSync>).msg);
                enqueue.assign({ sync: step.progress, syncState: { ...context.syncState, finishing: true } });
                enqueue.sendTo('io', effects(step.writes, [], 'sync_finished'));
              }),
            },
            {
              guard: ({ context, event }) =>
                fromProvider(context, event) && (event as MessageEvent<MonSync>).msg.op === 'no_cookie',
              actions: raise(({ context }) => ({
                type: 'monitor.bootstrap',
                reason: `${context.sync?.provider ?? 'the provider'} cannot provide a sync now (no_cookie)`,
              })),
            },
          ],
          'io.written': {
            guard: ({ event }) => event.token === 'sync_finished',
            target: 'reloading',
          },
        },
      },
      // Monitor::sync_finish: the store now holds the provider's copy. init_paxos reads it again
      // — here the io actor reads it (io.load → monitor.loaded) — and then bootstrap: the reload
      // action sets Paxos, the monmap and the services from it, and the monitor probes again.
      reloading: {
        entry: sendTo('io', { type: 'io.load' } satisfies IoLoadEvent),
        on: {
          'monitor.loaded': { target: 'probing', actions: 'reload' },
          // Ceph's sync_finish runs init_paxos and bootstrap in one go: nothing sends the monitor
          // back to probing over what it knew before the sync while the store is being read.
          'monitor.bootstrap': { actions: [] },
          'paxos.bootstrap': { actions: [] },
          'elector.reset_election': { actions: [] },
          'monitor.adopt_monmap': { actions: [] },
        },
      },
      electing: {
        entry: { type: 'announce', params: { role: 'none' } },
        on: {
          'mon.election': { actions: sendTo('elector', ({ event }) => event) },
          'monitor.start_election': { actions: sendTo('elector', { type: 'elector.start' }) },
          'elector.win': {
            target: 'inQuorum.leader',
            actions: assign(({ context, event }) => ({
              quorum: event.quorum,
              leader: context.rank,
              electionEpoch: event.epoch,
              outsideQuorum: [],
            })),
          },
          'elector.lose': {
            target: 'inQuorum.peon',
            actions: assign(({ event }) => ({
              quorum: event.quorum,
              leader: event.leader,
              electionEpoch: event.epoch,
              outsideQuorum: [],
            })),
          },
        },
      },
      // In a quorum (Monitor::win_election / lose_election): Paxos runs here, its regions in the
      // leader and peon states. Leaving it is Paxos::restart: what was proposed is answered EAGAIN.
      inQuorum: {
        // Entered only by elector.win (→ leader) or elector.lose (→ peon); `initial` is XState's.
        initial: 'peon',
        entry: ['joined', 'quorumFormed'],
        exit: { type: 'paxosRestart', params: { reason: 'paxos restarted (bootstrap or election)' } },
        on: {
          'monitor.quorum_time': {
            actions: assign(({ context, event }) => ({
              peers: { ...context.peers, quorumSinceMs: event.now },
            })),
          },
          'mon.election': { actions: sendTo('elector', ({ event }) => event) },
          'elector.join_election': { target: 'electing' },
          'monitor.start_election': {
            target: 'electing',
            actions: sendTo('elector', { type: 'elector.start' }),
          },
          'mon.probe': [
            {
              guard: 'probeFromBeyondMe',
              target: 'probing',
              actions: [
                'replyProbe',
                assign({ lastBootstrapReason: 'a peer has trimmed beyond my last_committed' }),
              ],
            },
            { actions: 'replyProbe' },
          ],
        },
        states: {
          leader: {
            type: 'parallel',
            // Monitor::win_election → Paxos::leader_init (collect, in round.recovering).
            entry: ['paxosLeaderInit', { type: 'announce', params: { role: 'leader' } }],
            on: {
              'monitor.quorum_member_lost': {
                target: '#monitor.electing',
                actions: [
                  assign(({ event }) => ({ lastBootstrapReason: `lost the session to ${event.peer}` })),
                  sendTo('elector', { type: 'elector.start' }),
                ],
              },
              'paxos.propose': [
                {
                  // Propose at once when idle (paxmon's default); otherwise it rides the next round.
                  guard: stateIn({ inQuorum: { leader: { round: 'active' } } }),
                  actions: [
                    'enqueueProposal',
                    { type: 'paxosStep', params: { raise: { type: 'paxos.begin' } } },
                  ],
                },
                { actions: 'enqueueProposal' },
              ],
            },
            states: {
              round: {
                initial: 'recovering',
                states: {
                  recovering: {
                    entry: [
                      'paxosReport',
                      {
                        type: 'paxosStep',
                        params: ({ context: { paxos: context } }) => collect(context, context.collectAbovePn),
                      },
                    ],
                    after: {
                      acceptTimeout: {
                        actions: { type: 'paxosBootstrap', params: { reason: 'collect timeout' } },
                      },
                    },
                    on: {
                      'mon.paxos': {
                        guard: 'lastFromQuorum',
                        actions: {
                          type: 'paxosStep',
                          params: ({ context: { paxos: context }, event }) => {
                            assertEvent(event, 'mon.paxos');
                            return handleLast(context, rankOf(context.monmap, event.from), event.msg);
                          },
                        },
                      },
                      'paxos.collect_again': {
                        target: 'recovering',
                        reenter: true,
                        actions: assign(({ context, event }) => ({
                          paxos: { ...context.paxos, collectAbovePn: event.abovePn },
                        })),
                      },
                      'paxos.recovered': [
                        {
                          // Paxos::handle_last: an old value was accepted somewhere: finish it first.
                          guard: ({ event }) => event.type === 'paxos.recovered' && event.begin,
                          target: 'updating_previous',
                        },
                        { target: 'active' },
                      ],
                    },
                  },
                  updating_previous: {
                    entry: [
                      'paxosReport',
                      {
                        type: 'paxosStep',
                        params: ({ context: { paxos: context } }) => {
                          const value = context.recovered?.value ?? new Uint8Array();
                          const s = begin({ ...context }, value);
                          return {
                            ...s,
                            context: { ...s.context, inFlight: { value, ids: [], replies: [] } },
                          };
                        },
                      },
                    ],
                    after: {
                      acceptTimeout: {
                        actions: {
                          type: 'paxosBootstrap',
                          params: { reason: 'accept timeout (updating_previous)' },
                        },
                      },
                    },
                    on: {
                      'paxos.written': { actions: 'countSelfAccept' },
                      'mon.paxos': { guard: 'fromQuorum', actions: 'handleAccept' },
                      'paxos.commit_start': { target: 'writing_previous' },
                    },
                  },
                  writing_previous: {
                    entry: [
                      'paxosReport',
                      {
                        type: 'paxosStep',
                        params: ({ context: { paxos: context } }) => commitStart(context),
                      },
                    ],
                    on: {
                      'paxos.written': {
                        guard: 'commitApplied',
                        target: 'refresh',
                        actions: {
                          type: 'paxosStep',
                          params: ({ context: { paxos: context } }) => commitFinish(context),
                        },
                      },
                    },
                  },
                  active: {
                    entry: [
                      'paxosReport',
                      // Paxos::finish_round → trim when due (queued as a round of its own).
                      'maybeTrim',
                      // Ceph extends the lease after every commit (commit_finish → extend_lease), to
                      // make the peons readable again after the begin cancelled their lease. paxmon's
                      // peon keeps its lease through a round and reads again once the commit arrives,
                      // so the lease goes out after recovery and then every mon_lease × renew factor
                      // (Ceph's lease_renew_event), not twice per write.
                      {
                        type: 'paxosStep',
                        params: ({ context: { paxos: context } }) => {
                          if (!context.renewDue) return nothing;
                          const s = extendLease(context);
                          return { ...s, context: { ...s.context, renewDue: false } };
                        },
                      },
                      // Paxos::finish_round: what queued during the last round goes out now.
                      {
                        type: 'paxosStep',
                        params: ({ context: { paxos: context } }) =>
                          context.queue.length ? { raise: { type: 'paxos.begin' } } : nothing,
                      },
                    ],
                    on: {
                      'paxos.begin': { target: 'updating' },
                      'paxos.lease_renew_due': { target: 'active', reenter: true },
                    },
                  },
                  updating: {
                    entry: [
                      'paxosReport',
                      {
                        type: 'paxosStep',
                        params: ({ context: { paxos: context } }) => {
                          const batch = takeQueue(context);
                          if (!batch)
                            return { raise: { type: 'paxos.fail', reason: 'begin with nothing queued' } };
                          const s = begin(context, batch.value);
                          return { ...s, context: { ...s.context, inFlight: batch, queue: [] } };
                        },
                      },
                    ],
                    after: {
                      acceptTimeout: {
                        actions: { type: 'paxosBootstrap', params: { reason: 'accept timeout' } },
                      },
                    },
                    on: {
                      'paxos.written': { actions: 'countSelfAccept' },
                      'mon.paxos': { guard: 'fromQuorum', actions: 'handleAccept' },
                      'paxos.commit_start': { target: 'writing' },
                    },
                  },
                  writing: {
                    entry: [
                      'paxosReport',
                      {
                        type: 'paxosStep',
                        params: ({ context: { paxos: context } }) => commitStart(context),
                      },
                    ],
                    on: {
                      'paxos.written': {
                        guard: 'commitApplied',
                        target: 'refresh',
                        actions: {
                          type: 'paxosStep',
                          params: ({ context: { paxos: context } }) => commitFinish(context),
                        },
                      },
                    },
                  },
                  // Ceph's STATE_REFRESH: services reload from the store (update_from_paxos) before the
                  // round is finished. The services hear of the commit through `paxos.committed`.
                  refresh: {
                    entry: 'paxosReport',
                    always: { target: 'active' },
                  },
                },
              },
              lease: {
                initial: 'expired',
                states: {
                  // Valid from the moment every peon acked a lease until mon_lease after that lease was
                  // sent (paxos.lease_deadline), unless a newer lease was acked meanwhile.
                  expired: {
                    entry: 'paxosReport',
                    on: { 'paxos.lease_all_acked': { target: 'valid' } },
                  },
                  valid: {
                    tags: ['readable', 'writeable'],
                    entry: 'paxosReport',
                    on: { 'paxos.lease_expired': { target: 'expired' } },
                  },
                },
              },
              renew: {
                // Paxos's lease_renew_event: the lease is extended every mon_lease × renew factor; a
                // round in flight delays it to the moment the round is active again.
                initial: 'waiting',
                states: {
                  waiting: {
                    after: {
                      leaseRenew: {
                        target: 'waiting',
                        reenter: true,
                        actions: [
                          assign(({ context }) => ({ paxos: { ...context.paxos, renewDue: true } })),
                          raise({ type: 'paxos.lease_renew_due' }),
                        ],
                      },
                    },
                  },
                },
              },
              leaseAck: {
                // Paxos::extend_lease arms the lease-ack timeout only if none is pending; all acks cancel it.
                initial: 'idle',
                states: {
                  idle: {
                    on: {
                      'paxos.lease_extended': { target: 'waiting' },
                      // A late ack still brings the peon's newest lease token.
                      'mon.paxos': { guard: 'leaseAckFromQuorum', actions: 'notePeonToken' },
                    },
                  },
                  waiting: {
                    after: {
                      leaseAckTimeout: {
                        actions: { type: 'paxosBootstrap', params: { reason: 'lease ack timeout' } },
                      },
                    },
                    on: {
                      'mon.paxos': { guard: 'leaseAckFromQuorum', actions: 'handleLeaseAck' },
                      'paxos.lease_all_acked': { target: 'idle' },
                    },
                  },
                },
              },
            },
          },
          peon: {
            type: 'parallel',
            // Monitor::lose_election → Paxos::peon_init.
            entry: ['paxosPeonInit', { type: 'announce', params: { role: 'peon' } }],
            on: {
              'paxos.propose': {
                actions: enqueueActions(({ enqueue, event }) => {
                  assertEvent(event, 'paxos.propose');
                  const rs = 'update not committed (not the leader); retry';
                  enqueue({
                    type: 'paxosStep',
                    params: {
                      replies: event.replies.map((owed) => ({ target: owed.target, reply: { r: -11, rs } })),
                      outcomes: [{ type: 'paxos.aborted', ids: [event.id], reason: 'not the leader' }],
                    },
                  });
                }),
              },
              // The leader is gone (its session reset): bootstrap now rather than at the lease
              // timeout. Reads stop with the lease; the lease promise still holds off a new leader.
              'monitor.leader_lost': {
                target: '#monitor.probing',
                actions: assign(({ event }) => ({
                  lastBootstrapReason: `lost the session to the leader ${event.peer}`,
                })),
              },
            },
            states: {
              round: {
                initial: 'recovering',
                on: {
                  'mon.paxos': { guard: 'fromLeader', actions: 'peonMessage' },
                  'paxos.peon_recovering': { target: '.recovering' },
                  'paxos.peon_updating': { target: '.updating' },
                  'paxos.peon_committed': { target: '.active' },
                  'paxos.lease_granted': { target: '.active' },
                },
                states: {
                  recovering: { entry: 'paxosReport' },
                  active: { entry: 'paxosReport' },
                  updating: { entry: 'paxosReport' },
                },
              },
              lease: {
                initial: 'expired',
                states: {
                  expired: {
                    entry: 'paxosReport',
                    on: { 'paxos.lease_granted': { target: 'held' } },
                  },
                  // A lease serves reads until mon_lease after the token it echoes was sent (see
                  // handleLease). Paxos::handle_begin cancels it in Ceph; here a begin only suspends it:
                  // reads stop until the commit of that value arrives (a commit needs my accept, so
                  // nothing newer can be committed before I hear of it), and the lease's end does not move.
                  held: {
                    initial: 'valid',
                    on: {
                      'paxos.held_lease_ended': { target: 'expired' },
                      'paxos.lease_granted': { target: 'held', reenter: true },
                      // Paxos::handle_collect clears the peon's lease.
                      'paxos.peon_recovering': { target: 'expired' },
                    },
                    states: {
                      valid: {
                        tags: ['readable'],
                        entry: 'paxosReport',
                        on: { 'paxos.peon_updating': { target: 'suspended' } },
                      },
                      suspended: {
                        entry: 'paxosReport',
                        on: { 'paxos.peon_committed': { target: 'valid' } },
                      },
                    },
                  },
                },
              },
              watchdog: {
                // Paxos::reset_lease_timeout: armed at peon_init and on every lease.
                initial: 'waiting',
                states: {
                  waiting: {
                    after: {
                      leaseAckTimeout: {
                        actions: { type: 'paxosBootstrap', params: { reason: 'lease timeout' } },
                      },
                    },
                    on: {
                      'paxos.lease_granted': { target: 'waiting', reenter: true },
                      'paxos.lease_received': { target: 'waiting', reenter: true },
                    },
                  },
                },
              },
            },
          },
        },
      },
      shutdown: {
        entry: sendTo('elector', { type: 'elector.reset' }),
        type: 'final',
      },
    },
  });
}

/** The actor of a monitor statechart (MonitorHandle.actor): subscribe to it, read its snapshot. */
export type MonitorActorRef = ActorRefFrom<ReturnType<typeof createMonitorMachine>>;
/** A monitor statechart's snapshot (its state value, context, tags). */
export type MonitorSnapshot = SnapshotFrom<ReturnType<typeof createMonitorMachine>>;

/** The monitor statechart with paxmon's services (monmap, config-key, log, health). */
export const monitorMachine = createMonitorMachine(
  defaultServices({
    configKeyMaxEntrySizeBytes: defaultConfig.monConfigKeyMaxEntrySizeBytes,
    clockDriftAllowedMs: defaultConfig.monClockDriftAllowedMs,
  }),
);
