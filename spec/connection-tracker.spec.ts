// Ceph's ConnectionTracker (src/mon/ConnectionTracker.cc) as machines/connection-tracker.ts has it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createTracker,
  increaseEpoch,
  myReport,
  receivePeerReport,
  remapTracker,
  reportConnection,
  resetTracker,
  totalScore,
} from '../machines/connection-tracker.ts';
import type { MonMap } from '../transport/messages.ts';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} ≈ ${b}`);

test("report_live / report_dead: Ceph's formula, starting at 1, clamped to [0, 1], a version each", () => {
  const h = 5;
  let t = createTracker(0, h);
  t = reportConnection(t, 1, false, 1, 10).tracker;
  // 1 × (1 − 1/10) − 1/10
  close(myReport(t).peers[0]?.score as number, 0.8);
  assert.is(myReport(t).peers[0]?.alive, false);
  t = reportConnection(t, 1, true, 2, 10).tracker;
  // 0.8 × (1 − 2/10) + 2/10
  close(myReport(t).peers[0]?.score as number, 0.84);
  assert.is(myReport(t).peers[0]?.alive, true);
  assert.is(t.version, 2);
  assert.is(myReport(t).version, 2);
  t = reportConnection(t, 2, false, 100, 10).tracker;
  assert.is(myReport(t).peers[1]?.score, 0);
  t = reportConnection(t, 2, true, 100, 10).tracker;
  assert.is(myReport(t).peers[1]?.score, 1);
  // Every persist_interval-th version asks to be persisted.
  let persisted = 0;
  for (let i = 0; i < 16; i++) {
    const r = reportConnection(t, 1, true, 1, 10);
    t = r.tracker;
    if (r.persist) persisted++;
  }
  assert.is(t.version, 20);
  assert.is(persisted, 2);
});

test('increase_epoch resets the version; receive_peer_report takes newer (epoch, version) only, never about me', () => {
  let a = createTracker(0, 10);
  let b = createTracker(1, 10);
  b = reportConnection(b, 0, true, 1, 10).tracker;
  b = reportConnection(b, 2, false, 1, 10).tracker;
  a = receivePeerReport(a, b, 3);
  assert.equal(
    a.reports.find((r) => r.rank === 1),
    myReport(b),
  );
  // An older report of b does not replace the newer one.
  const older = createTracker(1, 10);
  assert.equal(receivePeerReport(a, older, 3), a);
  // A report about me from someone else is never taken.
  const forged = {
    ...b,
    reports: [{ rank: 0, epoch: 99, version: 99, peers: [{ rank: 1, score: 0, alive: false }] }],
  };
  assert.equal(myReport(receivePeerReport(a, forged, 3)), myReport(a));
  // Ranks outside the map are left out.
  const stranger = { ...b, reports: [{ rank: 7, epoch: 99, version: 1, peers: [] }] };
  assert.not.ok(receivePeerReport(a, stranger, 3).reports.some((r) => r.rank === 7));
  b = increaseEpoch(b, 5);
  assert.equal([b.epoch, b.version, myReport(b).epoch, myReport(b).version], [5, 0, 5, 0]);
  assert.equal(increaseEpoch(b, 4), b);
});

test('get_total_connection_score: the sum over reports that have the link up; a down link counts 0', () => {
  let t = createTracker(0, 10);
  t = reportConnection(t, 1, true, 0, 10).tracker;
  t = reportConnection(t, 2, true, 0, 10).tracker;
  const peer = (rank: number, scores: [number, number, boolean][]) => ({
    rank,
    epoch: 1,
    version: 1,
    peers: scores.map(([r, score, alive]) => ({ rank: r, score, alive })),
  });
  t = receivePeerReport(
    t,
    {
      ...t,
      rank: 1,
      reports: [
        peer(1, [
          [0, 0.5, true],
          [2, 0.25, false],
        ]),
        peer(2, [
          [0, 0.75, true],
          [1, 0.5, true],
        ]),
      ],
    },
    3,
  );
  assert.equal(totalScore(t, 0), { score: 1.25, live: 2 });
  assert.equal(totalScore(t, 1), { score: 1.5, live: 2 });
  assert.equal(totalScore(t, 2), { score: 1, live: 1 });
});

test('a new monmap moves ranks with names and drops removed monitors; reset forgets every report', () => {
  const map = (names: string[]): MonMap => ({
    fsid: '11111111-2222-3333-4444-555555555555',
    epoch: 1,
    mons: names.map((name, rank) => ({ name, rank, addr: `10.0.0.${rank + 1}:6789` })),
    electionStrategy: 'connectivity',
    disallowedLeaders: [],
    created: 0,
    lastChanged: 0,
  });
  let t = createTracker(2, 10);
  t = reportConnection(t, 0, true, 0, 10).tracker;
  t = reportConnection(t, 1, false, 1, 10).tracker;
  const moved = remapTracker(t, map(['a', 'b', 'c']), map(['b', 'c']), 1);
  assert.is(moved.rank, 1);
  assert.equal(
    myReport(moved).peers.map((p) => [p.rank, p.alive]),
    [[0, false]],
  );
  const reset = resetTracker(moved);
  assert.equal(reset.reports, [{ rank: 1, epoch: moved.epoch, version: moved.version, peers: [] }]);
});

test.run();
