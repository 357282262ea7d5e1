// Sync and membership over real processes: a monitor stopped while 5,000 keys of 1 KiB are
// written catches up when it returns; a fourth monitor is added (mon add + mkfs + start) and
// removed again (mon rm), and the removed one exits.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MonClient } from '../actors/mon-client.ts';
import {
  adminKey,
  alive,
  freePorts,
  paxmon,
  pollUntil,
  spawnMon,
  tempDir,
  upDetached,
  waitForQuorum,
} from './support/process.ts';

const dir = tempDir('membership');
interface ClusterFile {
  fsid: string;
  mons: { name: string; addr: string }[];
}
const cluster = () => JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
const pidOf = (name: string) => Number(readFileSync(join(dir, name, 'pid'), 'utf8'));
const client = (names: string[]) => {
  const c = cluster();
  return new MonClient({
    mons: c.mons.filter((m) => names.includes(m.name)),
    fsid: c.fsid,
    timeoutMs: 20_000,
    key: adminKey(dir),
  });
};

const quorumOf = (size: number) => waitForQuorum(dir, size, { timeoutMs: 60_000 });

test.after(async () => {
  await paxmon(['down', '--dir', dir]).catch(() => {});
  if (!process.env.PAXMON_KEEP) rmSync(dir, { recursive: true, force: true });
});

test('a monitor stopped while 5,000 keys of 1 KiB are written returns and serves the latest values', async () => {
  const port = await freePorts(5);
  const up = await upDetached(dir, port);
  assert.is(up.code, 0, up.stderr);
  await quorumOf(3);
  const cPid = pidOf('c');
  process.kill(cPid, 'SIGTERM');
  await pollUntil('mon.c stopped', 15_000, async () => (alive(cPid) ? undefined : true), { intervalMs: 50 });
  await quorumOf(2);

  const writer = client(['a', 'b']);
  const value = (i: number) => `${String(i).padStart(6, '0')}${'x'.repeat(1018)}`;
  // 32 writes in flight: the leader batches them into rounds.
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < 5000) {
        const i = next++;
        const reply = await writer.command(['config-key', 'set', `key${i}`, value(i)]);
        assert.is(reply.r, 0, reply.rs);
      }
    }),
  );
  await writer.close();

  spawnMon(join(dir, 'c'));
  await quorumOf(3);
  const reader = client(['c']);
  try {
    await pollUntil('mon.c readable', 30_000, async () =>
      (await reader.command(['config-key', 'exists', 'key0'])).r === 0 ? true : undefined,
    );
    for (const i of [0, 1, 777, 2500, 4998, 4999]) {
      const reply = await reader.command(['config-key', 'get', `key${i}`]);
      assert.is(new TextDecoder().decode(reply.data), value(i), `key${i} from mon.c`);
    }
    const keys = JSON.parse(
      new TextDecoder().decode((await reader.command(['config-key', 'ls'])).data),
    ) as string[];
    assert.is(keys.filter((k) => k.startsWith('key')).length, 5000);
  } finally {
    await reader.close();
  }
});

test('mon add d + mkfs + start d → a quorum of 4; mon rm d → a quorum of 3 and d exits', async () => {
  // An option the new monitor would die on is refused before anything is added to the map.
  const bad = await paxmon(['up', '--dir', dir, '--add', '1', '--set', 'foo=1']);
  assert.is(bad.code, 22, bad.stderr);
  assert.match(bad.stderr, /^Error EINVAL: unknown option 'foo'/m);
  const add = await paxmon(['up', '--dir', dir, '--add', '1']);
  assert.is(add.code, 0, add.stderr);
  assert.match(add.stdout, /^monitors now: a@\S+ b@\S+ c@\S+ d@\S+$/m);
  const four = await quorumOf(4);
  assert.equal(four.quorum_names, ['a', 'b', 'c', 'd']);
  const dump = await paxmon(['--dir', dir, '--format', 'json', 'mon', 'dump']);
  assert.is((JSON.parse(dump.stdout) as { epoch: number }).epoch, 2, 'mon add made monmap epoch 2');
  const dPid = pidOf('d');
  const rm = await paxmon(['--dir', dir, 'mon', 'rm', 'd']);
  assert.is(rm.code, 0, rm.stderr);
  assert.match(rm.stderr, /removing mon\.d at .*, there will be 3 monitors/);
  assert.match(rm.stderr, /mon\.d left .*cluster\.json; its data stays in /);
  assert.equal(
    cluster().mons.map((m) => m.name),
    ['a', 'b', 'c'],
  );
  const three = await quorumOf(3);
  assert.equal(three.quorum_names, ['a', 'b', 'c']);
  await pollUntil('mon.d exits', 20_000, async () => (alive(dPid) ? undefined : true), { intervalMs: 100 });
  assert.match(readFileSync(join(dir, 'd', 'log'), 'utf8'), /removed from the monmap \(epoch 3\)/);
  // EEXIST on a name or address conflict; refusing the last monitor is covered in the simulator.
  const clash = await paxmon(['--dir', dir, 'mon', 'add', 'a', '127.0.0.1:1']);
  assert.is(clash.code, 17, clash.stderr);
  assert.match(clash.stderr, /^Error EEXIST: mon\.a already exists/m);
  // `up` starts the monitors cluster.json names: without d there, the cluster starts again.
  assert.is((await paxmon(['down', '--dir', dir])).code, 0);
  const again = await paxmon(['--timeout', '30', 'up', '--dir', dir, '--detach']);
  assert.is(again.code, 0, again.stderr);
  assert.equal((await quorumOf(3)).quorum_names, ['a', 'b', 'c']);
  // tell with -m addresses only: the named monitor answers, or ENOENT — never another one.
  const addrs = cluster()
    .mons.map((m) => m.addr)
    .join(',');
  const told = await paxmon([
    '-k',
    join(dir, 'keyring'),
    '-m',
    addrs,
    '--format',
    'json',
    'tell',
    'mon.b',
    'mon_status',
  ]);
  assert.is(told.code, 0, told.stderr);
  assert.is((JSON.parse(told.stdout) as { name: string }).name, 'b');
  const nobody = await paxmon(['-k', join(dir, 'keyring'), '-m', addrs, 'tell', 'mon.zz', 'mon_status']);
  assert.is(nobody.code, 2, nobody.stderr);
  assert.match(nobody.stderr, /^Error ENOENT: mon\.zz is not one of mon\.a, mon\.b, mon\.c/m);
});

test('a new monitor given one peer and its own address joins by itself (mon.join), syncs and serves reads', async () => {
  const c = cluster();
  const port = Number(c.mons[2]?.addr.split(':')[1]) + 2;
  const addr = `127.0.0.1:${port}`;
  const joinDir = join(dir, 'e');
  // The cluster's mon. key, as a Ceph operator gets it for a new monitor (ceph auth get mon.).
  const monKeyring = join(dir, 'mon-e.keyring');
  const got = await paxmon(['--dir', dir, 'auth', 'get', 'mon.', '-o', monKeyring]);
  assert.is(got.code, 0, got.stderr);
  const mkfs = await paxmon([
    'mkfs',
    '--keyring',
    monKeyring,
    '--dir',
    joinDir,
    '--name',
    'e',
    '--fsid',
    c.fsid,
    '--mon',
    `a=${c.mons[0]?.addr}`,
    '--addr',
    addr,
  ]);
  assert.is(mkfs.code, 0, mkfs.stderr);
  const pid = spawnMon(joinDir);
  try {
    const four = await quorumOf(4);
    assert.ok(four.quorum_names.includes('e'), `e joined: ${four.quorum_names.join(',')}`);
    const reader = new MonClient({
      mons: [{ name: 'e', addr }],
      fsid: c.fsid,
      timeoutMs: 20_000,
      key: adminKey(dir),
    });
    try {
      const reply = await pollUntil('mon.e readable', 30_000, async () => {
        const r = await reader.command(['config-key', 'get', 'key4999']);
        return r.r === 0 ? r : undefined;
      });
      assert.match(new TextDecoder().decode(reply.data), /^004999x+$/);
    } finally {
      await reader.close();
    }
  } finally {
    process.kill(pid, 'SIGTERM');
  }
});

test.run();
