// The embedding API (issue 7 §2): the package root exports what the README promises, and every
// example in examples/ runs as a child process, as a user would run it, and prints what it says.
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as api from '../index.ts';
import { repoRoot, tempDir } from './support/process.ts';

const work = tempDir('examples');
test.after(() => rmSync(work, { recursive: true, force: true }));

/** Run an example as a user would (`node --import tsx examples/FILE`), in `cwd` (default: the repository). */
function runExample(file: string, args: string[], timeoutMs = 90_000, cwd = repoRoot) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      // tsx by its path: `cwd` may be outside the repository, where `--import tsx` finds nothing.
      ['--import', import.meta.resolve('tsx'), join(repoRoot, 'examples', file), ...args],
      { cwd, timeout: timeoutMs },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

test('the package root exports the public API', () => {
  const functions = [
    'startLocalCluster',
    'startMonitor',
    'createMonitor',
    'mkfsTransaction',
    'buildMonMap',
    'ioLogic',
    'applyCephOptions',
    'createLogger',
    'createRecorder',
    'fileSink',
    'readRecords',
    'formatTimeline',
    'toJsonSafe',
    'combineInspectors',
    'connectStatelyInspector',
    'startInspectorServer',
    'statechartJson',
    'statechartMermaid',
    'settle',
    'isReadable',
    'isWriteable',
    'monitorStateName',
    'paxosStamp',
    'assertPaxosInvariants',
    'generateKey',
    'readKeyring',
    'writeKeyring',
    'parseKeyring',
    'formatKeyring',
    'parseMonCaps',
    'capsAllow',
    'authService',
    'newClusterKeyring',
  ];
  const classes = [
    'MonClient',
    'MonClientError',
    'RocksDBStore',
    'MemoryStore',
    'Transaction',
    'StoreError',
    'Messenger',
    'MemoryNetwork',
    'SimCluster',
    'Prng',
    'LocalClusterError',
    'MonitorLogContext',
  ];
  const exported = api as unknown as Record<string, unknown>;
  for (const name of [...functions, ...classes]) assert.type(exported[name], 'function', name);
  for (const name of ['monitorMachine', 'electorMachine'])
    assert.type((exported[name] as { createMachine?: unknown; id?: unknown }).id, 'string', name);
  assert.is(api.monitorMachine.id, 'monitor');
  assert.is(api.electorMachine.id, 'elector');
  // Paxos runs inside the monitor statechart (its leader and peon states), not as a machine of its own.
  assert.is((exported.paxosMachine as unknown) ?? null, null);
  assert.type(exported.monitorStateName, 'function');
  assert.type(api.defaultConfig.monLeaseMs, 'number');
  assert.ok(Object.keys(api.statecharts).includes('monitor'));
});

test('every example is covered here', () => {
  const examples = readdirSync(join(repoRoot, 'examples')).filter((f) => f.endsWith('.ts'));
  // A new example gets its test below and its name here.
  // counter.ts and counter.test.ts: spec/testing-examples.spec.ts.
  const covered = ['three-monitors.ts', 'counter-service.ts', 'counter.ts', 'counter.test.ts'];
  for (const file of examples) assert.ok(covered.includes(file), `examples/${file} has a spec here`);
});

test('examples/three-monitors.ts: 3 monitors in one process print their quorum and stop; a rerun reuses the data', async () => {
  const dir = join(work, 'three');
  const first = await runExample('three-monitors.ts', [dir]);
  assert.is(first.code, 0, first.stderr);
  const out = first.stdout;
  assert.match(out, /^started 3 monitors in .*: a@127\.0\.0\.1:\d+ b@127\.0\.0\.1:\d+ c@127\.0\.0\.1:\d+$/m);
  const quorum = /^quorum: election epoch (\d+), leader (\w), quorum a,b,c$/m.exec(out);
  assert.ok(quorum, out);
  assert.is(Number(quorum?.[1]) % 2, 0, 'a stable (even) election epoch');
  const leader = quorum?.[2] as string;
  assert.match(out, new RegExp(`^mon\\.${leader}: leader$`, 'm'));
  assert.is((out.match(/^mon\.\w: peon$/gm) ?? []).length, 2);
  assert.match(out, /^quorum_status over TCP: r=0 quorum_names=a,b,c$/m);
  assert.match(out, /^stopped$/m);

  const again = await runExample('three-monitors.ts', [dir]);
  assert.is(again.code, 0, again.stderr);
  const ports = (text: string) => /^started .*$/m.exec(text)?.[0].replace(/^started 3 monitors in \S+ /, '');
  assert.is(ports(again.stdout), ports(out), 'the same monmap');
  const epoch = Number(/^quorum: election epoch (\d+)/m.exec(again.stdout)?.[1]);
  assert.ok(epoch > Number(quorum?.[1]), 'election epochs persist across restarts');
});

test('examples/counter-service.ts: an app-defined PaxosService runs in a cluster, updates through Paxos, reads back; run again, it goes on from its value', async () => {
  // The example keeps its cluster in ./.paxmon-counter, as the README shows: run it in a directory of its own.
  const cwd = join(work, 'counter');
  mkdirSync(cwd, { recursive: true });
  const run = await runExample('counter-service.ts', [], 90_000, cwd);
  assert.is(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim().split('\n'), [
    'counter = 1',
    'counter = 3',
    'counter = 42',
    'counter get → 42',
  ]);
  const again = await runExample('counter-service.ts', [], 90_000, cwd);
  assert.is(again.code, 0, again.stderr);
  assert.equal(again.stdout.trim().split('\n'), [
    'counter = 43',
    'counter = 45',
    'counter = 84',
    'counter get → 84',
  ]);
});

test('startLocalCluster refuses a non-empty directory (EINVAL) and a port in use (EADDRINUSE)', async () => {
  const busy = join(work, 'busy');
  mkdirSync(busy, { recursive: true });
  writeFileSync(join(busy, 'something'), 'x');
  const notEmpty = await api.startLocalCluster({ dir: busy, size: 1, basePort: 0 }).catch((e: unknown) => e);
  assert.instance(notEmpty, api.LocalClusterError);
  assert.is((notEmpty as api.LocalClusterError).code, 'EINVAL');

  const server = createServer();
  const port = await new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  );
  try {
    const taken = await api
      .startLocalCluster({ dir: join(work, 'taken'), size: 1, basePort: port })
      .catch((e: unknown) => e);
    assert.instance(taken, api.LocalClusterError);
    assert.is((taken as api.LocalClusterError).code, 'EADDRINUSE');
    assert.match((taken as Error).message, new RegExp(`mon\\.a \\(127\\.0\\.0\\.1:${port}\\) is in use`));
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  // Once the port is free the same directory starts: its stores were created before the listen.
  const cluster = await api.startLocalCluster({ dir: join(work, 'taken') });
  try {
    const quorum = await cluster.waitForQuorum({ timeoutMs: 20_000 });
    assert.equal(quorum.quorum_names, ['a']);
  } finally {
    await cluster.stop();
  }
});

test.run();
