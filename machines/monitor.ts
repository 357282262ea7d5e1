// The monitor: the root statechart of one paxmon monitor (Ceph's Monitor.cc, seed 004).
//
//   probing → (synchronizing) → electing → leader | peon        (+ shutdown)
//
// Children: `io` (provided by the runtime: TCP + RocksDB, or the simulator's network and store),
// `elector` and `paxos`. Received messages arrive as events typed by message type and are routed
// as Ceph's Monitor::dispatch_op routes them: election messages to the elector (not while
// probing or synchronizing), paxos messages to paxos, probes handled here.
import { type AnyActorLogic, assign, enqueueActions, fromCallback, sendTo, setup } from 'xstate';
import type { EntityName, MonForward, MonMap, MonProbe } from '../transport/messages.ts';
import { defaultConfig, type MonConfig } from './config.ts';
import {
  effects,
  type IoEffectsEvent,
  type MessageEvent,
  type Outgoing,
  type StoreAppliedEvent,
  type StoreOp,
} from './effects.ts';
import { type ElectorParentEvent, electorMachine, rankOf } from './elector.ts';
import { type PaxosParentEvent, paxosMachine, type Uncommitted } from './paxos.ts';
import {
  createPaxosService,
  type MonitorView,
  type ServiceDefinition,
  type ServiceRequest,
  type ServiceVersions,
} from './paxos-service.ts';
import { defaultServices } from './services/index.ts';

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
  services?: Record<string, { versions: ServiceVersions; loaded: unknown }>;
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
  /**
   * Store sync arrives with its own issue; until then a monitor that would sync goes back to
   * probing once and catches up through Paxos recovery (share_state) instead.
   */
  syncDeferred: boolean;
  /** Why the last bootstrap happened (shown by mon_status and the logs). */
  lastBootstrapReason: string;
  /** What paxos loaded from the store at start-up; handed to the paxos child once. */
  paxosBoot: { acceptedPn: number; lastPn: number; uncommitted: Uncommitted | null };
  /** What the services loaded at start-up; handed to each service child once. */
  serviceBoot: Record<string, { versions: ServiceVersions; loaded: unknown }>;
  /** Clock skew of each monitor against this one (the leader's time checks), by name, in ms. */
  clockSkewsMs: Record<string, number>;
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
  /** The runtime's tick (mon_tick_interval): services' tick(); `now` is the wall clock. */
  | { type: 'monitor.tick'; now: number }
  /** The leader's time checks (Monitor::timecheck): clock skew per monitor name. */
  | { type: 'monitor.timecheck'; skewsMs: Record<string, number> }
  | StoreAppliedEvent;

/** MonMap::min_quorum_size. */
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
  // A newer monmap from a monitor that has been in a quorum: adopt it and start over.
  if (
    msg.hasEverJoined &&
    (msg.monmap.epoch > context.monmap.epoch || !context.hasEverJoined) &&
    msg.monmap.epoch !== context.monmap.epoch
  ) {
    if (msg.monmap.epoch > context.monmap.epoch) return { kind: 'adopt_monmap', monmap: msg.monmap };
  }
  if (!context.syncDeferred) {
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
  }
  if (msg.quorum.length > 0) {
    // There is a quorum: if I am in the map, an election pulls me in; otherwise ask to join.
    if (context.rank >= 0) return { kind: 'start_election' };
    const leader = msg.monmap.mons[Math.min(...msg.quorum)];
    const mine = context.monmap.mons.find((m) => m.name === context.name);
    if (!leader || !mine) return { kind: 'ignore' };
    return { kind: 'join', to: `mon.${leader.name}`, addr: leader.addr };
  }
  if (rankOf(context.monmap, from) < 0) return { kind: 'ignore' }; // not part of my monmap
  const name = from.slice(4);
  const outsideQuorum = context.outsideQuorum.includes(name)
    ? context.outsideQuorum
    : [...context.outsideQuorum, name];
  if (outsideQuorum.length >= minQuorumSize(context.monmap) && outsideQuorum.includes(context.name)) {
    return { kind: 'start_election' };
  }
  return { kind: 'wait', outsideQuorum };
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

/**
 * The monitor statechart with a given set of PaxosServices (Ceph's Monitor with its
 * paxos_service[] array). `monitorMachine` is the one with paxmon's services.
 */
export function createMonitorMachine(services: ServiceDefinition[]) {
  const serviceActors = Object.fromEntries(
    services.map((d) => [serviceId(d.name), createPaxosService(d)]),
  ) as Record<string, AnyActorLogic>;
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
      // Waiting a probe timeout before probing again keeps a would-be sync from spinning.
      syncNotYet: ({ context }) => context.config.monProbeTimeoutMs,
    },
    actions: {
      /** Tell every service about the monitor (role, quorum, monmap): PaxosService::election_finished / restart. */
      announce: enqueueActions(({ enqueue, context }, params: { role: MonitorView['role'] }) => {
        const monitor = monitorView(context, params.role);
        for (const d of services) enqueue.sendTo(serviceId(d.name), { type: 'service.monitor', monitor });
      }),
      /** Paxos news every service needs (status, applied versions, commits, aborts, routed replies). */
      broadcast: enqueueActions(({ enqueue, event }) => {
        for (const d of services) enqueue.sendTo(serviceId(d.name), event as never);
      }),
      /** Monitor::dispatch_op → the service whose commands these are (or EINVAL). */
      routeCommand: enqueueActions(({ enqueue, context, event }) => {
        let request: ServiceRequest | undefined;
        if (event.type === 'monitor.command') request = event.request;
        else if (event.type === 'mon.forward') {
          const e = event as MessageEvent<MonForward> & { receivedAt?: number };
          request = {
            client: e.msg.client as EntityName,
            tid: e.msg.clientTid,
            cmd: e.msg.request.cmd,
            receivedAt: e.receivedAt ?? 0,
            via: { peer: e.from, forwardTid: e.msg.tid },
            ...(e.msg.request.inbuf ? { inbuf: e.msg.request.inbuf } : {}),
          };
        }
        if (!request) return;
        const service = serviceFor(request.cmd);
        if (!service) {
          const io: IoEffectsEvent = {
            ...effects([], []),
            replies: [{ target: request, reply: { r: -22, rs: unknownCommand(request.cmd) } }],
          };
          enqueue.sendTo(({ system }) => system.get('io'), io);
          return;
        }
        enqueue.sendTo(serviceId(service.name), { type: 'service.request', request });
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
        enqueue.assign({ quorum: [], leader: -1, outsideQuorum: [context.name] });
        enqueue.sendTo('paxos', { type: 'paxos.restart' });
        enqueue.sendTo('elector', { type: 'elector.reset' });
      }),
      /** Monitor::bootstrap: probe every other rank (a one-monitor map wins at once instead). */
      probeAll: enqueueActions(({ enqueue, context }) => {
        if (context.rank < 0) return;
        if (context.monmap.mons.length === 1) {
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
      probeFromBeyondMe: ({ context, event }) =>
        event.type === 'mon.probe' &&
        event.msg.op === 'probe' &&
        event.msg.paxosFirstVersion > context.lastCommitted + 1,
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
      syncDeferred: false,
      lastBootstrapReason: 'startup',
      paxosBoot: {
        acceptedPn: input.paxos.acceptedPn,
        lastPn: input.paxos.lastPn,
        uncommitted: input.paxos.uncommitted,
      },
      serviceBoot: input.services ?? {},
      clockSkewsMs: {},
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
      ...(services.map((d) => ({
        id: serviceId(d.name),
        systemId: serviceId(d.name),
        src: serviceId(d.name),
        input: ({ context }: { context: MonitorContext }) => ({
          monitor: monitorView(context, 'none'),
          versions: context.serviceBoot[d.name]?.versions ?? { firstCommitted: 0, lastCommitted: 0 },
          loaded: context.serviceBoot[d.name]?.loaded ?? null,
          proposeIntervalMs: context.config.paxosProposeIntervalMs,
          trimMin: context.config.paxosServiceTrimMin,
          trimMax: context.config.paxosServiceTrimMax,
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
          })),
          'broadcast',
        ],
      },
      'store.applied': { actions: ['broadcast', sendTo('paxos', ({ event }) => event)] },
      'paxos.committed': { actions: 'broadcast' },
      'paxos.aborted': { actions: 'broadcast' },
      'mon.route': { actions: 'broadcast' },
      'monitor.command': { actions: 'routeCommand' },
      'mon.forward': { actions: 'routeCommand' },
      'monitor.tick': {
        actions: enqueueActions(({ enqueue, event }) => {
          for (const d of services)
            enqueue.sendTo(serviceId(d.name), { type: 'service.tick', now: event.now });
        }),
      },
      'monitor.timecheck': { actions: assign(({ event }) => ({ clockSkewsMs: event.skewsMs })) },
      'paxos.propose': { actions: sendTo('paxos', ({ event }) => event) },
      'mon.paxos': { actions: sendTo('paxos', ({ event }) => event) },
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
        entry: ['reset', { type: 'announce', params: { role: 'none' } }, 'probeAll'],
        after: {
          probeTimeout: {
            target: 'probing',
            reenter: true,
            actions: assign({ lastBootstrapReason: 'probe timeout', syncDeferred: false }),
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
                    enqueue.assign({ monmap: outcome.monmap, rank });
                    enqueue({ type: 'io', params: effects(monmapWrites(outcome.monmap), []) });
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
                    const me = context.monmap.mons.find((m) => m.name === context.name);
                    if (!me) return;
                    const join: Outgoing = {
                      to: outcome.to,
                      msg: { type: 'mon.join', name: context.name, addr: me.addr },
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
        // Store sync (Monitor::sync_start) arrives with the sync issue. Until then the decision is
        // recorded here, and the monitor probes again and catches up through Paxos recovery,
        // which works while the leader still holds every version this monitor misses.
        after: {
          syncNotYet: {
            target: 'probing',
            actions: assign({
              syncDeferred: true,
              lastBootstrapReason: 'store sync not available yet: catching up through paxos recovery',
            }),
          },
        },
      },
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
              syncDeferred: false,
            })),
          },
          'elector.lose': {
            target: 'peon',
            actions: assign(({ event }) => ({
              quorum: event.quorum,
              leader: event.leader,
              electionEpoch: event.epoch,
              outsideQuorum: [],
              syncDeferred: false,
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
