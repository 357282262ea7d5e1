// What a chaos run's history says: operations per type and outcome, availability per phase, the
// longest window with no successful write, recovery after each heal, linearizability (the
// project's checker, sim/linearizability, per key: P-compositionality) and acknowledged writes
// lost (the final reads after every fault healed).
import { totalmem } from 'node:os';
import {
  checkOperations,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
  partitionBy,
  type Verdict,
} from '../sim/linearizability/index.ts';
import type { NemesisEvent } from './nemesis.ts';
import type { OpRecord, OpType, Outcome } from './workload.ts';

export const opTypes: readonly OpType[] = ['get', 'set', 'rm'];
export const outcomes: readonly Outcome[] = ['ok', 'failed', 'unknown'];

export interface PhaseStats {
  readonly label: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly ops: number;
  readonly ok: number;
  readonly writes: number;
  readonly writesOk: number;
}

export interface Recovery {
  readonly index: number;
  readonly kind: string;
  readonly variant: string;
  readonly healMs: number | undefined;
  /** From the heal to every monitor in one quorum; undefined: not seen within the bound. */
  readonly quorumAllAfterMs: number | undefined;
  /** From the heal to the first successful write completed after it. */
  readonly writeOkAfterMs: number | undefined;
}

export interface Anomaly {
  readonly key: string;
  /** The last operations the checker could linearize, oldest first. */
  readonly linearized: string[];
  /** The earliest operations of the key it could not place after them. */
  readonly stuck: string[];
}

/**
 * A write the client was told failed (a final answer other than success: "it did not happen")
 * whose value a read returned: it did happen. Every set writes a value of its own, so the read
 * names the write. Jepsen calls a read of a failed write an aborted read.
 */
export interface FailedButRead {
  readonly write: string;
  /** The first read that returned its value. */
  readonly read: string;
}

export interface LostWrite {
  readonly key: string;
  readonly write: string;
  readonly finalRead: string;
}

export interface Analysis {
  readonly counts: Record<OpType, Record<Outcome, number>>;
  readonly total: number;
  readonly phases: PhaseStats[];
  readonly healthy: PhaseStats;
  readonly longestNoWrite: { fromMs: number; toMs: number; during: string[] };
  readonly recoveries: Recovery[];
  readonly linearizable: Verdict;
  readonly checkSteps: number;
  readonly checkMs: number;
  readonly anomaly: Anomaly | undefined;
  readonly finalReads: { ok: number; keys: number };
  readonly lostWrites: LostWrite[];
  readonly failedButRead: FailedButRead[];
}

type KvOperation = Operation<KvInput, KvOutput>;

/**
 * The checker's bounds for a chaos history. A 10-minute soak (~60,000 operations, ~7,700 per key,
 * a few writes of unknown outcome on each) took up to 35 million steps and more than the
 * checker's default 1 GiB of memo cache on one key (seed 2027): minutes of CPU are fine after a
 * soak, an "unknown" verdict is not. The cache is typed arrays, outside V8's heap; half the
 * machine's memory at most.
 */
export const checkStepsMaxDefault = 200_000_000;
export const checkCacheBytesMaxDefault = Math.min(6 * 2 ** 30, Math.floor(totalmem() / 2));

const seconds = (ms: number): string => `${(ms / 1000).toFixed(3)} s`;

/** One op as a line: `p12 [3.201 s, 3.240 s] set chaos/k1 "p12-4" ok`. */
export function describeOp(op: OpRecord): string {
  const value = op.type === 'set' ? ` ${JSON.stringify(op.value)}` : '';
  const result =
    op.outcome !== 'ok'
      ? `${op.outcome}${op.error ? ` (${op.error.slice(0, 80)})` : ''}`
      : op.type === 'get'
        ? op.read === null
          ? 'ENOENT'
          : JSON.stringify(op.read)
        : 'ok';
  const end = op.outcome === 'unknown' ? '?' : seconds(op.completeMs);
  return `p${op.process} [${seconds(op.invokeMs)}, ${end}] ${op.type} ${op.key}${value} -> ${result}${op.final ? ' (final read)' : ''}`;
}

/**
 * The history as the checker's operations: ok ops as they happened; unknown writes may have
 * happened at any time after their invocation (return = ∞, no output), as Jepsen's `:info`;
 * failed ops and reads without an answer had no effect and are left out.
 *
 * An unknown set whose value no read returned is left out too, as Knossos elides such writes:
 * it may be placed after every other operation (its return is ∞), where nothing observes it, so
 * the verdict is the same without it; one whose value was read returns, for the checker, when
 * that read returned. Each operation pending to ∞ multiplies the orders the search must try (a
 * soak with ~160 unknown writes ran out of the checker's memory bound).
 */
export function toOperations(history: readonly OpRecord[]): {
  ops: KvOperation[];
  origin: Map<KvOperation, OpRecord>;
} {
  const ops: KvOperation[] = [];
  const origin = new Map<KvOperation, OpRecord>();
  // Each value read, and when its first read returned.
  const read = new Map<string, number>();
  for (const record of history)
    if (record.type === 'get' && record.outcome === 'ok' && typeof record.read === 'string')
      read.set(record.read, Math.min(read.get(record.read) ?? Number.POSITIVE_INFINITY, record.completeMs));
  // An unknown set whose value was read did happen, before that read returned: its return can
  // be that time instead of ∞ (not before its own call: a read before the write exists is then
  // an anomaly still). An unknown rm may have happened at any time after its call.
  const unknownReturn = (record: OpRecord): number => {
    const firstRead = record.type === 'set' ? read.get(record.value as string) : undefined;
    return firstRead === undefined ? Number.POSITIVE_INFINITY : Math.max(record.invokeMs, firstRead);
  };
  for (const record of history) {
    if (record.outcome === 'failed') continue;
    if (record.outcome === 'unknown' && record.type === 'get') continue;
    if (record.outcome === 'unknown' && record.type === 'set' && !read.has(record.value as string)) continue;
    const input: KvInput =
      record.type === 'set'
        ? { op: 'put', key: record.key, value: record.value as string }
        : { op: record.type === 'rm' ? 'rm' : 'get', key: record.key };
    const known = record.outcome === 'ok';
    const output: KvOutput | undefined = !known
      ? undefined
      : { value: record.type === 'get' ? (record.read ?? undefined) : undefined };
    const op: KvOperation = {
      clientId: record.process,
      input,
      call: record.invokeMs,
      output,
      return: known ? record.completeMs : unknownReturn(record),
    };
    ops.push(op);
    origin.set(op, record);
  }
  return { ops, origin };
}

function phaseOf(label: string, startMs: number, endMs: number, ops: readonly OpRecord[]): PhaseStats {
  let count = 0;
  let ok = 0;
  let writes = 0;
  let writesOk = 0;
  for (const op of ops) {
    count++;
    if (op.outcome === 'ok') ok++;
    if (op.type !== 'get') {
      writes++;
      if (op.outcome === 'ok') writesOk++;
    }
  }
  return { label, startMs, endMs, ops: count, ok, writes, writesOk };
}

export interface AnalyzeOptions {
  /** When the workload started and stopped (ms since the run's start). */
  readonly workloadStartMs: number;
  readonly workloadEndMs: number;
  /** Bound on the checker's work (model steps, over all keys). */
  readonly stepsMax?: number;
  /** Bound on the checker's memo cache per key, in bytes. */
  readonly cacheBytesMax?: number;
}

export function analyze(
  history: readonly OpRecord[],
  events: readonly NemesisEvent[],
  options: AnalyzeOptions,
): Analysis {
  const counts = Object.fromEntries(
    opTypes.map((type) => [type, Object.fromEntries(outcomes.map((o) => [o, 0]))]),
  ) as Record<OpType, Record<Outcome, number>>;
  const workload = history.filter((op) => !op.final);
  for (const op of workload) counts[op.type][op.outcome]++;

  // Phases: each fault from its start to its heal; healthy is the time outside every fault and
  // outside the recovery after it (heal → quorum of all).
  const phases = events.map((event) =>
    phaseOf(
      `#${event.index} ${event.kind}/${event.variant}`,
      event.startMs,
      event.healMs ?? options.workloadEndMs,
      workload.filter((op) => op.invokeMs >= event.startMs && op.invokeMs < (event.healMs ?? Infinity)),
    ),
  );
  const disturbed = events.map((event) => [
    event.startMs,
    event.quorumAllMs ?? event.healMs ?? options.workloadEndMs,
  ]);
  const healthyOps = workload.filter(
    (op) => !disturbed.some(([from, to]) => op.invokeMs >= (from as number) && op.invokeMs < (to as number)),
  );
  const healthy = phaseOf('healthy', options.workloadStartMs, options.workloadEndMs, healthyOps);

  // The longest window with no successful write.
  const writeTimes = workload
    .filter((op) => op.type !== 'get' && op.outcome === 'ok')
    .map((op) => op.completeMs)
    .sort((a, b) => a - b);
  const marks = [options.workloadStartMs, ...writeTimes, options.workloadEndMs];
  let fromMs = options.workloadStartMs;
  let toMs = options.workloadStartMs;
  for (let i = 1; i < marks.length; i++) {
    const a = marks[i - 1] as number;
    const b = marks[i] as number;
    if (b - a > toMs - fromMs) {
      fromMs = a;
      toMs = b;
    }
  }
  const during = events
    .filter((event) => event.startMs < toMs && (event.quorumAllMs ?? event.healMs ?? Infinity) > fromMs)
    .map((event) => `#${event.index} ${event.kind}/${event.variant}`);

  const recoveries = events.map((event) => {
    const heal = event.healMs;
    const firstWrite = heal === undefined ? undefined : writeTimes.find((completeMs) => completeMs >= heal);
    return {
      index: event.index,
      kind: event.kind,
      variant: event.variant,
      healMs: heal,
      quorumAllAfterMs:
        heal === undefined || event.quorumAllMs === undefined ? undefined : event.quorumAllMs - heal,
      writeOkAfterMs: heal === undefined || firstWrite === undefined ? undefined : firstWrite - heal,
    };
  });

  // Linearizability, per key.
  const model = kvModel({ missing: 'undefined' });
  const { ops, origin } = toOperations(history);
  const checkStart = performance.now();
  const result = checkOperations(model, ops, {
    stepsMax: options.stepsMax ?? checkStepsMaxDefault,
    cacheBytesMax: options.cacheBytesMax ?? checkCacheBytesMaxDefault,
  });
  const checkMs = performance.now() - checkStart;
  let anomaly: Anomaly | undefined;
  if (result.result === 'illegal' && result.failedPartition !== undefined) {
    const partition = partitionBy(ops, (op) => op.input.key)[result.failedPartition] ?? [];
    const prefix = result.longestLinearizedPrefix ?? [];
    const placed = new Set(prefix);
    const show = (op: KvOperation) => {
      const record = origin.get(op);
      return record ? describeOp(record) : (model.describe?.(op) ?? '?');
    };
    anomaly = {
      key: partition[0]?.input.key ?? '?',
      linearized: prefix.slice(-8).map(show),
      stuck: partition
        .filter((op) => !placed.has(op))
        .sort((a, b) => a.call - b.call)
        .slice(0, 6)
        .map(show),
    };
  }

  // No acknowledged write lost: the final value of each key must come from a write that could
  // be linearized after every acknowledged one (a necessary condition; the checker, which sees
  // the final reads too, decides).
  const finals = history.filter((op) => op.final);
  const lostWrites: LostWrite[] = [];
  for (const read of finals) {
    if (read.outcome !== 'ok') continue;
    const writes = workload.filter(
      (op) => op.key === read.key && op.type !== 'get' && op.outcome !== 'failed',
    );
    const explains = (write: OpRecord): boolean =>
      write.type === 'set' ? read.read === write.value : read.read === null;
    for (const acked of writes) {
      if (acked.outcome !== 'ok') continue;
      const later = writes.filter(
        (other) => other === acked || other.outcome === 'unknown' || other.completeMs > acked.invokeMs,
      );
      if (!later.some(explains)) {
        lostWrites.push({ key: read.key, write: describeOp(acked), finalRead: describeOp(read) });
        break;
      }
    }
  }

  // Failed writes whose value was read.
  const firstReadOf = new Map<string, OpRecord>();
  for (const op of history)
    if (op.type === 'get' && op.outcome === 'ok' && typeof op.read === 'string') {
      const before = firstReadOf.get(op.read);
      if (!before || op.invokeMs < before.invokeMs) firstReadOf.set(op.read, op);
    }
  const failedButRead: FailedButRead[] = [];
  for (const op of workload) {
    if (op.type !== 'set' || op.outcome !== 'failed') continue;
    const read = firstReadOf.get(op.value as string);
    if (read) failedButRead.push({ write: describeOp(op), read: describeOp(read) });
  }

  return {
    counts,
    total: workload.length,
    phases,
    healthy,
    longestNoWrite: { fromMs, toMs, during },
    recoveries,
    linearizable: result.result,
    checkSteps: result.steps,
    checkMs,
    anomaly,
    finalReads: { ok: finals.filter((op) => op.outcome === 'ok').length, keys: finals.length },
    lostWrites,
    failedButRead,
  };
}
