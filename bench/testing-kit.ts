// paxmon/testing's speed (issue 19 §3): the README's counter (examples/counter.ts) through
// simulateService — N seeds of S simulated seconds on M monitors under the default fault mix —
// and the line it prints: seeds passed and failed, simulated seconds, wall and CPU seconds.
//
//   npm run bench:testing-kit -- [--seeds 100] [--seconds 120] [--monitors 3] [--jobs 2] [--first-seed 1]
//
// --jobs runs the seeds in that many child processes (a service's hooks are functions: they cannot
// be handed to a worker, but a process can import them again); the default is one per core, at
// most 2. The parent hands each child its next seed as it finishes one, so a child that drew the
// slower seeds does not leave the other core idle at the end (contiguous halves of the seeds
// differed by up to a tenth). CPU is every process's user + system time; the machine's load
// average is printed with it, since others may share the cores. The seeds' hashes are combined
// in seed order: the same options give the same hash with any --jobs.
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { counter } from '../examples/counter.ts';
import { Trace } from '../sim/trace.ts';
import {
  type CounterInput,
  type CounterOutput,
  counterModel,
  type Random,
  type SeedResult,
  type ServiceOperation,
  simulateService,
} from '../testing/index.ts';
import { benchArgs } from './harness/args.ts';

const usage =
  'npm run bench:testing-kit -- [--seeds N (100)] [--seconds S (120)] [--monitors N (3)] [--jobs N] [--first-seed N (1)]\n' +
  'simulates the counter service over N seeds and prints the wall and CPU time the test kit took\n';
const { values } = benchArgs('bench:testing-kit', usage, {
  seeds: { type: 'string', default: '100' },
  seconds: { type: 'string', default: '120' },
  monitors: { type: 'string', default: '3' },
  jobs: { type: 'string', default: String(Math.min(2, availableParallelism())) },
  'first-seed': { type: 'string', default: '1' },
  child: { type: 'boolean', default: false },
});
const seeds = Number(values.seeds);
const seconds = Number(values.seconds);
const monitors = Number(values.monitors);
const jobs = Math.max(1, Math.min(Number(values.jobs), seeds));
const firstSeed = Number(values['first-seed']);

// The workload of examples/counter.test.ts: half reads, half adds of 1–9 answering the total.
type Op = ServiceOperation<CounterInput, CounterOutput>;
const get: Op = {
  cmd: ['counter', 'get'],
  input: { op: 'get' },
  read: true,
  output: (reply) => (reply.r === 0 ? { value: Number(reply.text) } : null),
};
const add = (n: number): Op => ({
  cmd: ['counter', 'add', String(n)],
  input: { op: 'add', n },
  output: (reply) => (reply.r === 0 ? { value: Number(reply.rs.replace('counter = ', '')) } : null),
});

interface SeedLine {
  seed: number;
  ok: boolean;
  hash: string;
  simulatedMs: number;
  replay: string;
  invariant: string | undefined;
}

/** Run `seeds` here, in order; report each as it ends. */
async function runHere(seeds: number[], report: (line: SeedLine) => void): Promise<void> {
  await simulateService({
    service: counter,
    model: counterModel(),
    operations: (random: Random) => (random.chance(0.5) ? get : add(random.int(1, 9))),
    finalReads: [get],
    seeds,
    monitors,
    seconds,
    stopOnFailure: false,
    onSeed: (r: SeedResult) =>
      report({
        seed: r.seed,
        ok: r.ok,
        hash: r.hash,
        simulatedMs: r.simulatedMs,
        replay: r.replay,
        invariant: r.failure?.invariant,
      }),
  });
}

if (values.child) {
  // A seed per line on stdin, a JSON line per seed on stdout; at the end of stdin, this process's CPU.
  const cpu = process.cpuUsage();
  for await (const text of createInterface({ input: process.stdin })) {
    if (text.trim() === '') continue;
    await runHere([Number(text)], (line) => console.log(JSON.stringify(line)));
  }
  const used = process.cpuUsage(cpu);
  console.log(JSON.stringify({ cpuS: (used.user + used.system) / 1e6 }));
} else {
  const load = loadavg()[0] ?? 0;
  console.log(
    `testing kit: the counter (examples/counter.ts), ${seeds} seeds from ${firstSeed} × ${seconds} simulated s on ${monitors} monitors, ${jobs} process${jobs > 1 ? 'es' : ''}`,
  );
  const started = performance.now();
  const lines: SeedLine[] = [];
  let cpuS = 0;
  const self = fileURLToPath(import.meta.url);
  const queue = Array.from({ length: seeds }, (_, i) => firstSeed + i);
  await Promise.all(
    Array.from(
      { length: jobs },
      (_, j) =>
        new Promise<void>((resolve, reject) => {
          const child = spawn(
            process.execPath,
            [
              '--import',
              'tsx',
              self,
              '--child',
              '--seconds',
              String(seconds),
              '--monitors',
              String(monitors),
            ],
            { stdio: ['pipe', 'pipe', 'inherit'] },
          );
          const next = () => {
            const seed = queue.shift();
            if (seed === undefined) child.stdin.end();
            else child.stdin.write(`${seed}\n`);
          };
          next();
          let buffered = '';
          child.stdout.on('data', (chunk: Buffer) => {
            buffered += chunk.toString('utf8');
            let newline = buffered.indexOf('\n');
            while (newline >= 0) {
              const text = buffered.slice(0, newline);
              buffered = buffered.slice(newline + 1);
              newline = buffered.indexOf('\n');
              if (!text.startsWith('{')) continue;
              const parsed = JSON.parse(text) as SeedLine | { cpuS: number };
              if ('cpuS' in parsed) cpuS += parsed.cpuS;
              else {
                lines.push(parsed);
                next();
              }
            }
          });
          child.on('error', reject);
          child.on('close', (code) =>
            code === 0 ? resolve() : reject(new Error(`child ${j + 1}: exit code ${code}`)),
          );
        }),
    ),
  );
  const wallS = (performance.now() - started) / 1000;
  lines.sort((a, b) => a.seed - b.seed);
  const combined = new Trace(1);
  for (const line of lines) combined.record(`${line.seed} ${line.hash}`);
  const failed = lines.filter((line) => !line.ok);
  const simulatedS = lines.reduce((sum, line) => sum + line.simulatedMs, 0) / 1000;
  for (const line of failed) console.log(`failed: seed ${line.seed} (${line.invariant}): ${line.replay}`);
  console.log(
    `${lines.length} seeds, ${failed.length} failed, ${simulatedS.toFixed(0)} simulated s in ${wallS.toFixed(1)} s wall ` +
      `(${(simulatedS / wallS).toFixed(0)}× real time); ${cpuS.toFixed(1)} CPU s (${(cpuS / lines.length).toFixed(2)} per seed); ` +
      `load average ${load.toFixed(1)} on ${availableParallelism()} cores at the start`,
  );
  console.log(`hash=${combined.hash()}`);
  if (failed.length || lines.length !== seeds) process.exitCode = 1;
}
