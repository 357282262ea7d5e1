// One bounded load: `workers` loops, each running one operation at a time, until `maxOps`
// operations were started or `maxMs` elapsed (an operation in flight then finishes or hits its
// own client timeout). Latency of every successful operation is kept for the percentiles.

export interface LoadSpec {
  /** Operations in flight. */
  workers: number;
  maxOps: number;
  maxMs: number;
  /** One operation: `worker` picks the connection, `seq` the key. Throws on failure. */
  op: (worker: number, seq: number) => Promise<void>;
  /** Give up once this many operations failed (default 100). */
  maxErrors?: number;
}

export interface LoadResult {
  ok: number;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  /** CPU the bench process itself (the clients) used, ms. */
  clientCpuMs: number;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const maxErrors = spec.maxErrors ?? 100;
  const latencies = new Float64Array(spec.maxOps);
  let next = 0;
  let ok = 0;
  let errors = 0;
  let firstError: string | null = null;
  let abort = false;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const deadline = start + spec.maxMs;
  const worker = async (w: number) => {
    while (!abort && next < spec.maxOps && performance.now() < deadline) {
      const seq = next++;
      const t0 = performance.now();
      try {
        await spec.op(w, seq);
        latencies[ok++] = performance.now() - t0;
      } catch (error) {
        errors++;
        firstError ??= (error as Error).message ?? String(error);
        if (errors >= maxErrors) abort = true;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.workers }, (_, w) => worker(w)));
  const elapsedMs = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  const sorted = latencies.subarray(0, ok).sort();
  let sum = 0;
  for (const l of sorted) sum += l;
  return {
    ok,
    errors,
    firstError,
    elapsedMs,
    opsPerSec: (ok * 1000) / elapsedMs,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanMs: ok ? sum / ok : Number.NaN,
    maxMs: ok ? (sorted[ok - 1] as number) : Number.NaN,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
  };
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median with min–max of the repetitions' values (NaN ones — failed runs — left out). */
export function spread(values: number[]): Spread | null {
  const good = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (good.length === 0) return null;
  const mid = good.length >> 1;
  const median =
    good.length % 2 ? (good[mid] as number) : ((good[mid - 1] as number) + (good[mid] as number)) / 2;
  return { median, min: good[0] as number, max: good[good.length - 1] as number, n: good.length };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A 100-byte value, different per sequence number (so no layer can dedupe it). */
export function valueFor(seq: number): string {
  const head = `v${seq}-`;
  return head + 'x'.repeat(100 - head.length);
}
