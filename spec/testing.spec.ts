// paxmon/testing (testing/index.ts, issue 19): simulateService runs an app's own PaxosService on
// the simulator of `npm run sim` — its fault mix, invariants and linearizability checker — and
// finds the bugs such a service can have: state lost at a restart, versions skipped, an answer
// computed from the wrong state, a hook that throws. The same seed
// and options give the same result and trace hash; a failure names its seed and how to replay it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ServiceDefinition } from '../machines/paxos-service.ts';
import { Coverage } from '../sim/coverage.ts';
import { StateChecker } from '../sim/invariants.ts';
import { isConfigKeyRead } from '../sim/workload.ts';
import {
  type CounterInput,
  type CounterOutput,
  checkHistory,
  counterModel,
  kvModel,
  type Model,
  type Operation,
  type Random,
  type RegisterInput,
  type RegisterOutput,
  registerModel,
  type ServiceOperation,
  type SimulateServiceOptions,
  simulateService,
} from '../testing/index.ts';
import { counter } from './support/counter-service.ts';

type Counter = ServiceDefinition<{ value: number }, number>;
type CounterOptions = SimulateServiceOptions<{ value: number }, number, number, CounterInput, CounterOutput>;

const get: ServiceOperation<CounterInput, CounterOutput> = {
  cmd: ['counter', 'get'],
  input: { op: 'get' },
  read: true,
  output: (reply) => (reply.r === 0 ? { value: Number(reply.text) } : null),
};

function add(n: number): ServiceOperation<CounterInput, CounterOutput> {
  return {
    cmd: ['counter', 'add', String(n)],
    input: { op: 'add', n },
    // `counter = 42`: the total just after this add.
    output: (reply) => (reply.r === 0 ? { value: Number(reply.rs.replace('counter = ', '')) } : null),
  };
}

const operations = (random: Random) => (random.chance(0.5) ? get : add(random.int(1, 9)));

function simulateCounter(service: Counter, options: Partial<CounterOptions> = {}) {
  return simulateService({ service, model: counterModel(), operations, finalReads: [get], ...options });
}

test('the counter passes: invariants and a linearizable history under the default fault mix', async () => {
  const result = await simulateCounter(counter, { seeds: 2, seconds: 60 });
  assert.ok(result.ok, result.report);
  assert.is(result.results.length, 2);
  for (const seed of result.results) {
    assert.ok(seed.operations > 20, `seed ${seed.seed}: the clients ran (${seed.operations} operations)`);
    assert.ok(seed.lastCommitted > 10, `seed ${seed.seed}: Paxos committed`);
    const marks = new Map(seed.coverage);
    assert.ok((marks.get('history: operations checked') ?? 0) === seed.operations);
  }
  // The default fault mix was on: faults, and restarts among them.
  const faults = result.results.flatMap((r) => r.coverage.map(([name]) => name));
  assert.ok(faults.includes('history: operations checked'));
  assert.match(result.report, /^SEED=1 monitors=3 ok: /m);
});

test('same seed and options ⇒ same result and trace hash; another seed, another run', async () => {
  const first = await simulateCounter(counter, { seeds: [7], seconds: 30 });
  const again = await simulateCounter(counter, { seeds: [7], seconds: 30 });
  const other = await simulateCounter(counter, { seeds: [8], seconds: 30 });
  const [a, b, c] = [first.results[0], again.results[0], other.results[0]];
  assert.ok(a && b && c);
  assert.is(b?.hash, a?.hash);
  assert.is(b?.steps, a?.steps);
  assert.is(b?.operations, a?.operations);
  assert.equal(b?.coverage, a?.coverage);
  assert.is.not(c?.hash, a?.hash);
});

// The bug the README's counter once had: init ignores what the monitor loaded, so a restarted
// monitor counts from 0 again.
const forgetful: Counter = { ...counter, init: () => ({ value: 0 }) };

test('a counter that forgets its value at a restart fails, with a seed that replays it exactly', async () => {
  const result = await simulateCounter(forgetful, { seeds: 5, seconds: 60 });
  assert.not.ok(result.ok, 'the kit catches it');
  const failure = result.failure;
  assert.ok(failure);
  assert.is(result.results.at(-1), failure, 'stops at the first failing seed');
  assert.is(failure?.failure?.invariant, 'linearizable client history', failure?.report);
  assert.match(failure?.failure?.message ?? '', /none of these can come next/);
  assert.match(failure?.replay ?? '', new RegExp(`seeds: \\[${failure?.seed}\\]`));
  assert.ok((failure?.traceTail.length ?? 0) > 0);
  // The replay: the same options, that seed alone.
  const replay = await simulateCounter(forgetful, { seeds: [failure?.seed ?? -1], seconds: 60 });
  assert.is(replay.failure?.hash, failure?.hash);
  assert.is(replay.failure?.failure?.message, failure?.failure?.message);
  // Without crashes (restarts) the same seeds do not find it: restarts are what catch this bug.
  const noCrashes = await simulateCounter(forgetful, {
    seeds: [failure?.seed ?? -1],
    seconds: 60,
    faults: { crashesPerMinute: 0 },
  });
  assert.ok(noCrashes.ok, noCrashes.report);
});

test('an updateFromPaxos that ignores some versions fails', async () => {
  const skipping: Counter = {
    ...counter,
    // Every fifth version is dropped: the next update is encoded from a stale total.
    updateFromPaxos: (state, ops, versions) =>
      versions.lastCommitted % 5 === 0 ? state : counter.updateFromPaxos(state, ops, versions),
  };
  const result = await simulateCounter(skipping, { seeds: 3, seconds: 30, faults: 'none' });
  assert.not.ok(result.ok);
  assert.is(result.failure?.failure?.invariant, 'linearizable client history', result.report);
});

test('a prepareUpdate that answers from the committed total, not the pending one, fails', async () => {
  const stale: Counter = {
    ...counter,
    prepareUpdate: (state, pending, request, view) => {
      const prepared = counter.prepareUpdate(state, pending, request, view);
      if ('error' in prepared) return prepared;
      const n = Number(request.cmd[2]);
      // Forgets the adds already batched into this round.
      return { pending: prepared.pending, reply: { r: 0, rs: `counter = ${state.value + n}` } };
    },
  };
  const result = await simulateCounter(stale, { seeds: 5, seconds: 60, clients: 8 });
  assert.not.ok(result.ok, result.report);
  assert.is(result.failure?.failure?.invariant, 'linearizable client history', result.report);
  assert.match(result.failure?.failure?.message ?? '', /add\(\d\) -> \d+/);
});

test('a hook that throws fails the run with its stack, not the process', async () => {
  const throwing: Counter = {
    ...counter,
    prepareUpdate: (state, pending, request, view) => {
      if (request.cmd[2] === '7') throw new Error('seven is unlucky');
      return counter.prepareUpdate(state, pending, request, view);
    },
  };
  const result = await simulateCounter(throwing, { seeds: 3, seconds: 20, faults: 'none' });
  assert.is(result.failure?.failure?.invariant, "a monitor's actors never fail", result.report);
  assert.match(result.failure?.failure?.message ?? '', /seven is unlucky\n\s+at /);
});

test("the lease invariant covers a workload's reads, not only config-key's", () => {
  const reads = new Set(['counter\0get']);
  const checker = new StateChecker(
    () => 10,
    new Coverage(),
    'strict',
    (cmd) => isConfigKeyRead(cmd) || reads.has(cmd.join('\0')),
  );
  checker.onStart('a', 1, 5);
  const ack = { type: 'mon.command_ack' as const, tid: 1, rs: '', data: new Uint8Array(), r: 0 };
  checker.onSend('a', 'client.1', { ...ack, cmd: ['counter', 'add', '1'] });
  assert.is(checker.violation, null, 'an update needs no lease');
  checker.onSend('a', 'client.1', { ...ack, cmd: ['counter', 'get'] });
  assert.is(checker.violation?.invariant, 'reads only under a valid lease');
});

test('options are checked', async () => {
  const rejects = async (options: Partial<CounterOptions>, pattern: RegExp) => {
    const error = await simulateCounter(counter, options).then(
      () => null,
      (e: unknown) => e,
    );
    assert.instance(error, RangeError);
    assert.match((error as Error).message, pattern);
  };
  await rejects({ monitors: 4 }, /monitors: expected 3, 5 or 7/);
  await rejects({ seeds: [] }, /at least one/);
  await rejects({ seeds: [1.5] }, /not a seed/);
});

// --- checkHistory and the models --------------------------------------------------------------

const op = <I, O>(clientId: number, input: I, call: number, ret: number, output?: O): Operation<I, O> => ({
  clientId,
  input,
  call,
  return: ret,
  output,
});

test('checkHistory: the counter model, unknown outcomes, and the window that cannot be linearized', () => {
  const model = counterModel();
  const ok = checkHistory(model, [
    op<CounterInput, CounterOutput>(1, { op: 'add', n: 2 }, 0, 10, { value: 2 }),
    op<CounterInput, CounterOutput>(2, { op: 'add', n: 3 }, 5, Number.POSITIVE_INFINITY),
    op<CounterInput, CounterOutput>(1, { op: 'get' }, 20, 30, { value: 5 }),
  ]);
  assert.ok(ok.ok, ok.description);
  assert.is(ok.verdict, 'ok');
  // The unknown add may also never have happened.
  assert.ok(
    checkHistory(model, [
      op<CounterInput, CounterOutput>(2, { op: 'add', n: 3 }, 5, Number.POSITIVE_INFINITY),
      op<CounterInput, CounterOutput>(1, { op: 'get' }, 20, 30, { value: 0 }),
    ]).ok,
  );
  // A read that went back in time.
  const bad = checkHistory(model, [
    op<CounterInput, CounterOutput>(1, { op: 'add', n: 2 }, 0, 10, { value: 2 }),
    op<CounterInput, CounterOutput>(2, { op: 'get' }, 11, 12, { value: 2 }),
    op<CounterInput, CounterOutput>(1, { op: 'add', n: 1 }, 13, 20, { value: 3 }),
    op<CounterInput, CounterOutput>(2, { op: 'get' }, 21, 22, { value: 2 }),
  ]);
  assert.not.ok(bad.ok);
  assert.is(bad.verdict, 'illegal');
  assert.match(bad.description, /longest linearized prefix \(3 operations\)/);
  assert.match(
    bad.description,
    /none of these can come next \(1 operations\):\n {2}client 2 \[21, 22\] get -> 2/,
  );
  assert.equal(
    bad.result.nextCandidates?.map((o) => o.call),
    [21],
  );
});

test('checkHistory: a model of your own needs no equal or hash for plain-data states', () => {
  // A set of members: add(x) and list() → sorted members.
  type SetInput = { op: 'add'; member: string } | { op: 'list' };
  const members: Model<{ members: string[] }, SetInput, { members?: string[] }> = {
    init: () => ({ members: [] }),
    step(state, input, output) {
      if (input.op === 'add') {
        const next = [...new Set([...state.members, input.member])].sort();
        return { ok: true, state: { members: next } };
      }
      return {
        ok: output?.members === undefined || output.members.join() === state.members.join(),
        state,
      };
    },
  };
  const history = [
    op<SetInput, { members?: string[] }>(1, { op: 'add', member: 'b' }, 0, 10, {}),
    op<SetInput, { members?: string[] }>(2, { op: 'add', member: 'a' }, 0, 10, {}),
    op<SetInput, { members?: string[] }>(3, { op: 'list' }, 1, 9, { members: ['a'] }),
    op<SetInput, { members?: string[] }>(3, { op: 'list' }, 11, 12, { members: ['a', 'b'] }),
  ];
  assert.ok(checkHistory(members, history).ok);
  const wrong = [
    ...history.slice(0, 3),
    op<SetInput, { members?: string[] }>(3, { op: 'list' }, 11, 12, {
      members: ['b'],
    }),
  ];
  assert.is(checkHistory(members, wrong).verdict, 'illegal');
});

test('checkHistory: the kv and register models paxmon checks itself with', () => {
  const kv = kvModel({ missing: 'undefined' });
  assert.ok(
    checkHistory(kv, [
      op(1, { op: 'put' as const, key: 'a', value: '1' }, 0, 10, { value: undefined }),
      op(2, { op: 'get' as const, key: 'a' }, 11, 12, { value: '1' }),
      op(2, { op: 'get' as const, key: 'b' }, 11, 12, { value: undefined }),
    ]).ok,
  );
  assert.not.ok(
    checkHistory(kv, [
      op(1, { op: 'put' as const, key: 'a', value: '1' }, 0, 10, { value: undefined }),
      op(2, { op: 'get' as const, key: 'a' }, 11, 12, { value: undefined }),
    ]).ok,
  );
  const register = registerModel();
  assert.not.ok(
    checkHistory(register, [
      op<RegisterInput, RegisterOutput>(1, { op: 'write', value: 1 }, 0, 10, { ok: true }),
      op<RegisterInput, RegisterOutput>(2, { op: 'cas', from: 0, to: 2 }, 11, 12, { ok: true }),
    ]).ok,
  );
  assert.is(checkHistory(register, [], { stepsMax: 0 }).verdict, 'ok');
});

test.run();
