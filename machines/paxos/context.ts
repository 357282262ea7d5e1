// Paxos's state and vocabulary (Ceph's src/mon/Paxos.h), shared by its three parts:
//
//   core.ts    collect / last / begin / accept / commit (Paxos.cc), as pure steps;
//   lease.ts   the lease-token protocol: how long a peon may read, and the promise it makes;
//   status.ts  readable and writeable (the monitor statechart's tags) and the state names.
//
// Paxos is not an actor of its own: it runs inside the monitor statechart's `inQuorum` state
// (machines/monitor.ts), as Ceph's Paxos object lives inside Monitor. Each step is a pure
// function of PaxosContext and one input, returning a Step: the context changes, the writes and
// messages (one record for the io actor), and the events the statechart raises next.

import type { EntityName, MonMap, MonPaxos } from '../../transport/messages.ts';
import type { CommandReplyData, Outgoing, ReplyTarget, StoreOp } from '../effects.ts';

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

/** An answer owed to a client once its proposal commits (C_Committed), or EAGAIN if it is abandoned. */
export interface OwedAnswer {
  target: ReplyTarget;
  reply: CommandReplyData;
}

/** PaxosService::propose_pending, as Paxos queues it: one encoded Transaction and its answers. */
export interface Proposal {
  id: string;
  value: Uint8Array;
  replies: OwedAnswer[];
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
  /** Leader: the value in flight (new_value), the proposals it carries and their answers. */
  inFlight: { value: Uint8Array; ids: string[]; replies: OwedAnswer[] } | null;
  /** Leader: proposals waiting for the next round (Ceph's pending finishers). */
  queue: Proposal[];
  /** Leader: ranks that acked the current lease. */
  ackedLease: number[];
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
  /**
   * The status as last reported (paxos.report): what the services were told. Readable and
   * writeable themselves are the statechart's tags (status.ts); this is their last value, for
   * the services' PaxosStamp.
   */
  status: PaxosStatus;
  /** A paxos.report is raised and not handled yet (see reporting in machines/monitor.ts). */
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
  /** PaxosService::propose_pending → Paxos::trigger_propose: the pending change as ops, and its answers. */
  | { type: 'paxos.propose'; id: string; ops: StoreOp[]; replies: OwedAnswer[] }
  /** Internal transitions raised by the steps. */
  | { type: 'paxos.recovered'; begin: boolean }
  | { type: 'paxos.collect_again'; abovePn: number }
  | { type: 'paxos.begin' }
  | { type: 'paxos.commit_start' }
  /** The io actor wrote what a step asked to be told of (`begin:V`, `commit:V`). */
  | { type: 'paxos.written'; token: string }
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
  /** Internal: report the status as it stands after this step (see reporting in machines/monitor.ts). */
  | { type: 'paxos.report' }
  | { type: 'paxos.fail'; reason: string }
  | PaxosOutcome;

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

/** What a Paxos step tells the monitor (raised, handled by the monitor statechart). */
export type PaxosOutcome =
  | { type: 'paxos.bootstrap'; reason: string }
  /** A round committed `version` (applied on the leader); its proposals' services are told. */
  | { type: 'paxos.committed'; version: number; ids: string[] }
  /** Proposals that will not be committed by this leader (the round was abandoned). */
  | { type: 'paxos.aborted'; ids: string[]; reason: string };

export const PREFIX = 'paxos';

/** A version_t as the store encodes it: 8 bytes, little-endian. */
export function readVersion(bytes: Uint8Array): number {
  if (bytes.length !== 8) return 0;
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}

/** Paxos::get_new_proposal_number: unique per rank, above anything seen. */
export function newProposalNumber(lastPn: number, greaterThan: number, rank: number): number {
  const base = Math.max(lastPn, greaterThan);
  return (Math.floor(base / 100) + 1) * 100 + rank;
}

export type Step = {
  context?: Partial<PaxosContext>;
  writes?: StoreOp[];
  messages?: Outgoing[];
  notify?: string;
  /** The versions changed: report the status (see reporting in machines/monitor.ts). */
  report?: true;
  /** See IoEffectsEvent: how durable the writes must be, and whether the messages may go first. */
  durability?: 'durable' | 'applied';
  sendBeforeDurable?: boolean;
  /** Answers to send once the writes are applied (a commit's C_Committed). */
  replies?: OwedAnswer[];
  /** The outcomes the monitor handles (bootstrap, committed, aborted), raised after the step. */
  outcomes?: PaxosOutcome[];
  raise?: PaxosEvent;
  /** Events to raise later, on the actor's clock. */
  later?: { event: PaxosEvent; delayMs: number }[];
  /** The message was refused (and changes nothing): why, for the log. */
  refused?: { from: EntityName; message: string; reason: string };
};

export const nothing: Step = {};

export function peer(context: PaxosContext, rank: number): { to: EntityName; addr?: string } {
  const mon = context.monmap.mons[rank];
  return mon ? { to: `mon.${mon.name}`, addr: mon.addr } : { to: 'mon.?' };
}

export function paxosMessage(
  context: PaxosContext,
  op: MonPaxos['op'],
  fields: Partial<MonPaxos> = {},
): MonPaxos {
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

export const peons = (context: PaxosContext) => context.quorum.filter((r) => r !== context.rank);
