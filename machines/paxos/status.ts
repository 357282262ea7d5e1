// Readable and writeable: Ceph's Paxos::is_readable / is_writeable, as XState tags of the monitor
// statechart's states (machines/monitor.ts puts them on the lease states that grant them), and
// the Ceph state name of the round for mon_status.
import type { PaxosContext, PaxosStatus } from './context.ts';

/**
 * The states whose tags are `readable` (and, on the leader, `writeable`): a lease every quorum
 * member acked, on the leader; a confirmed lease not suspended by a begin, on a peon. Ceph also
 * wants the round active/updating/writing: a lease is granted only once recovery is over (the
 * leader extends it from `active`; a peon takes one only after answering the collect) and a
 * collect ends it, so a lease state implies such a round.
 */
export const leaderLeaseValid = { inQuorum: { leader: { lease: 'valid' } } } as const;
export const peonLeaseValid = { inQuorum: { peon: { lease: { held: 'valid' } } } } as const;

interface Tagged {
  hasTag(tag: string): boolean;
  context: { paxos: Pick<PaxosContext, 'lastCommitted'> };
}

/** Ceph's Paxos::is_readable: a valid lease, and something committed (get_version() > 0). */
export function isReadable(snapshot: Tagged): boolean {
  return snapshot.hasTag('readable') && snapshot.context.paxos.lastCommitted > 0;
}

/**
 * The leader takes proposals: it leads with a valid lease (so it has recovered). Ceph's
 * is_writeable also wants the round idle (active); paxmon queues what arrives during a round for
 * the next one (Paxos::finish_round proposes it), so this does not flip twice per commit.
 */
export function isWriteable(snapshot: Pick<Tagged, 'hasTag'>): boolean {
  return snapshot.hasTag('writeable');
}

/** The status the services are told (their PaxosStamp), from the tags as they stand. */
export function paxosStatus(
  context: PaxosContext,
  tags: { readable: boolean; writeable: boolean },
): PaxosStatus {
  return {
    firstCommitted: context.firstCommitted,
    lastCommitted: context.lastCommitted,
    readable: tags.readable && context.lastCommitted > 0,
    writeable: tags.writeable,
  };
}

export const statusKey = (st: PaxosStatus) =>
  `${st.firstCommitted}:${st.lastCommitted}:${st.readable}:${st.writeable}`;

/** The Ceph state name of the round (recovering, active, updating, writing, …; idle outside a quorum). */
export function paxosStateName(snapshot: { value: unknown; status?: string }): string {
  const value = snapshot.value as { inQuorum?: { leader?: { round?: string }; peon?: { round?: string } } };
  const inQuorum = typeof value === 'object' && value !== null ? value.inQuorum : undefined;
  const round = inQuorum?.leader?.round ?? inQuorum?.peon?.round;
  if (round) return round;
  return snapshot.value === 'shutdown' ? 'shutdown' : 'idle';
}
