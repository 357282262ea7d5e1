// Ceph's ConnectionTracker (src/mon/ConnectionTracker.cc) as pure functions over plain data: each
// monitor scores its link to every peer from its pings, and shares its report (and the newest it
// holds of everyone else's) on every election message and ping. The connectivity strategy elects
// the monitor whose links the others score highest. Every function returns a new tracker.
import type { ConnectionReport, ConnectionTracker, MonMap } from '../transport/messages.ts';

export type { ConnectionReport, ConnectionTracker };

/** A tracker with nothing in it yet (ConnectionTracker's constructor). */
export function createTracker(rank: number, halfLife: number, epoch = 0): ConnectionTracker {
  return { rank, epoch, version: 0, halfLife, reports: [emptyReport(rank, epoch, 0)] };
}

const emptyReport = (rank: number, epoch: number, version: number): ConnectionReport => ({
  rank,
  epoch,
  version,
  peers: [],
});

/** My own report (ConnectionTracker::my_reports). */
export function myReport(tracker: ConnectionTracker): ConnectionReport {
  return (
    tracker.reports.find((r) => r.rank === tracker.rank) ??
    emptyReport(tracker.rank, tracker.epoch, tracker.version)
  );
}

function withReport(tracker: ConnectionTracker, report: ConnectionReport): ConnectionTracker {
  const reports = tracker.reports.filter((r) => r.rank !== report.rank);
  reports.push(report);
  reports.sort((a, b) => a.rank - b.rank);
  return { ...tracker, reports };
}

/**
 * ConnectionTracker::increase_version: my report moves to the next version. `persist` is true on
 * every mon_con_tracker_persist_interval-th version (Ceph then calls persist_connectivity_scores).
 */
function increaseVersion(
  tracker: ConnectionTracker,
  report: ConnectionReport,
  persistInterval: number,
): { tracker: ConnectionTracker; persist: boolean } {
  const version = tracker.version + 1;
  const next = withReport({ ...tracker, version }, { ...report, version });
  return { tracker: next, persist: version % persistInterval === 0 };
}

/**
 * ConnectionTracker::report_live_connection / report_dead_connection, Ceph's formula: a link's
 * score starts at 1 and moves towards 1 (alive) or 0 (dead) by units / (2 × half_life) of the
 * way per unit reported (seconds here, as in Ceph).
 *
 *   alive: score = score × (1 − u/2h) + u/2h, at most 1
 *   dead:  score = score × (1 − u/2h) − u/2h, at least 0
 */
export function reportConnection(
  tracker: ConnectionTracker,
  peer: number,
  alive: boolean,
  units: number,
  persistInterval: number,
): { tracker: ConnectionTracker; persist: boolean } {
  const mine = myReport(tracker);
  const old = mine.peers.find((p) => p.rank === peer)?.score ?? 1;
  const step = units / (2 * tracker.halfLife);
  const score = alive ? Math.min(old * (1 - step) + step, 1) : Math.max(old * (1 - step) - step, 0);
  const peers = mine.peers.filter((p) => p.rank !== peer);
  peers.push({ rank: peer, score, alive });
  peers.sort((a, b) => a.rank - b.rank);
  return increaseVersion(
    tracker,
    { ...mine, rank: tracker.rank, epoch: tracker.epoch, peers },
    persistInterval,
  );
}

/** ConnectionTracker::increase_epoch: a new election epoch starts my report over at version 0. */
export function increaseEpoch(tracker: ConnectionTracker, epoch: number): ConnectionTracker {
  if (epoch <= tracker.epoch) return tracker;
  return withReport({ ...tracker, epoch, version: 0 }, { ...myReport(tracker), epoch, version: 0 });
}

/**
 * ConnectionTracker::receive_peer_report: take each of a peer's reports (except the one about
 * me) that is newer than mine — a later epoch, or the same epoch at a later version. Reports of
 * ranks outside my monmap (`size`) are left out.
 */
export function receivePeerReport(
  tracker: ConnectionTracker,
  other: ConnectionTracker,
  size: number,
): ConnectionTracker {
  let next = tracker;
  for (const report of other.reports) {
    if (report.rank === tracker.rank || report.rank >= size) continue;
    const existing = next.reports.find((r) => r.rank === report.rank);
    if (
      !existing ||
      report.epoch > existing.epoch ||
      (report.epoch === existing.epoch && report.version > existing.version)
    ) {
      next = withReport(next, { ...report, peers: report.peers.filter((p) => p.rank < size) });
    }
  }
  return next;
}

/**
 * ConnectionTracker::get_total_connection_score: the sum of `rank`'s scores in every other
 * monitor's report that has its link to `rank` up now (a link reported down counts 0), and how
 * many such reports there are.
 */
export function totalScore(tracker: ConnectionTracker, rank: number): { score: number; live: number } {
  let score = 0;
  let live = 0;
  for (const report of tracker.reports) {
    if (report.rank === rank) continue;
    const peer = report.peers.find((p) => p.rank === rank);
    if (peer?.alive) {
      score += peer.score;
      live += 1;
    }
  }
  return { score, live };
}

/**
 * ConnectionTracker::notify_reset (`connection scores reset`): forget every report, mine too;
 * the epoch and version stay, so what I report next is newer than what peers hold of me.
 */
export function resetTracker(tracker: ConnectionTracker): ConnectionTracker {
  return {
    ...tracker,
    reports: [emptyReport(tracker.rank, tracker.epoch, tracker.version)],
  };
}

/**
 * A new monmap (notify_rank_removed / notify_rank_changed): ranks follow the monitors' names into
 * the new map; reports of and about monitors no longer in it are dropped.
 */
export function remapTracker(
  tracker: ConnectionTracker,
  before: MonMap,
  after: MonMap,
  rank: number,
): ConnectionTracker {
  const moved = (old: number): number => {
    const name = before.mons[old]?.name;
    return name === undefined ? -1 : after.mons.findIndex((m) => m.name === name);
  };
  const reports: ConnectionReport[] = [];
  for (const report of tracker.reports) {
    const r = moved(report.rank);
    if (r < 0) continue;
    const peers = report.peers
      .map((p) => ({ ...p, rank: moved(p.rank) }))
      .filter((p) => p.rank >= 0 && p.rank !== r)
      .sort((a, b) => a.rank - b.rank);
    reports.push({ ...report, rank: r, peers });
  }
  reports.sort((a, b) => a.rank - b.rank);
  const next = { ...tracker, rank: Math.max(rank, 0), reports };
  return next.reports.some((r) => r.rank === next.rank) ? next : withReport(next, myReport(next));
}

/** `connection scores dump` (ConnectionTracker::dump), in Ceph's field names. */
export function dumpTracker(tracker: ConnectionTracker, persistInterval: number) {
  return {
    rank: tracker.rank,
    epoch: tracker.epoch,
    version: tracker.version,
    half_life: tracker.halfLife,
    persist_interval: persistInterval,
    reports: tracker.reports.map((r) => ({
      rank: r.rank,
      epoch: r.epoch,
      version: r.version,
      peer_scores: r.peers.map((p) => ({ peer_rank: p.rank, peer_score: p.score, peer_alive: p.alive })),
    })),
  };
}
