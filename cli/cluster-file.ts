// The local cluster's files, read by every command (no store, no statecharts): DIR/cluster.json
// naming the monitors, DIR/ceph.conf, each monitor's pid file, and what `paxmon up` gave them.
// A client command loads this, not cli/cluster.ts (which opens RocksDB stores).
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fail } from './errors.ts';

export interface ClusterFile {
  fsid: string;
  mons: { name: string; addr: string }[];
}

export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const namePattern = /^[A-Za-z0-9_-]{1,64}$/;
export const addrPattern = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;

/** HOST:PORT with a port a monitor can listen on or be dialled at (1–65535). */
export function isMonAddr(addr: string): boolean {
  const m = addrPattern.exec(addr);
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65_535;
}

export const monNames = (n: number) =>
  Array.from({ length: n }, (_, i) => (i < 26 ? String.fromCharCode(97 + i) : `m${i}`));

export function readClusterFile(dir: string): ClusterFile | null {
  const file = join(dir, 'cluster.json');
  if (!existsSync(file)) return null;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    return fail('EINVAL', `${file} is not valid JSON: ${(error as Error).message}`);
  }
  const cluster = value as Partial<ClusterFile> | null;
  const wellFormed =
    typeof cluster === 'object' &&
    cluster !== null &&
    typeof cluster.fsid === 'string' &&
    uuidPattern.test(cluster.fsid) &&
    Array.isArray(cluster.mons) &&
    cluster.mons.every(
      (m) =>
        typeof m === 'object' &&
        m !== null &&
        typeof m.name === 'string' &&
        namePattern.test(m.name) &&
        typeof m.addr === 'string' &&
        isMonAddr(m.addr),
    );
  if (!wellFormed)
    return fail('EINVAL', `${file} is not a paxmon cluster file ({ fsid, mons: [{ name, addr }] })`);
  return cluster as ClusterFile;
}

/** Write DIR/cluster.json and, from it, DIR/ceph.conf (the file `-c` reads). */
export function writeClusterFile(dir: string, cluster: ClusterFile): void {
  writeFileSync(join(dir, 'cluster.json'), `${JSON.stringify(cluster, null, 2)}\n`);
  writeConfFile(dir, cluster);
}

/**
 * The pid in `monDir/pid`, or null when there is none or it is stale: after a kill -9, an OOM
 * kill or a reboot the file stays, and its pid may since belong to another process, which
 * `down` must not signal. On Linux the process must be a monitor of this very directory.
 */
export function pidOf(monDir: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(monDir, 'pid'), 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return runsMonitorOf(pid, monDir) ? pid : null;
}

/** Whether `pid` is `paxmon mon --dir monDir` (true where /proc cannot tell). */
function runsMonitorOf(pid: number, monDir: string): boolean {
  let args: string[];
  let cwd: string;
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    cwd = readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    // Gone (the caller's alive() says so), or no /proc here: nothing to check against.
    return true;
  }
  const at = args.indexOf('--dir');
  const given = at >= 0 ? args[at + 1] : args.find((a) => a.startsWith('--dir='))?.slice('--dir='.length);
  return args.includes('mon') && given !== undefined && resolve(cwd, given) === resolve(monDir);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The cluster's config file in Ceph's format (DIR/ceph.conf), what `-c FILE` reads. */
export const confFileName = 'ceph.conf';

/** Write DIR/ceph.conf: `[global] fsid, mon_host, keyring`, as Ceph's deployment tools write it. */
export function writeConfFile(dir: string, cluster: ClusterFile): void {
  const text = [
    '# written by paxmon up: the CLI reads it with -c FILE, PAXMON_CONF=FILE, or from .paxmon/',
    '[global]',
    `fsid = ${cluster.fsid}`,
    `mon_host = ${cluster.mons.map((m) => m.addr).join(',')}`,
    `keyring = ${resolve(dir, 'keyring')}`,
    '',
    ...cluster.mons.flatMap((m) => [`[mon.${m.name}]`, `mon_addr = ${m.addr}`, '']),
  ].join('\n');
  writeFileSync(join(dir, confFileName), text);
}

/** A Ceph config file's sections (`[global]`, `[mon.a]`…), option names with `_` for ` ` and `-`. */
export function parseConf(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current = new Map<string, string>();
  sections.set('global', current);
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (!line) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      const name = (header[1] as string).trim();
      current = sections.get(name) ?? new Map();
      sections.set(name, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    current.set(
      line
        .slice(0, eq)
        .trim()
        .replace(/[\s-]+/g, '_'),
      line.slice(eq + 1).trim(),
    );
  }
  return sections;
}

/**
 * The local cluster directory when --dir is not given: the nearest `.paxmon/` holding a cluster
 * in the working directory or its parents, else `.paxmon` here (where `paxmon up` makes one).
 */
export function nearestClusterDir(from = process.cwd()): string {
  for (let d = resolve(from); ; d = dirname(d)) {
    if (existsSync(join(d, '.paxmon', 'cluster.json'))) return join(d, '.paxmon');
    if (dirname(d) === d) return resolve(from, '.paxmon');
  }
}

/** The options `paxmon up` gave its monitors (--set, --log-level), for `paxmon start NAME`. */
const monArgsFile = 'mon-args.json';

export function writeMonArgs(dir: string, args: string[]): void {
  writeFileSync(join(dir, monArgsFile), `${JSON.stringify(args)}\n`);
}

export function readMonArgs(dir: string): string[] {
  try {
    const value = JSON.parse(readFileSync(join(dir, monArgsFile), 'utf8')) as unknown;
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : [];
  } catch {
    return [];
  }
}
