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
// Everything stays on the one SimClock: the simulator jumps that clock from event to event and no
// real timer is ever armed.
import type { SimulatedClock } from 'xstate';

/** What the simulator's timer users need of a clock: the SimClock, or a MonitorClock over it. */
export interface SimTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): number;
  clearTimeout(id: number): void;
}

interface Timer {
  readonly id: number;
  readonly start: number;
  readonly timeout: number;
  /** start + timeout, the order key (NaN, which never fires, as +Infinity). */
  readonly due: number;
  readonly fn: () => void;
}

/** Heap order: earlier due first, then the earlier armed (lower id). */
function before(a: Timer, b: Timer): boolean {
  return a.due < b.due || (a.due === b.due && a.id < b.id);
}

/**
 * The cluster's one clock: XState's SimulatedClock (the same methods, and timers fire in the same
 * order: by due time, then in the order they were armed), with its armed timers in a binary heap.
 * SimulatedClock copies and sorts every armed timer each time it is set, and again after every
 * callback that arms or cancels one — most do: a fired lease or message arms the next. A 3-monitor
 * run keeps 20–45 timers armed (leases, probes, messages in flight, fsyncs, clients) and sets the
 * clock ~5,000 times, so those copies and sorts were ~7% of the test kit's allocations and ~4% of
 * its CPU. Here a timer fired or armed costs O(log n); a cancelled one is only forgotten, and
 * dropped from the heap when it comes up (or when the cancelled outnumber the armed).
 */
export class SimClock {
  #now = 0;
  #nextId = 0;
  /** Armed timers by id: a timer missing here was cancelled or has fired. */
  readonly #armed = new Map<number, Timer>();
  #heap: Timer[] = [];
  #flushing = false;
  /** A timer was armed or cancelled, or the clock set, since the running callback began. */
  #changed = false;

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, timeout: number): number {
    const id = this.#nextId++;
    const start = this.#now;
    const due = start + timeout;
    const timer: Timer = { id, start, timeout, due: Number.isNaN(due) ? Number.POSITIVE_INFINITY : due, fn };
    this.#changed = true;
    this.#armed.set(id, timer);
    this.#push(timer);
    return id;
  }

  clearTimeout(id: number): void {
    this.#changed = true;
    if (!this.#armed.delete(id)) return;
    // Rebuild once cancelled timers are most of the heap, so it stays O(armed).
    if (this.#heap.length > 64 && this.#heap.length > 2 * this.#armed.size) {
      this.#heap = [];
      for (const timer of this.#armed.values()) this.#push(timer);
    }
  }

  /** Jump to `time` and run every timer due by then, in order (timers armed meanwhile included). */
  set(time: number): void {
    if (this.#now > time) throw new Error('Unable to travel back in time');
    this.#now = time;
    this.#flush();
  }

  increment(ms: number): void {
    this.#now += ms;
    this.#flush();
  }

  /** When the earliest armed timer is due, or Infinity when none is. */
  nextDueAt(): number {
    return this.#top()?.due ?? Number.POSITIVE_INFINITY;
  }

  /** Timers armed and not yet fired. */
  get armedCount(): number {
    return this.#armed.size;
  }

  #flush(): void {
    // A callback that sets the clock only moves time on: this loop runs what is due then too.
    if (this.#flushing) {
      this.#changed = true;
      return;
    }
    this.#flushing = true;
    try {
      for (;;) {
        const timer = this.#top();
        // SimulatedClock's test, word for word (not `due <= now`), for the same rounding.
        if (timer === undefined || !(this.#now - timer.start >= timer.timeout)) break;
        this.#pop();
        this.#armed.delete(timer.id);
        // SimulatedClock walks a sorted copy of its timers and re-sorts when a callback changed
        // them — noticed only on its way to the next timer of the copy. When this one is the last
        // (nothing else armed), what its callback armed, even due now, waits for the next set().
        const last = this.#armed.size === 0;
        this.#changed = false;
        timer.fn.call(null);
        if (last && this.#changed) break;
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** The earliest armed timer, dropping cancelled ones off the top. */
  #top(): Timer | undefined {
    const heap = this.#heap;
    while (heap.length > 0) {
      const first = heap[0] as Timer;
      if (this.#armed.get(first.id) === first) return first;
      this.#pop();
    }
    return undefined;
  }

  #push(timer: Timer): void {
    const heap = this.#heap;
    let index = heap.length;
    heap.push(timer);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const above = heap[parent] as Timer;
      if (!before(timer, above)) break;
      heap[index] = above;
      index = parent;
    }
    heap[index] = timer;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop() as Timer;
    if (heap.length === 0) return;
    let index = 0;
    const length = heap.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      let child = left;
      if (right < length && before(heap[right] as Timer, heap[left] as Timer)) child = right;
      const below = heap[child] as Timer;
      if (!before(below, last)) break;
      heap[index] = below;
      index = child;
    }
    heap[index] = last;
  }
}

interface Held {
  /** The adapter's timer id, so a clearTimeout while held still cancels it; 0 for deliveries. */
  readonly id: number;
  readonly fn: () => void;
}

export class MonitorClock {
  readonly name: string;
  readonly #base: SimTimers;
  /** Local time per unit of simulated time: 1.05 means this clock runs 5% fast. */
  #rate: number;
  #paused = false;
  #nextId = 1;
  /** Armed timers: adapter id → the base clock's id. */
  readonly #timers = new Map<number, number>();
  #held: Held[] = [];

  constructor(name: string, base: SimTimers, rate = 1) {
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

/** When the earliest armed timer of the clock is due, or Infinity when none is. */
export function nextDueAt(clock: SimClock | SimulatedClock): number {
  if (clock instanceof SimClock) return clock.nextDueAt();
  // SimulatedClock keeps its timers in a Map of { start, timeout, fn }.
  const timeouts = (clock as unknown as { timeouts: Map<unknown, { start: number; timeout: number }> })
    .timeouts;
  let earliest = Number.POSITIVE_INFINITY;
  for (const timer of timeouts.values()) {
    const due = timer.start + timer.timeout;
    if (due < earliest) earliest = due;
  }
  return earliest;
}
