// The election strategy and disallowed leaders through the monmap (MonmapMonitor::prepare_command)
// and the elector's `connection scores dump|reset`, on a simulated cluster: Ceph's answers and
// error texts, a new monmap epoch per change, and the election that follows it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConnectivityScores } from '../actors/monitor-state.ts';
import { SimCluster } from '../sim/cluster.ts';
import { MemoryStore } from '../storage/memory-store.ts';
import { Transaction } from '../storage/transaction.ts';
import { validate } from '../transport/messages.ts';
import { simClient } from './support/sim-client.ts';

async function cluster(size: number, seed: number) {
  const c = new SimCluster({ size, seed });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(size), 10_000);
  await c.runUntil(() => c.running().every((m) => m.isReadable()), 5_000);
  return c;
}

interface Dump {
  epoch: number;
  election_strategy: string;
  disallowed_leaders: string[];
}

test('mon set election_strategy / mon add|rm disallowed_leader: Ceph’s answers, a new epoch each, and the disallowed monitor stops leading', async () => {
  const c = await cluster(3, 41);
  const client = simClient(c, 'client.admin');
  const dump = async (mon = 'a') => JSON.parse((await client.call(mon, ['mon', 'dump'])).data) as Dump;
  const settle = async (epoch: number) => {
    await c.runUntil(
      () =>
        c.stableQuorum(3) &&
        c.running().every((m) => (m.monStatus() as { monmap: { epoch: number } }).monmap.epoch === epoch),
      20_000,
    );
    await c.runUntil(() => c.running().every((m) => m.isReadable()), 5_000);
  };
  assert.equal((await dump()).election_strategy, 'classic');
  assert.equal((await dump()).disallowed_leaders, []);

  // Under classic nobody can be disallowed (EINVAL, Ceph's text), and unknown words are refused.
  let r = await client.call('b', ['mon', 'add', 'disallowed_leader', 'a']);
  assert.equal([r.r, r.rs], [-22, 'You cannot disallow monitors in your current election mode']);
  r = await client.call('b', ['mon', 'set', 'election_strategy', 'fastest']);
  assert.equal([r.r, r.rs], [-22, 'Invalid command: fastest not in classic|disallow|connectivity']);
  r = await client.call('b', ['mon', 'set', 'election_strategy', 'classic']);
  assert.equal([r.r, r.rs], [0, 'You are already in classic election strategy']);
  assert.is((await dump()).epoch, 1, 'no change, no new epoch');

  r = await client.call('c', ['mon', 'set', 'election_strategy', 'disallow']);
  assert.is(r.r, 0);
  await settle(2);
  assert.is((await dump('c')).election_strategy, 'disallow');
  assert.is(c.leaders()[0]?.name, 'a');

  r = await client.call('b', ['mon', 'add', 'disallowed_leader', 'zz']);
  assert.equal([r.r, r.rs], [-2, 'mon.zz does not exist']);
  r = await client.call('b', ['mon', 'add', 'disallowed_leader', 'a']);
  assert.is(r.r, 0);
  await settle(3);
  assert.equal((await dump()).disallowed_leaders, ['a']);
  assert.is(c.leaders()[0]?.name, 'b', 'the lowest allowed rank leads');
  // The disallowed monitor stays in the quorum and serves reads and forwards.
  const status = c.node('a').monitor?.monStatus() as { state: string; monmap: Dump };
  assert.is(status.state, 'peon');
  assert.equal(status.monmap.disallowed_leaders, ['a']);
  assert.is((await client.call('a', ['config-key', 'set', 'k', 'v'])).r, 0);
  assert.is((await client.call('a', ['config-key', 'get', 'k'])).data, 'v');

  r = await client.call('a', ['mon', 'add', 'disallowed_leader', 'a']);
  assert.equal([r.r, r.rs], [0, 'mon.a is already disallowed']);
  r = await client.call('a', ['mon', 'add', 'disallowed_leader', 'b']);
  assert.is(r.r, 0);
  await settle(4);
  assert.is(c.leaders()[0]?.name, 'c');
  r = await client.call('a', ['mon', 'add', 'disallowed_leader', 'c']);
  assert.equal([r.r, r.rs], [-22, 'mon.c is the only remaining allowed leader!']);

  r = await client.call('c', ['mon', 'rm', 'disallowed_leader', 'a']);
  assert.is(r.r, 0);
  await settle(5);
  r = await client.call('c', ['mon', 'rm', 'disallowed_leader', 'a']);
  assert.equal([r.r, r.rs], [0, 'mon.a is already allowed']);
  assert.equal((await dump()).disallowed_leaders, ['b']);
  assert.is(c.leaders()[0]?.name, 'a');

  // Back to classic: the set stays in the map but no longer counts (Ceph keeps it too).
  r = await client.call('c', ['mon', 'set', 'election_strategy', 'classic']);
  assert.is(r.r, 0);
  await settle(6);
  r = await client.call('c', ['mon', 'rm', 'disallowed_leader', 'b']);
  assert.equal([r.r, r.rs], [-22, 'You cannot disallow monitors in your current election mode']);
  await c.stopAll();
});

test('connectivity: connection scores dump shows every link alive; reset forgets them; they come back', async () => {
  const c = await cluster(3, 42);
  const client = simClient(c, 'client.admin');
  assert.is((await client.call('a', ['mon', 'set', 'election_strategy', 'connectivity'])).r, 0);
  await c.runUntil(
    () =>
      c.stableQuorum(3) &&
      c
        .running()
        .every((m) => (m.monStatus() as { monmap: Dump }).monmap.election_strategy === 'connectivity'),
    20_000,
  );
  await c.run(3_000);
  type ScoresDump = {
    rank: number;
    half_life: number;
    persist_interval: number;
    reports: {
      rank: number;
      peer_scores: { peer_rank: number; peer_score: number; peer_alive: boolean }[];
    }[];
  };
  const scores = async (mon: string) =>
    JSON.parse((await client.call(mon, ['connection', 'scores', 'dump'])).data) as ScoresDump;
  const b = await scores('b');
  assert.is(b.rank, 1);
  assert.is(b.half_life, 8640);
  assert.is(b.persist_interval, 10);
  assert.equal(
    b.reports.map((r) => [r.rank, r.peer_scores.map((p) => [p.peer_rank, p.peer_alive])]),
    [
      [
        0,
        [
          [1, true],
          [2, true],
        ],
      ],
      [
        1,
        [
          [0, true],
          [2, true],
        ],
      ],
      [
        2,
        [
          [0, true],
          [1, true],
        ],
      ],
    ],
  );
  // Persisted with the epoch and every 10 versions.
  const stored = await c.node('b').store.get('monitor', 'connectivity_scores');
  assert.ok(stored, 'monitor/connectivity_scores written');
  assert.is((await client.call('b', ['connection', 'scores', 'reset'])).r, 0);
  const reset = await scores('b');
  assert.equal(
    reset.reports.map((r) => [r.rank, r.peer_scores.length]),
    [[1, 0]],
  );
  await c.run(2_000);
  assert.is((await scores('b')).reports.length, 3, 'the next pings and messages bring them back');
  assert.is((await client.call('b', ['connection', 'scores', 'shuffle'])).r, -22);
  await c.stopAll();
});

test('scores from the store: undecodable or from another rank are refused (fresh scores, a reason to log)', async () => {
  const store = new MemoryStore({ name: 'mon.t' });
  const put = (value: string) => store.apply(new Transaction().put('monitor', 'connectivity_scores', value));
  assert.equal(await loadConnectivityScores(store, 0), { tracker: null });
  await put('{not json');
  assert.match((await loadConnectivityScores(store, 0)).refused ?? '', /not valid JSON/);
  await put(JSON.stringify({ rank: 0, epoch: 2, version: 1, halfLife: 10, reports: [{ rank: 0 }] }));
  assert.match((await loadConnectivityScores(store, 0)).refused ?? '', /tracker: \/reports\/0/);
  const good = {
    rank: 1,
    epoch: 2,
    version: 1,
    halfLife: 10,
    reports: [{ rank: 1, epoch: 2, version: 1, peers: [{ rank: 0, score: 0.5, alive: true }] }],
  };
  await put(JSON.stringify(good));
  assert.match((await loadConnectivityScores(store, 0)).refused ?? '', /made at rank 1, I am rank 0/);
  assert.equal((await loadConnectivityScores(store, 1)).tracker, good);
  await put(JSON.stringify({ ...good, reports: [good.reports[0], good.reports[0]] }));
  assert.match((await loadConnectivityScores(store, 1)).refused ?? '', /two reports of rank 1/);
});

test('scores and strategies from the wire are validated like every other message', () => {
  const fsid = '11111111-2222-3333-4444-555555555555';
  const base = { type: 'mon.election', op: 'propose', fsid, epoch: 3, monmapEpoch: 1, quorum: [] };
  assert.is(validate({ ...base, strategy: 'connectivity' }), null);
  assert.match(validate({ ...base, strategy: 'fastest' }) ?? '', /strategy/);
  const tracker = {
    rank: 0,
    epoch: 3,
    version: 4,
    halfLife: 8640,
    reports: [{ rank: 0, epoch: 3, version: 4, peers: [{ rank: 1, score: 0.75, alive: true }] }],
  };
  assert.is(validate({ ...base, strategy: 'connectivity', scoring: tracker, sharing: tracker }), null);
  const bad = (patch: Record<string, unknown>) =>
    validate({ ...base, strategy: 'connectivity', scoring: { ...tracker, ...patch } });
  assert.match(bad({ halfLife: 0 }) ?? '', /halfLife/);
  assert.match(
    bad({ reports: [{ rank: 0, epoch: 3, version: 4, peers: [{ rank: 1, score: 1.5, alive: true }] }] }) ??
      '',
    /score/,
  );
  assert.match(
    bad({ reports: [{ rank: 0, epoch: 3, version: 4, peers: [{ rank: 0, score: 1, alive: true }] }] }) ?? '',
    /scores itself/,
  );
  assert.match(bad({ reports: [tracker.reports[0], tracker.reports[0]] }) ?? '', /two reports/);
  assert.match(bad({ rank: 64 }) ?? '', /rank/);
  const ping = { type: 'mon.ping', op: 'ping', stamp: 200, scoring: tracker };
  assert.is(validate(ping), null);
  assert.match(validate({ ...ping, scoring: { ...tracker, reports: 'x' } }) ?? '', /reports/);
});

test.run();
