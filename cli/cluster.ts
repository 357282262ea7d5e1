// A local cluster on one machine (paxmon up / down): one OS process per monitor, each with its
// data dir DIR/NAME (store.db, pid, log), and DIR/cluster.json naming the monitors. This module
// makes stores (RocksDB) and starts monitors; what every command reads of the cluster (its files,
// the pid files) is in cluster-file.ts, which client commands load without this one.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type KeyringEntry, KeyringError, readKeyring, writeKeyring } from '../actors/keyring.ts';
import { buildMonMap, mkfsTransaction, newClusterKeyring } from '../actors/mkfs.ts';
import { RocksDBStore } from '../storage/rocksdb-store.ts';
import { type MonMap, validateMonMap } from '../transport/messages.ts';
import {
  addrPattern,
  alive,
  type ClusterFile,
  isMonAddr,
  monNames,
  namePattern,
  readClusterFile,
  uuidPattern,
  writeClusterFile,
} from './cluster-file.ts';
import { CliError, errnoOf, fail } from './errors.ts';

export {
  alive,
  type ClusterFile,
  confFileName,
  isMonAddr,
  monNames,
  nearestClusterDir,
  parseConf,
  pidOf,
  readClusterFile,
  readMonArgs,
  writeClusterFile,
  writeConfFile,
  writeMonArgs,
} from './cluster-file.ts';

/** Parse `--mon name=host:port` options (ceph-mon --mkfs takes a monmap; paxmon builds it). */
export function parseMonSpecs(specs: string[]): { name: string; addr: string }[] {
  const mons = specs.map((spec) => {
    const eq = spec.indexOf('=');
    if (eq <= 0) return fail('EINVAL', `--mon '${spec}' is not NAME=HOST:PORT`);
    const name = spec.slice(0, eq);
    const addr = spec.slice(eq + 1);
    if (!namePattern.test(name))
      return fail('EINVAL', `monitor name '${name}' must be letters, digits, '-' or '_'`);
    if (!isMonAddr(addr)) return fail('EINVAL', `address '${addr}' of mon.${name} is not HOST:PORT`);
    return { name, addr };
  });
  const names = new Set<string>();
  const addrs = new Set<string>();
  for (const m of mons) {
    if (names.has(m.name)) fail('EINVAL', `duplicate monitor name '${m.name}'`);
    if (addrs.has(m.addr)) fail('EINVAL', `duplicate monitor address '${m.addr}'`);
    names.add(m.name);
    addrs.add(m.addr);
  }
  return mons;
}

/**
 * The keyring mkfs was given (Ceph's `ceph-mon --mkfs --keyring FILE`): it must hold `mon.`; its
 * other entries become the auth database's first entries when the cluster first forms a quorum
 * (AuthMonitor::create_initial imports the monitor's keyring).
 */
export async function mkfsKeyring(file: string): Promise<KeyringEntry[]> {
  let entries: KeyringEntry[];
  try {
    entries = await readKeyring(file);
  } catch (error) {
    if (error instanceof KeyringError) return fail(errnoOf(error.code), error.message);
    throw error;
  }
  if (!entries.some((e) => e.entity === 'mon.'))
    fail('EINVAL', `keyring ${file} has no mon. key (the key every monitor of the cluster shares)`);
  return entries;
}

/** The `mon.` entry of a local cluster's monitors (in any monitor's DIR/NAME/keyring). */
export async function clusterMonKey(dir: string, cluster: ClusterFile): Promise<KeyringEntry> {
  for (const m of cluster.mons) {
    const file = join(dir, m.name, 'keyring');
    if (!existsSync(file)) continue;
    const entry = (await mkfsKeyring(file)).find((e) => e.entity === 'mon.');
    if (entry) return entry;
  }
  return fail('ENOENT', `no monitor of the cluster in ${dir} has a keyring with the mon. key`);
}

/** paxmon mkfs: create one monitor's store with the initial monmap, and its keyring. */
export async function mkfs(options: {
  dir: string;
  name: string;
  fsid?: string;
  mons: string[];
  /**
   * The monitor's keyring (DIR/keyring, mode 0600): must hold `mon.`; default a new one with
   * new `mon.` and `client.admin` keys.
   */
  keyring?: KeyringEntry[];
  /** A monmap file (paxmon mon getmap -o FILE): Ceph's `ceph-mon --mkfs --monmap`. */
  monmapFile?: string;
  /** This monitor's own address when it is not in the map yet: it will join (mon.join). */
  addr?: string;
  /** The cluster's initial monmap, one for every monitor (Ceph: `monmaptool --create`). */
  monmap?: MonMap;
}): Promise<void> {
  if (!namePattern.test(options.name))
    fail('EINVAL', `name '${options.name}' must be letters, digits, '-' or '_'`);
  let monmap: MonMap;
  if (options.monmap) {
    monmap = options.monmap;
  } else if (options.monmapFile) {
    if (options.mons.length) fail('EINVAL', 'give either --monmap FILE or --mon NAME=HOST:PORT, not both');
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(options.monmapFile, 'utf8'));
    } catch (error) {
      return fail('EINVAL', `${options.monmapFile} is not a monmap: ${(error as Error).message}`);
    }
    const reason = validateMonMap(value);
    if (reason) fail('EINVAL', `${options.monmapFile}: ${reason}`);
    monmap = value as MonMap;
    if (options.fsid && options.fsid.toLowerCase() !== monmap.fsid)
      fail('EINVAL', `--fsid ${options.fsid} differs from the monmap's ${monmap.fsid}`);
  } else {
    if (!options.fsid || !uuidPattern.test(options.fsid))
      fail('EINVAL', `fsid '${options.fsid ?? ''}' is not a UUID`);
    const mons = parseMonSpecs(options.mons);
    if (mons.length === 0) fail('EINVAL', 'at least one --mon NAME=HOST:PORT (or --monmap FILE) is needed');
    monmap = buildMonMap((options.fsid as string).toLowerCase(), mons, Date.now());
    // A joining monitor's map is older than any map of the cluster it joins (epoch 0).
    if (options.addr && !mons.some((m) => m.name === options.name)) monmap = { ...monmap, epoch: 0 };
  }
  if (options.addr !== undefined && !isMonAddr(options.addr))
    fail('EINVAL', `--addr '${options.addr}' is not HOST:PORT (port 1-65535)`);
  const inMap = monmap.mons.find((m) => m.name === options.name);
  if (!inMap && !options.addr) {
    fail(
      'EINVAL',
      `mon.${options.name} is not in the monmap (${monmap.mons.map((m) => m.name).join(', ')}); to join an existing cluster give this monitor's address with --addr HOST:PORT`,
    );
  }
  if (inMap && options.addr && inMap.addr !== options.addr)
    fail('EINVAL', `mon.${options.name} is at ${inMap.addr} in the monmap, not ${options.addr}`);
  if (existsSync(options.dir)) {
    if (readdirSync(options.dir).length > 0)
      fail('EINVAL', `${options.dir} is not empty (is a monitor there already?)`);
  }
  const reason = validateMonMap(monmap);
  if (reason) fail('EINVAL', reason);
  const keyring = options.keyring ?? newClusterKeyring();
  if (!keyring.some((e) => e.entity === 'mon.')) fail('EINVAL', 'the keyring has no mon. key');
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  await writeKeyring(join(options.dir, 'keyring'), keyring);
  const store = await RocksDBStore.open(join(options.dir, 'store.db'), { create: true });
  try {
    const tx = mkfsTransaction(options.name, monmap);
    if (options.addr) tx.put('monitor', 'addr', options.addr);
    await store.apply(tx);
  } finally {
    await store.close();
  }
}

/**
 * Resolve when the port of `addr` can be bound, or fail with `Error EADDRINUSE: port N on HOST
 * is in use (HINT)`, the hint naming what to change.
 */
export async function checkPortFree(addr: string, hint: string): Promise<void> {
  const m = addrPattern.exec(addr);
  if (!m) return;
  const host = (m[1] as string).replace(/^\[|\]$/g, '');
  const port = Number(m[2]);
  await new Promise<void>((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, host, () => server.close(() => resolvePromise()));
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') fail('EADDRINUSE', `port ${port} on ${host} is in use (${hint})`);
    if (error.code === 'EADDRNOTAVAIL') fail('EINVAL', `${host} is not an address of this machine`);
    throw error;
  });
}

/** A monitor that died as it started, named with the last error of its log. */
export function exitedAtStart(dir: string, name: string, advice = ''): CliError {
  const log = join(dir, name, 'log');
  const error = lastErrorInLog(log);
  return new CliError(
    errnoOf(error?.code),
    `mon.${name} exited at start${error ? `: ${error.message}` : ''} (log: ${log}${advice})`,
  );
}

/** The last `Error E<CODE>: …` line a monitor wrote to its log (its stderr goes there), if any. */
function lastErrorInLog(logFile: string): { code: string; message: string } | null {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return null;
  }
  const lines = text.slice(-64 * 1024).split('\n');
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const m = /^Error (E[A-Z]+): (.*)$/.exec(lines[i] as string);
    if (m) return { code: m[1] as string, message: m[2] as string };
  }
  return null;
}

/**
 * V8 options for a monitor process, for its resident memory (measured after 30,000 writes, each
 * monitor: 120 MiB with V8's defaults, 90 MiB with these):
 * - a 2 MiB semi-space (V8 grows it to 16 MiB): a monitor's garbage is short-lived messages,
 *   which small scavenges collect as well;
 * - a 512 MiB old space. A monitor's live heap under load is 15–20 MiB, but with the default
 *   limit (a fraction of this machine's memory, gigabytes) V8 grows the heap eagerly; a bounded
 *   one makes it grow in small steps. 512 MiB leaves room for the largest messages (64 MiB
 *   frames) many times over.
 * Neither changed throughput measurably (A/B, 3 alternations); --optimize-for-size, tried too,
 * cost 30% of it.
 */
export const monitorNodeFlags = ['--max-semi-space-size=2', '--max-old-space-size=512'];

/**
 * The environment of a monitor process: this one's, with two of glibc's malloc settings unless
 * they are set already (each is read when the process starts; set either as you like in the
 * environment of `paxmon mon`). Both are common for Node with native libraries:
 *
 * - MALLOC_ARENA_MAX=2. glibc gives each thread that allocates its own arena (up to 8 per core),
 *   and a monitor's RocksDB work runs on libuv's 4 pool threads beside the main thread: after
 *   100,000 writes the arenas held ~10 MiB of freed memory per monitor (largest member after the
 *   bench's (e): 112–124 MiB with glibc's default, 101–112 MiB with 2, eight alternating runs),
 *   and (b) was not slower (4.4–4.5k ops/s with 16 arenas, 6.0k with 2, two alternating runs of
 *   the paxmon-only bench).
 * - MALLOC_MMAP_THRESHOLD_=131072: blocks of 128 KiB and more (RocksDB's memtable arena blocks,
 *   512 KiB with the binding's 4 MiB write buffer) are mapped for themselves and unmapped when
 *   freed. glibc's default threshold starts there but rises to the size of any mapped block
 *   freed, so after the first memtable flush those blocks come from the heap and their holes
 *   stay resident: after 100,000 writes as the bench's (e), the main arena held 11.7–13.9 MiB
 *   with the default and 7.9–8.9 MiB with the threshold fixed, and the leader's RSS was 92–96 →
 *   89–90 MiB, at the same throughput and CPU per write (two alternating pairs, 2026-12-06).
 */
export function monitorEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  out.MALLOC_ARENA_MAX ||= '2';
  out.MALLOC_MMAP_THRESHOLD_ ||= '131072';
  return out;
}

/**
 * How to run `paxmon mon`: the way this process runs — from the build (dist/paxmon.mjs: the
 * installed `paxmon`, npm start, the benchmarks) or from the TypeScript sources through tsx (npm
 * run paxmon, the specs).
 */
export function monitorCommand(): string[] {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts'))
    return [...monitorNodeFlags, '--import', 'tsx', fileURLToPath(new URL('./main.ts', import.meta.url))];
  // Built (cli/build.mjs): this code is in dist/paxmon.mjs itself or in a chunk in dist/chunks/.
  const entry = new URL(
    basename(dirname(self)) === 'chunks' ? '../paxmon.mjs' : './paxmon.mjs',
    import.meta.url,
  );
  // No --enable-source-maps for the long-running monitors (4.5 MiB each); NODE_OPTIONS can add it.
  return [...monitorNodeFlags, fileURLToPath(entry)];
}

/** Start `paxmon mon --dir monDir` as a detached process logging to monDir/log. */
export function spawnMonitor(
  monDir: string,
  extraArgs: string[] = [],
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void,
): number {
  const log = openSync(join(monDir, 'log'), 'a');
  const child = spawn(
    process.execPath,
    [...monitorCommand(), 'mon', '--dir', monDir, '--log-file', join(monDir, 'log'), ...extraArgs],
    {
      detached: true,
      stdio: ['ignore', log, log],
      env: monitorEnv(),
      cwd: resolve(fileURLToPath(new URL('..', import.meta.url))),
    },
  );
  if (onExit) child.once('exit', onExit);
  child.unref();
  if (!child.pid) fail('EIO', `could not start the monitor in ${monDir}`);
  return child.pid as number;
}

/** Create the cluster's directories and stores if they are not there yet. */
export async function ensureCluster(
  dir: string,
  size: number,
  basePort: number,
  host = '127.0.0.1',
): Promise<ClusterFile> {
  const existing = readClusterFile(dir);
  if (existing) return existing;
  if (!Number.isInteger(size) || size < 1 || size > 64)
    fail('EINVAL', `--size ${size}: a cluster has 1 to 64 monitors (3, 5 or 7 are usual)`);
  if (!Number.isInteger(basePort) || basePort < 1 || basePort + size - 1 > 65535)
    fail('EINVAL', `--port ${basePort} is not a usable port`);
  const cluster: ClusterFile = {
    fsid: randomUUID(),
    mons: monNames(size).map((name, i) => ({ name, addr: `${host}:${basePort + i}` })),
  };
  for (const m of cluster.mons)
    await checkPortFree(m.addr, `mon.${m.name} needs it; choose another first port with --port`);
  mkdirSync(dir, { recursive: true });
  // The cluster's keyring (Ceph's ceph.client.admin.keyring): client.admin, for the CLI. Each
  // monitor's DIR/NAME/keyring (Ceph's mon data keyring) holds mon. and client.admin.
  const keyring = newClusterKeyring();
  await writeKeyring(
    join(dir, 'keyring'),
    keyring.filter((e) => e.entity === 'client.admin'),
  );
  // One monmap for every monitor, as `monmaptool --create` + `ceph-mon --mkfs --monmap` make it:
  // the same epoch 1, created and modified stamps whichever monitor is asked.
  const monmap = buildMonMap(
    cluster.fsid,
    parseMonSpecs(cluster.mons.map((x) => `${x.name}=${x.addr}`)),
    Date.now(),
  );
  for (const m of cluster.mons) {
    await mkfs({ dir: join(dir, m.name), name: m.name, mons: [], monmap, keyring });
  }
  writeClusterFile(dir, cluster);
  return cluster;
}

/**
 * Grow a local cluster by `count` monitors, as an operator grows a Ceph cluster: `mon add NAME
 * ADDR` through the quorum, `mon getmap`, mkfs the new monitor from that map, start it. It then
 * probes, syncs and joins on its own.
 */
export async function addMonitors(
  dir: string,
  count: number,
  extraArgs: string[] = [],
  timeoutMs = 30_000,
): Promise<ClusterFile> {
  const cluster = readClusterFile(dir);
  if (!cluster) return fail('ENOENT', `no local cluster in ${dir} (paxmon up first)`);
  if (!Number.isInteger(count) || count < 1 || count > 16)
    fail('EINVAL', `--add ${count}: add 1 to 16 monitors at a time`);
  const { MonClient } = await import('../actors/mon-client.ts');
  const { clientCredentials } = await import('./client-commands.ts');
  const monKey = await clusterMonKey(dir, cluster);
  const client = new MonClient({
    mons: cluster.mons.map((m) => ({ name: m.name, addr: m.addr })),
    fsid: cluster.fsid,
    timeoutMs,
    ...clientCredentials({ dir }),
  });
  try {
    for (let i = 0; i < count; i += 1) {
      const taken = new Set(cluster.mons.map((m) => m.name));
      const name = monNames(64).find((n) => !taken.has(n)) as string;
      const last = cluster.mons
        .map((m) => addrPattern.exec(m.addr))
        .filter((m): m is RegExpExecArray => m !== null);
      const host = last[0]?.[1] ?? '127.0.0.1';
      const port = Math.max(...last.map((m) => Number(m[2]))) + 1;
      const addr = `${host}:${port}`;
      await checkPortFree(addr, '--port');
      const added = await client.command(['mon', 'add', name, addr]);
      if (added.r < 0) fail('EINVAL', `mon add ${name} ${addr}: ${added.rs}`);
      const map = await client.command(['mon', 'getmap']);
      if (map.r < 0) fail('EIO', `mon getmap: ${map.rs}`);
      const monmapFile = join(dir, `monmap.${name}.json`);
      writeFileSync(monmapFile, map.data);
      // A new monitor gets the cluster's mon. key (Ceph: `ceph auth get mon. -o KEYRING`, then
      // `ceph-mon --mkfs --keyring KEYRING`).
      await mkfs({ dir: join(dir, name), name, mons: [], monmapFile, keyring: [monKey] });
      cluster.mons.push({ name, addr });
      writeClusterFile(dir, cluster);
      const pid = spawnMonitor(join(dir, name), extraArgs);
      // One at a time, as Ceph's docs add monitors: the next waits until this one is in the
      // quorum, and one that died is reported, not listed as a member.
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (!alive(pid))
          throw exitedAtStart(dir, name, `; remove it from the map with paxmon mon rm ${name}`);
        const status = await client.command(['quorum_status']).catch(() => null);
        const quorum =
          status?.r === 0
            ? (JSON.parse(new TextDecoder().decode(status.data)) as { quorum_names: string[] })
            : null;
        if (quorum?.quorum_names.includes(name)) break;
        if (Date.now() >= deadline)
          return fail(
            'ETIMEDOUT',
            `mon.${name} was started but is not in the quorum after ${timeoutMs / 1000}s (log: ${join(dir, name, 'log')})`,
          );
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await client.close();
  }
  return cluster;
}
