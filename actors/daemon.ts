// startMonitor: a monitor over RocksDB and TCP — what `paxmon mon` runs and what an app embeds.
import { join } from 'node:path';
import type { InspectionEvent } from 'xstate';
import type { MonConfig } from '../machines/config.ts';
import { RocksDBStore } from '../storage/rocksdb-store.ts';
import { Messenger, type SessionMode } from '../transport/messenger.ts';
import { type KeyringEntry, KeyringError, keySecret, readKeyring } from './keyring.ts';
import type { Logger } from './log.ts';
import { silentLogger } from './log.ts';
import { type Clock, type CreateMonitorOptions, createMonitor, type MonitorHandle } from './monitor.ts';
import { loadMonitorState } from './monitor-state.ts';

export interface StartMonitorOptions {
  /** The monitor's store, created by `paxmon mkfs` (or mkfsTransaction). */
  dir: string;
  config?: Partial<MonConfig>;
  clock?: Clock;
  logger?: Logger;
  inspect?: (event: InspectionEvent) => void;
  /** Listen here instead of the monitor's monmap address (e.g. 0.0.0.0:6789 behind NAT). */
  bindAddr?: string;
  onFatal?: (error: Error) => void;
  /** The monitor shut itself down (e.g. removed from the monmap): the reason. */
  onShutdown?: (reason: string) => void;
  /** Extra PaxosServices (an app's own), run beside paxmon's. */
  services?: CreateMonitorOptions['services'];
  /** A store sync made progress. */
  onSyncProgress?: CreateMonitorOptions['onSyncProgress'];
  onCommand?: CreateMonitorOptions['onCommand'];
  /**
   * The monitor's keyring (default: read from DIR/keyring, which mkfs writes): its `mon.` key
   * authenticates the monitors to each other; its other entries seed the auth database.
   */
  keyring?: KeyringEntry[];
  /** Session modes this monitor offers and accepts, in order (Ceph's ms_mon_cluster_mode; default secure, crc). */
  modes?: SessionMode[];
}

/** The monitor's keyring: DIR/keyring (Ceph's mon data keyring), which must hold the mon. key. */
export async function monitorKeyring(dir: string): Promise<KeyringEntry[]> {
  const file = join(dir, 'keyring');
  let entries: KeyringEntry[];
  try {
    entries = await readKeyring(file);
  } catch (error) {
    if (error instanceof KeyringError && error.code === 'ENOENT') {
      throw Object.assign(
        new Error(
          `no keyring at ${file}: a monitor needs the cluster's mon. key (paxmon mkfs --keyring FILE writes it)`,
        ),
        { code: 'ENOENT' },
      );
    }
    throw error;
  }
  if (!entries.some((e) => e.entity === 'mon.'))
    throw Object.assign(new Error(`keyring ${file} has no mon. key`), { code: 'EINVAL' });
  return entries;
}

export interface DaemonHandle extends MonitorHandle {
  /** The address the messenger is listening on. */
  readonly addr: string;
  readonly messenger: Messenger;
  readonly store: RocksDBStore;
}

/**
 * Open the store in `dir`, listen on the monitor's address and start its actor tree.
 *
 * @example
 * const mon = await startMonitor({ dir: '.paxmon/a' });
 * console.log(mon.quorumStatus());
 * await mon.stop();
 */
export async function startMonitor(options: StartMonitorOptions): Promise<DaemonHandle> {
  const logger = options.logger ?? silentLogger;
  // Ceph keeps the store in <mon_data>/store.db; the pid file and log sit beside it.
  const store = await RocksDBStore.open(join(options.dir, 'store.db'));
  let messenger: Messenger | undefined;
  try {
    const loaded = await loadMonitorState(store);
    const me = loaded.input.monmap.mons.find((m) => m.name === loaded.name);
    if (!loaded.addr) {
      // A joining monitor is not in its map yet, but mkfs --addr gave it an address to listen on.
      throw new Error(
        `mon.${loaded.name} is not in its own monmap (epoch ${loaded.input.monmap.epoch}) and has no address`,
      );
    }
    const keyring = options.keyring ?? (await monitorKeyring(options.dir));
    const monEntry = keyring.find((e) => e.entity === 'mon.');
    if (!monEntry) throw Object.assign(new Error('the keyring has no mon. key'), { code: 'EINVAL' });
    const monSecret = keySecret(monEntry);
    // Who may connect is the monitor's auth database's to say (or the keyring's, until the
    // database exists); the monitor is created after the messenger, so the lookup is bound late
    // — and the messenger listens only once it is bound: a client accepted before would be told
    // its key is wrong (issue 16, soak finding 5: every restart refused clients for ~170 ms).
    let lookup: (entity: string) => Uint8Array | undefined = () => undefined;
    messenger = new Messenger({
      name: `mon.${loaded.name}`,
      fsid: loaded.fsid,
      auth: {
        entity: 'mon.',
        secret: monSecret,
        keyFor: (entity) => (entity === 'mon.' ? monSecret : lookup(entity)),
        modes: options.modes ?? ['secure', 'crc'],
      },
      ...(me ? { rank: me.rank } : {}),
      listenAddr: options.bindAddr ?? (loaded.addr as string),
      logger: logger.child({ subsystem: 'ms' }),
    });
    const monitor = await createMonitor({
      store,
      transport: messenger,
      logger,
      ...(options.config ? { config: options.config } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.inspect ? { inspect: options.inspect } : {}),
      ...(options.onFatal ? { onFatal: options.onFatal } : {}),
      ...(options.onShutdown ? { onShutdown: options.onShutdown } : {}),
      ...(options.onSyncProgress ? { onSyncProgress: options.onSyncProgress } : {}),
      ...(options.services ? { services: options.services } : {}),
      ...(options.onCommand ? { onCommand: options.onCommand } : {}),
      keyring,
    });
    lookup = (entity) => monitor.authEntity(entity)?.secret;
    let addr: string;
    try {
      addr = await messenger.listen();
    } catch (error) {
      await monitor.stop();
      await monitor.drain();
      throw error;
    }
    const ms = messenger;
    let closing: Promise<void> | undefined;
    const stop = () => {
      closing ??= (async () => {
        await monitor.stop();
        await monitor.drain();
        await ms.close();
        await store.close();
      })();
      return closing;
    };
    return Object.create(monitor, {
      addr: { value: addr, enumerable: true },
      messenger: { value: ms, enumerable: true },
      store: { value: store, enumerable: true },
      stop: { value: stop, enumerable: true },
    }) as DaemonHandle;
  } catch (error) {
    await messenger?.close().catch(() => {});
    await store.close().catch(() => {});
    throw error;
  }
}
