// The paxmon command as a user meets it (issue 7 §1, §4): `npm start` in the foreground (quorum,
// hint, live quorum changes, Ctrl-C), a second start refused, ports in use, --help, and Ceph's
// `Error EXXX: …` + errno for every refusal. Real processes; every wait is bounded.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { monitorStateName } from '../machines/monitor.ts';
import {
  alive,
  freePorts,
  mkfsSingle,
  paxmon,
  pollUntil,
  repoRoot,
  strangerKeyring,
  tempDir,
} from './support/process.ts';

const dirs: string[] = [];
const dir = (label: string) => {
  const d = tempDir(label);
  dirs.push(d);
  return d;
};
const children: ChildProcess[] = [];

test.after(async () => {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null || !child.pid) continue;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs) {
    if (existsSync(join(d, 'cluster.json'))) await paxmon(['down', '--dir', d]).catch(() => {});
    rmSync(d, { recursive: true, force: true });
  }
});

/** A process in its own process group with its output collected (a terminal session, roughly). */
function session(command: string, args: string[]) {
  const child = spawn(command, args, { cwd: repoRoot, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (chunk: Buffer) => {
    out.stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    out.stderr += chunk.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, out, exited };
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
const pidIn = (d: string, name: string) => Number(readFileSync(join(d, name, 'pid'), 'utf8'));

test('npm start: the quorum and a hint, quorum changes live, a second start refused, Ctrl-C stops every monitor; data reused', async () => {
  const d = dir('start');
  const port = await freePorts(3);
  const record = join(d, 'election.jsonl');
  const { child, out, exited } = session('npm', [
    'start',
    '--',
    '--dir',
    d,
    '--port',
    String(port),
    '--timeout',
    '40',
    '--record',
    record,
  ]);
  await pollUntil('the quorum and the hint', 60_000, async () =>
    /^next: .*quorum_status.*npx paxmon down/m.test(out.stdout) ? true : undefined,
  ).catch((error: Error) => {
    throw new Error(`${error.message}\nstdout: ${out.stdout}\nstderr: ${out.stderr}`);
  });
  assert.match(out.stdout, new RegExp(`starting 3 monitors in ${d}: a@127\\.0\\.0\\.1:${port} `));
  assert.match(out.stdout, /^election epoch \d+, leader a, quorum a,b,c \(age \d+s\)$/m);
  assert.match(
    out.stdout,
    new RegExp(
      `^next: npx paxmon --dir ${d} quorum_status · npx paxmon --dir ${d} tell mon\\.a mon_status · npx paxmon down --dir ${d} \\(or Ctrl-C\\)$`,
      'm',
    ),
  );
  const fsid = /^monmap e1 fsid ([0-9a-f-]{36}):/m.exec(out.stdout)?.[1];
  assert.ok(fsid, out.stdout);

  // Every log line of a monitor carries its name, state and election epoch.
  const logLines = readFileSync(join(d, 'b', 'log'), 'utf8')
    .split('\n')
    .slice(0, -1) // a line still being written has no newline yet
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { mon?: string; state?: string; election_epoch?: number });
  assert.ok(logLines.length > 0, 'mon.b logged');
  for (const line of logLines) {
    assert.is(line.mon, 'b', JSON.stringify(line));
    assert.type(line.state, 'string', JSON.stringify(line));
    assert.type(line.election_epoch, 'number', JSON.stringify(line));
  }
  assert.ok(logLines.some((l) => l.state === 'peon' || l.state === 'leader'));

  const again = await paxmon(['up', '--dir', d, '--detach']);
  assert.is(again.code, 16, again.stderr);
  assert.match(again.stderr, /^Error EBUSY: a cluster is already running in .*paxmon down --dir/m);

  const pids = ['a', 'b', 'c'].map((n) => pidIn(d, n));
  process.kill(pids[2] as number, 'SIGKILL');
  await pollUntil('the quorum change printed', 30_000, async () =>
    /^quorum changed: election epoch \d+, leader a, quorum a,b$/m.test(out.stdout) ? true : undefined,
  );
  // The foreground terminal names the monitor that exited, how, and how to start it again.
  assert.match(
    out.stdout,
    new RegExp(
      `^mon\\.c \\(pid ${pids[2]}\\) exited: killed by SIGKILL; start it again with: npx paxmon --dir ${d} start c `,
      'm',
    ),
  );

  // Ctrl-C in a terminal: SIGINT to the foreground process group (npm and paxmon up).
  process.kill(-(child.pid as number), 'SIGINT');
  const bounded = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 30_000))]);
  assert.is.not(bounded, 'timeout', 'npm start ended after Ctrl-C');
  assert.match(out.stdout, /stopping the monitors…\nstopped 2 monitors in /);
  assert.ok(
    pids.every((pid) => !alive(pid)),
    'no monitor process left behind',
  );
  assert.not.ok(existsSync(join(d, 'a', 'pid')), 'pid files removed');

  // The recording replays as a timeline of the election.
  const replayed = await paxmon(['replay', record, '--mon', 'a', '--actor', 'elector']);
  assert.is(replayed.code, 0, replayed.stderr);
  assert.match(replayed.stdout, /mon\.a\s+elector\s+state /);
  assert.match(replayed.stdout, /elector → monitor\s+io\.effects: .*send mon\.election (propose|victory)/);
  const monColumn = replayed.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.trim().split(/\s+/)[1]);
  assert.equal([...new Set(monColumn)], ['mon.a'], 'only mon.a');

  // The next start reuses the data: same cluster, same fsid.
  const second = await paxmon(['--timeout', '40', 'up', '--dir', d, '--detach']);
  assert.is(second.code, 0, second.stderr);
  assert.ok(second.stdout.includes(`fsid ${fsid}`), second.stdout);
  const down = await paxmon(['down', '--dir', d]);
  assert.is(down.code, 0, down.stderr);
  assert.match(down.stdout, /stopped 3 monitors/);
});

test('a port in use is EADDRINUSE naming the port and the option to change (new cluster, existing cluster, paxmon mon)', async () => {
  const port = await freePorts(3);
  const blocker = await listen(port + 1);
  try {
    const fresh = dir('port-new');
    const r = await paxmon(['up', '--dir', fresh, '--port', String(port), '--detach']);
    assert.is(r.code, 98, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^Error EADDRINUSE: port ${port + 1} on 127\\.0\\.0\\.1 is in use \\(.*--port\\)$`, 'm'),
    );
    assert.not.ok(existsSync(join(fresh, 'cluster.json')), 'nothing created');
  } finally {
    await close(blocker);
  }

  // An existing cluster whose port was taken meanwhile.
  const existing = dir('port-existing');
  const made = await paxmon(['--timeout', '40', 'up', '--dir', existing, '--port', String(port), '--detach']);
  assert.is(made.code, 0, made.stderr);
  assert.is((await paxmon(['down', '--dir', existing])).code, 0);
  const blocker2 = await listen(port);
  try {
    const r = await paxmon(['up', '--dir', existing, '--detach']);
    assert.is(r.code, 98, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^Error EADDRINUSE: port ${port} on 127\\.0\\.0\\.1 is in use \\(mon\\.a `, 'm'),
    );
    assert.match(r.stderr, /--dir OTHER --port PORT/);

    // paxmon mon on its own: the listen fails, the message names the port and --bind-addr.
    const mon = await paxmon(['mon', '--dir', join(existing, 'a'), '--log-level', 'error']);
    assert.is(mon.code, 98, mon.stderr);
    assert.match(
      mon.stderr,
      new RegExp(`^Error EADDRINUSE: port ${port} on 127\\.0\\.0\\.1 is in use .*--bind-addr`, 'm'),
    );
  } finally {
    await close(blocker2);
  }
});

test('Ctrl-C while up waits for the first quorum stops the monitors; down never signals a stale pid', async () => {
  const d = dir('early');
  const port = await freePorts(3);
  const { child, out, exited } = session(process.execPath, [
    '--import',
    'tsx',
    join(repoRoot, 'cli/main.ts'),
    '--timeout',
    '60',
    'up',
    '--dir',
    d,
    '--port',
    String(port),
  ]);
  // As soon as every monitor has started, usually before up has seen them all in a quorum
  // (when it has, this is the Ctrl-C after the quorum, which must stop them just the same).
  const pids = await pollUntil(
    'the monitors started',
    30_000,
    async () =>
      ['a', 'b', 'c'].every((n) => existsSync(join(d, n, 'pid')))
        ? ['a', 'b', 'c'].map((n) => pidIn(d, n))
        : undefined,
    { intervalMs: 10 },
  );
  process.kill(child.pid as number, 'SIGINT');
  const ended = (await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 30_000))])) as
    | { code: number | null }
    | 'timeout';
  assert.is.not(ended, 'timeout', `up ended after Ctrl-C\n${out.stdout}\n${out.stderr}`);
  const { code } = ended as { code: number | null };
  if (code === 130) assert.match(out.stderr, /SIGINT before the first quorum: stopped the monitors in /);
  else assert.is(code, 0, out.stderr);
  assert.ok(
    pids.every((pid) => !alive(pid)),
    'no monitor process left behind',
  );

  // A pid file left by a kill -9 whose pid now belongs to another process: not a monitor.
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(other);
  writeFileSync(join(d, 'c', 'pid'), `${other.pid}\n`);
  const down = await paxmon(['down', '--dir', d]);
  assert.is(down.code, 0, down.stderr);
  assert.match(down.stdout, /stopped 0 monitors/);
  assert.ok(alive(other.pid as number), 'the unrelated process was not signalled');
  other.kill();
});

test('paxmon mon --bind-addr listens elsewhere; SIGTERM stops it cleanly', async () => {
  const d = dir('bind');
  const port = await freePorts(2);
  const other = port + 1;
  const fsid = '7a1d0c2e-3b4f-4c5d-8e9f-0a1b2c3d4e5f';
  const made = await mkfsSingle(join(d, 'a'), port, fsid);
  assert.is(made.code, 0, made.stderr);
  const { child, out, exited } = session(process.execPath, [
    '--import',
    'tsx',
    join(repoRoot, 'cli/main.ts'),
    'mon',
    '--dir',
    join(d, 'a'),
    '--bind-addr',
    `127.0.0.1:${other}`,
    '--log-file',
    join(d, 'a', 'log'),
  ]);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((e) => {
    exit = e;
  });
  const monOutput = () => {
    const log = existsSync(join(d, 'a', 'log')) ? readFileSync(join(d, 'a', 'log'), 'utf8') : '';
    return `stderr: ${out.stderr.slice(-2000)}\nlog: ${log.slice(-4000)}`;
  };
  const status = await pollUntil(
    'mon.a answering on --bind-addr',
    30_000,
    async () => {
      const r = await paxmon([
        '-k',
        join(d, 'a', 'keyring'),
        '-m',
        `127.0.0.1:${other}`,
        '--format',
        'json',
        '--timeout',
        '2',
        'quorum_status',
      ]);
      return r.code === 0 ? (JSON.parse(r.stdout) as { quorum_names: string[] }) : undefined;
    },
    { gaveUp: () => (exit ? `mon.a exited (${JSON.stringify(exit)})\n${monOutput()}` : undefined) },
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${monOutput()}`);
  });
  assert.equal(status.quorum_names, ['a']);
  process.kill(child.pid as number, 'SIGTERM');
  const bounded = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
  assert.equal(bounded, { code: 0, signal: null });
  assert.not.ok(existsSync(join(d, 'a', 'pid')));
});

test('paxmon mon --inspect PORT serves the inspector bridge and streams the actor tree to it', async () => {
  const d = dir('inspect');
  const port = await freePorts(2);
  const bridge = port + 1;
  const fsid = '5b2e7c4a-1d3f-4e6a-9b8c-7d6e5f4a3b2c';
  const made = await mkfsSingle(join(d, 'a'), port, fsid);
  assert.is(made.code, 0, made.stderr);
  const { child, out, exited } = session(process.execPath, [
    '--import',
    'tsx',
    join(repoRoot, 'cli/main.ts'),
    'mon',
    '--dir',
    join(d, 'a'),
    '--inspect',
    String(bridge),
    '--log-file',
    join(d, 'a', 'log'),
  ]);
  await pollUntil('the inspector note', 30_000, async () =>
    out.stderr.includes('inspector: open') ? true : undefined,
  );
  assert.match(
    out.stderr,
    new RegExp(`inspector: open http://127\\.0\\.0\\.1:${bridge} in a browser .*needs internet`),
  );
  // The page a browser opens embeds the Stately inspector UI.
  const page = await fetch(`http://127.0.0.1:${bridge}/`).then((r) => r.text());
  assert.match(page, /stately\.ai\/inspect/);
  // What a browser receives: the actor tree, named by monitor, and its snapshots.
  const { createWebSocketReceiver } = await import('@statelyai/inspect');
  const receiver = createWebSocketReceiver({ server: `ws://127.0.0.1:${bridge}` });
  const seen: { type: string; name?: string; sessionId?: string; snapshot?: { value?: unknown } }[] = [];
  const subscription = receiver.subscribe((event) => {
    seen.push(event as never);
  });
  try {
    await pollUntil('the elector and io actors, and a leader snapshot', 30_000, async () => {
      const actors = new Set(seen.filter((e) => e.type === '@xstate.actor').map((e) => e.name));
      // Paxos runs in the monitor statechart: a leader is `inQuorum.leader`.
      const leader = seen.some(
        (e) =>
          e.type === '@xstate.snapshot' && monitorStateName({ value: e.snapshot?.value ?? '' }) === 'leader',
      );
      return actors.has('mon.a/elector') && actors.has('mon.a/io') && leader ? true : undefined;
    });
    assert.ok(
      seen.every((e) => !e.sessionId || e.sessionId.startsWith('mon.a/')),
      'ids carry the monitor',
    );
  } finally {
    subscription.unsubscribe();
    process.kill(child.pid as number, 'SIGTERM');
  }
  const bounded = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
  assert.equal(bounded, { code: 0, signal: null });
});

test('--help lists the commands and each command its options; npx paxmon runs the command', async () => {
  const help = await paxmon(['--help']);
  assert.is(help.code, 0);
  const npx = await new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(
      'npx',
      ['--no-install', 'paxmon', '--help'],
      { cwd: repoRoot, timeout: 60_000 },
      (error, stdout) => resolve({ code: error ? 1 : 0, stdout }),
    ),
  );
  assert.is(npx.code, 0);
  assert.is(npx.stdout, help.stdout, 'npx paxmon (cli/bin.js) is the same command');
  for (const command of ['mkfs', 'mon', 'up', 'down', 'quorum_status', 'tell', 'replay', 'statecharts'])
    assert.match(help.stdout, new RegExp(`^  ${command}\\b`, 'm'), command);
  const options: [string, string[]][] = [
    ['mon', ['--dir', '--log-level', '--log-file', '--set', '--bind-addr', '--inspect', '--record']],
    [
      'up',
      ['--size', '--port', '--detach', '--dir', '--set', '--log-level', '--inspect', '--record', '--timeout'],
    ],
    ['mkfs', ['--dir', '--name', '--fsid', '--mon']],
    ['down', ['--dir']],
    ['replay', ['--mon', '--actor', '--all']],
    ['statecharts', ['--format', '--out', '--machine', '--readme']],
  ];
  for (const [command, flags] of options) {
    const r = await paxmon([command, '--help']);
    assert.is(r.code, 0, `${command} --help`);
    assert.match(r.stdout, new RegExp(`^Usage: paxmon ${command}`, 'm'));
    for (const flag of flags) assert.ok(r.stdout.includes(flag), `${command} --help lists ${flag}`);
  }
});

test('every refusal is `Error EXXX: …` on stderr with the errno as exit code', async () => {
  const empty = dir('errors');
  const cases: [string[], number, RegExp][] = [
    [['--x'], 22, /^Error EINVAL: unknown option '--x'$/m],
    [['mon', '--dir', empty, '--x'], 22, /^Error EINVAL: unknown option '--x'$/m],
    [['up', '--bogus'], 22, /^Error EINVAL: unknown option '--bogus'$/m],
    [['frobnicate'], 22, /^Error EINVAL: unknown command 'frobnicate'$/m],
    [[], 22, /^Error EINVAL: no command given/m],
    [['mon'], 22, /^Error EINVAL: paxmon mon needs --dir DIR/m],
    [
      ['statecharts', '--format', 'xml'],
      22,
      /^Error EINVAL: option '--format <format>' argument 'xml' is invalid/m,
    ],
    [['replay'], 22, /^Error EINVAL: missing required argument 'file'$/m],
    [['mon', '--dir', empty], 2, /^Error ENOENT: no monitor store in /m],
    [['mon', '--dir', empty, '--set', 'mon_nonsense=1'], 22, /^Error EINVAL: unknown option 'mon_nonsense'/m],
    [['mon', '--dir', empty, '--log-level', 'loud'], 22, /^Error EINVAL: --log-level 'loud' is not one of/m],
    [['mon', '--dir', empty, '--inspect', 'nowhere'], 22, /^Error EINVAL: --inspect 'nowhere' is neither/m],
    [['up', '--dir', empty, '--size', 'three'], 22, /^Error EINVAL: --size 'three' is not a number$/m],
    [['up', '--dir', empty, '--size', '0'], 22, /^Error EINVAL: --size 0: a cluster has 1 to 64 monitors/m],
    [
      ['up', '--dir', empty, '--inspect', '--detach'],
      22,
      /^Error EINVAL: --inspect PORT serves the inspector/m,
    ],
    [['up', '--dir', empty, '--record', join(empty, 'no', 'x.jsonl')], 2, /^Error ENOENT: no directory /m],
    [['down', '--dir', empty], 2, /^Error ENOENT: no local cluster in /m],
    [['replay', join(empty, 'missing.jsonl')], 2, /^Error ENOENT: no recording /m],
    [['statecharts', '--machine', 'nope'], 2, /^Error ENOENT: no machine 'nope'/m],
    [
      ['mon', '--dir', empty, '--set', 'mon_lease=0'],
      22,
      /^Error EINVAL: option 'mon_lease' must be more than 0/m,
    ],
    [
      ['up', '--dir', empty, '--set', 'mon_lease_renew_interval_factor=0'],
      22,
      /^Error EINVAL: option 'mon_lease_renew_interval_factor' must be more than 0 and less than 1/m,
    ],
    [
      ['--timeout', '1', '-m', 'nonsense', 'quorum_status'],
      22,
      /^Error EINVAL: -m 'nonsense' is not HOST:PORT \(port 1-65535\)$/m,
    ],
  ];
  // Three at a time: each is a short-lived process.
  const results = new Map<number, Awaited<ReturnType<typeof paxmon>>>();
  let next = 0;
  await Promise.all(
    [0, 1, 2].map(async () => {
      while (next < cases.length) {
        const i = next++;
        results.set(i, await paxmon((cases[i] as (typeof cases)[number])[0]));
      }
    }),
  );
  cases.forEach(([args, code, message], i) => {
    const r = results.get(i) as Awaited<ReturnType<typeof paxmon>>;
    assert.is(r.code, code, `paxmon ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, `paxmon ${args.join(' ')}`);
  });
});

test('config-key set -i reads at most the entry limit + 1 byte (EFBIG); keys and values that were not UTF-8 are EINVAL', async () => {
  // Refused before any monitor is asked: port 9 (discard) on loopback has nothing listening.
  const d = dir('config-key');
  const fits = join(d, 'fits');
  const over = join(d, 'over');
  writeFileSync(fits, new Uint8Array(64 * 1024));
  writeFileSync(over, new Uint8Array(64 * 1024 + 1));
  const efbig = (size: string) =>
    new RegExp(
      `^Error EFBIG: input of ${size} exceeds the entry size limit; error: entry size limited to 65536 bytes\\. Use 'mon config key max entry size' to manually adjust$`,
      'm',
    );
  // /dev/zero never ends: once it was read whole, until the kernel killed the client (8.6 GB).
  const zero = await paxmon(['-m', '127.0.0.1:9', 'config-key', 'set', 'k', '-i', '/dev/zero'], 20_000);
  assert.is(zero.code, 27, zero.stderr);
  assert.match(zero.stderr, efbig('more than 65536 bytes'));
  const big = await paxmon(['-m', '127.0.0.1:9', 'config-key', 'set', 'k', '-i', over], 20_000);
  assert.is(big.code, 27, big.stderr);
  assert.match(big.stderr, efbig('65537 bytes'));
  // Exactly the limit is sent (and here finds no monitor: not EFBIG).
  const sent = await paxmon(
    ['-k', strangerKeyring(), '-m', '127.0.0.1:9', '--timeout', '1', 'config-key', 'set', 'k', '-i', fits],
    20_000,
  );
  assert.is.not(sent.code, 27, sent.stderr);
  // Bytes that are not UTF-8, through a shell as a user types them: $'\xff' and $'\xfe'.
  const viaShell = (script: string) =>
    new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        'bash',
        [
          '-c',
          script,
          'bash',
          process.execPath,
          '--import',
          'tsx',
          join(repoRoot, 'cli/main.ts'),
          '-m',
          '127.0.0.1:9',
        ],
        { cwd: repoRoot, timeout: 20_000 },
        (error, _stdout, stderr) =>
          resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stderr }),
      ),
    );
  for (const script of [
    `exec "$@" config-key set $'\\xff' one`,
    `exec "$@" config-key get $'app/\\xfe'`,
    `exec "$@" config-key set key $'\\xff\\xfe'`,
  ]) {
    const r = await viaShell(script);
    assert.is(r.code, 22, `${script}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /^Error EINVAL: config-key (set|get): the (key|value) is not valid UTF-8/m,
      script,
    );
  }
});

test.run();
