// Times the linearizability checker (sim/linearizability) on every Porcupine reference history
// (spec/fixtures/porcupine, or $PAXMON_PORCUPINE_DIR). Each history is checked `rounds` times
// (first argument, default 3); the report gives the first (cold) and the best time per history,
// the largest history (c50-ok, 1,712 operations) and the totals, and checks every verdict.
// Exits non-zero on a wrong verdict or when the largest history's cold check takes longer than
// LARGEST_BUDGET_MS: Porcupine's README sets "a few seconds" for it.
//
//   node --import tsx bench/linearizability.ts [rounds]
import { performance } from 'node:perf_hooks';
import type { PorcupineHistory } from '../sim/linearizability/index.ts';
import {
  checkOperations,
  kvModel,
  loadPorcupineHistories,
  porcupineDir,
  registerModel,
} from '../sim/linearizability/index.ts';
import { benchArgs } from './harness/args.ts';

const LARGEST_BUDGET_MS = 5000;
const ROUNDS_MAX = 100;
const LARGEST = 'c50-ok.txt';

const { positionals } = benchArgs(
  'bench/linearizability.ts',
  'node --import tsx bench/linearizability.ts [ROUNDS (3, at most 100)]\nthe checker over the porcupine histories, best of ROUNDS\n',
  {},
  1,
);
const rounds = Math.min(ROUNDS_MAX, Math.max(1, Number(positionals[0] ?? 3) || 3));
const dir = porcupineDir();

const parseStartMs = performance.now();
const histories = loadPorcupineHistories(dir);
const parseMs = performance.now() - parseStartMs;

interface Row {
  readonly name: string;
  readonly ops: number;
  readonly verdict: string;
  readonly expected: string;
  readonly steps: number;
  readonly partitions: number;
  readonly firstMs: number;
  readonly bestMs: number;
}

function check(history: PorcupineHistory): { result: string; steps: number; partitions: number } {
  return history.kind === 'kv'
    ? checkOperations(kvModel(), history.ops)
    : checkOperations(registerModel(), history.ops);
}

const rows: Row[] = [];
for (const history of histories) {
  const times: number[] = [];
  let outcome = { result: '', steps: 0, partitions: 0 };
  for (let round = 0; round < rounds; round++) {
    const startMs = performance.now();
    outcome = check(history);
    times.push(performance.now() - startMs);
  }
  const expected = history.linearizable === undefined ? '-' : history.linearizable ? 'ok' : 'illegal';
  rows.push({
    name: history.name,
    ops: history.ops.length,
    verdict: outcome.result,
    expected,
    steps: outcome.steps,
    partitions: outcome.partitions,
    firstMs: times[0] ?? 0,
    bestMs: Math.min(...times),
  });
}

const fixed = (ms: number): string => ms.toFixed(1).padStart(8);
console.log(
  `porcupine histories from ${dir}; ${rounds} rounds each; parsing all took ${parseMs.toFixed(0)} ms`,
);
console.log(
  `${'history'.padEnd(14)} ${'ops'.padStart(5)} ${'parts'.padStart(5)} ${'steps'.padStart(9)} ${'first ms'.padStart(8)} ${'best ms'.padStart(8)}  verdict`,
);
const slowest = rows
  .filter((r) => !r.name.startsWith('c'))
  .sort((a, b) => b.firstMs - a.firstMs)
  .slice(0, 10);
for (const row of [...rows.filter((r) => r.name.startsWith('c')), ...slowest]) {
  const mark =
    row.expected === '-'
      ? '(no verdict)'
      : row.verdict === row.expected
        ? ''
        : `WRONG, expected ${row.expected}`;
  console.log(
    `${row.name.padEnd(14)} ${String(row.ops).padStart(5)} ${String(row.partitions).padStart(5)} ${String(row.steps).padStart(9)} ${fixed(row.firstMs)} ${fixed(row.bestMs)}  ${row.verdict} ${mark}`,
  );
}
console.log(`(the ${slowest.length} slowest etcd histories shown of ${rows.length - 6})`);

const judged = rows.filter((r) => r.expected !== '-');
const wrong = judged.filter((r) => r.verdict !== r.expected);
const largest = rows.find((r) => r.name === LARGEST);
const sum = (pick: (r: Row) => number): number => rows.reduce((total, r) => total + pick(r), 0);
console.log(`verdicts: ${judged.length - wrong.length}/${judged.length} agree`);
if (largest)
  console.log(
    `largest (${LARGEST}, ${largest.ops} ops): first ${largest.firstMs.toFixed(1)} ms, best ${largest.bestMs.toFixed(1)} ms`,
  );
console.log(
  `total over ${rows.length} histories: first ${sum((r) => r.firstMs).toFixed(1)} ms, best ${sum((r) => r.bestMs).toFixed(1)} ms`,
);

if (wrong.length > 0) {
  for (const row of wrong)
    console.error(`wrong verdict: ${row.name} is ${row.verdict}, expected ${row.expected}`);
  process.exitCode = 1;
}
if (largest === undefined) {
  console.error(`${LARGEST} is missing from ${dir}`);
  process.exitCode = 1;
} else if (largest.firstMs > LARGEST_BUDGET_MS) {
  console.error(`${LARGEST} took ${largest.firstMs.toFixed(0)} ms, over the ${LARGEST_BUDGET_MS} ms budget`);
  process.exitCode = 1;
}
