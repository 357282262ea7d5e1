// The paxmon target: 3 monitor processes made and run as `paxmon up` does (paxmon mkfs per
// monitor, then `paxmon mon --dir DIR/NAME --log-file DIR/NAME/log` each, one process each, real
// RocksDB, synced commits), but spawned by the bench itself so that it owns the pids, can add
// `node --cpu-prof`, and kills them on any exit. DIR/cluster.json is written as `up` writes it,
// so `paxmon --dir DIR quorum_status` works against a bench cluster too.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeKeyring } from '../../actors/keyring.ts';
import { newClusterKeyring } from '../../actors/mkfs.ts';
import { MonClient } from '../../actors/mon-client.ts';
import { clientCredentials } from '../../cli/client-commands.ts';
import { mkfs, monitorEnv, monitorNodeFlags } from '../../cli/cluster.ts';

/** client.admin's key in a cluster directory (DIR/keyring, as paxmon up writes it). */
const adminKeyOf = (dir: string) => clientCredentials({ dir }).key;

import { paxmonFastSets } from './fast-timing.ts';
import { sleep } from './load.ts';
import {
  freePorts,
  makeTempDir,
  removeTempDir,
  runCommand,
  startProcess,
  stopProcess,
  tail,
} from './proc.ts';
import type { ClientOptions, Cluster, KvClient, Member, StartOptions, Target } from './target.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** The monitors run from the bundle, as `npm start` runs them (built once per bench run). */
const bundle = join(root, 'dist', 'paxmon.mjs');
let built: Promise<unknown> | undefined;
const buildBundle = () => {
  built ??= runCommand(process.execPath, [join(root, 'cli', 'build.mjs')], { cwd: root, timeoutMs: 60_000 });
  return built;
};
const names = ['a', 'b', 'c'];

/** Equal fast timing (see fast-timing.ts); exported here too, where it was first. */
export { paxmonFastSets };

interface QuorumStatus {
  quorum_names: string[];
  quorum_leader_name: string;
}

class PaxmonClient implements KvClient {
  constructor(readonly mon: MonClient) {}

  async put(key: string, value: string): Promise<void> {
    const reply = await this.mon.command(['config-key', 'set', key, value]);
    if (reply.r !== 0) throw new Error(`config-key set: r=${reply.r} ${reply.rs}`);
  }

  async get(key: string): Promise<Uint8Array | null> {
    const reply = await this.mon.command(['config-key', 'get', key]);
    if (reply.r === -2) return null;
    if (reply.r !== 0) throw new Error(`config-key get: r=${reply.r} ${reply.rs}`);
    return reply.data;
  }

  close(): Promise<void> {
    return this.mon.close();
  }
}

class PaxmonCluster implements Cluster {
  constructor(
    readonly dir: string,
    readonly fsid: string,
    readonly members: readonly Member[],
  ) {}

  #all(timeoutMs: number): MonClient {
    return new MonClient({
      key: adminKeyOf(this.dir),
      mons: this.members.map((m) => ({ name: m.name, addr: m.addr })),
      fsid: this.fsid,
      attemptTimeoutMs: Math.min(1000, timeoutMs),
      timeoutMs,
    });
  }

  async quorum(timeoutMs = 5000): Promise<QuorumStatus | null> {
    const client = this.#all(timeoutMs);
    try {
      const reply = await client.command(['quorum_status']);
      if (reply.r !== 0) return null;
      return JSON.parse(new TextDecoder().decode(reply.data)) as QuorumStatus;
    } catch {
      return null;
    } finally {
      await client.close();
    }
  }

  /** Wait until every monitor is in the quorum. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let last = 'no answer';
    while (performance.now() < deadline) {
      for (const m of this.members) {
        if (m.process.exitedAt !== null)
          throw new Error(
            `mon.${m.name} exited during start-up; its log ends:\n${tail(join(this.dir, m.name, 'log'))}`,
          );
      }
      const q = await this.quorum(Math.max(500, Math.min(3000, deadline - performance.now())));
      if (q && q.quorum_names.length === this.members.length) return;
      last = q ? `quorum ${q.quorum_names.join(',')}` : 'no quorum reachable';
      await sleep(100);
    }
    throw new Error(`paxmon: no full quorum within ${timeoutMs} ms (${last}); logs in ${this.dir}/*/log`);
  }

  async leader(): Promise<string> {
    const q = await this.quorum();
    if (!q) throw new Error('paxmon: quorum_status did not answer');
    return q.quorum_leader_name;
  }

  async client(member: string, options: ClientOptions): Promise<KvClient> {
    const m = this.members.find((x) => x.name === member);
    if (!m) throw new Error(`no member ${member}`);
    return new PaxmonClient(
      new MonClient({
        key: adminKeyOf(this.dir),
        mons: [{ name: m.name, addr: m.addr }],
        fsid: this.fsid,
        attemptTimeoutMs: options.timeoutMs,
        timeoutMs: options.timeoutMs,
      }),
    );
  }

  async stop(options: { graceful?: boolean } = {}): Promise<void> {
    await Promise.all(this.members.map((m) => stopProcess(m.process, options.graceful ? 10_000 : 0)));
    removeTempDir(this.dir);
  }
}

export const paxmonTarget: Target = {
  name: 'paxmon',

  async version() {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    // PAXMON_BENCH_REV names the revision when the tree is not a git checkout (e.g. an export).
    let commit = process.env.PAXMON_BENCH_REV ?? '';
    if (!commit) {
      try {
        commit = (
          await runCommand('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, timeoutMs: 5000 })
        ).trim();
        const dirty = await runCommand('git', ['status', '--porcelain', '--untracked-files=no'], {
          cwd: root,
          timeoutMs: 5000,
        });
        if (dirty.trim()) commit += '+dirty';
      } catch {
        // not a git checkout
      }
    }
    return `paxmon ${pkg.version}${commit ? ` (${commit})` : ''}`;
  },

  timing(fast: boolean) {
    return fast
      ? paxmonFastSets.map((s) => `--set ${s}`).join(' ')
      : 'defaults (mon_lease 1 s, mon_election_timeout 1 s)';
  },

  async start(options: StartOptions): Promise<Cluster> {
    await buildBundle();
    const dir = makeTempDir('paxmon-bench-');
    try {
      const ports = await freePorts(names.length);
      const fsid = randomUUID();
      const mons = names.map((name, i) => ({ name, addr: `127.0.0.1:${ports[i]}` }));
      // paxmon mkfs for each monitor (the CLI command's own function, run here to spare three
      // process start-ups per cluster).
      const keyring = newClusterKeyring();
      await writeKeyring(
        join(dir, 'keyring'),
        keyring.filter((e) => e.entity === 'client.admin'),
      );
      for (const m of mons)
        await mkfs({
          dir: join(dir, m.name),
          name: m.name,
          fsid,
          mons: mons.map((x) => `${x.name}=${x.addr}`),
          keyring,
        });
      writeFileSync(join(dir, 'cluster.json'), `${JSON.stringify({ fsid, mons }, null, 2)}\n`);
      const sets = [...(options.fast ? paxmonFastSets : []), ...(options.sets ?? [])].flatMap((s) => [
        '--set',
        s,
      ]);
      if (options.cpuProfileDir) mkdirSync(options.cpuProfileDir, { recursive: true });
      const members: Member[] = mons.map((m) => {
        const monDir = join(dir, m.name);
        const prof = options.cpuProfileDir
          ? ['--cpu-prof', '--cpu-prof-dir', join(options.cpuProfileDir, m.name)]
          : [];
        const process_ = startProcess(
          `mon.${m.name}`,
          process.execPath,
          [
            ...prof,
            ...monitorNodeFlags,
            bundle,
            'mon',
            '--dir',
            monDir,
            '--log-file',
            join(monDir, 'log'),
            ...sets,
          ],
          { cwd: root, logFile: join(monDir, 'log'), env: monitorEnv() },
        );
        return { name: m.name, addr: m.addr, process: process_ };
      });
      const cluster = new PaxmonCluster(dir, fsid, members);
      try {
        await cluster.waitHealthy(30_000);
      } catch (error) {
        await cluster.stop();
        throw error;
      }
      return cluster;
    } catch (error) {
      removeTempDir(dir);
      throw error;
    }
  },
};
