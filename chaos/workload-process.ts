// The runner's end of the workload process (chaos/workload-main.ts): started in the lab's client
// network namespace with `ip netns exec`, handed its configuration on stdin, read back as JSON lines
// on stdout — every operation as it ends, so that the runner holds the history even if the process
// dies. It is stopped by pid only (SIGTERM, then SIGKILL), on an error and on Ctrl-C too.
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LabHost } from '../spec/support/netns.ts';
import { repoRoot } from '../spec/support/process.ts';
import type { OpRecord, WorkloadConfig, WorkloadMessage } from './workload.ts';

/** How long the process may take to start its clients (node loading the bundle on a busy machine). */
const startBoundMs = 30_000;
/** How long a stop may take beyond an op's deadline and the final reads. */
const stopSlackMs = 10_000;
/** SIGTERM, then SIGKILL after this. */
const termGraceMs = 5000;

/** The full path of `ip` (a user's PATH may lack the sbin directories). */
export function locateIp(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'ip'), constants.X_OK);
      return join(dir, 'ip');
    } catch {}
  }
  throw new Error("no 'ip' (iproute2) on the PATH");
}

export class WorkloadProcess {
  readonly host: LabHost;
  readonly history: OpRecord[] = [];
  /** Client process number → its session's name, as the monitors log it. */
  readonly sessions = new Map<number, string>();
  /** The IPv4 addresses the process's own kernel namespace gave it (its `os.networkInterfaces()`). */
  addresses: string[] = [];
  /** When its clients started, on the run's clock. */
  startedMs = Number.NaN;
  /** When its last op in flight ended after `stop`, on the run's clock. */
  stoppedMs = Number.NaN;
  /** Set once the process exited: how. */
  exit: { code: number | null; signal: string | null } | undefined;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #waiters = new Set<() => void>();
  #done = false;

  private constructor(host: LabHost, child: ChildProcess) {
    this.host = host;
    this.#child = child;
    this.#exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.#wake();
        resolve();
      }),
    );
    child.on('error', () => {});
    child.stdin?.on('error', () => {});
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity });
    lines.on('line', (line) => this.#receive(JSON.parse(line) as WorkloadMessage));
  }

  /**
   * Start the workload in `host`'s namespace (`command`: node's arguments before nothing else —
   * flags and the entry) with its output to `logFile`; resolves once its clients run.
   */
  static async start(
    host: LabHost,
    command: readonly string[],
    config: WorkloadConfig,
    logFile: string,
  ): Promise<WorkloadProcess> {
    const log = openSync(logFile, 'a');
    // `ip netns exec` execs node: the child's pid is the workload's own.
    const child = spawn(locateIp(), ['netns', 'exec', host.netns, process.execPath, ...command], {
      cwd: repoRoot,
      stdio: ['pipe', 'pipe', log],
    });
    closeSync(log);
    const workload = new WorkloadProcess(host, child);
    child.stdin?.write(`${JSON.stringify(config)}\n`);
    try {
      await workload.#until(() => !Number.isNaN(workload.startedMs), startBoundMs, 'start its clients');
    } catch (error) {
      await workload.destroy();
      throw error;
    }
    return workload;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  #receive(message: WorkloadMessage): void {
    switch (message.type) {
      case 'started':
        this.startedMs = message.atMs;
        this.addresses = message.addresses;
        break;
      case 'client':
        this.sessions.set(message.process, message.session);
        break;
      case 'op':
        this.history.push(message.op);
        break;
      case 'stopped':
        this.stoppedMs = message.atMs;
        break;
      case 'done':
        this.#done = true;
        break;
    }
    this.#wake();
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
  }

  /** Resolves once `ready()`; rejects when the process exits first or `boundMs` pass. */
  #until(ready: () => boolean, boundMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = () => {
        if (ready()) finish();
        else if (this.exit)
          finish(
            new Error(
              `the workload process (pid ${this.pid}) exited (${this.exit.signal ?? `code ${this.exit.code}`}) before it could ${what}`,
            ),
          );
      };
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.#waiters.delete(settle);
        if (error) reject(error);
        else resolve();
      };
      const timer = setTimeout(
        () =>
          finish(new Error(`the workload process (pid ${this.pid}) did not ${what} within ${boundMs} ms`)),
        boundMs,
      );
      this.#waiters.add(settle);
      settle();
    });
  }

  /**
   * Stop starting operations, let those in flight end, read every key once more (each retried for
   * `finalReadsBoundMs`), and wait for the process to exit. Rejects if it dies on the way.
   */
  async stop(opTimeoutMs: number, keys: number, finalReadsBoundMs: number): Promise<void> {
    this.#child.stdin?.write('stop\n');
    await this.#until(() => !Number.isNaN(this.stoppedMs), opTimeoutMs + stopSlackMs, 'stop its clients');
    // Each final read may take its whole bound plus one attempt's deadline.
    await this.#until(() => this.#done, keys * (finalReadsBoundMs + 5000) + stopSlackMs, 'read every key');
    this.#child.stdin?.end();
    await this.#until(() => this.exit !== undefined, termGraceMs, 'exit').catch(() => this.destroy());
  }

  /** Synchronous, for a runner that is exiting (Ctrl-C): SIGKILL by pid. */
  killNow(): void {
    if (this.exit || this.#child.pid === undefined) return;
    try {
      process.kill(this.#child.pid, 'SIGKILL');
    } catch {}
  }

  /** SIGTERM, SIGKILL after 5 s; resolves once it exited. Idempotent. */
  async destroy(): Promise<void> {
    if (this.exit) return;
    this.#child.kill('SIGTERM');
    const ended = await this.#until(() => this.exit !== undefined, termGraceMs, 'exit on SIGTERM').then(
      () => true,
      () => false,
    );
    if (!ended) {
      this.#child.kill('SIGKILL');
      await this.#exited;
    }
  }
}

/** What the monitors' logs say of the workload's sessions: where each one connected from. */
export interface SessionsSeen {
  /** The workload's sessions (client processes). */
  readonly sessions: number;
  /** How many of them some monitor logged as connected. */
  readonly seen: number;
  /** Connections of the workload's sessions per monitor. */
  readonly byMonitor: Record<string, number>;
  /** Connections of the workload's sessions per source address (no port). */
  readonly byAddress: Record<string, number>;
}

/**
 * Read each monitor's log (`logDir/NAME.log`, pino JSON lines) for its incoming client
 * connections (`msg: connected`, transport/messenger.ts) of the workload's `sessions`.
 */
export function sessionsSeen(
  logDir: string,
  monitors: readonly string[],
  sessions: Iterable<string>,
): SessionsSeen {
  const wanted = new Set(sessions);
  const seen = new Set<string>();
  const byMonitor: Record<string, number> = {};
  const byAddress: Record<string, number> = {};
  for (const name of monitors) {
    byMonitor[name] = 0;
    const file = join(logDir, `${name}.log`);
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.includes('"connected"') || !line.includes('"incoming"')) continue;
      let record: { msg?: string; direction?: string; peer?: string; addr?: string };
      try {
        record = JSON.parse(line);
      } catch {
        continue; // a line cut short by a kill -9
      }
      if (record.msg !== 'connected' || record.direction !== 'incoming' || !wanted.has(record.peer ?? ''))
        continue;
      seen.add(record.peer as string);
      byMonitor[name] = (byMonitor[name] ?? 0) + 1;
      const address = (record.addr ?? '?').replace(/:\d+$/, '').replace(/^::ffff:/, '');
      byAddress[address] = (byAddress[address] ?? 0) + 1;
    }
  }
  return { sessions: wanted.size, seen: seen.size, byMonitor, byAddress };
}

/** node's arguments for the workload from the working tree through tsx (`--from-sources`). */
export function workloadSourcesCommand(): string[] {
  return ['--import', 'tsx', join(repoRoot, 'chaos', 'workload-main.ts')];
}
