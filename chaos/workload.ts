// The workload: concurrent clients, each a MonClient of its own, doing `config-key set/get/rm` on a
// small key space so that operations collide. Every operation is recorded with its invoke and
// complete times (ms since the run's start, monotonic) and its outcome, as Jepsen records them:
// - ok: the monitors answered r = 0 (a get of a missing key, r = -2 ENOENT, is an ok read);
// - failed: a final answer other than success — it certainly did not happen (MonClient: "an
//   answer other than EAGAIN is final, r = -110 too: the command was not applied");
// - unknown: no answer before the client's deadline (MonClient threw ETIMEDOUT): it may or may
//   not have happened. As in Jepsen, the client process is then replaced by a new one (a new
//   MonClient, a new process number).
// The workload runs in a process of its own, in the lab's client network namespace
// (chaos/workload-main.ts), not in the runner's.
import { MonClient, MonClientError } from '../actors/mon-client.ts';
import { Prng } from '../sim/prng.ts';

export type OpType = 'get' | 'set' | 'rm';
export type Outcome = 'ok' | 'failed' | 'unknown';

export interface OpRecord {
  /** The client process (Jepsen's :process): a new one after each unknown outcome. */
  readonly process: number;
  readonly type: OpType;
  readonly key: string;
  /** The value a set wrote. */
  readonly value?: string;
  readonly invokeMs: number;
  readonly completeMs: number;
  readonly outcome: Outcome;
  /** What an ok get read; null for a missing key. */
  readonly read?: string | null;
  /** The error of a failed or unknown op (`r=-110 …`, `ETIMEDOUT …`). */
  readonly error?: string;
  /** The client's deadline for the op (ms since the run's start): the monitors apply it only before. */
  readonly deadlineMs: number;
  /** True for the final reads after every fault healed. */
  readonly final?: boolean;
}

export interface WorkloadOptions {
  readonly mons: { name: string; addr: string }[];
  readonly fsid: string;
  readonly key: string;
  readonly clients: number;
  readonly keys: number;
  /** Target operations per second over all clients (each client waits between its ops). */
  readonly rate: number;
  readonly seed: number;
  /** The run's clock: ms since its start. */
  readonly now: () => number;
  /** Time for one attempt at one monitor. */
  readonly attemptTimeoutMs: number;
  /** The op's deadline, for all its attempts. */
  readonly timeoutMs: number;
  /** Each operation as it ends (the workload process sends it to the runner at once). */
  readonly onOp?: (record: OpRecord) => void;
  /** Each client process as it starts, with its session's name (`client.<random>`, in the monitors' logs). */
  readonly onClient?: (process: number, session: string) => void;
}

/**
 * What the runner hands the workload process (chaos/workload-main.ts) on its stdin: the workload's
 * options that are data (client.admin's key among them: on stdin, not on the command line where
 * `ps` would show it), and the runner's clock in place of `now`.
 */
export interface WorkloadConfig extends Omit<WorkloadOptions, 'now' | 'onOp' | 'onClient'> {
  /** The runner's clock origin, process.hrtime.bigint() as a decimal string. */
  readonly originNs: string;
  /** How long each key's final read is retried before it is given up. */
  readonly finalReadsBoundMs: number;
}

/** What it sends back on its stdout, one JSON line each. */
export type WorkloadMessage =
  | { type: 'started'; atMs: number; addresses: string[] }
  | { type: 'client'; process: number; session: string }
  | { type: 'op'; op: OpRecord }
  | { type: 'stopped'; atMs: number }
  | { type: 'done'; ops: number };

export const keyName = (index: number): string => `chaos/k${index}`;

const decoder = new TextDecoder();
const ENOENT = -2;

/** Run one command and turn its end into a record; never throws. */
export async function runOp(
  client: MonClient,
  proc: number,
  type: OpType,
  key: string,
  value: string | undefined,
  now: () => number,
  timeoutMs: number,
): Promise<OpRecord> {
  const cmd =
    type === 'get'
      ? ['config-key', 'get', key]
      : type === 'set'
        ? ['config-key', 'set', key, value as string]
        : ['config-key', 'rm', key];
  const invokeMs = now();
  const base = { process: proc, type, key, ...(value !== undefined ? { value } : {}), invokeMs };
  const deadlineMs = invokeMs + timeoutMs;
  try {
    const reply = await client.command(cmd);
    const completeMs = now();
    if (reply.r === 0)
      return {
        ...base,
        completeMs,
        deadlineMs,
        outcome: 'ok',
        ...(type === 'get' ? { read: decoder.decode(reply.data) } : {}),
      };
    if (type === 'get' && reply.r === ENOENT)
      return { ...base, completeMs, deadlineMs, outcome: 'ok', read: null };
    return { ...base, completeMs, deadlineMs, outcome: 'failed', error: `r=${reply.r} ${reply.rs}` };
  } catch (error) {
    const completeMs = now();
    const text = error instanceof MonClientError ? `${error.code} ${error.message}` : String(error);
    return { ...base, completeMs, deadlineMs, outcome: 'unknown', error: text };
  }
}

export class Workload {
  readonly history: OpRecord[] = [];
  readonly #options: WorkloadOptions;
  #running = false;
  #loops: Promise<void>[] = [];
  #nextProcess = 0;
  #wake = new Set<() => void>();

  constructor(options: WorkloadOptions) {
    this.#options = options;
  }

  /** A new client for process `proc` (reported to onClient). */
  newClient(
    proc: number,
    attemptTimeoutMs = this.#options.attemptTimeoutMs,
    timeoutMs = this.#options.timeoutMs,
  ): MonClient {
    const client = new MonClient({
      mons: this.#options.mons.map((mon) => ({ ...mon })),
      fsid: this.#options.fsid,
      key: this.#options.key,
      attemptTimeoutMs,
      timeoutMs,
    });
    this.#options.onClient?.(proc, client.name);
    return client;
  }

  #record(record: OpRecord): void {
    this.history.push(record);
    this.#options.onOp?.(record);
  }

  start(): void {
    this.#running = true;
    for (let worker = 0; worker < this.#options.clients; worker++) this.#loops.push(this.#loop(worker));
  }

  /** Stop starting ops; resolves once every op in flight has ended (bounded by its deadline). */
  async stop(): Promise<void> {
    this.#running = false;
    for (const wake of this.#wake) wake();
    await Promise.all(this.#loops);
  }

  async #loop(worker: number): Promise<void> {
    const o = this.#options;
    const prng = new Prng(`${o.seed}/client/${worker}`);
    const meanGapMs = (o.clients * 1000) / o.rate;
    let proc = this.#nextProcess++;
    let client = this.newClient(proc);
    let seq = 0;
    // Spread the clients' first ops over one gap.
    await this.#sleep(prng.next() * meanGapMs);
    while (this.#running) {
      const roll = prng.next();
      const type: OpType = roll < 0.5 ? 'get' : roll < 0.9 ? 'set' : 'rm';
      const key = keyName(prng.int(0, o.keys - 1));
      const value = type === 'set' ? `p${proc}-${seq++}` : undefined;
      const record = await runOp(client, proc, type, key, value, o.now, o.timeoutMs);
      this.#record(record);
      if (record.outcome === 'unknown') {
        // Jepsen's rule: a process whose op is indeterminate never issues another.
        await client.close().catch(() => {});
        proc = this.#nextProcess++;
        client = this.newClient(proc);
      }
      await this.#sleep(meanGapMs * (0.5 + prng.next()));
    }
    await client.close().catch(() => {});
  }

  #sleep(ms: number): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake.add(done);
    });
  }

  /**
   * After every fault healed: read every key once, retrying until a read succeeds (bounded). The
   * reads go into the history: the checker then sees every acknowledged write's fate.
   */
  async finalReads(boundMs: number): Promise<OpRecord[]> {
    const o = this.#options;
    const reads: OpRecord[] = [];
    const proc = this.#nextProcess++;
    const client = this.newClient(proc, 1000, 5000);
    try {
      for (let index = 0; index < o.keys; index++) {
        const key = keyName(index);
        const until = o.now() + boundMs;
        let record: OpRecord;
        do record = { ...(await runOp(client, proc, 'get', key, undefined, o.now, 5000)), final: true };
        while (record.outcome !== 'ok' && o.now() < until);
        reads.push(record);
        this.#record(record);
      }
    } finally {
      await client.close().catch(() => {});
    }
    return reads;
  }
}

export interface RunClock {
  /** Date.now() when the run started. */
  readonly startedAt: number;
  /**
   * The run's origin on process.hrtime (CLOCK_MONOTONIC on Linux: one clock for every process of
   * the machine), so that the workload process, in its own network namespace, stamps its
   * operations on the runner's clock (clockFrom) and they line up with the nemesis events.
   */
  readonly originNs: bigint;
  /** Milliseconds since the run's start. */
  readonly now: () => number;
}

/** The run's monotonic clock, started now. */
export function runClock(): RunClock {
  return clockFrom(process.hrtime.bigint(), Date.now());
}

/** The clock of a run that started at `originNs` (process.hrtime.bigint() in the runner). */
export function clockFrom(originNs: bigint, startedAt = Date.now()): RunClock {
  return { startedAt, originNs, now: () => Number(process.hrtime.bigint() - originNs) / 1e6 };
}
