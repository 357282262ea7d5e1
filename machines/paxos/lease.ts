// The lease-token protocol: how long a peon may serve reads, and what it promises for it.
//
// Leases differ from Ceph's in three ways, each explained where it is made: no lease per commit
// (a begin suspends a peon's lease, the commit restores it); a peon's lease is bounded by lease
// tokens, not by the leader's clock (handleLease); and a peon reads under a lease only once a
// later lease confirms the whole quorum acked it.
import type { MonPaxos } from '../../transport/messages.ts';
import {
  nothing,
  type PaxosContext,
  type PaxosEvent,
  paxosMessage,
  peer,
  peons,
  type Step,
} from './context.ts';

export function extendLease(context: PaxosContext): Step {
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

export function handleLease(context: PaxosContext, msg: MonPaxos): Step {
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
export function leaseWindow(context: PaxosContext, token: number): { event: PaxosEvent; delayMs: number } {
  return { event: { type: 'paxos.lease_window_end', token }, delayMs: context.timeouts.monLeaseMs };
}
