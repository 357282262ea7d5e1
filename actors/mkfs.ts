// Creating a monitor's store (Ceph's `ceph-mon --mkfs`): its identity and the initial monmap,
// written as one Transaction so a half-created store cannot exist.
import { Transaction } from '../storage/transaction.ts';
import type { MonMap } from '../transport/messages.ts';
import { generateKey, type KeyringEntry } from './keyring.ts';
import { encodeMonMap } from './monitor-state.ts';

/**
 * The Transaction that creates monitor `name`'s store (Ceph's `ceph-mon --mkfs`): its name, the
 * fsid, election epoch 0 and the initial monmap. Apply it to an empty Store once.
 *
 * @example
 * const monmap = buildMonMap(randomUUID(), [{ name: 'a', addr: '127.0.0.1:6789' }], Date.now());
 * const store = await RocksDBStore.open('mon-a/store.db', { create: true });
 * await store.apply(mkfsTransaction('a', monmap));
 * await store.close();
 */
export function mkfsTransaction(name: string, monmap: MonMap): Transaction {
  return new Transaction()
    .put('monitor', 'name', name)
    .put('monitor', 'fsid', monmap.fsid)
    .putNumber('monitor', 'election_epoch', 0)
    .put('monmap', String(monmap.epoch), encodeMonMap(monmap))
    .putNumber('monmap', 'first_committed', monmap.epoch)
    .putNumber('monmap', 'last_committed', monmap.epoch);
}

/** An epoch-1 monmap for the given monitors, ranked in the order given (classic elections). */
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

/**
 * A new cluster's keys (what Ceph's deployment tools make with ceph-authtool): `mon.`, which
 * every monitor of the cluster shares, and `client.admin` with caps `allow *`.
 */
export function newClusterKeyring(): KeyringEntry[] {
  return [
    { entity: 'mon.', key: generateKey(), caps: { mon: 'allow *' } },
    { entity: 'client.admin', key: generateKey(), caps: { mon: 'allow *' } },
  ];
}
