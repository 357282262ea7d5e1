// The write path's cost (issue 14, part 3): for a 3-monitor cluster, the events and the CPU one
// `config-key set` costs each monitor.
//
//   node --import tsx bench/write-path.ts [--writes N] [--json] [--events] [--cpu-prof DIR]
//
// (1) Events per write: on the simulated cluster (sim/cluster.ts, seed 7, as
//     spec/event-budget.spec.ts), every event an actor of a monitor's tree receives
//     (XState inspection, `@xstate.event`), from the moment the idle cluster is sent one write
//     until it is idle again (no event for 50 simulated ms). Once sent to the leader, once to a
//     peon (which forwards it). Deterministic: a count, not a timing.
// (2) CPU per write: 3 real monitor processes (paxmon mkfs, then `paxmon mon` each from the
//     TypeScript sources, as `paxmon up` runs them from a checkout; real RocksDB, synced writes,
//     default timing), N sequential `config-key set` from one MonClient connected to one monitor
//     (the leader, then a peon). Each monitor's utime + stime (/proc/PID/stat) before and after,
//     divided by N; "net" takes off what the same monitor used while idle (leases, ticks) over
//     as long. The clock tick is 10 ms, so N ≥ 1000 keeps the rounding under 1 %.
//
// The observer is added with `actor.system.inspect` on each monitor's root actor: a monitor is
// one XState system (one createActor in actors/monitor.ts), so it sees what SimCluster's
// `inspectFor` option hands createMonitor — and it also works on a checkout from before issue 14,
// whose SimCluster has no such option, so the same file measures before and after.
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InspectionEvent } from 'xstate';
import { newClusterKeyring } from '../actors/mkfs.ts';
import { MonClient } from '../actors/mon-client.ts';
import { mkfs, monitorCommand, monitorEnv } from '../cli/cluster.ts';
import { SimCluster } from '../sim/cluster.ts';
import { simClient } from '../spec/support/sim-client.ts';
import { benchArgs } from './harness/args.ts';
import {
  cpuSecondsOf,
  freePorts,
  installCleanup,
  makeTempDir,
  type Owned,
  removeTempDir,
  startProcess,
  stopProcess,
  tail,
} from './harness/proc.ts';
import { formatProfile, mainThreadProfile, summarise } from './harness/profile.ts';

const usage = `usage: npm run bench:write-path -- [options]

  --writes N        sequential writes per monitor measured (default 2000, at least 1)
  --events          also print every event of one write, monitor by monitor
  --json            print the figures as JSON instead of a table
  --cpu-prof DIR    run the monitors under node --cpu-prof into DIR/NAME; print each one's top functions
  --help            this text
`;
const { values: opts } = benchArgs('bench:write-path', usage, {
  writes: { type: 'string', default: '2000' },
  json: { type: 'boolean', default: false },
  events: { type: 'boolean', default: false },
  /** Run the monitors under `node --cpu-prof` into DIR/NAME and print each one's top functions. */
  'cpu-prof': { type: 'string' },
});
const writes = Number(opts.writes);
if (!Number.isInteger(writes) || writes < 1) {
  process.stderr.write(`bench:write-path: --writes ${opts.writes}: not a positive integer\n`);
  process.exit(2);
}
/** Writes before the measured ones (not counted): the monitors' JIT warms up on them. */
const warmupWrites = Math.min(500, Math.max(50, writes >> 2));
/** How long each monitor's idle CPU is measured, before the writes. */
const idleMs = 2000;
const simSeed = 7;
const root = fileURLToPath(new URL('..', import.meta.url));
const names = ['a', 'b', 'c'];
const progress = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// --- (1) events per write, on the simulated cluster --------------------------------------------

interface EventCount {
  /** Where the write was sent: 'leader' or 'peon'. */
  via: 'leader' | 'peon';
  leader: string;
  /** Each monitor's events, as `actor ← event.type (from source)`, by monitor name. */
  events: Record<string, string[]>;
}

async function countEvents(via: 'leader' | 'peon'): Promise<EventCount> {
  const events = new Map<string, string[]>();
  let recording = false;
  let lastEventAt = 0;
  const c = new SimCluster({ size: 3, seed: simSeed });
  await c.mkfs();
  await c.startAll();
  for (const node of c.nodes) {
    node.monitor?.actor.system.inspect((e: InspectionEvent) => {
      if (e.type !== '@xstate.event') return;
      lastEventAt = c.clock.now();
      if (!recording) return;
      // Named as the spec names them: the root (system id `x:N`) is "monitor".
      const actor = (e.actorRef as { id?: string }).id ?? '?';
      const from = (e.sourceRef as { id?: string } | undefined)?.id;
      const to = actor.startsWith('x:') ? 'monitor' : actor;
      const source = from === undefined ? 'runtime' : from.startsWith('x:') ? 'monitor' : from;
      const event = e.event as { type: string; msg?: { op?: string }; token?: string };
      const detail = event.msg?.op ?? event.token ?? '';
      const list = events.get(node.name) ?? [];
      list.push(`${to} ← ${event.type}${detail ? ` ${detail}` : ''} (from ${source})`);
      events.set(node.name, list);
    });
  }
  await c.runUntil(() => c.stableQuorum(3), 10_000);
  await c.runUntil(() => c.running().every((m) => m.isReadable()), 5_000);
  /** Until no monitor has received an event for 50 ms (leases, ticks and pings are periodic). */
  const idle = () => c.runUntil(() => c.clock.now() - lastEventAt >= 50, 10_000);
  const leader = c.leaders()[0]?.name as string;
  const to = via === 'leader' ? leader : (c.nodes.find((n) => n.name !== leader)?.name as string);
  const client = simClient(c);
  await idle();
  recording = true;
  const reply = await client.call(to, ['config-key', 'set', 'write-path', 'v']);
  if (reply?.r !== 0) throw new Error(`simulated config-key set via mon.${to}: ${JSON.stringify(reply)}`);
  // The write's last events (peons applying the commit) follow the client's answer.
  await idle();
  recording = false;
  await c.stopAll();
  return { via, leader, events: Object.fromEntries([...events].sort()) };
}

// --- (2) CPU per write, on monitor processes ---------------------------------------------------

interface Member {
  name: string;
  addr: string;
  process: Owned;
}

interface ProcessCluster {
  dir: string;
  fsid: string;
  adminKey: string;
  members: Member[];
}

interface CpuRun {
  /** The monitor the client was connected to. */
  via: string;
  leader: string;
  writes: number;
  elapsedMs: number;
  writesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** By monitor name: CPU µs per write, and the same less the monitor's idle CPU. */
  monitors: Record<
    string,
    { role: 'leader' | 'peon'; cpuUsPerWrite: number; netUsPerWrite: number; idleMsPerSec: number }
  >;
  /** The client (this process) CPU µs per write. */
  clientUsPerWrite: number;
}

const profileFlags = (name: string): string[] =>
  opts['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', join(opts['cpu-prof'], name)] : [];

async function startCluster(): Promise<ProcessCluster> {
  const dir = makeTempDir('paxmon-write-path-');
  const ports = await freePorts(names.length);
  const fsid = randomUUID();
  const mons = names.map((name, i) => ({ name, addr: `127.0.0.1:${ports[i]}` }));
  const keyring = newClusterKeyring();
  for (const m of mons)
    await mkfs({
      dir: join(dir, m.name),
      name: m.name,
      fsid,
      mons: mons.map((x) => `${x.name}=${x.addr}`),
      keyring,
    });
  const members = mons.map((m) => {
    const monDir = join(dir, m.name);
    const log = join(monDir, 'log');
    const owned = startProcess(
      `mon.${m.name}`,
      process.execPath,
      [...profileFlags(m.name), ...monitorCommand(), 'mon', '--dir', monDir, '--log-file', log],
      { cwd: root, logFile: log, env: monitorEnv() },
    );
    return { ...m, process: owned };
  });
  const adminKey = keyring.find((e) => e.entity === 'client.admin')?.key as string;
  return { dir, fsid, adminKey, members };
}

async function stopCluster(cluster: ProcessCluster): Promise<void> {
  await Promise.all(cluster.members.map((m) => stopProcess(m.process, 10_000)));
  removeTempDir(cluster.dir);
}

function clientOf(cluster: ProcessCluster, mons: Member[]): MonClient {
  return new MonClient({
    key: cluster.adminKey,
    mons: mons.map((m) => ({ name: m.name, addr: m.addr })),
    fsid: cluster.fsid,
    attemptTimeoutMs: 2000,
    timeoutMs: 10_000,
  });
}

/** Wait until every monitor is in the quorum; the leader's name. */
async function waitQuorum(cluster: ProcessCluster, timeoutMs = 60_000): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  const client = clientOf(cluster, cluster.members);
  try {
    while (performance.now() < deadline) {
      for (const m of cluster.members)
        if (m.process.exitedAt !== null)
          throw new Error(`mon.${m.name} exited; its log ends:\n${tail(join(cluster.dir, m.name, 'log'))}`);
      try {
        const reply = await client.command(['quorum_status']);
        if (reply.r === 0) {
          const q = JSON.parse(new TextDecoder().decode(reply.data)) as {
            quorum_names: string[];
            quorum_leader_name: string;
          };
          if (q.quorum_names.length === cluster.members.length) return q.quorum_leader_name;
        }
      } catch {
        // not up yet
      }
      await sleep(200);
    }
  } finally {
    await client.close();
  }
  throw new Error(`no full quorum within ${timeoutMs} ms; logs in ${cluster.dir}/*/log`);
}

const cpuOf = (m: Member) => {
  const seconds = cpuSecondsOf(m.process.pid);
  if (seconds === null) throw new Error(`mon.${m.name} (pid ${m.process.pid}) is gone`);
  return seconds;
};

/** A 100-byte value, different per write (as the bench's valueFor). */
const valueFor = (seq: number) => `v${seq}-`.padEnd(100, 'x');

async function measureCpu(cluster: ProcessCluster, leader: string, via: string): Promise<CpuRun> {
  const member = cluster.members.find((m) => m.name === via) as Member;
  const client = clientOf(cluster, [member]);
  const put = async (seq: number) => {
    const reply = await client.command(['config-key', 'set', `bench/wp/${seq % 1000}`, valueFor(seq)]);
    if (reply.r !== 0) throw new Error(`config-key set via mon.${via}: r=${reply.r} ${reply.rs}`);
  };
  try {
    for (let i = 0; i < warmupWrites; i++) await put(i);
    await sleep(200);
    const idle0 = cluster.members.map(cpuOf);
    await sleep(idleMs);
    const idle1 = cluster.members.map(cpuOf);
    const latencies = new Float64Array(writes);
    const client0 = process.cpuUsage();
    const cpu0 = cluster.members.map(cpuOf);
    const start = performance.now();
    for (let i = 0; i < writes; i++) {
      const t0 = performance.now();
      await put(warmupWrites + i);
      latencies[i] = performance.now() - t0;
    }
    const elapsedMs = performance.now() - start;
    const cpu1 = cluster.members.map(cpuOf);
    const clientCpu = process.cpuUsage(client0);
    latencies.sort();
    const monitors: CpuRun['monitors'] = {};
    for (const [i, m] of cluster.members.entries()) {
      const used = (cpu1[i] as number) - (cpu0[i] as number);
      const idlePerMs = ((idle1[i] as number) - (idle0[i] as number)) / idleMs;
      monitors[m.name] = {
        role: m.name === leader ? 'leader' : 'peon',
        cpuUsPerWrite: (used * 1e6) / writes,
        netUsPerWrite: ((used - idlePerMs * elapsedMs) * 1e6) / writes,
        idleMsPerSec: idlePerMs * 1e6,
      };
    }
    return {
      via,
      leader,
      writes,
      elapsedMs,
      writesPerSec: (writes * 1000) / elapsedMs,
      p50Ms: latencies[Math.floor(writes * 0.5)] as number,
      p99Ms: latencies[Math.min(writes - 1, Math.floor(writes * 0.99))] as number,
      monitors,
      clientUsPerWrite: (clientCpu.user + clientCpu.system) / writes,
    };
  } finally {
    await client.close();
  }
}

// --- the run -----------------------------------------------------------------------------------

function revision(): string {
  try {
    const git = (args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
    const dirty = git(['status', '--porcelain', '--untracked-files=no']) ? '+dirty' : '';
    return `${git(['rev-parse', '--short', 'HEAD'])}${dirty}`;
  } catch {
    return 'not a git checkout';
  }
}

/**
 * CPU ms of a fixed piece of work (100,000 chained SHA-256s) in this process: on a loaded or
 * shared machine a CPU-second buys less work, so the µs above are comparable between runs only
 * when this is about the same.
 */
function referenceCpuMs(): number {
  const cpu0 = process.cpuUsage();
  let digest = Buffer.alloc(32);
  for (let i = 0; i < 100_000; i++) digest = createHash('sha256').update(digest).digest();
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / 1000;
}

const loadNow = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  installCleanup();
  const loadAtStart = loadNow();
  const referenceAtStart = referenceCpuMs();
  progress(`write-path: ${root} (${revision()}), load ${loadAtStart}`);
  const eventCounts = [await countEvents('leader'), await countEvents('peon')];
  progress('write-path: events counted; starting 3 monitor processes');
  const cluster = await startCluster();
  const runs: CpuRun[] = [];
  try {
    const leader = await waitQuorum(cluster);
    const peon = cluster.members.find((m) => m.name !== leader)?.name as string;
    for (const via of [leader, peon]) {
      progress(`write-path: ${warmupWrites} + ${writes} sequential writes via mon.${via}`);
      runs.push(await measureCpu(cluster, leader, via));
    }
  } finally {
    await stopCluster(cluster);
  }
  const referenceAtEnd = referenceCpuMs();
  const result = {
    revision: revision(),
    root,
    cpus: cpus().length,
    loadAverage: { atStart: loadAtStart, atEnd: loadNow() },
    referenceCpuMs: { atStart: referenceAtStart, atEnd: referenceAtEnd },
    simSeed,
    events: eventCounts.map((e) => ({
      via: e.via,
      leader: e.leader,
      perMonitor: Object.fromEntries(Object.entries(e.events).map(([name, list]) => [name, list.length])),
      total: Object.values(e.events).reduce((sum, list) => sum + list.length, 0),
      events: e.events,
    })),
    cpu: runs,
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const out: string[] = [];
  out.push(
    `write path: ${result.revision} (${root}), ${result.cpus} CPUs, load average ${result.loadAverage.atStart} at start, ${result.loadAverage.atEnd} at end`,
    `reference work (100,000 SHA-256s): ${referenceAtStart.toFixed(0)} ms of CPU at start, ${referenceAtEnd.toFixed(0)} ms at end`,
    '',
    `(1) events per config-key set, simulated 3-monitor cluster (seed ${simSeed}), idle before and after`,
  );
  for (const e of eventCounts) {
    const cells = Object.entries(e.events).map(([name, list]) => {
      const role = name === e.leader ? 'leader' : 'peon';
      return `mon.${name} (${role}) ${list.length}`;
    });
    const total = Object.values(e.events).reduce((sum, list) => sum + list.length, 0);
    out.push(`  sent to the ${e.via.padEnd(6)}  ${cells.join('   ')}   total ${total}`);
    if (opts.events)
      for (const [name, list] of Object.entries(e.events))
        out.push(`    mon.${name}:`, ...list.map((line, i) => `      ${i + 1}. ${line}`));
  }
  out.push(
    '',
    `(2) CPU per config-key set, 3 monitor processes (RocksDB, default timing), ${writes} sequential writes from 1 client`,
    '    µs of CPU (utime+stime) per write, each monitor; "net" less its idle CPU over as long',
  );
  for (const r of runs) {
    const cells = Object.entries(r.monitors).map(
      ([name, m]) =>
        `mon.${name} (${m.role}) ${m.cpuUsPerWrite.toFixed(0)} µs (net ${m.netUsPerWrite.toFixed(0)}, idle ${m.idleMsPerSec.toFixed(1)} ms/s)`,
    );
    out.push(
      `  via mon.${r.via} (${r.via === r.leader ? 'leader' : 'peon'}): ${r.writesPerSec.toFixed(0)} writes/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms; client ${r.clientUsPerWrite.toFixed(0)} µs/write`,
      ...cells.map((c) => `    ${c}`),
    );
  }
  if (opts['cpu-prof'])
    for (const name of names) {
      const file = mainThreadProfile(join(opts['cpu-prof'], name));
      if (!file) continue;
      out.push(
        '',
        formatProfile(
          `mon.${name} (${name === runs[0]?.leader ? 'leader' : 'peon'}), whole run`,
          summarise([file], root, undefined, 25),
        ),
      );
    }
  process.stdout.write(`${out.join('\n')}\n`);
}

await main();
