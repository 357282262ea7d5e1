// Issue 13, part 4, on real processes over TCP: the attacks of the issue, made with nothing but
// the monitors' addresses — a raw Messenger named `client.x`, and one that claims to be `mon.a`
// (or a monitor of no map) in its handshake. Every monitor must stay up with its store whole, the
// quorum must stand (or come back at once), and every acknowledged write must stay.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { keySecret } from '../actors/keyring.ts';
import { MonClient } from '../actors/mon-client.ts';
import { parseKeyring } from '../machines/keyring-text.ts';
import { Transaction } from '../storage/transaction.ts';
import type { EntityName, Message, MonMap } from '../transport/messages.ts';
import { Messenger } from '../transport/messenger.ts';
import {
  adminKey,
  alive,
  freePorts,
  paxmon,
  pollUntil,
  tempDir,
  upDetached,
  waitForQuorum,
} from './support/process.ts';

const dir = tempDir('hostile');
const names = ['a', 'b', 'c'];
interface ClusterFile {
  fsid: string;
  mons: { name: string; addr: string }[];
}
const clusterFile = () => JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
const pidOf = (name: string) => Number(readFileSync(join(dir, name, 'pid'), 'utf8'));
/**
 * The attackers' keys, from mon.a's keyring (it holds `mon.` and client.admin): client.x holds
 * client.admin's (a plain client connection, authenticated), and the ones that claim monitor
 * names hold `mon.` (what a real monitor could send: issue 13 §4). Without a key each would stop
 * at the handshake, with EACCES (spec/transport.spec.ts).
 */
const secretOf = (entity: string) =>
  keySecret(
    parseKeyring(readFileSync(join(dir, 'a', 'keyring'), 'utf8')).find((e) => e.entity === entity)?.key ?? '',
  );

test.after(async () => {
  await paxmon(['down', '--dir', dir]).catch(() => {});
  if (!process.env.PAXMON_KEEP) rmSync(dir, { recursive: true, force: true });
});

async function monDump(): Promise<MonMap & { mons: { name: string }[] }> {
  const r = await paxmon(['--dir', dir, '--format', 'json', '--timeout', '10', 'mon', 'getmap']);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as MonMap;
}

test('the issue 13 attacks over TCP: probes, forged commits, joins and a forged sync leave the cluster whole', async () => {
  const port = await freePorts(3);
  const up = await upDetached(dir, port);
  assert.is(up.code, 0, up.stderr);
  const first = await waitForQuorum(dir, 3);
  const cluster = clusterFile();
  const addr = (name: string) => cluster.mons.find((m) => m.name === name)?.addr as string;
  const pids = names.map(pidOf);
  const client = new MonClient({
    mons: cluster.mons,
    fsid: cluster.fsid,
    timeoutMs: 20_000,
    key: adminKey(dir),
  });
  const acked: string[] = [];
  const write = async (key: string) => {
    const r = await client.command(['config-key', 'set', key, `v-${key}`]);
    assert.is(r.r, 0, r.rs);
    acked.push(key);
  };
  const attackers: Messenger[] = [];
  try {
    for (let i = 0; i < 5; i += 1) await write(`before${i}`);
    const map = await monDump();
    const without = (name: string): MonMap => ({
      ...map,
      epoch: 1_000_000,
      mons: map.mons.filter((m) => m.name !== name).map((m, rank) => ({ ...m, rank })),
    });
    const probe = (op: 'probe' | 'reply', name: string, monmap: MonMap, quorum: number[] = []): Message => ({
      type: 'mon.probe',
      op,
      fsid: cluster.fsid,
      name,
      quorum,
      monmap,
      paxosFirstVersion: 1_000_000,
      paxosLastVersion: 1_000_000,
      hasEverJoined: true,
    });

    // 1. Two probes per monitor over a plain client connection, the second with a map of epoch
    // 1,000,000 that leaves the monitor out (Ceph: every monitor wrote it and exited).
    const x = new Messenger({
      name: 'client.x',
      fsid: cluster.fsid,
      auth: { entity: 'client.admin', secret: secretOf('client.admin') },
    });
    attackers.push(x);
    for (const name of names) {
      x.send(`mon.${name}` as EntityName, probe('probe', 'x', without(name)), addr(name));
      x.send(`mon.${name}` as EntityName, probe('reply', 'x', without(name)), addr(name));
      // And three joins from the client (phantoms that would cost the quorum its majority).
      for (let j = 1; j <= 3; j += 1)
        x.send(
          `mon.${name}` as EntityName,
          { type: 'mon.join', name: `p${j}`, addr: `127.0.0.1:${j}` },
          addr(name),
        );
    }

    // 2. A connection to the peons claiming to be the leader: a commit of the next version with
    // a transaction of its own, then a 4-byte garbage value as begin and commit (Ceph: applied
    // on both peons; the garbage made both exit).
    const leader = first.quorum_leader_name;
    const fake = new Messenger({
      name: `mon.${leader}` as EntityName,
      fsid: cluster.fsid,
      auth: { entity: 'mon.', secret: secretOf('mon.') },
    });
    attackers.push(fake);
    const status = JSON.parse(
      (await paxmon(['--dir', dir, '--format', 'json', 'tell', `mon.${leader}`, 'mon_status'])).stdout,
    ) as { paxos?: { last_committed?: number; accepted_pn?: number } };
    const next = (status.paxos?.last_committed ?? 0) + 1;
    // The round's pn too (mon_status shows it): the strongest forgery a monitor could make.
    const pns = [status.paxos?.accepted_pn ?? 0, 100, 101, 102, 200, 201, 202];
    const evil = new Transaction().put('kv', 'evil', 'planted').encode();
    const garbage = new Uint8Array([0xde, 0xad, 0xbe, 0xef]);
    for (const peon of names.filter((n) => n !== leader)) {
      for (const [op, value, lc] of [
        ['commit', evil, next],
        ['begin', garbage, next - 1],
        ['commit', garbage, next],
      ] as const) {
        for (const pn of pns) {
          fake.send(
            `mon.${peon}` as EntityName,
            {
              type: 'mon.paxos',
              op,
              electionEpoch: first.election_epoch,
              pn,
              uncommittedPn: 0,
              firstCommitted: 1,
              lastCommitted: lc,
              values: [{ version: next, value }],
            },
            addr(peon),
          );
        }
      }
    }

    // 3. Joins in monitors' names (no map names them): at most as many as keep the quorum a majority.
    for (let j = 1; j <= 3; j += 1) {
      const joiner = new Messenger({
        name: `mon.p${j}` as EntityName,
        fsid: cluster.fsid,
        auth: { entity: 'mon.', secret: secretOf('mon.') },
      });
      attackers.push(joiner);
      joiner.send(
        `mon.${leader}` as EntityName,
        { type: 'mon.join', name: `p${j}`, addr: `127.0.0.1:${j}` },
        addr(leader),
      );
    }

    // 4. A forged sync, in the name of a monitor of the map: a probe that sends the target back
    // to probing, a reply that makes it sync in full from the sender, a cookie and an empty last
    // chunk (Ceph: three stores erased, "store has no monmap" at every restart).
    for (const [i, name] of names.entries()) {
      const as = names[(i + 1) % names.length] as string;
      const m = new Messenger({
        name: `mon.${as}` as EntityName,
        fsid: cluster.fsid,
        auth: { entity: 'mon.', secret: secretOf('mon.') },
      });
      attackers.push(m);
      const to = `mon.${name}` as EntityName;
      m.send(to, probe('probe', as, map), addr(name));
      m.send(to, probe('reply', as, map, [0, 1, 2]), addr(name));
      m.send(to, { type: 'mon.sync', op: 'cookie', cookie: 4242, lastCommitted: 1_000_000 }, addr(name));
      m.send(
        to,
        {
          type: 'mon.sync',
          op: 'last_chunk',
          cookie: 4242,
          lastCommitted: 1_000_000,
          chunk: new Transaction().encode(),
        },
        addr(name),
      );
    }
    const started = Date.now();
    // The attackers vanish once what they sent has left (written to their sockets, or their
    // handshake refused) — not after a fixed pause: on a loaded machine a handshake can take
    // longer than one, and a message still queued at close is dropped, never sent.
    const gone = (m: Messenger) => {
      const s = m.stats();
      return s.queued === 0 || s.refused > 0;
    };
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && !attackers.every(gone); )
      await new Promise((r) => setTimeout(r, 10));
    await Promise.all(attackers.map((m) => m.close()));
    attackers.length = 0;

    // Every monitor up, the quorum back, at most two phantoms (3 of 5 is still a majority).
    const back = await waitForQuorum(dir, 3, { timeoutMs: 30_000 });
    const recoveredMs = Date.now() - started;
    console.log(
      `  quorum of 3 again ${recoveredMs} ms after the last attack (election epoch ${back.election_epoch})`,
    );
    for (const [i, name] of names.entries())
      assert.ok(alive(pids[i] as number), `mon.${name} is still running`);
    const after = await monDump();
    assert.ok(after.mons.length <= 5, `${after.mons.length} monitors in the map`);
    assert.ok(
      names.every((n) => after.mons.some((m) => m.name === n)),
      'a, b and c are all in the map',
    );
    for (let i = 0; i < 5; i += 1) await write(`after${i}`);
    for (const name of names) {
      const one = new MonClient({
        mons: [{ name, addr: addr(name) }],
        fsid: cluster.fsid,
        timeoutMs: 20_000,
        key: adminKey(dir),
      });
      try {
        for (const key of acked) {
          const r = await one.command(['config-key', 'get', key]);
          assert.is(r.r, 0, `${key} on mon.${name}: ${r.rs}`);
        }
        assert.is((await one.command(['config-key', 'get', 'evil'])).r, -2, `no planted key on mon.${name}`);
      } finally {
        await one.close();
      }
    }
    // The logs say what was refused.
    const logs = names.map((n) => readFileSync(join(dir, n, 'log'), 'utf8')).join('\n');
    assert.match(logs, /refused: mon\.probe from client\.x/);
    // (The forged commits themselves mostly reach a peon that is probing: the messenger takes the
    // fake mon.a's handshake for mon.a restarting and resets the real session, so the peon
    // bootstraps. The commit rule is covered in spec/hostile-peers.spec.ts.)
    assert.match(logs, /refused: mon\.paxos from mon\.\w+: transaction decode failed/);
    // (The forged sync's chunks arrive before the target asks for them, or are refused at the
    // switch — "staged copy refused: the copy has no monmap" — depending on timing; what matters
    // is checked above: every store whole, every acknowledged write there.)
  } finally {
    await Promise.all(attackers.map((m) => m.close()));
    await client.close();
  }
  // And every monitor starts again over its store.
  const down = await paxmon(['down', '--dir', dir]);
  assert.is(down.code, 0, down.stderr);
  await pollUntil('every monitor stopped', 15_000, async () => (pids.some(alive) ? undefined : true), {
    intervalMs: 50,
  });
  const again = await paxmon(['--timeout', '30', 'up', '--dir', dir, '--detach']);
  assert.is(again.code, 0, again.stderr);
  await waitForQuorum(dir, 3, { timeoutMs: 30_000 });
});

test.run();
