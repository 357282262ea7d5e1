// An app's own PaxosService keeps its state and its versions across a restart (issue 14): every
// monitor loads every service it runs the one same way (actors/monitor-state.ts loadService,
// machines/service-load.ts), paxmon's own and an app's. A cluster on real RocksDB and TCP, in
// this process: written, stopped, started again over the same stores, read and written again.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyActorRef } from 'xstate';
import { type LocalCluster, startLocalCluster } from '../actors/local-cluster.ts';
import type { ServiceContext, ServiceDefinition, ServiceVersions } from '../machines/paxos-service.ts';
import { RocksDBStore } from '../storage/rocksdb-store.ts';
import { counter } from './support/counter-service.ts';
import { freePorts, tempDir } from './support/process.ts';

const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

/**
 * A tally whose versions hold only what each added (a delta), with a full stash every 25
 * versions (`tally/full_<N>`, `tally/full_latest`, as the log service writes them) and its
 * history trimmed up to the stash: its total survives a restart only if the loader starts from
 * the newest full stash and replays the versions after it.
 */
const tally: ServiceDefinition<{ total: number }, number> = {
  name: 'tally',
  prefix: 'tally',
  handles: (cmd) => cmd[0] === 'tally',
  init: (loaded) => (loaded as { total: number } | null) ?? { total: 0 },
  createInitial: () => 0,
  createPending: () => 0,
  preprocessQuery: (state, req) =>
    req.cmd[1] === 'get' ? { reply: { r: 0, rs: '', data: String(state.total) } } : null,
  prepareUpdate: (state, pending, req) => {
    const n = Number(req.cmd[2]);
    if (req.cmd[1] !== 'add' || !Number.isInteger(n)) return { error: { r: -22, rs: 'usage' } };
    return { pending: pending + n, reply: { r: 0, rs: `tally = ${state.total + pending + n}` } };
  },
  encodePending: (_state, pending, version) => [
    { op: 'put', prefix: 'tally', key: String(version), value: String(pending) },
  ],
  // The template stashes before applying `version`: the state committed at version - 1.
  encodeFull: (state, version) => [
    { op: 'put', prefix: 'tally', key: `full_${version - 1}`, value: String(state.total) },
    { op: 'put', prefix: 'tally', key: 'full_latest', value: String(version - 1) },
  ],
  updateFromPaxos: (state, ops, versions) => {
    let total = state.total;
    for (const o of ops) {
      if (o.op !== 'put' || o.prefix !== 'tally') continue;
      if (o.key === `full_${versions.lastCommitted}`) total = Number(text(o.value));
      else if (o.key === String(versions.lastCommitted)) total += Number(text(o.value));
    }
    return total === state.total ? state : { total };
  },
  // Everything before the version that wrote the newest stash (which holds the state just before it).
  getTrimTo: (_state, versions) => Math.floor(versions.lastCommitted / 25) * 25,
};

const services = [counter, tally] as unknown as ServiceDefinition[];
const dir = tempDir('custom-service');
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** What a stopped monitor's store holds of a service. */
async function storedOf(name: string, prefix: string) {
  const store = await RocksDBStore.open(join(dir, name, 'store.db'));
  try {
    const versions: ServiceVersions = {
      firstCommitted: await store.getNumber(prefix, 'first_committed'),
      lastCommitted: await store.getNumber(prefix, 'last_committed'),
    };
    const latest = text(await store.get(prefix, String(versions.lastCommitted)));
    const fullLatest = text(await store.get(prefix, 'full_latest'));
    return { versions, latest, fullLatest };
  } finally {
    await store.close();
  }
}

/** A running monitor's service, as its actor tree holds it. */
function serviceOf(cluster: LocalCluster, mon: string, service: string): ServiceContext {
  const ref = cluster.monitor(mon).actor.system.get(`service:${service}`) as AnyActorRef | undefined;
  const context = ref?.getSnapshot()?.context as ServiceContext | undefined;
  if (!context) throw new Error(`mon.${mon} runs no service:${service}`);
  return context;
}

/**
 * Until every monitor has applied the same versions of the services (a peon stopped between
 * accepting a value and hearing of its commit would start behind, and catch up only in Paxos).
 */
async function settled(cluster: LocalCluster): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const seen = new Set(
      cluster.monitors.map((m) =>
        ['counter', 'tally'].map((s) => serviceOf(cluster, m.name, s).versions.lastCommitted).join('/'),
      ),
    );
    if (seen.size === 1) return;
    if (Date.now() > deadline) throw new Error(`monitors disagree on versions: ${[...seen].join(' ')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function command(cluster: LocalCluster, cmd: string[]) {
  const client = cluster.client({ timeoutMs: 20_000 });
  try {
    const reply = await client.command(cmd);
    assert.is(reply.r, 0, `${cmd.join(' ')}: ${reply.rs}`);
    return { rs: reply.rs, data: text(reply.data) };
  } finally {
    await client.close();
  }
}

test('a restarted cluster finds a custom service where it was (state and versions), and a write goes on from there', async () => {
  const basePort = await freePorts(3);
  const config = { paxosServiceTrimMin: 1 };
  const first = await startLocalCluster({ dir, size: 3, basePort, config, services });
  try {
    await first.waitForQuorum();
    for (const n of [1, 2]) await command(first, ['counter', 'add', String(n)]);
    assert.is((await command(first, ['counter', 'add', '39'])).rs, 'counter = 42');
    let sum = 0;
    for (let n = 1; n <= 30; n++) {
      sum += n;
      assert.is((await command(first, ['tally', 'add', String(n)])).rs, `tally = ${sum}`);
    }
    assert.is((await command(first, ['tally', 'get'])).data, '465');
    await settled(first);
  } finally {
    await first.stop();
  }

  const names = first.mons.map((m) => m.name);
  const before = new Map<string, Awaited<ReturnType<typeof storedOf>>>();
  for (const name of names) {
    const c = await storedOf(name, 'counter');
    const t = await storedOf(name, 'tally');
    before.set(`${name}/counter`, c);
    before.set(`${name}/tally`, t);
    assert.is(c.latest, '42', `mon.${name}: counter/${c.versions.lastCommitted}`);
    assert.ok(c.versions.lastCommitted >= 4, `mon.${name}: counter versions ${JSON.stringify(c.versions)}`);
    // The tally's oldest versions are gone: only the stash and what follows it can rebuild it.
    assert.ok(t.versions.lastCommitted >= 31, `mon.${name}: tally versions ${JSON.stringify(t.versions)}`);
    assert.ok(t.versions.firstCommitted > 1, `mon.${name}: tally trimmed ${JSON.stringify(t.versions)}`);
    assert.ok(Number(t.fullLatest) >= 24, `mon.${name}: tally/full_latest = ${t.fullLatest}`);
  }

  const second = await startLocalCluster({ dir, config, services });
  try {
    // Every monitor starts with the versions its store holds and the state they make.
    for (const name of names) {
      const c = serviceOf(second, name, 'counter');
      const t = serviceOf(second, name, 'tally');
      assert.equal(c.versions, before.get(`${name}/counter`)?.versions, `mon.${name}: counter versions`);
      assert.equal(c.state, { value: 42 }, `mon.${name}: counter state`);
      assert.equal(t.versions, before.get(`${name}/tally`)?.versions, `mon.${name}: tally versions`);
      assert.equal(t.state, { total: 465 }, `mon.${name}: tally state`);
    }
    await second.waitForQuorum();
    assert.is((await command(second, ['counter', 'get'])).data, '42');
    assert.is((await command(second, ['tally', 'get'])).data, '465');
    assert.is((await command(second, ['counter', 'add', '1'])).rs, 'counter = 43');
    assert.is((await command(second, ['tally', 'add', '5'])).rs, 'tally = 470');
    await settled(second);
  } finally {
    await second.stop();
  }

  // The write after the restart is the next version of each, on every monitor.
  for (const name of names) {
    const c = await storedOf(name, 'counter');
    const t = await storedOf(name, 'tally');
    const counterBefore = before.get(`${name}/counter`)?.versions.lastCommitted ?? 0;
    const tallyBefore = before.get(`${name}/tally`)?.versions.lastCommitted ?? 0;
    assert.is(c.versions.lastCommitted, counterBefore + 1, `mon.${name}: counter/last_committed`);
    assert.is(c.latest, '43', `mon.${name}: counter/${counterBefore + 1}`);
    assert.is(t.versions.lastCommitted, tallyBefore + 1, `mon.${name}: tally/last_committed`);
    assert.is(t.latest, '5', `mon.${name}: tally/${tallyBefore + 1}`);
  }
});

test.run();
