// `npm run bench:cli`: how long one `paxmon` client command takes, start to exit, as an operator
// types it (issue 17 §2; goal: median ≤ 0.25 s, where the `ceph` CLI takes 0.34–0.85 s here).
//
// It builds the package's bin (cli/bin.js, running dist/paxmon.mjs: what `npm install` links as
// `paxmon`), starts a 3-monitor cluster with it in a temp dir (`paxmon up --detach`), then runs
// each command RUNS times, round-robin, from that directory (the CLI finds .paxmon/ as it does for
// a user) and prints the median, min and max wall time of each, and the median CPU time. The cluster is stopped (`paxmon down`, then
// SIGKILL by pid for a monitor still there) and the temp dir removed at the end, on an error and
// on Ctrl-C. Every command is bounded by a timeout.
//
//   npm run bench:cli                          # 20 runs each of the built bin
//   npm run bench:cli -- --runs 50
//   npm run bench:cli -- --bin cli/main.ts     # another entry: a .ts one runs through tsx
//   npm run bench:cli -- --no-build            # use dist/ as it is
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './harness/args.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
/** The median goal of issue 17 §2, seconds. */
const goalSeconds = 0.25;
/** One command's bound: a hung command fails the bench instead of holding it. */
const commandTimeoutMs = 30_000;

const usage =
  'npm run bench:cli -- [--runs N (20)] [--bin FILE (cli/bin.js)] [--no-build]\n' +
  'median, min and max wall time of `paxmon quorum_status`, `config-key get`, `config-key set` against a local cluster\n';
const { values } = benchArgs('bench:cli', usage, {
  runs: { type: 'string', default: '20' },
  bin: { type: 'string', default: 'cli/bin.js' },
  'no-build': { type: 'boolean', default: false },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 1000) {
  process.stderr.write(`--runs ${values.runs}: a number of runs from 1 to 1000\n`);
  process.exit(22);
}
const bin = resolve(root, values.bin as string);
/** How node runs the bin: TypeScript through tsx, JavaScript as it is. */
const binArgs = bin.endsWith('.ts') ? ['--import', 'tsx', bin] : [bin];

const work = mkdtempSync(join(tmpdir(), 'paxmon-bench-cli-'));
const clusterDir = join(work, '.paxmon');
let started = false;

/** Stop the cluster this bench started: `paxmon down`, then SIGKILL by pid for any monitor left. */
function stopCluster(): void {
  if (!started) return;
  started = false;
  try {
    execFileSync(process.execPath, [...binArgs, 'down', '--dir', clusterDir], {
      stdio: 'ignore',
      timeout: 20_000,
    });
  } catch {
    // below: by pid
  }
  for (const name of ['a', 'b', 'c']) {
    try {
      const pid = Number(readFileSync(join(clusterDir, name, 'pid'), 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // no pid file, or gone
    }
  }
}

function cleanup(): void {
  stopCluster();
  rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench:cli: ${signal}, stopping the cluster and removing ${work}\n`);
    cleanup();
    process.exit(130);
  });
}

/** A first port with `count` free ports after it, on 127.0.0.1 (each one bound and released). */
async function freeBasePort(count: number): Promise<number> {
  const canBind = (port: number) =>
    new Promise<boolean>((resolvePromise) => {
      const server = createServer();
      server.once('error', () => resolvePromise(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolvePromise(true)));
    });
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    let free = true;
    for (let i = 0; i < count && free; i += 1) free = await canBind(base + i);
    if (free) return base;
  }
  throw new Error('no 3 consecutive free ports found on 127.0.0.1');
}

/**
 * CPU seconds (user + system) of the children this process has waited for, from /proc (Linux;
 * clock ticks, 100 per second): the kernel adds an exited child's time here once it is reaped.
 * Less sensitive than wall time to what else the machine runs. Null where there is no /proc.
 */
function childrenCpuSeconds(): number | null {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 16 and 17 of stat(5) (cutime, cstime), counted from the state field (3).
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return null;
  }
}

interface Run {
  seconds: number;
  cpuSeconds: number | null;
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the bin with `args` in the cluster's parent directory; wall time from spawn to exit. */
function run(args: string[]): Promise<Run> {
  const start = process.hrtime.bigint();
  const cpuBefore = childrenCpuSeconds();
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      [...binArgs, ...args],
      { cwd: work, timeout: commandTimeoutMs, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        const cpuAfter = childrenCpuSeconds();
        const cpuSeconds = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolvePromise({ seconds, cpuSeconds, code, stdout, stderr });
      },
    );
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

async function main(): Promise<void> {
  if (!values['no-build'] && !bin.endsWith('.ts')) {
    process.stdout.write('building (npm run build)…\n');
    execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit', timeout: 300_000 });
  }
  const port = await freeBasePort(3);
  started = true;
  const up = await run(['up', '--dir', clusterDir, '--size', '3', '--port', String(port), '--detach']);
  if (up.code !== 0) throw new Error(`paxmon up failed (exit ${up.code}): ${up.stderr || up.stdout}`);
  const commands: { name: string; args: string[]; check: (r: Run) => boolean }[] = [
    {
      name: 'quorum_status',
      args: ['quorum_status'],
      check: (r) => (JSON.parse(r.stdout) as { quorum: number[] }).quorum.length === 3,
    },
    {
      name: 'config-key get',
      args: ['config-key', 'get', 'bench/cli'],
      check: (r) => r.stdout === 'value',
    },
    {
      name: 'config-key set',
      args: ['config-key', 'set', 'bench/cli', 'value'],
      check: (r) => r.stderr.startsWith('set bench/cli'),
    },
  ];
  // The key `get` reads, and one unmeasured run of each (the first loads the files from disk).
  const seed = await run(['config-key', 'set', 'bench/cli', 'value']);
  if (seed.code !== 0) throw new Error(`config-key set failed (exit ${seed.code}): ${seed.stderr}`);
  for (const c of commands) await run(c.args);
  const times = new Map<string, number[]>(commands.map((c) => [c.name, []]));
  const cpu = new Map<string, number[]>(commands.map((c) => [c.name, []]));
  const loadBefore = loadavg()[0] as number;
  for (let i = 0; i < runs; i += 1) {
    for (const c of commands) {
      const r = await run(c.args);
      let ok = r.code === 0;
      try {
        ok &&= c.check(r);
      } catch {
        ok = false;
      }
      if (!ok)
        throw new Error(`paxmon ${c.args.join(' ')}: exit ${r.code}, stdout ${r.stdout}, stderr ${r.stderr}`);
      times.get(c.name)?.push(r.seconds);
      if (r.cpuSeconds !== null) cpu.get(c.name)?.push(r.cpuSeconds);
    }
  }
  const loadAfter = loadavg()[0] as number;
  const shown = values.bin as string;
  process.stdout.write(
    `\npaxmon client commands, ${runs} runs each (node ${shown}), a 3-monitor local cluster; seconds\n` +
      `(load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after, on ${availableParallelism()} cores)\n\n`,
  );
  process.stdout.write(
    '| command | wall median | min | max | CPU median (user+sys) | goal: wall median ≤ 0.25 s |\n' +
      '| --- | --- | --- | --- | --- | --- |\n',
  );
  for (const c of commands) {
    const xs = times.get(c.name) as number[];
    const cs = cpu.get(c.name) as number[];
    const m = median(xs);
    process.stdout.write(
      `| \`paxmon ${c.args.join(' ')}\` | ${m.toFixed(3)} | ${Math.min(...xs).toFixed(3)} | ${Math.max(...xs).toFixed(3)} | ${cs.length ? median(cs).toFixed(2) : '–'} | ${m <= goalSeconds ? '✓' : '✗'} |\n`,
    );
  }
  const bare = [];
  for (let i = 0; i < 5; i += 1) {
    const start = process.hrtime.bigint();
    execFileSync(process.execPath, ['-e', ''], { timeout: commandTimeoutMs });
    bare.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  process.stdout.write(`\nfor scale: \`node -e ''\` takes ${median(bare).toFixed(3)} s here (median of 5)\n`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench:cli: ${(error as Error).message}\n`);
  process.exitCode = 1;
} finally {
  cleanup();
}
