// The ceph target: the system paxmon reimplements, Ceph's own monitor (`ceph-mon` 16.2 from
// Debian, installed by the bench when missing, as etcd is). 3 monitors on loopback with cephx,
// no mgr and no OSD, made as Ceph's manual deployment makes them (ceph-authtool keyrings for mon.
// and client.admin, monmaptool, `ceph-mon --mkfs`) in a temp dir with a ceph.conf of its own, and
// run in the foreground (`ceph-mon -i NAME -f`) so that the bench owns their pids and kills them.
// Clients are librados: one python3 worker process per client (ceph-worker.py: one Rados handle,
// one MonClient session pinned to one monitor) sending `config-key set/get` with mon_command, a
// request a line over its stdin/stdout; latency is measured here, as for the other targets.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { paxmonFastSets } from './fast-timing.ts';
import { sleep } from './load.ts';
import {
  aptInstall,
  freePorts,
  makeTempDir,
  type Owned,
  removeTempDir,
  runCommand,
  startProcess,
  stopProcess,
  tail,
  which,
} from './proc.ts';
import type { ClientOptions, Cluster, KvClient, Member, StartOptions, Target } from './target.ts';

const names = ['a', 'b', 'c'];
const packages = ['ceph-mon', 'ceph-common', 'python3-rados'];
const workerScript = fileURLToPath(new URL('ceph-worker.py', import.meta.url));
/** Requests one worker runs at once (a thread each); more wait in its queue. */
const WORKER_THREADS_MAX = 128;
/** How long a worker may take to connect and authenticate before it counts as failed. */
const WORKER_CONNECT_TIMEOUT_S = 20;

/**
 * Equal fast timing: paxmon's own fast options (paxmonFastSets), which carry Ceph's names and
 * meaning: a peon gives up on its leader when the lease was not renewed for mon_lease ×
 * mon_lease_ack_timeout_factor (2) = 250 ms; an election short of a monitor ends on
 * mon_election_timeout = 250 ms. Ceph's renewal factor (0.6: every 75 ms) is left as Ceph has it.
 */
export const cephFastOptions = paxmonFastSets.map((pair) => pair.split('=') as [string, string]);

interface CephTools {
  mon: string;
  monmaptool: string;
  authtool: string;
  /** A python3 that can `import rados` (Debian's, not a pyenv or venv one without python3-rados). */
  python: string;
}

function findTools(): CephTools | string {
  const mon = which('ceph-mon');
  const monmaptool = which('monmaptool');
  const authtool = which('ceph-authtool');
  const pythons = [...new Set(['/usr/bin/python3', which('python3')].filter((p): p is string => !!p))];
  const python = pythons.find((p) => {
    try {
      execFileSync(p, ['-c', 'import rados'], { stdio: 'ignore', timeout: 20_000 });
      return true;
    } catch {
      return false;
    }
  });
  const missing = [
    ...(mon ? [] : ['ceph-mon']),
    ...(monmaptool ? [] : ['monmaptool']),
    ...(authtool ? [] : ['ceph-authtool']),
    ...(python ? [] : [`a python3 with the rados module (tried ${pythons.join(', ') || 'none'})`]),
  ];
  if (mon && monmaptool && authtool && python) return { mon, monmaptool, authtool, python };
  return missing.join(', ');
}

let tools: CephTools | undefined;

/** Ceph's tools; installs ceph-mon, ceph-common and python3-rados with apt-get when missing. */
export function ensureCeph(log: (line: string) => void): CephTools {
  if (tools) return tools;
  const found = findTools();
  if (typeof found !== 'string') {
    tools = found;
    return found;
  }
  log(
    `ceph: ${found} not found: installing Debian's ${packages.join(' ')} with apt-get (needs root or passwordless sudo)`,
  );
  try {
    aptInstall(packages);
  } catch (error) {
    throw new Error(`apt-get install ${packages.join(' ')} failed: ${(error as Error).message}`);
  }
  const installed = findTools();
  if (typeof installed === 'string')
    throw new Error(`apt-get installed ${packages.join(' ')} but ${installed} still missing`);
  tools = installed;
  return installed;
}

// --- the librados worker ------------------------------------------------------------------------

interface Reply {
  r: number;
  rs: string;
  out: string;
}

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** One ceph-worker.py process: a librados session; each command() is one mon_command. */
class RadosWorker {
  #next = 1;
  readonly #pending = new Map<number, Pending>();
  #failure: string | null = null;

  private constructor(
    readonly owned: Owned,
    readonly logFile: string,
    readonly timeoutMs: number,
  ) {}

  static async start(options: {
    name: string;
    python: string;
    conf: string;
    monHost: string;
    timeoutMs: number;
    dir: string;
  }): Promise<RadosWorker> {
    const logFile = join(options.dir, `${options.name}.log`);
    const owned = startProcess(
      options.name,
      options.python,
      [
        workerScript,
        '--conf',
        options.conf,
        '--mon-host',
        options.monHost,
        '--op-timeout-s',
        String(Math.max(1, Math.ceil(options.timeoutMs / 1000))),
        '--connect-timeout-s',
        String(WORKER_CONNECT_TIMEOUT_S),
        '--threads-max',
        String(WORKER_THREADS_MAX),
      ],
      { cwd: options.dir, logFile, pipes: true },
    );
    const worker = new RadosWorker(owned, logFile, options.timeoutMs);
    try {
      await worker.#ready((WORKER_CONNECT_TIMEOUT_S + 10) * 1000);
    } catch (error) {
      await stopProcess(owned, 0);
      throw error;
    }
    return worker;
  }

  /** Wait for the worker's first line, then route every further line to its request. */
  #ready(timeoutMs: number): Promise<void> {
    const { child } = this.owned;
    if (!child.stdin || !child.stdout) throw new Error(`${this.owned.name}: no pipes`);
    child.stdin.on('error', (error: Error) => this.#fail(`stdin: ${error.message}`));
    const lines = createInterface({ input: child.stdout });
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(
        () => reject(new Error(`${this.owned.name}: not connected within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const fail = (why: string) => {
        clearTimeout(timer);
        reject(new Error(`${this.owned.name}: ${why}${this.#logTail()}`));
      };
      this.owned.exited.then((code) => {
        this.#fail(`exited (${code})`);
        if (!ready) fail(`exited (${code}) before it connected`);
      });
      lines.on('line', (line) => {
        let record: { ready?: boolean; error?: string; id?: number } & Partial<Reply>;
        try {
          record = JSON.parse(line);
        } catch {
          this.#fail(`unreadable line: ${line.slice(0, 200)}`);
          return;
        }
        if (!ready) {
          if (record.ready) {
            ready = true;
            clearTimeout(timer);
            resolve();
          } else fail(`could not connect: ${record.error ?? line}`);
          return;
        }
        const pending = this.#pending.get(record.id ?? -1);
        // A reply after its request timed out here is dropped: it was counted as an error.
        if (!pending) return;
        this.#pending.delete(record.id as number);
        clearTimeout(pending.timer);
        pending.resolve({ r: record.r ?? -5, rs: record.rs ?? '', out: record.out ?? '' });
      });
    });
  }

  #logTail(): string {
    const t = tail(this.logFile);
    return t ? `; its stderr ends:\n${t}` : '';
  }

  #fail(why: string): void {
    this.#failure ??= why;
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(id);
      pending.reject(new Error(`${this.owned.name}: ${why}`));
    }
  }

  /** One mon_command (the command as `ceph` would send it); rejects on a timeout or a dead worker. */
  command(cmd: Record<string, string>): Promise<Reply> {
    if (this.#failure) return Promise.reject(new Error(`${this.owned.name}: ${this.#failure}`));
    const id = this.#next++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${cmd.prefix}: no reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      // The deadline lets the worker drop a request it could not start before we gave up on it.
      this.owned.child.stdin?.write(`${id}\t${Date.now() + this.timeoutMs}\t${JSON.stringify(cmd)}\n`);
    });
  }

  /** Close its stdin (it finishes what runs and shuts librados down), bounded, then SIGKILL. */
  async close(): Promise<void> {
    this.#fail('closed');
    this.owned.child.stdin?.end();
    await Promise.race([this.owned.exited, sleep(3000)]);
    await stopProcess(this.owned, 0);
  }
}

class CephClient implements KvClient {
  constructor(readonly worker: RadosWorker) {}

  async put(key: string, value: string): Promise<void> {
    const reply = await this.worker.command({ prefix: 'config-key set', key, val: value });
    if (reply.r !== 0) throw new Error(`config-key set: r=${reply.r} ${reply.rs}`);
  }

  async get(key: string): Promise<Uint8Array | null> {
    const reply = await this.worker.command({ prefix: 'config-key get', key });
    if (reply.r === -2) return null;
    if (reply.r !== 0) throw new Error(`config-key get: r=${reply.r} ${reply.rs}`);
    return Buffer.from(reply.out, 'utf8');
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}

// --- the cluster --------------------------------------------------------------------------------

interface QuorumStatus {
  quorum_names: string[];
  quorum_leader_name: string;
}

const monHostOf = (addrs: string[]) => addrs.map((a) => `[v2:${a}]`).join(',');

class CephCluster implements Cluster {
  #control: RadosWorker | null = null;
  #workers = 0;

  constructor(
    readonly dir: string,
    readonly tools: CephTools,
    readonly members: readonly Member[],
  ) {}

  get conf(): string {
    return join(this.dir, 'ceph.conf');
  }

  #worker(addrs: string[], timeoutMs: number, what: string): Promise<RadosWorker> {
    return RadosWorker.start({
      name: `rados.${what}.${this.#workers++}`,
      python: this.tools.python,
      conf: this.conf,
      monHost: monHostOf(addrs),
      timeoutMs,
      dir: join(this.dir, 'clients'),
    });
  }

  /** A session with all the monitors, for quorum_status (started once, kept until stop). */
  async #controlWorker(): Promise<RadosWorker> {
    this.#control ??= await this.#worker(
      this.members.map((m) => m.addr),
      5000,
      'control',
    );
    return this.#control;
  }

  async quorum(): Promise<QuorumStatus> {
    const control = await this.#controlWorker();
    const reply = await control.command({ prefix: 'quorum_status', format: 'json' });
    if (reply.r !== 0) throw new Error(`quorum_status: r=${reply.r} ${reply.rs}`);
    return JSON.parse(reply.out) as QuorumStatus;
  }

  /** Wait until every monitor is in the quorum and a write goes through. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let last = 'no answer';
    while (performance.now() < deadline) {
      for (const m of this.members) {
        if (m.process.exitedAt !== null)
          throw new Error(
            `mon.${m.name} exited during start-up; its log ends:\n${tail(join(this.dir, `mon.${m.name}.log`))}${tail(join(this.dir, `mon.${m.name}.out`))}`,
          );
      }
      try {
        const q = await this.quorum();
        if (q.quorum_names.length === this.members.length) {
          const control = await this.#controlWorker();
          const reply = await control.command({ prefix: 'config-key set', key: 'bench/ready', val: '1' });
          if (reply.r === 0) return;
          last = `config-key set: r=${reply.r} ${reply.rs}`;
        } else last = `quorum ${q.quorum_names.join(',')}`;
      } catch (error) {
        last = (error as Error).message;
        // A control session that failed to connect is tried again.
        if (this.#control && /exited|closed|stdin/.test(last)) {
          await this.#control.close();
          this.#control = null;
        }
      }
      await sleep(100);
    }
    throw new Error(`ceph: no full quorum within ${timeoutMs} ms (${last}); logs in ${this.dir}`);
  }

  async leader(): Promise<string> {
    return (await this.quorum()).quorum_leader_name;
  }

  async client(member: string, options: ClientOptions): Promise<KvClient> {
    const m = this.members.find((x) => x.name === member);
    if (!m) throw new Error(`no member ${member}`);
    return new CephClient(await this.#worker([m.addr], options.timeoutMs, m.name));
  }

  async stop(options: { graceful?: boolean } = {}): Promise<void> {
    await this.#control?.close().catch(() => {});
    this.#control = null;
    await Promise.all(this.members.map((m) => stopProcess(m.process, options.graceful ? 10_000 : 0)));
    removeTempDir(this.dir);
  }
}

/** ceph.conf for the bench cluster: everything in `dir`, cephx everywhere, no mgr, no OSD. */
function cephConf(dir: string, fsid: string, addrs: string[], fast: boolean): string {
  return [
    '[global]',
    `fsid = ${fsid}`,
    `mon_host = ${monHostOf(addrs)}`,
    'auth_cluster_required = cephx',
    'auth_service_required = cephx',
    'auth_client_required = cephx',
    `run_dir = ${join(dir, 'run')}`,
    `crash_dir = ${join(dir, 'crash')}`,
    '',
    '[mon]',
    `mon_data = ${join(dir, '$id')}`,
    `log_file = ${join(dir, '$name.log')}`,
    `mon_cluster_log_file = ${join(dir, '$name.cluster.log')}`,
    // A full disk under the temp dir would otherwise stop a monitor (below 5% free) or put a
    // warning up (below 30%): the bench measures the monitor, not the disk.
    'mon_data_avail_crit = 0',
    'mon_data_avail_warn = 0',
    // The one health warning such a cluster raises (monitors allowing insecure global_id
    // reclaim) stops nothing, but is silenced: the cluster reports HEALTH_OK.
    'mon_warn_on_insecure_global_id_reclaim_allowed = false',
    ...(fast ? cephFastOptions.map(([name, value]) => `${name} = ${value}`) : []),
    '',
    '[client]',
    `keyring = ${join(dir, 'admin.keyring')}`,
    '',
  ].join('\n');
}

export const cephTarget: Target = {
  name: 'ceph',

  async version() {
    const { mon } = ensureCeph((line) => process.stderr.write(`${line}\n`));
    const out = execFileSync(mon, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const m = /ceph version (\S+) \(\w+\) (\w+)/.exec(out);
    let debian = '';
    try {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not a template
      debian = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'ceph-mon'], {
        encoding: 'utf8',
        timeout: 10_000,
      }).trim();
    } catch {
      // not installed from a Debian package
    }
    const version = m ? `${m[1]} ${m[2]}` : out.trim().split('\n')[0];
    return `ceph-mon ${version}${debian ? ` (Debian ${debian})` : ''}`;
  },

  timing(fast: boolean) {
    return fast
      ? `${cephFastOptions.map(([name, value]) => `${name} = ${value}`).join(', ')} in ceph.conf`
      : 'defaults (mon_lease 5 s, mon_election_timeout 5 s, mon_probe_timeout 2 s)';
  },

  async start(options: StartOptions): Promise<Cluster> {
    const found = ensureCeph((line) => process.stderr.write(`${line}\n`));
    const dir = makeTempDir('ceph-bench-');
    const members: Member[] = [];
    try {
      for (const sub of ['run', 'crash', 'clients']) mkdirSync(join(dir, sub), { recursive: true });
      const ports = await freePorts(names.length);
      const mons = names.map((name, i) => ({ name, addr: `127.0.0.1:${ports[i]}` }));
      const fsid = randomUUID();
      const conf = join(dir, 'ceph.conf');
      writeFileSync(
        conf,
        cephConf(
          dir,
          fsid,
          mons.map((m) => m.addr),
          options.fast,
        ),
      );
      const run = (command: string, args: string[]) =>
        runCommand(command, args, { cwd: dir, timeoutMs: 60_000 });
      const monKeyring = join(dir, 'mon.keyring');
      const adminKeyring = join(dir, 'admin.keyring');
      await run(found.authtool, [
        '--create-keyring',
        monKeyring,
        '--gen-key',
        '-n',
        'mon.',
        '--cap',
        'mon',
        'allow *',
      ]);
      await run(found.authtool, [
        '--create-keyring',
        adminKeyring,
        '--gen-key',
        '-n',
        'client.admin',
        ...[
          '--cap',
          'mon',
          'allow *',
          '--cap',
          'osd',
          'allow *',
          '--cap',
          'mds',
          'allow *',
          '--cap',
          'mgr',
          'allow *',
        ],
      ]);
      await run(found.authtool, [monKeyring, '--import-keyring', adminKeyring]);
      const monmap = join(dir, 'monmap');
      await run(found.monmaptool, [
        '--create',
        '--fsid',
        fsid,
        ...mons.flatMap((m) => ['--addv', m.name, `[v2:${m.addr}]`]),
        monmap,
      ]);
      await Promise.all(
        mons.map((m) =>
          run(found.mon, ['-c', conf, '--mkfs', '-i', m.name, '--monmap', monmap, '--keyring', monKeyring]),
        ),
      );
      if (!mons.every((m) => existsSync(join(dir, m.name, 'keyring'))))
        throw new Error(`ceph-mon --mkfs left no keyring in ${dir}/NAME`);
      for (const m of mons)
        members.push({
          name: m.name,
          addr: m.addr,
          process: startProcess(`ceph-mon.${m.name}`, found.mon, ['-c', conf, '-i', m.name, '-f'], {
            cwd: dir,
            logFile: join(dir, `mon.${m.name}.out`),
          }),
        });
      const cluster = new CephCluster(dir, found, members);
      try {
        await cluster.waitHealthy(60_000);
      } catch (error) {
        await cluster.stop();
        throw error;
      }
      return cluster;
    } catch (error) {
      await Promise.all(members.map((m) => stopProcess(m.process, 0)));
      removeTempDir(dir);
      throw error;
    }
  },
};
