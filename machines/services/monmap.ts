// monmap: Ceph's MonmapMonitor — the map of monitors, versioned by epoch; every epoch's full map
// is kept ('monmap/<epoch>'). mon dump / stat / getmap, and membership: mon add / mon rm (and
// mon.join from a new monitor, MonmapMonitor::prepare_join). Every change is a new epoch; each
// monitor adopts it from update_from_paxos and bootstraps, so ranks, min_quorum_size and the
// quorum follow the new map. The election strategy and the disallowed leaders live in the map
// too (mon set election_strategy, mon add|rm disallowed_leader): a change is a new epoch, and
// the bootstrap that follows it is the election Ceph calls when the elector's set changes.
import type { ElectionStrategy, MonMap } from '../../transport/messages.ts';
import type { AppliedOp, StoreOp } from '../effects.ts';
import type { MonitorView, Reply } from '../paxos-service.ts';
import type { LoadableService } from '../service-load.ts';

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

/** MonMap::min_quorum_size. */
const minQuorumSize = (monmap: MonMap) => Math.floor(monmap.mons.length / 2) + 1;

const namePattern = /^[A-Za-z0-9_-]{1,64}$/;
const addrPattern = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;
const usage =
  'usage: mon dump | mon stat | mon getmap | mon add NAME HOST:PORT | mon rm NAME | ' +
  'mon set election_strategy classic|disallow|connectivity | mon add|rm disallowed_leader NAME';
const strategies: readonly ElectionStrategy[] = ['classic', 'disallow', 'connectivity'];

/** A change of the map that keeps its monitors (strategy, disallowed leaders): the next epoch. */
const changed = (monmap: MonMap, patch: Partial<MonMap>, now: number): MonMap => ({
  ...monmap,
  ...patch,
  epoch: monmap.epoch + 1,
  lastChanged: now,
});

/**
 * MonmapMonitor::prepare_command's `mon set election_strategy` and `mon add|rm
 * disallowed_leader`, with Ceph's answers. `null` when the command is not one of them.
 */
function prepareElectionCommand(
  current: MonMap,
  cmd: string[],
  now: number,
): { pending: MonMap; reply: { r: number; rs: string } } | { error: { r: number; rs: string } } | null {
  const fail = (r: number, rs: string) => ({ error: { r, rs } });
  // Answered at once with r = 0, nothing proposed (Ceph's reply_no_propose with err = 0).
  const noop = (rs: string) => ({ error: { r: 0, rs } });
  if (cmd[1] === 'set' && cmd[2] === 'election_strategy') {
    const strategy = cmd[3];
    if (strategy === undefined || cmd.length !== 4)
      return fail(-22, 'usage: mon set election_strategy classic|disallow|connectivity');
    // Ceph's command table (CephChoices) refuses any other word before prepare_command runs.
    if (!strategies.includes(strategy as ElectionStrategy))
      return fail(-22, `Invalid command: ${strategy} not in ${strategies.join('|')}`);
    if (strategy === current.electionStrategy)
      return noop(`You are already in ${strategy} election strategy`);
    return {
      pending: changed(current, { electionStrategy: strategy as ElectionStrategy }, now),
      reply: { r: 0, rs: '' },
    };
  }
  if ((cmd[1] === 'add' || cmd[1] === 'rm' || cmd[1] === 'remove') && cmd[2] === 'disallowed_leader') {
    const name = cmd[3];
    const verb = cmd[1] === 'add' ? 'add' : 'rm';
    if (name === undefined || cmd.length !== 4) return fail(-22, `usage: mon ${verb} disallowed_leader NAME`);
    if (current.electionStrategy !== 'disallow' && current.electionStrategy !== 'connectivity')
      return fail(-22, 'You cannot disallow monitors in your current election mode');
    if (!current.mons.some((m) => m.name === name)) return fail(-2, `mon.${name} does not exist`);
    const disallowed = current.disallowedLeaders.includes(name);
    if (verb === 'add') {
      if (disallowed) return noop(`mon.${name} is already disallowed`);
      const stillDisallowed = current.disallowedLeaders.filter((n) => current.mons.some((m) => m.name === n));
      if (stillDisallowed.length === current.mons.length - 1)
        return fail(-22, `mon.${name} is the only remaining allowed leader!`);
      return {
        pending: changed(current, { disallowedLeaders: [...current.disallowedLeaders, name].sort() }, now),
        reply: { r: 0, rs: '' },
      };
    }
    if (!disallowed) return noop(`mon.${name} is already allowed`);
    return {
      pending: changed(
        current,
        { disallowedLeaders: current.disallowedLeaders.filter((n) => n !== name) },
        now,
      ),
      reply: { r: 0, rs: '' },
    };
  }
  return null;
}

/** The map after a change, renumbered in rank order (Ceph ranks monitors by their order in the map). */
function remap(monmap: MonMap, mons: { name: string; addr: string }[], now: number): MonMap {
  return {
    ...monmap,
    epoch: monmap.epoch + 1,
    mons: mons.map((m, rank) => ({ name: m.name, rank, addr: m.addr })),
    lastChanged: now,
  };
}

export const monmapService: LoadableService<MonmapState, MonMap | null> = {
  name: 'monmap',
  prefix: 'monmap',
  handles: (cmd) =>
    cmd[0] === 'mon' && ['dump', 'stat', 'getmap', 'add', 'rm', 'remove', 'set'].includes(cmd[1] ?? ''),
  // MonCommands.h, module "mon": reads "r"; `mon add`/`mon rm` are "rw" in Ceph, and need `rwx`
  // here (issue 13: only `allow *` or `allow rwx` may change the membership).
  commands: [
    { prefix: 'mon dump', perm: 'r', args: ['epoch'], module: 'mon' },
    { prefix: 'mon stat', perm: 'r', module: 'mon' },
    { prefix: 'mon getmap', perm: 'r', args: ['epoch'], module: 'mon' },
    // MonCommands.h: the election commands are "rw" (they change no membership).
    { prefix: 'mon set election_strategy', perm: 'rw', args: ['strategy'], module: 'mon' },
    { prefix: 'mon add disallowed_leader', perm: 'rw', args: ['name'], module: 'mon' },
    { prefix: 'mon rm disallowed_leader', perm: 'rw', args: ['name'], module: 'mon' },
    { prefix: 'mon add', perm: 'rwx', args: ['name', 'addr'], module: 'mon' },
    { prefix: 'mon rm', perm: 'rwx', args: ['name'], module: 'mon' },
    { prefix: 'mon remove', perm: 'rwx', args: ['name'], module: 'mon' },
  ],
  init: (loaded) => ({ monmap: loaded as MonMap }),
  // The map the monitor starts with (Monitor::preinit): the store's newest epoch, or the newer
  // one a sync stashed before it was cut off (actors/monitor-state.ts loadMonMap).
  load: { loaded: (stored) => stored.monmap },
  createPending: () => null,
  preprocessQuery(state, request, view) {
    const json = (value: unknown) => ({ reply: { r: 0, rs: '', data: JSON.stringify(value) } });
    const cmd = request.cmd;
    switch (cmd[1]) {
      case 'dump':
        return json(monmapJson(state.monmap));
      case 'stat':
        return json({ text: monStat(state.monmap, view), ...monmapJson(state.monmap), quorum: view.quorum });
      case 'getmap':
        // Ceph answers the encoded map; paxmon's encoding of a monmap is its JSON.
        return {
          reply: { r: 0, rs: `got monmap epoch ${state.monmap.epoch}`, data: JSON.stringify(state.monmap) },
        };
      case 'set':
        return null;
      case 'add': {
        if (cmd[2] === 'disallowed_leader') return null;
        // MonmapMonitor::preprocess_command: an identical entry is already there — a no-op success.
        const [name, addr] = [cmd[2], cmd[3]];
        const same = state.monmap.mons.find((m) => m.name === name && m.addr === addr);
        if (same) return { reply: { r: 0, rs: `mon.${name} at ${addr} already exists` } };
        return null;
      }
      case 'rm':
      case 'remove': {
        if (cmd[2] === 'disallowed_leader') return null;
        const name = cmd[2];
        if (name && !state.monmap.mons.some((m) => m.name === name)) {
          return { reply: { r: 0, rs: `mon.${name} does not exist or has already been removed` } };
        }
        return null;
      }
      default:
        return { reply: { r: -22, rs: usage } };
    }
  },
  prepareUpdate(state, pending, request, view) {
    const current = pending ?? state.monmap;
    const cmd = request.cmd;
    const fail = (r: number, rs: string): { error: Reply } => ({ error: { r, rs } });
    const election = prepareElectionCommand(current, cmd, request.receivedAt);
    if (election) return election;
    if (cmd[1] === 'add') {
      const [name, addr] = [cmd[2], cmd[3]];
      if (!name || !addr || cmd.length !== 4) return fail(-22, 'usage: mon add NAME HOST:PORT');
      if (!namePattern.test(name)) return fail(-22, `'${name}' is not a valid monitor name`);
      const m = addrPattern.exec(addr);
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return fail(-22, `'${addr}' is not HOST:PORT`);
      const byName = current.mons.find((x) => x.name === name);
      const byAddr = current.mons.find((x) => x.addr === addr);
      if (byName && byName.addr === addr)
        return { pending: current, reply: { r: 0, rs: `mon.${name} at ${addr} already exists` } };
      if (byName) return fail(-17, `mon.${name} already exists at address ${byName.addr}`);
      if (byAddr) return fail(-17, `mon.${byAddr.name} already exists at address ${addr}`);
      const next = remap(current, [...current.mons, { name, addr }], request.receivedAt);
      // No Ceph rule: an add (mon add, or a mon.join from anyone who can reach the leader) must
      // leave the monitors of the current quorum a majority of the new map. Otherwise a few
      // adds of monitors that never come (three joins turned a map of 3 into one of 6) leave
      // the cluster without a quorum, ever — and only a quorum could remove them again.
      const up = view.quorum.length;
      if (up < minQuorumSize(next))
        return fail(
          -22,
          `refusing to add mon.${name}: the map would have ${next.mons.length} monitors, a majority is ${minQuorumSize(next)}, and the quorum has ${up}`,
        );
      return { pending: next, reply: { r: 0, rs: `adding mon.${name} at ${addr}` } };
    }
    if (cmd[1] === 'rm' || cmd[1] === 'remove') {
      const name = cmd[2];
      if (!name || cmd.length !== 3) return fail(-22, 'usage: mon rm NAME');
      const gone = current.mons.find((x) => x.name === name);
      if (!gone)
        return {
          pending: current,
          reply: { r: 0, rs: `mon.${name} does not exist or has already been removed` },
        };
      if (current.mons.length === 1) return fail(-22, `refusing removal of last monitor mon.${name}`);
      const next = remap(
        current,
        current.mons.filter((x) => x.name !== name),
        request.receivedAt,
      );
      // MonMap::remove: a removed monitor leaves the disallowed set too.
      next.disallowedLeaders = next.disallowedLeaders.filter((n) => n !== name);
      return {
        pending: next,
        reply: {
          r: 0,
          rs: `removing mon.${name} at ${gone.addr}, there will be ${next.mons.length} monitors`,
        },
      };
    }
    return fail(-22, usage);
  },
  shouldPropose: (state, pending) => pending !== null && pending.epoch > state.monmap.epoch,
  encodePending(state, pending, version): StoreOp[] {
    if (!pending) return [];
    // The service's version is the monmap epoch (MonmapMonitor: get_last_committed() == epoch).
    const monmap = { ...pending, epoch: version > state.monmap.epoch ? version : pending.epoch };
    return [{ op: 'put', prefix: 'monmap', key: String(monmap.epoch), value: JSON.stringify(monmap) }];
  },
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
