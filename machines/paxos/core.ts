// Ceph's Paxos (src/mon/Paxos.cc) as pure steps: collect / last (recovery), begin / accept /
// commit (a round), share_state and store_state (catching a lagging monitor up), trim.
//
// Durability is ordered as data: every step's writes go to the I/O actor in one record and the
// step's messages are sent only after it is durable. So a peon's `accept` leaves only once the
// begin value is on disk (Ceph's handle_begin applies before replying), and the leader's own
// accept counts only when its `begin:V` write is reported written. Two marked exceptions, both
// about values Paxos already holds safe elsewhere: the leader's begin leaves while its own copy
// is written, and a commit is applied without an fsync of its own (the whole quorum accepted the
// value durably first).
import type { EntityName, MonPaxos, PaxosValue } from '../../transport/messages.ts';
import type { Outgoing, StoreOp } from '../effects.ts';
import { Transaction } from '../transaction.ts';
import {
  newProposalNumber,
  nothing,
  type PaxosContext,
  PREFIX,
  type Proposal,
  paxosMessage,
  peer,
  peons,
  type Step,
} from './context.ts';
import { leaseWindow } from './lease.ts';

/**
 * A proposal's ops as the Paxos value that carries them: one encoded Transaction (the same bytes
 * on every monitor; machines/transaction.ts).
 */
export function proposalValue(ops: StoreOp[]): Uint8Array {
  const tx = new Transaction();
  for (const op of ops) if (!appendPlainOp(tx, op)) throw new RangeError(`a proposal cannot carry ${op.op}`);
  return tx.encode();
}

/**
 * Append one of the plain ops (put, put_number, erase, erase_range) to a Transaction: true if it
 * was one. The io actor uses it too, beside the ops only it can carry out (apply a Paxos value,
 * stage a sync chunk).
 */
export function appendPlainOp(tx: Transaction, op: StoreOp): boolean {
  switch (op.op) {
    case 'put':
      tx.put(op.prefix, op.key, op.value);
      return true;
    case 'put_number':
      tx.putNumber(op.prefix, op.key, op.value);
      return true;
    case 'erase':
      tx.erase(op.prefix, op.key);
      return true;
    case 'erase_range':
      tx.eraseRange(op.prefix, op.start, op.end);
      return true;
    default:
      return false;
  }
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
export function collect(context: PaxosContext, oldPn: number): Step {
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
export function handleLast(context: PaxosContext, from: number, msg: MonPaxos): Step {
  if (msg.firstCommitted > context.lastCommitted + 1) {
    // The peon trimmed beyond what I have: I am the one who must sync.
    return {
      outcomes: [
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
    outcomes: [...(stored.outcomes ?? [])],
    ...(stored.report ? { report: true as const } : {}),
  };
  // A lagging peon gets the commits it lacks (share_state); one behind my trimmed history must sync.
  if (msg.lastCommitted + 1 < c.firstCommitted && c.firstCommitted > 1) {
    return {
      ...step,
      outcomes: [
        ...(step.outcomes ?? []),
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
export function begin(context: PaxosContext, value: Uint8Array): Step {
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

/**
 * Paxos::commit_start and the sends of commit_finish, as one record: commit locally, then — once
 * that is applied — tell the peons and answer the proposers. The monitor hears `commit:V` once
 * applied (commitFinish).
 */
export function commitStart(context: PaxosContext): Step {
  const version = context.lastCommitted + 1;
  const value = context.inFlight?.value ?? context.uncommitted?.value;
  if (!value) return { outcomes: [{ type: 'paxos.bootstrap', reason: 'commit with no value in flight' }] };
  const writes: StoreOp[] = [
    { op: 'put_number', prefix: PREFIX, key: 'last_committed', value: version },
    { op: 'apply_value', version, value },
  ];
  const firstCommitted = context.firstCommitted || version;
  if (context.firstCommitted === 0)
    writes.push({ op: 'put_number', prefix: PREFIX, key: 'first_committed', value: version });
  const after = { ...context, lastCommitted: version, firstCommitted };
  // Ceph syncs the commit too. Once every quorum member accepted the value durably it is chosen;
  // a crash that loses this write loses nothing (recovery commits the value again), so the round
  // finishes once it is applied, and the next fsync (the next begin's) makes it durable.
  return {
    writes,
    messages: peons(context).map((r) => ({
      ...peer(context, r),
      msg: paxosMessage(after, 'commit', { values: [{ version, value }] }),
    })),
    replies: context.inFlight?.replies ?? [],
    notify: `commit:${version}`,
    durability: 'applied',
  };
}

/** Paxos::commit_finish: the commit is applied; last_committed moves and the round is over. */
export function commitFinish(context: PaxosContext): Step {
  const version = context.lastCommitted + 1;
  return {
    context: {
      lastCommitted: version,
      firstCommitted: context.firstCommitted || 1,
      uncommitted: null,
      inFlight: null,
      accepted: [],
    },
    report: true,
    outcomes: [{ type: 'paxos.committed', version, ids: context.inFlight?.ids ?? [] }],
  };
}

/** Paxos::extend_lease (leader). */
/** Paxos::handle_collect (peon). */
export function handleCollect(context: PaxosContext, msg: MonPaxos, from: EntityName): Step {
  if (context.promiseActive && context.promiseEpoch !== msg.electionEpoch) {
    // A lease I acked for another leader still holds: answer when it ends.
    return { context: { deferredCollect: { from, msg } } };
  }
  if (msg.firstCommitted > context.lastCommitted + 1) {
    return {
      outcomes: [
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
export function handleBegin(context: PaxosContext, msg: MonPaxos): Step {
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

/** Byte equality, in a plain loop: a commit's value is tens of KiB under load, compared per round. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

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
/**
 * Paxos::restart / a lost round: what was proposed will not be committed by this leader. The
 * proposers' clients are answered EAGAIN (a retry reaches whichever leader comes next, which
 * answers a retry of an update that did commit from its record: machines/sessions.ts), and the
 * services are told, so that they propose again.
 */
export function failProposals(context: PaxosContext, reason: string): Step {
  const proposals = [...(context.inFlight ? [context.inFlight] : []), ...context.queue];
  const ids = proposals.flatMap((p) => ('ids' in p ? p.ids : [p.id]));
  if (ids.length === 0) return nothing;
  const rs = `update not committed (${reason}); retry`;
  return {
    replies: proposals.flatMap((p) =>
      p.replies.map((owed) => ({ target: owed.target, reply: { r: -11, rs } })),
    ),
    outcomes: [{ type: 'paxos.aborted', ids, reason }],
  };
}

/** Take every queued proposal into one round (all services share one pending transaction). */
export function takeQueue(context: PaxosContext): NonNullable<PaxosContext['inFlight']> | null {
  if (context.queue.length === 0) return null;
  if (context.queue.length === 1) {
    const only = context.queue[0] as Proposal;
    return { value: only.value, ids: [only.id], replies: only.replies };
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
  return { value, ids: context.queue.map((p) => p.id), replies: context.queue.flatMap((p) => p.replies) };
}
