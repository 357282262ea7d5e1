// The services over a simulated cluster: the real monitors, paxos and services, on the in-memory
// network and stores and XState's SimulatedClock.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimCluster } from '../sim/cluster.ts';
import { simClient } from './support/sim-client.ts';

async function cluster(size: number, seed: number) {
  const c = new SimCluster({ size, seed });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(size), 10_000);
  // Until every service is readable (create_initial committed on a new cluster).
  await c.runUntil(() => c.running().every((m) => m.isReadable()), 5_000);
  return c;
}

test('a write accepted on a peon is readable on every monitor once it is acknowledged', async () => {
  const c = await cluster(5, 21);
  const client = simClient(c);
  const set = await client.call('c', ['config-key', 'set', 'greeting', 'hello']);
  assert.is(set.r, 0);
  assert.is(set.rs, 'set greeting');
  // Straight after the answer, every monitor that answers at all answers the new value.
  for (const mon of ['a', 'b', 'c', 'd', 'e']) {
    const get = await client.call(mon, ['config-key', 'get', 'greeting']);
    assert.is(get.r, 0, `mon.${mon}`);
    assert.is(get.data, 'hello', `mon.${mon}`);
  }
  const missing = await client.call('b', ['config-key', 'get', 'nope']);
  assert.is(missing.r, -2);
  assert.is(missing.rs, "key 'nope' doesn't exist");
  await c.stopAll();
});

test('config-key: exists, ls, dump with a prefix, rm, EFBIG beyond 64 KiB and nothing stored', async () => {
  const c = await cluster(3, 22);
  const client = simClient(c);
  await client.call('a', ['config-key', 'set', 'app/x', '1']);
  await client.call('b', ['config-key', 'set', 'app/y', '2']);
  await client.call('c', ['config-key', 'set', 'other', '3']);
  assert.is((await client.call('c', ['config-key', 'exists', 'app/x'])).rs, "key 'app/x' exists");
  assert.equal(JSON.parse((await client.call('b', ['config-key', 'ls'])).data), ['app/x', 'app/y', 'other']);
  assert.equal(JSON.parse((await client.call('a', ['config-key', 'dump', 'app/'])).data), {
    'app/x': '1',
    'app/y': '2',
  });
  assert.is((await client.call('b', ['config-key', 'rm', 'app/x'])).rs, 'key deleted');
  assert.is((await client.call('c', ['config-key', 'get', 'app/x'])).r, -2);
  const big = 'x'.repeat(64 * 1024 + 1);
  const refused = await client.call('c', ['config-key', 'set', 'big', big]);
  assert.is(refused.r, -27);
  assert.is((await client.call('a', ['config-key', 'exists', 'big'])).r, -2);
  const justFits = await client.call('c', ['config-key', 'set', 'fits', 'y'.repeat(64 * 1024)]);
  assert.is(justFits.r, 0);
  await c.stopAll();
});

test('the leader dies between begin and commit: all or nothing, and a retry applies exactly once', async () => {
  const c = await cluster(3, 23);
  const client = simClient(c);
  await c.run(100);
  // The peons' accepts cannot reach the leader: the round can never commit there.
  c.network.setLink('mon.b', 'mon.a', { blocked: true });
  c.network.setLink('mon.c', 'mon.a', { blocked: true });
  const tid = client.send('a', ['log', 'exactly once please']);
  await c.runUntil(
    () =>
      ['b', 'c'].every(
        (n) =>
          (c.node(n).monitor?.monStatus() as { paxos: { state: string } } | undefined)?.paxos.state ===
          'updating',
      ),
    2_000,
  );
  await c.crash('a');
  c.network.heal();
  await c.runUntil(() => c.stableQuorum(2), 20_000);
  // The client never heard back; it retries the same request (same tid) at another monitor.
  const retry = await client.call('c', ['log', 'exactly once please'], tid, 10_000);
  assert.is(retry.r, 0);
  await c.start('a');
  await c.runUntil(() => c.stableQuorum(3), 20_000);
  await c.runUntil(() => c.running().every((m) => m.isReadable()), 5_000);
  for (const mon of ['a', 'b', 'c']) {
    const last = await client.call(mon, ['log', 'last', '50']);
    const mine = (JSON.parse(last.data) as { message: string }[]).filter(
      (e) => e.message === 'exactly once please',
    );
    assert.is(mine.length, 1, `mon.${mon} has the entry exactly once`);
  }
  await c.stopAll();
});

test('log, health and status; the leader logs its quorum; MON_DOWN when a monitor is down', async () => {
  const c = await cluster(3, 24);
  const client = simClient(c);
  await client.call('b', ['log', 'hello', 'cluster']);
  const last = JSON.parse((await client.call('c', ['log', 'last', '10'])).data) as {
    message: string;
    name: string;
  }[];
  assert.ok(
    last.some((e) => /mon\.a is new leader, mons a,b,c in quorum/.test(e.message)),
    'quorum change logged',
  );
  assert.ok(last.some((e) => e.message === 'hello cluster' && e.name === 'client.spec'));
  assert.is((await client.call('b', ['health'])).rs, 'HEALTH_OK');
  await c.crash('c');
  await c.runUntil(() => c.stableQuorum(2), 20_000);
  // The leader's tick notices and commits the new health (any monitor then reports it).
  await c.run(2_500);
  const health = await client.call('b', ['health', 'detail']);
  assert.match(health.rs, /^HEALTH_WARN 1\/3 mons down, quorum a,b/);
  assert.match(health.rs, /mon\.c \(rank 2\) addr .* is down \(out of quorum\)/);
  const status = JSON.parse((await client.call('a', ['status'])).data) as {
    health: { status: string };
    quorum_names: string[];
  };
  assert.is(status.health.status, 'HEALTH_WARN');
  assert.equal(status.quorum_names, ['a', 'b']);
  await c.stopAll();
});

test('mon dump / stat / getmap', async () => {
  const c = await cluster(3, 25);
  const client = simClient(c);
  const dump = JSON.parse((await client.call('c', ['mon', 'dump'])).data) as {
    epoch: number;
    mons: { name: string }[];
  };
  assert.is(dump.epoch, 1);
  assert.equal(
    dump.mons.map((m) => m.name),
    ['a', 'b', 'c'],
  );
  const stat = JSON.parse((await client.call('b', ['mon', 'stat'])).data) as { text: string };
  assert.match(stat.text, /^e1: 3 mons at \{a=.*\}, election epoch \d+, leader 0 a, quorum 0,1,2 a,b,c$/);
  const getmap = await client.call('a', ['mon', 'getmap']);
  assert.is(getmap.rs, 'got monmap epoch 1');
  assert.is((await client.call('a', ['mon', 'frobnicate'])).r, -22);
  await c.stopAll();
});

test('after every monitor restarts with nothing new to commit, every service is readable again', async () => {
  const c = await cluster(3, 26);
  const client = simClient(c);
  await client.call('b', ['config-key', 'set', 'survives', 'yes']);
  for (const n of ['a', 'b', 'c']) await c.crash(n);
  for (const n of ['a', 'b', 'c']) await c.start(n);
  await c.runUntil(() => c.stableQuorum(3), 20_000);
  // The store already holds every committed version: nothing has to commit for reads to work.
  for (const mon of ['a', 'b', 'c']) {
    const get = await client.call(mon, ['config-key', 'get', 'survives']);
    assert.is(get.data, 'yes', `mon.${mon}`);
  }
  await c.stopAll();
});

test('Paxos trims old versions inside proposals on every monitor (paxos_min, paxos_trim_min/max)', async () => {
  const c = new SimCluster({ size: 3, seed: 27, config: { paxosMin: 10, paxosTrimMin: 5, paxosTrimMax: 8 } });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3) && c.running().every((m) => m.isReadable()), 10_000);
  const client = simClient(c);
  for (let i = 0; i < 60; i += 1)
    await client.call(['a', 'b', 'c'][i % 3] as string, ['config-key', 'set', `k${i}`, String(i)]);
  await c.run(500);
  for (const node of c.nodes) {
    const status = node.monitor?.monStatus() as {
      paxos: { first_committed: number; last_committed: number };
    };
    const { first_committed: fc, last_committed: lc } = status.paxos;
    assert.ok(fc > 1, `mon.${node.name} trimmed (first_committed ${fc})`);
    assert.ok(lc - fc <= 10 + 5 + 8, `mon.${node.name} keeps a bounded window (${fc}..${lc})`);
    assert.is(
      await node.store.get('paxos', String(fc - 1)),
      undefined,
      'versions below first_committed are gone',
    );
    assert.ok(await node.store.get('paxos', String(fc)), 'first_committed itself is kept');
    assert.is(await node.store.getNumber('paxos', 'first_committed'), fc);
  }
  // Trimming never loses data: every key is still readable.
  assert.is((await client.call('c', ['config-key', 'get', 'k0'])).data, '0');
  await c.stopAll();
});

test('mon add / mon rm: identical add is a no-op, name or address clashes are EEXIST, the last monitor stays', async () => {
  const c = await cluster(3, 28);
  const client = simClient(c);
  const same = await client.call('b', ['mon', 'add', 'a', '10.0.0.1:6789']);
  assert.is(same.r, 0);
  assert.match(same.rs, /already exists/);
  assert.is((await client.call('b', ['mon', 'add', 'a', '10.0.0.9:6789'])).r, -17);
  assert.is((await client.call('c', ['mon', 'add', 'z', '10.0.0.2:6789'])).r, -17);
  assert.is((await client.call('c', ['mon', 'add', 'bad name', '10.0.0.9:1'])).r, -22);
  const epochOf = async () =>
    (JSON.parse((await client.call('a', ['mon', 'dump'])).data) as { epoch: number }).epoch;
  assert.is(await epochOf(), 1, 'no change, no new epoch');
  const rm = await client.call('b', ['mon', 'rm', 'c']);
  assert.is(rm.rs, 'removing mon.c at 10.0.0.3:6789, there will be 2 monitors');
  await c.runUntil(() => c.node('c').monitor === null || c.node('c').monitor?.state() === 'shutdown', 10_000);
  await c.runUntil(() => c.stableQuorum(2), 20_000);
  await c.runUntil(() => c.leaders().every((m) => m.isReadable()), 5_000);
  assert.is(await epochOf(), 2);
  await c.stopAll();

  const alone = await cluster(1, 29);
  const solo = simClient(alone, 'client.solo');
  const last = await solo.call('a', ['mon', 'rm', 'a']);
  assert.is(last.r, -22);
  assert.is(last.rs, 'refusing removal of last monitor mon.a');
  await alone.stopAll();
});

test('a monitor removed while it was down stops when it comes back, and never asks to be added again', async () => {
  // A probe reply shows it the new map; it does not take that one message's word for it (issue
  // 13) but syncs the committed history from that peer, and the restart over the synced store
  // stops it (then its own store does, on a second start): Ceph's monitor exits, "removed from
  // monmap"; it must not send mon.join with its old address.
  const c = await cluster(3, 40);
  const client = simClient(c);
  await c.crash('c');
  await c.runUntil(() => c.stableQuorum(2), 20_000);
  assert.is((await client.call('a', ['mon', 'rm', 'c'], undefined, 10_000)).r, 0);
  const names = async () =>
    (JSON.parse((await client.call('a', ['mon', 'dump'])).data) as { mons: { name: string }[] }).mons
      .map((m) => m.name)
      .join(',');
  assert.is(await names(), 'a,b');
  for (const start of ['probe reply', 'its own store']) {
    await c.start('c');
    await c.runUntil(() => c.node('c').monitor?.state() === 'shutdown', 10_000);
    await c.run(3_000);
    assert.is(await names(), 'a,b', `still removed after a start that found it in ${start}`);
    await c.crash('c');
  }
  await c.stopAll();
});

test('config-key: a key too long for the store is EINVAL for every verb, and the quorum stands', async () => {
  // A 100,000-byte key once reached RocksDB (whose keys stop at 16 KiB): the write failed, the
  // monitor stopped on it, and the client's retry stopped the next one too.
  const c = await cluster(3, 41);
  const client = simClient(c);
  const long = 'k'.repeat(100_000);
  for (const cmd of [
    ['config-key', 'set', long, 'v'],
    ['config-key', 'get', long],
    ['config-key', 'exists', long],
    ['config-key', 'rm', long],
    ['config-key', 'dump', long],
  ]) {
    const reply = await client.call('b', cmd);
    assert.is(reply.r, -22, `${cmd[1]}: ${reply.rs}`);
    assert.match(reply.rs, /limited to 4096 bytes/);
  }
  const edge = 'e'.repeat(4096);
  assert.is((await client.call('b', ['config-key', 'set', edge, 'fits'])).r, 0);
  assert.is((await client.call('c', ['config-key', 'get', edge])).data, 'fits');
  assert.ok(c.stableQuorum(3), 'every monitor still in the quorum');
  await c.stopAll();
});

test('config-key: keys with U+FFFD (what bytes that are not UTF-8 decode to) are EINVAL, never merged', async () => {
  // $'\xff' and $'\xfe' both arrive as "\uFFFD": once they silently named one entry.
  const c = await cluster(3, 43);
  const client = simClient(c);
  for (const cmd of [
    ['config-key', 'set', '\uFFFD', 'from 0xff'],
    ['config-key', 'set', 'app/\uFFFD', 'from 0xfe'],
    ['config-key', 'get', '\uFFFD'],
    ['config-key', 'exists', 'app/\uFFFD'],
    ['config-key', 'rm', '\uFFFD'],
    ['config-key', 'dump', 'app/\uFFFD'],
  ]) {
    const reply = await client.call('b', cmd);
    assert.is(reply.r, -22, `${cmd[1]}: ${reply.rs}`);
    assert.match(reply.rs, /U\+FFFD/);
  }
  assert.equal(JSON.parse((await client.call('a', ['config-key', 'ls'])).data), []);
  // Valid UTF-8 beyond ASCII is a key like any other.
  assert.is((await client.call('c', ['config-key', 'set', 'clé/ü', 'ok'])).r, 0);
  assert.is((await client.call('a', ['config-key', 'get', 'clé/ü'])).data, 'ok');
  await c.stopAll();
});

test.run();
