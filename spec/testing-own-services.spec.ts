// paxmon/testing pointed at paxmon's own services (issue 19): simulateService without a service of
// the app's tests what every monitor runs. config-key with every command — get, exists, ls, dump
// besides set and rm — against one model of the whole map (`npm run sim` checks get/set/rm key by
// key), and the cluster log: `log MESSAGE` appends, `log last N` must read every client's entry
// in one order that is the order of the appends.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Model, type Random, type ServiceOperation, simulateService } from '../testing/index.ts';

// --- config-key, the whole map ------------------------------------------------------------------

type Entries = Readonly<Record<string, string>>;
type KvInput =
  | { op: 'get' | 'exists' | 'rm'; key: string }
  | { op: 'set'; key: string; value: string }
  | { op: 'ls' | 'dump' };
/** `value: null` reads a missing key (ENOENT); ls and dump come back sorted. */
interface KvOutput {
  value?: string | null;
  keys?: string[];
  dump?: Entries;
}

const sorted = (entries: Entries): Entries => Object.fromEntries(Object.entries(entries).sort());

const configKeyModel: Model<Entries, KvInput, KvOutput> = {
  init: () => ({}),
  step(state, input, output) {
    switch (input.op) {
      case 'set':
        return { ok: true, state: { ...state, [input.key]: input.value } };
      case 'rm': {
        const { [input.key]: _removed, ...rest } = state;
        return { ok: true, state: rest };
      }
      case 'get':
        return { ok: output === undefined || output.value === (state[input.key] ?? null), state };
      case 'exists':
        return { ok: output === undefined || (output.value !== null) === input.key in state, state };
      case 'ls':
        return {
          ok: output === undefined || output.keys?.join() === Object.keys(state).sort().join(),
          state,
        };
      case 'dump':
        return {
          ok: output === undefined || JSON.stringify(output.dump) === JSON.stringify(sorted(state)),
          state,
        };
    }
  },
};

const ENOENT = -2;
const dump: ServiceOperation<KvInput, KvOutput> = {
  cmd: ['config-key', 'dump'],
  input: { op: 'dump' },
  read: true,
  output: (reply) => (reply.r === 0 ? { dump: sorted(JSON.parse(reply.text) as Entries) } : null),
};

function configKeyOperation(
  random: Random,
  client: number,
  count: number,
): ServiceOperation<KvInput, KvOutput> {
  const key = `k${random.int(0, 3)}`;
  const draw = random.next();
  const missing = (reply: { r: number }, found: KvOutput) =>
    reply.r === 0 ? found : reply.r === ENOENT ? { value: null } : null;
  if (draw < 0.2)
    return {
      cmd: ['config-key', 'get', key],
      input: { op: 'get', key },
      read: true,
      output: (reply) => missing(reply, { value: reply.text }),
    };
  if (draw < 0.3)
    return {
      cmd: ['config-key', 'exists', key],
      input: { op: 'exists', key },
      read: true,
      output: (reply) => missing(reply, { value: '' }),
    };
  if (draw < 0.4)
    return {
      cmd: ['config-key', 'ls'],
      input: { op: 'ls' },
      read: true,
      output: (reply) => (reply.r === 0 ? { keys: (JSON.parse(reply.text) as string[]).sort() } : null),
    };
  if (draw < 0.5) return dump;
  const done = (reply: { r: number }) => (reply.r === 0 ? {} : null);
  if (draw < 0.85) {
    const value = `c${client}.${count}`;
    return { cmd: ['config-key', 'set', key, value], input: { op: 'set', key, value }, output: done };
  }
  return { cmd: ['config-key', 'rm', key], input: { op: 'rm', key }, output: done };
}

test('config-key, every command against one model of the whole map: linearizable under faults', async () => {
  const result = await simulateService({
    model: configKeyModel,
    operations: configKeyOperation,
    finalReads: [dump],
    seeds: 2,
    seconds: 60,
  });
  assert.ok(result.ok, result.report);
  const history = result.results.flatMap((r) => r.history);
  for (const op of ['get', 'exists', 'ls', 'dump', 'set', 'rm'])
    assert.ok(
      history.some((o) => o.input.op === op && o.output !== undefined),
      `${op} answered`,
    );
  assert.ok(
    history.some((o) => o.input.op === 'dump' && Object.keys(o.output?.dump ?? {}).length > 1),
    'dumps saw several keys',
  );
});

// --- the cluster log ------------------------------------------------------------------------------

type LogInput = { op: 'log'; message: string } | { op: 'last' };
interface LogOutput {
  /** The clients' entries `log last` returned, oldest first (the monitors' own are left out). */
  messages?: string[];
}

const logModel: Model<readonly string[], LogInput, LogOutput> = {
  init: () => [],
  step(state, input, output) {
    if (input.op === 'log') return { ok: true, state: [...state, input.message] };
    return { ok: output?.messages === undefined || output.messages.join('\n') === state.join('\n'), state };
  },
  equal: (a, b) => a.join('\n') === b.join('\n'),
  hash: (state) => state.join('\n'),
};

const logLast: ServiceOperation<LogInput, LogOutput> = {
  cmd: ['log', 'last', '10000'],
  input: { op: 'last' },
  read: true,
  output: (reply) =>
    reply.r === 0
      ? {
          messages: (JSON.parse(reply.text) as { name: string; message: string }[])
            .filter((entry) => entry.name.startsWith('client.'))
            .map((entry) => entry.message),
        }
      : null,
};

test('the cluster log: every client sees the entries appended so far, in one order', async () => {
  const result = await simulateService({
    model: logModel,
    operations: (random: Random, client: number, count: number): ServiceOperation<LogInput, LogOutput> => {
      if (random.chance(0.5)) return logLast;
      const message = `c${client}.${count}`;
      return {
        cmd: ['log', message],
        input: { op: 'log', message },
        output: (reply) => (reply.r === 0 ? {} : null),
      };
    },
    finalReads: [logLast],
    seeds: 2,
    seconds: 60,
  });
  assert.ok(result.ok, result.report);
  const reads = result.results.flatMap((r) => r.history).filter((o) => o.input.op === 'last');
  assert.ok(
    reads.some((o) => (o.output?.messages?.length ?? 0) > 10),
    'reads returned the entries appended',
  );
});

test.run();
