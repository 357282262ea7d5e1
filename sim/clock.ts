// Per-monitor time for the simulator: one adapter per monitor over the cluster's single
// SimulatedClock, given to the monitor's actor tree (createMonitor's `clock`) and to its store
// (simulated fsyncs). It adds the two faults a process's sense of time can have:
//
// - clock skew: the monitor's clock runs at `rate` × simulated time (0.95–1.05), so its timers
//   (leases, election and probe timeouts) fire sooner or later than the other monitors expect —
//   what Ceph bounds with mon_clock_drift_allowed and paxmon's leases must survive;
// - pauses (SIGSTOP, a long GC, a stalled VM): while paused the monitor runs nothing. Its timers
//   that come due and the messages delivered to it are held, in the order they came due, and run
//   in that order when it resumes — as an event loop finds overdue timers and readable sockets
//   after a SIGCONT. A held timer that an earlier held callback cancels does not run, as in Node.
//
// Everything stays on the one SimulatedClock: the simulator jumps that clock from event to event
// and no real timer is ever armed.
import type { SimulatedClock } from 'xstate';

interface Held {
  /** The adapter's timer id, so a clearTimeout while held still cancels it; 0 for deliveries. */
  readonly id: number;
  readonly fn: () => void;
}

export class MonitorClock {
  readonly name: string;
  readonly #base: SimulatedClock;
  /** Local time per unit of simulated time: 1.05 means this clock runs 5% fast. */
  #rate: number;
  #paused = false;
  #nextId = 1;
  /** Armed timers: adapter id → the base clock's id. */
  readonly #timers = new Map<number, number>();
  #held: Held[] = [];

  constructor(name: string, base: SimulatedClock, rate = 1) {
    this.name = name;
    this.#base = base;
    this.#rate = checkedRate(rate);
  }

  get rate(): number {
    return this.#rate;
  }

  /** Changes only timers armed from now on (a timer already armed keeps its due time). */
  set rate(rate: number) {
    this.#rate = checkedRate(rate);
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Held timers and deliveries waiting for resume(). */
  get heldCount(): number {
    return this.#held.length;
  }

  /** Simulated milliseconds for `ms` of this monitor's local time. */
  toSimulatedMs(ms: number): number {
    return Math.max(0, Math.round(ms / this.#rate));
  }

  setTimeout(fn: () => void, ms: number): number {
    const id = this.#nextId++;
    const baseId = this.#base.setTimeout(() => {
      this.#timers.delete(id);
      if (this.#paused) this.#held.push({ id, fn });
      else fn();
    }, this.toSimulatedMs(ms));
    this.#timers.set(id, baseId);
    return id;
  }

  clearTimeout(id: unknown): void {
    if (typeof id !== 'number') return;
    const baseId = this.#timers.get(id);
    if (baseId !== undefined) {
      this.#base.clearTimeout(baseId);
      this.#timers.delete(id);
      return;
    }
    if (this.#held.length) this.#held = this.#held.filter((held) => held.id !== id);
  }

  /**
   * This monitor's wall clock: simulated time at its rate (a skewed clock drifts). The machines
   * never read it; quorum_age, log stamps and the leader's time checks (ping stamps) do.
   */
  now(): number {
    return Math.round(this.#base.now() * this.#rate);
  }

  /** Run `fn` now, or when the monitor resumes if it is paused (message deliveries). */
  run(fn: () => void): void {
    if (this.#paused) this.#held.push({ id: 0, fn });
    else fn();
  }

  pause(): void {
    this.#paused = true;
  }

  /** Run what came due during the pause, in order; a callback may arm or cancel timers. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    while (this.#held.length && !this.#paused) {
      const next = this.#held.shift() as Held;
      next.fn();
    }
  }

  /** The process died: forget every armed timer and everything held (kill -9 loses them). */
  clear(): void {
    for (const baseId of this.#timers.values()) this.#base.clearTimeout(baseId);
    this.#timers.clear();
    this.#held = [];
    this.#paused = false;
  }
}

function checkedRate(rate: number): number {
  if (!(rate > 0.5 && rate < 2)) throw new RangeError(`clock rate must be in (0.5, 2), got ${rate}`);
  return rate;
}

/**
 * Let every promise continuation run: the I/O actor awaits its store, so a timer's effects finish
 * in microtasks. One macrotask turn drains the whole microtask queue, however deep the chains
 * (settle() in sim/cluster.ts takes twenty turns to be safe; the simulator steps far more often).
 */
export function drainMicrotasks(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** When the earliest armed timer of the SimulatedClock is due, or Infinity when none is. */
export function nextDueAt(clock: SimulatedClock): number {
  // SimulatedClock keeps its timers in a public Map of { start, timeout, fn }.
  const timeouts = (clock as unknown as { timeouts: Map<unknown, { start: number; timeout: number }> })
    .timeouts;
  let earliest = Number.POSITIVE_INFINITY;
  for (const timer of timeouts.values()) {
    const due = timer.start + timer.timeout;
    if (due < earliest) earliest = due;
  }
  return earliest;
}
