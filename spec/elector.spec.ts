// The Elector's rules, one by one, as Ceph's ElectionLogic states them (seed 003).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { electorMachine, initialEpoch } from '../machines/elector.ts';
import type { ConnectionTracker, MonElection, MonMap } from '../transport/messages.ts';
import { runChild } from './support/child-harness.ts';

const fsid = '11111111-2222-3333-4444-555555555555';
const monmap = (size: number): MonMap => ({
  fsid,
  epoch: 1,
  mons: Array.from({ length: size }, (_, rank) => ({
    name: 'abcdefg'[rank] as string,
    rank,
    addr: `127.0.0.1:${6789 + rank}`,
  })),
  electionStrategy: 'classic',
  disallowedLeaders: [],
  created: 0,
  lastChanged: 0,
});

const TIMEOUT = 1000;
function elector(rank: number, size = 5, persistedEpoch = 0, hasEverJoined = true) {
  return runChild(electorMachine, {
    rank,
    monmap: monmap(size),
    persistedEpoch,
    hasEverJoined,
    electionTimeoutMs: TIMEOUT,
    deferExtraMs: 200,
  });
}

function election(from: number, op: MonElection['op'], epoch: number, extra: Partial<MonElection> = {}) {
  return {
    type: 'mon.election',
    from: `mon.${'abcdefg'[from]}`,
    msg: { type: 'mon.election', op, fsid, epoch, monmapEpoch: 1, quorum: [], strategy: 'classic', ...extra },
  };
}

const epochOf = (h: ReturnType<typeof elector>) =>
  (h.child().getSnapshot().context as { epoch: number }).epoch;
const stateOf = (h: ReturnType<typeof elector>) => String(h.child().getSnapshot().value);
const persistedEpochs = (h: ReturnType<typeof elector>) =>
  h.io.flatMap((e) =>
    e.writes
      .filter((w) => w.op === 'put_number' && w.key === 'election_epoch')
      .map((w) => (w as { value: number }).value),
  );

test('init: a missing epoch starts at 1, an odd persisted epoch moves to the next even one and is persisted', () => {
  assert.is(initialEpoch(0), 1);
  assert.is(initialEpoch(5), 6);
  assert.is(initialEpoch(8), 8);
  const h = elector(1, 5, 5);
  assert.is(epochOf(h), 6);
  assert.equal(persistedEpochs(h), [6]);
  h.stop();
});

test('start: bumps to an odd epoch, persists it, proposes to every other rank, acks itself', () => {
  const h = elector(2, 5, 4);
  h.takeMessages();
  h.send({ type: 'elector.start' });
  assert.is(epochOf(h), 5);
  assert.is(stateOf(h), 'electingMe');
  const msgs = h.takeMessages();
  assert.equal(msgs.map((m) => `${m.to} ${m.op} ${m.msg.epoch}`).sort(), [
    'mon.a propose 5',
    'mon.b propose 5',
    'mon.d propose 5',
    'mon.e propose 5',
  ]);
  assert.ok(persistedEpochs(h).includes(5));
  assert.ok(h.takeParent().some((e) => e.type === 'elector.join_election' && e.epoch === 5));
  h.stop();
});

test('propose from a higher epoch: bump to it and defer to the better rank (ack)', () => {
  const h = elector(3, 5, 4);
  h.send(election(1, 'propose', 9));
  assert.is(epochOf(h), 9);
  assert.is(stateOf(h), 'deferring');
  const acks = h.takeMessages().filter((m) => m.op === 'ack');
  assert.equal(
    acks.map((m) => `${m.to} ${m.msg.epoch}`),
    ['mon.b 9'],
  );
  h.stop();
});

test('propose from a worse rank: I outrank it, so I stand myself', () => {
  const h = elector(0, 5, 4);
  h.send(election(3, 'propose', 5));
  assert.is(stateOf(h), 'electingMe');
  const proposes = h.takeMessages().filter((m) => m.op === 'propose');
  assert.is(proposes.length, 4);
  h.stop();
});

test('defer: having acked rank 1, a propose from rank 2 is ignored and one from rank 0 is acked', () => {
  const h = elector(3, 5, 4);
  h.send(election(1, 'propose', 5));
  h.takeMessages();
  h.send(election(2, 'propose', 5));
  assert.equal(h.takeMessages(), []);
  h.send(election(0, 'propose', 5));
  assert.equal(
    h.takeMessages().map((m) => `${m.to} ${m.op}`),
    ['mon.a ack'],
  );
  h.stop();
});

test('lower epoch from outside a stable quorum calls a new election; from inside it is ignored', () => {
  const h = elector(1, 5, 4);
  // Win a quorum {1, 2} ... as a peon of rank 0: victory at epoch 6 after electing at 5.
  h.send(election(0, 'propose', 5));
  h.send(election(0, 'victory', 6, { quorum: [0, 1, 2] }));
  assert.is(epochOf(h), 6);
  assert.is(stateOf(h), 'stable');
  h.takeMessages();
  h.send(election(2, 'propose', 3)); // a quorum member with an old epoch: stale
  assert.equal(h.takeMessages(), []);
  h.send(election(4, 'propose', 3)); // outside the quorum: it just started, let it rejoin
  assert.is(epochOf(h), 7);
  const sent = h.takeMessages();
  assert.ok(sent.some((m) => m.op === 'propose' && m.msg.epoch === 7));
  h.stop();
});

test('victory at once when every monitor acked', () => {
  const h = elector(0, 3, 4);
  h.send({ type: 'elector.start' });
  h.send(election(1, 'ack', 5));
  assert.is(stateOf(h), 'electingMe');
  h.send(election(2, 'ack', 5));
  assert.is(stateOf(h), 'stable');
  assert.is(epochOf(h), 6);
  const win = h.takeParent().find((e) => e.type === 'elector.win');
  assert.equal(win, { type: 'elector.win', epoch: 6, quorum: [0, 1, 2] });
  const victories = h.takeMessages().filter((m) => m.op === 'victory');
  assert.equal(victories.map((m) => m.to).sort(), ['mon.b', 'mon.c']);
  h.stop();
});

test('victory on expiry with a majority of acks; no victory before the timeout', () => {
  const h = elector(0, 5, 4);
  h.send({ type: 'elector.start' });
  h.send(election(1, 'ack', 5));
  h.send(election(3, 'ack', 5));
  h.advance(TIMEOUT - 1);
  assert.is(stateOf(h), 'electingMe');
  h.advance(1);
  assert.is(epochOf(h), 6);
  assert.equal(
    h.takeParent().find((e) => e.type === 'elector.win'),
    { type: 'elector.win', epoch: 6, quorum: [0, 1, 3] },
  );
  h.stop();
});

test('expiry without a majority starts again (joined before) or bootstraps (never joined)', () => {
  const joined = elector(0, 5, 4, true);
  joined.send({ type: 'elector.start' });
  joined.send(election(1, 'ack', 5));
  joined.advance(TIMEOUT);
  // A fresh odd epoch: acks given in epoch 5 cannot count in the restarted election (paxmon's
  // departure from Ceph; see start() in machines/elector.ts).
  assert.is(epochOf(joined), 7);
  assert.is(stateOf(joined), 'electingMe');
  joined.stop();
  const fresh = elector(0, 5, 4, false);
  fresh.send({ type: 'elector.start' });
  fresh.advance(TIMEOUT);
  assert.ok(fresh.takeParent().some((e) => e.type === 'elector.reset_election'));
  fresh.stop();
});

test('deferring waits the election timeout plus the extra time for the victory', () => {
  const h = elector(2, 5, 4);
  h.send(election(0, 'propose', 5));
  h.takeMessages();
  h.advance(TIMEOUT + 199);
  assert.is(stateOf(h), 'deferring');
  h.advance(1);
  assert.is(stateOf(h), 'electingMe');
  assert.ok(h.takeMessages().some((m) => m.op === 'propose'));
  h.stop();
});

test('victory must be for my epoch + 1: a matching one makes me peon, a mismatch bumps and restarts', () => {
  const ok = elector(2, 5, 4);
  ok.send(election(0, 'propose', 5));
  ok.send(election(0, 'victory', 6, { quorum: [0, 1, 2] }));
  assert.equal(
    ok.takeParent().find((e) => e.type === 'elector.lose'),
    { type: 'elector.lose', epoch: 6, quorum: [0, 1, 2], leader: 0 },
  );
  ok.stop();
  const behind = elector(2, 5, 2);
  behind.send(election(0, 'victory', 8, { quorum: [0, 1, 2] }));
  assert.is(epochOf(behind), 9);
  assert.is(stateOf(behind), 'electingMe');
  assert.not.ok(behind.takeParent().some((e) => e.type === 'elector.lose'));
  behind.stop();
});

test('an ack from a newer epoch bumps to it and stands again', () => {
  const h = elector(0, 5, 4);
  h.send({ type: 'elector.start' });
  h.send(election(1, 'ack', 9));
  assert.is(epochOf(h), 9);
  assert.is(stateOf(h), 'electingMe');
  h.stop();
});

test('messages with a wrong fsid, an unknown rank or another strategy are dropped', () => {
  const h = elector(2, 5, 4);
  h.takeMessages();
  h.send({
    ...election(0, 'propose', 9),
    msg: { ...election(0, 'propose', 9).msg, fsid: '99999999-2222-3333-4444-555555555555' },
  });
  h.send({ ...election(0, 'propose', 9), from: 'mon.zz' });
  assert.is(epochOf(h), 4);
  h.send(election(0, 'propose', 9, { strategy: 'connectivity' }));
  assert.is(epochOf(h), 4);
  assert.equal(
    h.takeMessages().map((m) => m.op),
    ['nak'],
  );
  h.stop();
});

test('a majority of acks wins at once when every other monitor is known down (its session reset)', () => {
  const h = elector(0, 3, 4);
  h.send({ type: 'elector.start' });
  h.send(election(1, 'ack', 5));
  assert.is(stateOf(h), 'electingMe', 'c may still answer: wait');
  h.send({ type: 'elector.down', ranks: [2] });
  assert.is(stateOf(h), 'stable');
  assert.equal(
    h.takeParent().find((e) => e.type === 'elector.win'),
    { type: 'elector.win', epoch: 6, quorum: [0, 1] },
  );
  h.stop();
  // Known down first, then the ack: the same.
  const g = elector(0, 3, 4);
  g.send({ type: 'elector.down', ranks: [2] });
  g.send({ type: 'elector.start' });
  g.send(election(1, 'ack', 5));
  assert.is(stateOf(g), 'stable');
  g.stop();
  // A minority never wins early, whatever is down.
  const m = elector(0, 5, 4);
  m.send({ type: 'elector.down', ranks: [2, 3, 4] });
  m.send({ type: 'elector.start' });
  m.send(election(1, 'ack', 5));
  assert.is(stateOf(m), 'electingMe');
  m.stop();
});

test('a one-monitor monmap wins at once (win_standalone_election)', () => {
  const h = elector(0, 1, 2);
  h.send({ type: 'elector.start' });
  assert.is(epochOf(h), 4);
  assert.is(stateOf(h), 'stable');
  assert.ok(h.takeParent().some((e) => e.type === 'elector.win' && e.epoch === 4));
  h.advance(TIMEOUT * 3);
  assert.is(epochOf(h), 4);
  h.stop();
});

test('every bump is persisted before the messages of that step go out', () => {
  const h = elector(1, 3, 4);
  h.send(election(0, 'propose', 7));
  const step = h.io.find((e) => e.messages.some((m) => (m.msg as MonElection).op === 'ack'));
  assert.ok(step, 'ack sent');
  // The ack travels in the same effect as (or after) the write of epoch 7.
  const index = h.io.indexOf(step as never);
  const written = h.io
    .slice(0, index + 1)
    .some((e) => e.writes.some((w) => w.op === 'put_number' && (w as { value: number }).value === 7));
  assert.ok(written);
  h.stop();
});

// --- disallow and connectivity (ElectionLogic's propose_disallow_handler,
// propose_connectivity_handler, victory_makes_sense; Elector's pings) ------------------------------

function strategyElector(
  rank: number,
  strategy: MonMap['electionStrategy'],
  disallowed: string[] = [],
  scores: ConnectionTracker | null = null,
  size = 5,
) {
  return runChild(electorMachine, {
    rank,
    monmap: { ...monmap(size), electionStrategy: strategy, disallowedLeaders: disallowed },
    persistedEpoch: 4,
    hasEverJoined: true,
    electionTimeoutMs: TIMEOUT,
    deferExtraMs: 200,
    connectivityScores: scores,
    tracking: {
      pingTimeoutMs: 400,
      pingDivisor: 2,
      halfLifeS: 5,
      persistInterval: 10,
      ignoreProposeMargin: 0.0005,
    },
  });
}
const as = (strategy: MonMap['electionStrategy']) => ({ strategy });

test('disallow: nobody acks a disallowed proposer, not even another disallowed monitor', () => {
  // a, b, c disallowed: b used to ack a (both disallowed, a the lower rank).
  const b = strategyElector(1, 'disallow', ['a', 'b', 'c']);
  b.takeMessages();
  b.send(election(0, 'propose', 5, as('disallow')));
  assert.is(epochOf(b), 5);
  assert.not.ok(
    b.takeMessages().some((m) => m.op === 'ack'),
    'no ack for a disallowed proposer',
  );
  b.stop();
  // An allowed monitor stands instead, even with the higher rank.
  const d = strategyElector(3, 'disallow', ['a', 'b', 'c']);
  d.send(election(0, 'propose', 5, as('disallow')));
  assert.is(stateOf(d), 'electingMe');
  assert.ok(d.takeMessages().some((m) => m.op === 'propose'));
  // …and a disallowed monitor acks an allowed one of higher rank.
  const c = strategyElector(2, 'disallow', ['a', 'b', 'c']);
  c.send(election(3, 'propose', 5, as('disallow')));
  assert.equal(
    c.takeMessages().map((m) => `${m.to} ${m.op}`),
    ['mon.d ack'],
  );
  c.stop();
  d.stop();
});

test('disallow: a victory from a disallowed monitor is refused (bump and stand), one that makes sense is taken', () => {
  const d = strategyElector(3, 'disallow', ['a']);
  d.send(election(1, 'propose', 5, as('disallow')));
  d.send(election(0, 'victory', 6, { ...as('disallow'), quorum: [0, 1, 3] }));
  assert.not.ok(d.takeParent().some((e) => e.type === 'elector.lose'));
  assert.is(stateOf(d), 'electingMe');
  assert.is(epochOf(d), 7);
  d.stop();
  const ok = strategyElector(3, 'disallow', ['a']);
  ok.send(election(1, 'propose', 5, as('disallow')));
  ok.send(election(1, 'victory', 6, { ...as('disallow'), quorum: [1, 2, 3] }));
  assert.ok(ok.takeParent().some((e) => e.type === 'elector.lose' && e.leader === 1));
  ok.stop();
});

/** A tracker of `rank` whose reports give each rank the listed scores (alive) from one other monitor each. */
function scoresFor(rank: number, size: number, score: (r: number) => number): ConnectionTracker {
  // Report of monitor `reporter` about every other rank; one reporter per scored rank is enough.
  const reports = Array.from({ length: size }, (_, reporter) => ({
    rank: reporter,
    epoch: 4,
    version: 1,
    peers: Array.from({ length: size }, (_, r) => r)
      .filter((r) => r !== reporter)
      .map((r) => ({ rank: r, score: score(r) / (size - 1), alive: true })),
  }));
  return { rank, epoch: 4, version: 1, halfLife: 5, reports };
}

test('connectivity: the propose carries the frozen scores, every message my scores; the best scorer wins', () => {
  // Scores: c (rank 2) highest.
  const scores = (rank: number) => scoresFor(rank, 5, (r) => (r === 2 ? 4 : 3));
  const a = strategyElector(0, 'connectivity', [], scores(0));
  a.send({ type: 'elector.start' });
  const proposes = a.takeMessages().filter((m) => m.op === 'propose');
  assert.is(proposes.length, 4);
  const msg = proposes[0]?.msg as MonElection;
  assert.ok(msg.scoring && msg.sharing, 'scoring and sharing');
  // c's propose: a defers (ack with my scores) although c has the higher rank.
  a.send(election(2, 'propose', 7, { ...as('connectivity'), sharing: scores(2), scoring: scores(2) }));
  const ack = a.takeMessages().find((m) => m.op === 'ack');
  assert.is(ack?.to, 'mon.c');
  assert.ok((ack?.msg as MonElection | undefined)?.scoring);
  a.stop();
  // c itself, proposed to by a, stands.
  const c = strategyElector(2, 'connectivity', [], scores(2));
  c.send(election(0, 'propose', 5, { ...as('connectivity'), sharing: scores(0) }));
  assert.is(stateOf(c), 'electingMe');
  c.stop();
});

test('connectivity: ties go to the lower rank; a disallowed monitor scores −1 and gets no ack', () => {
  const even = (rank: number) => scoresFor(rank, 5, () => 3);
  const d = strategyElector(3, 'connectivity', [], even(3));
  d.send(election(1, 'propose', 5, { ...as('connectivity'), sharing: even(1) }));
  assert.equal(
    d
      .takeMessages()
      .filter((m) => m.op === 'ack')
      .map((m) => m.to),
    ['mon.b'],
  );
  d.stop();
  const e = strategyElector(4, 'connectivity', ['a'], even(4));
  e.send(election(0, 'propose', 5, { ...as('connectivity'), sharing: even(0) }));
  assert.not.ok(e.takeMessages().some((m) => m.op === 'ack'));
  assert.is(stateOf(e), 'electingMe');
  e.stop();
});

test('connectivity: a victory from a monitor that scores below me is refused (bump and stand)', () => {
  // b (rank 1) scores 4, a (rank 0) 3: a's victory makes no sense to b.
  const b = strategyElector(
    1,
    'connectivity',
    [],
    scoresFor(1, 5, (r) => (r === 1 ? 4 : 3)),
  );
  b.send(election(0, 'victory', 6, { ...as('connectivity'), quorum: [0, 1, 2] }));
  assert.not.ok(b.takeParent().some((e) => e.type === 'elector.lose'));
  assert.is(stateOf(b), 'electingMe');
  b.stop();
  const c = strategyElector(
    2,
    'connectivity',
    [],
    scoresFor(2, 5, (r) => (r === 1 ? 4 : 3)),
  );
  c.send(
    election(1, 'propose', 5, { ...as('connectivity'), sharing: scoresFor(1, 5, (r) => (r === 1 ? 4 : 3)) }),
  );
  c.send(election(1, 'victory', 6, { ...as('connectivity'), quorum: [1, 2, 3] }));
  assert.ok(c.takeParent().some((e) => e.type === 'elector.lose' && e.leader === 1));
  c.stop();
});

test('connectivity: pings begin with a peer’s first message, every timeout/divisor; no answer for the timeout reports it dead', () => {
  const a = strategyElector(0, 'connectivity', [], null, 3);
  a.takeMessages();
  a.send(election(1, 'propose', 5, { ...as('connectivity'), sharing: scoresFor(1, 3, () => 2) }));
  const pings = () => a.takeMessages().filter((m) => m.type === 'mon.ping');
  assert.equal(
    pings().map((m) => `${m.to} ${m.op} ${m.msg.stamp}`),
    ['mon.b ping 0'],
  );
  const tracker = () =>
    (a.child().getSnapshot().context as { tracker: ConnectionTracker }).tracker.reports.find(
      (r) => r.rank === 0,
    );
  assert.equal(tracker()?.peers, [{ rank: 1, score: 1, alive: true }]);
  // b answers the first ping at 200 ms: alive.
  a.advance(200);
  pings();
  a.send({ type: 'mon.ping', from: 'mon.b', msg: { type: 'mon.ping', op: 'reply', stamp: 0, echo: 200 } });
  // Then silence: 400 ms with no answer (more than the ping timeout) → dead.
  for (let t = 0; t < 600; t += 100) a.advance(100);
  const peer = tracker()?.peers[0];
  assert.is(peer?.alive, false);
  assert.ok((peer?.score ?? 1) < 1);
  // A ping from b is answered with my scores and its stamp echoed.
  a.takeMessages();
  a.send({ type: 'mon.ping', from: 'mon.b', msg: { type: 'mon.ping', op: 'ping', stamp: 1234 } });
  const reply = a.takeMessages().find((m) => m.type === 'mon.ping' && m.op === 'reply');
  assert.is(reply?.msg.echo, 1234);
  assert.ok(reply?.msg.scoring);
  a.stop();
  // Under classic nothing is pinged.
  const classic = strategyElector(0, 'classic', [], null, 3);
  classic.send(election(1, 'propose', 5));
  classic.advance(2000);
  assert.not.ok(classic.takeMessages().some((m) => m.type === 'mon.ping'));
  classic.stop();
});

test.run();
