// Whole-cluster scenarios over the in-memory network and stores, on XState's SimulatedClock: the
// real monitor, elector and paxos statecharts and the real I/O actor, deterministic, in
// milliseconds of wall time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultConfig } from '../machines/config.ts';
import { SimCluster } from '../sim/cluster.ts';
import type { EntityName } from '../transport/messages.ts';
import { simClient } from './support/sim-client.ts';

const text = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);
/** A proposal as a service makes one: its ops, and no client to answer. */
const proposal = (id: string, key: string, v: string) => ({
  type: 'paxos.propose' as const,
  id,
  ops: [{ op: 'put' as const, prefix: 'kv', key, value: v }],
  replies: [],
});

async function cluster(size: number, seed = 1) {
  const c = new SimCluster({ size, seed });
  await c.mkfs();
  return c;
}

interface PaxosStatus {
  state: string;
  last_committed: number;
  readable: boolean;
}

/** mon_status's paxos section of a running monitor. */
function paxosOf(c: SimCluster, name: string): PaxosStatus {
  const monitor = c.node(name).monitor;
  if (!monitor) throw new Error(`mon.${name} is down`);
  return (monitor.monStatus() as { paxos: PaxosStatus }).paxos;
}

function quorumOf(c: SimCluster) {
  const leader = c.leaders()[0];
  assert.ok(leader, `a leader: ${c.describe()}`);
  return leader.quorumStatus() as { election_epoch: number; quorum: number[]; quorum_leader_name: string };
}

function assertAgreement(c: SimCluster) {
  const q = quorumOf(c);
  assert.is(q.election_epoch % 2, 0, 'a stable epoch is even');
  for (const rank of q.quorum) {
    const s = c.nodes[rank]?.monitor?.quorumStatus() as typeof q;
    assert.is(s.quorum_leader_name, q.quorum_leader_name);
    assert.is(s.election_epoch, q.election_epoch);
    assert.equal(s.quorum, q.quorum);
  }
  assert.is(c.leaders().length, 1, 'exactly one leader');
}

test('5 monitors started together elect rank 0 and agree on leader and epoch', async () => {
  const c = await cluster(5);
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(5), 10_000);
  assertAgreement(c);
  assert.is(quorumOf(c).quorum_leader_name, 'a');
  await c.stopAll();
});

test('mon_status and quorum_status are answered by the statechart; quorum_age counts from the quorum', async () => {
  const c = await cluster(3, 7);
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3), 10_000);
  const formedAt = c.clock.now();
  await c.run(5_000);
  const client = simClient(c, 'client.admin');
  for (const name of ['a', 'b', 'c']) {
    const mon = await client.call(name, ['mon_status']);
    assert.is(mon.r, 0, mon.rs);
    const status = JSON.parse(mon.data) as {
      name: string;
      state: string;
      quorum_age: number;
      quorum: number[];
    };
    assert.is(status.name, name);
    assert.equal(status.quorum, [0, 1, 2]);
    // The quorum formed at most a few ms before stableQuorum saw it (its time comes from the io actor).
    assert.ok(status.quorum_age >= 5 && status.quorum_age <= 6, `quorum_age ${status.quorum_age}`);
    const quorum = await client.call(name, ['quorum_status']);
    assert.is(quorum.r, 0, quorum.rs);
    assert.is((JSON.parse(quorum.data) as { quorum_leader_name: string }).quorum_leader_name, 'a');
  }
  // connection scores are the elector's; a wrong third word is usage.
  assert.is((await client.call('a', ['connection', 'scores', 'dump'])).r, 0);
  assert.is((await client.call('a', ['connection', 'scores', 'bogus'])).r, -22);
  assert.ok(c.clock.now() - formedAt >= 5_000);
  // A monitor out of the quorum answers mon_status, and quorum_status with EAGAIN.
  c.network.partition(['mon.c'], ['mon.a', 'mon.b']);
  await c.runUntil(() => c.node('c').monitor?.state() !== 'peon', 10_000);
  const outside = await client.call('c', ['quorum_status']);
  assert.is(outside.r, -11, outside.rs);
  assert.is((await client.call('c', ['mon_status'])).r, 0);
  await c.stopAll();
});

for (const first of ['a', 'b', 'c', 'd', 'e']) {
  test(`mon.${first} starting alone first, then the others: one quorum of 5 led by rank 0`, async () => {
    const c = await cluster(5, first.charCodeAt(0));
    await c.start(first);
    await c.run(3 * defaultConfig.monElectionTimeoutMs);
    assert.is(c.node(first).monitor?.state() === 'leader', false, 'alone it cannot form a quorum');
    for (const node of c.nodes) if (node.name !== first) await c.start(node.name);
    await c.runUntil(() => c.stableQuorum(5), 20_000);
    assertAgreement(c);
    assert.is(quorumOf(c).quorum_leader_name, 'a');
    await c.stopAll();
  });
}

test('the leader cut off: the rest elect a new leader within the timeouts; healed, it rejoins', async () => {
  const c = await cluster(5, 11);
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(5), 10_000);
  const before = quorumOf(c).election_epoch;
  const others = ['b', 'c', 'd', 'e'].map((n) => `mon.${n}` as EntityName);
  c.network.partition(['mon.a'], others);
  // The peons notice at the lease timeout (2 × mon_lease), then probe and elect.
  const limit =
    defaultConfig.monLeaseAckTimeoutFactor * defaultConfig.monLeaseMs +
    defaultConfig.monProbeTimeoutMs +
    defaultConfig.monElectionTimeoutMs +
    1000;
  const took = await c.runUntil(() => c.leaders().some((m) => m.name === 'b') && c.stableQuorum(4), limit);
  assert.ok(took <= limit);
  const q = quorumOf(c);
  assert.is(q.quorum_leader_name, 'b');
  assert.equal(q.quorum, [1, 2, 3, 4]);
  assert.ok(q.election_epoch > before);
  assert.not.equal(c.node('a').monitor?.state(), 'leader', 'the cut-off leader stepped down');
  c.network.heal();
  await c.runUntil(() => c.stableQuorum(5), 20_000);
  assertAgreement(c);
  // Classic elections: the lowest rank wins whenever it takes part, so mon.a leads again
  // (Ceph's ElectionLogic behaves the same way).
  assert.is(quorumOf(c).quorum_leader_name, 'a');
  assert.ok(quorumOf(c).election_epoch > q.election_epoch);
  await c.stopAll();
});

test('a committed value is identical on every monitor, and proposals during a round are batched', async () => {
  const c = await cluster(5, 3);
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(5), 10_000);
  const leader = c.leaders()[0];
  assert.ok(leader);
  const committed: string[] = [];
  leader.actor.subscribe(() => {});
  for (let i = 0; i < 10; i += 1) leader.actor.send(proposal(`p${i}`, `k${i}`, `v${i}`));
  await c.runUntil(() => c.running().every((m) => text(undefined) === undefined && m.isReadable()), 5_000);
  await c.runUntil(() => c.nodes.every((n) => paxosOf(c, n.name).last_committed >= 2), 5_000);
  await c.run(50);
  const lc = paxosOf(c, 'a').last_committed;
  assert.ok(lc < 10, `10 proposals in ${lc} rounds`);
  for (let v = 1; v <= lc; v += 1) {
    const values = await Promise.all(
      c.nodes.map(async (n) => Buffer.from((await n.store.get('paxos', String(v))) ?? []).toString('hex')),
    );
    assert.is(new Set(values).size, 1, `paxos/${v} identical everywhere`);
    committed.push(values[0] as string);
  }
  for (const node of c.nodes) {
    for (let i = 0; i < 10; i += 1)
      assert.is(text(await node.store.get('kv', `k${i}`)), `v${i}`, `mon.${node.name} applied k${i}`);
  }
  await c.stopAll();
});

test('the leader dies between begin and commit: the value is recovered and committed everywhere', async () => {
  const c = await cluster(3, 5);
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3), 10_000);
  // Accepts cannot reach the leader, so it can never commit; the peons hold the value.
  await c.run(200);
  const before = paxosOf(c, 'b').last_committed;
  c.network.setLink('mon.b', 'mon.a', { blocked: true });
  c.network.setLink('mon.c', 'mon.a', { blocked: true });
  c.node('a').monitor?.actor.send(proposal('x', 'recovered', 'yes'));
  await c.runUntil(() => ['b', 'c'].every((n) => paxosOf(c, n).state === 'updating'), 1_000);
  await c.crash('a');
  c.network.heal();
  await c.runUntil(() => c.stableQuorum(2) && c.leaders()[0]?.name === 'b', 20_000);
  await c.runUntil(() => ['b', 'c'].every((n) => paxosOf(c, n).last_committed > before), 5_000);
  for (const n of ['b', 'c'])
    assert.is(text(await c.node(n).store.get('kv', 'recovered')), 'yes', `mon.${n}`);
  await c.start('a');
  await c.runUntil(() => c.stableQuorum(3), 20_000);
  await c.runUntil(() => paxosOf(c, 'a').last_committed > before, 5_000);
  assert.is(text(await c.node('a').store.get('kv', 'recovered')), 'yes');
  await c.stopAll();
});

test('a peon cut off from the leader loses its lease, then bootstraps at the lease timeout', async () => {
  const c = await cluster(3, 9);
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3), 10_000);
  const peon = c.node('c').monitor;
  assert.ok(peon);
  c.network.setLink('mon.a', 'mon.c', { blocked: true });
  await c.runUntil(
    () => !(peon.monStatus() as { paxos: { readable: boolean } }).paxos.readable,
    defaultConfig.monLeaseMs + 10,
  );
  assert.is(peon.state(), 'peon', 'still a peon: only its reads stop');
  await c.runUntil(
    () => peon.state() !== 'peon',
    defaultConfig.monLeaseAckTimeoutFactor * defaultConfig.monLeaseMs + 10,
  );
  assert.match(
    String((peon.monStatus() as { last_bootstrap_reason: string }).last_bootstrap_reason),
    /lease timeout/,
  );
  c.network.heal();
  await c.runUntil(() => c.stableQuorum(3), 20_000);
  await c.stopAll();
});

test('the same seed gives the same run', async () => {
  const trace = async () => {
    const events: string[] = [];
    const c = new SimCluster({
      size: 5,
      seed: 42,
      faults: { delayMs: [1, 20] },
      onNetworkEvent: (e) => events.push(`${e.at} ${e.kind} ${e.from}>${e.to} ${'type' in e ? e.type : ''}`),
    });
    await c.mkfs();
    await c.startAll();
    await c.runUntil(() => c.stableQuorum(5), 20_000);
    await c.stopAll();
    return events.join('\n');
  };
  const first = await trace();
  assert.ok(first.length > 0);
  assert.is(await trace(), first);
});

test.run();
