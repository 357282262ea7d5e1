// monmap: Ceph's MonmapMonitor — the map of monitors, versioned by epoch; every epoch's full map
// is kept ('monmap/<epoch>'). mon dump / mon stat / mon getmap here; mon add / mon rm arrive
// with membership changes.
import type { MonMap } from '../../transport/messages.ts';
import type { AppliedOp, StoreOp } from '../effects.ts';
import type { MonitorView, ServiceDefinition } from '../paxos-service.ts';

export interface MonmapState {
  monmap: MonMap;
}

/** The monmap as Ceph's `mon dump --format json` shows it. */
export function monmapJson(monmap: MonMap) {
  return {
    epoch: monmap.epoch,
    fsid: monmap.fsid,
    modified: new Date(monmap.lastChanged).toISOString(),
    created: new Date(monmap.created).toISOString(),
    election_strategy: monmap.electionStrategy,
    disallowed_leaders: monmap.disallowedLeaders,
    min_quorum_size: Math.floor(monmap.mons.length / 2) + 1,
    mons: monmap.mons.map((m) => ({ rank: m.rank, name: m.name, addr: m.addr, public_addr: m.addr })),
  };
}

/** `mon stat` as Ceph prints it. */
export function monStat(monmap: MonMap, view: MonitorView): string {
  const leader = monmap.mons[view.leader];
  const names = view.quorum.map((r) => monmap.mons[r]?.name ?? `?${r}`);
  return (
    `e${monmap.epoch}: ${monmap.mons.length} mons at {${monmap.mons.map((m) => `${m.name}=${m.addr}`).join(',')}}, ` +
    `election epoch ${view.electionEpoch}, leader ${leader ? `${leader.rank} ${leader.name}` : 'none'}, ` +
    `quorum ${view.quorum.join(',')} ${names.join(',')}`
  );
}

export const monmapService: ServiceDefinition<MonmapState, null> = {
  name: 'monmap',
  prefix: 'monmap',
  handles: (cmd) => cmd[0] === 'mon' && ['dump', 'stat', 'getmap'].includes(cmd[1] ?? ''),
  init: (loaded) => ({ monmap: loaded as MonMap }),
  createPending: () => null,
  preprocessQuery(state, request, view) {
    const json = (value: unknown) => ({ reply: { r: 0, rs: '', data: JSON.stringify(value) } });
    switch (request.cmd[1]) {
      case 'dump':
        return json(monmapJson(state.monmap));
      case 'stat':
        return json({ text: monStat(state.monmap, view), ...monmapJson(state.monmap), quorum: view.quorum });
      case 'getmap':
        // Ceph answers the encoded map; paxmon's encoding of a monmap is its JSON.
        return {
          reply: { r: 0, rs: `got monmap epoch ${state.monmap.epoch}`, data: JSON.stringify(state.monmap) },
        };
      default:
        return { reply: { r: -22, rs: 'usage: mon dump | mon stat | mon getmap' } };
    }
  },
  prepareUpdate: () => ({ error: { r: -22, rs: 'usage: mon dump | mon stat | mon getmap' } }),
  encodePending: (): StoreOp[] => [],
  updateFromPaxos(state, ops: AppliedOp[], versions) {
    const put = ops.find(
      (o) => o.op === 'put' && o.prefix === 'monmap' && o.key === String(versions.lastCommitted),
    );
    if (!put || put.op !== 'put') return state;
    try {
      return { monmap: JSON.parse(new TextDecoder().decode(put.value)) as MonMap };
    } catch {
      return state;
    }
  },
};
