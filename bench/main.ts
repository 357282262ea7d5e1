// paxmon against etcd, side by side (issue 8): one harness, one workload definition
// (bench/harness/workloads.ts), two targets (bench/harness/paxmon.ts, bench/harness/etcd.ts),
// both 3 members on loopback driven by Node clients in this process. Repetitions alternate the
// targets (A B, B A, A B, …); every figure is the median of the repetitions with min–max. Then a
// CPU profile of paxmon under (b). Prints a Markdown table and writes bench/results/<stamp>.json.
//
//   npm run bench                    # full: 3 repetitions, 100k bulk writes (≈ 10–15 min)
//   npm run bench -- --quick         # 3 quick repetitions, 5k bulk writes (≈ 3–5 min)
//   npm run bench -- --help
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { applyCephOptions, defaultConfig } from '../machines/config.ts';
import { etcdTarget } from './harness/etcd.ts';
import { runLoad, type Spread, spread, valueFor } from './harness/load.ts';
import { cpuBusySampler, fdatasyncRate, load, machine } from './harness/machine.ts';
import { paxmonTarget } from './harness/paxmon.ts';
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

  --quick               fewer and shorter loads (5,000 bulk writes; about 3–5 minutes)
  --reps N              repetitions per target, alternating A/B (default 3, at least 1)
  --targets LIST        paxmon,etcd (default both; the ratio needs both)
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
        targets: { type: 'string', default: 'paxmon,etcd' },
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
const allTargets: Record<string, Target> = { paxmon: paxmonTarget, etcd: etcdTarget };
const targets = (opts.targets ?? '')
  .split(',')
  .map((t) => t.trim())
  .filter(Boolean)
  .map((t) => {
    const target = allTargets[t];
    if (!target) {
      process.stderr.write(`unknown target '${t}' (paxmon, etcd)\n${usage}`);
      process.exit(22);
    }
    return target;
  });
const readModes: Record<string, ReadMode[]> = { paxmon: ['default'], etcd: ['linearizable', 'serializable'] };

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

async function profilePaxmon(): Promise<ProfileResult | null> {
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
  ratio: number | null;
  met: boolean | null;
}

type Pick = (r: Rep) => number | undefined;

function rowOf(
  results: Record<string, Rep[]>,
  row: string,
  unit: string,
  paxmonPick: Pick,
  etcdPick: Pick,
  goal?: Row['goal'],
): Row {
  const vals = (name: string, pick: Pick) => spread((results[name] ?? []).map((r) => pick(r) ?? Number.NaN));
  const p = vals('paxmon', paxmonPick);
  const e = vals('etcd', etcdPick);
  const ratio = p && e && e.median !== 0 ? p.median / e.median : null;
  const met = goal && ratio !== null ? (goal.op === '>=' ? ratio >= goal.ratio : ratio <= goal.ratio) : null;
  return { row, unit, ...(goal ? { goal } : {}), paxmon: p, etcd: e, ratio, met };
}

const MiB = 2 ** 20;
const maxOf = (m: Record<string, { rss: number; hwm: number }> | undefined, f: 'rss' | 'hwm') =>
  m && Object.keys(m).length ? Math.max(...Object.values(m).map((v) => v[f])) / MiB : undefined;
const ok = <T extends { errors: number; ok: number }>(r: T | null | undefined): T | undefined =>
  r && r.ok > 0 && r.errors === 0 ? r : undefined;
const recovery = (k: KillResult | null) => (k && !k.error ? k.recoveryMs / 1000 : undefined);

function rows(results: Record<string, Rep[]>, bulk: number): Row[] {
  const same = (pick: Pick): [Pick, Pick] => [pick, pick];
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
    rowOf(
      results,
      '(c) 64 reads in flight (etcd linearizable)',
      'ops/s',
      (r) => ok(r.main?.reads.default)?.opsPerSec,
      (r) => ok(r.main?.reads.linearizable)?.opsPerSec,
      { op: '>=', ratio: 3 },
    ),
    rowOf(
      results,
      '(c) p99 latency (etcd linearizable)',
      'ms',
      (r) => ok(r.main?.reads.default)?.p99Ms,
      (r) => ok(r.main?.reads.linearizable)?.p99Ms,
    ),
    rowOf(
      results,
      '(c) 64 reads in flight (etcd serializable)',
      'ops/s',
      (r) => ok(r.main?.reads.default)?.opsPerSec,
      (r) => ok(r.main?.reads.serializable)?.opsPerSec,
    ),
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

function table(all: Row[]): string {
  const lines = [
    '| row | unit | paxmon median [min–max] | etcd median [min–max] | paxmon/etcd | goal |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of all) {
    const goal = r.goal
      ? `${r.goal.op === '>=' ? '≥' : '≤'} ${r.goal.ratio}× ${r.met === null ? '' : r.met ? '✓' : '✗'}`
      : '';
    lines.push(
      `| ${r.row} | ${r.unit} | ${cell(r.paxmon)} | ${cell(r.etcd)} | ${r.ratio === null ? 'n/a' : `${r.ratio.toFixed(2)}×`} | ${goal.trim()} |`,
    );
  }
  return lines.join('\n');
}

// --- run ------------------------------------------------------------------------------------

const startedAt = new Date();
const loadBefore = load();
const busy = cpuBusySampler();
const host = machine();
const versions: Record<string, string> = {};
for (const t of targets) versions[t.name] = await t.version();
log(
  `paxmon vs etcd — ${opts.quick ? 'quick' : 'full'} run, ${reps} repetitions alternating, ${targets.map((t) => t.name).join(' / ')}`,
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
if (!opts['no-profile'] && targets.includes(paxmonTarget)) {
  const supported = (results.paxmon ?? []).some((r) => r.main && !r.main.unsupported);
  if (supported) {
    log(`  CPU profile of paxmon under (b), ${profileSeconds} s (node --cpu-prof on each monitor)`);
    profile = await profilePaxmon();
  } else log('  CPU profile skipped: paxmon did not take writes');
}

const busyFraction = busy();
const loadAfter = load();
const fdatasyncAfter = Math.round(fdatasyncRate());
const allRows = rows(results, sizes.bulkWrites);
const md = table(allRows);
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
          concurrent: `${IN_FLIGHT} in flight over ${CONNECTIONS} connections, spread over the members leader first`,
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
