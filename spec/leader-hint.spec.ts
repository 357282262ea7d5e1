// Updates find the leader (issue 13, the bench bound; README "Where paxmon departs from Ceph"): a
// peon that forwarded a client's update names the leader and the command's prefix in its answer
// (LeaderHint), and MonClient sends the next updates of that prefix to that leader itself —
// learning its address from the hint, as Ceph's MonClient learns monitors from the monmap.
// Reads are never hinted: they stay with the client's monitor. Real `paxmon mon` processes,
// real TCP.
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
  rawClient,
  tempDir,
  upDetached,
  waitForQuorum,
} from './support/process.ts';

const dir = tempDir('leader-hint');
const decoder = new TextDecoder();

test.after(async () => {
  await paxmon(['down', '--dir', dir]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

test('a peon names the leader on a forwarded update; MonClient then sends updates to it, reads stay', async () => {
  const port = await freePorts(3);
  const up = await upDetached(dir, port, 3);
  assert.is(up.code, 0, up.stderr);
  const quorum = await waitForQuorum(dir, 3);
  const names = ['a', 'b', 'c'];
  const addr = (name: string) => `127.0.0.1:${port + names.indexOf(name)}`;
  const leader = quorum.quorum_leader_name;
  const peon = names.find((n) => n !== leader) as string;

  // The wire: a forwarded update's answer carries the hint; a read's, and the leader's own, do not.
  const raw = rawClient(dir, 'client.leader-hint');
  const ask = (to: string, tid: number, cmd: string[]) => {
    raw.send(`mon.${to}`, addr(to), tid, cmd, Date.now() + 30_000);
    return pollUntil(
      `the answer to ${cmd.join(' ')}`,
      20_000,
      async () => raw.acks.find((a) => a.tid === tid),
      {
        intervalMs: 20,
      },
    );
  };
  try {
    const forwarded = await ask(peon, 1, ['config-key', 'set', 'hint/k', 'v1']);
    assert.is(forwarded.r, 0);
    assert.equal(forwarded.leader, { name: leader, addr: addr(leader), prefix: 'config-key set' });
    const read = await ask(peon, 2, ['config-key', 'get', 'hint/k']);
    assert.is(read.r, 0);
    assert.is(read.leader, undefined, 'a read is answered by the peon, not forwarded');
    const direct = await ask(leader, 3, ['config-key', 'set', 'hint/k', 'v2']);
    assert.is(direct.r, 0);
    assert.is(direct.leader, undefined, 'the leader forwards nothing');
  } finally {
    await raw.close();
  }

  // MonClient, given only the peon's address: its first update is forwarded and names the leader.
  const client = new MonClient({ mons: [{ addr: addr(peon) }], key: adminKey(dir), timeoutMs: 30_000 });
  try {
    assert.is((await client.command(['config-key', 'set', 'hint/k', 'v3'])).r, 0);
    assert.is(client.leader, leader);
    const got = await client.command(['config-key', 'get', 'hint/k']);
    assert.is(decoder.decode(got.data), 'v3');

    // With the peon gone, an update still reaches the leader: the client learnt where it is.
    // (Without the hint, this client knows no other monitor and fails with ETIMEDOUT.)
    const peonPid = Number(readFileSync(join(dir, peon, 'pid'), 'utf8'));
    process.kill(peonPid, 'SIGKILL');
    await pollUntil('the peon gone', 10_000, async () => (alive(peonPid) ? undefined : true), {
      intervalMs: 20,
    });
    const after = await client.command(['config-key', 'set', 'hint/k', 'v4']);
    assert.is(after.r, 0, after.rs);
    assert.is(client.leader, leader);
  } finally {
    await client.close();
  }
  const check = new MonClient({ mons: [{ addr: addr(leader) }], key: adminKey(dir), timeoutMs: 30_000 });
  try {
    assert.is(decoder.decode((await check.command(['config-key', 'get', 'hint/k'])).data), 'v4');
  } finally {
    await check.close();
  }
});

test.run();
