// The PaxosService template (Ceph's src/mon/PaxosService.{h,cc}, the first seed): one statechart
// that turns Paxos into a service. A service is a pure definition — Ceph's hooks — and
// `createPaxosService(definition)` makes its child actor. The template owns the flow:
//
//   request → wait until readable → preprocess_query (answer reads and stop)
//           → a peon forwards to the leader (mon.forward; the answer returns by mon.route)
//           → wait until writeable → prepare_update (mutate pending, or answer an error)
//           → should_propose → propose_pending (encode_pending) → the answer after the commit.
//
// State in the statechart: `proposal` (idle, delaying for paxos_propose_interval, gathering,
// proposing: Ceph's `proposing` flag). The monitor's role is the monitor's (its view, in the
// context): the template keeps no copy of it in states of its own.
// Readability is Ceph's PaxosService::is_readable: Paxos readable, and this service has applied
// every committed version Paxos knows of (its update_from_paxos ran) — so what a service answers
// from memory or from the store is never older than what the monitor has committed.
import { enqueueActions, raise, setup } from 'xstate';
import type { MonMap, MonRoute } from '../transport/messages.ts';
import { type CommandDeclaration, commandPerm } from './caps.ts';
import type {
  AppliedOp,
  CommandReplyData,
  IoEffectsEvent,
  ReadPlan,
  ReplyTarget,
  ServiceRead,
  StoreAppliedEvent,
  StoreOp,
} from './effects.ts';
import { limits } from './limits.ts';
import {
  admit,
  answerOf,
  applySessionOps,
  createSessions,
  recordAnswers,
  requestKey,
  type Sessions,
  type SessionsBoot,
  sessionOps,
  sessionPrefix,
} from './sessions.ts';

/** A command as a service receives it. */
export interface ServiceRequest extends ReplyTarget {
  inbuf?: Uint8Array;
  /** Wall-clock milliseconds when the monitor received it (the runtime stamps it; log entries use it). */
  receivedAt: number;
  /**
   * The client's deadline for this request (wall-clock ms since the epoch), the same in every
   * attempt: an update is applied at most once and only before it (machines/sessions.ts).
   */
  deadline?: number;
  /**
   * Set by the read fast path when this monitor's preprocess_query, run as the request arrived
   * with the service readable, found it an update: the service's dispatch goes on to the update
   * path without running preprocess_query a second time (Ceph runs it once per dispatch). Only
   * the runtime sets it, never the wire; prepare_update re-checks what it depends on, as Ceph's
   * does (a change committed in between is seen there).
   */
  update?: true;
}

export type Reply = CommandReplyData;

/** preprocess_query's answer: a reply, a read from the store, or null (an update: go on). */
export type Preprocessed = { reply: Reply } | { read: ReadPlan } | null;

/** What the template tells a definition about the monitor. */
export interface MonitorView {
  name: string;
  rank: number;
  monmap: MonMap;
  electionEpoch: number;
  quorum: number[];
  leader: number;
  role: 'none' | 'peon' | 'leader';
  /** Clock skew of each monitor against the leader, by name, in ms (the leader's time checks). */
  clockSkewsMs: Record<string, number>;
}

/** Versions of this service's own history (PaxosService's first_committed / last_committed). */
export interface ServiceVersions {
  firstCommitted: number;
  lastCommitted: number;
}

/**
 * A PaxosService, as pure functions of its state (Ceph's virtual hooks). `State` is what the
 * service keeps in memory; `Pending` is its pending change (Ceph's pending_inc).
 */
export interface ServiceDefinition<State = unknown, Pending = unknown> {
  /** The service name (`config-key`, `monmap`, `log`, `health`). */
  name: string;
  /** The store prefix of its versioned history (`<prefix>/first_committed`, `last_committed`, `<N>`). */
  prefix: string;
  /** Whether this service handles a command (Monitor::dispatch routes by command prefix). */
  handles(cmd: string[]): boolean;
  /**
   * The commands it handles with the perm each needs and the names of its arguments (Ceph's
   * MonCommands.h); machines/caps.ts `commandPerm` finds a command's entry by its longest prefix.
   * Without a table every command of the service needs `rw`; a command the table does not
   * declare needs `rwx`.
   */
  commands?: readonly CommandDeclaration[];
  /** init: the in-memory state from what the store held at start-up. */
  init(loaded: unknown): State;
  /** on_restart: called on every bootstrap. */
  onRestart?(state: State): State;
  /** create_initial: the first proposal of a brand-new cluster (version 1). */
  createInitial?(state: State, view: MonitorView): Pending;
  /** create_pending: an empty pending change. */
  createPending(state: State): Pending;
  /** preprocess_query: answer what needs no change. */
  preprocessQuery(state: State, request: ServiceRequest, view: MonitorView): Preprocessed;
  /** prepare_update: add the request to `pending`; an `error` answers at once and changes nothing. */
  prepareUpdate(
    state: State,
    pending: Pending,
    request: ServiceRequest,
    view: MonitorView,
  ): { pending: Pending; reply: Reply } | { error: Reply };
  /** Whether the pending change is worth proposing (should_propose); default: yes. */
  shouldPropose?(state: State, pending: Pending): boolean;
  /** encode_pending: the ops that apply `pending` as `version` of this service. */
  encodePending(state: State, pending: Pending, version: number): StoreOp[];
  /** encode_full: a full copy of the state (stashed every paxos_stash_full_interval versions). */
  encodeFull?(state: State, version: number): StoreOp[];
  /** update_from_paxos: the state after a committed version's ops (on every monitor). */
  updateFromPaxos(state: State, ops: AppliedOp[], versions: ServiceVersions): State;
  /** on_active: the service became active (readable) after an election or a commit. */
  onActive?(state: State, view: MonitorView): State;
  /** tick (leader and peons): commands the service issues to itself, e.g. a health update. */
  tick?(state: State, view: MonitorView): { cmd: string[]; inbuf?: Uint8Array }[];
  /** get_trim_to: versions below this may be trimmed (0: never). */
  getTrimTo?(state: State, versions: ServiceVersions): number;
}

export interface ServiceInput {
  monitor: MonitorView;
  versions: ServiceVersions;
  loaded: unknown;
  /**
   * The remembered answers and clock found in the store at start (machines/sessions.ts): a
   * restarted leader must still recognise a retry (or a peon's resent forward) of an update it
   * committed before.
   */
  sessions?: SessionsBoot;
  /** paxos_propose_interval (0: propose at once). */
  proposeIntervalMs: number;
  /** paxos_propose_gather (0: off): see MonConfig.paxosProposeGatherMs. */
  proposeGatherMs?: number;
  /** paxos_service_trim_min / paxos_service_trim_max. */
  trimMin: number;
  trimMax: number;
  /** Requests waiting to be readable or writeable, at most (beyond: EAGAIN). */
  waitingMax?: number;
  /** mon_session_answers_max: beyond it, new updates are answered EAGAIN until answers expire. */
  answersMax?: number;
  /** mon_client_deadline_max: an update's deadline may be at most this far ahead. */
  deadlineMaxMs?: number;
  /**
   * This service's slot among the monitor's services: its forward tids are slot + k ×
   * forwardTidStride, unique in the monitor (as Ceph's routed_request_tid is), so a mon.route
   * reply goes to the one service that forwarded it.
   */
  forwardSlot?: number;
  /** The Paxos version the store already holds at start-up: applied before this service began. */
  appliedPaxosVersion?: number;
}

interface Routed {
  request: ServiceRequest;
  forwardTid: number;
  /**
   * The leader it was forwarded to, named in the answer's LeaderHint — for an update only (a
   * read an unreadable peon forwarded must not send the client's reads to the leader).
   */
  leader?: { name: string; addr: string };
}

export interface ServiceContext {
  state: unknown;
  pending: unknown;
  havePending: boolean;
  /** Answers owed once the pending change commits (C_Committed in Ceph). */
  pendingReplies: OwedReply[];
  /**
   * The change in flight (Ceph's `proposing`): its answers travel with it (Paxos answers them
   * once it commits, or EAGAIN if it is abandoned); `owed` keeps them for a retry to find, and
   * `replies` holds the answers owed to retries that arrived while it was in flight.
   */
  proposing: { id: string; version: number; owed: OwedReply[]; replies: OwedReply[] } | null;
  versions: ServiceVersions;
  monitor: MonitorView;
  /**
   * Paxos as the monitor last told this service (PaxosStamp): the monitor does not send every
   * change to every service, only with the events it sends it anyway and to a service that may
   * be waiting for it (machines/monitor.ts serviceNews).
   */
  paxos: PaxosStamp;
  /** The last Paxos version whose ops this service has seen (update_from_paxos). */
  appliedPaxosVersion: number;
  waitingForReadable: ServiceRequest[];
  waitingForWriteable: ServiceRequest[];
  /** Requests this monitor forwarded to the leader, by forward tid (Monitor::routed_requests). */
  routed: Routed[];
  nextForwardTid: number;
  /** What this service remembers of its clients' updates: at most once (machines/sessions.ts). */
  sessions: Sessions;
  /** The latest wall-clock time the runtime told this service (requests' receivedAt, ticks). */
  nowMs: number;
  /**
   * Leader: requests to gather before the next proposal (paxos_propose_gather): those in flight
   * when the last one committed, answered or pending; 0 proposes at once.
   */
  gatherTarget: number;
  /**
   * The options, in one object: XState copies the context with Object.assign at every assign,
   * and V8 turns a copy of more than 19 properties into a slow dictionary object.
   */
  settings: {
    proposeIntervalMs: number;
    proposeGatherMs: number;
    trimMin: number;
    trimMax: number;
    waitingMax: number;
    answersMax: number;
    deadlineMaxMs: number;
  };
  proposalSeq: number;
}

/**
 * Paxos as a service needs it: readable and writeable (Paxos::is_readable/is_writeable), the
 * last committed version, and the last version the monitor has applied and handed to the
 * services it concerns (`applied`; absent: what the service applied itself). A service is
 * readable once every committed version is applied.
 */
export interface PaxosStamp {
  readable: boolean;
  writeable: boolean;
  lastCommitted: number;
  applied?: number;
}

/** Every event the monitor sends a service may carry Paxos as it stands then. */
type Stamped = { paxos?: PaxosStamp };

export type ServiceEvent =
  | ({ type: 'service.request'; request: ServiceRequest } & Stamped)
  /** Requests that arrived together, dispatched in order in one step. */
  | ({ type: 'service.requests'; requests: ServiceRequest[] } & Stamped)
  | ({ type: 'service.monitor'; monitor: MonitorView } & Stamped)
  /** PaxosService::tick; `now` is the wall clock of the runtime (stamps self-issued requests). */
  | ({ type: 'service.tick'; now: number; clockSkewsMs?: Record<string, number> } & Stamped)
  /** Paxos changed while this service may be waiting for it (a request held until readable). */
  | {
      type: 'paxos.status';
      firstCommitted?: number;
      lastCommitted: number;
      readable: boolean;
      writeable: boolean;
      applied?: number;
    }
  /** A committed version that concerns this service (its prefix), applied to the store. */
  | (StoreAppliedEvent & Stamped)
  | {
      type: 'paxos.committed';
      version: number;
      ids: string[];
      status: { firstCommitted: number; lastCommitted: number; readable: boolean; writeable: boolean };
      paxos?: PaxosStamp;
    }
  | { type: 'paxos.aborted'; ids: string[]; reason: string }
  /** Replies (mon.route) to this service's forwards that arrived together: one event, not one per reply. */
  | ({ type: 'service.routes'; routes: MonRoute[] } & Stamped)
  /** Internal: the proposal timer fired, or a step wants a proposal now. */
  | { type: 'service.propose' };

/**
 * Whether a committed version's ops concern a service: its own prefix (every version a service
 * commits writes `<prefix>/last_committed`), or its remembered answers. Only those versions
 * reach the service (update_from_paxos); the others move `applied` in its PaxosStamp.
 */
export function opsConcern(prefix: string, ops: readonly AppliedOp[]): boolean {
  const own = `${prefix}_`;
  for (const op of ops) {
    if (op.prefix === prefix) return true;
    if (op.prefix === sessionPrefix && (op.op === 'erase_range' || op.key.startsWith(own))) return true;
  }
  return false;
}

/** paxos_stash_full_interval (Ceph's default 25). */
const stashFullInterval = 25;
/** Forward tids step by this, one slot per service of a monitor (at most this many services). */
export const forwardTidStride = 64;

/** An answer owed once the pending change commits (C_Committed), with what sessions.ts records of it. */
interface OwedReply {
  target: ServiceRequest;
  reply: Reply;
  key: string;
}
const EAGAIN = -11;

/**
 * Monitor::handle_route: each reply goes to the client whose request this monitor forwarded
 * (by forward tid); a reply for a tid no longer routed (answered already, or the request was
 * dropped by a restart) is ignored.
 */
function routeReplies(
  c: ServiceContext,
  routes: MonRoute[],
  step: { io: Required<Pick<IoEffectsEvent, 'replies'>> },
  prefixOf: (cmd: string[]) => string | undefined,
): ServiceContext {
  const open = new Map(c.routed.map((r) => [r.forwardTid, r]));
  for (const route of routes) {
    const routed = open.get(route.tid);
    if (!routed) continue;
    // Forward tids start over when a monitor restarts: an answer to a forward of this monitor's
    // previous incarnation can carry the tid of a new one (simulator seed 60607: a client got
    // another key's value). It must name the same client request.
    if (
      route.client !== undefined &&
      (route.client !== routed.request.client || route.clientTid !== routed.request.tid)
    )
      continue;
    // The answer says where the request went (LeaderHint): the client may send the next ones
    // of that command straight to the leader. Not Ceph's: its MonClient stays with the monitor
    // it hunted to, and every update costs that monitor a forward and a route.
    const prefix = routed.leader && prefixOf(routed.request.cmd);
    step.io.replies.push({
      target: routed.request,
      reply: routed.leader && prefix ? { ...route.reply, leader: { ...routed.leader, prefix } } : route.reply,
    });
    open.delete(route.tid);
  }
  return open.size === c.routed.length ? c : { ...c, routed: [...open.values()] };
}

/**
 * PaxosService::is_readable: Paxos is readable (lease valid, something committed) and this
 * service has applied every version Paxos has committed (its update_from_paxos ran), so what it
 * answers — from memory or from the store — is never older than what the monitor committed.
 */
export function isServiceReadable(
  c: Pick<ServiceContext, 'paxos' | 'appliedPaxosVersion' | 'versions'>,
): boolean {
  const applied = Math.max(c.appliedPaxosVersion, c.paxos.applied ?? 0);
  return c.paxos.readable && applied >= c.paxos.lastCommitted && c.versions.lastCommitted > 0;
}

/**
 * The read fast path (Ceph answers preprocess_query in the dispatching thread): given a
 * service's current snapshot, its answer to a read — or null when the request must go through
 * the statechart (not readable now, an update, or the service wants to wait). Pure.
 */
export function preprocessNow(
  definition: ServiceDefinition,
  context: ServiceContext,
  request: ServiceRequest,
  paxos: PaxosStamp,
): FastPath {
  // Paxos as the monitor has it now: the service's own copy is only as new as its last event.
  if (!isServiceReadable({ ...context, paxos })) return null;
  return definition.preprocessQuery(context.state, request, context.monitor) ?? { update: true };
}

/**
 * The read fast path's answer: a reply or a read (answered now), `update` (preprocess_query ran
 * and found an update: the statechart takes it on from prepare_update), or null (the statechart
 * decides everything: no such service, or not readable now).
 */
export type FastPath = Exclude<Preprocessed, null> | { update: true } | null;

export function createPaxosService<State, Pending>(definition: ServiceDefinition<State, Pending>) {
  const def = definition as unknown as ServiceDefinition<unknown, unknown>;
  /**
   * The declared prefix of a command this service forwarded (machines/caps.ts commandPerm), for
   * the answer's LeaderHint; the whole command when the service declares none, and no hint when
   * that is longer than a hint may be (a value given as an argument).
   */
  const updatePrefix = (cmd: string[]): string | undefined => {
    const prefix = commandPerm([def], cmd)?.prefix;
    return prefix && prefix.length <= limits.leaderHintPrefixMax ? prefix : undefined;
  };
  const view = (context: ServiceContext): MonitorView => context.monitor;

  type Effects = Required<Pick<IoEffectsEvent, 'replies' | 'reads' | 'messages'>> & {
    proposals: { id: string; ops: StoreOp[]; replies: { target: ReplyTarget; reply: Reply }[] }[];
  };
  type Step = {
    context: Partial<ServiceContext>;
    io: Effects;
    propose: boolean;
    /**
     * Contexts and lists this step made: no snapshot holds them yet, so the rest of the step may
     * change them in place. A batch of n requests then costs n appends instead of n copies of a
     * growing list and of the context (O(n²): under 64 writes in flight, 14% of a leader's
     * allocation was `prepare`'s copies).
     */
    made: WeakSet<object>;
  };
  const emptyStep = (): Step => ({
    context: {},
    io: { replies: [], reads: [], messages: [], proposals: [] } as Effects,
    propose: false,
    made: new WeakSet(),
  });

  /** `c`, to change in place: itself if this step made it, else a copy that this step made. */
  function draft(c: ServiceContext, step: Step): ServiceContext {
    if (step.made.has(c)) return c;
    const copy = { ...c };
    step.made.add(copy);
    return copy;
  }

  /** `list` with `item` appended: in place if this step made the list, else in a copy. */
  function appended<T>(list: T[], item: T, step: Step): T[] {
    if (step.made.has(list)) {
      list.push(item);
      return list;
    }
    const copy = [...list, item];
    step.made.add(copy);
    return copy;
  }

  const readable = isServiceReadable;
  const writeable = (c: ServiceContext) =>
    c.monitor.role === 'leader' && c.paxos.writeable && c.proposing === null && readable(c);

  /** PaxosService::dispatch for one request, given the context as it stands. */
  function dispatch(context: ServiceContext, request: ServiceRequest, step: Step): ServiceContext {
    let c = context;
    if (!readable(c) && c.monitor.role === 'peon' && c.monitor.monmap.mons[c.monitor.leader]) {
      // Ceph's peon waits to be readable (its lease is cancelled by every begin) before it even
      // looks at a request; under a steady stream of writes that is most of the time. paxmon
      // hands the request to the leader at once instead: the leader runs the whole dispatch
      // (preprocess_query under its own lease, or prepare_update), so reads stay linearizable.
      // Whether it is an update (for the answer's LeaderHint only): preprocess_query's verdict on
      // this monitor's state, which may be behind — the leader decides what it is, and a wrong
      // guess costs the client no more than a forward.
      const update = request.update === true || def.preprocessQuery(c.state, request, view(c)) === null;
      return forward(c, request, step, update);
    }
    if (!readable(c)) {
      if (c.waitingForReadable.length >= c.settings.waitingMax) {
        step.io.replies.push({
          target: request,
          reply: { r: EAGAIN, rs: `mon.${c.monitor.name} is busy (not readable); retry` },
        });
        return c;
      }
      c = { ...c, waitingForReadable: [...c.waitingForReadable, request] };
      return c;
    }
    const pre = request.update ? null : def.preprocessQuery(c.state, request, view(c));
    if (pre && 'reply' in pre) {
      step.io.replies.push({ target: request, reply: pre.reply });
      return c;
    }
    if (pre && 'read' in pre) {
      step.io.reads.push({ target: request, plan: pre.read } satisfies ServiceRead);
      return c;
    }
    // An update. A retry of one already applied gets that application's answer; a retry of one
    // in the pending change or in flight gets its answer when it commits.
    const done = answerOf(c.sessions, request.client, request.tid);
    if (done) {
      step.io.replies.push({ target: request, reply: done });
      return c;
    }
    const key = requestKey(request.client, request.tid);
    const owed = c.pendingReplies.find((p) => p.key === key);
    if (owed) {
      const d = draft(c, step);
      d.pendingReplies = appended(c.pendingReplies, { ...owed, target: request }, step);
      return d;
    }
    const inFlight = c.proposing?.owed.find((p) => p.key === key);
    if (c.proposing && inFlight) {
      const proposing = {
        ...c.proposing,
        replies: [...c.proposing.replies, { ...inFlight, target: request }],
      };
      return { ...c, proposing };
    }
    // Not applied yet: only before its deadline, and only once (machines/sessions.ts).
    const refused = admit(c.sessions, request, Math.max(c.nowMs, request.receivedAt), c.settings);
    if (refused) {
      step.io.replies.push({ target: request, reply: refused });
      return c;
    }
    if (c.monitor.role !== 'leader') return forward(c, request, step, true);
    if (!writeable(c)) {
      if (c.waitingForWriteable.length >= c.settings.waitingMax) {
        step.io.replies.push({
          target: request,
          reply: { r: EAGAIN, rs: `mon.${c.monitor.name} is busy (not writeable); retry` },
        });
        return c;
      }
      // The same request again (a client retry) while it waits: answer both when it commits.
      return { ...c, waitingForWriteable: [...c.waitingForWriteable, request] };
    }
    return prepare(c, request, step);
  }

  /** Monitor::forward_request_leader; `update`: known to be one (its answer names the leader). */
  function forward(c: ServiceContext, request: ServiceRequest, step: Step, update: boolean): ServiceContext {
    const leader = c.monitor.monmap.mons[c.monitor.leader];
    if (c.monitor.role !== 'peon' || !leader) {
      // Not in a quorum: wait for one (the request is resent once there is a leader).
      return { ...c, waitingForReadable: [...c.waitingForReadable, request] };
    }
    const forwardTid = c.nextForwardTid;
    step.io.messages.push({
      to: `mon.${leader.name}`,
      addr: leader.addr,
      msg: {
        type: 'mon.forward',
        tid: forwardTid,
        client: request.client,
        clientTid: request.tid,
        electionEpoch: c.monitor.electionEpoch,
        request: {
          cmd: request.cmd,
          ...(request.inbuf ? { inbuf: request.inbuf } : {}),
          ...(request.deadline !== undefined ? { deadline: request.deadline } : {}),
        },
      },
    });
    return {
      ...c,
      nextForwardTid: forwardTid + forwardTidStride,
      routed: [
        ...c.routed,
        { request, forwardTid, ...(update ? { leader: { name: leader.name, addr: leader.addr } } : {}) },
      ],
    };
  }

  /** prepare_update, then should_propose. */
  function prepare(c: ServiceContext, request: ServiceRequest, step: Step): ServiceContext {
    const pending = c.havePending ? c.pending : def.createPending(c.state);
    const key = requestKey(request.client, request.tid);
    const result = def.prepareUpdate(c.state, pending, request, view(c));
    if ('error' in result) {
      step.io.replies.push({ target: request, reply: result.error });
      return c;
    }
    step.propose = def.shouldPropose ? def.shouldPropose(c.state, result.pending) : true;
    const d = draft(c, step);
    d.pending = result.pending;
    d.havePending = true;
    d.pendingReplies = appended(c.pendingReplies, { target: request, reply: result.reply, key }, step);
    return d;
  }

  /** PaxosService::propose_pending: encode the pending change as the next version and hand it to paxos. */
  function proposePending(c: ServiceContext, step: Step): ServiceContext {
    if (!c.havePending || c.proposing || c.monitor.role !== 'leader') return c;
    const version = c.versions.lastCommitted + 1;
    const ops: StoreOp[] = [...def.encodePending(c.state, c.pending, version)];
    // paxos_stash_full_interval: every so many versions, a full copy of the state beside the
    // incremental, so a reader never replays more than that many incrementals.
    if (def.encodeFull && version % stashFullInterval === 0) ops.push(...def.encodeFull(c.state, version));
    ops.push({ op: 'put_number', prefix: def.prefix, key: 'last_committed', value: version });
    if (c.versions.firstCommitted === 0)
      ops.push({ op: 'put_number', prefix: def.prefix, key: 'first_committed', value: version });
    // The answers travel with the version that applies them, and expire by their deadlines
    // (machines/sessions.ts): a retry, a late frame or a resent forward is never applied again.
    const answers: { key: string; reply: Reply; deadlineMs: number }[] = [];
    const recorded = new Set<string>();
    for (const p of c.pendingReplies) {
      if (p.key.startsWith('mon.') || recorded.has(p.key)) continue;
      recorded.add(p.key);
      answers.push({ key: p.key, reply: p.reply, deadlineMs: p.target.deadline ?? 0 });
    }
    ops.push(...sessionOps(c.sessions, def.prefix, version, c.nowMs, answers));
    // PaxosService::maybe_trim: drop versions of this service's history nobody needs.
    ops.push(...trimOps(c));
    const id = `${def.name}:${version}:${c.proposalSeq}`;
    step.io.proposals.push({
      id,
      ops,
      replies: c.pendingReplies.map((p) => ({ target: p.target, reply: p.reply })),
    });
    return {
      ...c,
      havePending: false,
      pending: undefined,
      pendingReplies: [],
      gatherTarget: 0,
      proposalSeq: c.proposalSeq + 1,
      proposing: { id, version, owed: c.pendingReplies, replies: [] },
    };
  }

  function trimOps(c: ServiceContext): StoreOp[] {
    const trimTo = def.getTrimTo?.(c.state, c.versions) ?? 0;
    const first = c.versions.firstCommitted;
    if (trimTo <= first || first === 0) return [];
    if (trimTo - first < c.settings.trimMin) return [];
    const to = Math.min(trimTo, first + c.settings.trimMax);
    const ops: StoreOp[] = [];
    for (let v = first; v < to; v += 1) {
      ops.push({ op: 'erase', prefix: def.prefix, key: String(v) });
    }
    ops.push({ op: 'put_number', prefix: def.prefix, key: 'first_committed', value: to });
    return ops;
  }

  /** Re-dispatch what waited for readable/writeable (C_RetryMessage). */
  function retryWaiting(context: ServiceContext, step: Step): ServiceContext {
    let c = context;
    if (readable(c) && c.waitingForReadable.length) {
      const waiting = c.waitingForReadable;
      c = { ...c, waitingForReadable: [] };
      for (const request of waiting) c = dispatch(c, request, step);
    }
    if (writeable(c) && c.waitingForWriteable.length) {
      const waiting = c.waitingForWriteable;
      c = { ...c, waitingForWriteable: [] };
      for (const request of waiting) c = dispatch(c, request, step);
    }
    return c;
  }

  /** Monitor::resend_routed_requests: after an election, nothing forwarded is lost. */
  function resendRouted(context: ServiceContext, step: Step): ServiceContext {
    if (context.routed.length === 0) return context;
    const routed = context.routed;
    let c: ServiceContext = { ...context, routed: [] };
    for (const { request } of routed) c = dispatch(c, request, step);
    return c;
  }

  function afterStep(c: ServiceContext, step: Step): ServiceContext {
    let next = retryWaiting(c, step);
    // Ceph: propose at once when idle; with paxos_propose_interval > 0 the template waits, and
    // while gathering (paxos_propose_gather) it waits for the requests it expects or the timer.
    if (
      next.havePending &&
      !next.proposing &&
      next.settings.proposeIntervalMs === 0 &&
      !gathering(next) &&
      writeableIgnoringProposal(next)
    ) {
      next = proposePending(next, step);
    }
    return next;
  }

  /**
   * Waiting for more requests before the next proposal. Under a steady load of N clients each
   * with a request in flight, about half of them are answered by one commit while the others
   * wait for the next round, so rounds carry N/2 and pay their fixed share (messages, fsyncs,
   * statechart steps) twice as often as needed. Waiting briefly for the answered clients' next
   * requests makes rounds fuller. With 64 writes in flight over loopback, half of them through
   * peons, an answered client's next request takes 2–4 ms to reach the leader: waiting up to 4 ms
   * gave +5–30% throughput in A/B bench runs (2 ms: about +5%).
   */
  const gathering = (c: ServiceContext) => c.gatherTarget > 0 && c.pendingReplies.length < c.gatherTarget;

  const writeableIgnoringProposal = (c: ServiceContext) => c.monitor.role === 'leader' && c.paxos.writeable;

  function createInitialIfNeeded(c: ServiceContext, step: Step): ServiceContext {
    // PaxosService::_active on a brand-new cluster: the leader proposes version 1.
    if (c.monitor.role !== 'leader' || c.versions.lastCommitted !== 0 || c.proposing || c.havePending)
      return c;
    if (!c.paxos.writeable || !def.createInitial) return c;
    const pending = def.createInitial(c.state, view(c));
    return proposePending({ ...c, pending, havePending: true }, step);
  }

  const run = (context: ServiceContext, body: (c: ServiceContext, step: Step) => ServiceContext) => {
    const step = emptyStep();
    let c = body(context, step);
    c = createInitialIfNeeded(c, step);
    c = afterStep(c, step);
    return { context: c, step };
  };

  return setup({
    types: {
      context: {} as ServiceContext,
      events: {} as ServiceEvent,
      input: {} as ServiceInput,
    },
    delays: {
      proposeInterval: ({ context }) => context.settings.proposeIntervalMs,
      proposeGather: ({ context }) => context.settings.proposeGatherMs,
    },
    actions: {
      run: enqueueActions(({ enqueue, context, event }) => {
        const { context: next, step } = run(context, (c, s) => handle(c, event, s));
        // An event that changed nothing (a status this service ignores) clones no snapshot.
        if (next !== context) enqueue.assign(next);
        // Everything goes to the monitor, which hands proposals to Paxos and effects to io.
        const { proposals, ...io } = step.io;
        for (const proposal of proposals) enqueue.sendParent({ type: 'paxos.propose', ...proposal });
        if (io.replies.length || io.reads.length || io.messages.length) {
          const effects: IoEffectsEvent = { type: 'io.effects', writes: [], ...io };
          enqueue.sendParent(effects);
        }
      }),
    },
  }).createMachine({
    id: `service:${definition.name}`,
    context: ({ input }) => ({
      state: def.init(input.loaded),
      pending: undefined,
      havePending: false,
      pendingReplies: [],
      proposing: null,
      versions: input.versions,
      monitor: input.monitor,
      paxos: { readable: false, writeable: false, lastCommitted: 0, applied: 0 },
      appliedPaxosVersion: input.appliedPaxosVersion ?? 0,
      waitingForReadable: [],
      waitingForWriteable: [],
      routed: [],
      nextForwardTid: forwardTidStride + (input.forwardSlot ?? 0),
      sessions: createSessions(input.sessions),
      nowMs: input.sessions?.clockMs ?? 0,
      gatherTarget: 0,
      settings: {
        proposeIntervalMs: input.proposeIntervalMs,
        proposeGatherMs: input.proposeGatherMs ?? 0,
        trimMin: input.trimMin,
        trimMax: input.trimMax,
        waitingMax: input.waitingMax ?? 10_000,
        answersMax: input.answersMax ?? 262_144,
        deadlineMaxMs: input.deadlineMaxMs ?? 300_000,
      },
      proposalSeq: 1,
    }),
    type: 'parallel',
    on: {
      'service.request': { actions: 'run' },
      'service.requests': { actions: 'run' },
      'service.monitor': { actions: 'run' },
      'service.tick': { actions: 'run' },
      'paxos.status': { actions: 'run' },
      'store.applied': { actions: 'run' },
      'paxos.committed': { actions: 'run' },
      'paxos.aborted': { actions: 'run' },
      'service.routes': { actions: 'run' },
      'service.propose': { actions: 'run' },
    },
    states: {
      proposal: {
        initial: 'idle',
        states: {
          idle: {
            always: [
              { guard: ({ context }) => context.proposing !== null, target: 'proposing' },
              {
                guard: ({ context }) =>
                  context.havePending &&
                  context.settings.proposeIntervalMs > 0 &&
                  context.monitor.role === 'leader',
                target: 'delaying',
              },
              {
                guard: ({ context }) =>
                  context.havePending && gathering(context) && context.monitor.role === 'leader',
                target: 'gathering',
              },
            ],
          },
          // paxos_propose_gather: until the requests expected arrived (afterStep proposes) or the
          // timer fires.
          gathering: {
            after: { proposeGather: { target: 'idle', actions: raise({ type: 'service.propose' }) } },
            always: [{ guard: ({ context }) => context.proposing !== null, target: 'proposing' }],
          },
          // should_propose(delay): paxos_propose_interval after the last commit.
          delaying: {
            after: { proposeInterval: { target: 'idle', actions: raise({ type: 'service.propose' }) } },
            always: [{ guard: ({ context }) => context.proposing !== null, target: 'proposing' }],
          },
          proposing: {
            always: [{ guard: ({ context }) => context.proposing === null, target: 'idle' }],
          },
        },
      },
    },
  });

  /**
   * C_Committed: the proposal in flight committed. Paxos answered its clients with the commit;
   * the retries that arrived meanwhile are answered here.
   */
  function committed(current: ServiceContext, ids: string[], step: Step): ServiceContext {
    const proposing = current.proposing;
    if (!proposing || !ids.includes(proposing.id)) return current;
    for (const p of proposing.replies) step.io.replies.push({ target: p.target, reply: p.reply });
    // Remembered now, whichever of this and the version's store.applied comes first.
    recordAnswers(
      current.sessions,
      proposing.version,
      proposing.owed
        .filter((p) => !p.key.startsWith('mon.'))
        .map((p) => [p.key, p.reply.r, p.reply.rs, p.target.deadline ?? 0]),
    );
    // paxos_propose_gather: the clients just answered are likely to send again at once.
    // The requests that arrived during the round wait for writeable (Ceph's wait_for_writeable
    // while proposing) and become pending with this step: they count toward the target too, or
    // the round after this one would leave at once with them alone and rounds would stay half full.
    const answered = proposing.owed.length;
    const gatherTarget =
      current.settings.proposeGatherMs > 0 && answered > 1
        ? answered + current.pendingReplies.length + current.waitingForWriteable.length
        : 0;
    let next: ServiceContext = { ...current, proposing: null, gatherTarget };
    if (def.onActive) next = { ...next, state: def.onActive(next.state, view(next)) };
    return next;
  }

  /** The template's reaction to every event (pure over the context). */
  function handle(context: ServiceContext, event: ServiceEvent, step: Step): ServiceContext {
    const stamp = 'paxos' in event ? event.paxos : undefined;
    const c = stamp ? { ...context, paxos: stamp } : context;
    switch (event.type) {
      case 'service.request':
        return dispatch(heard(c, event.request.receivedAt), event.request, step);
      case 'service.requests': {
        let latest = c.nowMs;
        for (const request of event.requests) if (request.receivedAt > latest) latest = request.receivedAt;
        let next = heard(c, latest);
        for (const request of event.requests) next = dispatch(next, request, step);
        return next;
      }
      case 'service.monitor': {
        const before = c.monitor;
        let next: ServiceContext = { ...c, monitor: event.monitor };
        const newTerm =
          before.electionEpoch !== event.monitor.electionEpoch || before.role !== event.monitor.role;
        if (newTerm) {
          next = { ...next, gatherTarget: 0 };
          if (event.monitor.role === 'none' && def.onRestart)
            next = { ...next, state: def.onRestart(next.state) };
          // A deposed leader proposes nothing it held: its pending change is dropped, and what was
          // pending, in flight or waiting to be writeable is answered EAGAIN, so the client retries
          // at the new leader (which answers a retry of an update that did commit from its
          // record: machines/sessions.ts). Holding a request to propose it the next time this
          // monitor leads would apply it long after its client moved on.
          if (before.role === 'leader' && event.monitor.role !== 'leader') {
            const rs = 'leader changed before the update committed; retry';
            for (const p of [...next.pendingReplies, ...(next.proposing?.replies ?? [])])
              step.io.replies.push({ target: p.target, reply: { r: EAGAIN, rs } });
            for (const request of next.waitingForWriteable)
              step.io.replies.push({
                target: request,
                reply: { r: EAGAIN, rs: `mon.${next.monitor.name} is no longer the leader; retry` },
              });
            next = {
              ...next,
              pending: undefined,
              havePending: false,
              pendingReplies: [],
              proposing: null,
              waitingForWriteable: [],
            };
          }
          if (event.monitor.role !== 'none') next = resendRouted(next, step);
        }
        return next;
      }
      case 'paxos.status':
        return {
          ...c,
          paxos: {
            readable: event.readable,
            writeable: event.writeable,
            lastCommitted: event.lastCommitted,
            ...(event.applied !== undefined ? { applied: event.applied } : {}),
          },
        };
      case 'store.applied': {
        let next: ServiceContext = {
          ...c,
          appliedPaxosVersion: Math.max(c.appliedPaxosVersion, event.version),
        };
        const mine = event.ops.filter((o) => o.prefix === def.prefix);
        let versions = c.versions;
        for (const op of mine) {
          if (op.op !== 'put') continue;
          if (op.key === 'last_committed') versions = { ...versions, lastCommitted: readNumber(op.value) };
          if (op.key === 'first_committed') versions = { ...versions, firstCommitted: readNumber(op.value) };
        }
        if (mine.length)
          next = { ...next, versions, state: def.updateFromPaxos(next.state, event.ops, versions) };
        applySessionOps(next.sessions, def.prefix, event.ops);
        // On the leader, the version that commits this service's proposal says so.
        return event.committed ? committed(next, event.committed, step) : next;
      }
      case 'paxos.committed': {
        const { readable, writeable, lastCommitted } = event.status;
        const current: ServiceContext = stamp ? c : { ...c, paxos: { readable, writeable, lastCommitted } };
        return committed(current, event.ids, step);
      }
      case 'paxos.aborted': {
        // Paxos answered the proposal's own clients (EAGAIN); the retries that joined it are ours.
        if (!c.proposing || !event.ids.includes(c.proposing.id)) return c;
        for (const p of c.proposing.replies) {
          step.io.replies.push({
            target: p.target,
            reply: { r: EAGAIN, rs: `update not committed (${event.reason}); retry` },
          });
        }
        return { ...c, proposing: null };
      }
      case 'service.routes':
        return routeReplies(c, event.routes, step, updatePrefix);
      case 'service.tick': {
        // The leader's time checks, as they stand (the health service reports MON_CLOCK_SKEW).
        const t = event.clockSkewsMs
          ? { ...c, monitor: { ...c.monitor, clockSkewsMs: event.clockSkewsMs } }
          : c;
        // Nothing new while a change is pending or in flight: the tick after it sees the result.
        if (t.havePending || t.proposing) return heard(t, event.now);
        let next = heard(t, event.now);
        for (const own of def.tick?.(t.state, view(t)) ?? []) {
          const request: ServiceRequest = {
            client: `mon.${t.monitor.name}`,
            tid: next.nextForwardTid,
            cmd: own.cmd,
            receivedAt: event.now,
            ...(own.inbuf ? { inbuf: own.inbuf } : {}),
          };
          next = dispatch({ ...next, nextForwardTid: next.nextForwardTid + forwardTidStride }, request, step);
        }
        return next;
      }
      case 'service.propose': {
        // The delay or the gathering is over: from now on, propose as soon as writeable.
        const next = c.gatherTarget ? { ...c, gatherTarget: 0 } : c;
        return writeableIgnoringProposal(next) ? proposePending(next, step) : next;
      }
    }
  }
}

/** The runtime's latest wall-clock time, as this service has heard it (never goes back). */
function heard(c: ServiceContext, nowMs: number): ServiceContext {
  return nowMs > c.nowMs ? { ...c, nowMs } : c;
}

function readNumber(bytes: Uint8Array): number {
  if (bytes.length !== 8) return 0;
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}
