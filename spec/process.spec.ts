// Real processes: a 3-monitor cluster started by the CLI, over TCP and RocksDB; kill -9 of the
// leader, restart, and a clean shutdown.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MonClient } from '../actors/mon-client.ts';
import {
  adminKey,
  alive,
  freePorts,
  mkfsSingle,
  paxmon,
  pollUntil,
  type QuorumStatus,
  repoRoot,
  spawnMon,
  strangerKeyring,
  tempDir,
  upDetached,
  waitForQuorum,
} from './support/process.ts';

const dir = tempDir('process');

const quorum = (size: number, notLeader?: string) => waitForQuorum(dir, size, notLeader ? { notLeader } : {});

const pidOf = (name: string) => Number(readFileSync(join(dir, name, 'pid'), 'utf8'));

test.after(async () => {
  await paxmon(['down', '--dir', dir]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

test('paxmon up --detach forms a quorum of 3; a second up refuses; kill -9 the leader; restart; down', async () => {
  const port = await freePorts(3);
  const started = await upDetached(dir, port);
  assert.is(started.code, 0, started.stderr);
  const first = await quorum(3);
  assert.equal(first.quorum_names, ['a', 'b', 'c']);
  assert.is(first.election_epoch % 2, 0);

  const again = await paxmon(['up', '--dir', dir, '--detach']);
  assert.is(again.code, 16, 'EBUSY');
  assert.match(again.stderr, /already running/);

  const leader = first.quorum_leader_name;
  const leaderPid = pidOf(leader);
  process.kill(leaderPid, 'SIGKILL');
  await pollUntil('the leader process gone', 10_000, async () => (alive(leaderPid) ? undefined : true), {
    intervalMs: 50,
  });
  const two = await quorum(2, leader);
  assert.ok(!two.quorum_names.includes(leader));
  assert.ok(two.election_epoch > first.election_epoch);

  spawnMon(join(dir, leader));
  const three = await quorum(3);
  assert.ok(three.election_epoch > two.election_epoch, 'a new election took it back');
  assert.is(three.election_epoch % 2, 0);

  const mon = await paxmon(['--dir', dir, '--format', 'json', 'tell', `mon.${leader}`, 'mon_status']);
  assert.is(mon.code, 0, mon.stderr);
  const status = JSON.parse(mon.stdout) as { name: string; state: string; election_epoch: number };
  assert.is(status.name, leader);
  assert.ok(['leader', 'peon'].includes(status.state));

  // Only an address: the client learns the monitor's name and the cluster from the handshake.
  const byAddr = await paxmon([
    '-k',
    join(dir, 'keyring'),
    '-m',
    `127.0.0.1:${port + 1},127.0.0.1:${port}`,
    '--format',
    'json',
    'quorum_status',
  ]);
  assert.is(byAddr.code, 0, byAddr.stderr);
  assert.is((JSON.parse(byAddr.stdout) as QuorumStatus).quorum.length, 3);

  const pids = ['a', 'b', 'c'].map(pidOf);
  const down = await paxmon(['down', '--dir', dir]);
  assert.is(down.code, 0, down.stderr);
  assert.ok(
    pids.every((pid) => !alive(pid)),
    'no monitor process left behind',
  );
});

test('client errors: unreachable monitors time out with ETIMEDOUT; bad arguments exit EINVAL', async () => {
  const port = await freePorts(1);
  const r = await paxmon([
    '-k',
    strangerKeyring(),
    '-m',
    `127.0.0.1:${port}`,
    '--timeout',
    '1',
    'quorum_status',
  ]);
  assert.is(r.code, 110);
  assert.match(r.stderr, /^Error ETIMEDOUT: /m);
  const bad = await paxmon(['-m', 'nonsense', 'quorum_status']);
  assert.is(bad.code, 22);
  assert.match(bad.stderr, /^Error EINVAL: /m);
  for (const addr of ['127.0.0.1:99999', '127.0.0.1:0']) {
    const outOfRange = await paxmon(['-m', addr, 'quorum_status']);
    assert.is(outOfRange.code, 22, outOfRange.stderr);
    assert.match(
      outOfRange.stderr,
      /^Error EINVAL: -m '127\.0\.0\.1:\d+' is not HOST:PORT \(port 1-65535\)/m,
    );
  }
  // -i: a directory is EISDIR; a value no message can carry is EFBIG at once, not a timeout.
  const isDir = await paxmon(['-m', `127.0.0.1:${port}`, 'config-key', 'set', 'k', '-i', tempDir('indir')]);
  assert.is(isDir.code, 21, isDir.stderr);
  const huge = join(tempDir('huge'), 'value');
  writeFileSync(huge, new Uint8Array(70_000_000));
  const tooBig = await paxmon(['-m', `127.0.0.1:${port}`, 'config-key', 'set', 'k', '-i', huge]);
  rmSync(huge);
  assert.is(tooBig.code, 27, tooBig.stderr);
  assert.match(tooBig.stderr, /^Error EFBIG: input of 70000000 bytes exceeds/m);
  // A cluster.json of the wrong shape is named as such, not a TypeError (EIO).
  const odd = tempDir('odd-cluster');
  writeFileSync(join(odd, 'cluster.json'), '{}\n');
  for (const args of [
    ['--dir', odd, 'quorum_status'],
    ['down', '--dir', odd],
    ['up', '--dir', odd, '--detach'],
  ]) {
    const r = await paxmon(args);
    assert.is(r.code, 22, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /cluster\.json is not a paxmon cluster file/);
  }
});

test('a monitor on a full disk stops with ENOSPC (28) and the reason; every acknowledged write survives', async () => {
  if (process.platform !== 'linux') return;
  const mountPoint = tempDir('fulldisk');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint], { stdio: 'ignore' });
  } catch {
    // Not permitted here (not root, or no CAP_SYS_ADMIN): there is no honest way to fill a disk.
    console.log('  (skipped the full-disk case: cannot mount a tmpfs)');
    return;
  }
  try {
    const port = await freePorts(1);
    const fsid = '5d0c8f3e-2a1b-4c6d-9e7f-8a9b0c1d2e3f';
    const monDir = join(mountPoint, 'a');
    const made = await mkfsSingle(monDir, port, fsid);
    assert.is(made.code, 0, made.stderr);
    const start = () => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(repoRoot, 'cli/main.ts'), 'mon', '--dir', monDir],
        {
          cwd: repoRoot,
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
      });
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.on('exit', (code, signal) => resolve({ code, signal })),
      );
      return { child, exited, stderr: () => stderr };
    };
    const mon = start();
    const client = new MonClient({
      mons: [{ name: 'a', addr: `127.0.0.1:${port}` }],
      fsid,
      timeoutMs: 5000,
      key: adminKey(monDir),
    });
    const value = 'x'.repeat(60 * 1024);
    const acknowledged: string[] = [];
    try {
      for (let i = 0; i < 300; i += 1) {
        const reply = await client.command(['config-key', 'set', `k${i}`, value]).catch(() => null);
        if (!reply || reply.r !== 0) break;
        acknowledged.push(`k${i}`);
      }
    } finally {
      await client.close();
    }
    const ended = await Promise.race([
      mon.exited,
      new Promise((r) => setTimeout(() => r('timeout'), 60_000)),
    ]);
    assert.is.not(ended, 'timeout', `the monitor did not exit\n${mon.stderr()}`);
    // 28, or (rarely) an abort from RocksDB's own threads as the process exits under them.
    const { code, signal } = ended as { code: number | null; signal: string | null };
    assert.ok(code === 28 || signal === 'SIGABRT', `exit ${code} ${signal}\n${mon.stderr()}`);
    assert.match(mon.stderr(), /^Error ENOSPC: mon\.a stopped: store write failed: /m);
    assert.ok(acknowledged.length > 5, `${acknowledged.length} writes fit`);

    // Room again: every write the client was told succeeded is there.
    execFileSync('mount', ['-o', 'remount,size=64m', mountPoint], { stdio: 'ignore' });
    const again = start();
    const reader = new MonClient({
      mons: [{ name: 'a', addr: `127.0.0.1:${port}` }],
      fsid,
      timeoutMs: 20_000,
      key: adminKey(monDir),
    });
    try {
      const ls = await reader.command(['config-key', 'ls']);
      assert.is(ls.r, 0, `config-key ls after the restart: ${ls.r} ${ls.rs}`);
      const keys = new Set(JSON.parse(new TextDecoder().decode(ls.data)) as string[]);
      assert.equal(
        acknowledged.filter((k) => !keys.has(k)),
        [],
        'no acknowledged write lost',
      );
    } finally {
      await reader.close();
      again.child.kill('SIGTERM');
      const stopped = await Promise.race([
        again.exited.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 30_000)),
      ]);
      // Once in a CI rehearsal the restarted monitor had not exited 30 s after SIGTERM (sleeping,
      // not spinning; a second SIGTERM minutes later ended it) and the unmount failed. That hang
      // is not this spec's subject and is not understood yet: it is killed here, so the tmpfs
      // can go, and said on the output.
      if (!stopped) {
        console.log(`  (mon.a had not stopped 30 s after SIGTERM: killed)\n${again.stderr().slice(-2000)}`);
        again.child.kill('SIGKILL');
        await again.exited;
      }
    }
  } finally {
    execFileSync('umount', [mountPoint], { stdio: 'ignore' });
    rmSync(mountPoint, { recursive: true, force: true });
  }
});

test('mkfs refuses bad input and a non-empty dir with EINVAL (22)', async () => {
  const base = tempDir('mkfs');
  const fsid = '2f6b4c1e-8a7d-4e55-9c3b-1d2e3f4a5b6c';
  const cases: [string[], RegExp][] = [
    [['--fsid', 'not-a-uuid', '--mon', 'a=127.0.0.1:6789'], /not a UUID/],
    [['--fsid', fsid, '--mon', 'b=127.0.0.1:6789'], /not in the monmap/],
    [['--fsid', fsid, '--mon', 'a=127.0.0.1:6789', '--mon', 'a=127.0.0.1:6790'], /duplicate monitor name/],
    [['--fsid', fsid, '--mon', 'a=127.0.0.1:6789', '--mon', 'b=127.0.0.1:6789'], /duplicate monitor address/],
  ];
  for (const [args, message] of cases) {
    const r = await paxmon(['mkfs', '--dir', join(base, 'x'), '--name', 'a', ...args]);
    assert.is(r.code, 22, r.stderr);
    assert.match(r.stderr, /^Error EINVAL: /m);
    assert.match(r.stderr, message);
  }
  const ok = await paxmon([
    'mkfs',
    '--dir',
    join(base, 'y'),
    '--name',
    'a',
    '--fsid',
    fsid,
    '--mon',
    'a=127.0.0.1:6789',
  ]);
  assert.is(ok.code, 0, ok.stderr);
  const twice = await paxmon([
    'mkfs',
    '--dir',
    join(base, 'y'),
    '--name',
    'a',
    '--fsid',
    fsid,
    '--mon',
    'a=127.0.0.1:6789',
  ]);
  assert.is(twice.code, 22);
  assert.match(twice.stderr, /^Error EINVAL: .*not empty/m);
  rmSync(base, { recursive: true, force: true });
});

test.run();
