// A monitor embedded in-process (real RocksDB in a temp dir, real TCP on loopback): what its
// shutdown owes the store and the clients.
import { rmSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { performRead } from '../actors/io.ts';
import { keySecret } from '../actors/keyring.ts';
import { buildMonMap, mkfsTransaction, newClusterKeyring } from '../actors/mkfs.ts';
import { MonClient } from '../actors/mon-client.ts';
import { createMonitor, type MonitorHandle } from '../actors/monitor.ts';
import { logDataPrefix } from '../machines/services/log.ts';
import { RocksDBStore } from '../storage/rocksdb-store.ts';
import type { Store } from '../storage/store.ts';
import { Messenger } from '../transport/messenger.ts';
import { freePorts, tempDir } from './support/process.ts';

const dir = tempDir('daemon');
const fsid = '3c1e5a7b-9d2f-4b6a-8c0e-1f2a3b4c5d6e';
// The monitor's keyring (`mon.` and client.admin, as mkfs writes it): its messenger proves `mon.`
// and knows client.admin's key; the monitor's auth database starts from it.
const keyring = newClusterKeyring();
const keys = new Map(keyring.map((entry) => [entry.entity, keySecret(entry)]));
const keyOf = (entity: string) => keyring.find((entry) => entry.entity === entity)?.key ?? '';

test('stopped while a store read is under way, drain() waits for it: the read is answered, nothing is fatal', async () => {
  const addr = `127.0.0.1:${await freePorts(1)}`;
  const rocks = await RocksDBStore.open(dir, { create: true });
  await rocks.apply(mkfsTransaction('a', buildMonMap(fsid, [{ name: 'a', addr }], 0)));
  // The real store, with one hook: the monitor is told to stop the moment it starts reading the
  // log, so the read is in flight while it stops. Without the wait, the read met a closed store
  // and reported a store failure (a SIGTERMed monitor exited EIO), and the client no answer.
  let mon: MonitorHandle | undefined;
  let stopping: Promise<void> | undefined;
  let armed = false;
  const store = new Proxy(rocks, {
    get(target, property) {
      if (property !== 'iterate') {
        const value = Reflect.get(target, property);
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (prefix: string, options?: Parameters<Store['iterate']>[1]) => {
        // The daemon's own order: the monitor, then the messenger, then the store.
        if (armed && prefix === logDataPrefix && stopping === undefined) {
          // From outside the read's own call, as a SIGTERM handler would.
          stopping = new Promise<void>((resolve) => queueMicrotask(resolve))
            .then(() => mon?.stop())
            .then(() => mon?.drain())
            .then(() => messenger.close())
            .then(() => rocks.close());
        }
        return target.iterate(prefix, options);
      };
    },
  });
  const messenger = new Messenger({
    name: 'mon.a',
    fsid,
    rank: 0,
    listenAddr: addr,
    auth: {
      entity: 'mon.',
      secret: keySecret(keyOf('mon.')),
      keyFor: (entity) => keys.get(entity),
    },
  });
  await messenger.listen();
  const fatal: Error[] = [];
  mon = await createMonitor({ store, transport: messenger, keyring, onFatal: (error) => fatal.push(error) });
  const client = new MonClient({
    mons: [{ name: 'a', addr }],
    fsid,
    timeoutMs: 20_000,
    key: keyOf('client.admin'),
  });
  try {
    for (let i = 0; i < 20; i++) assert.is((await client.command(['log', `line ${i}`])).r, 0);
    armed = true;
    const reply = await client.command(['log', 'last', '50']);
    assert.ok(stopping, 'the monitor was stopping while it read');
    await stopping;
    assert.is(reply.r, 0, reply.rs);
    assert.match(new TextDecoder().decode(reply.data), /line 19/);
    assert.equal(
      fatal.map((e) => e.message),
      [],
      'a read cut short by a shutdown is not a store failure',
    );
  } finally {
    await client.close();
    await mon?.stop();
    await messenger.close();
    await rocks.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a read of a key the store refuses is answered EINVAL, not raised as a store failure', async () => {
  const store = await RocksDBStore.open(tempDir('daemon-read'), { create: true });
  try {
    const reply = await performRead(store, {
      kind: 'get',
      prefix: 'config-key',
      key: 'k'.repeat(20_000),
      missing: { r: -2, rs: 'missing' },
    });
    assert.is(reply.r, -22);
    assert.match(reply.rs, /20000 bytes, limit 16384/);
  } finally {
    await store.close();
  }
});

test.run();
