// The deterministic simulator (sim/simulator.ts): same seed ⇒ same trace; every invariant of the
// state checker can fire; the regression seeds; and the CI batch — 200 seeds × 120 simulated
// seconds over 3 and 5 monitors, in two child processes (the CI machine has two cores).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Coverage } from '../sim/coverage.ts';
import { StateChecker } from '../sim/invariants.ts';
import {
  defaultFaults,
  defaultSimulationOptions,
  type FaultOptions,
  replayCommand,
  type SimulationOptions,
  simulate,
} from '../sim/simulator.ts';
import { Transaction } from '../storage/transaction.ts';
import type { MonCommandAck } from '../transport/messages.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const noFaults: FaultOptions = {
  ...defaultFaults,
  dropRate: 0,
  duplicateRate: 0,
  partitionsPerMinute: 0,
  oneWayBlocksPerMinute: 0,
  netsplitsPerMinute: 0,
  crashesPerMinute: 0,
  pausesPerMinute: 0,
  clockSkew: 0,
  clientStallsPerMinute: 0,
};

function options(overrides: Partial<SimulationOptions> & { seed: number }): SimulationOptions {
  return { ...defaultSimulationOptions, ...overrides };
}

test('two runs of a seed give the same trace hash; another seed another', async () => {
  const first = await simulate(options({ seed: 42, monitors: 5, seconds: 20 }));
  const again = await simulate(options({ seed: 42, monitors: 5, seconds: 20 }));
  const other = await simulate(options({ seed: 43, monitors: 5, seconds: 20 }));
  assert.ok(first.ok, first.failure?.message);
  assert.is(again.hash, first.hash);
  assert.is(again.steps, first.steps);
  assert.is.not(other.hash, first.hash);
  assert.ok(first.operations > 0, 'clients ran');
  assert.ok(first.lastCommitted > 0, 'Paxos committed');
});

test('the checker fires: a committed value that differs on one monitor', async () => {
  const result = await simulate(
    options({
      seed: 7,
      seconds: 20,
      faults: noFaults,
      inject: [
        {
          atMs: 15_000,
          async run(simulation) {
            // Rewrite mon.c's newest committed value behind its back, then restart it over that disk.
            await simulation.crash('c');
            const store = simulation.cluster.node('c').store;
            const lastCommitted = await store.getNumber('paxos', 'last_committed');
            assert.ok(lastCommitted > 0);
            const forged = new Transaction()
              .put('simulator', 'forged', 'not what the quorum committed')
              .encode();
            // Visible at once; durable after the simulated fsync (not awaited: time stands still here).
            void store.apply(new Transaction().put('paxos', String(lastCommitted), forged));
            await simulation.start('c');
          },
        },
      ],
    }),
  );
  assert.not.ok(result.ok);
  assert.is(result.failure?.invariant, 'committed values agree', result.failure?.message);
  assert.match(result.failure?.message ?? '', /paxos\/\d+ differs/);
  assert.ok(result.traceTail.length > 0);
  assert.match(result.replay, /^npm run sim -- --seed 7 --monitors 3 --seconds 20/);
});

test('the checker fires: a client history that is not linearizable', async () => {
  const result = await simulate(
    options({
      seed: 8,
      seconds: 10,
      faults: noFaults,
      inject: [
        {
          atMs: 5_000,
          run(simulation) {
            // A read of a value nobody ever wrote.
            const at = simulation.now();
            simulation.history.push({
              clientId: 99,
              input: { op: 'get', key: 'k0' },
              call: at,
              output: { value: 'never written' },
              return: at + 1,
            });
          },
        },
      ],
    }),
  );
  assert.is(result.failure?.invariant, 'linearizable client history', result.failure?.message);
  assert.match(result.failure?.message ?? '', /never written|illegal/);
});

test('the run fails if anything arms a real timer (determinism)', async () => {
  const result = await simulate(
    options({
      seed: 9,
      seconds: 5,
      faults: noFaults,
      inject: [{ atMs: 2_000, run: () => void setTimeout(() => {}, 1) }],
    }),
  );
  assert.is(result.failure?.invariant, 'determinism', result.failure?.message);
  assert.match(result.failure?.message ?? '', /setTimeout/);
});

test('the state checker fires on each safety invariant', () => {
  let now = 0;
  const fresh = (leaders: 'strict' | 'active' = 'strict') =>
    new StateChecker(() => now, new Coverage(), leaders);

  let c = fresh();
  c.onLeader('a', 4);
  c.onLeader('a', 4);
  assert.is(c.violation, null);
  c.onLeader('b', 4);
  assert.is(c.violation?.invariant, 'one leader per election epoch');

  c = fresh('active');
  c.onLeader('a', 4);
  c.onLeader('b', 4);
  assert.is(c.violation, null, "'active' only counts it");
  c.onLeaderRecovered('a', 4);
  c.onLeaderRecovered('b', 4);
  assert.is(c.violation?.invariant, 'one recovered leader per election epoch');

  c = fresh();
  c.onLeader('a', 5);
  assert.is(c.violation?.invariant, 'leader epoch is even');

  c = fresh();
  c.onStart('a', 1, 10);
  c.onPaxos('a', 1, 12, false);
  c.onPaxos('a', 1, 11, false);
  assert.is(c.violation?.invariant, 'last_committed never goes back');

  c = fresh();
  c.onStart('a', 1, 10);
  c.onSend('a', 'mon.b', {
    type: 'mon.paxos',
    op: 'lease',
    electionEpoch: 2,
    pn: 100,
    uncommittedPn: 0,
    firstCommitted: 1,
    lastCommitted: 12,
    values: [],
  });
  c.onCrash('a');
  c.onStart('a', 1, 11);
  assert.is(c.violation?.invariant, 'last_committed never goes back', 'restarted below what it announced');

  c = fresh();
  c.onStart('a', 0, 0);
  c.onPaxos('a', 2, 1, false);
  assert.is(c.violation?.invariant, 'first_committed <= last_committed');

  const read: MonCommandAck = {
    type: 'mon.command_ack',
    tid: 7,
    cmd: ['config-key', 'get', 'k0'],
    r: 0,
    rs: '',
    data: new Uint8Array(),
  };
  c = fresh();
  c.onStart('a', 1, 5);
  c.onPaxos('a', 1, 5, true);
  now = 10;
  c.onRequest('a', 'client.1', 7);
  now = 20;
  c.onPaxos('a', 1, 5, false);
  now = 30;
  c.onSend('a', 'client.1', read);
  assert.is(c.violation, null, 'readable at some instant after the request arrived');
  c.onRequest('a', 'client.1', 8);
  c.onSend('a', 'client.1', { ...read, tid: 8 });
  assert.is(c.violation?.invariant, 'reads only under a valid lease');
  c = fresh();
  c.onStart('a', 1, 5);
  c.onSend('a', 'client.1', { ...read, r: -11 });
  assert.is(c.violation, null, 'EAGAIN is not an answer');
});

// --- regression seeds ------------------------------------------------------------------------

interface Regression {
  seed: number;
  monitors: number;
  seconds?: number;
  leaders?: 'strict' | 'active';
  clients?: number;
  keys?: number;
  config?: SimulationOptions['config'];
  /** Fault rates that differ from the defaults. */
  faults?: Partial<FaultOptions>;
  /** open: the bug is not fixed yet (the seed is reported, not run); fixed: it must pass. */
  status: 'open' | 'fixed';
  invariant: string;
  replay: string;
  explanation: string;
}

const regressions = (
  JSON.parse(readFileSync(new URL('../sim/regressions.json', import.meta.url), 'utf8')) as {
    seeds: Regression[];
  }
).seeds;

function regressionOptions(r: Regression): SimulationOptions {
  const o = options({ seed: r.seed, monitors: r.monitors });
  if (r.seconds !== undefined) o.seconds = r.seconds;
  if (r.leaders !== undefined) o.leaders = r.leaders;
  if (r.clients !== undefined) o.clients = r.clients;
  if (r.keys !== undefined) o.keys = r.keys;
  if (r.config !== undefined) o.config = r.config;
  if (r.faults !== undefined) o.faults = { ...o.faults, ...r.faults };
  return o;
}

test('regression list: every entry replays with the command it records', () => {
  assert.ok(regressions.length > 0);
  for (const r of regressions) {
    assert.is(replayCommand(regressionOptions(r)), r.replay, `seed ${r.seed}`);
    assert.ok(r.status === 'open' || r.status === 'fixed');
    assert.ok(r.explanation.length > 20, `seed ${r.seed} explains what it found`);
  }
});

for (const r of regressions) {
  test(`regression seed ${r.seed} (${r.monitors} monitors): ${r.invariant}`, async () => {
    if (r.status === 'open') {
      const summary = r.explanation.split(/(?<=\.) /)[0];
      console.log(`\n  open bug, skipped: ${r.replay}\n    ${r.invariant}: ${summary}`);
      return;
    }
    const result = await simulate(regressionOptions(r));
    assert.ok(result.ok, `${result.failure?.message}\nreplay: ${result.replay}`);
  });
}

// --- the CI batch ------------------------------------------------------------------------------

/** Seeds in `npm test` (PAXMON_SIM_SEEDS overrides; 0 turns the batch off). */
const batchSeeds = Number(process.env.PAXMON_SIM_SEEDS ?? 200);
/** Child processes sharing the batch (the CI machine has two cores). */
const batchJobs = Math.max(1, Number(process.env.PAXMON_SIM_JOBS ?? 2));
/** The batch's seeds are 1…N: odd seeds run 3 monitors, even seeds 5. */
const batchFirstSeed = 1;

function runChild(first: number, count: number, skip: number[]): Promise<{ code: number; output: string }> {
  const args = [
    '--import',
    'tsx',
    'sim/main.ts',
    '--seeds',
    String(count),
    '--first-seed',
    String(first),
    '--monitors',
    first % 2 === 1 ? '3,5' : '5,3',
  ];
  if (skip.length) args.push('--skip-seeds', skip.join(','));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

if (batchSeeds > 0) {
  test(`${batchSeeds} seeds × ${defaultSimulationOptions.seconds} simulated s over 3 and 5 monitors: 0 violations, all histories linearizable`, async () => {
    // Open regressions found with the batch's own options are left out until their bug is fixed.
    const skip = regressions
      .filter((r) => r.status === 'open' && !r.leaders && !r.config && r.seconds === undefined)
      .filter((r) => r.seed >= batchFirstSeed && r.seed < batchFirstSeed + batchSeeds)
      .map((r) => r.seed);
    const per = Math.ceil(batchSeeds / batchJobs);
    const started = performance.now();
    const runs = [];
    for (let job = 0; job < batchJobs; job++) {
      const first = batchFirstSeed + job * per;
      const count = Math.min(per, batchFirstSeed + batchSeeds - first);
      if (count > 0) runs.push(runChild(first, count, skip));
    }
    const results = await Promise.all(runs);
    const wallS = (performance.now() - started) / 1000;
    let ran = 0;
    let failed = 0;
    const failures: string[] = [];
    for (const { code, output } of results) {
      const summary = /^(\d+) seeds, (\d+) failed/m.exec(output);
      if (!summary)
        failures.push(`a simulator process ended without a summary (exit ${code}):\n${output.slice(-4000)}`);
      ran += Number(summary?.[1] ?? 0);
      failed += Number(summary?.[2] ?? 0);
      // A failing seed's block: its SEED= line, what failed, the replay command, its trace.
      for (const block of output.split(/^(?=SEED=)/m)) if (/FAILED/.test(block)) failures.push(block.trim());
    }
    // The faults must really happen: rare paths the batch has to reach (FoundationDB's CODE_PROBE).
    const reached = new Map<string, number>();
    for (const { output } of results) {
      for (const match of output.matchAll(/^\s+(\d+) {2}(.+?) {2}\(\d+ seeds\)$/gm)) {
        reached.set(match[2] as string, (reached.get(match[2] as string) ?? 0) + Number(match[1]));
      }
    }
    const required = [
      'bootstrap: lease timeout',
      'bootstrap: lease ack timeout',
      'bootstrap: accept timeout',
      'paxos updating_previous',
      'paxos collect again (higher pn)',
      'crash with unsynced writes',
      'monitor restarted holding an uncommitted value',
      'pause: held timers and messages released on resume',
      'election won with a partial quorum',
      'client retry after EAGAIN',
      'client retry after timeout',
      'network: messages duplicated',
    ];
    const missing = batchSeeds >= 50 ? required.filter((name) => !reached.get(name)) : [];
    assert.equal(missing, [], `coverage marks never reached: ${missing.join(', ')}`);
    console.log(
      `\n  simulator: ${ran} seeds in ${wallS.toFixed(0)} s over ${batchJobs} processes (${(ran / wallS).toFixed(2)} seeds/s)` +
        (skip.length ? `; left out (open regressions): ${skip.join(', ')}` : ''),
    );
    assert.is(failed, 0, failures.join('\n\n'));
    assert.is(failures.length, 0, failures.join('\n\n'));
    assert.ok(ran >= batchSeeds - skip.length, `${ran} seeds ran`);
  });
}

test.run();
