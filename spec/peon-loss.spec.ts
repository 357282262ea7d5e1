// Issue 16's finding: killing one peon stopped every write for about 3 s — the leader saw the
// session reset at once but waited out its lease-ack timeout (2 × mon_lease) and then a whole
// election timeout. A leader now acts on a quorum member's reset session as a peon does on its
// leader's: it calls an election at once, and the elector, told the member is down, does not
// wait for its ack. What is left is the lease promise: the members that acked the old lease help
// no new term recover until mon_lease has passed (the lost member may still be serving reads
// under it — a partition looks like a kill), so writes resume about mon_lease after the loss.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultConfig } from '../machines/config.ts';
import { SimCluster } from '../sim/cluster.ts';
import { simClient } from './support/sim-client.ts';

test('a killed peon costs the writes about one lease (the promise), not a lease-ack timeout and an election timeout', async () => {
  const c = new SimCluster({ size: 5, seed: 41 });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(5) && c.running().every((m) => m.isReadable()), 10_000);
  const client = simClient(c);
  const leader = c.leaders()[0]?.name as string;
  assert.is((await client.call(leader, ['config-key', 'set', 'before', '1'])).r, 0);
  const peon = c.nodes.find((n) => n.name !== leader)?.name as string;
  await c.crash(peon);
  const killedAt = c.clock.now();
  // The next write, sent at once, is answered (by the same leader or, after a new election, by
  // whoever leads: the client asks every monitor in turn, as MonClient does).
  let answeredAt = 0;
  for (let attempt = 0; attempt < 100 && !answeredAt; attempt += 1) {
    for (const n of c.nodes.filter((x) => x.monitor)) {
      const tid = client.send(n.name, ['config-key', 'set', 'after', '1'], 1000 + attempt);
      await c.run(20);
      if (client.acks.some((a) => a.tid === tid && a.r === 0)) {
        answeredAt = c.clock.now();
        break;
      }
    }
  }
  const stalled = answeredAt - killedAt;
  assert.ok(answeredAt > 0, 'a write was answered');
  // Before: 2 × mon_lease (the lease-ack timeout) + mon_election_timeout.
  assert.ok(
    stalled < 1.5 * defaultConfig.monLeaseMs,
    `writes stalled ${stalled} ms after the kill (mon_lease ${defaultConfig.monLeaseMs} ms)`,
  );
  assert.match(
    String(
      (c.node(leader).monitor?.monStatus() as { last_bootstrap_reason?: string } | undefined)
        ?.last_bootstrap_reason,
    ),
    new RegExp(`lost the session to mon\\.${peon}`),
  );
  await c.stopAll();
});

test.run();
