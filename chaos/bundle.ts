// A chaos run's monitors run from a bundle frozen when the run starts: `paxmon` built with
// esbuild (as cli/build.mjs builds dist/paxmon.mjs) into the run's own directory. Every restart
// of a monitor — after a kill, a clock fault, a full disk — then runs the same code as its first
// start, whatever happens to the working tree meanwhile (a 7-minute soak once lost a monitor
// that restarted while cli/main.ts was being edited). The workload process
// (chaos/workload-main.ts) runs from the same bundle, so the clients too are the code of the run's
// start. The bundle stays with the run's report, and SOURCE.txt says which commit it was built
// from and which files differed from it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { monitorNodeFlags } from '../cli/cluster.ts';
import { repoRoot } from '../spec/support/process.ts';

/** Left to node_modules, as cli/build.mjs leaves them: native code, worker files, one XState. */
const external = [
  'xstate',
  'rocksdb',
  'msgpackr-extract',
  'pino',
  'pino-pretty',
  'ws',
  '@statelyai/inspect',
  'cli-progress',
];

export interface FrozenBundle {
  readonly dir: string;
  /** node's arguments before `mon`: the V8 flags, then the bundle's entry. */
  readonly command: string[];
  /** node's arguments for the workload process (chaos/workload-main.ts). */
  readonly workloadCommand: string[];
  /** One line: the commit, and the files of the working tree that differed from it. */
  readonly source: string;
}

/** What the working tree is: `git describe`-like, with the files that differ from HEAD. */
export function sourceOf(root = repoRoot): string {
  // Not trimmed at the start: a porcelain line begins with its status, a space included.
  const git = (...args: string[]): string =>
    execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd();
  try {
    const commit = git('rev-parse', '--short=12', 'HEAD');
    const changed = git('status', '--porcelain', '--untracked-files=no')
      .split('\n')
      .filter(Boolean)
      .map((line) => line.slice(3));
    return changed.length === 0
      ? `commit ${commit} (working tree clean)`
      : `commit ${commit} with ${changed.length} changed file(s): ${changed.join(', ')}`;
  } catch {
    return 'not a git checkout';
  }
}

/** Build `paxmon` into `dir` (emptied first) from the working tree as it is now. */
export async function freezeBundle(dir: string): Promise<FrozenBundle> {
  const out = resolve(dir);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const source = sourceOf();
  await build({
    absWorkingDir: repoRoot,
    entryPoints: { paxmon: 'cli/paxmon.ts', 'chaos-workload': 'chaos/workload-main.ts' },
    outdir: out,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external,
    sourcemap: 'linked',
    logLevel: 'warning',
    banner: {
      js: "import { createRequire as __paxmonCreateRequire } from 'node:module';\nconst require = __paxmonCreateRequire(import.meta.url);",
    },
  });
  // The externals resolve from here up: the repository's node_modules, by a link (not a copy).
  symlinkSync(join(repoRoot, 'node_modules'), join(out, 'node_modules'), 'dir');
  // `paxmon --version` reads the manifest one level above its chunk.
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  writeFileSync(
    join(out, 'package.json'),
    `${JSON.stringify({ name: 'paxmon', version: manifest.version, private: true, type: 'module' })}\n`,
  );
  writeFileSync(join(out, 'SOURCE.txt'), `${source}\n`);
  return {
    dir: out,
    // Source maps on: a monitor's stack trace in its log names the TypeScript line.
    command: [...monitorNodeFlags, '--enable-source-maps', join(out, 'paxmon.mjs')],
    // node's default heap: 64 clients' buffers in one process.
    workloadCommand: ['--enable-source-maps', join(out, 'chaos-workload.mjs')],
    source,
  };
}
