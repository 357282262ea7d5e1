// The table of remembered answers (machines/sessions.ts) against the plainest model of it: a map
// from `client#tid` to the reply, and each version's record as its list of keys. The table keeps
// answers per client in tid-ordered arrays, erases in place and compacts, so every sequence of
// records added, replaced, erased and cleared — in any order, with tids out of order, repeated
// keys and keys that are not `client#tid` — must answer every lookup as the model does.
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AppliedOp } from '../machines/effects.ts';
import {
  type AnsweredRecord,
  admit,
  answerOf,
  applySessionOps,
  createSessions,
  recordAnswers,
  requestKey,
  sessionPrefix,
  sessionsBootFrom,
} from '../machines/sessions.ts';

const prefix = 'counter';
const utf8 = new TextEncoder();
const clients = ['client.a', 'client.b'];
const odd = ['client.a#', 'client.a#01', 'nohash', 'client.b#-1', 'client.b#1.5'];

const answerArb = fc.record({
  key: fc.oneof(
    {
      weight: 9,
      arbitrary: fc.tuple(fc.constantFrom(...clients), fc.nat(30)).map(([c, t]) => requestKey(c, t)),
    },
    { weight: 1, arbitrary: fc.constantFrom(...odd) },
  ),
  r: fc.constantFrom(0, 0, 0, -2, -22),
  rs: fc.constantFrom('', '', 'set a', 'added 2'),
});

const opArb = fc.oneof(
  // The leader remembers a version's answers as it answers them…
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('record' as const),
      version: fc.integer({ min: 1, max: 12 }),
      answers: fc.array(answerArb, { maxLength: 16 }),
    }),
  },
  // …every monitor applies the committed record, or its erasure…
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('put' as const),
      version: fc.integer({ min: 1, max: 12 }),
      answers: fc.array(answerArb, { maxLength: 16 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('erase' as const), version: fc.integer({ min: 1, max: 12 }) }),
  },
  // …and a store sync starts over.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
);

test('the table answers every lookup as a map of client#tid would, through any records, erasures and syncs', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
      const sessions = createSessions();
      const model = new Map<string, { r: number; rs: string }>();
      const records = new Map<number, string[]>();
      const removeRecord = (version: number) => {
        for (const key of records.get(version) ?? []) model.delete(key);
        records.delete(version);
      };
      for (const op of ops) {
        if (op.kind === 'clear') {
          model.clear();
          records.clear();
          const applied: AppliedOp[] = [
            { op: 'erase_range', prefix: sessionPrefix, start: '', end: '\uffff' },
          ];
          applySessionOps(sessions, prefix, applied);
          continue;
        }
        if (op.kind === 'erase') {
          removeRecord(op.version);
          applySessionOps(sessions, prefix, [
            { op: 'erase', prefix: sessionPrefix, key: `${prefix}_${op.version}` },
          ]);
          continue;
        }
        const answered: AnsweredRecord[] = op.answers.map((a) => [a.key, a.r, a.rs, 1_000]);
        if (op.kind === 'put') {
          // A version already remembered (the leader's own) is not parsed again.
          if (!records.has(op.version)) {
            for (const [key, r, rs] of answered) model.set(key, { r, rs });
            records.set(
              op.version,
              answered.map((a) => a[0]),
            );
          }
          applySessionOps(sessions, prefix, [
            {
              op: 'put',
              prefix: sessionPrefix,
              key: `${prefix}_${op.version}`,
              value: utf8.encode(JSON.stringify(answered)),
            },
          ]);
          continue;
        }
        if (answered.length === 0) continue;
        removeRecord(op.version);
        for (const [key, r, rs] of answered) model.set(key, { r, rs });
        records.set(
          op.version,
          answered.map((a) => a[0]),
        );
        recordAnswers(sessions, op.version, answered);
      }
      for (const client of clients)
        for (let tid = 0; tid <= 31; tid++) {
          const got = answerOf(sessions, client, tid);
          const want = model.get(requestKey(client, tid));
          assert.equal(got && { r: got.r, rs: got.rs }, want, `${client}#${tid}`);
        }
      assert.is(sessions.answerCount, model.size, 'the count mon_session_answers_max checks');
      const full = admit(sessions, { client: 'client.z', deadline: 2_000 }, 1_000, {
        deadlineMaxMs: 300_000,
        answersMax: model.size,
      });
      assert.is(full?.r, -11, 'a full table refuses new updates');
    }),
    { numRuns: 1000 },
  );
});

test('a boot from the store remembers what the records hold, odd keys included', () => {
  const entries: [string, Uint8Array][] = [
    [`${prefix}_clock`, new Uint8Array(8)],
    [
      `${prefix}_3`,
      utf8.encode(
        JSON.stringify([
          ['client.a#7', 0, 'set k', 5_000],
          ['nohash', -2, 'gone', 5_000],
        ]),
      ),
    ],
    [`${prefix}_2`, utf8.encode(JSON.stringify([['client.a#9', 0, '', 5_000]]))],
  ];
  const sessions = createSessions(sessionsBootFrom(prefix, entries));
  assert.equal(answerOf(sessions, 'client.a', 7), { r: 0, rs: 'set k' });
  assert.equal(answerOf(sessions, 'client.a', 9), { r: 0, rs: '' });
  assert.is(answerOf(sessions, 'client.a', 8), undefined);
  assert.is(sessions.answerCount, 3);
  applySessionOps(sessions, prefix, [{ op: 'erase', prefix: sessionPrefix, key: `${prefix}_3` }]);
  assert.is(answerOf(sessions, 'client.a', 7), undefined);
  assert.equal(answerOf(sessions, 'client.a', 9), { r: 0, rs: '' });
  assert.is(sessions.answerCount, 1);
});

test.run();
