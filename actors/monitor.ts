// Running a monitor: the pure monitor statechart, given its world. `createMonitor` takes any Store
// and Transport (the simulator's in-memory ones, or an app's own); `startMonitor` (actors/daemon.ts)
// opens RocksDB and TCP and calls it.

import { randomBytes } from 'node:crypto';
import {
  type ActorOptions,
  type AnyActorLogic,
  type AnyActorRef,
  createActor,
  type InspectionEvent,
} from 'xstate';
import { capsAllow, commandPerm, type MonCaps, parseMonCaps } from '../machines/caps.ts';
import { defaultConfig, type MonConfig } from '../machines/config.ts';
import { decodeCryptoKey } from '../machines/crypto-key.ts';
import type { KeyringEntry } from '../machines/keyring-text.ts';
import {
  createMonitorMachine,
  type MonitorActorRef,
  fastRead as machineFastRead,
  monitorStateName,
  statusFacts,
} from '../machines/monitor.ts';
import { isReadable, isWriteable } from '../machines/paxos.ts';
import type { ServiceContext, ServiceDefinition, ServiceRequest } from '../machines/paxos-service.ts';
import { type AuthState, authCreated, authLookup } from '../machines/services/auth.ts';
import { defaultServices } from '../machines/services/index.ts';
import { monStatus, quorumStatus } from '../machines/status.ts';
import type { Store } from '../storage/store.ts';
import type { CommandReply, EntityName, MonCommand, MonMap } from '../transport/messages.ts';
import type { Transport } from '../transport/transport.ts';
import { batchPerTurn, ioLogic, performRead, type Turn } from './io.ts';
import { type Logger, silentLogger } from './log.ts';
import { loadMonitorState } from './monitor-state.ts';

/** XState's clock interface (setTimeout/clearTimeout), e.g. its SimulatedClock. */
export type Clock = NonNullable<ActorOptions<AnyActorLogic>['clock']>;

export interface CreateMonitorOptions {
  store: Store;
  transport: Transport;
  config?: Partial<MonConfig>;
  /** XState clock for every timer of the monitor's actor tree (SimulatedClock in the simulator). */
  clock?: Clock;
  /** Wall-clock milliseconds for quorum_age and log stamps (simulated time in the simulator). */
  now?: () => number;
  logger?: Logger;
  /** Receives every inspection event of the whole actor tree (XState's `inspect`). */
  inspect?: (event: InspectionEvent) => void;
  /** A durable write failed; default: log and stop the monitor. */
  onFatal?: (error: Error) => void;
  /** Handle a client command before the monitor does (return true when handled). */
  onCommand?: (from: EntityName, msg: MonCommand, reply: (r: CommandReply) => void) => boolean;
  /** Extra PaxosServices to run beside paxmon's own (an app's own service). */
  services?: ServiceDefinition[];
  /** The monitor shut itself down (e.g. removed from the monmap): the reason. */
  onShutdown?: (reason: string) => void;
  /** A store sync made progress (keys and bytes copied, of the totals when known). */
  onSyncProgress?: (progress: SyncProgressReport) => void;
  /**
   * The monitor's keyring (its data dir's, which mkfs writes): the auth database's first
   * entries (AuthMonitor::create_initial imports it), and who may connect until that database
   * exists. Without one, only the entities of the auth database are known.
   */
  keyring?: KeyringEntry[];
  /** Randomness for new keys (`auth get-or-create`): node's crypto, or the simulator's PRNG. */
  randomBytes?: (n: number) => Uint8Array;
  /**
   * How inputs read together are batched into one statechart step (actors/io.ts batchPerTurn):
   * setImmediate by default (one event-loop turn); the simulator passes queueMicrotask.
   */
  turn?: Turn;
}

/** What the monitor knows of an entity (MonitorHandle.authEntity). */
export interface AuthEntity {
  secret: Uint8Array;
  /** Caps by service (`mon` → `allow r`). */
  caps: Record<string, string>;
}

export interface SyncProgressReport {
  provider: string;
  kind: 'full' | 'recent';
  keys: number;
  bytes: number;
  totalKeys: number | undefined;
  totalBytes: number | undefined;
}

export type MonitorStateName =
  | 'probing'
  | 'synchronizing'
  | 'electing'
  | 'leader'
  | 'peon'
  | 'shutdown'
  | 'reloading';

export interface MonitorHandle {
  readonly name: string;
  readonly fsid: string;
  /** The root XState actor (the monitor statechart): typed, so `actor.getSnapshot().context` is a MonitorContext. */
  readonly actor: MonitorActorRef;
  /** Current Ceph state name of the monitor. */
  state(): MonitorStateName;
  /** Ceph's `mon_status` (DESIGN.md §6). */
  monStatus(): Record<string, unknown>;
  /** Ceph's `quorum_status`. */
  quorumStatus(): Record<string, unknown>;
  isReadable(): boolean;
  isWriteable(): boolean;
  /**
   * An entity's secret and caps: from the auth database once it exists (the auth service's
   * committed state), else from the monitor's keyring. Undefined for an unknown entity.
   */
  authEntity(entity: string): AuthEntity | undefined;
  /** Messages refused and dropped since start (a monitor message from a non-monitor, from a monitor not in the monmap, a value that does not decode, …). */
  refusedMessages(): number;
  /** Resolves once a shutdown (stop() or a fatal store error) has completed. */
  readonly stopped: Promise<void>;
  /** Stop the actor tree; the store and transport are the caller's to close. */
  stop(): Promise<void>;
  /**
   * Resolves once the store work under way (write batches, reads) has finished: after stop(),
   * before the caller closes the store, so that a read in flight is answered rather than cut
   * off by the closing store.
   */
  drain(): Promise<void>;
}

const encoder = new TextEncoder();

export async function createMonitor(options: CreateMonitorOptions): Promise<MonitorHandle> {
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? (() => Date.now());
  const config: MonConfig = { ...defaultConfig, ...(options.config ?? {}) };
  const services = [
    ...defaultServices({
      configKeyMaxEntrySizeBytes: config.monConfigKeyMaxEntrySizeBytes,
      clockDriftAllowedMs: config.monClockDriftAllowedMs,
      auth: {
        randomBytes: options.randomBytes ?? ((n: number) => new Uint8Array(randomBytes(n))),
        ...(options.keyring ? { initialKeyring: options.keyring } : {}),
      },
    }),
    ...(options.services ?? []),
  ];
  const loaded = await loadMonitorState(options.store, services);
  if (loaded.scoresRefused)
    logger.warn({ mon: loaded.name }, `starting with fresh connectivity scores: ${loaded.scoresRefused}`);
  let stopping = false;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });

  // Store work under way (the io actor's write batches, fast-path reads), for drain(): a count,
  // not a set of promises, since every fast read passes here.
  let busy = 0;
  let drained: Array<() => void> = [];
  const begin = () => {
    busy += 1;
  };
  const end = () => {
    busy -= 1;
    if (busy > 0 || drained.length === 0) return;
    const waiting = drained;
    drained = [];
    for (const resolve of waiting) resolve();
  };
  const track = (work: Promise<unknown>) => {
    begin();
    work.then(end, end);
  };

  // The monitor's keyring: the auth database's seed, and the entities known until it exists.
  const localKeyring = new Map<string, AuthEntity>();
  for (const entry of options.keyring ?? []) {
    localKeyring.set(entry.entity, { secret: decodeCryptoKey(entry.key).secret, caps: entry.caps });
  }
  function authEntity(entity: string): AuthEntity | undefined {
    const children = actor?.getSnapshot().children as Record<string, AnyActorRef | undefined> | undefined;
    const service = children?.['service:auth'];
    const state = (service?.getSnapshot()?.context as ServiceContext | undefined)?.state as
      | AuthState
      | undefined;
    if (state && authCreated(state)) {
      const found = authLookup(state, entity);
      return found ? { secret: found.secret, caps: { ...found.caps } } : undefined;
    }
    return localKeyring.get(entity);
  }

  // Parsed caps by their text: a session's caps are parsed once, not per command.
  const parsedCaps = new Map<string, MonCaps | null>();
  const capsOf = (text: string): MonCaps | null => {
    let caps = parsedCaps.get(text);
    if (caps === undefined) {
      try {
        caps = parseMonCaps(text);
      } catch {
        caps = null; // caps that do not parse grant nothing (Ceph: the cap fails to decode)
      }
      if (parsedCaps.size >= 4096) parsedCaps.clear();
      parsedCaps.set(text, caps);
    }
    return caps;
  };
  const noData = new Uint8Array();
  /**
   * Why `entity` may not run `cmd` (EACCES), or null. An unknown entity, caps that do not parse
   * and a command its caps do not cover are all `access denied`, as Ceph answers them.
   */
  function commandDenied(entity: string | undefined, cmd: string[]): CommandReply | null {
    const accessDenied = { r: -13, rs: 'access denied', data: noData };
    if (entity === undefined) return accessDenied;
    const known = authEntity(entity);
    if (!known) return accessDenied;
    // A command no table declares needs everything (`allow *`): a new command is never a way
    // around caps, and an unknown one is EINVAL only to those who could run anything.
    const need = commandPerm(services, cmd) ?? {
      service: 'mon',
      prefix: cmd.join(' '),
      perm: 'rwx',
      args: {},
    };
    const caps = capsOf(known.caps.mon ?? '');
    if (!caps) return accessDenied;
    return capsAllow(caps, { ...need, entity }) ? null : accessDenied;
  }

  // Refused input (actors/io.ts refuseReason, machines' io.refused): a count, and the peers
  // already logged.
  let refusedTotal = 0;
  const refusedBy = new Map<string, number>();
  const refusedPeersMax = 1024;

  const fatal = (error: Error) => {
    if (stopping) {
      logger.warn({ err: error.message }, 'store error while stopping');
      return;
    }
    logger.fatal(
      { err: error.message, code: (error as { code?: string }).code },
      'store write failed; stopping the monitor',
    );
    if (options.onFatal) options.onFatal(error);
    void handle.stop();
  };

  const command = batchPerTurn<ServiceRequest>((requests) => {
    if (!stopping) actor.send({ type: 'monitor.commands', requests, forwards: [] });
  }, options.turn);

  const io = ioLogic({
    store: options.store,
    transport: options.transport,
    onFatal: fatal,
    onCommand: (from, msg, session) => {
      const reply = (r: CommandReply) =>
        options.transport.send(from, {
          type: 'mon.command_ack',
          tid: msg.tid,
          cmd: msg.cmd,
          r: r.r,
          rs: r.rs,
          data: r.data,
        });
      // Monitor::_allowed_command: the caps of the entity the session proved, before anything
      // else (a forwarded request was checked here, at the monitor the client is connected to).
      const denied = commandDenied(session?.entity, msg.cmd);
      if (denied) return reply(denied);
      if (options.onCommand?.(from, msg, reply)) return;
      const request = {
        client: from,
        tid: msg.tid,
        cmd: msg.cmd,
        receivedAt: now(),
        ...(msg.inbuf ? { inbuf: msg.inbuf } : {}),
        ...(msg.deadline !== undefined ? { deadline: msg.deadline } : {}),
      };
      // Reads of a readable service are answered here, without a trip through the actor tree
      // (the same preprocess_query and readability check the statechart applies).
      if (fastRead(request, reply)) return;
      // Everything else goes to the statechart (Monitor::dispatch_op): the status commands it
      // answers itself, the rest a PaxosService's by prefix. Commands read from the sockets
      // together go to it as one event.
      command(request);
    },
    onSyncServed: (event) => logger.debug({ sync: event }, `sync ${event.op} for ${event.peer}`),
    onRefused: (from, type, reason) => {
      // Logged once per session (a peer's name), counted always: a peer that keeps sending what
      // is refused must not fill the log (issue 13).
      refusedTotal += 1;
      const seen = refusedBy.get(from);
      if (seen !== undefined) {
        refusedBy.set(from, seen + 1);
        return;
      }
      if (refusedBy.size >= refusedPeersMax) refusedBy.clear();
      refusedBy.set(from, 1);
      logger.warn(
        { mon: loaded.name, from, type },
        `refused: ${reason} (further refusals from ${from} are counted, not logged)`,
      );
    },
    monmap: () => (actor as MonitorActor | undefined)?.getSnapshot()?.context.monmap as MonMap | undefined,
    track,
    now,
    ...(options.turn ? { turn: options.turn } : {}),
    // After a store sync the statechart asks the io actor to read the store again (io.load).
    services,
  });

  const machine = createMonitorMachine(services).provide({ actors: { io } });
  type MonitorActor = ReturnType<typeof createActor<typeof machine>>;
  let lastState = '';
  let lastQuorum = '';
  let lastSyncKeys = -1;

  // One actor for the monitor's whole life: a store sync reloads inside it (the statechart's
  // `reloading`: Monitor::sync_finish → init_paxos → bootstrap), so whoever holds `actor` or
  // inspects it keeps it.
  const actor: MonitorActor = createActor(machine, {
    input: {
      ...loaded.input,
      inSync: loaded.inSync,
      config,
      ...(loaded.addr ? { addr: loaded.addr } : {}),
    },
    systemId: 'monitor',
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  actor.subscribe({
    next(snapshot) {
      const state = monitorStateName(snapshot);
      const quorum = snapshot.context.quorum.join(',');
      const sync = snapshot.context.sync;
      if (state !== lastState || (quorum !== lastQuorum && (state === 'leader' || state === 'peon'))) {
        // Ceph's leader writes the new quorum to the cluster log (Monitor::win_election).
        if (state === 'leader' && (lastState !== state || quorum !== lastQuorum)) queueMicrotask(logQuorum);
        // The last chunk is durable: the statechart reloads what the synced store holds.
        if (state === 'reloading')
          logger.info(
            { mon: loaded.name, provider: sync?.provider, keys: sync?.keys, bytes: sync?.bytes },
            `mon.${loaded.name} sync finished`,
          );
        logger.info(
          {
            mon: loaded.name,
            state,
            election_epoch: snapshot.context.electionEpoch,
            quorum: snapshot.context.quorum,
            reason: state === 'probing' ? snapshot.context.lastBootstrapReason : undefined,
            sync: state === 'synchronizing' ? snapshot.context.syncState.decision : undefined,
          },
          `mon.${loaded.name} ${state} e${snapshot.context.electionEpoch}`,
        );
        lastState = state;
        lastQuorum = quorum;
      }
      if (state === 'synchronizing' && sync && sync.keys !== lastSyncKeys) {
        lastSyncKeys = sync.keys;
        options.onSyncProgress?.({
          provider: sync.provider,
          kind: sync.kind,
          keys: sync.keys,
          bytes: sync.bytes,
          totalKeys: sync.totalKeys,
          totalBytes: sync.totalBytes,
        });
      }
      if (snapshot.status !== 'done') return;
      if (snapshot.context.monmapNews.shutdownReason && !stopping)
        options.onShutdown?.(snapshot.context.monmapNews.shutdownReason);
      resolveStopped();
    },
    error(error) {
      logger.error({ err: String(error) }, 'monitor actor failed');
      resolveStopped();
    },
  });

  /**
   * The read fast path: true when the request was a read answered now; an update is marked so
   * (the service does not run preprocess_query again) and left to the statechart.
   */
  function fastRead(request: ServiceRequest, reply: (r: CommandReply) => void): boolean {
    const snapshot = actor.getSnapshot();
    const answer = machineFastRead(
      services,
      (name) =>
        (snapshot.children as Record<string, AnyActorRef | undefined>)[`service:${name}`]?.getSnapshot()
          ?.context as ServiceContext | undefined,
      snapshot.context,
      request,
    );
    if (!answer) return false;
    if ('update' in answer) {
      request.update = true;
      return false;
    }
    const send = (r: { r: number; rs: string; data?: Uint8Array | string }) =>
      reply({
        r: r.r,
        rs: r.rs,
        data: typeof r.data === 'string' ? encoder.encode(r.data) : (r.data ?? new Uint8Array()),
      });
    if ('reply' in answer) send(answer.reply);
    else {
      begin();
      performRead(options.store, answer.read).then(
        (r) => {
          send(r);
          end();
        },
        (error: Error) => {
          fatal(error);
          end();
        },
      );
    }
    return true;
  }

  let ownTid = 0;
  /** The cluster log line Ceph writes when a leader forms a quorum (Monitor::win_election). */
  function logQuorum() {
    const ctx = actor.getSnapshot().context;
    ownTid += 1;
    const names = ctx.quorum.map((r) => ctx.monmap.mons[r]?.name ?? `?${r}`);
    actor.send({
      type: 'monitor.command',
      request: {
        client: `mon.${ctx.name}`,
        tid: ownTid,
        cmd: [
          'log',
          `mon.${ctx.name} is new leader, mons ${names.join(',')} in quorum (ranks ${ctx.quorum.join(',')})`,
        ],
        receivedAt: now(),
      },
    });
  }

  const handle: MonitorHandle = {
    name: loaded.name,
    fsid: loaded.fsid,
    actor,
    stopped,
    state() {
      return monitorStateName(actor.getSnapshot()) as MonitorStateName;
    },
    isReadable() {
      return isReadable(actor.getSnapshot());
    },
    isWriteable() {
      return isWriteable(actor.getSnapshot());
    },
    refusedMessages: () => refusedTotal,
    authEntity,
    monStatus() {
      const snapshot = actor.getSnapshot();
      return monStatus(snapshot.context, statusFacts(snapshot, now()));
    },
    quorumStatus() {
      const snapshot = actor.getSnapshot();
      return quorumStatus(snapshot.context, statusFacts(snapshot, now()));
    },
    async stop() {
      if (stopping) return stopped;
      stopping = true;
      actor.send({ type: 'monitor.shutdown' });
      actor.stop();
      resolveStopped();
      return stopped;
    },
    drain() {
      return busy === 0 ? Promise.resolve() : new Promise<void>((resolve) => drained.push(resolve));
    },
  };

  actor.start();
  return handle;
}
