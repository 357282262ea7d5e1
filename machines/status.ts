// The status commands a monitor answers itself (Monitor::handle_command's `mon_status` and
// `quorum_status`; the admin socket's `connection scores dump|reset`): which command is which,
// and the answers, as pure functions of the monitor's context and the facts its statechart knows
// (its state names, its tags). The statechart answers them (machines/monitor.ts routeCommand);
// MonitorHandle.monStatus()/quorumStatus() call the same functions.
import type { MonitorContext } from './monitor.ts';
import { monmapJson } from './services/monmap.ts';

/** A status command, by what answers it; null for every other command (a service's). */
export type StatusCommand = 'mon_status' | 'quorum_status' | 'scores_dump' | 'scores_reset' | 'scores_usage';

export function statusCommandOf(cmd: readonly string[]): StatusCommand | null {
  if (cmd.length === 1 && cmd[0] === 'mon_status') return 'mon_status';
  if (cmd.length === 1 && cmd[0] === 'quorum_status') return 'quorum_status';
  if (cmd.length === 3 && cmd[0] === 'connection' && cmd[1] === 'scores') {
    if (cmd[2] === 'dump') return 'scores_dump';
    if (cmd[2] === 'reset') return 'scores_reset';
    return 'scores_usage';
  }
  return null;
}

export const scoresUsage = 'usage: connection scores dump | connection scores reset';

/** What the statechart knows beside its context: its state names and tags, and the time. */
export interface StatusFacts {
  /** Ceph's state name (probing, synchronizing, electing, leader, peon, shutdown, reloading). */
  state: string;
  /** Paxos's state and tags, while the actor runs (null once it has stopped). */
  paxos: { state: string; readable: boolean; writeable: boolean } | null;
  /** Wall-clock ms of the question (the request's receivedAt, or the runtime's clock). */
  nowMs: number;
}

type StatusContext = Pick<
  MonitorContext,
  | 'name'
  | 'rank'
  | 'electionEpoch'
  | 'quorum'
  | 'leader'
  | 'outsideQuorum'
  | 'sync'
  | 'syncState'
  | 'lastBootstrapReason'
  | 'paxos'
  | 'monmap'
  | 'peers'
>;

const inQuorum = (facts: StatusFacts) => facts.state === 'leader' || facts.state === 'peon';

/**
 * Seconds since this monitor entered its current quorum (Ceph's quorum_age): from the time the
 * io actor gave when the quorum formed (machines/monitor.ts, inQuorum's entry).
 */
export function quorumAge(context: StatusContext, facts: StatusFacts): number {
  const since = context.peers.quorumSinceMs;
  if (!inQuorum(facts) || since === null) return 0;
  return Math.max(0, Math.floor((facts.nowMs - since) / 1000));
}

/** Ceph's `mon_status` (DESIGN.md §6). */
export function monStatus(context: StatusContext, facts: StatusFacts): Record<string, unknown> {
  return {
    name: context.name,
    rank: context.rank,
    state: facts.state,
    election_epoch: context.electionEpoch,
    quorum: context.quorum,
    quorum_age: quorumAge(context, facts),
    outside_quorum: context.outsideQuorum,
    extra_probe_peers: [],
    sync_provider: context.sync ? [context.sync.provider] : [],
    sync_decision: context.syncState.decision,
    sync: context.sync
      ? {
          kind: context.sync.kind,
          keys: context.sync.keys,
          bytes: context.sync.bytes,
          total_keys: context.sync.totalKeys ?? null,
          total_bytes: context.sync.totalBytes ?? null,
        }
      : null,
    last_bootstrap_reason: context.lastBootstrapReason,
    paxos: facts.paxos
      ? {
          state: facts.paxos.state,
          first_committed: context.paxos.firstCommitted,
          last_committed: context.paxos.lastCommitted,
          accepted_pn: context.paxos.acceptedPn,
          readable: facts.paxos.readable,
          writeable: facts.paxos.writeable,
        }
      : null,
    monmap: monmapJson(context.monmap),
  };
}

/** Ceph's `quorum_status`. */
export function quorumStatus(context: StatusContext, facts: StatusFacts): Record<string, unknown> {
  const leader = context.monmap.mons[context.leader];
  return {
    election_epoch: context.electionEpoch,
    quorum: context.quorum,
    quorum_names: context.quorum.map((r) => context.monmap.mons[r]?.name ?? `?${r}`),
    quorum_leader_name: leader?.name ?? '',
    quorum_age: quorumAge(context, facts),
    monmap: monmapJson(context.monmap),
  };
}

/**
 * The answer to `mon_status` or `quorum_status`. Ceph answers quorum_status from a monitor in
 * the quorum; one outside it cannot know it (EAGAIN).
 */
export function statusReply(
  command: 'mon_status' | 'quorum_status',
  context: StatusContext,
  facts: StatusFacts,
): { r: number; rs: string; data?: string } {
  if (command === 'mon_status') return { r: 0, rs: '', data: JSON.stringify(monStatus(context, facts)) };
  if (!inQuorum(facts)) return { r: -11, rs: `mon.${context.name} is not in quorum (state ${facts.state})` };
  return { r: 0, rs: '', data: JSON.stringify(quorumStatus(context, facts)) };
}
