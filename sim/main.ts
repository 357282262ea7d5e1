// `npm run sim -- [options]`: run the deterministic simulator for one seed or many.
//
//   npm run sim -- --seed 42                      one seed, 3 monitors, 120 simulated seconds
//   npm run sim -- --seed 42 --monitors 5 --verbose   …printing the whole trace as it happens
//   npm run sim -- --seeds 200 --monitors 3,5     200 seeds from a random first seed
//   npm run sim -- --seeds 10000                  the soak
//   npm run sim -- --seeds 200 --strategy connectivity   under another election strategy
//
// Prints `SEED=…` first and the trace hash last. A failing seed prints what failed, the command
// that replays it exactly, and the last trace lines before the failure; the exit code is 1.
import { randomInt } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import type { MonConfig } from '../machines/config.ts';
import { Coverage } from './coverage.ts';
import {
  configFlags,
  defaultSimulationOptions,
  type FaultOptions,
  failureLines,
  faultFlags,
  type SimulationOptions,
  type SimulationResult,
  simulate,
  summary,
} from './simulator.ts';
import { Trace } from './trace.ts';

const d = defaultSimulationOptions;

function number(min: number, max: number, integer = false) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      throw new InvalidArgumentError(`expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`);
    }
    return value;
  };
}

function monitorList(text: string): number[] {
  const sizes = text.split(',').map((part) => Number(part.trim()));
  if (sizes.length === 0 || sizes.some((n) => ![3, 5, 7].includes(n))) {
    throw new InvalidArgumentError('expected 3, 5 or 7 (or a list such as 3,5)');
  }
  return sizes;
}

const program = new Command('sim')
  .description('Deterministic simulation of a paxmon cluster under seeded faults')
  .option('--seed <n>', 'run this one seed', number(0, Number.MAX_SAFE_INTEGER, true))
  .option('--seeds <n>', 'run this many seeds', number(1, 10_000_000, true))
  .option('--first-seed <n>', 'first of --seeds (default: random)', number(0, Number.MAX_SAFE_INTEGER, true))
  .option('--skip-seeds <list>', 'seeds to leave out of --seeds (known open bugs)', (text: string) =>
    text
      .split(',')
      .filter((part) => part.trim() !== '')
      .map((part) => number(0, Number.MAX_SAFE_INTEGER, true)(part.trim())),
  )
  .option('--monitors <list>', 'monitors per cluster: 3, 5, 7, or a list cycled over seeds', monitorList, [
    d.monitors,
  ])
  .option('--seconds <n>', 'simulated seconds of the safety phase (faults on)', number(0, 86_400), d.seconds)
  .option(
    '--liveness-seconds <n>',
    'bound on the liveness phase (quorum, clients answered)',
    number(1, 3600),
    d.livenessSeconds,
  )
  .option('--clients <n>', 'simulated config-key clients', number(0, 64, true), d.clients)
  .option('--keys <n>', 'keys the clients use', number(1, 1000, true), d.keys)
  .option(
    '--proposals-per-second <n>',
    'raw Paxos proposals to the leader per second',
    number(0, 1000),
    d.proposalsPerSecond,
  )
  .option('--step-ms <n>', 'events closer than this are handled in one step', number(1, 100, true), d.stepMs)
  .option(
    '--leaders <form>',
    "one leader per election epoch: 'strict' (as stated; the default) or 'active' (at most one per epoch completes Paxos recovery — what Ceph's own classic elector guarantees)",
    (text: string) => {
      if (text !== 'strict' && text !== 'active')
        throw new InvalidArgumentError("expected 'strict' or 'active'");
      return text;
    },
    d.leaders,
  )
  .option(
    '--strategy <name>',
    'election strategy written by mkfs: classic, disallow or connectivity',
    (text: string) => {
      if (text !== 'classic' && text !== 'disallow' && text !== 'connectivity')
        throw new InvalidArgumentError("expected 'classic', 'disallow' or 'connectivity'");
      return text;
    },
    'classic',
  )
  .option(
    '--disallow <names>',
    'monitors the monmap disallows as leaders (with --strategy disallow or connectivity), e.g. a or a,b',
    (text: string) => {
      const names = text.split(',').map((n) => n.trim());
      if (names.some((n) => !/^[a-g]$/.test(n)))
        throw new InvalidArgumentError('expected monitor names a…g separated by commas');
      return names;
    },
  )
  .option('--trace-lines <n>', 'trace lines shown for a failing seed', number(1, 1000, true), d.traceLines)
  .option('--verbose', 'print every trace line as it happens', false)
  .option('--coverage', 'print the coverage marks after every seed (always printed at the end)', false);

for (const [key, flag] of faultFlags) {
  const descriptions: Record<keyof FaultOptions, string> = {
    dropRate: 'highest message loss probability (each seed draws below it)',
    duplicateRate: 'highest message duplication probability',
    delayMaxMs: 'highest one-way message delay, ms',
    partitionsPerMinute: 'symmetric partitions per minute',
    oneWayBlocksPerMinute: 'one-way blocks per minute',
    netsplitsPerMinute: 'netsplits (one monitor sees both sides) per minute',
    crashesPerMinute: 'crashes (with restart) per minute',
    pausesPerMinute: 'pauses per minute',
    clockSkew: 'highest clock-rate deviation (0.05: clocks run at 0.95–1.05)',
    clientStallsPerMinute:
      "client stalls per minute (a client's frames to one monitor held 2–8 s, then delivered)",
    linkBlocksPerMinute:
      'one-link blocks per minute (two monitors cut from each other, both reaching the rest)',
    adversaryActionsPerSecond:
      'adversary actions per second (replayed, altered and forged messages from a keyless node and a read-only client; denied updates)',
  };
  program.option(
    `--${flag} <n>`,
    descriptions[key],
    number(0, key === 'delayMaxMs' ? 10_000 : 1000),
    d.faults[key],
  );
}

for (const [key, flag] of configFlags) {
  program.option(
    `--${flag} <n>`,
    `monitor option ${flag.replace(/-/g, '_')} (default: paxmon's)`,
    number(1, 1_000_000, true),
  );
  void key;
}

program.parse();
const opts = program.opts() as Record<string, unknown> & {
  seed?: number;
  seeds?: number;
  firstSeed?: number;
  skipSeeds?: number[];
  monitors: number[];
  verbose: boolean;
  coverage: boolean;
};

// Checked before any seed runs (the exit hook below reports a run that stops early as stalled).
if (opts.disallow) {
  const names = opts.disallow as string[];
  const smallest = Math.min(...opts.monitors);
  if (opts.strategy === 'classic')
    program.error('error: --disallow needs --strategy disallow or connectivity');
  if (names.some((n) => n.charCodeAt(0) - 97 >= smallest) || names.length >= smallest)
    program.error(
      `error: --disallow ${names.join(',')}: not monitors of a ${smallest}-monitor cluster, or no allowed leader left`,
    );
}

const faults = { ...d.faults };
for (const [key] of faultFlags) faults[key] = opts[key] as number;

function optionsFor(seed: number, index: number): SimulationOptions {
  const options: SimulationOptions = {
    seed,
    monitors: opts.monitors[index % opts.monitors.length] as number,
    seconds: opts.seconds as number,
    livenessSeconds: opts.livenessSeconds as number,
    clients: opts.clients as number,
    keys: opts.keys as number,
    proposalsPerSecond: opts.proposalsPerSecond as number,
    stepMs: opts.stepMs as number,
    leaders: opts.leaders as 'strict' | 'active',
    faults,
    traceLines: opts.traceLines as number,
  };
  if (opts.disallow) options.disallowedLeaders = opts.disallow as string[];
  if (opts.strategy !== 'classic')
    options.strategy = opts.strategy as NonNullable<SimulationOptions['strategy']>;
  const config: Partial<MonConfig> = {};
  for (const [key] of configFlags) if (opts[key] !== undefined) config[key] = opts[key] as number;
  if (Object.keys(config).length) options.config = config;
  if (opts.verbose) options.echo = (line) => console.log(line);
  return options;
}

function printFailure(result: SimulationResult): void {
  for (const line of failureLines(result)) console.log(line);
}

async function main(): Promise<number> {
  if (opts.seed !== undefined && opts.seeds !== undefined) {
    console.error('give either --seed or --seeds, not both');
    return 2;
  }
  if (opts.seeds === undefined) {
    const seed = opts.seed ?? randomInt(0, 2 ** 31);
    const options = optionsFor(seed, 0);
    console.log(`SEED=${seed}`);
    current = `SEED=${seed}`;
    const started = performance.now();
    const result = await simulate(options);
    console.log(summary(result, performance.now() - started));
    printFailure(result);
    if (opts.coverage || result.ok) for (const line of result.coverage.format()) console.log(line);
    if (result.ok) console.log(`replay: ${result.replay}`);
    console.log(`hash=${result.hash}`);
    return result.ok ? 0 : 1;
  }
  const first = opts.firstSeed ?? randomInt(0, 2 ** 31);
  console.log(`SEED=${first} (first of ${opts.seeds} seeds: ${first}…${first + opts.seeds - 1})`);
  const total = new Coverage();
  const seedsReached = new Map<string, number>();
  const combined = new Trace(1);
  const failed: SimulationResult[] = [];
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const skip = new Set(opts.skipSeeds ?? []);
  let simulatedMs = 0;
  let ran = 0;
  for (let index = 0; index < opts.seeds; index++) {
    const seed = first + index;
    if (skip.has(seed)) {
      console.log(`SEED=${seed} skipped (--skip-seeds)`);
      continue;
    }
    ran++;
    current = `SEED=${seed}`;
    const seedStarted = performance.now();
    const result = await simulate(optionsFor(seed, index));
    console.log(
      `SEED=${seed} monitors=${result.monitors} ${summary(result, performance.now() - seedStarted)} hash=${result.hash}`,
    );
    printFailure(result);
    if (opts.coverage) for (const line of result.coverage.format()) console.log(line);
    total.merge(result.coverage);
    for (const [name] of result.coverage.entries()) seedsReached.set(name, (seedsReached.get(name) ?? 0) + 1);
    combined.record(`${seed} ${result.hash}`);
    simulatedMs += result.simulatedMs;
    if (!result.ok) failed.push(result);
  }
  const wallS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  console.log('coverage (total count, seeds that reached it):');
  for (const line of total.format(seedsReached)) console.log(line);
  console.log(
    `${ran} seeds, ${failed.length} failed, ${(simulatedMs / 1000).toFixed(0)} simulated s in ${wallS.toFixed(1)} s ` +
      `(${(ran / wallS).toFixed(2)} seeds/s, ${(simulatedMs / 1000 / wallS).toFixed(0)}× real time; ` +
      `${cpuS.toFixed(1)} CPU s, ${(ran / cpuS).toFixed(2)} seeds per CPU s)`,
  );
  for (const result of failed) console.log(`failed: ${result.replay}   # ${result.failure?.invariant}`);
  console.log(`hash=${combined.hash()}`);
  return failed.length ? 1 : 0;
}

let current = '';
let finished = false;
// A run that awaits a promise nothing will ever settle leaves Node's event loop empty: the process
// would exit quietly with code 0. Say so and fail instead.
process.on('exit', () => {
  if (finished) return;
  console.log(
    `simulator stalled (${current}): awaited a promise that can never settle; the event loop emptied`,
  );
  process.exitCode = 3;
});

main().then(
  (code) => {
    finished = true;
    process.exitCode = code;
  },
  (error: unknown) => {
    finished = true;
    console.error(error);
    process.exitCode = 2;
  },
);
