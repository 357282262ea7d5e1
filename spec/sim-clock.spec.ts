// The simulator's clock (sim/clock.ts SimClock) against XState's SimulatedClock, which it replaces
// for speed: driven by the same random schedule — timers armed and cancelled from outside and
// from inside callbacks, zero and negative delays, many due at the same instant, time set forward
// in jumps and steps, a callback that is the last armed timer arming another — both must fire
// the same callbacks in the same order at the same times. That order is what a seed's trace hash
// depends on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimulatedClock } from 'xstate';
import { nextDueAt, SimClock } from '../sim/clock.ts';
import { Prng } from '../sim/prng.ts';

interface AnyClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): number;
  clearTimeout(id: number): void;
  set(time: number): void;
  increment(ms: number): void;
}

/** Run one random schedule on `clock`; returns what fired, when, and where time stood. */
function drive(clock: AnyClock, seed: number): string[] {
  const prng = new Prng(seed);
  const log: string[] = [];
  const armed: number[] = [];
  let label = 0;
  const arm = (depth: number): void => {
    const name = `t${label++}`;
    // Few distinct delays, so that many timers fall due at the same instant.
    const delay = prng.chance(0.1) ? prng.int(-3, 0) : prng.pick([0, 1, 2, 5, 5, 10, 25]);
    const id = clock.setTimeout(() => {
      log.push(`${clock.now()} ${name}`);
      if (depth < 3 && prng.chance(0.5)) arm(depth + 1);
      if (prng.chance(0.2) && armed.length > 0)
        clock.clearTimeout(armed[prng.int(0, armed.length - 1)] as number);
      // A callback that moves time on (the simulator's do not, but the clock allows it).
      if (prng.chance(0.03)) clock.set(clock.now() + prng.int(0, 2));
    }, delay);
    armed.push(id);
  };
  for (let round = 0; round < 400; round++) {
    const action = prng.int(0, 9);
    if (action < 5) arm(0);
    else if (action < 7 && armed.length > 0)
      clock.clearTimeout(armed[prng.int(0, armed.length - 1)] as number);
    else if (action < 9) clock.set(clock.now() + prng.int(0, 12));
    else clock.increment(prng.int(0, 3));
    log.push(`at ${clock.now()} next ${nextDueAt(clock as SimClock)}`);
  }
  clock.set(clock.now() + 1_000);
  return log;
}

test('SimClock fires what SimulatedClock fires, in the same order, at the same times', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const expected = drive(new SimulatedClock() as unknown as AnyClock, seed);
    const actual = drive(new SimClock(), seed);
    assert.ok(expected.filter((line) => !line.startsWith('at')).length > 100, 'the schedule fires timers');
    assert.equal(actual, expected, `seed ${seed}`);
  }
});

test('SimClock: a cancelled timer never fires; time never goes back; nothing armed is Infinity', () => {
  const clock = new SimClock();
  const fired: string[] = [];
  const a = clock.setTimeout(() => fired.push('a'), 10);
  clock.setTimeout(() => fired.push('b'), 10);
  clock.clearTimeout(a);
  clock.clearTimeout(a);
  assert.is(clock.nextDueAt(), 10);
  clock.set(9);
  assert.equal(fired, []);
  clock.set(10);
  assert.equal(fired, ['b']);
  assert.is(clock.nextDueAt(), Number.POSITIVE_INFINITY);
  assert.throws(() => clock.set(5), /back in time/);
  // Many cancelled timers: the heap is rebuilt, the rest still fire in order.
  const ids = Array.from({ length: 500 }, (_, i) => clock.setTimeout(() => fired.push(`c${i}`), 1 + (i % 7)));
  for (const [i, id] of ids.entries()) if (i % 10 !== 0) clock.clearTimeout(id);
  clock.increment(10);
  const expected = ids
    .map((_, i) => i)
    .filter((i) => i % 10 === 0)
    .sort((x, y) => (x % 7) - (y % 7) || x - y)
    .map((i) => `c${i}`);
  assert.equal(fired.slice(1), expected);
  assert.is(clock.armedCount, 0);
});

test.run();
