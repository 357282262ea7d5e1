// The package as a user gets it (issue 17 §2 and §4): `npm pack` builds it (prepare, prepack) into
// a tarball of compiled JavaScript, declarations, source maps, the `paxmon` bin, README and
// LICENSE, with no install script; a new app installs the tarball (from the npm cache where it
// can), type-checks the README's embedding example with an ordinary tsconfig.json (strict, module
// nodenext) and runs it; the README's test of its counter service imports `paxmon/testing`,
// type-checks the same way, passes, and sees the broken copy of the counter fail with a seed to
// replay (issue 19); and the installed bin answers --version, starts a cluster, answers a client
// command without loading RocksDB or XState, follows the log with -w and stops it.
// Real processes; every wait is bounded, and every monitor started here is stopped by its pid.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { alive, freePorts, pollUntil, repoRoot, tempDir } from './support/process.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const work = tempDir('pack');
const app = join(work, 'app');
const clusterDir = join(app, '.paxmon');
let tarball = '';
let watcher: ChildProcess | undefined;

/** Stop what this spec started: the watcher, and the monitors of the app's cluster (by pid). */
function cleanup(): void {
  if (watcher?.pid && watcher.exitCode === null) watcher.kill('SIGKILL');
  for (const name of existsSync(clusterDir) ? readdirSync(clusterDir) : []) {
    const pidFile = join(clusterDir, name, 'pid');
    if (!existsSync(pidFile)) continue;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
  }
}
test.after(() => {
  cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** The bin as npm linked it into the app (node_modules/.bin/paxmon → paxmon/cli/bin.js → dist/paxmon.mjs). */
const bin = () => join(app, 'node_modules', '.bin', 'paxmon');
const paxmon = (args: string[], timeoutMs = 30_000) => run(bin(), args, app, timeoutMs);

test('npm pack: compiled JavaScript, declarations, source maps, the bin, README and LICENSE; no install script', async () => {
  const packed = await run(
    'npm',
    ['pack', '--pack-destination', work, '--loglevel', 'error'],
    repoRoot,
    300_000,
  );
  assert.is(packed.code, 0, `npm pack failed: ${packed.stderr}`);
  const name = readdirSync(work).find((f) => f.endsWith('.tgz'));
  assert.ok(name, 'a tarball');
  tarball = join(work, name as string);
  const list = (await run('tar', ['-tzf', tarball], work, 30_000)).stdout
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ''));
  for (const file of [
    'package.json',
    'README.md',
    'LICENSE',
    'cli/bin.js',
    'dist/paxmon.mjs',
    'dist/paxmon.mjs.map',
    'dist/index.mjs',
    'dist/index.mjs.map',
    'dist/testing.mjs',
    'dist/testing.mjs.map',
    'dist/types/index.d.ts',
    'dist/types/testing/index.d.ts',
  ])
    assert.ok(list.includes(file), `the tarball holds ${file}`);
  const scripts = list.filter((f) => f.endsWith('.mjs'));
  assert.ok(
    scripts.some((f) => f.startsWith('dist/chunks/')),
    'the lazily loaded parts are chunks of their own',
  );
  for (const file of scripts) assert.ok(list.includes(`${file}.map`), `${file} has its source map`);
  const allowed =
    /^(package\.json|README\.md|LICENSE|cli\/bin\.js|dist\/(paxmon|index|testing)\.mjs(\.map)?|dist\/chunks\/[\w-]+\.mjs(\.map)?|dist\/dashboard\/[\w.-]+|dist\/types\/[\w/.-]+\.d\.ts)$/;
  assert.equal(
    list.filter((f) => !allowed.test(f)),
    [],
    'nothing else: no TypeScript sources, specs, benches, CI files',
  );
  const manifest = JSON.parse(
    (await run('tar', ['-xzOf', tarball, 'package/package.json'], work, 30_000)).stdout,
  ) as {
    scripts?: Record<string, string>;
    bin?: Record<string, string>;
  };
  // npm counts `prepare` too for a package installed from a tarball or a folder.
  for (const script of ['preinstall', 'install', 'postinstall', 'prepare'])
    assert.not.ok(manifest.scripts?.[script], `no ${script} script`);
  assert.equal(manifest.bin, { paxmon: 'cli/bin.js' });
});

test('the tarball installs into a new app: no script of its own runs, nothing is compiled', async () => {
  assert.ok(tarball, 'packed');
  mkdirSync(app, { recursive: true });
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify(
      {
        name: 'paxmon-pack-app',
        private: true,
        type: 'module',
        // As this repository does: the native packages load the binaries they ship.
        allowScripts: { rocksdb: false, 'msgpackr-extract': false },
      },
      null,
      2,
    )}\n`,
  );
  const versionOf = (name: string) =>
    (
      JSON.parse(readFileSync(join(repoRoot, `node_modules/${name}/package.json`), 'utf8')) as {
        version: string;
      }
    ).version;
  const typesNode = versionOf('@types/node');
  const installed = await run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--loglevel',
      'warn',
      tarball,
      `@types/node@${typesNode}`,
      // The test runner of the README's test of a custom service (paxmon/testing).
      `uvu@${versionOf('uvu')}`,
    ],
    app,
    600_000,
  );
  assert.is(installed.code, 0, `npm install failed: ${installed.stderr}`);
  assert.not.match(installed.stderr, /paxmon@\S+ \(/, 'npm finds no install script of paxmon to allow');
  const types = join(app, 'node_modules/paxmon/dist/types');
  assert.ok(existsSync(join(types, 'index.d.ts')));
  const tsImports = readFileSync(join(types, 'index.d.ts'), 'utf8').match(/from '\.[^']*\.ts'/g);
  assert.is(tsImports, null, 'declarations import .js paths, as every TypeScript setup resolves them');
});

test("the README's embedding example type-checks (strict, module nodenext) and runs", async () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Embedding paxmon in an app'));
  const example = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(example?.includes("from 'paxmon'"), 'the README has the example');
  writeFileSync(join(app, 'app.ts'), example as string);
  writeFileSync(
    join(app, 'tsconfig.json'),
    `${JSON.stringify(
      {
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          target: 'es2022',
          types: ['node'],
          outDir: 'out',
        },
        files: ['app.ts'],
      },
      null,
      2,
    )}\n`,
  );
  // The repository's own TypeScript (the app would have its own): not installed again.
  const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
  const checked = await run(process.execPath, [tsc, '-p', app], app, 120_000);
  assert.is(checked.code, 0, `tsc: ${checked.stdout}${checked.stderr}`);
  const ran = await run(process.execPath, [join(app, 'out/app.js')], app, 120_000);
  assert.is(ran.code, 0, `the example failed: ${ran.stderr}`);
  assert.match(ran.stdout, /^leader [a-c], quorum a,b,c$/m);
  assert.match(ran.stdout, /^quorum_status: r=0, \d+ bytes/m);
});

test("paxmon/testing: the README's counter test type-checks, passes, and its broken copy fails with a seed to replay", async () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Testing it: `paxmon/testing`'));
  const spec = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(spec?.includes("from 'paxmon/testing'"), 'the README has the test');
  // The counter it tests, as the README's custom-service section defines it (exported).
  writeFileSync(join(app, 'counter.ts'), readFileSync(join(repoRoot, 'examples/counter.ts'), 'utf8'));
  writeFileSync(join(app, 'counter.test.ts'), spec as string);
  writeFileSync(
    join(app, 'tsconfig.testing.json'),
    `${JSON.stringify(
      {
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          target: 'es2022',
          types: ['node'],
          outDir: 'out-testing',
        },
        files: ['counter.ts', 'counter.test.ts'],
      },
      null,
      2,
    )}\n`,
  );
  const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
  const checked = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.testing.json')], app, 120_000);
  assert.is(checked.code, 0, `tsc: ${checked.stdout}${checked.stderr}`);
  const ran = await run(process.execPath, [join(app, 'out-testing/counter.test.js')], app, 600_000);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping uvu's colours
  const out = ran.stdout.replace(/\u001b\[[0-9;]*m/g, '');
  assert.is(ran.code, 0, `the test failed: ${out}${ran.stderr}`);
  assert.match(out, /Total:\s+2\s+Passed:\s+2/);
  const seed = /^SEED=(\d+) monitors=3 FAILED: /m.exec(out)?.[1];
  assert.ok(seed, out);
  assert.match(out, /^ {2}invariant: linearizable client history /m);
  assert.match(
    out,
    new RegExp(
      `^ {2}replay: {4}simulateService\\(\\{ \\.\\.\\.sameOptions, seeds: \\[${seed}\\] \\}\\)`,
      'm',
    ),
  );
});

test('the installed bin: --version, up, a client command without RocksDB or XState, -w, down', async () => {
  const npx = await run('npx', ['--no-install', 'paxmon', '--version'], app, 60_000);
  assert.is(npx.code, 0, npx.stderr);
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
    .version;
  assert.is(npx.stdout, `paxmon version ${version}\n`);

  // The monitors run from the installed package (its chunks and the app's rocksdb).
  const port = await freePorts(1);
  const up = await paxmon(['up', '--size', '1', '--port', String(port), '--detach'], 60_000);
  assert.is(up.code, 0, `up: ${up.stdout}${up.stderr}`);

  // A client command: which packages does it load? (An ES module loader hook lists them.)
  const hook = join(work, 'list-modules.mjs');
  writeFileSync(
    hook,
    `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(
      "export async function resolve(s, c, next) { const r = await next(s, c); if (r.url.startsWith('file:')) process.stderr.write('loaded ' + r.url + '\\n'); return r; }",
    )}));\n`,
  );
  const quorum = await run(
    process.execPath,
    ['--import', hook, join(app, 'node_modules/paxmon/dist/paxmon.mjs'), 'quorum_status'],
    app,
    30_000,
  );
  assert.is(quorum.code, 0, quorum.stderr);
  assert.equal((JSON.parse(quorum.stdout) as { quorum_names: string[] }).quorum_names, ['a']);
  const loaded = quorum.stderr.split('\n').filter((l) => l.startsWith('loaded '));
  assert.ok(loaded.length > 0, 'the hook saw the modules');
  assert.equal(
    loaded.filter((l) => /node_modules\/(rocksdb|xstate)\//.test(l)),
    [],
    'quorum_status loads neither RocksDB nor XState',
  );

  // paxmon -w: the status, then the log as it is written.
  let watched = '';
  watcher = spawn(bin(), ['-w', '--interval', '0.2'], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
  watcher.stdout?.on('data', (chunk: Buffer) => {
    watched += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => watcher?.once('exit', (code) => resolve(code)));
  await pollUntil('the watcher printed the status', 15_000, async () =>
    watched.includes('  services:') ? true : undefined,
  );
  const logged = await paxmon(['log', 'packed and installed']);
  assert.is(logged.code, 0, logged.stderr);
  await pollUntil('the watcher printed the new log entry', 15_000, async () =>
    /^\S+ client\.\S+ \[INF\] packed and installed$/m.test(watched) ? true : undefined,
  );
  watcher.kill('SIGINT');
  assert.is(
    await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]),
    0,
    'Ctrl-C ends paxmon -w with exit 0',
  );

  const down = await paxmon(['down'], 30_000);
  assert.is(down.code, 0, down.stderr);
  assert.match(down.stdout, /^stopped 1 monitor in /m);
});

test.run();
