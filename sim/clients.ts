// Simulated clients of a service, and the history they leave for the linearizability checker
// (sim/linearizability/). What they send comes from a workload (sim/workload.ts): config-key's
// get/set/rm in `npm run sim`, a user's own commands in paxmon/testing.
//
// Each client has one request in flight (Ceph's MonClient with one outstanding command). It sends
// `mon.command { tid, cmd }` to one monitor and waits for `mon.command_ack` with that tid. On a
// timeout, a lost connection or EAGAIN (r = -11: "not now, ask elsewhere") it retries at another
// monitor with the *same* tid, so the leader's dedupe by client + tid can recognise an update it
// already applied. It gives up at the request's deadline; the liveness phase requires every
// pending client to be answered.
//
// What goes into the history (the workload's `output` reads each final reply):
// - a read: an answer → its output, returned now. A read that fails or is never answered had no
//   effect and is left out.
// - an update: an answer → its output, returned now. Any non-final outcome on the way (a timeout,
//   EAGAIN after a monitor may have forwarded it, a reset) makes it *ambiguous*: if it then fails,
//   or is still pending when the run ends, it goes in as unknown (return = ∞, no output: it may
//   or may not have happened). An update refused outright on its first attempt (e.g. EINVAL) had
//   no effect and is left out.
import type { MemoryNetwork } from '../transport/memory-network.ts';
import type { EntityName, Message, MonCommandAck } from '../transport/messages.ts';
import type { Transport } from '../transport/transport.ts';
import type { SimTimers } from './clock.ts';
import type { Coverage } from './coverage.ts';
import type { Operation } from './linearizability/index.ts';
import type { KvInput, KvOutput } from './linearizability/models.ts';
import type { Prng } from './prng.ts';
import { commandReply, EAGAIN, ENOENT, type ServiceOperation, type Workload } from './workload.ts';

export { EAGAIN, ENOENT } from './workload.ts';

export type KvOperation = Operation<KvInput, KvOutput>;

export interface ClientOptions<Input, Output> {
  id: number;
  network: MemoryNetwork;
  /** The cluster's SimClock: clients are never paused and have no skew. */
  clock: SimTimers;
  prng: Prng;
  /** Monitor names (`a`, `b`, …). */
  monitors: readonly string[];
  /** What to send next (drawn from `prng`), and the model its history is checked against. */
  workload: Workload<unknown, Input, Output>;
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
  history: Operation<Input, Output>[];
  trace: (line: string) => void;
  coverage: Coverage;
  /** Told of every read a client issues (the lease invariant checks its answers). */
  onRead?: (cmd: readonly string[]) => void;
}

interface Pending<Input, Output> {
  op: ServiceOperation<Input, Output>;
  /** How the trace names it. */
  label: string;
  tid: number;
  call: number;
  attempts: number;
  ambiguous: boolean;
  target: EntityName;
  timer: unknown;
  deadline: number;
  deadlineTimer: unknown;
}

export class SimClient<Input = KvInput, Output = KvOutput> {
  readonly name: EntityName;
  readonly #options: ClientOptions<Input, Output>;
  readonly #transport: Transport;
  #target: EntityName;
  #tid = 0;
  #pending: Pending<Input, Output> | null = null;
  /** Operations drawn from the workload so far. */
  #drawn = 0;
  #thinkTimer: unknown;
  #issuing = false;
  /** Operations waiting to be issued in order (the final reads), before any random one. */
  readonly #queue: ServiceOperation<Input, Output>[] = [];
  /** Answers received, counted for the report. */
  completed = 0;

  constructor(options: ClientOptions<Input, Output>) {
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
  enqueue(op: ServiceOperation<Input, Output>): void {
    this.#queue.push(op);
    if (!this.#pending) this.#next();
  }

  /** The run is over: a write still pending may or may not have happened. */
  finish(): void {
    this.stopIssuing();
    const pending = this.#pending;
    if (pending) {
      this.#clearTimer(pending.timer);
      this.#clearTimer(pending.deadlineTimer);
      if (!pending.op.read) this.#record(pending, undefined, Number.POSITIVE_INFINITY);
      this.#pending = null;
    }
    void this.#transport.close();
  }

  /** The request in flight, for a liveness report. */
  describePending(): string | null {
    const p = this.#pending;
    if (!p) return null;
    return `${this.name} ${p.label} tid ${p.tid} since ${p.call} ms (${p.attempts} attempts, at ${p.target})`;
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
      this.#issue(queued);
      return;
    }
    if (!this.#issuing) return;
    this.#drawn++;
    this.#issue(this.#options.workload.next(this.#options.prng, this.#options.id, this.#drawn));
  }

  #issue(op: ServiceOperation<Input, Output>): void {
    this.#tid++;
    if (op.read) this.#options.onRead?.(op.cmd);
    const pending: Pending<Input, Output> = {
      op,
      label: op.label ?? op.cmd.join(' '),
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
    this.#pending = pending;
    this.#send(pending);
  }

  #send(p: Pending<Input, Output>): void {
    p.attempts++;
    p.target = this.#target;
    this.#options.trace(
      `${this.name} → ${p.target} tid ${p.tid} ${p.op.sentLabel ?? p.label} (attempt ${p.attempts})`,
    );
    this.#transport.send(p.target, {
      type: 'mon.command',
      tid: p.tid,
      cmd: [...p.op.cmd],
      deadline: p.deadline,
    });
    p.timer = this.#options.clock.setTimeout(() => {
      if (this.#pending === p) this.#retry(p, 'timeout', false);
    }, this.#options.attemptTimeoutMs);
  }

  /** The deadline passed unanswered: a write may or may not have happened; a read tells nothing. */
  #giveUp(p: Pending<Input, Output>): void {
    this.#clearTimer(p.timer);
    this.#pending = null;
    this.#options.coverage.mark('client gave up at the deadline');
    this.#options.trace(`${this.name} tid ${p.tid} ${p.label}: deadline passed after ${p.attempts} attempts`);
    if (!p.op.read) this.#record(p, undefined, Number.POSITIVE_INFINITY);
    this.#think();
    if (!this.#issuing && this.#queue.length) this.#next();
  }

  /** Try another monitor with the same tid; a write becomes ambiguous (it may have been applied). */
  #retry(p: Pending<Input, Output>, reason: string, backoff: boolean): void {
    this.#clearTimer(p.timer);
    p.timer = undefined;
    if (!p.op.read) p.ambiguous = true;
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

  #answer(p: Pending<Input, Output>, from: EntityName, ack: MonCommandAck): void {
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
      `${this.name} ← ${from} tid ${p.tid} ${p.label} r=${ack.r}${ack.r === 0 || ack.r === ENOENT ? '' : ` "${ack.rs}"`}` +
        ` (${took} ms, ${p.attempts} attempts)`,
    );
    const output = p.op.output(commandReply(ack));
    if (p.op.read) {
      if (output !== null) this.#record(p, output, now);
      else this.#options.coverage.mark(`client read failed with r=${ack.r}`);
    } else if (output !== null) {
      this.#record(p, output, now);
    } else {
      this.#options.coverage.mark(`client write failed with r=${ack.r}`);
      if (p.ambiguous) this.#record(p, undefined, Number.POSITIVE_INFINITY);
    }
    this.#think();
    if (!this.#issuing && this.#queue.length) this.#next();
  }

  #record(p: Pending<Input, Output>, output: Output | undefined, returned: number): void {
    if (output === undefined) this.#options.coverage.mark('client write with unknown outcome');
    this.#options.history.push({
      clientId: this.#options.id,
      input: p.op.input,
      call: p.call,
      output,
      return: returned,
    });
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
