// Issue 13 §6: the simulator's adversary (sim/adversary.ts) on a simulated cluster under client
// load — a keyless node and a read-only insider replaying, reordering, altering and forging
// messages of every type, and sending updates its caps do not allow. The cluster keeps one
// leader per epoch and its quorum, every acknowledged write reads back on every monitor, and
// nothing the adversary sent changed the replicated state.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Adversary } from '../sim/adversary.ts';
import { SimCluster } from '../sim/cluster.ts';
import type { EntityName } from '../transport/messages.ts';
import { simClient } from './support/sim-client.ts';

async function underAttack(seed: number) {
  let adversary: Adversary | undefined;
  const c = new SimCluster({
    size: 3,
    seed,
    faults: { delayMs: [1, 5], dropRate: 0, duplicateRate: 0.01, reorder: false },
    tap: (from, to, bytes) => adversary?.record(from, to, bytes),
  });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3), 20_000);
  const epochBefore = c.leaders()[0]?.quorumStatus().election_epoch as number;
  adversary = new Adversary({
    network: c.network,
    clock: c.clock,
    prng: c.prng.fork('adversary'),
    monitors: c.nodes.map((n) => n.name),
    monmap: c.monmap,
    actionsPerSecond: 20,
  });
  const client = simClient(c, 'client.writer');
  const acked = new Map<string, string>();
  for (let i = 0; i < 60; i += 1) {
    const leader = c.leaders()[0]?.name ?? 'a';
    const key = `k${i % 8}`;
    const value = `w${i}`;
    const ack = await client
      .call(leader, ['config-key', 'set', key, value], undefined, 20_000)
      .catch(() => null);
    if (ack?.r === 0) acked.set(key, value);
    await c.run(500);
  }
  adversary.stop();
  await c.runUntil(() => c.stableQuorum(3), 30_000);
  return { c, client, acked, adversary, epochBefore };
}

for (const seed of [1, 2, 3]) {
  test(`seed ${seed}: replays, reorders, forgeries and denied updates change nothing; the quorum and every write stand`, async () => {
    const { c, client, acked, adversary, epochBefore } = await underAttack(seed);
    const stats = adversary.stats;
    assert.ok(stats.recorded > 100, `recorded ${stats.recorded}`);
    assert.ok(stats.sentKeyed > 100 && stats.sentKeyless > 20, JSON.stringify(stats));
    assert.ok(stats.commandsDenied > 10, JSON.stringify(stats));
    assert.is(stats.updatesAllowed, 0, 'no update of the read-only insider was allowed');
    assert.ok(c.network.stats().unauthenticated > 0, 'the keyless node never had a session');
    const refused = c.nodes.reduce((sum, n) => sum + (n.monitor?.refusedMessages() ?? 0), 0);
    assert.ok(refused > 50, `monitors refused ${refused} messages`);
    // No election was caused: with the network's own faults alone an election can still happen,
    // so the check is that the epoch moved little (a forged victory would make it jump).
    const epochAfter = c.leaders()[0]?.quorumStatus().election_epoch as number;
    assert.ok(epochAfter - epochBefore <= 4, `election epoch ${epochBefore} → ${epochAfter}`);
    assert.ok(acked.size > 0, 'some writes acknowledged');
    for (const node of c.nodes) {
      for (const [key, value] of acked) {
        const got = await client.call(node.name, ['config-key', 'get', key], undefined, 20_000);
        assert.is(got.r, 0, `${key} on mon.${node.name}: ${got.rs}`);
        assert.is(got.data, value, `${key} on mon.${node.name}`);
      }
      const map = JSON.parse((await client.call(node.name, ['mon', 'dump'], undefined, 20_000)).data) as {
        epoch: number;
        mons: unknown[];
      };
      assert.is(map.mons.length, 3, `mon.${node.name}'s map`);
      assert.is(map.epoch, 1, 'no forged monmap was adopted');
      const auth = await client.call(node.name, ['auth', 'ls'], undefined, 20_000);
      assert.not.match(auth.data, /client\.eve2/);
      assert.match(auth.data, /"entity":"client\.eve","key":"[^"]+","caps":\{"mon":"allow r"\}/);
    }
    await c.stopAll();
  });
}

test('a name of a monitor needs the mon. key: the simulated network refuses it to a client key', () => {
  const c = new SimCluster({ size: 3, seed: 9 });
  assert.throws(() => c.network.endpoint('mon.z' as EntityName, { entity: 'client.eve' }), /mon\. key/);
});

test.run();
