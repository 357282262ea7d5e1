// paxmon against etcd (issue 8) and against Ceph's own monitor (issue 14), side by side: one
// harness, one workload definition (bench/harness/workloads.ts), three targets
// (bench/harness/paxmon.ts, etcd.ts, ceph.ts), each 3 members on loopback driven by clients of
// this process (Node clients; for Ceph, librados in python3 workers this process drives).
// Repetitions alternate the targets (A B C, C B A, A B C, …); every figure is the median of the
// repetitions with min–max. Then a CPU profile of paxmon under (b). Prints a Markdown table and
// writes bench/results/<stamp>.json.
//
//   npm run bench                    # full: 3 repetitions, 100k bulk writes (≈ 20–25 min)
//   npm run bench -- --quick         # 3 quick repetitions, 5k bulk writes (≈ 8–10 min)
//   npm run bench -- --help
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { applyCephOptions, defaultConfig } from '../machines/config.ts';
import { runLoad, type Spread, spread, valueFor } from './harness/load.ts';
import { cpuBusySampler, fdatasyncRate, load, machine } from './harness/machine.ts';
import { installCleanup, makeTempDir, removeTempDir } from './harness/proc.ts';
import { formatProfile, mainThreadProfile, type ProfileSummary, summarise } from './harness/profile.ts';
import type { Cluster, KvClient, ReadMode, Target } from './harness/target.ts';
import {
  CONNECTIONS,
  fmtLoad,
  fullSizes,
  IN_FLIGHT,
  type KillResult,
  type MainResult,
  quickSizes,
  runKill,
  runMain,
  type Sizes,
} from './harness/workloads.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const usage = `usage: npm run bench -- [options]

  --quick               fewer and shorter loads (5,000 bulk writes; about 8–10 minutes with
                        the three targets, 3–5 without ceph)
  --reps N              repetitions per target, alternating A/B (default 3, at least 1)
  --targets LIST        any of paxmon,etcd,ceph (default all three; a ratio needs paxmon and the
                        other); a target that is missing and cannot be installed is left out
  --writes N            bulk writes for (e)/(f) (default 100000, quick 5000)
  --no-kill             skip (d), the leader kill -9 runs
  --no-profile          skip the CPU profile of paxmon under (b)
  --profile-seconds S   length of the profiled load (default 10, quick 4)
  --keep-profiles DIR   also keep the monitors' raw .cpuprofile files there
  --paxmon-set N=V      a monitor option for every paxmon run (repeatable), as 'paxmon mon --set'
                        (e.g. --paxmon-set paxos_propose_gather=0 to compare an option A/B;
                        --paxmon-set ms_mon_cluster_mode=crc: frames between monitors not encrypted)
  --out DIR             where the JSON goes (default bench/results)
  --no-save             print only
`;

function parseOptions() {
  try {
    return parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        reps: { type: 'string' },
        targets: { type: 'string', default: 'paxmon,etcd,ceph' },
        writes: { type: 'string' },
        'no-kill': { type: 'boolean', default: false },
        'no-profile': { type: 'boolean', default: false },
        'profile-seconds': { type: 'string' },
        'keep-profiles': { type: 'string' },
        'paxmon-set': { type: 'string', multiple: true, default: [] },
        out: { type: 'string', default: join(root, 'bench', 'results') },
        'no-save': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${usage}`);
    process.exit(22);
  }
}
const opts = parseOptions();
if (opts.help) {
  process.stdout.write(usage);
  process.exit(0);
}

installCleanup();
const log = (line: string) => process.stdout.write(`${line}\n`);
const sizes: Sizes = { ...(opts.quick ? quickSizes : fullSizes) };
if (opts.writes) sizes.bulkWrites = Math.max(1, Number(opts.writes));
const reps = Math.max(1, Number(opts.reps ?? 3) || 3);
const profileSeconds = Number(opts['profile-seconds'] ?? (opts.quick ? 4 : 10));
const paxmonSets = opts['paxmon-set'] ?? [];
{
  // Checked here, so that a typo fails at once rather than as three monitors that never start.
  // The messenger's own options (ms_*, e.g. ms_mon_cluster_mode=crc) are checked by `paxmon mon`.
  const checked = applyCephOptions(
    defaultConfig,
    paxmonSets.filter((pair) => !pair.startsWith('ms_')),
  );
  if (typeof checked === 'string') {
    process.stderr.write(`--paxmon-set: ${checked}\n`);
    process.exit(22);
  }
}
// Each target's module is loaded only when it is asked for, so that one target's code or
// software being unavailable does not stop the others (see the version loop below).
const allTargets: Record<string, () => Promise<Target>> = {
  paxmon: async () => (await import('./harness/paxmon.ts')).paxmonTarget,
  etcd: async () => (await import('./harness/etcd.ts')).etcdTarget,
  ceph: async () => (await import('./harness/ceph.ts')).cephTarget,
};
const targetNames = [
  ...new Set(
    (opts.targets ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
  ),
];
for (const name of targetNames) {
  if (!allTargets[name]) {
    process.stderr.write(`unknown target '${name}' (${Object.keys(allTargets).join(', ')})\n${usage}`);
    process.exit(22);
  }
}
const targets: Target[] = [];
const readModes: Record<string, ReadMode[]> = {
  paxmon: ['default'],
  etcd: ['linearizable', 'serializable'],
  ceph: ['default'],
};

interface Rep {
  rep: number;
  main: MainResult | null;
  killDefault: KillResult | null;
  killFast: KillResult | null;
  errors: string[];
}

async function withCluster<T>(
  target: Target,
  fast: boolean,
  errors: string[],
  what: string,
  body: (cluster: Cluster) => Promise<T>,
): Promise<T | null> {
  let cluster: Cluster | null = null;
  try {
    cluster = await target.start({ fast, sets: paxmonSets });
    return await body(cluster);
  } catch (error) {
    const message = `${what}: ${(error as Error).message}`;
    errors.push(message);
    log(`    ${target.name} ${message}`);
    return null;
  } finally {
    await cluster?.stop().catch((error: Error) => errors.push(`stop: ${error.message}`));
  }
}

async function runRep(target: Target, rep: number): Promise<Rep> {
  const errors: string[] = [];
  log(`  ${target.name}, repetition ${rep + 1}/${reps}`);
  const main = await withCluster(target, false, errors, 'main', (c) =>
    runMain(c, sizes, readModes[target.name] ?? ['default'], log),
  );
  let killDefault: KillResult | null = null;
  let killFast: KillResult | null = null;
  if (!opts['no-kill'] && !main?.unsupported) {
    killDefault = await withCluster(target, false, errors, 'kill (default timing)', (c) => runKill(c, sizes));
    log(`    (d) leader kill -9 → next write, default timing: ${fmtKill(killDefault)}`);
    killFast = await withCluster(target, true, errors, 'kill (fast timing)', (c) => runKill(c, sizes));
    log(`    (d) leader kill -9 → next write, fast timing: ${fmtKill(killFast)}`);
  }
  return { rep, main, killDefault, killFast, errors };
}

function fmtKill(k: KillResult | null): string {
  if (!k) return 'failed';
  if (k.error) return `failed: ${k.error}`;
  return `${(k.recoveryMs / 1000).toFixed(3)} s (leader ${k.leader}, ${k.probes} probes, ${k.failedProbes} failed)`;
}

// --- the profile -----------------------------------------------------------------------------

interface ProfileResult {
  seconds: number;
  load: string;
  leader: string;
  all: ProfileSummary;
  leaderOnly: ProfileSummary;
}

async function profilePaxmon(paxmonTarget: Target): Promise<ProfileResult | null> {
  const profDir = makeTempDir('paxmon-bench-prof-');
  let cluster: Cluster | null = null;
  const clients: KvClient[] = [];
  try {
    cluster = await paxmonTarget.start({ fast: false, cpuProfileDir: profDir, sets: paxmonSets });
    const leader = await cluster.leader();
    const order = [leader, ...cluster.members.map((m) => m.name).filter((n) => n !== leader)];
    for (let i = 0; i < CONNECTIONS; i++)
      clients.push(await cluster.client(order[i % order.length] as string, { timeoutMs: 10_000 }));
    const op = (w: number, seq: number) =>
      (clients[w % CONNECTIONS] as KvClient).put(`bench/p/${seq % sizes.keySpace}`, valueFor(seq));
    await runLoad({ workers: IN_FLIGHT, maxOps: sizes.warmup * 4, maxMs: sizes.warmupMs, op });
    const fromUs = Number(process.hrtime.bigint() / 1000n);
    const result = await runLoad({
      workers: IN_FLIGHT,
      maxOps: Math.max(10_000, profileSeconds * 50_000),
      maxMs: profileSeconds * 1000,
      op,
    });
    const toUs = Number(process.hrtime.bigint() / 1000n);
    log(`  profiled load (b): ${fmtLoad(result)}`);
    await Promise.all(clients.map((c) => c.close()));
    clients.length = 0;
    // Profiles are written when the monitors exit: SIGTERM and a clean exit.
    await cluster.stop({ graceful: true });
    cluster = null;
    const fileOf = (name: string) => {
      const file = mainThreadProfile(join(profDir, name));
      if (!file) throw new Error(`mon.${name} wrote no main-thread profile in ${join(profDir, name)}`);
      return file;
    };
    const files = ['a', 'b', 'c'].map(fileOf);
    const window = { fromUs, toUs };
    if (opts['keep-profiles']) {
      const keep = resolve(opts['keep-profiles']);
      mkdirSync(keep, { recursive: true });
      for (const [i, file] of files.entries()) copyFileSync(file, join(keep, `mon-${'abc'[i]}.cpuprofile`));
      log(`  raw profiles (Chrome DevTools / speedscope) kept in ${keep}`);
    }
    return {
      seconds: profileSeconds,
      load: fmtLoad(result),
      leader,
      all: summarise(files, root, window),
      leaderOnly: summarise([fileOf(leader)], root, window),
    };
  } catch (error) {
    log(`  profile failed: ${(error as Error).message}`);
    return null;
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await cluster?.stop().catch(() => {});
    removeTempDir(profDir);
  }
}

// --- the table -------------------------------------------------------------------------------

interface Row {
  row: string;
  unit: string;
  /** The §2 goal as a bound on paxmon/etcd. */
  goal?: { op: '>=' | '<='; ratio: number };
  paxmon: Spread | null;
  etcd: Spread | null;
  ceph: Spread | null;
  /** paxmon/etcd. */
  ratio: number | null;
  /** paxmon/ceph. */
  ratioCeph: number | null;
  met: boolean | null;
}

type Pick = (r: Rep) => number | undefined;
type Picks = Record<'paxmon' | 'etcd' | 'ceph', Pick>;

function rowOf(
  results: Record<string, Rep[]>,
  row: string,
  unit: string,
  picks: Picks,
  goal?: Row['goal'],
): Row {
  const vals = (name: keyof Picks) => spread((results[name] ?? []).map((r) => picks[name](r) ?? Number.NaN));
  const p = vals('paxmon');
  const e = vals('etcd');
  const c = vals('ceph');
  const ratioTo = (other: Spread | null) =>
    p && other && other.median !== 0 ? p.median / other.median : null;
  const ratio = ratioTo(e);
  const met = goal && ratio !== null ? (goal.op === '>=' ? ratio >= goal.ratio : ratio <= goal.ratio) : null;
  return {
    row,
    unit,
    ...(goal ? { goal } : {}),
    paxmon: p,
    etcd: e,
    ceph: c,
    ratio,
    ratioCeph: ratioTo(c),
    met,
  };
}

const MiB = 2 ** 20;
const maxOf = (m: Record<string, { rss: number; hwm: number }> | undefined, f: 'rss' | 'hwm') =>
  m && Object.keys(m).length ? Math.max(...Object.values(m).map((v) => v[f])) / MiB : undefined;
const ok = <T extends { errors: number; ok: number }>(r: T | null | undefined): T | undefined =>
  r && r.ok > 0 && r.errors === 0 ? r : undefined;
const recovery = (k: KillResult | null) => (k && !k.error ? k.recoveryMs / 1000 : undefined);

function rows(results: Record<string, Rep[]>, bulk: number): Row[] {
  const same = (pick: Pick): [Picks] => [{ paxmon: pick, etcd: pick, ceph: pick }];
  /** paxmon and Ceph answer reads one way; etcd's reads are picked per row. */
  const reads = (etcd: ReadMode): [Picks] => {
    const pick = (r: Rep) => ok(r.main?.reads.default);
    return [
      {
        paxmon: (r) => pick(r)?.opsPerSec,
        etcd: (r) => ok(r.main?.reads[etcd])?.opsPerSec,
        ceph: (r) => pick(r)?.opsPerSec,
      },
    ];
  };
  const readsP99 = (etcd: ReadMode): [Picks] => {
    const pick = (r: Rep) => ok(r.main?.reads.default)?.p99Ms;
    return [{ paxmon: pick, etcd: (r) => ok(r.main?.reads[etcd])?.p99Ms, ceph: pick }];
  };
  return [
    rowOf(results, '(a) sequential writes, 1 client', 'ops/s', ...same((r) => ok(r.main?.seq)?.opsPerSec), {
      op: '>=',
      ratio: 1.5,
    }),
    rowOf(results, '(a) sequential writes: p50 latency', 'ms', ...same((r) => ok(r.main?.seq)?.p50Ms)),
    rowOf(
      results,
      '(b) 64 writes in flight, 8 connections',
      'ops/s',
      ...same((r) => ok(r.main?.write)?.opsPerSec),
      { op: '>=', ratio: 2 },
    ),
    rowOf(results, '(b) p50 latency', 'ms', ...same((r) => ok(r.main?.write)?.p50Ms)),
    rowOf(results, '(b) p99 latency', 'ms', ...same((r) => ok(r.main?.write)?.p99Ms), { op: '<=', ratio: 1 }),
    rowOf(results, '(c) 64 reads in flight (etcd linearizable)', 'ops/s', ...reads('linearizable'), {
      op: '>=',
      ratio: 3,
    }),
    rowOf(results, '(c) p99 latency (etcd linearizable)', 'ms', ...readsP99('linearizable')),
    rowOf(results, '(c) 64 reads in flight (etcd serializable)', 'ops/s', ...reads('serializable')),
    rowOf(
      results,
      '(d) leader kill -9 → next write, default timing',
      's',
      ...same((r) => recovery(r.killDefault)),
    ),
    rowOf(
      results,
      '(d) leader kill -9 → next write, equal fast timing',
      's',
      ...same((r) => recovery(r.killFast)),
      { op: '<=', ratio: 1 },
    ),
    rowOf(
      results,
      '(e) RSS per member, idle (largest member)',
      'MiB',
      ...same((r) => maxOf(r.main?.idle, 'rss')),
      { op: '<=', ratio: 1 },
    ),
    rowOf(
      results,
      '(e) RSS per member, peak (largest member)',
      'MiB',
      ...same((r) => maxOf(r.main?.peak, 'hwm')),
      { op: '<=', ratio: 1 },
    ),
    rowOf(
      results,
      `(e) RSS per member after ${bulk.toLocaleString('en')} writes (largest)`,
      'MiB',
      ...same((r) => (ok(r.main?.bulk) ? maxOf(r.main?.after, 'rss') : undefined)),
      { op: '<=', ratio: 1 },
    ),
    rowOf(
      results,
      '(f) CPU seconds per 1,000 writes (3 members)',
      's',
      ...same((r) => ok(r.main?.bulk)?.cpuSPer1000),
      { op: '<=', ratio: 1 },
    ),
  ];
}

function num(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en');
  if (Math.abs(v) >= 10) return v.toFixed(1);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

function cell(s: Spread | null): string {
  if (!s) return 'n/a';
  return `${num(s.median)} [${num(s.min)}–${num(s.max)}]`;
}

/** The table; Ceph's columns only when Ceph ran (a paxmon/etcd run prints as before issue 14). */
function table(all: Row[], withCeph: boolean): string {
  const ratioCell = (ratio: number | null) => (ratio === null ? 'n/a' : `${ratio.toFixed(2)}×`);
  const columns = withCeph
    ? ['row', 'unit', 'paxmon median [min–max]', 'etcd median [min–max]', 'ceph median [min–max]']
    : ['row', 'unit', 'paxmon median [min–max]', 'etcd median [min–max]'];
  columns.push('paxmon/etcd', ...(withCeph ? ['paxmon/ceph', 'goal (paxmon/etcd)'] : ['goal']));
  const lines = [`| ${columns.join(' | ')} |`, `| ${columns.map(() => '---').join(' | ')} |`];
  for (const r of all) {
    const goal = r.goal
      ? `${r.goal.op === '>=' ? '≥' : '≤'} ${r.goal.ratio}× ${r.met === null ? '' : r.met ? '✓' : '✗'}`
      : '';
    const cells = [r.row, r.unit, cell(r.paxmon), cell(r.etcd), ...(withCeph ? [cell(r.ceph)] : [])];
    cells.push(ratioCell(r.ratio), ...(withCeph ? [ratioCell(r.ratioCeph)] : []), goal.trim());
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

// --- run ------------------------------------------------------------------------------------

const startedAt = new Date();
const loadBefore = load();
const busy = cpuBusySampler();
const host = machine();
const versions: Record<string, string> = {};
// A target whose software is missing and cannot be installed is left out; the others run.
const unavailable: Record<string, string> = {};
for (const name of targetNames) {
  try {
    const target = await (allTargets[name] as () => Promise<Target>)();
    versions[name] = await target.version();
    targets.push(target);
  } catch (error) {
    unavailable[name] = (error as Error).message;
    log(`${name} is not available, left out of this run: ${(error as Error).message}`);
  }
}
if (targets.length === 0) {
  process.stderr.write('bench: no target is available\n');
  process.exit(1);
}
log(
  `${targets.map((t) => t.name).join(' vs ')} — ${opts.quick ? 'quick' : 'full'} run, ${reps} repetitions alternating`,
);
log(`  ${Object.values(versions).join(' · ')} · Node ${host.node}`);
if (paxmonSets.length) log(`  paxmon options: ${paxmonSets.join(' ')}`);
log(
  `  machine: ${host.cores} × ${host.cpuModel}, ${host.memoryGiB} GiB, ${host.disk}, fdatasync ${host.fdatasyncPerSec}/s, load average ${loadBefore.join(' ')}`,
);
log(
  `  workloads: 100-byte values, keys cycling over ${sizes.keySpace.toLocaleString('en')}; (a) ≤ ${sizes.seqOps} ops / ${sizes.seqMs / 1000} s; (b) ≤ ${sizes.writeOps} / ${sizes.writeMs / 1000} s; (c) ≤ ${sizes.readOps} / ${sizes.readMs / 1000} s; (e) ${sizes.bulkWrites.toLocaleString('en')} writes (≤ ${sizes.bulkMs / 1000} s)`,
);
for (const t of targets) log(`  fast timing for (d), ${t.name}: ${t.timing(true)}`);

const results: Record<string, Rep[]> = {};
for (let rep = 0; rep < reps; rep++) {
  const order = rep % 2 === 0 ? targets : [...targets].reverse();
  for (const target of order) {
    const r = await runRep(target, rep);
    const list = results[target.name] ?? [];
    list.push(r);
    results[target.name] = list;
  }
}

let profile: ProfileResult | null = null;
const paxmonTarget = targets.find((t) => t.name === 'paxmon');
if (!opts['no-profile'] && paxmonTarget) {
  const supported = (results.paxmon ?? []).some((r) => r.main && !r.main.unsupported);
  if (supported) {
    log(`  CPU profile of paxmon under (b), ${profileSeconds} s (node --cpu-prof on each monitor)`);
    profile = await profilePaxmon(paxmonTarget);
  } else log('  CPU profile skipped: paxmon did not take writes');
}

const busyFraction = busy();
const loadAfter = load();
const fdatasyncAfter = Math.round(fdatasyncRate());
const allRows = rows(results, sizes.bulkWrites);
const md = table(
  allRows,
  targets.some((t) => t.name === 'ceph'),
);
log('');
log(
  `${Object.values(versions).join(' vs ')}; Node ${host.node}; ${host.cores} cores, ${host.memoryGiB} GiB; median of ${reps} [min–max]`,
);
log(md);
log(
  `machine load: load average ${loadBefore.join(' ')} before, ${loadAfter.join(' ')} after; the whole machine's CPU was ${Math.round(busyFraction * 100)}% busy during the run (bench + members + anything else); fdatasync ${host.fdatasyncPerSec}/s before, ${fdatasyncAfter}/s after`,
);
for (const [name, rs] of Object.entries(results)) {
  const short = rs.filter((r) => r.main?.bulk && r.main.bulk.ok < sizes.bulkWrites);
  if (short.length)
    log(
      `note: ${name} reached its time bound in (e) in ${short.length} repetition(s): ${short.map((r) => r.main?.bulk?.ok).join(', ')} writes instead of ${sizes.bulkWrites}`,
    );
}
const paxmonUnsupported = (results.paxmon ?? []).find((r) => r.main?.unsupported)?.main?.unsupported;
if (paxmonUnsupported) log(`paxmon rows are n/a: writes were refused (${paxmonUnsupported})`);
const errors = Object.entries(results).flatMap(([name, rs]) =>
  rs.flatMap((r) => r.errors.map((e) => `${name} rep ${r.rep + 1}: ${e}`)),
);
if (errors.length) log(`errors:\n  ${errors.join('\n  ')}`);
let profileText = '';
if (profile) {
  profileText = [
    formatProfile(`paxmon CPU profile under (b), all 3 monitors, ${profile.seconds} s`, profile.all),
    formatProfile(`leader mon.${profile.leader} alone`, profile.leaderOnly),
  ].join('\n\n');
  log('');
  log(profileText);
}

if (!opts['no-save']) {
  const stamp = startedAt.toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  const name = `${stamp}${opts.quick ? '-quick' : ''}`;
  mkdirSync(opts.out as string, { recursive: true });
  const file = join(opts.out as string, `${name}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        mode: opts.quick ? 'quick' : 'full',
        repetitions: reps,
        versions,
        unavailable,
        paxmonOptions: paxmonSets,
        machine: host,
        machineLoad: {
          loadAverageBefore: loadBefore,
          loadAverageAfter: loadAfter,
          cpuBusyFraction: busyFraction,
          fdatasyncPerSecBefore: host.fdatasyncPerSec,
          fdatasyncPerSecAfter: fdatasyncAfter,
        },
        sizes,
        layout: {
          values: '100 bytes',
          sequential: '1 client connected to the leader',
          concurrent: `${IN_FLIGHT} in flight over ${CONNECTIONS} connections, spread over the members leader first (paxmon's clients then send updates to the leader a peon names)`,
        },
        timing: Object.fromEntries(
          targets.map((t) => [t.name, { default: t.timing(false), fast: t.timing(true) }]),
        ),
        rows: allRows,
        table: md,
        profile,
        runs: results,
        errors,
      },
      null,
      2,
    )}\n`,
  );
  if (profileText) writeFileSync(join(opts.out as string, `${name}-profile.txt`), `${profileText}\n`);
  log(`\nwritten: ${file}${profileText ? ` and ${name}-profile.txt` : ''}`);
}
process.exit(errors.length > 0 && Object.values(results).every((rs) => rs.every((r) => !r.main)) ? 1 : 0);
