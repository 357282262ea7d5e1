// The etcd target: Debian's etcd-server (installed by the bench when missing), 3 members on
// loopback with default durability (WAL fsync per batch), driven by the `etcd3` npm client.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { sleep } from './load.ts';
import {
  aptInstall,
  freePorts,
  makeTempDir,
  removeTempDir,
  startProcess,
  stopProcess,
  tail,
  which,
} from './proc.ts';
import type { ClientOptions, Cluster, KvClient, Member, ReadMode, StartOptions, Target } from './target.ts';

const names = ['a', 'b', 'c'];
/** etcd's own fast setting that paxmon's fast timing is matched to (see paxmonFastSets). */
export const etcdFastFlags = ['--heartbeat-interval=50', '--election-timeout=250'];

/** The etcd binary; installs Debian's etcd-server with apt-get when it is missing. */
export function ensureEtcd(log: (line: string) => void): string {
  const found = which('etcd');
  if (found) return found;
  log("etcd not found: installing Debian's etcd-server with apt-get (needs root or passwordless sudo)");
  aptInstall(['etcd-server']);
  const installed = which('etcd');
  if (!installed) throw new Error('apt-get installed etcd-server but there is no etcd binary on PATH');
  return installed;
}

class EtcdClient implements KvClient {
  constructor(
    readonly client: Etcd3,
    readonly timeoutMs: number,
  ) {}

  async put(key: string, value: string): Promise<void> {
    await this.client.put(key).value(value).exec();
  }

  async get(key: string, mode: ReadMode): Promise<Uint8Array | null> {
    return this.client
      .get(key)
      .serializable(mode === 'serializable')
      .buffer();
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

function newClient(addr: string, timeoutMs: number): Etcd3 {
  return new Etcd3({
    hosts: `http://${addr}`,
    // One gRPC connection per client object (grpc-js otherwise shares one per address).
    grpcOptions: { 'grpc.use_local_subchannel_pool': 1 },
    // No client-side retries or circuit breakers: a failure counts, as for paxmon's MonClient
    // pinned to one monitor.
    faultHandling: { host: () => noop, global: noop },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  });
}

class EtcdCluster implements Cluster {
  constructor(
    readonly dir: string,
    readonly members: readonly Member[],
  ) {}

  /** Each member's own view: its id and the leader's id; null when it does not answer. */
  async #statuses(timeoutMs: number) {
    return Promise.all(
      this.members.map(async (m) => {
        const client = newClient(m.addr, timeoutMs);
        try {
          const status = await client.maintenance.status();
          return { name: m.name, id: status.header.member_id, leader: status.leader };
        } catch {
          return null;
        } finally {
          client.close();
        }
      }),
    );
  }

  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      for (const m of this.members) {
        if (m.process.exitedAt !== null)
          throw new Error(
            `etcd ${m.name} exited during start-up; its log ends:\n${tail(join(this.dir, m.name, 'log'))}`,
          );
      }
      const statuses = await this.#statuses(2000);
      if (statuses.every((s) => s && s.leader !== '0' && s.leader === statuses[0]?.leader)) {
        // Wait until a write goes through (the cluster is serving, not just elected).
        const client = newClient((this.members[0] as Member).addr, 2000);
        try {
          await client.put('bench/ready').value('1');
          return;
        } catch {
          // not yet
        } finally {
          client.close();
        }
      }
      await sleep(100);
    }
    throw new Error(`etcd: no healthy cluster within ${timeoutMs} ms; logs in ${this.dir}/*/log`);
  }

  async leader(): Promise<string> {
    const statuses = await this.#statuses(2000);
    const leaderId = statuses.find((s) => s)?.leader;
    const leader = statuses.find((s) => s && s.id === leaderId);
    if (!leader) throw new Error('etcd: no member reports itself as the leader');
    return leader.name;
  }

  async client(member: string, options: ClientOptions): Promise<KvClient> {
    const m = this.members.find((x) => x.name === member);
    if (!m) throw new Error(`no member ${member}`);
    return new EtcdClient(newClient(m.addr, options.timeoutMs), options.timeoutMs);
  }

  async stop(options: { graceful?: boolean } = {}): Promise<void> {
    await Promise.all(this.members.map((m) => stopProcess(m.process, options.graceful ? 10_000 : 0)));
    removeTempDir(this.dir);
  }
}

export const etcdTarget: Target = {
  name: 'etcd',

  async version() {
    const binary = ensureEtcd(() => {});
    const out = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const m = /etcd Version:\s*(\S+)/.exec(out);
    return `etcd ${m ? m[1] : out.trim().split('\n')[0]}`;
  },

  timing(fast: boolean) {
    return fast ? etcdFastFlags.join(' ') : 'defaults (heartbeat 100 ms, election timeout 1000 ms)';
  },

  async start(options: StartOptions): Promise<Cluster> {
    const binary = ensureEtcd((line) => process.stderr.write(`${line}\n`));
    const dir = makeTempDir('etcd-bench-');
    try {
      const ports = await freePorts(names.length * 2);
      const mons = names.map((name, i) => ({
        name,
        client: `127.0.0.1:${ports[2 * i]}`,
        peer: `http://127.0.0.1:${ports[2 * i + 1]}`,
      }));
      const initialCluster = mons.map((m) => `${m.name}=${m.peer}`).join(',');
      const token = `bench-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      const members: Member[] = mons.map((m) => {
        const memberDir = join(dir, m.name);
        mkdirSync(memberDir, { recursive: true });
        const owned = startProcess(
          `etcd.${m.name}`,
          binary,
          [
            `--name=${m.name}`,
            `--data-dir=${join(memberDir, 'data')}`,
            `--listen-client-urls=http://${m.client}`,
            `--advertise-client-urls=http://${m.client}`,
            `--listen-peer-urls=${m.peer}`,
            `--initial-advertise-peer-urls=${m.peer}`,
            `--initial-cluster=${initialCluster}`,
            `--initial-cluster-token=${token}`,
            '--initial-cluster-state=new',
            '--logger=zap',
            '--log-outputs=stderr',
            ...(options.fast ? etcdFastFlags : []),
          ],
          { cwd: memberDir, logFile: join(memberDir, 'log') },
        );
        return { name: m.name, addr: m.client, process: owned };
      });
      const cluster = new EtcdCluster(dir, members);
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
