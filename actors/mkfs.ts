// Creating a monitor's store (Ceph's `ceph-mon --mkfs`): its identity and the initial monmap,
// written as one Transaction so a half-created store cannot exist.
import { Transaction } from '../storage/transaction.ts';
import type { MonMap } from '../transport/messages.ts';
import { encodeMonMap } from './monitor-state.ts';

export function mkfsTransaction(name: string, monmap: MonMap): Transaction {
  return new Transaction()
    .put('monitor', 'name', name)
    .put('monitor', 'fsid', monmap.fsid)
    .putNumber('monitor', 'election_epoch', 0)
    .put('monmap', String(monmap.epoch), encodeMonMap(monmap))
    .putNumber('monmap', 'first_committed', monmap.epoch)
    .putNumber('monmap', 'last_committed', monmap.epoch);
}

/** A monmap for the given `name=addr` monitors, ranked in the order given. */
export function buildMonMap(fsid: string, mons: { name: string; addr: string }[], createdMs: number): MonMap {
  return {
    fsid,
    epoch: 1,
    mons: mons.map((m, rank) => ({ name: m.name, rank, addr: m.addr })),
    electionStrategy: 'classic',
    disallowedLeaders: [],
    created: createdMs,
    lastChanged: createdMs,
  };
}
