/**
 * paxmon/testing: test your own PaxosService the way paxmon tests its own — on the deterministic
 * simulator of `npm run sim` (sim/simulator.ts), under its fault mix, with its invariants and its
 * linearizability checker.
 *
 * - {@link simulateService}: runs your service on simulated clusters, one per seed: the real
 *   monitor statecharts over an in-memory network and stores on one simulated clock, with message
 *   loss, duplication and delay, partitions, one-way blocks, netsplits, crashes that lose unsynced
 *   writes and restart over the same store, pauses, clock skew, client stalls and a hostile
 *   client. Simulated clients send your `operations`; the cluster invariants are checked after
 *   every step, and the clients' history against your `model` at the end.
 * - The models paxmon uses ({@link counterModel}, {@link kvModel}, {@link registerModel}), or your
 *   own {@link Model}.
 * - {@link checkHistory}: the same checker for a history you recorded yourself (on real processes,
 *   say).
 *
 * @example
 * import { counterModel, simulateService } from 'paxmon/testing';
 *
 * const result = await simulateService({
 *   service: counter,
 *   model: counterModel(),
 *   operations: (random) => ({
 *     cmd: ['counter', 'add', '1'],
 *     input: { op: 'add', n: 1 },
 *     output: (reply) => (reply.r === 0 ? {} : null),
 *   }),
 *   seeds: 10,
 * });
 * if (!result.ok) console.log(result.report); // the seed, the replay, the trace
 *
 * @packageDocumentation
 */
import type { MonConfig } from '../machines/config.ts';
import type { ServiceDefinition } from '../machines/paxos-service.ts';
import {
  type CheckOptions,
  type CheckResult,
  checkOperations,
  describeResult,
  type Model,
  type Operation,
} from '../sim/linearizability/index.ts';
import {
  defaultFaults,
  defaultSimulationOptions,
  type FaultOptions,
  failureLines,
  Simulation,
  type SimulationOptions,
  type SimulationResult,
  summary,
} from '../sim/simulator.ts';
import type { Random, ServiceOperation, Workload } from '../sim/workload.ts';

export type {
  CheckOptions,
  CheckResult,
  CounterInput,
  CounterModelOptions,
  CounterOutput,
  KvInput,
  KvModelOptions,
  KvOp,
  KvOutput,
  KvState,
  Model,
  Operation,
  RegisterInput,
  RegisterModelOptions,
  RegisterOutput,
  RegisterValue,
  StepResult,
  Verdict,
} from '../sim/linearizability/index.ts';
export { counterModel, kvModel, partitionBy, registerModel } from '../sim/linearizability/index.ts';
export { defaultFaults, type FaultOptions } from '../sim/simulator.ts';
export type { CommandReply, Random, ServiceOperation } from '../sim/workload.ts';

export interface SimulateServiceOptions<ServiceState, Pending, State, Input, Output> {
  /**
   * Your service, as you pass it to startLocalCluster / startMonitor (`services: [it]`). Leave it
   * out to test paxmon's own services (config-key, log, …), which every monitor runs anyway.
   */
  service?: ServiceDefinition<ServiceState, Pending>;
  /** The sequential specification the clients' history must be linearizable against. */
  model: Model<State, Input, Output>;
  /**
   * Each simulated client's next command, drawn from `random` (that client's own seeded stream;
   * never Math.random): the command, the model's input, and how to read its reply. `client` is
   * the client's number (1, 2, …) and `count` counts its operations (1, 2, …): `c${client}.${count}`
   * is a value no other operation writes. Keep no state of your own across calls: a seed must
   * replay the same way alone.
   */
  operations: (random: Random, client: number, count: number) => ServiceOperation<Input, Output>;
  /**
   * Commands issued once the faults have stopped and the cluster is whole again, e.g. a read of
   * everything: an acknowledged update that was lost shows up there. Default: none.
   */
  finalReads?: readonly ServiceOperation<Input, Output>[];
  /** How many seeds (from `firstSeed`), or which. Default 10. */
  seeds?: number | readonly number[];
  /** The first seed when `seeds` is a count. Default 1. */
  firstSeed?: number;
  /** Monitors per cluster (3, 5 or 7), or a list cycled over the seeds. Default 3. */
  monitors?: number | readonly number[];
  /** Simulated seconds with faults on (the safety phase). Default 120. */
  seconds?: number;
  /** Bound on the liveness phase after it: one quorum of all, every client answered. Default 30. */
  livenessSeconds?: number;
  /** Simulated clients, each with one command in flight. Default 3. */
  clients?: number;
  /** Fault rates over `npm run sim`'s ({@link defaultFaults}); `'none'` turns every fault off. */
  faults?: Partial<FaultOptions> | 'none';
  /** Monitor options over paxmon's defaults (paxos_min, …). */
  config?: Partial<MonConfig>;
  /** Stop at the first seed that fails (default true); false runs every seed. */
  stopOnFailure?: boolean;
  /** Trace lines kept for a failing seed's report. Default 50. */
  traceLines?: number;
  /** Every trace line as it happens (a replay with `verbose: true` prints the whole run). */
  verbose?: boolean | ((line: string) => void);
  /** Called after each seed (progress). */
  onSeed?: (result: SeedResult<Input, Output>) => void;
}

/** One seed's run. */
export interface SeedResult<Input = unknown, Output = unknown> {
  seed: number;
  monitors: number;
  ok: boolean;
  /** The first invariant violated (or the liveness bound, or an error a hook threw), else null. */
  failure: { invariant: string; message: string; atMs: number } | null;
  /** What reproduces it: simulateService with the same options and this seed alone. */
  replay: string;
  /** Covers every network event, monitor state change, fault and client operation. */
  hash: string;
  simulatedMs: number;
  wallMs: number;
  steps: number;
  /** Highest Paxos last_committed reached. */
  lastCommitted: number;
  /** Client operations in the history, and how many of them have an unknown outcome. */
  operations: number;
  unknownOperations: number;
  /** The cluster when the run ended or failed. */
  finalState: string;
  /** The last trace lines before the end (`traceLines`). */
  traceTail: string[];
  /** How often rare paths were reached (a crash with unsynced writes, a client retry, …). */
  coverage: [name: string, count: number][];
  /** The clients' history, as it was checked (call and return in simulated ms). */
  history: Operation<Input, Output>[];
  /** `SEED=… ok: …` or `SEED=… FAILED: …`, then for a failure what failed, the replay and the trace. */
  report: string;
}

export interface ServiceSimulation<Input = unknown, Output = unknown> {
  /** Every seed run passed. */
  ok: boolean;
  /** One per seed run, in order (with stopOnFailure, up to the first failure). */
  results: SeedResult<Input, Output>[];
  /** The first seed that failed. */
  failure: SeedResult<Input, Output> | undefined;
  /** Every seed's line, then the first failure in full: print it, or pass it to an assertion. */
  report: string;
}

const noFaults: FaultOptions = {
  dropRate: 0,
  duplicateRate: 0,
  delayMaxMs: defaultFaults.delayMaxMs,
  partitionsPerMinute: 0,
  oneWayBlocksPerMinute: 0,
  netsplitsPerMinute: 0,
  crashesPerMinute: 0,
  pausesPerMinute: 0,
  clockSkew: 0,
  clientStallsPerMinute: 0,
  linkBlocksPerMinute: 0,
  adversaryActionsPerSecond: 0,
};

/**
 * Run `service` on a simulated cluster for each seed, with simulated clients issuing
 * `operations`, under `npm run sim`'s fault mix; check the cluster invariants after every step and
 * the clients' history against `model`. The same seed and options give the same result and trace
 * hash on any machine.
 */
export async function simulateService<ServiceState, Pending, State, Input, Output>(
  options: SimulateServiceOptions<ServiceState, Pending, State, Input, Output>,
): Promise<ServiceSimulation<Input, Output>> {
  const seeds = seedList(options.seeds ?? 10, options.firstSeed ?? 1);
  const monitors = typeof options.monitors === 'number' ? [options.monitors] : (options.monitors ?? [3]);
  for (const n of monitors) {
    if (![3, 5, 7].includes(n)) throw new RangeError(`monitors: expected 3, 5 or 7, got ${n}`);
  }
  const finalReads = options.finalReads ?? [];
  const workload: Workload<unknown, Input, Output> = {
    model: options.model as Model<unknown, Input, Output>,
    next: (random, client, count) => options.operations(random, client, count),
    finalReads: () => finalReads,
  };
  const faults = options.faults === 'none' ? noFaults : { ...defaultFaults, ...(options.faults ?? {}) };
  const echo =
    options.verbose === true
      ? (line: string) => console.log(line)
      : typeof options.verbose === 'function'
        ? options.verbose
        : undefined;
  const cycled = monitors.length > 1;
  const results: SeedResult<Input, Output>[] = [];
  for (const [index, seed] of seeds.entries()) {
    const size = monitors[index % monitors.length] as number;
    const d = defaultSimulationOptions;
    const simulation: SimulationOptions<Input, Output> = {
      seed,
      monitors: size,
      seconds: options.seconds ?? d.seconds,
      livenessSeconds: options.livenessSeconds ?? d.livenessSeconds,
      clients: options.clients ?? d.clients,
      keys: d.keys,
      proposalsPerSecond: d.proposalsPerSecond,
      stepMs: d.stepMs,
      leaders: d.leaders,
      traceLines: options.traceLines ?? d.traceLines,
      faults,
      workload,
      services: options.service ? [options.service as unknown as ServiceDefinition] : [],
      replay: () =>
        `simulateService({ ...sameOptions, seeds: [${seed}]${cycled ? `, monitors: ${size}` : ''} })` +
        ' — add verbose: true for the whole trace',
    };
    if (options.config) simulation.config = options.config;
    if (echo) simulation.echo = echo;
    const started = performance.now();
    const run = new Simulation(simulation);
    const outcome = await run.run();
    const wallMs = performance.now() - started;
    const result = seedResult(outcome, run.history, wallMs);
    results.push(result);
    options.onSeed?.(result);
    if (!result.ok && (options.stopOnFailure ?? true)) break;
  }
  const failure = results.find((r) => !r.ok);
  const report = [
    ...results.map((r) => r.report.split('\n')[0] as string),
    ...(failure ? ['', failure.report] : []),
  ].join('\n');
  return { ok: failure === undefined && results.length > 0, results, failure, report };
}

function seedList(seeds: number | readonly number[], first: number): number[] {
  const list = typeof seeds === 'number' ? Array.from({ length: seeds }, (_, i) => first + i) : [...seeds];
  if (list.length === 0) throw new RangeError('seeds: at least one');
  for (const seed of list) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seeds: not a seed: ${seed}`);
  }
  return list;
}

function seedResult<Input, Output>(
  outcome: SimulationResult,
  history: Operation<Input, Output>[],
  wallMs: number,
): SeedResult<Input, Output> {
  const head = `SEED=${outcome.seed} monitors=${outcome.monitors} ${summary(outcome, wallMs)} hash=${outcome.hash}`;
  return {
    seed: outcome.seed,
    monitors: outcome.monitors,
    ok: outcome.ok,
    failure: outcome.failure,
    replay: outcome.replay,
    hash: outcome.hash,
    simulatedMs: outcome.simulatedMs,
    wallMs,
    steps: outcome.steps,
    lastCommitted: outcome.lastCommitted,
    operations: outcome.operations,
    unknownOperations: outcome.unknownOperations,
    finalState: outcome.finalState,
    traceTail: outcome.traceTail,
    coverage: outcome.coverage.entries(),
    history,
    report: [head, ...failureLines(outcome)].join('\n'),
  };
}

export interface HistoryCheck<Input, Output> {
  /** Linearizable. */
  ok: boolean;
  /** `unknown` when the search hit its step or memory bound (CheckOptions) before a verdict. */
  verdict: CheckResult<Input, Output>['result'];
  result: CheckResult<Input, Output>;
  /** For a failure: the longest linearizable prefix and the operations none of which fit next. */
  description: string;
}

/**
 * Check a history you recorded yourself against a model: is there an order of its operations,
 * consistent with real time (`call`/`return`), that the model accepts? An operation whose outcome
 * is unknown has `output: undefined` and `return: Infinity`.
 */
export function checkHistory<State, Input, Output>(
  model: Model<State, Input, Output>,
  history: readonly Operation<Input, Output>[],
  options: CheckOptions = {},
): HistoryCheck<Input, Output> {
  const result = checkOperations(model, history, options);
  return {
    ok: result.result === 'ok',
    verdict: result.result,
    result,
    description: result.result === 'ok' ? 'linearizable' : describeResult(model, result),
  };
}
