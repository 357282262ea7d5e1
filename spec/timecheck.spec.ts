// Monitor::timecheck in the statechart: the leader pings the quorum with its clock on every tick,
// each peon answers with its own, and the skews reach the health service (MON_CLOCK_SKEW) —
// on the simulated cluster, one peon's clock running fast.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MonitorClock } from '../sim/clock.ts';
import { SimCluster } from '../sim/cluster.ts';
import { simClient } from './support/sim-client.ts';

test('a peon whose clock runs fast is reported as MON_CLOCK_SKEW by the leader, and only while it does', async () => {
  const clocks = new Map<string, MonitorClock>();
  const c = new SimCluster({
    size: 3,
    seed: 31,
    config: { monTickIntervalMs: 1000 },
    clockFor: (name, base) => {
      const clock = new MonitorClock(name, base, 1);
      clocks.set(name, clock);
      return clock;
    },
  });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3) && c.running().every((m) => m.isReadable()), 10_000);
  const leader = c.leaders()[0]?.name as string;
  const peon = c.nodes.find((n) => n.name !== leader)?.name as string;
  const client = simClient(c);
  const health = async () => (await client.call(leader, ['health', 'detail'])).data;
  await c.run(3_000);
  assert.not.match(await health(), /MON_CLOCK_SKEW|clock skew/, 'equal clocks: no skew');
  (clocks.get(peon) as MonitorClock).rate = 1.2;
  let text = '';
  for (let i = 0; i < 20 && !/clock skew/.test(text); i += 1) {
    await c.run(1_000);
    text = await health();
  }
  assert.match(text, new RegExp(`mon\\.${peon} clock skew`), text);
  await c.stopAll();
});

test.run();
