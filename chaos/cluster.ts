// A paxmon cluster whose monitors are hosts of their own: one `paxmon mon` process per network
// namespace of a lab (spec/support/netns.ts), on a bridge made for the run, and one more host of
// the lab for the clients — the workload process runs there (chaos/workload-process.ts), with an
// address of its own on the bridge, as Jepsen's clients run on a control node. The runner itself
// reaches the monitors through its own veth only to observe them. The cluster kills, restarts,
// pauses and resumes its monitors by pid (only the processes it started), and asks each monitor
// for its own view (`mon_status`, answered locally even outside a quorum).
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyringEntry } from '../actors/keyring.ts';
import { buildMonMap, newClusterKeyring } from '../actors/mkfs.ts';
import { MonClient } from '../actors/mon-client.ts';
import { mkfs, monitorCommand, monitorEnv } from '../cli/cluster.ts';
import { createLab, type Lab, type LabHost } from '../spec/support/netns.ts';
import { repoRoot } from '../spec/support/process.ts';
import type { ElectionStrategy } from '../transport/messages.ts';

export const monPort = 6789;
/** The chaos labs' 10.99.X.0/24 (the specs' labs draw from 100–199: spec/support/netns.ts). */
export const chaosSubnets: readonly [number, number] = [200, 249];
/** Monitor names: the lab's host names, a, b, c, … */
export const monitorNamesMax = 9;
/**
 * The clients' host: the lab's last host, 10.99.X.(n+1). The nemeses' drops match the source
 * addresses of monitors (Lab.block), so a partition between monitors leaves it reaching every
 * monitor, as a Jepsen client does; a lossy or slowed monitor link (Lab.lossy, Lab.shape) slows
 * its packets too, as it slows every packet of that monitor.
 */
export const clientHostName = 'cl';

export interface MonView {
  readonly name: string;
  readonly state: string;
  readonly electionEpoch: number;
  readonly quorum: readonly number[];
}

export interface ChaosMonitor {
  readonly name: string;
  readonly rank: number;
  readonly host: LabHost;
  /** Its store (`paxmon mon --dir`). */
  readonly dir: string;
  readonly logFile: string;
  /** The running process, undefined while killed. */
  child: ChildProcess | undefined;
  paused: boolean;
  /** Extra environment for the next start (libfaketime). */
  env: NodeJS.ProcessEnv | undefined;
}

export interface ClusterOptions {
  readonly monitors: number;
  /** Stores go in `storeDir/NAME` (a tmpfs each when `storeMount` is given). */
  readonly storeDir: string;
  /** Monitor logs go in `logDir/NAME.log`. */
  readonly logDir: string;
  /** Called for a monitor's store directory before mkfs (mount a tmpfs there). */
  readonly storeMount?: (dir: string, name: string) => Promise<void>;
  /** `paxmon mon --set` options for every monitor. */
  readonly set?: readonly string[];
  /**
   * How to run `paxmon` (node's arguments before `mon`): default the way this process runs
   * (monitorCommand(): the sources through tsx); a run passes its frozen bundle (chaos/bundle.ts).
   */
  readonly command?: readonly string[];
  /** The monmap's election strategy (default classic, as `paxmon mkfs`). */
  readonly strategy?: ElectionStrategy;
}

const decoder = new TextDecoder();

export class ChaosCluster {
  readonly fsid = randomUUID();
  readonly keyring: KeyringEntry[] = newClusterKeyring();
  readonly adminKey: string;
  readonly monitors: ChaosMonitor[] = [];
  /** Monitors that exited by themselves (not by kill()): a crash, or a stop on ENOSPC. */
  readonly exits: { name: string; at: number; code: number | null; signal: string | null }[] = [];
  readonly #killed = new WeakSet<ChildProcess>();
  #destroying = false;
  readonly #lab: Lab;
  readonly #options: ClusterOptions;
  /** One client per monitor, for its own view: never failing over to another. */
  readonly #observers = new Map<string, MonClient>();

  private constructor(lab: Lab, options: ClusterOptions) {
    this.#lab = lab;
    this.#options = options;
    this.adminKey = this.keyring.find((entry) => entry.entity === 'client.admin')?.key as string;
  }

  /** Build the lab, make every monitor's store and start them; the lab is removed on failure. */
  static async create(options: ClusterOptions): Promise<ChaosCluster> {
    if (options.monitors < 1 || options.monitors > monitorNamesMax)
      throw new RangeError(`--monitors ${options.monitors}: 1 to ${monitorNamesMax}`);
    const names = Array.from({ length: options.monitors }, (_, i) => String.fromCharCode(97 + i));
    const lab = await createLab([...names, clientHostName], { subnets: chaosSubnets });
    const cluster = new ChaosCluster(lab, options);
    try {
      const monmap = {
        ...buildMonMap(
          cluster.fsid,
          cluster.#monitorHosts().map((host) => ({ name: host.name, addr: `${host.ip}:${monPort}` })),
          Date.now(),
        ),
        ...(options.strategy ? { electionStrategy: options.strategy } : {}),
      };
      for (const [rank, host] of cluster.#monitorHosts().entries()) {
        const dir = join(options.storeDir, host.name);
        mkdirSync(dir, { recursive: true });
        await options.storeMount?.(dir, host.name);
        await mkfs({ dir, name: host.name, mons: [], monmap, keyring: cluster.keyring });
        cluster.monitors.push({
          name: host.name,
          rank,
          host,
          dir,
          logFile: join(options.logDir, `${host.name}.log`),
          child: undefined,
          paused: false,
          env: undefined,
        });
      }
      for (const mon of cluster.monitors) cluster.start(mon);
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  /** The workload's view of the cluster: every monitor's address. */
  get mons(): { name: string; addr: string }[] {
    return this.monitors.map((mon) => ({ name: mon.name, addr: `${mon.host.ip}:${monPort}` }));
  }

  get lab(): Lab {
    return this.#lab;
  }

  /** The clients' host (its network namespace, veth and address on the bridge). */
  get client(): LabHost {
    return this.#lab.hosts.find((host) => host.name === clientHostName) as LabHost;
  }

  #monitorHosts(): readonly LabHost[] {
    return this.#lab.hosts.filter((host) => host.name !== clientHostName);
  }

  monitor(name: string): ChaosMonitor {
    const mon = this.monitors.find((m) => m.name === name);
    if (!mon) throw new RangeError(`no monitor ${name}`);
    return mon;
  }

  /** Start a monitor that is not running (its store is kept across kills). */
  start(mon: ChaosMonitor): void {
    if (mon.child) return;
    const argv = [
      process.execPath,
      ...(this.#options.command ?? monitorCommand()),
      'mon',
      '--dir',
      mon.dir,
      '--log-file',
      mon.logFile,
      ...(this.#options.set ?? []).flatMap((option) => ['--set', option]),
    ];
    const env = monitorEnv(mon.env ? { ...process.env, ...mon.env } : process.env);
    const child = this.#lab.spawn(mon.host, argv, mon.logFile, repoRoot, env);
    mon.child = child;
    mon.paused = false;
    child.once('exit', (code, signal) => {
      if (!this.#killed.has(child) && !this.#destroying)
        this.exits.push({ name: mon.name, at: Date.now(), code, signal });
      if (mon.child === child) {
        mon.child = undefined;
        mon.paused = false;
      }
    });
  }

  /** kill -9, and wait for the exit. */
  async kill(mon: ChaosMonitor): Promise<void> {
    const child = mon.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      mon.child = undefined;
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.#killed.add(child);
    child.kill('SIGKILL');
    await exited;
  }

  pause(mon: ChaosMonitor): void {
    if (!mon.child || mon.paused) return;
    mon.child.kill('SIGSTOP');
    mon.paused = true;
  }

  resume(mon: ChaosMonitor): void {
    if (!mon.child || !mon.paused) return;
    mon.child.kill('SIGCONT');
    mon.paused = false;
  }

  /** Whether its process is alive (not necessarily running: it may be paused). */
  running(mon: ChaosMonitor): boolean {
    return mon.child !== undefined && mon.child.exitCode === null && mon.child.signalCode === null;
  }

  /** One monitor's own view (mon_status), or undefined when it does not answer within `timeoutMs`. */
  async view(mon: ChaosMonitor, timeoutMs = 400): Promise<MonView | undefined> {
    let client = this.#observers.get(mon.name);
    if (!client) {
      client = new MonClient({
        mons: [{ name: mon.name, addr: `${mon.host.ip}:${monPort}` }],
        fsid: this.fsid,
        key: this.adminKey,
        attemptTimeoutMs: timeoutMs,
        timeoutMs,
      });
      this.#observers.set(mon.name, client);
    }
    try {
      const reply = await client.command(['mon_status']);
      if (reply.r !== 0) return undefined;
      const status = JSON.parse(decoder.decode(reply.data)) as {
        name: string;
        state: string;
        election_epoch: number;
        quorum: number[];
      };
      return {
        name: status.name,
        state: status.state,
        electionEpoch: status.election_epoch,
        quorum: status.quorum,
      };
    } catch {
      return undefined;
    }
  }

  /** `health detail` from any monitor (its text), or undefined when none answered. */
  async health(): Promise<string | undefined> {
    const client = new MonClient({
      mons: this.mons,
      fsid: this.fsid,
      key: this.adminKey,
      attemptTimeoutMs: 500,
      timeoutMs: 1500,
    });
    try {
      const reply = await client.command(['health', 'detail']);
      return reply.r === 0 ? `${reply.rs}\n${decoder.decode(reply.data)}` : undefined;
    } catch {
      return undefined;
    } finally {
      await client.close().catch(() => {});
    }
  }

  async views(): Promise<(MonView | undefined)[]> {
    return Promise.all(this.monitors.map((mon) => this.view(mon)));
  }

  /** The leader of the newest election epoch any monitor reports, if one says it leads. */
  async leader(): Promise<ChaosMonitor | undefined> {
    const views = (await this.views()).filter((view) => view !== undefined);
    const leaders = views.filter((view) => view.state === 'leader');
    leaders.sort((a, b) => b.electionEpoch - a.electionEpoch);
    const name = leaders[0]?.name;
    return name === undefined ? undefined : this.monitor(name);
  }

  /** Every monitor in one quorum of all of them: leader or peon, same election epoch, n members. */
  async quorumOfAll(): Promise<boolean> {
    const views = await this.views();
    const n = this.monitors.length;
    const epoch = views[0]?.electionEpoch;
    return views.every(
      (view) =>
        view !== undefined &&
        (view.state === 'leader' || view.state === 'peon') &&
        view.quorum.length === n &&
        view.electionEpoch === epoch,
    );
  }

  /** Close the observers, stop the monitors and remove the lab. Idempotent. */
  async destroy(): Promise<void> {
    this.#destroying = true;
    const observers = [...this.#observers.values()];
    this.#observers.clear();
    await Promise.all(observers.map((client) => client.close().catch(() => {})));
    for (const mon of this.monitors) this.resume(mon);
    await this.#lab.destroy();
  }
}
