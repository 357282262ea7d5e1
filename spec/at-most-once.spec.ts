// At most once on real processes (issue 20): a client update in flight when the leader is killed
// -9, retried until it is acknowledged, overwritten, and then — after the surviving monitors
// trimmed their Paxos history past everything the old leader holds, so that it full-syncs on
// restart — sent again, with the same client and tid, to every monitor. Every copy must get the
// answer of the one application, and the value must stay overwritten. Before the fix, the
// restarted monitor rebuilt its dedupe table only from the versions left after the trim, and the
// late copy set the old value again. Real TCP, RocksDB and `paxmon mon` processes.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MonClient } from '../actors/mon-client.ts';
import { spawnMonitor } from '../cli/cluster.ts';
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

const dir = tempDir('at-most-once');
const decoder = new TextDecoder();
// Trim Paxos after a few dozen versions, so a monitor that was down for the writes below must
// full-sync; and config-key's own history (it keeps 500 versions) soon after, so the version that
// applied the update is gone from every store by the time its late copy comes.
const options = [
  'paxos_min=20',
  'paxos_trim_min=5',
  'paxos_trim_max=1000',
  'paxos_service_trim_min=5',
  'paxos_service_trim_max=1000',
];
const setArgs = options.flatMap((o) => ['--set', o]);

test.after(async () => {
  await paxmon(['down', '--dir', dir]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

test('an update in flight at kill -9 of the leader applies once, even when a copy reaches it after it full-synced', async () => {
  const port = await freePorts(3);
  const up = await upDetached(dir, port, 3, setArgs);
  assert.is(up.code, 0, up.stderr);
  const first = await waitForQuorum(dir, 3);
  const names = ['a', 'b', 'c'];
  const addr = (name: string) => `127.0.0.1:${port + names.indexOf(name)}`;
  const leader = first.quorum_leader_name;
  const others = names.filter((n) => n !== leader);
  const client = new MonClient({
    mons: names.map((name) => ({ name, addr: addr(name) })),
    timeoutMs: 20_000,
    key: adminKey(dir),
  });
  const raw = rawClient(dir, 'client.at-most-once');
  try {
    // The update, sent to the leader, which is killed at once: it may or may not have committed.
    const deadline = Date.now() + 120_000;
    const update = ['config-key', 'set', 'amo/k', 'first'];
    raw.send(`mon.${leader}`, addr(leader), 1, update, deadline);
    const leaderPid = Number(readFileSync(join(dir, leader, 'pid'), 'utf8'));
    process.kill(leaderPid, 'SIGKILL');
    await pollUntil('the leader gone', 10_000, async () => (alive(leaderPid) ? undefined : true), {
      intervalMs: 20,
    });
    // The client retries the same request (same tid, same deadline) until a survivor answers it.
    let attempt = 0;
    const applied = await pollUntil(
      'the retry acknowledged',
      30_000,
      async () => {
        attempt += 1;
        const target = others[attempt % others.length] as string;
        raw.send(`mon.${target}`, addr(target), 1, update, deadline);
        return raw.acks.find((a) => a.tid === 1 && a.r === 0);
      },
      { intervalMs: 300 },
    );
    assert.is(applied.rs, 'set amo/k');
    // Overwritten, then enough writes for the survivors to trim past all the old leader holds.
    assert.is((await client.command(['config-key', 'set', 'amo/k', 'second'])).r, 0);
    // One at a time: each is a Paxos version of its own (concurrent ones would share versions).
    for (let i = 0; i < 560; i += 1) {
      const reply = await client.command(['config-key', 'set', `amo/fill${i % 8}`, String(i)]);
      assert.is(reply.r, 0, reply.rs);
    }
    const status = async (name: string) => {
      const one = new MonClient({ mons: [{ name, addr: addr(name) }], timeoutMs: 5_000, key: adminKey(dir) });
      const reply = await one.command(['mon_status']).finally(() => one.close());
      return JSON.parse(decoder.decode(reply.data)) as {
        state: string;
        paxos: { first_committed: number; last_committed: number } | null;
      };
    };
    const survivor = await status(others[0] as string);
    assert.ok(
      survivor.paxos && survivor.paxos.first_committed > 500,
      `trimmed: ${JSON.stringify(survivor.paxos)}`,
    );

    // The old leader comes back over its old store: its last_committed is below the survivors'
    // first_committed, so it full-syncs, then joins.
    spawnMonitor(join(dir, leader), setArgs);
    await waitForQuorum(dir, 3, { timeoutMs: 60_000 });
    const back = await status(leader);
    assert.ok(back.paxos && back.paxos.first_committed > 500, `synced: ${JSON.stringify(back.paxos)}`);

    // Late copies of the update reach every monitor (the restarted one first): each answers
    // with the one application's answer, and nothing is applied again.
    for (const name of [leader, ...others]) raw.send(`mon.${name}`, addr(name), 1, update, deadline);
    await pollUntil('three answers to the late copies', 20_000, async () =>
      raw.acks.filter((a) => a.tid === 1).length >= 4 ? true : undefined,
    );
    const late = raw.acks.filter((a) => a.tid === 1).slice(-3);
    assert.equal(
      late.map((a) => `${a.r} ${a.rs}`),
      ['0 set amo/k', '0 set amo/k', '0 set amo/k'],
      JSON.stringify(raw.acks),
    );
    // One more write through the leader makes sure every late copy has gone through Paxos if it
    // was going to, then every monitor reads the value.
    assert.is((await client.command(['config-key', 'set', 'amo/after', 'x'])).r, 0);
    for (const name of names) {
      const one = new MonClient({
        mons: [{ name, addr: addr(name) }],
        timeoutMs: 10_000,
        key: adminKey(dir),
      });
      const got = await one.command(['config-key', 'get', 'amo/k']);
      await one.close();
      assert.is(decoder.decode(got.data), 'second', `mon.${name} reads the overwrite, not the late copy`);
    }

    // A copy whose deadline has passed is refused, not applied.
    raw.send(`mon.${leader}`, addr(leader), 2, ['config-key', 'set', 'amo/k', 'late'], Date.now() - 1);
    const refused = await pollUntil('the expired copy answered', 10_000, async () =>
      raw.acks.find((a) => a.tid === 2),
    );
    assert.is(refused.r, -110, refused.rs);
    assert.is(decoder.decode((await client.command(['config-key', 'get', 'amo/k'])).data), 'second');
  } finally {
    await raw.close();
    await client.close();
  }
});

test.run();
