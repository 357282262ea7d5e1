// startLocalCluster: N monitors in one process, each over its own RocksDB store and TCP port —
// what an app embeds to get a real cluster without spawning processes. The directory layout is
// `paxmon up`'s (DIR/cluster.json, DIR/NAME/store.db), so `paxmon --dir DIR quorum_status` talks
// to an in-process cluster too, and a cluster made by either is started again by either.

import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { MonConfig } from '../machines/config.ts';
import type { ServiceDefinition } from '../machines/paxos-service.ts';
import { RocksDBStore } from '../storage/rocksdb-store.ts';
import { type DaemonHandle, startMonitor } from './daemon.ts';
import type { InspectObserver } from './inspect.ts';
import { readKeyring, writeKeyring } from './keyring.ts';
import type { Logger } from './log.ts';
import { buildMonMap, mkfsTransaction, newClusterKeyring } from './mkfs.ts';
import { MonClient, type MonClientOptions } from './mon-client.ts';

/** Where and how startLocalCluster runs its monitors. */
export interface LocalClusterOptions {
  /** The cluster's directory: DIR/cluster.json and DIR/NAME/store.db per monitor (created if missing). */
  dir: string;
  /** Monitors of a new cluster (default 3); an existing one keeps its monmap. */
  size?: number;
  /** First port of a new cluster: monitors listen on basePort, basePort+1, … (default 6789); 0 picks free ports. */
  basePort?: number;
  /** Host of a new cluster's addresses (default 127.0.0.1). */
  host?: string;
  config?: Partial<MonConfig>;
  /**
   * Logs (default: silent): one logger for all, or one per monitor by name (e.g. createLogger
   * with a MonitorLogContext, so every line carries mon, state and election epoch).
   */
  logger?: Logger | ((name: string) => Logger);
  /** An inspection observer per monitor (e.g. a recorder), by monitor name. */
  inspect?: (name: string) => InspectObserver | undefined;
  /** An app's own PaxosServices, run by every monitor beside paxmon's (see createPaxosService). */
  services?: ServiceDefinition[];
}

/** Ceph's quorum_status, as a monitor answers it. */
export interface QuorumStatus {
  election_epoch: number;
  quorum: number[];
  quorum_names: string[];
  quorum_leader_name: string;
  quorum_age: number;
  monmap: { epoch: number; fsid: string; mons: { rank: number; name: string; addr: string }[] };
}

/** A running local cluster (startLocalCluster). */
export interface LocalCluster {
  /** The cluster's directory. */
  readonly dir: string;
  /** The cluster's fsid. */
  readonly fsid: string;
  /** The monitors of the monmap, by rank. */
  readonly mons: readonly { name: string; addr: string }[];
  /** The running monitors, by rank. */
  readonly monitors: readonly DaemonHandle[];
  /** The running monitor `name` (throws when there is none). */
  monitor(name: string): DaemonHandle;
  /**
   * Resolve once `size` monitors (default all) form one quorum with one leader, all at the same
   * election epoch, and the leader is writeable; reject after `timeoutMs` (default 30 s).
   */
  waitForQuorum(options?: { size?: number; timeoutMs?: number }): Promise<QuorumStatus>;
  /** A MonClient for this cluster's monitors (close it when done). */
  /** A client of the cluster; it authenticates as client.admin with DIR/keyring's key unless given a name and key. */
  client(options?: Partial<Omit<MonClientOptions, 'mons' | 'fsid'>>): MonClient;
  /** Stop every monitor and close its store and port. */
  stop(): Promise<void>;
}

/** A local cluster could not be created or started; `code` is the errno name (EINVAL, EADDRINUSE…). */
export class LocalClusterError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'LocalClusterError';
  }
}

interface ClusterFile {
  fsid: string;
  mons: { name: string; addr: string }[];
}

const monName = (i: number) => (i < 26 ? String.fromCharCode(97 + i) : `m${i}`);

/** Ports the OS hands out now (held together so they differ, then released). */
async function freePorts(host: string, count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i += 1) {
      const server = createServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, host, () => resolve((server.address() as { port: number }).port));
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

async function createCluster(
  dir: string,
  size: number,
  basePort: number,
  host: string,
): Promise<ClusterFile> {
  if (!Number.isInteger(size) || size < 1 || size > 64)
    throw new LocalClusterError(
      'EINVAL',
      `size ${size}: a cluster has 1 to 64 monitors (3, 5 or 7 are usual)`,
    );
  if (!Number.isInteger(basePort) || basePort < 0 || basePort + size - 1 > 65535)
    throw new LocalClusterError('EINVAL', `basePort ${basePort} is not a usable port`);
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new LocalClusterError('EINVAL', `${dir} is not empty and has no cluster.json`);
  const ports =
    basePort === 0 ? await freePorts(host, size) : Array.from({ length: size }, (_, i) => basePort + i);
  const cluster: ClusterFile = {
    fsid: randomUUID(),
    mons: ports.map((port, i) => ({ name: monName(i), addr: `${host}:${port}` })),
  };
  const monmap = buildMonMap(cluster.fsid, cluster.mons, Date.now());
  mkdirSync(dir, { recursive: true });
  // As `paxmon up` lays them out: DIR/keyring (client.admin, for clients) and each monitor's
  // DIR/NAME/keyring (mon. and client.admin).
  const keyring = newClusterKeyring();
  await writeKeyring(
    join(dir, 'keyring'),
    keyring.filter((e) => e.entity === 'client.admin'),
  );
  for (const m of cluster.mons) {
    mkdirSync(join(dir, m.name), { recursive: true, mode: 0o700 });
    await writeKeyring(join(dir, m.name, 'keyring'), keyring);
    const store = await RocksDBStore.open(join(dir, m.name, 'store.db'), { create: true });
    try {
      await store.apply(mkfsTransaction(m.name, monmap));
    } finally {
      await store.close();
    }
  }
  // Written last: a cluster.json means every store is complete.
  writeFileSync(join(dir, 'cluster.json'), `${JSON.stringify(cluster, null, 2)}\n`);
  return cluster;
}

/**
 * Start a local cluster in this process: create it in `dir` on first use (one store per monitor,
 * as `paxmon up` lays it out), then start every monitor over RocksDB and TCP.
 *
 * @example
 * const cluster = await startLocalCluster({ dir: '/tmp/paxmon', size: 3, basePort: 0 });
 * const quorum = await cluster.waitForQuorum();
 * console.log(`leader ${quorum.quorum_leader_name}, quorum ${quorum.quorum_names.join(',')}`);
 * await cluster.stop();
 */
export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  const dir = options.dir;
  const file = join(dir, 'cluster.json');
  const cluster: ClusterFile = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as ClusterFile)
    : await createCluster(dir, options.size ?? 3, options.basePort ?? 6789, options.host ?? '127.0.0.1');
  const admin = (await readKeyring(join(dir, 'keyring'))).find((e) => e.entity === 'client.admin');
  if (!admin) throw new LocalClusterError('ENOENT', `${join(dir, 'keyring')} has no client.admin key`);
  const adminKey = admin.key;
  const monitors: DaemonHandle[] = [];
  try {
    for (const m of cluster.mons) {
      const inspect = options.inspect?.(m.name);
      const logger = typeof options.logger === 'function' ? options.logger(m.name) : options.logger;
      try {
        monitors.push(
          await startMonitor({
            dir: join(dir, m.name),
            ...(options.config ? { config: options.config } : {}),
            ...(logger ? { logger } : {}),
            ...(inspect ? { inspect } : {}),
            ...(options.services ? { services: options.services } : {}),
          }),
        );
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE')
          throw new LocalClusterError('EADDRINUSE', `port of mon.${m.name} (${m.addr}) is in use`);
        throw error;
      }
    }
  } catch (error) {
    await Promise.all(monitors.map((mon) => mon.stop()));
    throw error;
  }

  const handle: LocalCluster = {
    dir,
    fsid: cluster.fsid,
    mons: cluster.mons,
    monitors,
    monitor(name) {
      const found = monitors.find((m) => m.name === name);
      if (!found) throw new LocalClusterError('ENOENT', `no running mon.${name}`);
      return found;
    },
    async waitForQuorum({ size = monitors.length, timeoutMs = 30_000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const status = stableQuorum(monitors, size);
        if (status) return status;
        if (Date.now() >= deadline) {
          const states = monitors.map((m) => `${m.name}:${m.state()}`).join(' ');
          throw new LocalClusterError('ETIMEDOUT', `no quorum of ${size} within ${timeoutMs} ms (${states})`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    client(clientOptions = {}) {
      return new MonClient({
        ...clientOptions,
        key: clientOptions.key ?? adminKey,
        mons: cluster.mons,
        fsid: cluster.fsid,
      });
    },
    async stop() {
      await Promise.all(monitors.map((mon) => mon.stop()));
    },
  };
  return handle;
}

/** The quorum when `size` running monitors agree on it and its leader is writeable; else null. */
function stableQuorum(monitors: readonly DaemonHandle[], size: number): QuorumStatus | null {
  const leaders = monitors.filter((m) => m.state() === 'leader');
  const leader = leaders[0];
  if (leaders.length !== 1 || !leader || !leader.isWriteable()) return null;
  const status = leader.quorumStatus() as unknown as QuorumStatus;
  if (status.quorum.length < size) return null;
  for (const name of status.quorum_names) {
    const mon = monitors.find((m) => m.name === name);
    if (!mon) return null;
    const state = mon.state();
    if (state !== 'leader' && state !== 'peon') return null;
    const mine = mon.quorumStatus() as unknown as QuorumStatus;
    if (mine.election_epoch !== status.election_epoch || mine.quorum_leader_name !== leader.name) return null;
  }
  return status;
}
