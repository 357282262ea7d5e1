// The Paxos core: Ceph's src/mon/Paxos.cc as a child actor of the monitor (DESIGN.md §2).
//
// `idle` is Ceph's Paxos outside a quorum (restart() has run). In a quorum the actor is either
// `leader` or `peon`, each a parallel state: `round` holds Ceph's states (recovering, active,
// updating, updating_previous, writing, writing_previous, refresh), `lease` whether reads may be
// served, and timer regions (lease renewal and lease-ack timeout on the leader, lease timeout on
// a peon). Every timeout that Ceph answers with mon->bootstrap() sends `paxos.bootstrap` to the
// monitor.
//
// Durability is ordered as data: every step's writes go to the I/O actor in one Transaction and
// the step's messages are sent only after it is durable. So a peon's `accept` leaves only once
// the begin value is on disk (Ceph's handle_begin applies before replying), and the leader's own
// accept counts only when its `io.written` for the begin arrives. Two marked exceptions, both
// about values Paxos already holds safe elsewhere: the leader's begin leaves while its own copy
// is written, and a commit is applied without an fsync of its own (the whole quorum accepted the
// value durably first).
//
// Leases differ from Ceph's in three ways, each explained where it is made: no lease per commit
// (a begin suspends a peon's lease, the commit restores it); a peon's lease is bounded by lease
// tokens, not by the leader's clock (handleLease); and a peon reads under a lease only once a
// later lease confirms the whole quorum acked it.
import { and, assign, enqueueActions, raise, sendParent, setup, stateIn } from 'xstate';
import type { EntityName, MonMap, MonPaxos, PaxosValue } from '../transport/messages.ts';
import {
  effects,
  type IoEffectsEvent,
  type IoWrittenEvent,
  type MessageEvent,
  type Outgoing,
  type StoreAppliedEvent,
  type StoreOp,
} from './effects.ts';
import { rankOf } from './elector.ts';

export interface PaxosTimeouts {
  monLeaseMs: number;
  monLeaseRenewIntervalFactor: number;
  monLeaseAckTimeoutFactor: number;
  monAcceptTimeoutFactor: number;
  /** Trim settings (Paxos::trim); absent: never trim. */
  paxosMin?: number;
  paxosTrimMin?: number;
  paxosTrimMax?: number;
}

/** An accepted but uncommitted value on disk at `version` (= last_committed + 1), with its pn. */
export interface Uncommitted {
  version: number;
  pn: number;
  value: Uint8Array;
}

export interface PaxosInput {
  rank: number;
  monmap: MonMap;
  firstCommitted: number;
  lastCommitted: number;
  acceptedPn: number;
  lastPn: number;
  uncommitted: Uncommitted | null;
  timeouts: PaxosTimeouts;
}

export interface Proposal {
  id: string;
  value: Uint8Array;
}

export interface PaxosContext {
  rank: number;
  monmap: MonMap;
  electionEpoch: number;
  quorum: number[];
  leader: number;
  firstCommitted: number;
  lastCommitted: number;
  acceptedPn: number;
  lastPn: number;
  uncommitted: Uncommitted | null;
  timeouts: PaxosTimeouts;
  /** Leader, recovering: the next collect must use a pn above this (a peon promised it elsewhere). */
  collectAbovePn: number;
  /** Leader, recovering: how many `last` replies carried my pn (num_last; I count). */
  numLast: number;
  /** Leader, recovering: the best uncommitted value reported so far (uncommitted_v/pn/value). */
  recovered: Uncommitted | null;
  /** Leader, updating: ranks that accepted the value in flight. */
  accepted: number[];
  /** Leader: the value in flight (new_value) and the proposals it carries. */
  inFlight: { value: Uint8Array; ids: string[] } | null;
  /** Leader: proposals waiting for the next round (Ceph's pending finishers). */
  queue: Proposal[];
  /** Leader: ranks that acked the current lease. */
  ackedLease: number[];
  /** Ceph's state name of the round (for is_readable/is_writeable and the parent's status). */
  round:
    | 'idle'
    | 'recovering'
    | 'active'
    | 'updating'
    | 'updating_previous'
    | 'writing'
    | 'writing_previous'
    | 'refresh';
  leaseValid: boolean;
  /** Leader: a trim proposal to this version is in flight (Paxos::trim). */
  trimmingTo: number;
  /** Leader: the lease last sent (each extend_lease is one) and the last one every peon acked. */
  leaseSeq: number;
  ackedSeq: number;
  /**
   * The lease promise: having acked a lease, this monitor helps no other leader recover (no
   * `last`, no `collect` of its own) until mon_lease has passed, so nothing can commit while the
   * leader that granted it may still serve reads under it.
   */
  promiseSeq: number;
  promiseActive: boolean;
  promiseEpoch: number;
  /** A collect from another epoch's leader, answered when the promise ends. */
  deferredCollect: { from: EntityName; msg: MonPaxos } | null;
  /** Leader: its own collect waits for its promise to end. */
  collectDeferred: boolean;
  /** The last paxos.status sent to the parent (fc:lc:readable:writeable): only changes are sent. */
  reported: string;
  /** A paxos.report is raised and not handled yet (see assignReporting). */
  reportPending: boolean;
  /** Leader: the lease is to be extended the next time the round is active. */
  renewDue: boolean;
  /** Leader: the last lease token each peon sent (rank → token), echoed in its next lease. */
  peonTokens: Record<number, number>;
  /**
   * Peon: lease tokens. Every last/lease_ack carries a new one; a token's window is mon_lease
   * from its sending, and windows end in token order, so the open ones are
   * (leaseTokensEnded, leaseTokenSeq]. The lease held serves reads until its token's window ends.
   */
  leaseTokenSeq: number;
  leaseTokensEnded: number;
  heldToken: number;
  /** Peon: the token each recent lease (by seq) echoed, until a later lease confirms it. */
  leaseEchoes: { seq: number; token: number }[];
  /**
   * Peon: the pn and last_committed of this leader's collect I answered in this election epoch
   * (pn 0: none yet). The committed values a leader shares after my `last` (share_state) are
   * taken only in that round, and only up to the last_committed its collect announced.
   */
  collected: { pn: number; lastCommitted: number };
}

export type PaxosEvent =
  | { type: 'paxos.leader_init'; electionEpoch: number; quorum: number[] }
  | { type: 'paxos.peon_init'; electionEpoch: number; quorum: number[]; leader: number }
  /** Paxos::restart (bootstrap or a new election): forget the round, fail what was proposed. */
  | { type: 'paxos.restart' }
  | { type: 'paxos.monmap'; monmap: MonMap; rank: number }
  /** PaxosService::propose_pending → Paxos::trigger_propose: one encoded Transaction. */
  | { type: 'paxos.propose'; id: string; value: Uint8Array }
  | MessageEvent<MonPaxos>
  | IoWrittenEvent
  | StoreAppliedEvent
  /** Internal transitions raised by the message handlers. */
  | { type: 'paxos.recovered'; begin: boolean }
  | { type: 'paxos.collect_again'; abovePn: number }
  | { type: 'paxos.begin' }
  | { type: 'paxos.commit_start' }
  | { type: 'paxos.peon_updating' }
  | { type: 'paxos.peon_recovering' }
  | { type: 'paxos.lease_granted' }
  /** Peon: a lease arrived that grants no reads (not confirmed yet, or late): the leader lives. */
  | { type: 'paxos.lease_received' }
  /** Peon: a commit left nothing accepted beyond last_committed (the lease may serve reads again). */
  | { type: 'paxos.peon_committed' }
  /** Leader: mon_lease × mon_lease_renew_interval_factor passed: extend the lease when active. */
  | { type: 'paxos.lease_renew_due' }
  | { type: 'paxos.lease_extended' }
  | { type: 'paxos.lease_all_acked' }
  | { type: 'paxos.lease_expired' }
  /** Delayed: mon_lease after lease `seq` was sent (leader) / acked (peon). */
  | { type: 'paxos.lease_deadline'; seq: number }
  | { type: 'paxos.promise_expired'; seq: number }
  /** Peon: mon_lease after lease token `token` was sent: a lease echoing it is over. */
  | { type: 'paxos.lease_window_end'; token: number }
  /** Peon: the lease held ran out (its token's window ended). */
  | { type: 'paxos.held_lease_ended' }
  /** Internal: send the status as it stands now (see assignReporting). */
  | { type: 'paxos.report' }
  | { type: 'paxos.fail'; reason: string };

export interface PaxosStatus {
  firstCommitted: number;
  lastCommitted: number;
  /** Paxos::is_readable, as of this report. */
  readable: boolean;
  /**
   * The leader takes proposals: it leads with a valid lease and has recovered. Ceph's
   * is_writeable also wants the round idle (active); paxmon queues what arrives during a round
   * for the next one (Paxos::finish_round proposes it), so this does not flip twice per commit.
   */
  writeable: boolean;
}

export type PaxosParentEvent =
  | { type: 'paxos.bootstrap'; reason: string }
  | ({ type: 'paxos.status' } & PaxosStatus)
  /**
   * A round committed `version`; its proposals are applied on the leader and sent to the quorum.
   * It carries the status after the commit (one event per round rather than two).
   */
  | { type: 'paxos.committed'; version: number; ids: string[]; status: PaxosStatus }
  /** Proposals that will not be committed by this leader (the round was abandoned). */
  | { type: 'paxos.aborted'; ids: string[]; reason: string };

const PREFIX = 'paxos';

/** A version_t as the store encodes it: 8 bytes, little-endian. */
export function readVersion(bytes: Uint8Array): number {
  if (bytes.length !== 8) return 0;
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}

// Ceph's is_readable leaves out refresh (services reload then); a paxmon service checks that it
// applied every committed version itself (isServiceReadable), so refresh needs no exception.
const readableRounds = new Set([
  'active',
  'updating',
  'writing',
  'updating_previous',
  'writing_previous',
  'refresh',
]);

type StatusFields = Pick<
  PaxosContext,
  'firstCommitted' | 'lastCommitted' | 'round' | 'leaseValid' | 'leader' | 'rank'
>;

/** Ceph's Paxos::is_readable, and whether the leader takes proposals, over the context. */
export function statusOf(context: StatusFields): PaxosStatus {
  const readable = readableRounds.has(context.round) && context.leaseValid && context.lastCommitted > 0;
  const writeable =
    // The leader takes proposals in the rounds it is readable in (recovered, lease valid).
    context.leader === context.rank && readableRounds.has(context.round) && context.leaseValid;
  return {
    firstCommitted: context.firstCommitted,
    lastCommitted: context.lastCommitted,
    readable,
    writeable,
  };
}

/**
 * Paxos::should_trim / trim: once more than paxos_min + paxos_trim_min versions are kept,
 * propose erasing the oldest (at most paxos_trim_max) and moving first_committed.
 */
export function trimProposal(context: PaxosContext): { trimTo: number; ops: StoreOp[] } | null {
  const { paxosMin, paxosTrimMin, paxosTrimMax } = context.timeouts;
  if (paxosMin === undefined || paxosTrimMin === undefined || paxosTrimMax === undefined) return null;
  if (context.trimmingTo > 0 || context.firstCommitted === 0) return null;
  if (context.lastCommitted - context.firstCommitted <= paxosMin + paxosTrimMin) return null;
  const trimTo = Math.min(context.lastCommitted - paxosMin, context.firstCommitted + paxosTrimMax);
  if (trimTo <= context.firstCommitted) return null;
  const ops: StoreOp[] = [];
  for (let v = context.firstCommitted; v < trimTo; v += 1)
    ops.push({ op: 'erase', prefix: PREFIX, key: String(v) });
  ops.push({ op: 'put_number', prefix: PREFIX, key: 'first_committed', value: trimTo });
  return { trimTo, ops };
}

/** Paxos::get_new_proposal_number: unique per rank, above anything seen. */
export function newProposalNumber(lastPn: number, greaterThan: number, rank: number): number {
  const base = Math.max(lastPn, greaterThan);
  return (Math.floor(base / 100) + 1) * 100 + rank;
}

type Step = {
  context?: Partial<PaxosContext>;
  writes?: StoreOp[];
  messages?: Outgoing[];
  notify?: string;
  /** The versions changed: send the status (see assignReporting). */
  report?: true;
  /** See IoEffectsEvent: how durable the writes must be, and whether the messages may go first. */
  durability?: 'durable' | 'applied';
  sendBeforeDurable?: boolean;
  parent?: PaxosParentEvent[];
  raise?: PaxosEvent;
  /** Events to raise later, on the actor's clock. */
  later?: { event: PaxosEvent; delayMs: number }[];
  /** The message was refused (and changes nothing): why, for the log. */
  refused?: { from: EntityName; message: string; reason: string };
};

const nothing: Step = {};

function peer(context: PaxosContext, rank: number): { to: EntityName; addr?: string } {
  const mon = context.monmap.mons[rank];
  return mon ? { to: `mon.${mon.name}`, addr: mon.addr } : { to: 'mon.?' };
}

function paxosMessage(context: PaxosContext, op: MonPaxos['op'], fields: Partial<MonPaxos> = {}): MonPaxos {
  return {
    type: 'mon.paxos',
    op,
    electionEpoch: context.electionEpoch,
    pn: context.acceptedPn,
    uncommittedPn: 0,
    firstCommitted: context.firstCommitted,
    lastCommitted: context.lastCommitted,
    values: [],
    ...fields,
  };
}

const peons = (context: PaxosContext) => context.quorum.filter((r) => r !== context.rank);

/**
 * Paxos::store_state: persist the committed values a peer shared (and apply their transactions),
 * moving last_committed forward. Values must continue my history without a gap.
 */
export function storeState(context: PaxosContext, lastCommitted: number, values: PaxosValue[]): Step {
  if (lastCommitted <= context.lastCommitted) return nothing;
  const fresh = values
    .filter((v) => v.version > context.lastCommitted && v.version <= lastCommitted)
    .sort((a, b) => a.version - b.version);
  let expected = context.lastCommitted + 1;
  for (const v of fresh) {
    if (v.version !== expected) return nothing; // a gap: the peer must share from my lc+1 on
    expected += 1;
  }
  if (fresh.length === 0) return nothing;
  const newLc = expected - 1;
  const writes: StoreOp[] = [];
  for (const v of fresh) {
    writes.push({ op: 'put', prefix: PREFIX, key: String(v.version), value: v.value });
    writes.push({ op: 'apply_value', version: v.version, value: v.value });
  }
  writes.push({ op: 'put_number', prefix: PREFIX, key: 'last_committed', value: newLc });
  let firstCommitted = context.firstCommitted;
  if (firstCommitted === 0) {
    firstCommitted = fresh[0]?.version ?? 1;
    writes.push({ op: 'put_number', prefix: PREFIX, key: 'first_committed', value: firstCommitted });
  }
  // An uncommitted value at or below the new last_committed is obsolete.
  const uncommitted = context.uncommitted && context.uncommitted.version > newLc ? context.uncommitted : null;
  return {
    context: { lastCommitted: newLc, firstCommitted, uncommitted },
    writes,
    report: true,
  };
}

/** Paxos::collect: a new pn, then ask every peon what it has. */
function collect(context: PaxosContext, oldPn: number): Step {
  if (context.promiseActive && context.promiseEpoch !== context.electionEpoch) {
    // My promise to the previous leader still holds: recover once it ends.
    return { context: { collectDeferred: true } };
  }
  const pn = newProposalNumber(context.lastPn, Math.max(context.acceptedPn, oldPn), context.rank);
  const mine = context.uncommitted?.version === context.lastCommitted + 1 ? context.uncommitted : null;
  const next: PaxosContext = { ...context, acceptedPn: pn, lastPn: pn };
  return {
    context: {
      acceptedPn: pn,
      lastPn: pn,
      numLast: 1,
      recovered: mine,
      accepted: [],
      ackedLease: [],
      collectDeferred: false,
    },
    writes: [
      { op: 'put_number', prefix: PREFIX, key: 'last_pn', value: pn },
      { op: 'put_number', prefix: PREFIX, key: 'accepted_pn', value: pn },
    ],
    messages: peons(context).map((r) => ({
      ...peer(context, r),
      msg: paxosMessage(next, 'collect', { pn }),
    })),
    // Alone in the quorum there is nobody to hear from: recovery is already complete.
    ...(context.quorum.length === 1 ? { raise: { type: 'paxos.recovered', begin: mine !== null } } : {}),
  };
}

/** Paxos::handle_last (leader, recovering). */
function handleLast(context: PaxosContext, from: number, msg: MonPaxos): Step {
  if (msg.firstCommitted > context.lastCommitted + 1) {
    // The peon trimmed beyond what I have: I am the one who must sync.
    return {
      parent: [
        {
          type: 'paxos.bootstrap',
          reason: `peon ${from} first_committed ${msg.firstCommitted} is beyond my last_committed ${context.lastCommitted}`,
        },
      ],
    };
  }
  const stored = storeState(context, msg.lastCommitted, msg.values);
  const c: PaxosContext = { ...context, ...stored.context };
  const step: Step = {
    context: { ...stored.context, peonTokens: { ...context.peonTokens, [from]: msg.leaseToken ?? 0 } },
    writes: [...(stored.writes ?? [])],
    messages: [],
    parent: [...(stored.parent ?? [])],
    ...(stored.report ? { report: true as const } : {}),
  };
  // A lagging peon gets the commits it lacks (share_state); one behind my trimmed history must sync.
  if (msg.lastCommitted + 1 < c.firstCommitted && c.firstCommitted > 1) {
    return {
      ...step,
      parent: [
        ...(step.parent ?? []),
        {
          type: 'paxos.bootstrap',
          reason: `peon ${from} last_committed ${msg.lastCommitted} is below my first_committed ${c.firstCommitted}`,
        },
      ],
    };
  }
  if (msg.lastCommitted < c.lastCommitted) {
    step.messages?.push({
      ...peer(c, from),
      msg: paxosMessage(c, 'commit'),
      shareValues: { from: msg.lastCommitted + 1, to: c.lastCommitted },
    });
  }
  if (msg.pn > c.acceptedPn) {
    // They promised a higher pn to someone else: collect again above it (re-entering recovering).
    return { ...step, raise: { type: 'paxos.collect_again', abovePn: msg.pn } };
  }
  if (msg.pn < c.acceptedPn) return step; // an old message
  let recovered = c.recovered;
  if (msg.uncommittedPn > 0) {
    const version = msg.lastCommitted + 1;
    const value = msg.values.find((v) => v.version === version)?.value;
    if (
      value &&
      msg.uncommittedPn >= (recovered?.pn ?? 0) &&
      msg.lastCommitted >= c.lastCommitted &&
      version >= (recovered?.version ?? 0)
    ) {
      recovered = { version, pn: msg.uncommittedPn, value };
    }
  }
  const numLast = c.numLast + 1;
  step.context = { ...step.context, recovered, numLast };
  if (numLast === c.quorum.length) {
    step.raise = {
      type: 'paxos.recovered',
      begin: recovered !== null && recovered.version === c.lastCommitted + 1,
    };
  }
  return step;
}

/** Paxos::begin (leader): store the value at lc+1 as pending, then ask the peons to accept it. */
function begin(context: PaxosContext, value: Uint8Array): Step {
  const version = context.lastCommitted + 1;
  const writes: StoreOp[] = [
    { op: 'put', prefix: PREFIX, key: String(version), value },
    { op: 'put_number', prefix: PREFIX, key: 'pending_v', value: version },
    { op: 'put_number', prefix: PREFIX, key: 'pending_pn', value: context.acceptedPn },
  ];
  // first_committed becomes 1 with the first commit, not here: a leader that crashes between
  // begin and commit must not restart with first_committed 1 and last_committed 0.
  const firstCommitted = context.firstCommitted;
  return {
    context: { accepted: [], uncommitted: { version, pn: context.acceptedPn, value } },
    writes,
    messages: peons(context).map((r) => ({
      ...peer(context, r),
      msg: paxosMessage({ ...context, firstCommitted }, 'begin', { values: [{ version, value }] }),
    })),
    // Ceph writes the value before sending the begin. The leader is one acceptor among the
    // quorum: its write and the peons' go in parallel, and the commit waits for all of them
    // (countSelfAccept at io.written). A leader that dies first leaves the value accepted at
    // the peons, where recovery finds it — as if its own write had been lost.
    sendBeforeDurable: true,
    notify: `begin:${version}`,
  };
}

/** Paxos::commit_start: commit locally; the peons hear of it once it is durable. */
function commitStart(context: PaxosContext): Step {
  const version = context.lastCommitted + 1;
  const value = context.inFlight?.value ?? context.uncommitted?.value;
  if (!value) return { parent: [{ type: 'paxos.bootstrap', reason: 'commit with no value in flight' }] };
  const writes: StoreOp[] = [
    { op: 'put_number', prefix: PREFIX, key: 'last_committed', value: version },
    { op: 'apply_value', version, value },
  ];
  if (context.firstCommitted === 0)
    writes.push({ op: 'put_number', prefix: PREFIX, key: 'first_committed', value: version });
  // Ceph syncs the commit too. Once every quorum member accepted the value durably it is chosen;
  // a crash that loses this write loses nothing (recovery commits the value again), so the round
  // finishes once it is applied, and the next fsync (the next begin's) makes it durable.
  return { writes, notify: `commit:${version}`, durability: 'applied' };
}

/** Paxos::commit_finish: last_committed moves, the peons are told, the proposers answered. */
function commitFinish(context: PaxosContext): Step {
  const version = context.lastCommitted + 1;
  const value = context.inFlight?.value ?? context.uncommitted?.value ?? new Uint8Array();
  const c = { ...context, lastCommitted: version, firstCommitted: context.firstCommitted || 1 };
  return {
    context: {
      lastCommitted: version,
      firstCommitted: c.firstCommitted,
      uncommitted: null,
      inFlight: null,
      accepted: [],
    },
    messages: peons(context).map((r) => ({
      ...peer(context, r),
      msg: paxosMessage(c, 'commit', { values: [{ version, value }] }),
    })),
    parent: [
      {
        type: 'paxos.committed',
        version,
        ids: context.inFlight?.ids ?? [],
        status: statusOf({
          ...context,
          firstCommitted: c.firstCommitted,
          lastCommitted: version,
          round: 'refresh',
        }),
      },
    ],
  };
}

/** Paxos::extend_lease (leader). */
function extendLease(context: PaxosContext): Step {
  // A lease makes the leader readable only once every peon acked it, and only until mon_lease
  // after it was sent (the deadline below): a leader cut off from its quorum stops serving
  // reads by then, whatever it keeps sending.
  const leaseSeq = context.leaseSeq + 1;
  const later = [
    {
      event: { type: 'paxos.lease_deadline', seq: leaseSeq } as PaxosEvent,
      delayMs: context.timeouts.monLeaseMs,
    },
  ];
  if (context.quorum.length === 1) {
    return {
      context: { ackedLease: [context.rank], leaseSeq, ackedSeq: leaseSeq },
      raise: { type: 'paxos.lease_all_acked' },
      later,
    };
  }
  return {
    context: { ackedLease: [context.rank], leaseSeq },
    messages: peons(context).map((r) => ({
      ...peer(context, r),
      msg: paxosMessage(context, 'lease', {
        leaseMs: context.timeouts.monLeaseMs,
        leaseSeq,
        leaseToken: context.peonTokens[r] ?? 0,
        leaseConfirmed: context.ackedSeq,
      }),
    })),
    raise: { type: 'paxos.lease_extended' },
    later,
  };
}

/** Paxos::handle_collect (peon). */
function handleCollect(context: PaxosContext, msg: MonPaxos, from: EntityName): Step {
  if (context.promiseActive && context.promiseEpoch !== msg.electionEpoch) {
    // A lease I acked for another leader still holds: answer when it ends.
    return { context: { deferredCollect: { from, msg } } };
  }
  if (msg.firstCommitted > context.lastCommitted + 1) {
    return {
      parent: [
        {
          type: 'paxos.bootstrap',
          reason: `leader first_committed ${msg.firstCommitted} is beyond my last_committed ${context.lastCommitted}: need sync`,
        },
      ],
    };
  }
  const previousPn = context.acceptedPn;
  const step: Step = { context: {}, writes: [], raise: { type: 'paxos.peon_recovering' } };
  let acceptedPn = context.acceptedPn;
  if (msg.pn > acceptedPn) {
    acceptedPn = msg.pn;
    step.context = { acceptedPn };
    step.writes?.push({ op: 'put_number', prefix: PREFIX, key: 'accepted_pn', value: acceptedPn });
  }
  const values: PaxosValue[] = [];
  let uncommittedPn = 0;
  const u = context.uncommitted;
  if (msg.lastCommitted <= context.lastCommitted && u && u.version === context.lastCommitted + 1) {
    values.push({ version: u.version, value: u.value });
    uncommittedPn = u.pn || previousPn;
  }
  const leaseToken = context.leaseTokenSeq + 1;
  step.context = {
    ...step.context,
    leaseTokenSeq: leaseToken,
    ...(msg.pn >= context.acceptedPn ? { collected: { pn: msg.pn, lastCommitted: msg.lastCommitted } } : {}),
  };
  step.later = [leaseWindow(context, leaseToken)];
  const reply: Outgoing = {
    ...peer(context, rankOfLeader(context)),
    msg: paxosMessage(context, 'last', { pn: acceptedPn, uncommittedPn, values, leaseToken }),
  };
  if (msg.lastCommitted < context.lastCommitted) {
    reply.shareValues = { from: msg.lastCommitted + 1, to: context.lastCommitted };
  }
  step.messages = [reply];
  return step;
}

const rankOfLeader = (context: PaxosContext) => context.leader;

/** Paxos::handle_begin (peon): store the value, then accept — only once it is durable. */
function handleBegin(context: PaxosContext, msg: MonPaxos): Step {
  if (msg.pn < context.acceptedPn) return nothing; // I promised a higher pn
  if (msg.pn !== context.acceptedPn || msg.lastCommitted !== context.lastCommitted) {
    // Ceph asserts here; from the network it is invalid input: drop it, the leader's accept
    // timeout will restart the round.
    return nothing;
  }
  const version = context.lastCommitted + 1;
  const value = msg.values.find((v) => v.version === version)?.value;
  if (!value) return nothing;
  return {
    context: { uncommitted: { version, pn: msg.pn, value } },
    writes: [
      { op: 'put', prefix: PREFIX, key: String(version), value },
      { op: 'put_number', prefix: PREFIX, key: 'pending_v', value: version },
      { op: 'put_number', prefix: PREFIX, key: 'pending_pn', value: msg.pn },
    ],
    messages: [{ ...peer(context, context.leader), msg: paxosMessage(context, 'accept', { pn: msg.pn }) }],
    raise: { type: 'paxos.peon_updating' },
  };
}

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((byte, i) => byte === b[i]);

/**
 * Paxos::handle_commit (peon). Ceph applies whatever a commit carries. paxmon applies only what
 * it can tell is the leader's committed history:
 * - the value I accepted in this round: same version (last_committed + 1), same pn, same bytes —
 *   and what is applied is my own accepted copy;
 * - the committed values the leader shares after my `last` (share_state), in the round I joined
 *   by answering its collect (the commit's pn is the collect's), up to the last_committed that
 *   collect announced. I never accepted those; they are the leader's committed history, which
 *   only authentication can vouch for (a leader that learns newer ones from another peon during
 *   recovery is refused here: I lag, the next begin does not fit, and a new round catches me up).
 * Anything else is refused (and logged): one forged message must not write my store.
 */
export function handleCommit(context: PaxosContext, msg: MonPaxos, from: EntityName): Step {
  const refuse = (reason: string): Step => ({
    refused: { from, message: 'mon.paxos commit', reason: `commit of ${msg.lastCommitted}: ${reason}` },
  });
  if (msg.lastCommitted <= context.lastCommitted) return nothing; // nothing new (a duplicate)
  const u = context.uncommitted;
  const mine = u !== null && u.version === context.lastCommitted + 1 && u.pn === msg.pn;
  if (mine && msg.lastCommitted === u.version) {
    const sent = msg.values.find((v) => v.version === u.version);
    if (!sent || !sameBytes(sent.value, u.value))
      return refuse(`not the value I accepted at ${u.version} (pn ${u.pn})`);
    // The commit of the value I accepted is applied without an fsync, as on the leader
    // (commitStart): the value is durable here as accepted, and the next begin's fsync covers
    // the commit.
    const stored = storeState(context, u.version, [{ version: u.version, value: u.value }]);
    return { ...stored, durability: 'applied' };
  }
  const collected = context.collected;
  if (collected.pn === 0) return refuse('values I never accepted, and I answered no collect of this leader');
  if (msg.pn !== collected.pn)
    return refuse(`values I never accepted, pn ${msg.pn} is not the collect's ${collected.pn}`);
  if (msg.lastCommitted > collected.lastCommitted)
    return refuse(
      `values I never accepted, beyond the last_committed ${collected.lastCommitted} the collect announced`,
    );
  // Values I never accepted (a catch-up) are synced: only the newest commit may be lost to a crash.
  const stored = storeState(context, msg.lastCommitted, msg.values);
  if (stored === nothing) return refuse(`no values continuing my last_committed ${context.lastCommitted}`);
  return stored;
}

/** Paxos::handle_lease (peon). */
function handleLease(context: PaxosContext, msg: MonPaxos): Step {
  if (msg.lastCommitted !== context.lastCommitted) return nothing;
  // Holding an accepted value for lc+1 of this pn means a commit may already have happened
  // elsewhere: a lease for lc (sent before the begin) must not make me readable again.
  const u = context.uncommitted;
  if (u && u.version === context.lastCommitted + 1 && u.pn === context.acceptedPn) return nothing;
  const promiseSeq = context.promiseSeq + 1;
  // Ceph's lease carries the leader's clock (lease_timestamp) and trusts synchronised clocks,
  // and a peon reads under a lease the moment it arrives. paxmon needs no clock, and waits for
  // the others: a lease n echoes a token I sent before the leader sent n; once a later lease
  // says n was acked by the whole quorum (leaseConfirmed), every member has promised, from its
  // ack of n — after n was sent — to help no other leader for mon_lease. So I may read until
  // mon_lease after that token: never past a promise, however late a lease arrives, and never
  // under a lease some member did not take (it may already be in another quorum).
  const echoes = [...context.leaseEchoes, { seq: msg.leaseSeq ?? 0, token: msg.leaseToken ?? 0 }].slice(-8);
  const confirmed = echoes.find((e) => e.seq === msg.leaseConfirmed);
  const echoed = confirmed?.token ?? 0;
  const fresh =
    confirmed !== undefined && echoed > context.leaseTokensEnded && echoed <= context.leaseTokenSeq;
  const leaseToken = context.leaseTokenSeq + 1;
  return {
    context: {
      promiseSeq,
      promiseActive: true,
      promiseEpoch: context.electionEpoch,
      leaseTokenSeq: leaseToken,
      leaseEchoes: echoes,
      ...(fresh ? { heldToken: echoed } : {}),
    },
    messages: [
      {
        ...peer(context, context.leader),
        msg: paxosMessage(context, 'lease_ack', {
          ...(msg.leaseSeq !== undefined ? { leaseSeq: msg.leaseSeq } : {}),
          leaseToken,
        }),
      },
    ],
    raise: fresh ? { type: 'paxos.lease_granted' } : { type: 'paxos.lease_received' },
    later: [
      { event: { type: 'paxos.promise_expired', seq: promiseSeq }, delayMs: context.timeouts.monLeaseMs },
      leaseWindow(context, leaseToken),
    ],
  };
}

/** The window of a lease token: mon_lease from its sending. */
function leaseWindow(context: PaxosContext, token: number): { event: PaxosEvent; delayMs: number } {
  return { event: { type: 'paxos.lease_window_end', token }, delayMs: context.timeouts.monLeaseMs };
}

function failProposals(context: PaxosContext, reason: string): PaxosParentEvent[] {
  const ids = [...(context.inFlight?.ids ?? []), ...context.queue.map((p) => p.id)];
  return ids.length ? [{ type: 'paxos.aborted', ids, reason }] : [];
}

/** Take every queued proposal into one round (all services share one pending transaction). */
function takeQueue(context: PaxosContext): { value: Uint8Array; ids: string[] } | null {
  if (context.queue.length === 0) return null;
  if (context.queue.length === 1) {
    const only = context.queue[0] as Proposal;
    return { value: only.value, ids: [only.id] };
  }
  // Encoded transactions concatenate into one valid encoded transaction (storage/transaction.ts
  // decodes a sequence of blocks), so a batch is simply their bytes end to end.
  const total = context.queue.reduce((n, p) => n + p.value.length, 0);
  const value = new Uint8Array(total);
  let offset = 0;
  for (const p of context.queue) {
    value.set(p.value, offset);
    offset += p.value.length;
  }
  return { value, ids: context.queue.map((p) => p.id) };
}

/**
 * Assign `changes` and ask for a paxos.status to the parent. It is not sent at once:
 * `paxos.report` is raised and runs after the other events of the step, and sends the status as
 * the context then stands, only if it differs from the last one sent. A commit on a peon changes the versions, the round
 * and the lease in one macrostep, and each status is a step of the monitor and of every
 * service: one is enough.
 */
function assignReporting(enqueue: PaxosEnqueue, context: PaxosContext, changes: Partial<PaxosContext>): void {
  // One assign, not two: every assign clones the snapshot and the context.
  if (context.reportPending) {
    assignTo(enqueue, changes);
    return;
  }
  assignTo(enqueue, { ...changes, reportPending: true });
  enqueue.raise({ type: 'paxos.report' });
}

/**
 * The machine's context is `{ paxos: PaxosContext }`, not the PaxosContext itself: XState copies
 * the context with Object.assign at every assign, and V8 makes a copy of more than 19 properties
 * a dictionary object — ~6 µs a copy here instead of ~0.5 µs for a spread of the 36 below, and
 * slower to read and to collect. Actions read `context: { paxos: context }`; changes go through
 * assignTo.
 */
export interface PaxosMachineContext {
  paxos: PaxosContext;
}

type PaxosEnqueue = {
  assign(assigner: (args: { context: PaxosMachineContext }) => Partial<PaxosMachineContext>): void;
  raise(event: PaxosEvent): void;
};

/** enqueue.assign of paxos changes, merged into the context as it stands when it runs. */
function assignTo(enqueue: PaxosEnqueue, changes: Partial<PaxosContext>): void {
  enqueue.assign(({ context }) => ({ paxos: { ...context.paxos, ...changes } }));
}

const statusKey = (st: PaxosStatus) =>
  `${st.firstCommitted}:${st.lastCommitted}:${st.readable}:${st.writeable}`;

export const paxosMachine = setup({
  types: {
    context: {} as PaxosMachineContext,
    events: {} as PaxosEvent,
    input: {} as PaxosInput,
  },
  delays: {
    acceptTimeout: ({ context: { paxos: context } }) =>
      context.timeouts.monAcceptTimeoutFactor * context.timeouts.monLeaseMs,
    leaseMs: ({ context: { paxos: context } }) => context.timeouts.monLeaseMs,
    leaseRenew: ({ context: { paxos: context } }) =>
      context.timeouts.monLeaseMs * context.timeouts.monLeaseRenewIntervalFactor,
    leaseAckTimeout: ({ context: { paxos: context } }) =>
      context.timeouts.monLeaseAckTimeoutFactor * context.timeouts.monLeaseMs,
  },
  actions: {
    bootstrap: sendParent(
      (_, params: { reason: string }): PaxosParentEvent => ({
        type: 'paxos.bootstrap',
        reason: params.reason,
      }),
    ),
    enterRound: enqueueActions(
      ({ enqueue, context: { paxos: context } }, params: { round: PaxosContext['round'] }) => {
        assignReporting(enqueue, context, { round: params.round });
      },
    ),
    setLease: enqueueActions(({ enqueue, context: { paxos: context } }, params: { valid: boolean }) => {
      assignReporting(enqueue, context, { leaseValid: params.valid });
    }),
    /** Paxos::finish_round → trim when due, as a proposal of its own. */
    maybeTrim: enqueueActions(({ enqueue, context: { paxos: context } }) => {
      if (context.queue.length > 0) return;
      const trim = trimProposal(context);
      if (!trim) return;
      assignTo(enqueue, { trimmingTo: trim.trimTo });
      const io: IoEffectsEvent = {
        ...effects([], []),
        proposals: [{ id: `paxos:trim:${trim.trimTo}`, ops: trim.ops }],
      };
      enqueue.sendTo(({ system }) => system.get('io'), io);
    }),
    step: enqueueActions(({ enqueue, context: { paxos: context } }, step: Step) => {
      // The context changes in one assign (each assign clones the snapshot and the context).
      const changes: Partial<PaxosContext> = { ...step.context };
      // A commit carries the status after it: that is the status last sent.
      const committed = step.parent?.findLast((e) => e.type === 'paxos.committed');
      if (committed?.type === 'paxos.committed') changes.reported = statusKey(committed.status);
      const report = Boolean(step.report) && !context.reportPending;
      if (report) changes.reportPending = true;
      if (Object.keys(changes).length) assignTo(enqueue, changes);
      if (step.refused)
        enqueue.sendTo(({ system }) => system.get('io'), { type: 'io.refused', ...step.refused });
      if (step.writes?.length || step.messages?.length || step.notify) {
        const io: IoEffectsEvent = effects(
          step.writes ?? [],
          step.messages ?? [],
          step.notify ? { systemId: 'paxos', token: step.notify } : undefined,
          {
            ...(step.durability ? { durability: step.durability } : {}),
            ...(step.sendBeforeDurable ? { sendBeforeDurable: true } : {}),
          },
        );
        enqueue.sendTo(({ system }) => system.get('io'), io);
      }
      // The step's own event first, so that a status report runs after it (see assignReporting).
      if (step.raise) enqueue.raise(step.raise);
      for (const event of step.parent ?? []) enqueue.sendParent(event);
      if (report) enqueue.raise({ type: 'paxos.report' });
      for (const { event, delayMs } of step.later ?? []) enqueue.raise(event, { delay: delayMs });
    }),
    abortAll: enqueueActions(({ enqueue, context: { paxos: context } }, params: { reason: string }) => {
      for (const event of failProposals(context, params.reason)) enqueue.sendParent(event);
      assignTo(enqueue, {
        queue: [],
        inFlight: null,
        accepted: [],
        ackedLease: [],
        numLast: 0,
        recovered: null,
      });
    }),
    // Paxos::begin counts the leader's own accept; paxmon counts it once its begin write is durable.
    countSelfAccept: enqueueActions(({ context: { paxos: context }, event, enqueue }) => {
      if (event.type !== 'io.written' || event.token !== `begin:${context.lastCommitted + 1}`) return;
      const accepted = context.accepted.includes(context.rank)
        ? context.accepted
        : [...context.accepted, context.rank];
      assignTo(enqueue, { accepted });
      if (context.quorum.every((r) => accepted.includes(r))) enqueue.raise({ type: 'paxos.commit_start' });
    }),
    // Paxos::handle_accept: commit only when every quorum member accepted, so that any readable
    // peon is up to date (DESIGN.md §2).
    handleAccept: enqueueActions(({ context: { paxos: context }, event, enqueue }) => {
      if (event.type !== 'mon.paxos' || event.msg.op !== 'accept') return;
      if (event.msg.pn !== context.acceptedPn || event.msg.lastCommitted !== context.lastCommitted) return;
      const from = rankOf(context.monmap, event.from);
      const accepted = context.accepted.includes(from) ? context.accepted : [...context.accepted, from];
      assignTo(enqueue, { accepted });
      if (context.quorum.every((r) => accepted.includes(r))) enqueue.raise({ type: 'paxos.commit_start' });
    }),
    /** Leader: a peon's newest lease token, echoed in the next lease to it. */
    notePeonToken: enqueueActions(({ context: { paxos: context }, event, enqueue }) => {
      if (event.type !== 'mon.paxos') return;
      assignTo(enqueue, {
        peonTokens: {
          ...context.peonTokens,
          [rankOf(context.monmap, event.from)]: event.msg.leaseToken ?? 0,
        },
      });
    }),
    enqueueProposal: enqueueActions(({ context: { paxos: context }, event, enqueue }) => {
      if (event.type !== 'paxos.propose') return;
      assignTo(enqueue, { queue: [...context.queue, { id: event.id, value: event.value }] });
    }),
  },
  guards: {
    /** The commit write of the round in flight is applied (writing / writing_previous). */
    commitApplied: ({ context: { paxos: context }, event }) =>
      event.type === 'io.written' && event.token === `commit:${context.lastCommitted + 1}`,
    fromQuorum: ({ context: { paxos: context }, event }) => {
      if (event.type !== 'mon.paxos') return false;
      // Monitor::dispatch_op: paxos messages from another election epoch are discarded.
      if (event.msg.electionEpoch !== context.electionEpoch) return false;
      const from = rankOf(context.monmap, event.from);
      return from >= 0 && context.quorum.includes(from);
    },
    leaseAckFromQuorum: and([
      'fromQuorum',
      ({ event }) => event.type === 'mon.paxos' && event.msg.op === 'lease_ack',
    ]),
    fromLeader: ({ context: { paxos: context }, event }) =>
      event.type === 'mon.paxos' &&
      event.msg.electionEpoch === context.electionEpoch &&
      rankOf(context.monmap, event.from) === context.leader,
  },
}).createMachine({
  id: 'paxos',
  context: ({ input }) => ({
    paxos: {
      rank: input.rank,
      monmap: input.monmap,
      electionEpoch: 0,
      quorum: [],
      leader: -1,
      firstCommitted: input.firstCommitted,
      lastCommitted: input.lastCommitted,
      acceptedPn: input.acceptedPn,
      lastPn: input.lastPn,
      uncommitted: input.uncommitted,
      timeouts: input.timeouts,
      collectAbovePn: 0,
      numLast: 0,
      recovered: null,
      accepted: [],
      inFlight: null,
      queue: [],
      ackedLease: [],
      round: 'idle',
      leaseValid: false,
      trimmingTo: 0,
      leaseSeq: 0,
      ackedSeq: 0,
      promiseSeq: 0,
      promiseActive: false,
      promiseEpoch: 0,
      deferredCollect: null,
      collectDeferred: false,
      reported: '',
      reportPending: false,
      renewDue: false,
      peonTokens: {},
      leaseTokenSeq: 0,
      leaseTokensEnded: 0,
      heldToken: 0,
      leaseEchoes: [],
      collected: { pn: 0, lastCommitted: 0 },
    },
  }),
  entry: sendParent(({ context: { paxos: context } }) => ({
    type: 'paxos.status',
    firstCommitted: context.firstCommitted,
    lastCommitted: context.lastCommitted,
  })),
  initial: 'idle',
  on: {
    'paxos.restart': {
      target: '.idle',
      actions: { type: 'abortAll', params: { reason: 'paxos restarted (bootstrap or election)' } },
    },
    'paxos.monmap': {
      actions: assign(({ context, event }) => ({
        paxos: { ...context.paxos, monmap: event.monmap, rank: event.rank },
      })),
    },
    'paxos.leader_init': {
      target: '.leader',
      actions: [
        { type: 'abortAll', params: { reason: 'new election' } },
        assign(({ context: { paxos: context }, event }) => ({
          paxos: {
            ...context,
            electionEpoch: event.electionEpoch,
            quorum: event.quorum,
            leader: context.rank,
            collectAbovePn: 0,
            renewDue: true,
            // Only leases of this leadership can be confirmed (acked by this quorum).
            ackedSeq: context.leaseSeq,
          },
        })),
      ],
    },
    'paxos.peon_init': {
      target: '.peon',
      actions: [
        { type: 'abortAll', params: { reason: 'new election' } },
        assign(({ context, event }) => ({
          paxos: {
            ...context.paxos,
            electionEpoch: event.electionEpoch,
            quorum: event.quorum,
            leader: event.leader,
            // Leases of another leadership confirm nothing here.
            leaseEchoes: [],
            collected: { pn: 0, lastCommitted: 0 },
          },
        })),
      ],
    },
    'paxos.fail': { actions: sendParent(({ event }) => ({ type: 'paxos.bootstrap', reason: event.reason })) },
    // Paxos::commit_finish / store_state re-read first_committed: a committed trim moved it.
    // The leader's lease ends mon_lease after it was sent, unless a newer one was acked since.
    'paxos.lease_deadline': {
      guard: ({ context: { paxos: context }, event }) => event.seq === context.ackedSeq,
      actions: raise({ type: 'paxos.lease_expired' }),
    },
    'paxos.report': {
      actions: enqueueActions(({ enqueue, context: { paxos: context } }) => {
        const st = statusOf(context);
        const key = statusKey(st);
        if (key === context.reported) {
          assignTo(enqueue, { reportPending: false });
          return;
        }
        assignTo(enqueue, { reportPending: false, reported: key });
        enqueue.sendParent({ type: 'paxos.status', ...st });
      }),
    },
    'paxos.lease_window_end': {
      actions: enqueueActions(({ enqueue, context: { paxos: context }, event }) => {
        assignTo(enqueue, { leaseTokensEnded: Math.max(context.leaseTokensEnded, event.token) });
        if (event.token === context.heldToken) enqueue.raise({ type: 'paxos.held_lease_ended' });
      }),
    },
    'paxos.promise_expired': {
      guard: ({ context: { paxos: context }, event }) => event.seq === context.promiseSeq,
      actions: enqueueActions(({ enqueue, context: { paxos: context } }) => {
        assignTo(enqueue, { promiseActive: false, deferredCollect: null, collectDeferred: false });
        if (context.deferredCollect) {
          enqueue.raise({
            type: 'mon.paxos',
            from: context.deferredCollect.from,
            msg: context.deferredCollect.msg,
          });
        }
        if (context.collectDeferred) enqueue.raise({ type: 'paxos.collect_again', abovePn: 0 });
      }),
    },
    'store.applied': {
      actions: enqueueActions(({ enqueue, context: { paxos: context }, event }) => {
        const put = event.ops.find(
          (o) => o.op === 'put' && o.prefix === PREFIX && o.key === 'first_committed',
        );
        if (put?.op !== 'put') return;
        const firstCommitted = readVersion(put.value);
        const trimmingTo =
          context.trimmingTo !== 0 && firstCommitted >= context.trimmingTo ? 0 : context.trimmingTo;
        assignReporting(enqueue, context, { firstCommitted, trimmingTo });
      }),
    },
  },
  states: {
    idle: {
      entry: [
        { type: 'enterRound', params: { round: 'idle' } },
        { type: 'setLease', params: { valid: false } },
      ],
      // Outside a quorum nothing is proposed; a service asking now is told so at once.
      on: {
        'paxos.propose': {
          actions: sendParent(({ event }) => ({
            type: 'paxos.aborted',
            ids: [event.id],
            reason: 'not in quorum',
          })),
        },
      },
    },
    leader: {
      type: 'parallel',
      on: {
        'paxos.propose': [
          {
            // Propose at once when idle (paxmon's default); otherwise it rides the next round.
            guard: stateIn({ leader: { round: 'active' } }),
            actions: ['enqueueProposal', { type: 'step', params: { raise: { type: 'paxos.begin' } } }],
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
                { type: 'enterRound', params: { round: 'recovering' } },
                {
                  type: 'step',
                  params: ({ context: { paxos: context } }) => collect(context, context.collectAbovePn),
                },
              ],
              after: {
                acceptTimeout: { actions: { type: 'bootstrap', params: { reason: 'collect timeout' } } },
              },
              on: {
                'mon.paxos': {
                  guard: and([
                    'fromQuorum',
                    ({ event }) => event.type === 'mon.paxos' && event.msg.op === 'last',
                  ]),
                  actions: {
                    type: 'step',
                    params: ({ context: { paxos: context }, event }) => {
                      const e = event as MessageEvent<MonPaxos>;
                      return handleLast(context, rankOf(context.monmap, e.from), e.msg);
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
                { type: 'enterRound', params: { round: 'updating_previous' } },
                {
                  type: 'step',
                  params: ({ context: { paxos: context } }) => {
                    const value = context.recovered?.value ?? new Uint8Array();
                    const s = begin({ ...context }, value);
                    return { ...s, context: { ...s.context, inFlight: { value, ids: [] } } };
                  },
                },
              ],
              after: {
                acceptTimeout: {
                  actions: { type: 'bootstrap', params: { reason: 'accept timeout (updating_previous)' } },
                },
              },
              on: {
                'io.written': { actions: 'countSelfAccept' },
                'mon.paxos': { guard: 'fromQuorum', actions: 'handleAccept' },
                'paxos.commit_start': { target: 'writing_previous' },
              },
            },
            writing_previous: {
              entry: [
                { type: 'enterRound', params: { round: 'writing_previous' } },
                { type: 'step', params: ({ context: { paxos: context } }) => commitStart(context) },
              ],
              on: {
                'io.written': {
                  guard: 'commitApplied',
                  target: 'refresh',
                  actions: {
                    type: 'step',
                    params: ({ context: { paxos: context } }) => commitFinish(context),
                  },
                },
              },
            },
            active: {
              entry: [
                { type: 'enterRound', params: { round: 'active' } },
                // Ceph extends the lease after every commit (commit_finish → extend_lease), to
                // make the peons readable again after the begin cancelled their lease. paxmon's
                // peon keeps its lease through a round and reads again once the commit arrives,
                // so the lease goes out after recovery and then every mon_lease × renew factor
                // (Ceph's lease_renew_event), not twice per write.
                {
                  type: 'step',
                  params: ({ context: { paxos: context } }) => {
                    if (!context.renewDue) return nothing;
                    const s = extendLease(context);
                    return { ...s, context: { ...s.context, renewDue: false } };
                  },
                },
                // Paxos::finish_round: what queued during the last round goes out now.
                {
                  type: 'step',
                  params: ({ context: { paxos: context } }) =>
                    context.queue.length ? { raise: { type: 'paxos.begin' } } : nothing,
                },
                'maybeTrim',
              ],
              on: {
                'paxos.begin': { target: 'updating' },
                'paxos.lease_renew_due': { target: 'active', reenter: true },
              },
            },
            updating: {
              entry: [
                { type: 'enterRound', params: { round: 'updating' } },
                {
                  type: 'step',
                  params: ({ context: { paxos: context } }) => {
                    const batch = takeQueue(context);
                    if (!batch) return { raise: { type: 'paxos.fail', reason: 'begin with nothing queued' } };
                    const s = begin(context, batch.value);
                    return { ...s, context: { ...s.context, inFlight: batch, queue: [] } };
                  },
                },
              ],
              after: {
                acceptTimeout: { actions: { type: 'bootstrap', params: { reason: 'accept timeout' } } },
              },
              on: {
                'io.written': { actions: 'countSelfAccept' },
                'mon.paxos': { guard: 'fromQuorum', actions: 'handleAccept' },
                'paxos.commit_start': { target: 'writing' },
              },
            },
            writing: {
              entry: [
                { type: 'enterRound', params: { round: 'writing' } },
                { type: 'step', params: ({ context: { paxos: context } }) => commitStart(context) },
              ],
              on: {
                'io.written': {
                  guard: 'commitApplied',
                  target: 'refresh',
                  actions: {
                    type: 'step',
                    params: ({ context: { paxos: context } }) => commitFinish(context),
                  },
                },
              },
            },
            // Ceph's STATE_REFRESH: services reload from the store (update_from_paxos) before the
            // round is finished. The services hear of the commit through `paxos.committed`.
            refresh: {
              entry: { type: 'enterRound', params: { round: 'refresh' } },
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
              entry: { type: 'setLease', params: { valid: false } },
              on: { 'paxos.lease_all_acked': { target: 'valid' } },
            },
            valid: {
              entry: { type: 'setLease', params: { valid: true } },
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
                leaseAckTimeout: { actions: { type: 'bootstrap', params: { reason: 'lease ack timeout' } } },
              },
              on: {
                'mon.paxos': {
                  guard: 'leaseAckFromQuorum',
                  actions: enqueueActions(({ context: { paxos: context }, event, enqueue }) => {
                    const e = event as MessageEvent<MonPaxos>;
                    const from = rankOf(context.monmap, e.from);
                    enqueue({ type: 'notePeonToken' });
                    // Only acks of the lease in force count (an old ack says nothing about it).
                    if (e.msg.leaseSeq !== undefined && e.msg.leaseSeq !== context.leaseSeq) return;
                    const ackedLease = context.ackedLease.includes(from)
                      ? context.ackedLease
                      : [...context.ackedLease, from];
                    assignTo(enqueue, { ackedLease });
                    if (context.quorum.every((r) => ackedLease.includes(r))) {
                      assignTo(enqueue, { ackedSeq: context.leaseSeq });
                      enqueue.raise({ type: 'paxos.lease_all_acked' });
                    }
                  }),
                },
                'paxos.lease_all_acked': { target: 'idle' },
              },
            },
          },
        },
      },
    },
    peon: {
      type: 'parallel',
      on: {
        'paxos.propose': {
          actions: sendParent(({ event }) => ({
            type: 'paxos.aborted',
            ids: [event.id],
            reason: 'not the leader',
          })),
        },
      },
      states: {
        round: {
          initial: 'recovering',
          on: {
            'mon.paxos': [
              {
                guard: and([
                  'fromLeader',
                  ({ event }) => event.type === 'mon.paxos' && event.msg.op === 'collect',
                ]),
                actions: {
                  type: 'step',
                  params: ({ context: { paxos: context }, event }) =>
                    handleCollect(
                      context,
                      (event as MessageEvent<MonPaxos>).msg,
                      (event as MessageEvent<MonPaxos>).from,
                    ),
                },
              },
              {
                guard: and([
                  'fromLeader',
                  ({ event }) => event.type === 'mon.paxos' && event.msg.op === 'begin',
                ]),
                actions: {
                  type: 'step',
                  params: ({ context: { paxos: context }, event }) =>
                    handleBegin(context, (event as MessageEvent<MonPaxos>).msg),
                },
              },
              {
                guard: and([
                  'fromLeader',
                  ({ event }) => event.type === 'mon.paxos' && event.msg.op === 'commit',
                ]),
                actions: {
                  type: 'step',
                  params: ({ context: { paxos: context }, event }) => {
                    const e = event as MessageEvent<MonPaxos>;
                    const stored = handleCommit(context, e.msg, e.from);
                    // Nothing accepted beyond the new last_committed: no commit can happen
                    // without me, so a lease still held serves reads again.
                    if (stored === nothing || stored.refused || stored.context?.uncommitted) return stored;
                    return { ...stored, raise: { type: 'paxos.peon_committed' } };
                  },
                },
              },
              {
                guard: and([
                  'fromLeader',
                  ({ event }) => event.type === 'mon.paxos' && event.msg.op === 'lease',
                ]),
                actions: {
                  type: 'step',
                  params: ({ context: { paxos: context }, event }) =>
                    handleLease(context, (event as MessageEvent<MonPaxos>).msg),
                },
              },
            ],
            'paxos.peon_recovering': { target: '.recovering' },
            'paxos.peon_updating': { target: '.updating' },
            'paxos.peon_committed': { target: '.active' },
            'paxos.lease_granted': { target: '.active' },
          },
          states: {
            recovering: { entry: { type: 'enterRound', params: { round: 'recovering' } } },
            active: { entry: { type: 'enterRound', params: { round: 'active' } } },
            updating: { entry: { type: 'enterRound', params: { round: 'updating' } } },
          },
        },
        lease: {
          initial: 'expired',
          states: {
            expired: {
              entry: { type: 'setLease', params: { valid: false } },
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
                  entry: { type: 'setLease', params: { valid: true } },
                  on: { 'paxos.peon_updating': { target: 'suspended' } },
                },
                suspended: {
                  entry: { type: 'setLease', params: { valid: false } },
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
                leaseAckTimeout: { actions: { type: 'bootstrap', params: { reason: 'lease timeout' } } },
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
});

/** Ceph's Paxos::is_readable: active/updating/writing, something committed, lease valid. */
export function isReadable(snapshot: {
  matches(value: unknown): boolean;
  context: PaxosMachineContext;
}): boolean {
  if (snapshot.context.paxos.lastCommitted === 0) return false;
  const role = snapshot.matches('leader') ? 'leader' : snapshot.matches('peon') ? 'peon' : null;
  if (!role) return false;
  const round = [...readableRounds].some((s) => snapshot.matches({ [role]: { round: s } }));
  const lease = role === 'leader' ? 'valid' : { held: 'valid' };
  return round && snapshot.matches({ [role]: { lease } });
}

/** Ceph's Paxos::is_writeable: the leader, active, with a valid lease. */
export function isWriteable(snapshot: { matches(value: unknown): boolean }): boolean {
  return snapshot.matches({ leader: { round: 'active', lease: 'valid' } });
}

/** The Ceph state name of a paxos snapshot (for mon_status and logs). */
export function paxosStateName(snapshot: { matches(value: unknown): boolean; value: unknown }): string {
  for (const role of ['leader', 'peon'] as const) {
    if (!snapshot.matches(role)) continue;
    const value = snapshot.value as Record<string, { round?: string }>;
    return value[role]?.round ?? 'unknown';
  }
  return snapshot.matches('idle') ? 'idle' : 'shutdown';
}
