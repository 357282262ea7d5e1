// The write path's event budget (issue 14): one `config-key set` on an idle 3-monitor simulated
// cluster, counted with XState's inspection API (every event an actor of a monitor's tree
// receives). Counting is deterministic — the simulated clock, network and stores — so this is a
// test, not a timing: at most 10 events on the leader and 6 on each peon for a write sent to the
// leader. The README's "The way of a write" lists these events, as this spec prints them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { InspectionEvent } from 'xstate';
import { SimCluster } from '../sim/cluster.ts';
import { simClient } from './support/sim-client.ts';

const budget = { leader: 10, peon: 6 };

/** A 3-monitor cluster whose every monitor's events are recorded while `recording` is on. */
async function recordedCluster(seed: number) {
  const events = new Map<string, string[]>();
  let recording = false;
  let lastEventAt = 0;
  const c = new SimCluster({
    size: 3,
    seed,
    inspectFor: (name) => (e: InspectionEvent) => {
      if (e.type !== '@xstate.event') return;
      lastEventAt = c.clock.now();
      if (!recording) return;
      const actor = (e.actorRef as { id?: string }).id ?? '?';
      const to = actor.startsWith('x:') ? 'monitor' : actor;
      const from = (e.sourceRef as { id?: string } | undefined)?.id;
      const source = from === undefined ? 'runtime' : from.startsWith('x:') ? 'monitor' : from;
      const list = events.get(name) ?? [];
      const event = e.event as { type: string; msg?: { op?: string }; token?: string };
      const detail = event.msg?.op ?? event.token ?? '';
      list.push(`${to} ← ${event.type}${detail ? ` ${detail}` : ''} (from ${source})`);
      events.set(name, list);
    },
  });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3), 10_000);
  await c.runUntil(() => c.running().every((m) => m.isReadable()), 5_000);
  /** Run until no monitor has received an event for `quietMs` (leases, ticks and pings are periodic). */
  const idle = (quietMs = 50) => c.runUntil(() => c.clock.now() - lastEventAt >= quietMs, 10_000);
  return {
    c,
    idle,
    async record(run: () => Promise<void>): Promise<Map<string, string[]>> {
      await idle();
      events.clear();
      recording = true;
      await run();
      // The write's last events (peons applying the commit) follow the client's answer.
      await idle();
      recording = false;
      return new Map(events);
    },
  };
}

test('a config-key set sent to the leader: at most 10 events on the leader and 6 on each peon', async () => {
  const { c, record } = await recordedCluster(7);
  const client = simClient(c);
  const leader = c.leaders()[0]?.name as string;
  const events = await record(async () => {
    const reply = await client.call(leader, ['config-key', 'set', 'budget', 'v']);
    assert.is(reply.r, 0);
  });
  const lines: string[] = [];
  for (const [name, list] of [...events].sort()) {
    const role = name === leader ? 'leader' : 'peon';
    lines.push(`mon.${name} (${role}): ${list.length} events`, ...list.map((e, i) => `  ${i + 1}. ${e}`));
    assert.ok(
      list.length <= budget[role],
      `mon.${name} (${role}) took ${list.length} events (budget ${budget[role]}):\n${list.join('\n')}`,
    );
  }
  assert.is(events.size, 3, 'every monitor took part');
  console.log(`\n${lines.join('\n')}`);
  await c.stopAll();
});

test('a config-key set sent to a peon: forwarded, and answered through it (counted, printed)', async () => {
  const { c, record } = await recordedCluster(7);
  const client = simClient(c);
  const leader = c.leaders()[0]?.name as string;
  const peon = c.nodes.find((n) => n.name !== leader)?.name as string;
  const events = await record(async () => {
    const reply = await client.call(peon, ['config-key', 'set', 'budget', 'v']);
    assert.is(reply.r, 0);
  });
  const total = (name: string) => events.get(name)?.length ?? 0;
  // The leader's share is the same write; the peon adds the forward and the route back.
  assert.ok(total(leader) <= budget.leader, `leader: ${total(leader)}`);
  assert.ok(total(peon) <= budget.peon + 8, `the peon that forwarded: ${total(peon)}`);
  await c.stopAll();
});

test.run();
