// paxmon/testing as the README shows it (issue 19 §2): examples/counter.test.ts is the README's
// test of the counter, word for word, and run as a user runs it — `node --import tsx
// examples/counter.test.ts` — the counter passes and the copy that forgets its value at a restart
// fails, printing the failing seed, what failed and the line that replays it.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoRoot } from './support/process.ts';

test("the README's test is examples/counter.test.ts", () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Testing it: `paxmon/testing`'));
  const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.is(block, readFileSync(join(repoRoot, 'examples/counter.test.ts'), 'utf8'));
});

test('examples/counter.test.ts: the counter passes; the forgetful copy fails with a seed that replays it', async () => {
  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'examples/counter.test.ts')],
      { cwd: repoRoot, timeout: 600_000, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping uvu's colours
  const out = run.stdout.replace(/\u001b\[[0-9;]*m/g, '');
  assert.is(run.code, 0, `${out}\n${run.stderr}`);
  assert.match(out, /Total:\s+2\s+Passed:\s+2/);
  const failed = /^SEED=(\d+) monitors=3 FAILED: /m.exec(out);
  assert.ok(failed, out);
  const seed = failed?.[1];
  assert.match(out, /^ {2}invariant: linearizable client history \(at [\d.]+ s\)$/m);
  assert.match(out, /^ {2}none of these can come next/m);
  assert.match(
    out,
    new RegExp(
      `^ {2}replay: {4}simulateService\\(\\{ \\.\\.\\.sameOptions, seeds: \\[${seed}\\] \\}\\)`,
      'm',
    ),
  );
  assert.match(out, /^ {2}last 50 trace lines:$/m);
});

test.run();
