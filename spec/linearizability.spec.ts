// The linearizability checker (sim/linearizability): it must agree with every published verdict
// in the Porcupine reference histories (spec/fixtures/porcupine, from
// github.com/anishathalye/porcupine test_data), with a brute-force search on small random
// histories, and with hand-written cases whose verdicts follow from the definition (Herlihy &
// Wing 1990). All runs are deterministic: fixed inputs, a seeded property run, step counts
// rather than timings.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type {
  KvInput,
  KvOutput,
  Operation,
  RegisterInput,
  RegisterOutput,
  RegisterValue,
} from '../sim/linearizability/index.ts';
import {
  checkOperations,
  describeResult,
  HistoryParseError,
  kvModel,
  loadPorcupineHistories,
  parseEdn,
  parseEtcdExpected,
  parseJepsenEtcdLog,
  parseJepsenKvHistory,
  porcupineDir,
  registerModel,
} from '../sim/linearizability/index.ts';

type RegisterOp = Operation<RegisterInput, RegisterOutput>;
type KvOperation = Operation<KvInput, KvOutput>;

// --- Builders for hand-written histories ---------------------------------------------------------

let nextClient = 0;
const UNKNOWN = Number.POSITIVE_INFINITY;

function write(value: RegisterValue, call: number, ret: number): RegisterOp {
  const output = ret === UNKNOWN ? undefined : { ok: true };
  return { clientId: nextClient++, input: { op: 'write', value }, call, output, return: ret };
}

function read(value: RegisterValue, call: number, ret: number): RegisterOp {
  return { clientId: nextClient++, input: { op: 'read' }, call, output: { ok: true, value }, return: ret };
}

function cas(
  from: RegisterValue,
  to: RegisterValue,
  ok: boolean | undefined,
  call: number,
  ret: number,
): RegisterOp {
  const output = ok === undefined ? undefined : { ok };
  return { clientId: nextClient++, input: { op: 'cas', from, to }, call, output, return: ret };
}

function kv(
  op: KvInput['op'],
  key: string,
  value: string | undefined,
  call: number,
  ret: number,
  read?: string | undefined,
): KvOperation {
  const input: KvInput = value === undefined ? { op, key } : { op, key, value };
  const output = ret === UNKNOWN ? undefined : { value: read };
  return { clientId: nextClient++, input, call, output, return: ret };
}

const register = registerModel();
const registerVerdict = (ops: RegisterOp[]): string => checkOperations(register, ops).result;
const kvVerdict = (ops: KvOperation[], missing: 'empty' | 'undefined' = 'empty'): string =>
  checkOperations(kvModel({ missing }), ops).result;

// --- The Porcupine reference histories -----------------------------------------------------------

const porcupine = suite('linearizability: porcupine reference histories');

porcupine('the fixture directory is present and complete', () => {
  // A missing directory must fail here, not pass an empty loop below.
  const dir = porcupineDir();
  assert.ok(existsSync(dir), `no reference histories at ${dir}`);
  const histories = loadPorcupineHistories(dir);
  const kvNames = histories.filter((h) => h.kind === 'kv').map((h) => h.name);
  assert.equal(kvNames, [
    'c01-bad.txt',
    'c01-ok.txt',
    'c10-bad.txt',
    'c10-ok.txt',
    'c50-bad.txt',
    'c50-ok.txt',
  ]);
  assert.ok(histories.filter((h) => h.kind === 'etcd').length >= 100, 'expected the etcd_NNN.log histories');
});

for (const failedCas of ['compare-failed', 'drop'] as const) {
  porcupine(`every verdict agrees (a failed cas: ${failedCas})`, () => {
    const dir = porcupineDir();
    const histories = loadPorcupineHistories(dir, { failedCas });
    const disagreements: string[] = [];
    let checked = 0;
    for (const history of histories) {
      const result =
        history.kind === 'kv'
          ? checkOperations(kvModel(), history.ops)
          : checkOperations(registerModel(), history.ops);
      if (history.linearizable === undefined) {
        // etcd-expected.txt has no verdict for etcd_095.log, which is empty: an empty history is
        // trivially linearizable. Any other unjudged file would mean the fixtures are damaged.
        assert.is(history.ops.length, 0, `${history.name} has operations but no verdict`);
        assert.is(result.result, 'ok');
        continue;
      }
      checked++;
      const expected = history.linearizable ? 'ok' : 'illegal';
      if (result.result !== expected)
        disagreements.push(`${history.name}: ${result.result}, expected ${expected}`);
    }
    assert.equal(disagreements, []);
    // Every verdict line has its history: 6 kv files plus one per line of etcd-expected.txt.
    const verdictLines = parseEtcdExpected(readFileSync(join(dir, 'etcd-expected.txt'), 'utf8')).size;
    assert.is(checked, 6 + verdictLines);
    assert.ok(verdictLines >= 100);
  });
}

porcupine('the kv histories partition by key, and a bad one names its failing partition', () => {
  const histories = loadPorcupineHistories();
  const bad = histories.find((h) => h.name === 'c50-bad.txt');
  const ok = histories.find((h) => h.name === 'c50-ok.txt');
  assert.ok(bad?.kind === 'kv' && ok?.kind === 'kv');
  assert.is(ok.ops.length, 1712);
  const model = kvModel();
  const okResult = checkOperations(model, ok.ops);
  assert.is(okResult.result, 'ok');
  assert.is(okResult.partitions, 10);
  const badResult = checkOperations(model, bad.ops);
  assert.is(badResult.result, 'illegal');
  assert.ok(badResult.failedPartition !== undefined);
  const prefix = badResult.longestLinearizedPrefix ?? [];
  const partitionKey = prefix[0]?.input.key;
  assert.ok(partitionKey !== undefined);
  assert.ok(
    prefix.every((op) => op.input.key === partitionKey),
    'the prefix comes from one partition',
  );
  assert.match(describeResult(model, badResult), /^illegal \(10 partitions, \d+ steps\)\npartition \d+\n/);
});

porcupine('the step bound gives unknown, deterministically', () => {
  const history = loadPorcupineHistories().find((h) => h.name === 'etcd_002.log');
  assert.ok(history?.kind === 'etcd');
  const full = checkOperations(registerModel(), history.ops);
  assert.is(full.result, 'ok');
  const bounded = checkOperations(registerModel(), history.ops, { stepsMax: 1000 });
  assert.is(bounded.result, 'unknown');
  assert.is(bounded.steps, 1000);
  assert.is(bounded.failedPartition, 0);
  assert.is(checkOperations(registerModel(), history.ops).steps, full.steps);
  assert.is(checkOperations(registerModel(), history.ops, { stepsMax: full.steps }).result, 'ok');
  assert.is(checkOperations(registerModel(), history.ops, { stepsMax: full.steps - 1 }).result, 'unknown');
  assert.is(checkOperations(registerModel(), history.ops, { cacheBytesMax: 4096 }).result, 'unknown');
});

porcupine.run();

// --- Hand-written register histories -------------------------------------------------------------

const handWritten = suite('linearizability: hand-written histories');

handWritten('an empty history is linearizable', () => {
  assert.equal(checkOperations(register, []), { result: 'ok', partitions: 1, steps: 0 });
});

handWritten('a stale read is illegal', () => {
  // The write returned before the read was called, so the read must see it.
  assert.is(registerVerdict([write(1, 0, 1), read(null, 2, 3)]), 'illegal');
  assert.is(registerVerdict([write(1, 0, 1), read(1, 2, 3)]), 'ok');
  assert.is(registerVerdict([write(1, 0, 1), write(2, 2, 3), read(1, 4, 5)]), 'illegal');
});

handWritten('a read concurrent with a write may see either value, but nothing else', () => {
  assert.is(registerVerdict([write(1, 0, 3), read(null, 1, 2)]), 'ok');
  assert.is(registerVerdict([write(1, 0, 3), read(1, 1, 2)]), 'ok');
  assert.is(registerVerdict([write(1, 0, 3), read(2, 1, 2)]), 'illegal');
  // Touching intervals are concurrent: the read may still precede the write.
  assert.is(registerVerdict([write(1, 0, 2), read(null, 2, 4)]), 'ok');
});

handWritten('once a read sees a concurrent write, later reads cannot go back (no new-old inversion)', () => {
  assert.is(registerVerdict([write(1, 0, 10), read(1, 1, 2), read(null, 3, 4)]), 'illegal');
  assert.is(registerVerdict([write(1, 0, 10), read(null, 1, 2), read(1, 3, 4)]), 'ok');
});

handWritten('an unknown-outcome write may or may not have taken effect', () => {
  assert.is(registerVerdict([write(1, 0, UNKNOWN), read(1, 5, 6)]), 'ok');
  assert.is(registerVerdict([write(1, 0, UNKNOWN), read(null, 5, 6)]), 'ok');
  // It may take effect late, between two reads...
  assert.is(registerVerdict([write(1, 0, UNKNOWN), read(null, 5, 6), read(1, 7, 8)]), 'ok');
  // ...but not before its call, and not be undone once seen.
  assert.is(registerVerdict([read(1, 0, 1), write(1, 2, UNKNOWN)]), 'illegal');
  assert.is(registerVerdict([write(1, 0, UNKNOWN), read(1, 5, 6), read(null, 7, 8)]), 'illegal');
});

handWritten('compare-and-set: success needs a match, a false return needs a mismatch', () => {
  assert.is(registerVerdict([write(1, 0, 1), cas(1, 2, true, 2, 3), read(2, 4, 5)]), 'ok');
  assert.is(registerVerdict([write(1, 0, 1), cas(0, 2, true, 2, 3)]), 'illegal');
  assert.is(registerVerdict([write(1, 0, 1), cas(0, 2, false, 2, 3), read(1, 4, 5)]), 'ok');
  assert.is(registerVerdict([write(1, 0, 1), cas(1, 2, false, 2, 3)]), 'illegal');
  // Unknown outcome: it swaps iff the compare holds where it lands.
  assert.is(registerVerdict([write(1, 0, 1), cas(1, 2, undefined, 2, UNKNOWN), read(2, 4, 5)]), 'ok');
  assert.is(registerVerdict([write(1, 0, 1), cas(0, 2, undefined, 2, UNKNOWN), read(2, 4, 5)]), 'illegal');
});

handWritten('an illegal history reports its longest linearized prefix', () => {
  const ops = [write(1, 0, 1), write(2, 2, 3), read(1, 4, 5)];
  const result = checkOperations(register, ops);
  assert.is(result.result, 'illegal');
  assert.is(result.failedPartition, 0);
  assert.equal(result.longestLinearizedPrefix, [ops[0], ops[1]]);
  assert.match(describeResult(register, result), /write\(2\) -> ok/);
});

handWritten('operations are validated', () => {
  assert.throws(() => checkOperations(register, [read(1, 5, 4)]), /before call time/);
  assert.throws(() => checkOperations(register, [read(1, Number.NaN, 4)]), /not finite/);
  assert.throws(() => checkOperations(register, [], { stepsMax: -1 }), /stepsMax/);
});

handWritten.run();

// --- Hand-written key/value histories ------------------------------------------------------------

const keyValue = suite('linearizability: key/value model');

keyValue('put, append, get and rm, one key', () => {
  assert.is(
    kvVerdict([
      kv('put', 'a', 'x', 0, 1),
      kv('append', 'a', 'y', 2, 3),
      kv('get', 'a', undefined, 4, 5, 'xy'),
      kv('rm', 'a', undefined, 6, 7),
      kv('get', 'a', undefined, 8, 9, ''),
    ]),
    'ok',
  );
  assert.is(kvVerdict([kv('append', 'a', 'y', 0, 1), kv('get', 'a', undefined, 2, 3, 'yy')]), 'illegal');
  assert.is(kvVerdict([kv('put', 'a', 'x', 0, 1), kv('get', 'a', undefined, 2, 3, '')]), 'illegal');
});

keyValue('a stale read of a key is illegal; concurrent appends may land in either order', () => {
  const appends = [kv('append', 'a', 'x', 0, 5), kv('append', 'a', 'y', 0, 5)];
  assert.is(kvVerdict([...appends, kv('get', 'a', undefined, 6, 7, 'yx')]), 'ok');
  assert.is(kvVerdict([...appends, kv('get', 'a', undefined, 6, 7, 'xy')]), 'ok');
  assert.is(kvVerdict([...appends, kv('get', 'a', undefined, 6, 7, 'x')]), 'illegal');
});

keyValue('partitions by key are independent', () => {
  // Key a's history is fine; key b's has a stale read, and the failure names b's partition.
  const ops = [
    kv('put', 'a', '1', 0, 1),
    kv('put', 'b', '1', 0, 1),
    kv('get', 'a', undefined, 2, 3, '1'),
    kv('get', 'b', undefined, 2, 3, ''),
  ];
  const result = checkOperations(kvModel(), ops);
  assert.is(result.result, 'illegal');
  assert.is(result.partitions, 2);
  assert.is(result.failedPartition, 1);
  assert.ok(result.longestLinearizedPrefix?.every((op) => op.input.key === 'b'));
  // The same values on different keys do not interfere.
  assert.is(kvVerdict([kv('put', 'a', '1', 0, 1), kv('get', 'b', undefined, 2, 3, '')]), 'ok');
});

keyValue('a missing key reads as "" by default, and as ENOENT (undefined) with missing: undefined', () => {
  const missingRead = (value: string | undefined): KvOperation[] => [kv('get', 'a', undefined, 0, 1, value)];
  assert.is(kvVerdict(missingRead('')), 'ok');
  assert.is(kvVerdict(missingRead(undefined)), 'ok');
  assert.is(kvVerdict(missingRead(''), 'undefined'), 'illegal');
  assert.is(kvVerdict(missingRead(undefined), 'undefined'), 'ok');
  const putEmpty = kv('put', 'a', '', 0, 1);
  assert.is(kvVerdict([putEmpty, kv('get', 'a', undefined, 2, 3, '')], 'undefined'), 'ok');
  assert.is(kvVerdict([putEmpty, kv('get', 'a', undefined, 2, 3, undefined)], 'undefined'), 'illegal');
  const removed = [kv('put', 'a', 'x', 0, 1), kv('rm', 'a', undefined, 2, 3)];
  assert.is(kvVerdict([...removed, kv('get', 'a', undefined, 4, 5, undefined)], 'undefined'), 'ok');
  assert.is(kvVerdict([...removed, kv('get', 'a', undefined, 4, 5, '')], 'undefined'), 'illegal');
});

keyValue('an unknown-outcome put may or may not have happened', () => {
  const put = kv('put', 'a', 'x', 0, UNKNOWN);
  assert.is(kvVerdict([put, kv('get', 'a', undefined, 2, 3, 'x')]), 'ok');
  assert.is(kvVerdict([put, kv('get', 'a', undefined, 2, 3, '')]), 'ok');
  assert.is(
    kvVerdict([put, kv('get', 'a', undefined, 2, 3, 'x'), kv('get', 'a', undefined, 4, 5, '')]),
    'illegal',
  );
});

keyValue.run();

// --- Against a brute-force search ----------------------------------------------------------------

/**
 * The definition, by exhaustion: some order of all completed operations, plus any subset of the
 * unknown-outcome ones, that respects real time and that the model accepts.
 */
function bruteForce(ops: RegisterOp[]): boolean {
  const used = new Array<boolean>(ops.length).fill(false);
  const search = (state: RegisterValue): boolean => {
    if (ops.every((op, i) => used[i] || op.return === UNKNOWN)) return true;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as RegisterOp;
      if (used[i]) continue;
      // op may go next only if no unplaced operation returned before op was called.
      if (ops.some((other, j) => !used[j] && j !== i && other.return < op.call)) continue;
      const stepped = register.step(state, op.input, op.output);
      if (!stepped.ok) continue;
      used[i] = true;
      const found = search(stepped.state);
      used[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search(register.init());
}

const registerValue = fc.constantFrom<RegisterValue>(null, 0, 1, 2);
const registerOp = fc
  .record({
    kind: fc.constantFrom('read', 'write', 'cas'),
    value: registerValue,
    to: fc.constantFrom(0, 1, 2),
    ok: fc.boolean(),
    call: fc.integer({ min: 0, max: 20 }),
    length: fc.integer({ min: 0, max: 8 }),
    unknown: fc.integer({ min: 0, max: 6 }),
  })
  .map(({ kind, value, to, ok, call, length, unknown }): RegisterOp => {
    const ret = unknown === 0 && kind !== 'read' ? UNKNOWN : call + length;
    if (kind === 'read') return read(value, call, ret);
    if (kind === 'write') return write(value ?? 0, call, ret);
    return cas(value, to, ret === UNKNOWN ? undefined : ok, call, ret);
  });

const property = suite('linearizability: agrees with brute force');

property('random small register histories', () => {
  let linearizable = 0;
  fc.assert(
    fc.property(fc.array(registerOp, { minLength: 0, maxLength: 7 }), (ops) => {
      const expected = bruteForce(ops);
      if (expected) linearizable++;
      assert.is(checkOperations(register, ops).result, expected ? 'ok' : 'illegal');
    }),
    { seed: 20240607, numRuns: 600 },
  );
  // The generator must exercise both verdicts for the agreement to mean anything.
  assert.ok(linearizable > 60 && linearizable < 540, `${linearizable} of 600 linearizable`);
});

property.run();

// --- Parsers -------------------------------------------------------------------------------------

const parsers = suite('linearizability: history parsers');

parsers('EDN values', () => {
  assert.equal(parseEdn('nil'), null);
  assert.equal(parseEdn('[1 4]'), [1, 4]);
  assert.equal(parseEdn('"a \\"b\\"\\n"'), 'a "b"\n');
  assert.equal(parseEdn(':timed-out'), { keyword: 'timed-out' });
  assert.equal(
    parseEdn('{:a 1, :b "x"}'),
    new Map<string, unknown>([
      ['a', 1],
      ['b', 'x'],
    ]),
  );
  assert.throws(() => parseEdn('{:a 1'), /end of input/);
  assert.throws(() => parseEdn('[1 2] 3'), /unexpected/);
});

parsers('kv EDN lines: pairing, unknown outcomes and failures', () => {
  const text = [
    '{:process 0, :type :invoke, :f :put, :key "k", :value "x"}',
    '{:process 1, :type :invoke, :f :get, :key "k", :value nil}',
    '{:process 0, :type :ok, :f :put, :key "k", :value "x"}',
    '{:process 1, :type :ok, :f :get, :key "k", :value "x"}',
    '{:process 2, :type :invoke, :f :append, :key "k", :value "y"}',
    '{:process 3, :type :invoke, :f :append, :key "k", :value "z"}',
    '{:process 2, :type :info, :f :append, :key "k", :value "y"}',
    '{:process 3, :type :fail, :f :append, :key "k", :value "z"}',
    '{:process 4, :type :invoke, :f :get, :key "k", :value nil}',
    '',
  ].join('\n');
  const ops = parseJepsenKvHistory(text, 'inline.txt');
  assert.equal(ops, [
    {
      clientId: 0,
      input: { op: 'put', key: 'k', value: 'x' },
      call: 0,
      output: { value: undefined },
      return: 2,
    },
    { clientId: 1, input: { op: 'get', key: 'k' }, call: 1, output: { value: 'x' }, return: 3 },
    {
      clientId: 2,
      input: { op: 'append', key: 'k', value: 'y' },
      call: 4,
      output: undefined,
      return: UNKNOWN,
    },
  ]);
});

parsers('etcd log lines: tabs or spaces, :fail, :info and chatter', () => {
  const text = [
    'INFO  jepsen.core - Worker 0 starting',
    'INFO  jepsen.util - 0\t:invoke\t:write\t1',
    'INFO  jepsen.util - 0\t:ok\t:write\t1',
    'INFO  jepsen.util - 1   :invoke :cas    [1 2]',
    'INFO  jepsen.util - 2   :invoke :read   nil',
    'INFO  jepsen.util - :nemesis\t:info\t:start\tnil',
    'INFO  jepsen.util - 1   :fail   :cas    [1 2]',
    'INFO  jepsen.util - 2   :fail   :read   :timed-out',
    'INFO  jepsen.util - 3\t:invoke\t:write\t4',
    'INFO  jepsen.util - 3\t:info\t:write\t:timed-out',
    'INFO  jepsen.util - 4\t:invoke\t:read\tnil',
    'INFO  jepsen.util - 4\t:ok\t:read\t1',
  ].join('\n');
  const ops = parseJepsenEtcdLog(text, 'inline.log');
  assert.equal(ops, [
    { clientId: 0, input: { op: 'write', value: 1 }, call: 1, output: { ok: true }, return: 2 },
    { clientId: 1, input: { op: 'cas', from: 1, to: 2 }, call: 3, output: { ok: false }, return: 6 },
    { clientId: 3, input: { op: 'write', value: 4 }, call: 8, output: undefined, return: UNKNOWN },
    { clientId: 4, input: { op: 'read' }, call: 10, output: { ok: true, value: 1 }, return: 11 },
  ]);
  assert.is(parseJepsenEtcdLog(text, 'inline.log', { failedCas: 'drop' }).length, 3);
  assert.equal(parseJepsenEtcdLog('', 'empty.log'), []);
});

parsers('malformed lines throw, naming the file and line', () => {
  const expectError = (run: () => unknown, pattern: RegExp): void => {
    try {
      run();
    } catch (error) {
      assert.instance(error, HistoryParseError);
      assert.match((error as Error).message, pattern);
      return;
    }
    assert.unreachable('expected a HistoryParseError');
  };
  expectError(() => parseJepsenKvHistory('{:process 0, :type :invoke', 'h.txt'), /^h\.txt:1: malformed EDN/);
  expectError(
    () => parseJepsenKvHistory('\n{:process 0, :type :ok, :f :get, :key "k", :value ""}', 'h.txt'),
    /^h\.txt:2: .*no pending invocation/,
  );
  expectError(
    () =>
      parseJepsenKvHistory(
        '{:process 0, :type :invoke, :f :get, :key "k", :value nil}\n{:process 0, :type :invoke, :f :get, :key "k", :value nil}',
        'h.txt',
      ),
    /^h\.txt:2: process 0 invokes while its invocation on line 1 is pending/,
  );
  expectError(
    () => parseJepsenKvHistory('{:process 0, :type :invoke, :f :frob, :key "k", :value nil}', 'h.txt'),
    /^h\.txt:1: unknown :f :frob/,
  );
  expectError(
    () => parseJepsenEtcdLog('INFO  jepsen.util - 0\t:invoke\t:cas\t[1]', 'e.log'),
    /^e\.log:1: bad :cas/,
  );
  expectError(
    () => parseJepsenEtcdLog('INFO  jepsen.util - 0\t:begin\t:read\tnil', 'e.log'),
    /^e\.log:1: expected/,
  );
  expectError(
    () =>
      parseJepsenEtcdLog(
        'INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:write\t1',
        'e.log',
      ),
    /^e\.log:2: :ok :write completes process 0's :read \(line 1\)/,
  );
  expectError(() => parseEtcdExpected('0 true\n1 maybe', 'x.txt'), /^x\.txt:2: expected/);
  expectError(() => parseEtcdExpected('0 true\n0 false', 'x.txt'), /^x\.txt:2: duplicate/);
});

parsers.run();
