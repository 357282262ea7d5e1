// The monitor: the root statechart of one paxmon monitor (Ceph's Monitor.cc, seed 004).
//
//   probing → (synchronizing) → electing → leader | peon        (+ shutdown)
//
// Children: `io` (provided by the runtime: TCP + RocksDB, or the simulator's network and store),
// `elector` and `paxos`. Received messages arrive as events typed by message type and are routed
// as Ceph's Monitor::dispatch_op routes them: election messages to the elector (not while
// probing or synchronizing), paxos messages to paxos, probes handled here.
import { type AnyActorLogic, assign, enqueueActions, fromCallback, raise, sendTo, setup } from 'xstate';
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
  type IoEffectsEvent,
  type IoWrittenEvent,
  type MessageEvent,
  type Outgoing,
  type StoreAppliedEvent,
  type StoreOp,
} from './effects.ts';
import { type ElectorParentEvent, electorMachine, rankOf } from './elector.ts';
import { type PaxosParentEvent, paxosMachine, type Uncommitted } from './paxos.ts';
import {
  createPaxosService,
  forwardTidStride,
  type MonitorView,
  opsConcern,
  type PaxosStamp,
  type ServiceDefinition,
  type ServiceRequest,
  type ServiceVersions,
} from './paxos-service.ts';
import { defaultServices } from './services/index.ts';
import type { SessionsBoot } from './sessions.ts';
import {
  type SyncProgress,
  syncChunk,
  syncCookie,
  syncFinish,
  syncStageBytesMax,
  syncStart,
} from './sync.ts';

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

/** Why and from whom this monitor would sync (Monitor::handle_probe_reply), kept visible in the state. */
export interface SyncDecision {
  kind: 'full' | 'recent';
  provider: string;
  reason: string;
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
  firstCommitted: number;
  lastCommitted: number;
  syncDecision: SyncDecision | null;
  /** The sync in progress (provider, cookie, keys and bytes copied). */
  sync: SyncProgress | null;
  /** The last chunk is being written (the monitor reloads once it is durable). */
  syncFinishing: boolean;
  /** The store holds an interrupted sync (mon_sync/in_sync): sync in full from the first peer. */
  forceFullSync: boolean;
  /** My address (from the monmap, or the one given to a joining monitor at mkfs). */
  addr: string;
  /** Monitors whose session reset and that have not spoken since (Ceph's ms_handle_reset). */
  downPeers: string[];
  /** Why the last bootstrap happened (shown by mon_status and the logs). */
  lastBootstrapReason: string;
  /** A committed monmap the leader adopts once its own commit has been answered. */
  pendingMonmap: MonMap | null;
  /** Why the monitor shut down (e.g. removed from the monmap), for the runtime's exit message. */
  shutdownReason: string;
  /** What paxos loaded from the store at start-up; handed to the paxos child once. */
  paxosBoot: { acceptedPn: number; lastPn: number; uncommitted: Uncommitted | null };
  /** What the services loaded at start-up; handed to each service child once. */
  serviceBoot: Record<string, { versions: ServiceVersions; loaded: unknown; sessions?: SessionsBoot }>;
  /** Clock skew of each monitor against this one (the leader's time checks), by name, in ms. */
  clockSkewsMs: Record<string, number>;
  /** What the elector loaded at start-up (its connectivity scores); handed to it once. */
  electorBoot: { connectivityScores: ConnectionTracker | null };
  /** Paxos's last status (paxos.status): readable, writeable (Paxos::is_readable/is_writeable). */
  paxosReadable: boolean;
  paxosWriteable: boolean;
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
  | PaxosParentEvent
  | { type: 'monitor.bootstrap'; reason: string }
  | { type: 'monitor.start_election' }
  | { type: 'monitor.sync'; decision: SyncDecision }
  | { type: 'monitor.shutdown' }
  /** Forwarded to paxos (from services, or specs): one encoded Transaction to commit. */
  | { type: 'paxos.propose'; id: string; value: Uint8Array }
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
  /** The leader's time checks (Monitor::timecheck): clock skew per monitor name. */
  | { type: 'monitor.timecheck'; skewsMs: Record<string, number> }
  | IoWrittenEvent
  /** The io actor: a monitor's session was lost / the monitor spoke again. */
  | { type: 'monitor.peer_reset'; peer: EntityName }
  | { type: 'monitor.peer_alive'; peer: EntityName }
  /** Internal: the leader's session was lost while I am its peon. */
  | { type: 'monitor.leader_lost'; peer: EntityName }
  /** Internal: take a committed monmap (MonmapMonitor::update_from_paxos → bootstrap). */
  | { type: 'monitor.adopt_monmap'; monmap: MonMap }
  /** `connection scores reset` (Ceph's admin-socket command): the elector forgets its scores. */
  | { type: 'monitor.connection_scores_reset' }
  | StoreAppliedEvent;

/**
 * A sync message of the sync under way: from its provider and for its cookie (Ceph's
 * handle_sync_chunk drops a chunk whose cookie is not sync_cookie). Anything else is stale: a
 * chunk of an earlier sync from the same provider, delivered after this one restarted, would
 * move lastKey past keys the restart erased and never copied.
 */
function fromProvider(context: MonitorContext, event: MonitorEvent): boolean {
  if (event.type !== 'mon.sync' || context.sync === null || context.syncFinishing) return false;
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
    paxosFirstVersion: context.firstCommitted,
    paxosLastVersion: context.lastCommitted,
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
    const full = context.lastCommitted < msg.paxosFirstVersion && msg.paxosFirstVersion > 1;
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
  if (context.forceFullSync) {
    return {
      kind: 'sync',
      decision: {
        kind: 'full',
        provider: from,
        reason: 'an interrupted sync (mon_sync/in_sync) must start over',
      },
    };
  }
  if (context.lastCommitted < msg.paxosFirstVersion && msg.paxosFirstVersion > 1) {
    return {
      kind: 'sync',
      decision: {
        kind: 'full',
        provider: from,
        reason: `my last_committed ${context.lastCommitted} < peer first_committed ${msg.paxosFirstVersion}`,
      },
    };
  }
  if (context.lastCommitted + context.config.paxosMaxJoinDrift < msg.paxosLastVersion) {
    return {
      kind: 'sync',
      decision: {
        kind: 'recent',
        provider: from,
        reason: `my last_committed ${context.lastCommitted} + paxos_max_join_drift ${context.config.paxosMaxJoinDrift} < peer last_committed ${msg.paxosLastVersion}`,
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
    clockSkewsMs: context.clockSkewsMs,
  };
}

const serviceId = (name: string) => `service:${name}`;

/** The monitor's role as its services see it. */
export function roleOf(context: Pick<MonitorContext, 'rank' | 'leader' | 'quorum'>): MonitorView['role'] {
  if (context.quorum.length === 0 || context.leader < 0) return 'none';
  return context.leader === context.rank ? 'leader' : 'peon';
}

/** Paxos as a service needs it now (PaxosStamp). */
export function paxosStamp(context: MonitorContext): PaxosStamp {
  return {
    readable: context.paxosReadable,
    writeable: context.paxosWriteable,
    lastCommitted: context.lastCommitted,
    applied: context.appliedVersion,
  };
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
  const serviceFor = (cmd: string[]) => services.find((d) => d.handles(cmd));
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
      paxos: paxosMachine,
      // The runtime provides the real one (actors/io.ts: TCP + RocksDB, or the simulator's
      // network and store) with monitorMachine.provide({ actors: { io } }).
      io: fromCallback(() => {
        throw new Error('monitorMachine needs an io actor: monitorMachine.provide({ actors: { io } })');
      }),
    },
    delays: {
      probeTimeout: ({ context }) => context.config.monProbeTimeoutMs,
      syncTimeout: ({ context }) => context.config.monSyncTimeoutMs,
    },
    actions: {
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
        if (event.type !== 'store.applied') return;
        const next = { ...context, appliedVersion: Math.max(context.appliedVersion, event.version) };
        enqueue.assign({ appliedVersion: next.appliedVersion });
        const paxos = paxosStamp(next);
        const told: string[] = [];
        for (const d of services) {
          if (!opsConcern(d.prefix, event.ops)) continue;
          told.push(d.name);
          enqueue.sendTo(serviceId(d.name), { ...event, paxos });
        }
        if (event.ops.some((o) => o.prefix === 'paxos' && o.op === 'put' && o.key === 'first_committed'))
          enqueue.sendTo('paxos', event);
        if (told.length) enqueue.assign({ servicesWaiting: noteTold(next, told, paxos) });
      }),
      /** Monitor::dispatch_op → the service whose commands these are (or EINVAL). */
      routeCommand: enqueueActions(({ enqueue, context, event }) => {
        const requests: ServiceRequest[] = [];
        if (event.type === 'monitor.command') requests.push(event.request);
        else if (event.type === 'mon.forward') {
          requests.push(forwardedRequest(event as MessageEvent<MonForward> & { receivedAt?: number }));
        } else if (event.type === 'monitor.commands') {
          requests.push(...event.requests, ...event.forwards.map(forwardedRequest));
        }
        const unknown: { target: ServiceRequest; reply: { r: number; rs: string } }[] = [];
        const byService = new Map<string, ServiceRequest[]>();
        for (const request of requests) {
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
          enqueue.sendTo(({ system }) => system.get('io'), io);
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
        const decision = context.syncDecision;
        if (!decision) return;
        const provider = decision.provider as EntityName;
        const addr = context.monmap.mons.find((m) => `mon.${m.name}` === provider)?.addr;
        const start = syncStart(decision.kind, provider, addr, context.lastCommitted);
        enqueue.assign({ sync: start.progress, syncFinishing: false });
        // Ceph's sync_start clears the store and resets Paxos. paxmon's full sync builds the
        // copy beside the store in use (machines/sync.ts stagePrefix) and switches at the last
        // chunk: until then this store is whole, its probe replies stay true, and an abandoned
        // sync leaves it as it was.
        enqueue.sendTo(({ system }) => system.get('io'), effects(start.writes, start.messages));
      }),
      /**
       * MonmapMonitor::update_from_paxos: a newer monmap committed. A peon adopts it at once; the
       * leader first lets its services answer the commit (paxos.committed), then adopts it.
       */
      noticeMonmap: enqueueActions(({ enqueue, context, event }) => {
        if (event.type !== 'store.applied') return;
        for (const op of event.ops) {
          if (op.op !== 'put' || op.prefix !== 'monmap' || !/^[0-9]+$/.test(op.key)) continue;
          if (Number(op.key) <= context.monmap.epoch) continue;
          let monmap: MonMap;
          try {
            monmap = JSON.parse(new TextDecoder().decode(op.value)) as MonMap;
          } catch {
            continue;
          }
          if (context.leader === context.rank && context.rank >= 0) enqueue.assign({ pendingMonmap: monmap });
          else enqueue.raise({ type: 'monitor.adopt_monmap', monmap });
        }
      }),
      /** Monitor::win_election / lose_election: remember that I have been in a quorum (monitor/joined). */
      joined: enqueueActions(({ enqueue, context }) => {
        if (context.hasEverJoined) return;
        enqueue.assign({ hasEverJoined: true });
        enqueue.sendTo('elector', { type: 'elector.joined' });
        enqueue.sendTo(
          ({ system }) => system.get('io'),
          effects([{ op: 'put_number', prefix: 'monitor', key: 'joined', value: 1 }], []),
        );
      }),
      io: sendTo(
        ({ system }) => system.get('io'),
        (_, params: IoEffectsEvent) => params,
      ),
      /** Monitor::_reset: forget the quorum; Paxos and the elector restart. */
      reset: enqueueActions(({ enqueue, context }) => {
        enqueue.assign({
          quorum: [],
          leader: -1,
          outsideQuorum: [context.name],
          sync: null,
          syncFinishing: false,
        });
        enqueue.sendTo('paxos', { type: 'paxos.restart' });
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
        enqueue.sendTo(({ system }) => system.get('io'), effects([], messages));
      }),
      /** Monitor::handle_probe_probe: answer with what I know, in any state. */
      replyProbe: enqueueActions(({ enqueue, context, event }) => {
        if (event.type !== 'mon.probe' || event.msg.op !== 'probe') return;
        if (event.msg.fsid !== context.monmap.fsid) return;
        const mon = context.monmap.mons.find((m) => m.name === event.msg.name);
        const reply: Outgoing = { to: event.from, msg: probeMessage(context, 'reply') };
        if (mon) reply.addr = mon.addr;
        enqueue.sendTo(({ system }) => system.get('io'), effects([], [reply]));
      }),
    },
    guards: {
      // Monitor::handle_probe_probe: a peer that trimmed beyond me sends me back to probing (and to
      // a sync) — only a monitor of my map, or any message could cost a quorum its member.
      probeFromBeyondMe: ({ context, event }) =>
        event.type === 'mon.probe' &&
        event.msg.op === 'probe' &&
        event.msg.paxosFirstVersion > context.lastCommitted + 1 &&
        event.msg.fsid === context.monmap.fsid &&
        rankOf(context.monmap, event.from) >= 0,
    },
  }).createMachine({
    id: 'monitor',
    context: ({ input }) => ({
      name: input.name,
      rank: input.monmap.mons.findIndex((m) => m.name === input.name),
      monmap: input.monmap,
      config: input.config,
      hasEverJoined: input.hasEverJoined,
      electionEpoch: input.electionEpoch,
      quorum: [],
      leader: -1,
      outsideQuorum: [],
      firstCommitted: input.paxos.firstCommitted,
      lastCommitted: input.paxos.lastCommitted,
      syncDecision: null,
      lastBootstrapReason: 'startup',
      paxosBoot: {
        acceptedPn: input.paxos.acceptedPn,
        lastPn: input.paxos.lastPn,
        uncommitted: input.paxos.uncommitted,
      },
      serviceBoot: input.services ?? {},
      clockSkewsMs: {},
      electorBoot: { connectivityScores: input.connectivityScores ?? null },
      pendingMonmap: null,
      shutdownReason: '',
      sync: null,
      syncFinishing: false,
      forceFullSync: input.inSync ?? false,
      paxosReadable: false,
      paxosWriteable: false,
      appliedVersion: input.paxos.lastCommitted,
      servicesWaiting: services.map((d) => d.name),
      addr: input.monmap.mons.find((m) => m.name === input.name)?.addr ?? input.addr ?? '',
      downPeers: [],
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
          connectivityScores: context.electorBoot.connectivityScores,
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
        id: 'paxos',
        systemId: 'paxos',
        src: 'paxos',
        input: ({ context }) => ({
          rank: context.rank,
          monmap: context.monmap,
          firstCommitted: context.firstCommitted,
          lastCommitted: context.lastCommitted,
          acceptedPn: context.paxosBoot.acceptedPn,
          lastPn: context.paxosBoot.lastPn,
          uncommitted: context.paxosBoot.uncommitted,
          timeouts: context.config,
        }),
      },
      // Service children are built from the definitions given, so their `src` is not a literal
      // type XState can check here.
      ...(services.map((d, slot) => ({
        id: serviceId(d.name),
        systemId: serviceId(d.name),
        src: serviceId(d.name),
        input: ({ context }: { context: MonitorContext }) => ({
          monitor: monitorView(context, 'none'),
          versions: context.serviceBoot[d.name]?.versions ?? { firstCommitted: 0, lastCommitted: 0 },
          loaded: context.serviceBoot[d.name]?.loaded ?? null,
          ...(context.serviceBoot[d.name]?.sessions
            ? { sessions: context.serviceBoot[d.name]?.sessions }
            : {}),
          forwardSlot: slot,
          proposeIntervalMs: context.config.paxosProposeIntervalMs,
          proposeGatherMs: context.config.paxosProposeGatherMs,
          trimMin: context.config.paxosServiceTrimMin,
          trimMax: context.config.paxosServiceTrimMax,
          answersMax: context.config.monSessionAnswersMax,
          deadlineMaxMs: context.config.monClientDeadlineMaxMs,
          appliedPaxosVersion: context.lastCommitted,
        }),
      })) as never[]),
    ],
    initial: 'probing',
    // Root transitions never use `reenter: true`: that would re-enter the root and restart its
    // children (elector, paxos, io), losing their state. A root transition to '.probing' already
    // exits and re-enters probing (Monitor::bootstrap from any state).
    on: {
      'elector.epoch': { actions: assign(({ event }) => ({ electionEpoch: event.epoch })) },
      'paxos.status': {
        actions: [
          assign(({ event }) => ({
            firstCommitted: event.firstCommitted,
            lastCommitted: event.lastCommitted,
            paxosReadable: event.readable,
            paxosWriteable: event.writeable,
          })),
          { type: 'serviceNews', params: {} },
        ],
      },
      'store.applied': { actions: ['applied', { type: 'serviceNews', params: {} }, 'noticeMonmap'] },
      'paxos.committed': {
        actions: [
          assign(({ event }) => ({
            firstCommitted: event.status.firstCommitted,
            lastCommitted: event.status.lastCommitted,
            paxosReadable: event.status.readable,
            paxosWriteable: event.status.writeable,
          })),
          // C_Committed: the services whose proposals the round carried answer their clients.
          enqueueActions(({ enqueue, context, event }) => {
            const paxos = paxosStamp(context);
            const owners = services.filter((d) => event.ids.some((id) => id.startsWith(`${d.name}:`)));
            for (const d of owners) enqueue.sendTo(serviceId(d.name), { ...event, paxos });
            const told = owners.map((d) => d.name);
            if (told.length) enqueue.assign({ servicesWaiting: noteTold(context, told, paxos) });
          }),
          { type: 'serviceNews', params: {} },
          enqueueActions(({ enqueue, context }) => {
            if (context.pendingMonmap)
              enqueue.raise({ type: 'monitor.adopt_monmap', monmap: context.pendingMonmap });
          }),
        ],
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
            pendingMonmap: null,
            shutdownReason: `removed from the monmap (epoch ${event.monmap.epoch})`,
          })),
        },
        {
          target: '.probing',
          actions: [
            assign(({ context, event }) => ({
              monmap: event.monmap,
              rank: event.monmap.mons.findIndex((m) => m.name === context.name),
              addr: event.monmap.mons.find((m) => m.name === context.name)?.addr ?? context.addr,
              pendingMonmap: null,
              lastBootstrapReason: `monmap epoch ${event.monmap.epoch}`,
            })),
            enqueueActions(({ enqueue, context }) => {
              enqueue.sendTo('elector', {
                type: 'elector.monmap',
                monmap: context.monmap,
                rank: context.rank,
              });
              enqueue.sendTo('paxos', { type: 'paxos.monmap', monmap: context.monmap, rank: context.rank });
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
      'monitor.tick': {
        actions: enqueueActions(({ enqueue, context, event }) => {
          const paxos = paxosStamp(context);
          for (const d of services)
            enqueue.sendTo(serviceId(d.name), { type: 'service.tick', now: event.now, paxos });
          enqueue.assign({
            servicesWaiting: noteTold(
              context,
              services.map((d) => d.name),
              paxos,
            ),
          });
        }),
      },
      'monitor.timecheck': { actions: assign(({ event }) => ({ clockSkewsMs: event.skewsMs })) },
      // A lost session (kill -9 of a peer on this host resets at once): the elector need not wait
      // for that monitor's ack, and a peon need not wait 2 × mon_lease to notice its leader is gone.
      'monitor.peer_reset': {
        actions: enqueueActions(({ enqueue, context, event }) => {
          const downPeers = context.downPeers.includes(event.peer)
            ? context.downPeers
            : [...context.downPeers, event.peer];
          enqueue.assign({ downPeers });
          enqueue.sendTo('elector', { type: 'elector.down', ranks: downRanks(context.monmap, downPeers) });
          const leader = context.monmap.mons[context.leader];
          if (leader && context.leader !== context.rank && event.peer === `mon.${leader.name}`) {
            enqueue.raise({ type: 'monitor.leader_lost', peer: event.peer });
          }
        }),
      },
      'monitor.peer_alive': {
        actions: enqueueActions(({ enqueue, context, event }) => {
          const downPeers = context.downPeers.filter((p) => p !== event.peer);
          enqueue.assign({ downPeers });
          enqueue.sendTo('elector', { type: 'elector.down', ranks: downRanks(context.monmap, downPeers) });
        }),
      },
      'paxos.propose': { actions: sendTo('paxos', ({ event }) => event) },
      'mon.paxos': { actions: sendTo('paxos', ({ event }) => event) },
      // The elector's pings (connectivity scores), in every state: Monitor::dispatch_op hands
      // MMonPing to the Elector whatever the monitor is doing.
      'mon.ping': { actions: sendTo('elector', ({ event }) => event) },
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
            shutdownReason: `removed from the monmap (epoch ${context.monmap.epoch})`,
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
                    enqueue.sendTo('paxos', { type: 'paxos.monmap', monmap: outcome.monmap, rank });
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
            actions: assign(({ event }) => ({ syncDecision: event.decision })),
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
        // monitor reloads: the runtime restarts the actor tree over the synced store.
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
                enqueue.sendTo(({ system }) => system.get('io'), effects([], step.messages));
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
                enqueue.sendTo(({ system }) => system.get('io'), effects(step.writes, step.messages));
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
                enqueue.assign({ sync: step.progress, syncFinishing: true });
                enqueue.sendTo(
                  ({ system }) => system.get('io'),
                  effects(step.writes, [], { systemId: 'monitor', token: 'sync_finished' }),
                );
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
      // The store now holds the provider's copy: the runtime restarts the monitor over it
      // (Ceph re-inits Paxos and bootstraps).
      reloading: { type: 'final' },
      electing: {
        entry: [sendTo('paxos', { type: 'paxos.restart' }), { type: 'announce', params: { role: 'none' } }],
        on: {
          'mon.election': { actions: sendTo('elector', ({ event }) => event) },
          'monitor.start_election': { actions: sendTo('elector', { type: 'elector.start' }) },
          'elector.win': {
            target: 'leader',
            actions: assign(({ context, event }) => ({
              quorum: event.quorum,
              leader: context.rank,
              electionEpoch: event.epoch,
              outsideQuorum: [],
            })),
          },
          'elector.lose': {
            target: 'peon',
            actions: assign(({ event }) => ({
              quorum: event.quorum,
              leader: event.leader,
              electionEpoch: event.epoch,
              outsideQuorum: [],
            })),
          },
        },
      },
      leader: {
        // Monitor::win_election
        entry: [
          sendTo('paxos', ({ context }) => ({
            type: 'paxos.leader_init',
            electionEpoch: context.electionEpoch,
            quorum: context.quorum,
          })),
          'joined',
          { type: 'announce', params: { role: 'leader' } },
        ],
        on: {
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
      },
      peon: {
        // Monitor::lose_election
        entry: [
          sendTo('paxos', ({ context }) => ({
            type: 'paxos.peon_init',
            electionEpoch: context.electionEpoch,
            quorum: context.quorum,
            leader: context.leader,
          })),
          'joined',
          { type: 'announce', params: { role: 'peon' } },
        ],
        on: {
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
          // The leader is gone (its session reset): bootstrap now rather than at the lease
          // timeout. Reads stop with the lease; the lease promise still holds off a new leader.
          'monitor.leader_lost': {
            target: 'probing',
            actions: assign(({ event }) => ({
              lastBootstrapReason: `lost the session to the leader ${event.peer}`,
            })),
          },
        },
      },
      shutdown: {
        entry: [sendTo('paxos', { type: 'paxos.restart' }), sendTo('elector', { type: 'elector.reset' })],
        type: 'final',
      },
    },
  });
}

/** The monitor statechart with paxmon's services (monmap, config-key, log, health). */
export const monitorMachine = createMonitorMachine(
  defaultServices({
    configKeyMaxEntrySizeBytes: defaultConfig.monConfigKeyMaxEntrySizeBytes,
    clockDriftAllowedMs: defaultConfig.monClockDriftAllowedMs,
  }),
);
