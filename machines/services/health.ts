// health: Ceph's HealthMonitor — the leader works out the cluster's health checks on every tick
// and commits them when they change, so any monitor answers `health` and `status` alike.
// Checks: MON_DOWN (monitors out of the quorum) and MON_CLOCK_SKEW (beyond
// mon_clock_drift_allowed, measured by the leader's time checks).
import type { AppliedOp } from '../effects.ts';
import type { MonitorView } from '../paxos-service.ts';
import type { LoadableService, StoredService } from '../service-load.ts';
import { monStat } from './monmap.ts';

export interface HealthCheck {
  severity: 'HEALTH_WARN' | 'HEALTH_ERR';
  summary: string;
  detail: string[];
}

export interface HealthReport {
  status: 'HEALTH_OK' | 'HEALTH_WARN' | 'HEALTH_ERR';
  checks: Record<string, HealthCheck>;
}

export interface HealthState {
  committed: HealthReport;
  /** Clock skews the leader measured, by monitor name, in milliseconds. */
  driftAllowedMs: number;
}

const ok: HealthReport = { status: 'HEALTH_OK', checks: {} };

/** HealthMonitor::check_member_health, from what this monitor knows now. */
export function computeHealth(view: MonitorView, driftAllowedMs: number): HealthReport {
  const checks: Record<string, HealthCheck> = {};
  const down = view.monmap.mons.filter((m) => !view.quorum.includes(m.rank));
  if (down.length > 0) {
    const quorumNames = view.quorum.map((r) => view.monmap.mons[r]?.name ?? `?${r}`).join(',');
    checks.MON_DOWN = {
      severity: 'HEALTH_WARN',
      summary: `${down.length}/${view.monmap.mons.length} mons down, quorum ${quorumNames}`,
      detail: down.map((m) => `mon.${m.name} (rank ${m.rank}) addr ${m.addr} is down (out of quorum)`),
    };
  }
  const skewed = Object.entries(view.clockSkewsMs).filter(([, skew]) => Math.abs(skew) > driftAllowedMs);
  if (skewed.length > 0) {
    checks.MON_CLOCK_SKEW = {
      severity: 'HEALTH_WARN',
      summary: `clock skew detected on ${skewed.map(([name]) => `mon.${name}`).join(', ')}`,
      detail: skewed.map(
        ([name, skew]) =>
          `mon.${name} clock skew ${(skew / 1000).toFixed(3)}s > max ${(driftAllowedMs / 1000).toFixed(3)}s`,
      ),
    };
  }
  const status = Object.values(checks).some((c) => c.severity === 'HEALTH_ERR')
    ? 'HEALTH_ERR'
    : Object.keys(checks).length
      ? 'HEALTH_WARN'
      : 'HEALTH_OK';
  return { status, checks };
}

/** `ceph health` / `ceph health detail` text. */
export function healthText(report: HealthReport, detail: boolean): string {
  const lines = [
    report.status === 'HEALTH_OK'
      ? 'HEALTH_OK'
      : `${report.status} ${Object.values(report.checks)
          .map((c) => c.summary)
          .join('; ')}`,
  ];
  if (detail) {
    for (const [name, check] of Object.entries(report.checks)) {
      lines.push(`[${check.severity === 'HEALTH_ERR' ? 'ERR' : 'WRN'}] ${name}: ${check.summary}`);
      for (const d of check.detail) lines.push(`    ${d}`);
    }
  }
  return lines.join('\n');
}

/** The committed report: the newest version's (each version holds the whole report), or null. */
function storedReport(stored: StoredService): HealthReport | null {
  const newest = stored.incrementals.at(-1);
  if (!newest) return null;
  try {
    return JSON.parse(new TextDecoder().decode(newest.value)) as HealthReport;
  } catch {
    return null;
  }
}

export function healthService(options: {
  driftAllowedMs: number;
}): LoadableService<HealthState, HealthReport | null> {
  return {
    name: 'health',
    prefix: 'health',
    handles: (cmd) => cmd[0] === 'health' || (cmd[0] === 'status' && cmd.length === 1),
    // MonCommands.h: `health [detail]` and `status` are "mon", "r". `health _update` is paxmon's
    // own (the leader's tick, as mon.NAME, which has `allow *`): nobody else needs it.
    commands: [
      { prefix: 'health', perm: 'r', args: ['detail'], module: 'mon' },
      { prefix: 'status', perm: 'r', module: 'mon' },
      { prefix: 'health _update', perm: 'rwx', module: 'mon' },
    ],
    init: (loaded) => ({
      committed: (loaded as HealthReport | null) ?? ok,
      driftAllowedMs: options.driftAllowedMs,
    }),
    load: { loaded: storedReport },
    createInitial: () => ok,
    createPending: () => null,
    preprocessQuery(state, request, view) {
      const cmd = request.cmd;
      if (cmd[0] === 'status') {
        const quorumNames = view.quorum.map((r) => view.monmap.mons[r]?.name ?? `?${r}`);
        const status = {
          fsid: view.monmap.fsid,
          health: state.committed,
          election_epoch: view.electionEpoch,
          quorum: view.quorum,
          quorum_names: quorumNames,
          monmap: { epoch: view.monmap.epoch, num_mons: view.monmap.mons.length },
          mon_stat: monStat(view.monmap, view),
        };
        return { reply: { r: 0, rs: '', data: JSON.stringify(status) } };
      }
      if (cmd.length === 1 || (cmd.length === 2 && cmd[1] === 'detail')) {
        const detail = cmd[1] === 'detail';
        return {
          reply: { r: 0, rs: healthText(state.committed, detail), data: JSON.stringify(state.committed) },
        };
      }
      if (cmd[1] === '_update' && request.client.startsWith('mon.')) return null;
      return { reply: { r: -22, rs: 'usage: health [detail] | status' } };
    },
    prepareUpdate(_state, _pending, request) {
      try {
        const report = JSON.parse(
          new TextDecoder().decode(request.inbuf ?? new Uint8Array()),
        ) as HealthReport;
        return { pending: report, reply: { r: 0, rs: '' } };
      } catch {
        return { error: { r: -22, rs: 'health _update: malformed report' } };
      }
    },
    encodePending: (_state, pending, version) => [
      { op: 'put', prefix: 'health', key: String(version), value: JSON.stringify(pending ?? ok) },
      { op: 'put', prefix: 'health', key: 'latest', value: JSON.stringify(pending ?? ok) },
    ],
    updateFromPaxos(state, ops: AppliedOp[]) {
      const put = ops.find((o) => o.op === 'put' && o.prefix === 'health' && o.key === 'latest');
      if (!put || put.op !== 'put') return state;
      try {
        return { ...state, committed: JSON.parse(new TextDecoder().decode(put.value)) as HealthReport };
      } catch {
        return state;
      }
    },
    // HealthMonitor::tick on the leader: commit the checks when they changed.
    tick(state, view) {
      if (view.role !== 'leader') return [];
      const now = computeHealth(view, state.driftAllowedMs);
      if (JSON.stringify(now) === JSON.stringify(state.committed)) return [];
      return [{ cmd: ['health', '_update'], inbuf: new TextEncoder().encode(JSON.stringify(now)) }];
    },
    getTrimTo: (_state, versions) => Math.max(0, versions.lastCommitted - 100),
  };
}
