// One chaos run: a cluster of monitors in network namespaces, a workload through MonClient in a
// process of its own in the lab's client namespace (its history streamed back), a seeded schedule
// of nemeses with a recovery measured after each heal, then every fault healed, the final reads,
// the checks, and the report (summary, history as JSON lines, SVG timeline). Everything it
// creates — namespaces, bridge, rules, processes, tmpfs mounts, stores — is removed at the end,
// also on an error or Ctrl-C.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from '../machines/config.ts';
import { netnsUnavailable, qdiscUnavailable } from '../spec/support/netns.ts';
import type { ElectionStrategy } from '../transport/messages.ts';
import { freezeBundle, sourceOf } from './bundle.ts';
import { type Analysis, analyze } from './check.ts';
import { ChaosCluster } from './cluster.ts';
import {
  fillUp,
  healEverything,
  type NemesisContext,
  type NemesisEvent,
  type NemesisKind,
  planSchedule,
  runStep,
} from './nemesis.ts';
import { type RunInfo, summaryText, timelineSvg } from './report.ts';
import { type OpRecord, runClock } from './workload.ts';
import {
  type SessionsSeen,
  sessionsSeen,
  WorkloadProcess,
  workloadSourcesCommand,
} from './workload-process.ts';

export interface ChaosOptions {
  /** Time during which faults are started. */
  readonly seconds: number;
  readonly monitors: number;
  readonly seed: number;
  readonly nemeses: readonly NemesisKind[];
  readonly clients: number;
  readonly keys: number;
  /** Target ops per second over all clients. */
  readonly rate: number;
  /** Where the report goes (created). */
  readonly out: string;
  /**
   * Run exactly this many rounds of the schedule (every nemesis once per round) instead of
   * stopping when `seconds` are up: a spec that must see each nemesis.
   */
  readonly rounds?: number;
  /** Size of each monitor's tmpfs store with the disk nemesis. */
  readonly diskMb?: number;
  /** The monmap's election strategy (default classic). */
  readonly strategy?: ElectionStrategy;
  /**
   * Run the monitors from the sources through tsx, as the specs run them, instead of a bundle
   * frozen in `out/bundle` when the run starts (chaos/bundle.ts).
   */
  readonly fromSources?: boolean;
  /** The command line that made the run, for run.json. */
  readonly argv?: readonly string[];
  readonly log?: (line: string) => void;
}

export interface ChaosResult {
  readonly analysis: Analysis;
  readonly events: NemesisEvent[];
  readonly summary: string;
  readonly files: { history: string; timeline: string; summary: string; logs: string; run: string };
  readonly skipped: string[];
  /** Monitors that exited by themselves (a crash, or a stop on ENOSPC). */
  readonly exits: string[];
  /** Where the clients ran, and where the monitors saw their sessions come from. */
  readonly client: ClientRecord;
}

/** The clients' host as run.json records it. */
export interface ClientRecord {
  /** The lab's client network namespace, and its address on the bridge. */
  readonly netns: string;
  readonly ip: string;
  /** The IPv4 addresses the workload process itself saw on its interfaces. */
  readonly addresses: string[];
  /** The runner's own address on the bridge (its observers of the monitors come from there). */
  readonly runnerIp: string;
  /** The workload's sessions in the monitors' logs. */
  readonly sessions: SessionsSeen;
}

/** Thrown when the machine cannot run a chaos lab (not root, no netns, no iptables). */
export class ChaosUnavailable extends Error {}

/** `paxmon mon`'s exit status when its store is full (errno ENOSPC). */
const enospcExitCode = 28;
/** How long after a heal every monitor must be in one quorum before the run says it was not. */
export const quorumAllBoundMs = 30_000;
const warmupMs = 3000;
const settleMs = 3000;
/** An operation's deadline over all its attempts, and one attempt's. */
const opTimeoutMs = 5000;
const attemptTimeoutMs = 1000;
/** How long each key's final read is retried. */
const finalReadsBoundMs = 30_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

const libfaketimePaths = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
  '/usr/local/lib/faketime/libfaketime.so.1',
];

/** Why tmpfs stores cannot be mounted here, or undefined when they can. */
function tmpfsUnavailable(): string | undefined {
  const probe = mkdtempSync(join(tmpdir(), 'paxmon-chaos-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], {
      stdio: 'pipe',
      timeout: 10_000,
    });
    execFileSync('umount', [probe], { stdio: 'pipe', timeout: 10_000 });
    return undefined;
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? error).trim();
    return `cannot mount a tmpfs: ${stderr.split('\n')[0]}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const unavailable = await netnsUnavailable();
  if (unavailable !== undefined) throw new ChaosUnavailable(unavailable);
  mkdirSync(options.out, { recursive: true });
  const logs = join(options.out, 'logs');
  mkdirSync(logs, { recursive: true });
  const storeDir = mkdtempSync(join(tmpdir(), 'paxmon-chaos-'));
  const skipped: string[] = [];

  // The disk nemesis: every store on a small tmpfs of its own.
  const mounts: string[] = [];
  let nemeses = [...options.nemeses];
  if (nemeses.includes('disk')) {
    const why = tmpfsUnavailable();
    if (why) {
      skipped.push(`disk: ${why}`);
      nemeses = nemeses.filter((kind) => kind !== 'disk');
    }
  }
  let faketimeLibrary: string | undefined;
  if (nemeses.includes('clock')) {
    faketimeLibrary = libfaketimePaths.find((path) => existsSync(path));
    if (!faketimeLibrary) {
      skipped.push('clock: libfaketime not found (Debian: apt-get install faketime)');
      nemeses = nemeses.filter((kind) => kind !== 'clock');
    }
  }
  let qdiscs: { netem: boolean; tbf: boolean } | undefined;
  if (nemeses.includes('netem')) {
    const [netemWhy, tbfWhy] = await Promise.all([
      qdiscUnavailable('netem', ['delay', '1ms']),
      qdiscUnavailable('tbf', ['rate', '1mbit', 'burst', '8kb', 'latency', '100ms']),
    ]);
    qdiscs = { netem: netemWhy === undefined, tbf: tbfWhy === undefined };
    if (netemWhy)
      skipped.push(`netem: delay and reorder (${netemWhy}); loss through iptables' statistic match instead`);
    if (tbfWhy) skipped.push(`netem: slow (${tbfWhy})`);
  }
  if (nemeses.length === 0) throw new RangeError('no nemesis can run here');
  const unmountAll = (): void => {
    for (const dir of mounts.splice(0))
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore', timeout: 10_000 });
      } catch {}
    rmSync(storeDir, { recursive: true, force: true });
  };
  let cluster: ChaosCluster | undefined;
  let workload: WorkloadProcess | undefined;
  // On Ctrl-C the lab kills the monitors and deletes the namespaces, the clients' too
  // (spec/support/netns.ts); this kills the workload process by its pid and removes the mounts and
  // the stores, then the signal ends the process.
  const onExit = (): void => {
    workload?.killNow();
    unmountAll();
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    workload?.killNow();
    unmountAll();
    process.kill(process.pid, signal);
  };
  process.once('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const clock = runClock();
  const stamp = (ms: number) => `${(ms / 1000).toFixed(3).padStart(8)}`;
  const say = (line: string) => log(`${stamp(clock.now())} ${line}`);
  const events: NemesisEvent[] = [];
  try {
    say(
      `SEED=${options.seed} monitors=${options.monitors} seconds=${options.seconds} nemesis=${nemeses.join(',')}${options.strategy ? ` strategy=${options.strategy}` : ''}`,
    );
    const bundle = options.fromSources ? undefined : await freezeBundle(join(options.out, 'bundle'));
    const source = bundle
      ? `a bundle frozen at the start (${bundle.dir}) of ${bundle.source}`
      : `the working tree through tsx (${sourceOf()})`;
    say(`monitors run ${source}`);
    const diskMb = options.diskMb ?? 64;
    cluster = await ChaosCluster.create({
      monitors: options.monitors,
      storeDir,
      logDir: logs,
      ...(bundle ? { command: bundle.command } : {}),
      ...(options.strategy ? { strategy: options.strategy } : {}),
      ...(nemeses.includes('disk')
        ? {
            storeMount: async (dir: string) => {
              execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${diskMb}m`, 'tmpfs', dir], {
                stdio: 'pipe',
                timeout: 10_000,
              });
              mounts.push(dir);
            },
          }
        : {}),
    });
    const c = cluster;
    say(
      `lab: ${c.monitors.map((m) => `mon.${m.name}@${m.host.ip} (pid ${m.child?.pid})`).join(' ')}; clients in ${c.client.netns} at ${c.client.ip}; the runner observes from ${c.lab.rootIp}`,
    );
    const formedAt = await until(clock.now, 60_000, () => c.quorumOfAll());
    if (formedAt === undefined) throw new Error('the cluster formed no quorum of all monitors within 60 s');
    say(`quorum of all ${options.monitors} monitors`);

    // The clients are a host of their own: a process in the client namespace, from the same
    // frozen bundle as the monitors (chaos/workload-main.ts).
    const running = await WorkloadProcess.start(
      c.client,
      bundle ? bundle.workloadCommand : workloadSourcesCommand(),
      {
        mons: c.mons,
        fsid: c.fsid,
        key: c.adminKey,
        clients: options.clients,
        keys: options.keys,
        rate: options.rate,
        seed: options.seed,
        originNs: String(clock.originNs),
        attemptTimeoutMs,
        timeoutMs: opTimeoutMs,
        finalReadsBoundMs,
      },
      join(logs, 'workload.log'),
    );
    workload = running;
    const workloadStartMs = running.startedMs;
    say(
      `workload: ${options.clients} clients, ${options.keys} keys, ~${options.rate} ops/s, in pid ${running.pid} at ${running.addresses.join(', ')}`,
    );
    await sleep(warmupMs);

    const leaseMs = defaultConfig.monLeaseMs;
    const context: NemesisContext = {
      cluster: c,
      now: clock.now,
      leaseMs,
      log: say,
      ...(mounts.length ? { disk: { fill: (mon) => fillUp(mon.dir) } } : {}),
      ...(qdiscs ? { qdiscs } : {}),
      ...(faketimeLibrary
        ? {
            faketime: {
              env: (spec: string) => ({
                LD_PRELOAD: faketimeLibrary as string,
                FAKETIME: spec,
                FAKETIME_NO_CACHE: '1',
              }),
            },
          }
        : {}),
    };
    const schedule = planSchedule(
      options.seed,
      nemeses,
      options.rounds === undefined ? options.seconds : 0,
      options.rounds,
    );
    const faultsEndMs = workloadStartMs + options.seconds * 1000;
    const stepsMax = options.rounds === undefined ? schedule.length : options.rounds * nemeses.length;
    for (const step of schedule.slice(0, stepsMax)) {
      if (options.rounds === undefined && clock.now() + step.durationMs > faultsEndMs) break;
      if (running.exit)
        throw new Error(
          `the workload process exited (${running.exit.signal ?? `code ${running.exit.code}`}) during the run; its log: ${join(logs, 'workload.log')}`,
        );
      const leader = await c.leader();
      const event: NemesisEvent = {
        index: step.index,
        kind: step.kind,
        variant: step.variant,
        description: '',
        targets: [],
        leaderBefore: leader?.name,
        startMs: clock.now(),
        healMs: undefined,
        quorumAllMs: undefined,
        notes: [],
      };
      events.push(event);
      await runStep(context, step, options.seed, event, leader);
      const quorumAllMs = await until(clock.now, quorumAllBoundMs, () => c.quorumOfAll());
      event.quorumAllMs = quorumAllMs;
      const heal = event.healMs ?? 0;
      say(
        quorumAllMs === undefined
          ? `nemesis ${step.index}: NO quorum of all monitors within ${quorumAllBoundMs / 1000} s of the heal`
          : `nemesis ${step.index}: quorum of all ${((quorumAllMs - heal) / 1000).toFixed(2)} s after the heal`,
      );
      if (quorumAllMs === undefined) await healEverything(c);
      await sleep(step.gapMs);
    }

    await healEverything(c);
    const healedAt = await until(clock.now, quorumAllBoundMs, () => c.quorumOfAll());
    say(healedAt === undefined ? 'NO quorum of all after the final heal' : 'all healed: quorum of all');
    await sleep(settleMs);
    await running.stop(opTimeoutMs, options.keys, finalReadsBoundMs);
    const workloadEndMs = running.stoppedMs;
    const finals = running.history.filter((op) => op.final);
    say(
      `workload stopped: ${running.history.length - finals.length} ops; final reads: ${finals.filter((r) => r.outcome === 'ok').length}/${finals.length}`,
    );
    // The monitors are stopped and the lab removed before the check: on a busy machine the
    // checker (tens of seconds for a soak) should not share the CPU with five idle monitors.
    await c.destroy();
    unmountAll();
    const history = running.history;
    // Where the monitors saw the workload's sessions come from: the client host, nowhere else.
    const client: ClientRecord = {
      netns: c.client.netns,
      ip: c.client.ip,
      addresses: running.addresses,
      runnerIp: c.lab.rootIp,
      sessions: sessionsSeen(
        logs,
        c.monitors.map((mon) => mon.name),
        running.sessions.values(),
      ),
    };
    say(`lab removed; checking ${history.length} operations`);

    const analysis = analyze(history, events, { workloadStartMs, workloadEndMs });
    const info: RunInfo = {
      seed: options.seed,
      monitors: options.monitors,
      clients: options.clients,
      keys: options.keys,
      seconds: options.seconds,
      nemeses,
      skipped,
      strategy: options.strategy ?? 'classic',
      source,
    };
    // A monitor that stops on ENOSPC (exit code 28) while the disk nemesis fills its store does
    // what it must; any other exit is a finding.
    const atMs = (exit: { at: number }) => exit.at - clock.startedAt;
    const expected = (exit: (typeof c.exits)[number]) =>
      exit.code === enospcExitCode &&
      events.some(
        (event) =>
          event.kind === 'disk' &&
          event.targets.includes(exit.name) &&
          atMs(exit) >= event.startMs &&
          atMs(exit) <= (event.healMs ?? Number.POSITIVE_INFINITY),
      );
    const describeExit = (exit: (typeof c.exits)[number]) =>
      `mon.${exit.name} at ${(atMs(exit) / 1000).toFixed(1)} s (${exit.signal ?? `code ${exit.code}`})`;
    const exits = c.exits.filter((exit) => !expected(exit)).map(describeExit);
    const stoppedOnEnospc = c.exits.filter(expected).map(describeExit);
    const from = Object.entries(client.sessions.byAddress)
      .map(([address, count]) => `${address} ×${count}`)
      .join(', ');
    const summary = [
      summaryText(info, analysis, events),
      `clients: a process in ${client.netns} at ${client.ip}; the monitors logged ${client.sessions.seen} of its ${client.sessions.sessions} sessions connecting, from ${from || 'nowhere'}`,
      `monitors stopped on ENOSPC while the disk nemesis filled their store: ${stoppedOnEnospc.length ? stoppedOnEnospc.join('; ') : 'none'}`,
      `monitor exits no nemesis caused: ${exits.length ? exits.join('; ') : 'none'}`,
    ].join('\n');
    const verdict = `linearizable: ${analysis.linearizable === 'ok' ? 'yes' : analysis.linearizable}, lost writes: ${analysis.lostWrites.length}`;
    const files = {
      history: join(options.out, 'history.jsonl'),
      timeline: join(options.out, 'timeline.svg'),
      summary: join(options.out, 'summary.txt'),
      logs,
      run: join(options.out, 'run.json'),
    };
    // What it takes to run it again, and what it was run on.
    const runRecord = {
      argv: options.argv ?? null,
      seed: options.seed,
      monitors: options.monitors,
      seconds: options.seconds,
      rounds: options.rounds ?? null,
      nemeses,
      strategy: options.strategy ?? 'classic',
      clients: options.clients,
      keys: options.keys,
      rate: options.rate,
      source,
      skipped,
      lab: { subnet: `10.99.${c.lab.subnet}.0/24`, monitors: c.mons, client },
      schedule: schedule.slice(0, events.length),
      workload: { startMs: workloadStartMs, endMs: workloadEndMs },
      verdict: {
        linearizable: analysis.linearizable,
        lostWrites: analysis.lostWrites.length,
        operations: analysis.total,
        failedButRead: analysis.failedButRead.length,
        exits,
      },
    };
    writeFileSync(files.run, `${JSON.stringify(runRecord, null, 2)}\n`);
    const lines = [
      ...events.map((event) => JSON.stringify({ process: 'nemesis', ...event })),
      ...[...history].sort((a, b) => a.invokeMs - b.invokeMs).map((op) => JSON.stringify(op)),
    ];
    writeFileSync(files.history, `${lines.join('\n')}\n`);
    writeFileSync(files.timeline, timelineSvg(info, history, events, verdict));
    writeFileSync(files.summary, `${summary}\n`);
    return { analysis, events, summary, files, skipped, exits, client };
  } finally {
    await workload?.destroy().catch(() => {});
    await cluster?.destroy().catch(() => {});
    unmountAll();
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Poll `check` every 100 ms until true (the time it was, by `now`) or `boundMs` passes (undefined). */
async function until(
  now: () => number,
  boundMs: number,
  check: () => Promise<boolean>,
): Promise<number | undefined> {
  const deadline = now() + boundMs;
  while (now() < deadline) {
    if (await check()) return now();
    await sleep(100);
  }
  return undefined;
}

/**
 * Check a stored run again (`npm run chaos -- --check DIR`): its history.jsonl and run.json, the
 * same analysis and summary as at the end of the run — after a change to the checker, or to look
 * at a history by other means first.
 */
export function recheck(dir: string): { analysis: Analysis; summary: string } {
  const lines = readFileSync(join(dir, 'history.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { process: unknown });
  const events = lines.filter((line) => line.process === 'nemesis') as unknown as NemesisEvent[];
  const history = lines.filter((line) => line.process !== 'nemesis') as unknown as OpRecord[];
  const record = existsSync(join(dir, 'run.json'))
    ? (JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as Partial<{
        seed: number;
        monitors: number;
        clients: number;
        keys: number;
        seconds: number;
        nemeses: string[];
        skipped: string[];
        strategy: string;
        source: string;
        workload: { startMs: number; endMs: number };
      }>)
    : {};
  const workload = history.filter((op) => !op.final);
  const startMs = record.workload?.startMs ?? Math.min(...workload.map((op) => op.invokeMs));
  const endMs = record.workload?.endMs ?? Math.max(...workload.map((op) => op.completeMs));
  const analysis = analyze(history, events, { workloadStartMs: startMs, workloadEndMs: endMs });
  const info: RunInfo = {
    seed: record.seed ?? Number.NaN,
    monitors: record.monitors ?? Number.NaN,
    clients: record.clients ?? Number.NaN,
    keys: record.keys ?? new Set(workload.map((op) => op.key)).size,
    seconds: record.seconds ?? Number.NaN,
    nemeses: record.nemeses ?? [...new Set(events.map((event) => event.kind))],
    skipped: record.skipped ?? [],
    strategy: record.strategy ?? '(not recorded)',
    source: record.source ?? '(not recorded)',
  };
  return { analysis, summary: `${summaryText(info, analysis, events)}\n(checked again from ${dir})` };
}
