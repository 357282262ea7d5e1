// Issue 13, parts 1–3 on real processes over TCP: keys, caps and authenticated sessions, as an
// operator and as an attacker see them through the CLI. A wrong or unknown key is EACCES (exit 13)
// naming the entity; caps decide what an authenticated client may run (Ceph's grammar and
// is_capable); `auth` changes take effect on the next command; an attacker without the mon. key
// cannot take a monitor's name, and one with only a client key cannot disturb the quorum.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKey, keySecret } from '../actors/keyring.ts';
import { MonClient } from '../actors/mon-client.ts';
import { parseKeyring } from '../machines/keyring-text.ts';
import type { EntityName, Message } from '../transport/messages.ts';
import { Messenger } from '../transport/messenger.ts';
import {
  freePorts,
  paxmon,
  pollUntil,
  type QuorumStatus,
  tempDir,
  upDetached,
  waitForQuorum,
} from './support/process.ts';

const dir = tempDir('security');
const keys = tempDir('security-keys');
const names = ['a', 'b', 'c'];
interface ClusterFile {
  fsid: string;
  mons: { name: string; addr: string }[];
}
const clusterFile = () => JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
const cli = (args: string[]) => paxmon(['--dir', dir, '--timeout', '10', ...args]);
/** The CLI as another entity, with its keyring file. */
const as = (entity: string, keyring: string, args: string[]) => cli(['-n', entity, '-k', keyring, ...args]);
const quorum = async () => {
  const r = await cli(['--format', 'json', 'quorum_status']);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as QuorumStatus;
};

test.before(async () => {
  const up = await upDetached(dir, await freePorts(3));
  assert.is(up.code, 0, up.stderr);
  await waitForQuorum(dir, 3);
});

test.after(async () => {
  await paxmon(['down', '--dir', dir]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  rmSync(keys, { recursive: true, force: true });
});

test('paxmon up writes the keyrings mode 0600: DIR/keyring with client.admin, each monitor the mon. key', () => {
  const admin = parseKeyring(readFileSync(join(dir, 'keyring'), 'utf8'));
  assert.equal(
    admin.map((e) => [e.entity, e.caps]),
    [['client.admin', { mon: 'allow *' }]],
  );
  assert.is(statSync(join(dir, 'keyring')).mode & 0o777, 0o600);
  const monKeys = names.map((n) => {
    assert.is(statSync(join(dir, n, 'keyring')).mode & 0o777, 0o600);
    return parseKeyring(readFileSync(join(dir, n, 'keyring'), 'utf8')).find((e) => e.entity === 'mon.')?.key;
  });
  assert.ok(monKeys[0]);
  assert.ok(
    monKeys.every((k) => k === monKeys[0]),
    'one mon. key for the cluster',
  );
});

test('a wrong key and an unknown entity are both EACCES (13) naming the entity, and nothing else', async () => {
  const wrong = join(keys, 'wrong.keyring');
  writeFileSync(wrong, `[client.admin]\n\tkey = ${generateKey()}\n`);
  const r = await as('client.admin', wrong, ['quorum_status']);
  assert.is(r.code, 13, r.stderr);
  assert.is(r.stderr.trim(), 'Error EACCES: authentication failed for client.admin');
  assert.is(r.stdout, '');
  const nobody = join(keys, 'nobody.keyring');
  writeFileSync(nobody, `[client.nobody]\n\tkey = ${generateKey()}\n`);
  const n = await as('client.nobody', nobody, ['mon', 'dump']);
  assert.is(n.code, 13, n.stderr);
  assert.is(n.stderr.trim(), 'Error EACCES: authentication failed for client.nobody');
  assert.not.match(n.stderr, clusterFile().fsid, 'the fsid is told only to authenticated peers');
  const missing = await as('client.admin', join(keys, 'absent.keyring'), ['quorum_status']);
  assert.is(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /^Error ENOENT: unable to read keyring/);
});

test("caps: 'allow r' reads and cannot write; config-key needs its own grant (as in Ceph); refusals change nothing", async () => {
  const reader = join(keys, 'reader.keyring');
  const made = await cli(['auth', 'get-or-create', 'client.reader', 'mon', 'allow r', '-o', reader]);
  assert.is(made.code, 0, made.stderr);
  assert.is(statSync(reader).mode & 0o777, 0o600, "a keyring written by -o is its owner's only");
  assert.match(readFileSync(reader, 'utf8'), /^\[client\.reader\]\n\tkey = AQ[A-Za-z0-9+/]{36}==\n$/);
  assert.is((await cli(['config-key', 'set', 'app/x', 'one'])).code, 0);
  assert.is((await cli(['config-key', 'set', 'db/password', 'hunter2'])).code, 0);

  const reads = [
    ['mon', 'dump'],
    ['quorum_status'],
    ['health'],
    ['status'],
    ['mon', 'stat'],
    ['log', 'last', '1'],
  ];
  for (const cmd of reads) {
    const r = await as('client.reader', reader, cmd);
    assert.is(r.code, 0, `${cmd.join(' ')}: ${r.stderr}`);
  }
  const refused = [
    ['config-key', 'set', 'app/x', 'two'],
    ['config-key', 'rm', 'app/x'],
    ['config-key', 'get', 'db/password'],
    ['log', 'hello'],
    ['auth', 'ls'],
    ['auth', 'get', 'client.admin'],
    ['auth', 'get-or-create', 'client.evil', 'mon', 'allow *'],
    ['mon', 'add', 'z', '127.0.0.1:1'],
    ['mon', 'rm', 'a'],
  ];
  for (const cmd of refused) {
    const r = await as('client.reader', reader, cmd);
    assert.is(r.code, 13, `${cmd.join(' ')}: ${r.stderr}`);
    assert.is(r.stderr.trim(), 'Error EACCES: access denied', cmd.join(' '));
  }
  const value = await cli(['config-key', 'get', 'app/x']);
  assert.is(value.stdout, 'one', 'the refused set changed nothing');
  const ls = await cli(['auth', 'ls']);
  assert.not.match(ls.stdout, /client\.evil/);
  const map = JSON.parse((await cli(['--format', 'json', 'mon', 'dump'])).stdout) as { mons: unknown[] };
  assert.is(map.mons.length, 3);

  // `allow service config-key r` reads config-key (only); a command grant with a key prefix
  // reads only under it.
  const kv = join(keys, 'kv.keyring');
  assert.is(
    (await cli(['auth', 'get-or-create', 'client.kv', 'mon', 'allow service config-key r', '-o', kv])).code,
    0,
  );
  assert.is((await as('client.kv', kv, ['config-key', 'get', 'app/x'])).stdout, 'one');
  assert.is((await as('client.kv', kv, ['config-key', 'set', 'app/x', 'two'])).code, 13);
  const app = join(keys, 'app.keyring');
  const grant = 'allow command "config-key get" with key prefix app/';
  assert.is((await cli(['auth', 'get-or-create', 'client.app', 'mon', grant, '-o', app])).code, 0);
  assert.is((await as('client.app', app, ['config-key', 'get', 'app/x'])).stdout, 'one');
  assert.is((await as('client.app', app, ['config-key', 'get', 'db/password'])).code, 13);
  assert.is((await as('client.app', app, ['config-key', 'ls'])).code, 13);
});

test('auth caps and auth del take effect on the next command; a rotated key replaces the old one', async () => {
  const writer = join(keys, 'writer.keyring');
  assert.is((await cli(['auth', 'get-or-create', 'client.writer', 'mon', 'allow *', '-o', writer])).code, 0);
  assert.is((await as('client.writer', writer, ['config-key', 'set', 'w/1', 'x'])).code, 0);
  assert.is((await cli(['auth', 'caps', 'client.writer', 'mon', 'allow r'])).code, 0);
  assert.is((await as('client.writer', writer, ['config-key', 'set', 'w/2', 'x'])).code, 13);
  assert.is((await as('client.writer', writer, ['mon', 'dump'])).code, 0);
  // Rotation: delete, then add the entity with a new key (`auth add -i`); the old key is refused.
  const rotated = join(keys, 'rotated.keyring');
  writeFileSync(rotated, `[client.writer]\n\tkey = ${generateKey()}\n\tcaps mon = "allow r"\n`);
  assert.is((await cli(['auth', 'del', 'client.writer'])).code, 0);
  const gone = await as('client.writer', writer, ['mon', 'dump']);
  assert.is(gone.code, 13);
  assert.match(gone.stderr, /authentication failed for client\.writer/);
  const added = await cli(['auth', 'add', 'client.writer', '-i', rotated]);
  assert.is(added.code, 0, added.stderr);
  assert.is((await as('client.writer', rotated, ['mon', 'dump'])).code, 0);
  assert.is((await as('client.writer', writer, ['mon', 'dump'])).code, 13);
});

test('without the mon. key no one takes a monitor name; with a client key, monitor messages are dropped and the quorum stands', async () => {
  const cluster = clusterFile();
  const addr = (name: string) => cluster.mons.find((m) => m.name === name)?.addr as string;
  const before = await quorum();
  const leader = before.quorum_leader_name;
  // 1. A session claiming to be the leader, with a key of its own: refused at the handshake.
  const impostor = new Messenger({
    name: `mon.${leader}` as EntityName,
    fsid: cluster.fsid,
    auth: { entity: 'mon.', secret: randomBytes(16) },
  });
  const refusals: string[] = [];
  impostor.setHandlers({ onMessage() {}, onUnreachable: (_peer, reason) => refusals.push(reason) });
  // 2. A client with the admin key (an insider with a client key, not the mon. key), sending what
  // a monitor would: a probe flood with a map that leaves the target out, joins, a forged commit.
  const admin = parseKeyring(readFileSync(join(dir, 'keyring'), 'utf8')).find(
    (e) => e.entity === 'client.admin',
  );
  const insider = new Messenger({
    name: 'client.insider',
    fsid: cluster.fsid,
    auth: { entity: 'client.admin', secret: keySecret(admin?.key ?? '') },
  });
  insider.setHandlers({ onMessage() {} });
  const writer = new MonClient({
    mons: cluster.mons,
    fsid: cluster.fsid,
    key: admin?.key ?? '',
    timeoutMs: 20_000,
  });
  const map = JSON.parse((await cli(['--format', 'json', 'mon', 'getmap'])).stdout);
  try {
    const peon = names.find((n) => n !== leader) as string;
    for (let round = 0; round < 10; round += 1) {
      for (const name of names) {
        const to = `mon.${name}` as EntityName;
        const probe: Message = {
          type: 'mon.probe',
          op: round % 2 ? 'reply' : 'probe',
          fsid: cluster.fsid,
          name: 'x',
          quorum: [],
          monmap: {
            ...map,
            epoch: 1_000_000,
            mons: map.mons.filter((m: { name: string }) => m.name !== name),
          },
          paxosFirstVersion: 1_000_000,
          paxosLastVersion: 1_000_000,
          hasEverJoined: true,
        };
        insider.send(to, probe, addr(name));
        insider.send(to, { type: 'mon.join', name: `p${round}`, addr: `127.0.0.1:${round + 1}` }, addr(name));
        impostor.send(to, probe, addr(name));
      }
      impostor.send(
        `mon.${peon}` as EntityName,
        {
          type: 'mon.paxos',
          op: 'commit',
          electionEpoch: before.election_epoch,
          pn: 1000,
          uncommittedPn: 0,
          firstCommitted: 1,
          lastCommitted: 1_000_000,
          values: [],
        },
        addr(peon),
      );
      // Rounds are paced by the cluster itself: each waits for a write to be acknowledged, so
      // the flood lasts as long as the cluster keeps working under it.
      const write = await writer.command(['config-key', 'set', `flood/${round}`, 'x']);
      assert.is(write.r, 0, `write during the flood, round ${round}: ${write.rs}`);
    }
    await pollUntil('the impostor refused', 10_000, async () => (refusals.length > 0 ? true : undefined));
    assert.match(refusals[0] as string, /EACCES: authentication failed for mon\./);
  } finally {
    await impostor.close();
    await insider.close();
    await writer.close();
  }
  const after = await quorum();
  assert.is(after.election_epoch, before.election_epoch, 'no election: the quorum was never disturbed');
  assert.is(after.quorum_leader_name, leader);
  const dumped = JSON.parse((await cli(['--format', 'json', 'mon', 'dump'])).stdout) as {
    epoch: number;
    mons: unknown[];
  };
  assert.is(dumped.mons.length, 3, 'no phantom joined');
  // Refusals are logged once per session, and counted.
  const log = readFileSync(join(dir, leader, 'log'), 'utf8');
  const lines = log.split('\n').filter((l) => l.includes('refused') && l.includes('client.insider'));
  assert.is(lines.length, 1, lines.join('\n'));
  assert.match(lines[0] as string, /further refusals from client\.insider are counted, not logged/);
});

test.run();
