// Store sync over a simulated cluster: full sync past trimmed history, recent sync, a provider
// that dies mid-sync, a requester that crashes mid-sync.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MonConfig } from '../machines/config.ts';
import { monitorStateName } from '../machines/monitor.ts';
import type { ServiceDefinition } from '../machines/paxos-service.ts';
import { SimCluster } from '../sim/cluster.ts';
import { Transaction } from '../storage/transaction.ts';
import type { EntityName, Message } from '../transport/messages.ts';
import type { TransportHandlers } from '../transport/transport.ts';
import { counter } from './support/counter-service.ts';
import { simClient } from './support/sim-client.ts';

type Status = {
  state: string;
  sync_decision: { kind: string; provider: string } | null;
  sync: { keys: number } | null;
  paxos: { first_committed: number; last_committed: number } | null;
};
const status = (c: SimCluster, name: string) => c.node(name).monitor?.monStatus() as Status | undefined;

async function cluster(seed: number, config: Partial<MonConfig>) {
  const c = new SimCluster({ size: 3, seed, config });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3) && c.running().every((m) => m.isReadable()), 10_000);
  return { c, client: simClient(c) };
}

/** Short Paxos history and small sync chunks: a sync of a few hundred keys takes many chunks. */
const smallChunks: Partial<MonConfig> = {
  paxosMin: 20,
  paxosTrimMin: 10,
  paxosTrimMax: 50,
  monSyncMaxPayloadKeys: 5,
};

/** Write `count` keys in batches (each batch one or a few Paxos rounds). */
async function write(
  c: SimCluster,
  client: ReturnType<typeof simClient>,
  count: number,
  batch: number,
  prefix = 'k',
) {
  for (let i = 0; i < count; i += batch) {
    const tids: number[] = [];
    for (let j = i; j < Math.min(count, i + batch); j += 1)
      tids.push(client.send(j % 2 ? 'a' : 'b', ['config-key', 'set', `${prefix}${j}`, `v${j}`]));
    await c.runUntil(() => tids.every((t) => client.acks.some((a) => a.tid === t && a.r === 0)), 10_000);
  }
}

/** mon.c misses 400 writes while it is down, then starts again (and syncs). */
async function restartBehind(c: SimCluster, client: ReturnType<typeof simClient>) {
  await c.crash('c');
  await c.runUntil(() => c.stableQuorum(2), 20_000);
  await write(c, client, 400, 4);
  await c.start('c');
}

/** Watch one monitor's sync decisions while the cluster runs. */
function watchSync(c: SimCluster, name: string) {
  const kinds: string[] = [];
  return {
    kinds,
    poll() {
      const s = status(c, name);
      const kind = s?.state === 'synchronizing' ? s.sync_decision?.kind : undefined;
      if (kind && kinds.at(-1) !== kind) kinds.push(kind);
    },
  };
}

test('a monitor down while thousands of versions are written and trimmed comes back by full sync and serves every key', async () => {
  const { c, client } = await cluster(31, {
    paxosMin: 50,
    paxosTrimMin: 25,
    paxosTrimMax: 100,
    monSyncMaxPayloadKeys: 200,
  });
  await c.crash('c');
  await c.runUntil(() => c.stableQuorum(2), 20_000);
  await write(c, client, 3000, 6);
  const before = status(c, 'a')?.paxos;
  assert.ok(
    before && before.first_committed > 2,
    `the cluster trimmed (first_committed ${before?.first_committed})`,
  );
  await c.start('c');
  const watch = watchSync(c, 'c');
  await c.runUntil(() => (watch.poll(), c.stableQuorum(3)), 60_000);
  assert.equal(watch.kinds, ['full'], 'a full sync ran');
  for (const i of [0, 1, 1500, 2998, 2999]) {
    const get = await client.call('c', ['config-key', 'get', `k${i}`]);
    assert.is(get.data, `v${i}`, `k${i} on mon.c`);
  }
  const keys = JSON.parse((await client.call('c', ['config-key', 'ls'])).data) as string[];
  assert.is(keys.length, 3000);
  assert.is(await c.node('c').store.getNumber('mon_sync', 'in_sync'), 0, 'the sync markers are gone');
  await c.stopAll();
});

test('a monitor that missed a few versions catches up by recent sync', async () => {
  const { c, client } = await cluster(32, { paxosMaxJoinDrift: 2 });
  await c.crash('c');
  await c.runUntil(() => c.stableQuorum(2), 20_000);
  for (let i = 0; i < 5; i += 1) await client.call('a', ['config-key', 'set', `r${i}`, `${i}`]);
  await c.start('c');
  const watch = watchSync(c, 'c');
  await c.runUntil(() => (watch.poll(), c.stableQuorum(3)), 30_000);
  assert.equal(watch.kinds, ['recent'], 'a recent sync ran');
  assert.is((await client.call('c', ['config-key', 'get', 'r4'])).data, '4');
  await c.stopAll();
});

test('requests that reach a monitor while it syncs are answered after its reload (the reloaded services take them on)', async () => {
  const { c, client } = await cluster(38, smallChunks);
  await restartBehind(c, client);
  const states: string[] = [];
  c.node('c').monitor?.actor.subscribe((snapshot) => {
    const state = monitorStateName(snapshot);
    if (states.at(-1) !== state) states.push(state);
  });
  await c.runUntil(() => status(c, 'c')?.state === 'synchronizing', 20_000);
  // Held by mon.c's services (not readable outside a quorum) while the sync runs; the reload
  // starts the services again from the synced store and hands them what the old ones held
  // (Ceph retries its waiting ops after sync_finish's bootstrap).
  const get = client.send('c', ['config-key', 'get', 'k399']);
  const set = client.send('c', ['config-key', 'set', 'during-sync', 'v']);
  const answered = (tid: number) => client.acks.find((a) => a.tid === tid && a.from === 'mon.c');
  await c.runUntil(() => answered(get) !== undefined && answered(set) !== undefined, 60_000);
  assert.ok(states.includes('reloading'), `mon.c reloaded before answering: ${states.join(' → ')}`);
  assert.is(answered(get)?.r, 0, answered(get)?.rs);
  assert.is(answered(get)?.data, 'v399', 'the read is answered from the synced store');
  assert.is(answered(set)?.r, 0, answered(set)?.rs);
  assert.is((await client.call('a', ['config-key', 'get', 'during-sync'])).data, 'v');
  await c.stopAll();
});

test('the provider dies mid-sync: the requester times out, bootstraps and finishes from another monitor', async () => {
  const { c, client } = await cluster(33, { ...smallChunks, monSyncTimeoutMs: 1500 });
  await restartBehind(c, client);
  // Wait until c is copying, and from whom.
  await c.runUntil(() => (status(c, 'c')?.sync?.keys ?? 0) > 20, 20_000);
  const provider = status(c, 'c')?.sync_decision?.provider.slice(4) as string;
  await c.crash(provider);
  await c.run(100);
  await c.start(provider);
  await c.runUntil(() => c.stableQuorum(3), 60_000);
  assert.is((await client.call('c', ['config-key', 'get', 'k399'])).data, 'v399');
  assert.is(JSON.parse((await client.call('c', ['config-key', 'ls'])).data).length, 400);
  await c.stopAll();
});

/** Every key of a store prefix. */
async function keysOf(c: SimCluster, name: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const [key] of c.node(name).store.iterate(prefix)) keys.push(key);
  return keys;
}

test('the requester crashes mid-sync: its store is as it was, the restart discards the staged copy and syncs again', async () => {
  // Ceph's sync_start clears the store first (and marks it in_sync); paxmon's full sync builds
  // the copy beside it (sync_stage.*) and switches only at the last chunk.
  const { c, client } = await cluster(34, smallChunks);
  await write(c, client, 10, 5, 'old');
  // restartBehind, with a look at c's store while it is down (a crash may lose its newest,
  // unsynced commit — here a round of up to 5 writes, as paxos_propose_gather fills rounds with
  // every request in flight: what the store holds then is what a sync must not take away).
  await c.crash('c');
  const before = {
    kv: await keysOf(c, 'c', 'config-key'),
    lc: await c.node('c').store.getNumber('paxos', 'last_committed'),
    monmap: await c.node('c').store.getNumber('monmap', 'last_committed'),
  };
  assert.ok(before.kv.length >= 5, `${before.kv.length} keys`);
  await c.runUntil(() => c.stableQuorum(2), 20_000);
  await write(c, client, 400, 4);
  await c.start('c');
  await c.runUntil(() => (status(c, 'c')?.sync?.keys ?? 0) > 30, 20_000);
  await c.crash('c');
  const store = c.node('c').store;
  assert.equal(await keysOf(c, 'c', 'config-key'), before.kv, 'the keys it had are all there');
  assert.ok((await store.getNumber('paxos', 'last_committed')) >= before.lc);
  assert.is(await store.getNumber('monmap', 'last_committed'), before.monmap);
  assert.is(await store.getNumber('mon_sync', 'in_sync'), 0, 'nothing marks the store as cleared');
  assert.ok((await keysOf(c, 'c', 'sync_stage.paxos')).length > 0, 'the partial copy is staged');
  await c.start('c');
  assert.equal(await keysOf(c, 'c', 'sync_stage.paxos'), [], 'discarded at start');
  const watch = watchSync(c, 'c');
  await c.runUntil(() => (watch.poll(), c.stableQuorum(3)), 60_000);
  assert.equal(watch.kinds, ['full']);
  assert.is(JSON.parse((await client.call('c', ['config-key', 'ls'])).data).length, 410);
  assert.is((await client.call('c', ['config-key', 'get', 'k7'])).data, 'v7');
  for (const prefix of ['paxos', 'config-key', 'monmap'])
    assert.equal(await keysOf(c, 'c', `sync_stage.${prefix}`), [], `sync_stage.${prefix} is empty`);
  await c.stopAll();
});

test('a store an older paxmon left mid-sync (in_sync, monmap erased): the restart takes the stashed map and syncs again', async () => {
  // paxmon's full sync used to erase the synced prefixes first (as Ceph's does) and mark the
  // store in_sync, with the map stashed in mon_sync/latest_monmap (Monitor::obtain_monmap). Such
  // a store still starts: from the stashed map, with a full sync.
  const { c, client } = await cluster(34, smallChunks);
  await restartBehind(c, client);
  await c.crash('c');
  const store = c.node('c').store;
  const map = await store.get('monmap', String(await store.getNumber('monmap', 'last_committed')));
  assert.ok(map);
  const tx = new Transaction()
    .putNumber('mon_sync', 'in_sync', 1)
    .put('mon_sync', 'latest_monmap', map)
    .eraseRange('paxos', '', '')
    .eraseRange('monmap', '', '')
    .eraseRange('config-key', '', '');
  await store.apply(tx, { sync: false });
  assert.is(await store.getNumber('monmap', 'last_committed'), 0, 'the monmap prefix is erased');
  await c.start('c');
  await c.runUntil(() => c.stableQuorum(3), 60_000);
  assert.is(JSON.parse((await client.call('c', ['config-key', 'ls'])).data).length, 400);
  await c.stopAll();
});

test('a chunk of an earlier sync delivered after the sync restarted is ignored (cookie check)', async () => {
  // Hold back one chunk of c's first sync (the sync then times out and restarts) and deliver it
  // right after the new cookie: taken, it would move the copy past keys the restart erased.
  let phase: 'copying' | 'holding' | 'done' = 'copying';
  let copied = 0;
  let total = 0;
  let held: { from: EntityName; msg: Message } | undefined;
  const c = new SimCluster({
    size: 3,
    seed: 39,
    config: { ...smallChunks, monSyncTimeoutMs: 1500 },
    wrapTransport: (name, transport) =>
      name !== 'c'
        ? transport
        : {
            get name() {
              return transport.name;
            },
            send: (to, msg, addr) => transport.send(to, msg, addr),
            close: () => transport.close(),
            setHandlers(handlers: TransportHandlers) {
              transport.setHandlers({
                ...handlers,
                onMessage(from, msg) {
                  if (msg.type === 'mon.sync' && phase === 'copying') {
                    if (msg.op === 'cookie') total = msg.totalKeys ?? 0;
                    if (msg.op === 'chunk') copied += msg.chunkKeys ?? 0;
                    if (msg.op === 'chunk' && total > 0 && copied > 0.7 * total) {
                      held = { from, msg };
                      phase = 'holding';
                      return;
                    }
                  }
                  handlers.onMessage(from, msg);
                  if (msg.type === 'mon.sync' && msg.op === 'cookie' && phase === 'holding' && held) {
                    phase = 'done';
                    handlers.onMessage(held.from, held.msg);
                  }
                },
              });
            },
          },
  });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3) && c.running().every((m) => m.isReadable()), 10_000);
  const client = simClient(c);
  await restartBehind(c, client);
  await c.runUntil(() => c.stableQuorum(3) && c.running().every((m) => m.isReadable()), 60_000);
  assert.is(phase, 'done', 'the stale chunk was delivered after the new cookie');
  const store = c.node('c').store;
  const missing: string[] = [];
  for (let i = 0; i < 400; i += 1) if (!(await store.get('config-key', `k${i}`))) missing.push(`k${i}`);
  assert.equal(missing, [], 'every key copied');
  await c.stopAll();
});

test('a full sync cut off halfway leaves the old store whole: a peer that syncs from it loses nothing', async () => {
  // c's full sync from the quorum is cut off (every other member crashes); d, further behind,
  // then probes c. When a full sync erased the store first, c's remains were half a store (d
  // copied them once, and then served 362 of 600 keys as a readable peon); now c's store is the
  // one it had before the sync, a whole copy of the committed history up to its last_committed.
  const c = new SimCluster({
    size: 5,
    seed: 35,
    config: { ...smallChunks, monSyncTimeoutMs: 1500 },
  });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(5) && c.running().every((m) => m.isReadable()), 20_000);
  const client = simClient(c);
  const writeRange = async (from: number, to: number) => {
    for (let i = from; i < to; i += 4) {
      const tids: number[] = [];
      for (let j = i; j < i + 4; j += 1)
        tids.push(client.send(j % 2 ? 'a' : 'b', ['config-key', 'set', `k${j}`, `v${j}`]));
      await c.runUntil(() => tids.every((t) => client.acks.some((a) => a.tid === t && a.r === 0)), 10_000);
    }
  };
  await c.crash('d');
  await c.runUntil(() => c.stableQuorum(4), 20_000);
  await writeRange(0, 200);
  await c.crash('c');
  await c.runUntil(() => c.stableQuorum(3), 20_000);
  await writeRange(200, 600);
  await c.start('c');
  await c.runUntil(
    () => status(c, 'c')?.state === 'synchronizing' && (status(c, 'c')?.sync?.keys ?? 0) >= 700,
    20_000,
  );
  for (const name of ['a', 'b', 'e']) await c.crash(name);
  await c.runUntil(() => status(c, 'c')?.state === 'probing', 10_000);
  // All it had when it crashed before its sync (the crash may have lost its newest commit, 4 keys).
  const kept = (await keysOf(c, 'c', 'config-key')).length;
  assert.ok(kept >= 196, `c's store still holds the keys it had (${kept})`);
  await c.start('d');
  const providers = new Set<string>();
  const watchD = () => {
    const provider = status(c, 'd')?.sync_decision?.provider;
    if (status(c, 'd')?.state === 'synchronizing' && provider) providers.add(provider);
    return false;
  };
  await c.runUntil(watchD, 10_000).catch(() => {});
  for (const name of ['a', 'b', 'e']) await c.start(name);
  await c.runUntil(() => watchD() || (c.stableQuorum(5) && c.running().every((m) => m.isReadable())), 60_000);
  for (const name of ['c', 'd']) {
    const keys = JSON.parse((await client.call(name, ['config-key', 'ls'])).data) as string[];
    assert.is(keys.length, 600, `every key on mon.${name}`);
    assert.is((await client.call(name, ['config-key', 'get', 'k599'])).data, 'v599');
  }
  await c.stopAll();
});

test("a full sync copies a custom service's history too: the synced monitor answers its state and goes on from its versions", async () => {
  const c = new SimCluster({
    size: 3,
    seed: 37,
    config: { paxosMin: 20, paxosTrimMin: 10, paxosTrimMax: 50, monSyncMaxPayloadKeys: 50 },
    services: [counter as ServiceDefinition],
  });
  await c.mkfs();
  await c.startAll();
  await c.runUntil(() => c.stableQuorum(3) && c.running().every((m) => m.isReadable()), 10_000);
  const client = simClient(c);
  await c.crash('c');
  await c.runUntil(() => c.stableQuorum(2), 20_000);
  for (let i = 1; i <= 120; i += 1) assert.is((await client.call('a', ['counter', 'add', '1'])).r, 0);
  await c.start('c');
  // The sync reloads inside the monitor's actor (reloading: io.load → monitor.loaded): the one
  // the handle gave at start is the one that goes on, and its subscribers see it go on.
  const actor = c.node('c').monitor?.actor;
  const states: string[] = [];
  actor?.subscribe((snapshot) => {
    const state = monitorStateName(snapshot);
    if (states.at(-1) !== state) states.push(state);
  });
  const watch = watchSync(c, 'c');
  await c.runUntil(
    () => (watch.poll(), c.stableQuorum(3) && c.running().every((m) => m.isReadable())),
    60_000,
  );
  assert.equal(watch.kinds, ['full'], 'a full sync ran');
  assert.ok(actor && c.node('c').monitor?.actor === actor, "mon.c's actor is the one it started with");
  const reloaded = states.indexOf('reloading');
  assert.ok(
    reloaded > 0 && states[reloaded + 1] === 'probing',
    `reloaded, then bootstrap: ${states.join(' → ')}`,
  );
  assert.ok(
    states.slice(reloaded).some((s) => s === 'peon' || s === 'leader'),
    `the subscriber saw mon.c in the quorum after the reload: ${states.join(' → ')}`,
  );
  const versions = async (name: string) => c.node(name).store.getNumber('counter', 'last_committed');
  assert.is(await versions('c'), await versions('a'), "mon.c holds the counter's versions");
  assert.is((await client.call('c', ['counter', 'get'])).data, '120');
  assert.is((await client.call('c', ['counter', 'add', '5'])).rs, 'counter = 125');
  await c.stopAll();
});

test.run();
