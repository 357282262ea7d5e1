// The services over real processes: 3 monitors started by the CLI (TCP, RocksDB), clients
// writing through every monitor, kill -9 of the whole cluster, and the client history checked
// for linearizability.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MonClient } from '../actors/mon-client.ts';
import {
  checkOperations,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
} from '../sim/linearizability/index.ts';
import { adminKey, alive, freePorts, paxmon, pollUntil, tempDir, upDetached } from './support/process.ts';

const dir = tempDir('services');
let clients: MonClient[] = [];

interface ClusterFile {
  fsid: string;
  mons: { name: string; addr: string }[];
}
const cluster = () => JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
const pidOf = (name: string) => Number(readFileSync(join(dir, name, 'pid'), 'utf8'));

/** One client per monitor, each pinned to it. */
function clientsPerMonitor(): MonClient[] {
  const c = cluster();
  return c.mons.map(
    (m) =>
      new MonClient({
        mons: [{ name: m.name, addr: m.addr }],
        fsid: c.fsid,
        timeoutMs: 15_000,
        key: adminKey(dir),
      }),
  );
}

async function readableEverywhere() {
  await pollUntil('every monitor answers reads', 30_000, async () => {
    for (const client of clientsPerMonitor()) {
      try {
        const r = await client.command(['config-key', 'exists', 'probe']);
        if (r.r !== 0 && r.r !== -2) return undefined;
      } finally {
        await client.close();
      }
    }
    return true;
  });
}

test.after(async () => {
  for (const client of clients) await client.close();
  await paxmon(['down', '--dir', dir]).catch(() => {});
  if (!process.env.PAXMON_KEEP) rmSync(dir, { recursive: true, force: true });
});

test('500 config-key sets through different monitors; every monitor reads the last values; kill -9 all; restart; nothing acknowledged is lost', async () => {
  const port = await freePorts(3);
  const up = await upDetached(dir, port);
  assert.is(up.code, 0, up.stderr);
  await readableEverywhere();
  clients = clientsPerMonitor();

  const history: Operation<KvInput, KvOutput>[] = [];
  const clock = () => performance.now();
  const last = new Map<string, string>();
  // Three writers at once, one per monitor, each key written by one writer at a time.
  await Promise.all(
    clients.map(async (client, writer) => {
      for (let i = writer; i < 500; i += 3) {
        const key = `k${i % 50}`;
        const value = `v${i}`;
        const call = clock();
        const reply = await client.command(['config-key', 'set', key, value]);
        assert.is(reply.r, 0, reply.rs);
        history.push({
          clientId: writer,
          input: { op: 'put', key, value },
          call,
          output: { value: undefined },
          return: clock(),
        });
        last.set(key, value);
      }
    }),
  );
  assert.is(history.length, 500);
  // The writers raced on keys (i % 50 across writers), so "the last value" is what the history
  // says it must be: check with every monitor, and check the history is linearizable.
  for (const [index, client] of clients.entries()) {
    for (let k = 0; k < 50; k += 1) {
      const key = `k${k}`;
      const call = clock();
      const reply = await client.command(['config-key', 'get', key]);
      assert.is(reply.r, 0, `mon ${index} ${key}`);
      const value = new TextDecoder().decode(reply.data);
      history.push({
        clientId: 10 + index,
        input: { op: 'get', key },
        call,
        output: { value },
        return: clock(),
      });
    }
  }
  const verdict = checkOperations(kvModel({ missing: 'undefined' }), history);
  assert.is(verdict.result, 'ok', 'the client history is linearizable');

  // Snapshot of what every monitor agrees on now, then kill -9 the whole cluster.
  const agreed = new Map<string, string>();
  for (let k = 0; k < 50; k += 1) {
    const reply = await clients[0]?.command(['config-key', 'get', `k${k}`]);
    agreed.set(`k${k}`, new TextDecoder().decode(reply?.data));
  }
  for (const client of clients) await client.close();
  clients = [];
  const pids = cluster().mons.map((m) => pidOf(m.name));
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await pollUntil('all monitors dead', 10_000, async () => (pids.some(alive) ? undefined : true), {
    intervalMs: 50,
  });

  const again = await paxmon(['--timeout', '30', 'up', '--dir', dir, '--detach']);
  assert.is(again.code, 0, again.stderr);
  await readableEverywhere();
  clients = clientsPerMonitor();
  for (const [index, client] of clients.entries()) {
    for (const [key, value] of agreed) {
      const reply = await client.command(['config-key', 'get', key]);
      assert.is(new TextDecoder().decode(reply.data), value, `mon ${index} ${key} after kill -9 and restart`);
    }
  }
  assert.ok(last.size === 50);
});

test('the CLI: EFBIG for 64 KiB + 1 (nothing stored), ENOENT exits 2, binary values byte-exact', async () => {
  const big = join(dir, 'big.bin');
  writeFileSync(big, Buffer.alloc(64 * 1024 + 1, 7));
  const refused = await paxmon(['--dir', dir, 'config-key', 'set', 'big', '-i', big]);
  assert.is(refused.code, 27, refused.stderr);
  assert.match(refused.stderr, /^Error EFBIG: /m);
  const exists = await paxmon(['--dir', dir, 'config-key', 'exists', 'big']);
  assert.is(exists.code, 2);
  assert.match(exists.stderr, /^Error ENOENT: key 'big' doesn't exist/m);
  const missing = await paxmon(['--dir', dir, 'config-key', 'get', 'no-such-key']);
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /^Error ENOENT: /m);

  const binary = join(dir, 'binary.bin');
  const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) % 256));
  writeFileSync(binary, bytes);
  const set = await paxmon(['--dir', dir, 'config-key', 'set', 'bin', '-i', binary]);
  assert.is(set.code, 0, set.stderr);
  assert.match(set.stderr, /set bin/);
  const out = join(dir, 'out.bin');
  const get = await paxmon(['--dir', dir, 'config-key', 'get', 'bin', '-o', out]);
  assert.is(get.code, 0, get.stderr);
  assert.ok(readFileSync(out).equals(bytes), 'byte-exact round trip');
});

test.run();
