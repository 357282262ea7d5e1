// The one workload definition both targets run (issue 8 §1), against a started Cluster:
//   (a) sequential writes, 1 client (connected to the leader)
//   (b) 64 writes in flight over 8 connections spread over all members (leader first); each
//       client as its system's client does it: etcd's follower forwards every proposal; paxmon's
//       MonClient sends updates to the leader once a peon's answer named it (LeaderHint)
//   (c) 64 reads in flight over the same 8 connections (paxmon: any readable monitor;
//       etcd: linearizable, then serializable)
//   (e) RSS per member: idle, peak, after the bulk writes (64 in flight, as (b))
//   (f) member CPU seconds per 1,000 writes during the bulk writes
//   (d) leader kill -9 → next successful write (on a cluster of its own, see runKill)
// Keys cycle over a fixed key space; values are 100 bytes.
import { type LoadResult, runLoad, sleep, valueFor } from './load.ts';
import { cpuSecondsOf, killNow, memoryOf } from './proc.ts';
import type { Cluster, KvClient, Member, ReadMode } from './target.ts';

export interface Sizes {
  seqOps: number;
  seqMs: number;
  writeOps: number;
  writeMs: number;
  readOps: number;
  readMs: number;
  bulkWrites: number;
  bulkMs: number;
  /** Operations before each measured phase (connections, JIT, caches), bounded by warmupMs. */
  warmup: number;
  warmupMs: number;
  /** Distinct keys the writes cycle over. */
  keySpace: number;
  /** Keys written before the read phase, and read at random. */
  readKeys: number;
}

export const fullSizes: Sizes = {
  seqOps: 3000,
  seqMs: 5000,
  writeOps: 40_000,
  writeMs: 8000,
  readOps: 60_000,
  readMs: 6000,
  bulkWrites: 100_000,
  bulkMs: 240_000,
  warmup: 500,
  warmupMs: 2000,
  keySpace: 10_000,
  readKeys: 1000,
};

export const quickSizes: Sizes = {
  seqOps: 1000,
  seqMs: 1500,
  writeOps: 10_000,
  writeMs: 2500,
  readOps: 15_000,
  readMs: 2000,
  bulkWrites: 5000,
  bulkMs: 30_000,
  warmup: 200,
  warmupMs: 750,
  keySpace: 10_000,
  readKeys: 1000,
};

export const CONNECTIONS = 8;
export const IN_FLIGHT = 64;
const REQUEST_TIMEOUT_MS = 10_000;

export interface MemberMemory {
  rss: number;
  hwm: number;
}

export interface MainResult {
  leader: string;
  /** Set when the target could not run the writes at all (e.g. config-key not implemented). */
  unsupported: string | null;
  idle: Record<string, MemberMemory>;
  seq: LoadResult | null;
  write: (LoadResult & { memberCpuS: number }) | null;
  reads: Partial<Record<ReadMode, LoadResult & { memberCpuS: number }>>;
  bulk: (LoadResult & { memberCpuS: number; cpuSPer1000: number }) | null;
  after: Record<string, MemberMemory>;
  peak: Record<string, MemberMemory>;
}

function memories(members: readonly Member[]): Record<string, MemberMemory> {
  const out: Record<string, MemberMemory> = {};
  for (const m of members) {
    const mem = memoryOf(m.process.pid);
    out[m.name] = mem ?? { rss: Number.NaN, hwm: Number.NaN };
  }
  return out;
}

function membersCpu(members: readonly Member[]): number {
  let total = 0;
  for (const m of members) total += cpuSecondsOf(m.process.pid) ?? Number.NaN;
  return total;
}

const key = (phase: string, seq: number, space: number) => `bench/${phase}/${seq % space}`;

async function closeAll(clients: KvClient[]) {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
}

/** Members with the leader first (so both targets have the same share of connections to it). */
async function leaderFirst(cluster: Cluster): Promise<{ leader: string; order: string[] }> {
  const leader = await cluster.leader();
  return { leader, order: [leader, ...cluster.members.map((m) => m.name).filter((n) => n !== leader)] };
}

/** Write until one write succeeds (bounded): the cluster serves, or says why not. */
async function firstWrite(client: KvClient, timeoutMs: number): Promise<string | null> {
  const deadline = performance.now() + timeoutMs;
  let last = 'no attempt';
  while (performance.now() < deadline) {
    try {
      await client.put('bench/probe', valueFor(0));
      return null;
    } catch (error) {
      last = (error as Error).message;
      // A reply that is a refusal (not a timeout) will not change by retrying.
      if (/r=-22|r=-95|EINVAL|unknown command/.test(last)) return last;
      await sleep(100);
    }
  }
  return last;
}

export async function runMain(
  cluster: Cluster,
  sizes: Sizes,
  readModes: ReadMode[],
  log: (line: string) => void,
): Promise<MainResult> {
  const members = cluster.members;
  await sleep(1000);
  const idle = memories(members);
  const { leader, order } = await leaderFirst(cluster);
  const result: MainResult = {
    leader,
    unsupported: null,
    idle,
    seq: null,
    write: null,
    reads: {},
    bulk: null,
    after: {},
    peak: {},
  };
  const seqClient = await cluster.client(leader, { timeoutMs: REQUEST_TIMEOUT_MS });
  const clients = await Promise.all(
    Array.from({ length: CONNECTIONS }, (_, i) =>
      cluster.client(order[i % order.length] as string, { timeoutMs: REQUEST_TIMEOUT_MS }),
    ),
  );
  try {
    const refusal = await firstWrite(seqClient, 10_000);
    if (refusal) {
      result.unsupported = refusal;
      log(`    writes fail: ${refusal} — skipping the write and read workloads`);
      result.after = memories(members);
      result.peak = result.after;
      return result;
    }

    // (a) sequential writes, 1 client.
    const seqOp = (_w: number, seq: number) => seqClient.put(key('a', seq, sizes.keySpace), valueFor(seq));
    await runLoad({ workers: 1, maxOps: sizes.warmup, maxMs: sizes.warmupMs, op: seqOp });
    result.seq = await runLoad({ workers: 1, maxOps: sizes.seqOps, maxMs: sizes.seqMs, op: seqOp });
    log(`    (a) sequential writes: ${fmtLoad(result.seq)}`);

    // (b) 64 writes in flight over 8 connections.
    const writeOp = (w: number, seq: number) =>
      (clients[w % CONNECTIONS] as KvClient).put(key('b', seq, sizes.keySpace), valueFor(seq));
    await runLoad({ workers: IN_FLIGHT, maxOps: sizes.warmup * 4, maxMs: sizes.warmupMs, op: writeOp });
    let cpu0 = membersCpu(members);
    const write = await runLoad({
      workers: IN_FLIGHT,
      maxOps: sizes.writeOps,
      maxMs: sizes.writeMs,
      op: writeOp,
    });
    result.write = { ...write, memberCpuS: membersCpu(members) - cpu0 };
    log(`    (b) 64 writes in flight: ${fmtLoad(write)}`);

    // (c) 64 reads in flight over the same connections, of keys written first.
    const fill = await runLoad({
      workers: IN_FLIGHT,
      maxOps: sizes.readKeys,
      maxMs: 30_000,
      op: (w, seq) => (clients[w % CONNECTIONS] as KvClient).put(`bench/r/${seq}`, valueFor(seq)),
    });
    if (fill.errors > 0) throw new Error(`filling the read keys failed: ${fill.firstError}`);
    for (const mode of readModes) {
      const readOp = async (w: number, seq: number) => {
        const i = (seq * 7919) % sizes.readKeys;
        const value = await (clients[w % CONNECTIONS] as KvClient).get(`bench/r/${i}`, mode);
        if (value?.length !== 100)
          throw new Error(`read bench/r/${i}: ${value ? `${value.length} bytes` : 'missing'}`);
      };
      await runLoad({ workers: IN_FLIGHT, maxOps: sizes.warmup * 4, maxMs: sizes.warmupMs, op: readOp });
      cpu0 = membersCpu(members);
      const reads = await runLoad({
        workers: IN_FLIGHT,
        maxOps: sizes.readOps,
        maxMs: sizes.readMs,
        op: readOp,
      });
      result.reads[mode] = { ...reads, memberCpuS: membersCpu(members) - cpu0 };
      log(`    (c) 64 reads in flight (${mode}): ${fmtLoad(reads)}`);
    }

    // (e)/(f) bulk writes, as (b): member CPU during them, RSS after them.
    cpu0 = membersCpu(members);
    const bulk = await runLoad({
      workers: IN_FLIGHT,
      maxOps: sizes.bulkWrites,
      maxMs: sizes.bulkMs,
      op: (w, seq) =>
        (clients[w % CONNECTIONS] as KvClient).put(key('e', seq, sizes.keySpace), valueFor(seq)),
    });
    const memberCpuS = membersCpu(members) - cpu0;
    result.bulk = { ...bulk, memberCpuS, cpuSPer1000: (memberCpuS * 1000) / Math.max(1, bulk.ok) };
    result.after = memories(members);
    log(
      `    (e) ${bulk.ok} bulk writes: ${fmtLoad(bulk)}; members' CPU ${memberCpuS.toFixed(2)} s ` +
        `(${result.bulk.cpuSPer1000.toFixed(3)} s per 1,000); RSS after ${fmtMem(result.after)}`,
    );
    return result;
  } finally {
    result.peak = memories(members);
    if (Object.keys(result.after).length === 0) result.after = result.peak;
    await closeAll([seqClient, ...clients]);
  }
}

export interface KillResult {
  leader: string;
  /** kill -9 of the leader → completion of the first write that succeeded after it, ms. */
  recoveryMs: number;
  probes: number;
  failedProbes: number;
  error: string | null;
}

const PROBE_EVERY_MS = 10;
const PROBE_TIMEOUT_MS = 1000;
const PROBE_IN_FLIGHT_MAX = 256;
const RECOVERY_LIMIT_MS = 20_000;

/**
 * (d) On a fresh cluster: warm it with writes, kill -9 the leader, then start a write every
 * 10 ms (alternating between the two survivors, each with a 1 s timeout, so at most ~100 in flight)
 * until one succeeds. The figure is the time from the kill to that write's reply.
 */
export async function runKill(cluster: Cluster, sizes: Sizes): Promise<KillResult> {
  const leader = await cluster.leader();
  const survivors = cluster.members.filter((m) => m.name !== leader);
  const victim = cluster.members.find((m) => m.name === leader) as Member;
  const clients = await Promise.all(
    survivors.map((m) => cluster.client(m.name, { timeoutMs: PROBE_TIMEOUT_MS })),
  );
  try {
    for (const client of clients) {
      const refusal = await firstWrite(client, 10_000);
      if (refusal) return { leader, recoveryMs: Number.NaN, probes: 0, failedProbes: 0, error: refusal };
    }
    await runLoad({
      workers: 8,
      maxOps: sizes.warmup,
      maxMs: 5000,
      op: (w, seq) =>
        (clients[w % clients.length] as KvClient).put(key('d', seq, sizes.keySpace), valueFor(seq)),
    });
    await sleep(500);
    const t0 = performance.now();
    killNow(victim.process);
    let recoveryMs = Number.NaN;
    let probes = 0;
    let failedProbes = 0;
    let inFlight = 0;
    const pending = new Set<Promise<void>>();
    while (Number.isNaN(recoveryMs) && performance.now() - t0 < RECOVERY_LIMIT_MS) {
      if (inFlight < PROBE_IN_FLIGHT_MAX) {
        const seq = probes++;
        inFlight++;
        const p: Promise<void> = (clients[seq % clients.length] as KvClient)
          .put(key('d', seq, sizes.keySpace), valueFor(seq))
          .then(
            () => {
              if (Number.isNaN(recoveryMs)) recoveryMs = performance.now() - t0;
            },
            () => {
              failedProbes++;
            },
          )
          .finally(() => {
            inFlight--;
            pending.delete(p);
          });
        pending.add(p);
      }
      await sleep(PROBE_EVERY_MS);
    }
    await Promise.all(pending);
    return {
      leader,
      recoveryMs,
      probes,
      failedProbes,
      error: Number.isNaN(recoveryMs)
        ? `no write succeeded within ${RECOVERY_LIMIT_MS} ms of the kill`
        : null,
    };
  } finally {
    await closeAll(clients);
  }
}

export function fmtLoad(r: LoadResult): string {
  const errors = r.errors ? `, ${r.errors} errors (first: ${r.firstError})` : '';
  return `${Math.round(r.opsPerSec)} ops/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms (${r.ok} ops in ${(r.elapsedMs / 1000).toFixed(1)} s${errors})`;
}

export function fmtMem(m: Record<string, MemberMemory>): string {
  return Object.entries(m)
    .map(([name, v]) => `${name} ${(v.rss / 2 ** 20).toFixed(0)} MiB`)
    .join(', ');
}
