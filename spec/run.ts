// Runs every spec/**/*.spec.ts with uvu in one process and prints one closing line
// `N passed, N failed, N skipped`. Exits non-zero on any failure, on a crash, or when no
// test ran at all (a runner that silently finds nothing must not look green).
// `npm test -- storage` narrows the run to spec files whose path matches "storage".
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const filter = process.argv[2];
const pattern = filter ? `${filter.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*\\.spec\\.ts$` : '\\.spec\\.ts$';
const uvuBin = fileURLToPath(new URL('../node_modules/uvu/bin.js', import.meta.url));
const child = spawn(process.execPath, ['--import', 'tsx', uvuBin, 'spec', pattern], {
  stdio: ['ignore', 'pipe', 'inherit'],
  cwd: fileURLToPath(new URL('..', import.meta.url)),
});

let output = '';
child.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  output += chunk.toString('utf8');
  if (output.length > 1 << 20) output = output.slice(-(1 << 16));
});

child.on('close', (code, signal) => {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI colour codes
  const plain = output.replace(/\u001b\[[0-9;]*m/g, '');
  const count = (label: string): number => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(plain)?.[1] ?? 0);
  const total = count('Total');
  const passed = count('Passed');
  const skipped = count('Skipped');
  const failed = total - passed;
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  if (signal) console.error(`spec runner killed by ${signal}`);
  if (code !== 0 || failed > 0 || total === 0 || signal) {
    if (total === 0) console.error('no test ran');
    process.exit(code && code !== 0 ? code : 1);
  }
});
