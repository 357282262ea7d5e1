// `npm run chaos -- --seconds 60 --monitors 3 --seed 7 --nemesis kill,pause,partition`: a chaos
// run on real network namespaces (chaos/run.ts), its Jepsen-style summary on stdout, the history
// (JSON lines), the SVG timeline and the monitors' logs in --out. Needs root, `ip` and `iptables`;
// elsewhere it prints one line saying why and exits 0 without having tested anything.
// Exit status: 0 linearizable and no acknowledged write lost, 1 otherwise (or on an error).
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ElectionStrategy } from '../transport/messages.ts';
import { type NemesisKind, nemesisKinds } from './nemesis.ts';
import { ChaosUnavailable, recheck, runChaos } from './run.ts';

const usage = `usage: npm run chaos -- [--seconds 60] [--monitors 3] [--seed N] [--nemesis ${nemesisKinds.join(',')}]
                      [--clients 64] [--keys 8] [--rate 200] [--rounds N] [--disk-mb 64] [--out DIR]
                      [--strategy classic|disallow|connectivity] [--from-sources]
       npm run chaos -- --check DIR      check a stored run's history again
  --seconds   time during which faults are started (then every fault heals, final reads, checks)
  --monitors  monitors, one network namespace each (1–9)
  --seed      the schedule's seed (default: random; printed as SEED=)
  --nemesis   which faults, comma-separated (default: kill,pause,partition,link,oneway,flap)
  --rounds    run exactly N rounds of the schedule (each nemesis N times), whatever --seconds says
  --clients   concurrent MonClients; --keys the key space; --rate target ops/s over all clients
  --out       where the report goes (default scratch/chaos/seed-N)
  --strategy  the monmap's election strategy (default classic)
  --from-sources  run the monitors from the working tree through tsx, not from a bundle built
              into OUT/bundle when the run starts (restarts then run whatever the tree holds)`;

function fail(message: string): never {
  console.error(`Error EINVAL: ${message}\n${usage}`);
  process.exit(22);
}

let values: Record<string, string | boolean | undefined>;
try {
  values = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      monitors: { type: 'string', default: '3' },
      seed: { type: 'string' },
      nemesis: { type: 'string', default: 'kill,pause,partition,link,oneway,flap' },
      clients: { type: 'string', default: '64' },
      keys: { type: 'string', default: '8' },
      rate: { type: 'string', default: '200' },
      'disk-mb': { type: 'string', default: '64' },
      rounds: { type: 'string' },
      out: { type: 'string' },
      strategy: { type: 'string', default: 'classic' },
      'from-sources': { type: 'boolean' },
      check: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }).values;
} catch (error) {
  fail((error as Error).message);
}
if (values.help) {
  console.log(usage);
  process.exit(0);
}

if (typeof values.check === 'string') {
  const { analysis, summary } = recheck(values.check);
  console.log(summary);
  process.exit(analysis.linearizable === 'ok' && analysis.lostWrites.length === 0 ? 0 : 1);
}

const integer = (name: string, lo: number, hi: number): number => {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < lo || value > hi)
    fail(`--${name} ${values[name]}: an integer ${lo}–${hi}`);
  return value;
};
const seconds = integer('seconds', 5, 24 * 3600);
const monitors = integer('monitors', 1, 9);
const clients = integer('clients', 1, 512);
const keys = integer('keys', 1, 1000);
const rate = integer('rate', 1, 100_000);
const diskMb = integer('disk-mb', 16, 4096);
const rounds = values.rounds === undefined ? undefined : integer('rounds', 1, 1000);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : integer('seed', 0, 2 ** 53);
const nemeses = String(values.nemesis)
  .split(',')
  .map((kind) => kind.trim())
  .filter(Boolean);
for (const kind of nemeses)
  if (!(nemesisKinds as readonly string[]).includes(kind))
    fail(`--nemesis ${kind}: one of ${nemesisKinds.join(',')}`);
const electionStrategies: readonly ElectionStrategy[] = ['classic', 'disallow', 'connectivity'];
const strategy = String(values.strategy);
if (!(electionStrategies as readonly string[]).includes(strategy))
  fail(`--strategy ${strategy}: one of ${electionStrategies.join(',')}`);
const out = typeof values.out === 'string' ? values.out : join('scratch', 'chaos', `seed-${seed}`);

try {
  const result = await runChaos({
    seconds,
    monitors,
    seed,
    nemeses: nemeses as NemesisKind[],
    clients,
    keys,
    rate,
    out,
    diskMb,
    strategy: strategy as ElectionStrategy,
    fromSources: values['from-sources'] === true,
    argv: process.argv.slice(2),
    ...(rounds === undefined ? {} : { rounds }),
  });
  console.log(`\n${result.summary}\n`);
  console.log(`history:  ${result.files.history}`);
  console.log(`timeline: ${result.files.timeline}`);
  console.log(`logs:     ${result.files.logs}/`);
  console.log(`run:      ${result.files.run} (seed, schedule, code, verdict)`);
  const { analysis } = result;
  if (analysis.linearizable !== 'ok' || analysis.lostWrites.length > 0) process.exitCode = 1;
} catch (error) {
  if (error instanceof ChaosUnavailable) {
    console.log(`chaos: skipped: ${error.message}`);
  } else {
    console.error(`chaos: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  }
}
