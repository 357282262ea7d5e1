// The nemeses: faults thrown at the real cluster, each from a seeded schedule and logged with its
// start and end (Jepsen's nemesis process). The schedule — which faults, in which order, their
// variants, durations and the random draws that pick their targets — is a function of the seed
// alone; a target named "the leader" is whoever leads when the fault starts.
//
//   kill       kill -9 of 1 to ⌈n/2⌉−1 monitors (the leader among them more often than not), restart
//   pause      SIGSTOP/SIGCONT of 1 to ⌈n/2⌉−1 monitors: one pause longer than the lease, or a
//              train of pauses shorter than it
//   partition  iptables: a minority cut from the majority, the leader alone, a random split, or
//              a bridge (one monitor alone reaches both sides)
//   link       one cut link between two monitors that both still reach the rest
//   oneway     one-way drops: the leader unheard (its packets dropped), the leader deaf (packets
//              to it dropped), or one monitor's packets to another
//   flap       a link or a minority partition cut and healed every 1–2 s
//   disk       a monitor's store on a small tmpfs filled up (ENOSPC), then freed
//   clock      (libfaketime) a monitor restarted with its wall clock minutes off, or its clock's rate
//              off (±10%, half, double) and then cut from the other monitors with a lease in hand;
//              skipped where libfaketime is missing
//   netem      slow and lossy links (tc qdisc … netem, on both ends of 1 to n monitors' links):
//              delay with jitter, loss, reordering; or a thin link (tc's tbf rate limit). Where
//              the kernel has no netem, loss falls back to iptables' statistic match, and delay
//              and reordering are skipped with a note
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../sim/prng.ts';
import type { ChaosCluster, ChaosMonitor } from './cluster.ts';

export const nemesisKinds = [
  'kill',
  'pause',
  'partition',
  'link',
  'oneway',
  'flap',
  'disk',
  'clock',
  'netem',
] as const;
export type NemesisKind = (typeof nemesisKinds)[number];

export interface NemesisStep {
  readonly index: number;
  readonly kind: NemesisKind;
  readonly variant: string;
  /** How long the fault lasts, from its start to its heal. */
  readonly durationMs: number;
  /** Quiet time after the recovery, before the next fault. */
  readonly gapMs: number;
}

/** What a fault did, for the history and the report. */
export interface NemesisEvent {
  readonly index: number;
  readonly kind: NemesisKind;
  readonly variant: string;
  /** One line: what was done to whom. */
  description: string;
  targets: string[];
  /** The leader when the fault started (undefined: none answered). */
  leaderBefore: string | undefined;
  startMs: number;
  /** When the heal was done (rules removed, processes resumed or restarted). */
  healMs: number | undefined;
  /** When every monitor was next seen in one quorum of all, after the heal. */
  quorumAllMs: number | undefined;
  notes: string[];
}

/** Failures tolerated: ⌈n/2⌉ − 1 monitors may be down with a majority left. */
export const faultsTolerated = (n: number): number => Math.ceil(n / 2) - 1;

const variantsOf: Record<NemesisKind, readonly string[]> = {
  kill: ['restart'],
  pause: ['long', 'short'],
  partition: ['majority', 'leader', 'random', 'bridge'],
  link: ['cut'],
  oneway: ['leader-out', 'leader-in', 'pair'],
  flap: ['link', 'partition'],
  disk: ['enospc'],
  // A rate within the bound the lease assumes (±10%), and beyond it (half and double speed).
  clock: ['offset', 'rate-10pct', 'rate-half', 'rate-double'],
  netem: ['delay', 'loss', 'reorder', 'slow'],
};

/**
 * The schedule for `seconds` of faults: rounds of a seeded permutation of `kinds` (every kind once
 * per round), each step with its variant, duration and the gap after it. Steps are planned for
 * the whole time with recovery assumed instant; a run stops starting steps when its time is up.
 * With `rounds`, exactly that many rounds.
 */
export function planSchedule(
  seed: number,
  kinds: readonly NemesisKind[],
  seconds: number,
  rounds?: number,
): NemesisStep[] {
  const prng = new Prng(seed).fork('nemesis schedule');
  const steps: NemesisStep[] = [];
  let plannedMs = 0;
  const more = () =>
    rounds === undefined ? plannedMs < seconds * 1000 : steps.length < rounds * kinds.length;
  while (more() && steps.length < 10_000) {
    const round = [...kinds];
    for (let i = round.length - 1; i > 0; i--) {
      const j = prng.int(0, i);
      [round[i], round[j]] = [round[j] as NemesisKind, round[i] as NemesisKind];
    }
    for (const kind of round) {
      const variant = prng.pick(variantsOf[kind]);
      const durationMs =
        kind === 'flap'
          ? prng.int(6000, 10_000)
          : kind === 'pause' && variant === 'short'
            ? prng.int(3000, 5000)
            : kind === 'pause'
              ? prng.int(2500, 6000)
              : kind === 'disk'
                ? prng.int(4000, 8000)
                : kind === 'clock'
                  ? prng.int(8000, 12_000)
                  : kind === 'netem'
                    ? prng.int(5000, 10_000)
                    : prng.int(3000, 8000);
      const gapMs = prng.int(2000, 4000);
      steps.push({ index: steps.length, kind, variant, durationMs, gapMs });
      plannedMs += durationMs + gapMs;
    }
  }
  return steps;
}

export interface NemesisContext {
  readonly cluster: ChaosCluster;
  readonly now: () => number;
  readonly leaseMs: number;
  readonly log: (line: string) => void;
  /** Fill a monitor's store (tmpfs) until ENOSPC; returns the filler's path. Undefined: no tmpfs. */
  readonly disk?: { readonly fill: (mon: ChaosMonitor) => string };
  /** libfaketime, when found: the environment that puts a monitor's clock off. */
  readonly faketime?: { readonly env: (spec: string) => NodeJS.ProcessEnv };
  /** Which of tc's queueing disciplines this kernel has (the netem nemesis). */
  readonly qdiscs?: { readonly netem: boolean; readonly tbf: boolean };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Shuffle a copy (Fisher–Yates) with the step's stream. */
function shuffled<T>(prng: Prng, items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = prng.int(0, i);
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

/** `count` monitors, the leader first when `withLeader` (and there is one). */
function pickTargets(
  prng: Prng,
  monitors: readonly ChaosMonitor[],
  leader: ChaosMonitor | undefined,
  count: number,
  withLeader: boolean,
): ChaosMonitor[] {
  const chosen: ChaosMonitor[] = withLeader && leader ? [leader] : [];
  for (const mon of shuffled(
    prng,
    monitors.filter((m) => m !== leader),
  ))
    if (chosen.length < count) chosen.push(mon);
  if (chosen.length < count && leader && !chosen.includes(leader)) chosen.push(leader);
  return chosen;
}

/**
 * Cut every link between the two sides, both ways: drops matched by the monitors' own addresses,
 * so the client host (chaos/cluster.ts clientHostName) still reaches every monitor.
 */
export async function cutBetween(
  cluster: ChaosCluster,
  left: ChaosMonitor[],
  right: ChaosMonitor[],
): Promise<void> {
  for (const a of left)
    for (const b of right) {
      await cluster.lab.block(a.host, b.host);
      await cluster.lab.block(b.host, a.host);
    }
}

const names = (mons: readonly ChaosMonitor[]): string => mons.map((m) => m.name).join(',') || '-';

/**
 * Run one step: start the fault, hold it for its duration, heal. Resolves with the event once
 * healed (the recovery is measured by the caller). `abort` ends a fault early (Ctrl-C, an error).
 */
export async function runStep(
  ctx: NemesisContext,
  step: NemesisStep,
  seed: number,
  event: NemesisEvent,
  leader: ChaosMonitor | undefined,
): Promise<void> {
  const { cluster } = ctx;
  const prng = new Prng(seed).fork(`nemesis step ${step.index}`);
  const monitors = cluster.monitors;
  const n = monitors.length;
  const tolerated = Math.max(1, faultsTolerated(n));
  const start = (description: string, targets: readonly ChaosMonitor[]) => {
    event.description = description;
    event.targets = targets.map((m) => m.name);
    event.startMs = ctx.now();
    ctx.log(
      `nemesis ${step.index} start ${step.kind}/${step.variant}: ${description} (leader before: ${event.leaderBefore ?? 'none'})`,
    );
  };
  const hold = async () => sleep(event.startMs + step.durationMs - ctx.now());

  switch (step.kind) {
    case 'kill': {
      const targets = pickTargets(prng, monitors, leader, prng.int(1, tolerated), prng.chance(0.6));
      start(`kill -9 ${names(targets)} for ${step.durationMs} ms, then restart`, targets);
      await Promise.all(targets.map((mon) => cluster.kill(mon)));
      await hold();
      for (const mon of targets) cluster.start(mon);
      break;
    }
    case 'pause': {
      const targets = pickTargets(prng, monitors, leader, prng.int(1, tolerated), prng.chance(0.6));
      if (step.variant === 'long') {
        start(`SIGSTOP ${names(targets)} for ${step.durationMs} ms (lease ${ctx.leaseMs} ms)`, targets);
        for (const mon of targets) cluster.pause(mon);
        await hold();
        for (const mon of targets) cluster.resume(mon);
      } else {
        start(
          `SIGSTOP ${names(targets)} for 0.3–0.8 × lease (${ctx.leaseMs} ms) at a time, over ${step.durationMs} ms`,
          targets,
        );
        let pauses = 0;
        while (ctx.now() < event.startMs + step.durationMs) {
          for (const mon of targets) cluster.pause(mon);
          await sleep(ctx.leaseMs * (0.3 + 0.5 * prng.next()));
          for (const mon of targets) cluster.resume(mon);
          pauses++;
          await sleep(prng.int(200, 500));
        }
        event.notes.push(`${pauses} pauses`);
      }
      break;
    }
    case 'partition': {
      let left: ChaosMonitor[];
      let right: ChaosMonitor[];
      let description: string;
      let targets: ChaosMonitor[];
      const variant = n < 3 && step.variant === 'bridge' ? 'majority' : step.variant;
      if (variant === 'leader' && leader) {
        left = [leader];
        right = monitors.filter((m) => m !== leader);
        description = `the leader ${leader.name} cut from ${names(right)}`;
        targets = left;
      } else if (variant === 'bridge') {
        const order = shuffled(prng, monitors);
        const bridge = order[0] as ChaosMonitor;
        const rest = order.slice(1);
        const half = prng.int(1, rest.length - 1);
        left = rest.slice(0, half);
        right = rest.slice(half);
        description = `${names(left)} | ${names(right)} cut, ${bridge.name} alone reaches both sides`;
        targets = [bridge];
      } else if (variant === 'random') {
        const order = shuffled(prng, monitors);
        const size = prng.int(1, n - 1);
        left = order.slice(0, size);
        right = order.slice(size);
        description = `random split ${names(left)} | ${names(right)}`;
        targets = left;
      } else {
        const minority = pickTargets(prng, monitors, leader, prng.int(1, tolerated), prng.chance(0.5));
        left = minority;
        right = monitors.filter((m) => !minority.includes(m));
        description = `minority ${names(left)} | majority ${names(right)}`;
        targets = left;
      }
      start(`${description}, for ${step.durationMs} ms`, targets);
      await cutBetween(cluster, left, right);
      await hold();
      await cluster.lab.healAll();
      break;
    }
    case 'link': {
      const first = prng.chance(0.5) && leader ? leader : prng.pick(monitors);
      const second = prng.pick(monitors.filter((m) => m !== first));
      start(
        `link ${first.name}–${second.name} cut both ways (both reach the rest), for ${step.durationMs} ms`,
        [first, second],
      );
      await cutBetween(cluster, [first], [second]);
      await hold();
      await cluster.lab.healAll();
      break;
    }
    case 'oneway': {
      const pivot = leader ?? prng.pick(monitors);
      const others = monitors.filter((m) => m !== pivot);
      if (step.variant === 'leader-out') {
        start(
          `packets from ${pivot.name} (leader) to ${names(others)} dropped, one way, for ${step.durationMs} ms`,
          [pivot],
        );
        for (const other of others) await cluster.lab.block(pivot.host, other.host);
      } else if (step.variant === 'leader-in') {
        start(
          `packets from ${names(others)} to ${pivot.name} (leader) dropped, one way, for ${step.durationMs} ms`,
          [pivot],
        );
        for (const other of others) await cluster.lab.block(other.host, pivot.host);
      } else {
        const from = prng.pick(monitors);
        const to = prng.pick(monitors.filter((m) => m !== from));
        start(`packets from ${from.name} to ${to.name} dropped, one way, for ${step.durationMs} ms`, [
          from,
          to,
        ]);
        await cluster.lab.block(from.host, to.host);
      }
      await hold();
      await cluster.lab.healAll();
      break;
    }
    case 'flap': {
      start(
        `${step.variant === 'link' ? 'a link' : 'a minority'} cut and healed every 1–2 s, for ${step.durationMs} ms`,
        [],
      );
      const hit = new Set<string>();
      let flaps = 0;
      while (ctx.now() < event.startMs + step.durationMs) {
        if (step.variant === 'link') {
          const a = prng.pick(monitors);
          const b = prng.pick(monitors.filter((m) => m !== a));
          await cutBetween(cluster, [a], [b]);
          hit.add(a.name).add(b.name);
        } else {
          const minority = shuffled(prng, monitors).slice(0, prng.int(1, tolerated));
          await cutBetween(
            cluster,
            minority,
            monitors.filter((m) => !minority.includes(m)),
          );
          for (const m of minority) hit.add(m.name);
        }
        flaps++;
        await sleep(Math.min(prng.int(1000, 2000), event.startMs + step.durationMs - ctx.now()));
        await cluster.lab.healAll();
        await sleep(Math.min(prng.int(500, 1500), event.startMs + step.durationMs - ctx.now()));
      }
      event.targets = [...hit].sort();
      event.notes.push(`${flaps} cuts`);
      break;
    }
    case 'disk': {
      const target = pickTargets(prng, monitors, leader, 1, prng.chance(0.5))[0] as ChaosMonitor;
      if (!ctx.disk) {
        start('skipped: no tmpfs stores (the disk nemesis needs root and mount)', []);
        event.notes.push('skipped');
        await hold();
        break;
      }
      start(`${target.name}'s store (tmpfs) filled up (ENOSPC) for ${step.durationMs} ms, then freed`, [
        target,
      ]);
      const filler = ctx.disk.fill(target);
      await hold();
      rmSync(filler, { force: true });
      if (!cluster.running(target)) {
        event.notes.push(`${target.name} exited on ENOSPC; restarted`);
        cluster.start(target);
      }
      break;
    }
    case 'clock': {
      const target = pickTargets(prng, monitors, leader, 1, prng.chance(0.5))[0] as ChaosMonitor;
      if (!ctx.faketime) {
        start('skipped: libfaketime not found (Debian: apt-get install faketime)', []);
        event.notes.push('skipped');
        await hold();
        break;
      }
      const spec =
        step.variant === 'offset'
          ? `${prng.chance(0.5) ? '+' : '-'}${prng.int(2, 10)}m`
          : step.variant === 'rate-10pct'
            ? `+0 x${prng.pick(['0.9', '1.1'])}`
            : step.variant === 'rate-half'
              ? '+0 x0.5'
              : '+0 x2';
      const isolate = step.variant !== 'offset';
      start(
        `${target.name} restarted with libfaketime '${spec}' for ${step.durationMs} ms${isolate ? `; once in the quorum, cut from the other monitors (clients still reach it) for a third of it` : ''}`,
        [target],
      );
      await cluster.kill(target);
      target.env = ctx.faketime.env(spec);
      cluster.start(target);
      // The health check must name the skewed monitor (an offset) while nothing unsafe happens.
      let skewSeenMs: number | undefined;
      const watching = (async () => {
        while (ctx.now() < event.startMs + step.durationMs) {
          const text = await cluster.health();
          if (skewSeenMs === undefined && text?.includes('MON_CLOCK_SKEW')) skewSeenMs = ctx.now();
          await sleep(500);
        }
      })();
      if (isolate) {
        // A clock whose rate is off matters when the monitor is cut off with a lease in hand: its
        // lease lasts longer (slow clock) or shorter (fast clock) than the others assume. So the
        // cut waits until the monitor is in a quorum (a restart takes seconds on a busy machine),
        // until two thirds of the step at most, and lasts a third of it.
        const cutBy = event.startMs + (2 * step.durationMs) / 3;
        let inQuorum = false;
        while (!inQuorum && ctx.now() < cutBy) {
          const view = await cluster.view(target);
          inQuorum = view !== undefined && (view.state === 'leader' || view.state === 'peon');
          if (!inQuorum) await sleep(200);
        }
        // Two ticks in the quorum first (when the step allows): the leader's time check can then
        // have measured the skewed clock before the monitor is cut off.
        if (inQuorum) await sleep(Math.min(2000, cutBy - ctx.now()));
        const others = monitors.filter((m) => m !== target);
        await cutBetween(cluster, [target], others);
        event.notes.push(
          `${target.name} cut from ${names(others)} at ${(ctx.now() / 1000).toFixed(1)} s${inQuorum ? ' (in the quorum)' : ', never seen in the quorum before'}`,
        );
        await sleep(step.durationMs / 3);
        await cluster.lab.healAll();
      }
      await hold();
      await watching;
      event.notes.push(
        skewSeenMs === undefined
          ? 'MON_CLOCK_SKEW never reported'
          : `MON_CLOCK_SKEW reported ${((skewSeenMs - event.startMs) / 1000).toFixed(1)} s after the start`,
      );
      await cluster.kill(target);
      target.env = undefined;
      cluster.start(target);
      break;
    }
    case 'netem': {
      const targets = pickTargets(prng, monitors, leader, prng.int(1, n), prng.chance(0.5));
      const netem = ctx.qdiscs?.netem === true;
      const tbf = ctx.qdiscs?.tbf === true;
      let description: string;
      let apply: ((mon: ChaosMonitor) => Promise<void>) | undefined;
      if (step.variant === 'delay') {
        const delayMs = prng.int(20, 150);
        const jitterMs = Math.max(1, Math.round(delayMs / 5));
        description = `tc netem delay ${delayMs} ms ± ${jitterMs} ms`;
        if (netem)
          apply = (mon) => cluster.lab.shape(mon.host, 'netem', ['delay', `${delayMs}ms`, `${jitterMs}ms`]);
      } else if (step.variant === 'loss') {
        const percent = prng.int(5, 25);
        description = netem
          ? `tc netem loss ${percent}%`
          : `iptables statistic: ${percent}% of packets dropped`;
        apply = netem
          ? (mon) => cluster.lab.shape(mon.host, 'netem', ['loss', `${percent}%`])
          : (mon) => cluster.lab.lossy(mon.host, percent / 100);
      } else if (step.variant === 'reorder') {
        const percent = prng.int(10, 40);
        description = `tc netem delay 10 ms, ${percent}% of packets sent at once (reordered)`;
        if (netem)
          apply = (mon) =>
            cluster.lab.shape(mon.host, 'netem', ['delay', '10ms', 'reorder', `${percent}%`, '50%']);
      } else {
        const kbit = prng.pick([64, 128, 256, 512]);
        description = `tc tbf rate ${kbit} kbit/s (a thin link)`;
        if (tbf)
          apply = (mon) =>
            cluster.lab.shape(mon.host, 'tbf', ['rate', `${kbit}kbit`, 'burst', '8kb', 'latency', '400ms']);
      }
      if (!apply) {
        start(
          `skipped: ${description}: this kernel has no tc ${step.variant === 'slow' ? 'tbf' : 'netem'}`,
          [],
        );
        event.notes.push('skipped');
        await hold();
        break;
      }
      start(`${description} on ${names(targets)}'s links, both ways, for ${step.durationMs} ms`, targets);
      for (const mon of targets) await apply(mon);
      await hold();
      await cluster.lab.healAll();
      break;
    }
  }
  event.healMs = ctx.now();
  ctx.log(
    `nemesis ${step.index} end ${step.kind}/${step.variant}${event.notes.length ? ` (${event.notes.join('; ')})` : ''}`,
  );
}

/** Undo every fault at once: rules removed, paused monitors resumed, dead ones restarted. */
export async function healEverything(cluster: ChaosCluster): Promise<void> {
  await cluster.lab.healAll();
  for (const mon of cluster.monitors) {
    cluster.resume(mon);
    if (mon.env) {
      await cluster.kill(mon);
      mon.env = undefined;
    }
    if (!cluster.running(mon)) cluster.start(mon);
  }
}

/** Write zeros to `dir/chaos-filler` until the file system is full (ENOSPC). */
export function fillUp(dir: string): string {
  const file = join(dir, 'chaos-filler');
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    // The last partial megabyte: fill to the last byte.
    try {
      for (;;) writeSync(fd, chunk, 0, 4096);
    } catch {}
  } finally {
    closeSync(fd);
  }
  return file;
}
