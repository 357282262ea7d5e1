// Simulated clients of the config-key service, and the history they leave for the
// linearizability checker (sim/linearizability/).
//
// Each client has one request in flight (Ceph's MonClient with one outstanding command). It sends
// `mon.command { tid, cmd: ['config-key', 'get'|'set'|'rm', …] }` to one monitor and waits for
// `mon.command_ack` with that tid. On a timeout, a lost connection or EAGAIN (r = -11: "not now,
// ask elsewhere") it retries at another monitor with the *same* tid, so the leader's dedupe by
// client + tid can recognise a write it already applied. It never gives up: the liveness phase
// requires every pending client to be answered.
//
// What goes into the history:
// - get: r = 0 → the value read; r = -2 (ENOENT) → missing. A read that ends in any other error
//   has no effect and is left out.
// - set/rm: r = 0 → done, returned now. Any non-final outcome on the way (a timeout, EAGAIN after
//   a monitor may have forwarded it, a reset) makes the write *ambiguous*: if it then ends in an
//   error, or is still pending when the run ends, it goes in as unknown (return = ∞, no output:
//   it may or may not have happened). A write refused outright on its first attempt (e.g. EINVAL)
//   had no effect and is left out.
import type { SimulatedClock } from 'xstate';
import type { MemoryNetwork } from '../transport/memory-network.ts';
import type { EntityName, Message, MonCommandAck } from '../transport/messages.ts';
import type { Transport } from '../transport/transport.ts';
import type { Coverage } from './coverage.ts';
import type { Operation } from './linearizability/index.ts';
import type { KvInput, KvOutput } from './linearizability/models.ts';
import type { Prng } from './prng.ts';

export const ENOENT = -2;
export const EAGAIN = -11;

export type ClientOp = 'get' | 'set' | 'rm';
export type KvOperation = Operation<KvInput, KvOutput>;

export interface ClientOptions {
  id: number;
  network: MemoryNetwork;
  /** The cluster's SimulatedClock: clients are never paused and have no skew. */
  clock: SimulatedClock;
  prng: Prng;
  /** Monitor names (`a`, `b`, …). */
  monitors: readonly string[];
  keys: number;
  /** Pause between one answer and the next request. */
  thinkMs: [min: number, max: number];
  /** One attempt at one monitor. */
  attemptTimeoutMs: number;
  /** Wait before retrying after EAGAIN or a reset, so a client does not spin on a monitor that is electing. */
  retryBackoffMs: number;
  /**
   * Each request's deadline, from its first attempt (MonClient's timeout): every attempt carries
   * it, and at the deadline the client gives up — a write then may or may not have happened.
   */
  deadlineMs: number;
  history: KvOperation[];
  trace: (line: string) => void;
  coverage: Coverage;
}

interface Pending {
  op: ClientOp;
  key: string;
  value?: string;
  tid: number;
  call: number;
  attempts: number;
  ambiguous: boolean;
  target: EntityName;
  timer: unknown;
  deadline: number;
  deadlineTimer: unknown;
}

const decoder = new TextDecoder();

export class SimClient {
  readonly name: EntityName;
  readonly #options: ClientOptions;
  readonly #transport: Transport;
  #target: EntityName;
  #tid = 0;
  #written = 0;
  #pending: Pending | null = null;
  #thinkTimer: unknown;
  #issuing = false;
  /** Operations waiting to be issued in order (the final reads), before any random one. */
  readonly #queue: { op: ClientOp; key: string }[] = [];
  /** Answers received, counted for the report. */
  completed = 0;

  constructor(options: ClientOptions) {
    this.#options = options;
    this.name = `client.${options.id}`;
    this.#transport = options.network.endpoint(this.name);
    this.#target = this.#pickMonitor();
    this.#transport.setHandlers({
      onMessage: (from, message) => this.#onMessage(from, message),
      onReset: (peer) => {
        const pending = this.#pending;
        if (pending && peer === pending.target) this.#retry(pending, 'connection reset', true);
      },
    });
  }

  /** True while a request is in flight or queued. */
  get busy(): boolean {
    return this.#pending !== null || this.#queue.length > 0;
  }

  /** Start issuing random operations. */
  start(): void {
    this.#issuing = true;
    this.#think();
  }

  /** Stop issuing new random operations; the one in flight goes on until answered. */
  stopIssuing(): void {
    this.#issuing = false;
    this.#clearTimer(this.#thinkTimer);
    this.#thinkTimer = undefined;
  }

  /** Queue a specific operation (the liveness phase's final reads). */
  enqueue(op: ClientOp, key: string): void {
    this.#queue.push({ op, key });
    if (!this.#pending) this.#next();
  }

  /** The run is over: a write still pending may or may not have happened. */
  finish(): void {
    this.stopIssuing();
    const pending = this.#pending;
    if (pending) {
      this.#clearTimer(pending.timer);
      this.#clearTimer(pending.deadlineTimer);
      if (pending.op !== 'get') this.#record(pending, undefined, Number.POSITIVE_INFINITY);
      this.#pending = null;
    }
    void this.#transport.close();
  }

  /** The request in flight, for a liveness report. */
  describePending(): string | null {
    const p = this.#pending;
    if (!p) return null;
    return `${this.name} ${p.op} ${p.key} tid ${p.tid} since ${p.call} ms (${p.attempts} attempts, at ${p.target})`;
  }

  #think(): void {
    if (!this.#issuing || this.#pending) return;
    const [min, max] = this.#options.thinkMs;
    this.#thinkTimer = this.#options.clock.setTimeout(
      () => {
        this.#thinkTimer = undefined;
        this.#next();
      },
      this.#options.prng.int(min, max),
    );
  }

  #next(): void {
    if (this.#pending) return;
    const queued = this.#queue.shift();
    if (queued) {
      this.#issue(queued.op, queued.key);
      return;
    }
    if (!this.#issuing) return;
    const prng = this.#options.prng;
    const draw = prng.next();
    const op: ClientOp = draw < 0.5 ? 'get' : draw < 0.85 ? 'set' : 'rm';
    this.#issue(op, `k${prng.int(0, this.#options.keys - 1)}`);
  }

  #issue(op: ClientOp, key: string): void {
    this.#tid++;
    const pending: Pending = {
      op,
      key,
      tid: this.#tid,
      call: this.#options.clock.now(),
      attempts: 0,
      ambiguous: false,
      target: this.#target,
      timer: undefined,
      deadline: this.#options.clock.now() + this.#options.deadlineMs,
      deadlineTimer: undefined,
    };
    pending.deadlineTimer = this.#options.clock.setTimeout(() => {
      if (this.#pending === pending) this.#giveUp(pending);
    }, this.#options.deadlineMs);
    if (op === 'set') pending.value = `c${this.#options.id}.${++this.#written}`;
    this.#pending = pending;
    this.#send(pending);
  }

  #command(p: Pending): string[] {
    if (p.op === 'set') return ['config-key', 'set', p.key, p.value ?? ''];
    return ['config-key', p.op, p.key];
  }

  #send(p: Pending): void {
    p.attempts++;
    p.target = this.#target;
    const cmd = this.#command(p);
    this.#options.trace(
      `${this.name} → ${p.target} tid ${p.tid} ${cmd.slice(1).join(' ')} (attempt ${p.attempts})`,
    );
    this.#transport.send(p.target, { type: 'mon.command', tid: p.tid, cmd, deadline: p.deadline });
    p.timer = this.#options.clock.setTimeout(() => {
      if (this.#pending === p) this.#retry(p, 'timeout', false);
    }, this.#options.attemptTimeoutMs);
  }

  /** The deadline passed unanswered: a write may or may not have happened; a read tells nothing. */
  #giveUp(p: Pending): void {
    this.#clearTimer(p.timer);
    this.#pending = null;
    this.#options.coverage.mark('client gave up at the deadline');
    this.#options.trace(
      `${this.name} tid ${p.tid} ${p.op} ${p.key}: deadline passed after ${p.attempts} attempts`,
    );
    if (p.op !== 'get') this.#record(p, undefined, Number.POSITIVE_INFINITY);
    this.#think();
    if (!this.#issuing && this.#queue.length) this.#next();
  }

  /** Try another monitor with the same tid; a write becomes ambiguous (it may have been applied). */
  #retry(p: Pending, reason: string, backoff: boolean): void {
    this.#clearTimer(p.timer);
    p.timer = undefined;
    if (p.op !== 'get') p.ambiguous = true;
    this.#options.coverage.mark(`client retry after ${reason}`);
    this.#target = this.#pickMonitor(p.target);
    this.#options.trace(`${this.name} tid ${p.tid} ${reason}; retrying at ${this.#target}`);
    if (!backoff) {
      this.#send(p);
      return;
    }
    p.timer = this.#options.clock.setTimeout(() => {
      if (this.#pending === p) this.#send(p);
    }, this.#options.retryBackoffMs);
  }

  #onMessage(from: EntityName, message: Message): void {
    if (message.type !== 'mon.command_ack') return;
    const p = this.#pending;
    if (!p || message.tid !== p.tid) {
      this.#options.trace(
        `${this.name} ignores a late reply from ${from} (tid ${message.tid}, r=${message.r})`,
      );
      return;
    }
    this.#answer(p, from, message);
  }

  #answer(p: Pending, from: EntityName, ack: MonCommandAck): void {
    const now = this.#options.clock.now();
    if (ack.r === EAGAIN) {
      this.#retry(p, 'EAGAIN', true);
      return;
    }
    this.#clearTimer(p.timer);
    this.#clearTimer(p.deadlineTimer);
    this.#pending = null;
    this.completed++;
    const took = now - p.call;
    this.#options.trace(
      `${this.name} ← ${from} tid ${p.tid} ${p.op} ${p.key} r=${ack.r}${ack.r === 0 || ack.r === ENOENT ? '' : ` "${ack.rs}"`}` +
        ` (${took} ms, ${p.attempts} attempts)`,
    );
    if (p.op === 'get') {
      if (ack.r === 0) this.#record(p, { value: decoder.decode(ack.data) }, now);
      else if (ack.r === ENOENT) this.#record(p, { value: undefined }, now);
      else this.#options.coverage.mark(`client read failed with r=${ack.r}`);
    } else if (ack.r === 0) {
      this.#record(p, { value: undefined }, now);
    } else {
      this.#options.coverage.mark(`client write failed with r=${ack.r}`);
      if (p.ambiguous) this.#record(p, undefined, Number.POSITIVE_INFINITY);
    }
    this.#think();
    if (!this.#issuing && this.#queue.length) this.#next();
  }

  #record(p: Pending, output: KvOutput | undefined, returned: number): void {
    const input: KvInput =
      p.op === 'get'
        ? { op: 'get', key: p.key }
        : p.op === 'rm'
          ? { op: 'rm', key: p.key }
          : { op: 'put', key: p.key, value: p.value ?? '' };
    if (output === undefined) this.#options.coverage.mark('client write with unknown outcome');
    this.#options.history.push({ clientId: this.#options.id, input, call: p.call, output, return: returned });
  }

  #pickMonitor(avoid?: EntityName): EntityName {
    const all = this.#options.monitors.map((m) => `mon.${m}` as EntityName);
    const others = all.filter((m) => m !== avoid);
    return this.#options.prng.pick(others.length ? others : all);
  }

  #clearTimer(timer: unknown): void {
    if (timer !== undefined) this.#options.clock.clearTimeout(timer as number);
  }
}
