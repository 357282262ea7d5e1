// After a store sync the monitor reloads inside its one actor (issue 14): Ceph's sync_finish →
// init_paxos → bootstrap is the statechart's `reloading` state (io.load → monitor.loaded), not a
// new actor tree built by the runtime. A cluster on real RocksDB and TCP, in this process, with
// the README's counter as a custom service: mon.c is stopped, the others write and trim past it,
// and mon.c comes back by full sync — its actor, its subscribers and its inspector stay, and it
// serves the counter the leader committed.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { type DaemonHandle, startMonitor } from '../actors/daemon.ts';
import { readKeyring } from '../actors/keyring.ts';
import { startLocalCluster } from '../actors/local-cluster.ts';
import { MonClient } from '../actors/mon-client.ts';
import type { MonConfig } from '../machines/config.ts';
import { type MonitorSnapshot, monitorStateName } from '../machines/monitor.ts';
import type { ServiceContext, ServiceDefinition } from '../machines/paxos-service.ts';
import { counter } from './support/counter-service.ts';
import { freePorts, tempDir } from './support/process.ts';

const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);
const dir = tempDir('sync-reload');
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Short Paxos history: 120 writes trim far beyond a monitor that missed them (a full sync). */
const config: Partial<MonConfig> = {
  paxosMin: 20,
  paxosTrimMin: 10,
  paxosTrimMax: 50,
  monSyncMaxPayloadKeys: 50,
};
const services = [counter as ServiceDefinition];

/** A monitor's service, as its actor tree holds it now. */
function serviceOf(mon: DaemonHandle, name: string): { ref: AnyActorRef; context: ServiceContext } {
  const ref = mon.actor.system.get(`service:${name}`) as AnyActorRef | undefined;
  const context = ref?.getSnapshot()?.context as ServiceContext | undefined;
  if (!ref || !context) throw new Error(`mon.${mon.name} runs no service:${name}`);
  return { ref, context };
}

/** Resolves once `ready` holds, checked at every snapshot of the monitor's actor; rejects after `timeoutMs`. */
function until(mon: DaemonHandle, ready: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const check = () => {
      if (done || !ready()) return;
      done = true;
      clearTimeout(timer);
      subscription.unsubscribe();
      resolve();
    };
    const timer = setTimeout(() => {
      done = true;
      subscription.unsubscribe();
      reject(new Error(`mon.${mon.name}: no ${what} within ${timeoutMs} ms (state ${mon.state()})`));
    }, timeoutMs);
    const subscription = mon.actor.subscribe({ next: check, error: check, complete: check });
    check();
  });
}

test("a full sync reloads inside the monitor's one actor, which then serves the custom service's synced state", async () => {
  const basePort = await freePorts(3);
  const cluster = await startLocalCluster({ dir, size: 3, basePort, config, services });
  const key = (await readKeyring(join(dir, 'keyring'))).find((e) => e.entity === 'client.admin')?.key ?? '';
  let c: DaemonHandle | undefined;
  let client: MonClient | undefined;
  try {
    await cluster.waitForQuorum();
    await cluster.monitor('c').stop();
    await cluster.waitForQuorum({ size: 2 });
    client = cluster.client({ timeoutMs: 20_000 });
    for (let i = 1; i <= 120; i += 1) {
      const reply = await client.command(['counter', 'add', '1']);
      assert.is(reply.r, 0, `counter add #${i}: ${reply.rs}`);
    }
    await client.close();
    client = undefined;
    const leader = cluster.monitor('a');
    const behind = cluster.monitor('c').actor.getSnapshot().context.paxos.lastCommitted;
    const trimmedTo = leader.actor.getSnapshot().context.paxos.firstCommitted;
    assert.ok(
      trimmedTo > behind + 1,
      `the cluster trimmed past mon.c (first_committed ${trimmedTo}, mon.c's last_committed ${behind})`,
    );

    // mon.c starts again; everything it does from now on is watched on the actor it starts with.
    const inspected: InspectionEvent[] = [];
    c = await startMonitor({
      dir: join(dir, 'c'),
      config,
      services,
      inspect: (event) => inspected.push(event),
    });
    const mon = c;
    const actor = mon.actor;
    const serviceBefore = serviceOf(mon, 'counter').ref;
    const states: string[] = [];
    actor.subscribe((snapshot: MonitorSnapshot) => {
      const state = monitorStateName(snapshot);
      if (states.at(-1) !== state) states.push(state);
    });
    await until(
      mon,
      () =>
        states.includes('reloading') &&
        (mon.state() === 'peon' || mon.state() === 'leader') &&
        mon.isReadable() &&
        serviceOf(mon, 'counter').context.paxos.readable,
      'quorum after a sync',
    );

    // One actor for the monitor's whole life: the handle's, the subscriber's and the inspector's.
    assert.ok(mon.actor === actor, "the handle's actor is the one it started with");
    const afterReload = states.slice(states.indexOf('reloading'));
    assert.ok(states.includes('synchronizing'), `mon.c synced (states ${states.join(' → ')})`);
    assert.is(afterReload[1], 'probing', `after reloading, bootstrap (states ${states.join(' → ')})`);
    assert.ok(
      afterReload.includes('peon') || afterReload.includes('leader'),
      `the subscriber saw the quorum after the reload (states ${states.join(' → ')})`,
    );
    assert.ok(
      actor.getSnapshot().context.paxos.firstCommitted > behind,
      "mon.c's Paxos starts from the history it synced",
    );
    const rootEvents = inspected.filter(
      (e): e is InspectionEvent & { type: '@xstate.event'; event: { type: string } } =>
        e.type === '@xstate.event' && e.actorRef === actor,
    );
    const loadedAt = rootEvents.findIndex((e) => e.event.type === 'monitor.loaded');
    assert.ok(loadedAt >= 0, 'the inspector saw the io actor answer io.load (monitor.loaded) on the root');
    assert.ok(
      rootEvents
        .slice(loadedAt)
        .some((e) => e.event.type === 'elector.lose' || e.event.type === 'elector.win'),
      'the inspector saw the election after the reload on the same root actor',
    );
    assert.ok(
      inspected.every((e) => e.rootId === actor.sessionId),
      'every inspected event belongs to the one actor tree',
    );

    // The service was started again from what the synced store holds: its state and versions
    // are the leader's.
    const synced = serviceOf(mon, 'counter');
    const leaderCounter = serviceOf(leader, 'counter').context;
    assert.ok(synced.ref !== serviceBefore, 'service:counter was restarted from the synced store');
    assert.equal(synced.context.state, { value: 120 }, "mon.c's counter state");
    assert.equal(synced.context.versions, leaderCounter.versions, "mon.c's counter versions");

    // Served by mon.c itself (a lease read on a readable peon), then a write through it.
    client = new MonClient({
      mons: [{ name: 'c', addr: mon.addr }],
      fsid: cluster.fsid,
      key,
      timeoutMs: 20_000,
    });
    const got = await client.command(['counter', 'get']);
    assert.is(got.r, 0, got.rs);
    assert.is(text(got.data), '120');
    const added = await client.command(['counter', 'add', '5']);
    assert.is(added.r, 0, added.rs);
    assert.is(added.rs, 'counter = 125');
  } finally {
    await client?.close();
    await c?.stop();
    await cluster.stop();
  }
});

test.run();
