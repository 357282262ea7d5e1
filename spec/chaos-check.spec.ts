// The chaos run's checks on small written histories (chaos/check.ts), no lab needed: how unknown
// writes reach the linearizability checker, and a write the client was told failed whose value
// was read (issue 16, soak finding 5: a starting monitor's EACCES taken as a final failure).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { analyze, toOperations } from '../chaos/check.ts';
import type { OpRecord } from '../chaos/workload.ts';

const test = suite('chaos-check');

let nextProcess = 0;
/** One op on `k`, invoked at `at` s and completed `took` s later. */
function op(
  type: OpRecord['type'],
  at: number,
  took: number,
  outcome: OpRecord['outcome'],
  extra: { value?: string; read?: string | null; final?: boolean; error?: string } = {},
): OpRecord {
  const invokeMs = at * 1000;
  return {
    process: nextProcess++,
    type,
    key: 'k',
    invokeMs,
    completeMs: invokeMs + took * 1000,
    deadlineMs: invokeMs + 5000,
    outcome,
    ...extra,
  };
}

const check = (history: OpRecord[]) => analyze(history, [], { workloadStartMs: 0, workloadEndMs: 100_000 });

test('an unknown set whose value nobody read is left out; one that was read ends at its first read', () => {
  const unread = op('set', 1, 5, 'unknown', { value: 'never-seen' });
  const seen = op('set', 2, 5, 'unknown', { value: 'seen' });
  const reader = op('get', 3, 0.5, 'ok', { read: 'seen' });
  const later = op('get', 4, 0.5, 'ok', { read: 'seen' });
  const { ops, origin } = toOperations([unread, seen, reader, later]);
  assert.equal(
    ops.map((o) => origin.get(o)),
    [seen, reader, later],
  );
  const write = ops[0];
  assert.is(write?.return, reader.completeMs, 'the write returns, for the checker, when its first read did');
  assert.is(write?.output, undefined, 'its outcome stays unknown');
  assert.is(check([unread, seen, reader, later]).linearizable, 'ok');
});

test('a read of an unknown write that returned before the write was invoked is still an anomaly', () => {
  const early = op('get', 1, 0.5, 'ok', { read: 'late' });
  const write = op('set', 2, 5, 'unknown', { value: 'late' });
  assert.is(check([early, write]).linearizable, 'illegal');
});

test('a write the client was told failed, whose value a read returned, is named — and breaks linearizability', () => {
  const failed = op('set', 1, 1, 'failed', {
    value: 'ghost',
    error: 'r=-13 authentication failed for client.admin',
  });
  const reader = op('get', 1.5, 2, 'ok', { read: 'ghost' });
  const analysis = check([failed, reader]);
  assert.is(analysis.failedButRead.length, 1);
  assert.match(analysis.failedButRead[0]?.write ?? '', /set k "ghost" -> failed \(r=-13/);
  assert.match(analysis.failedButRead[0]?.read ?? '', /get k -> "ghost"/);
  assert.is(analysis.linearizable, 'illegal', 'a failed write had no effect, so nothing explains the read');
  // Counted as unknown instead (what MonClient should have said), the history is linearizable.
  assert.is(check([{ ...failed, outcome: 'unknown' }, reader]).linearizable, 'ok');
});

test('an acknowledged write that the final read does not explain is lost', () => {
  const acked = op('set', 1, 0.1, 'ok', { value: 'kept' });
  const final = op('get', 10, 0.1, 'ok', { read: null, final: true });
  const analysis = check([acked, final]);
  assert.is(analysis.lostWrites.length, 1);
  assert.is(analysis.linearizable, 'illegal');
});

test.run();
