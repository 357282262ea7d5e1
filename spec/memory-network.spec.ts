// The simulator's network and PRNG: the same seed gives the same delivery trace, partitions and
// one-way blocks stop exactly what they should, fault rates come out near what was asked, and a
// crashed endpoint loses its in-flight messages and resets its peers.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Prng } from '../sim/prng.ts';
import { MemoryNetwork, type NetworkEvent, type NetworkFaults } from '../transport/memory-network.ts';
import type { EntityName, Message } from '../transport/messages.ts';
import type { Transport } from '../transport/transport.ts';
import { sampleMessages } from './fixtures/messages.ts';
import { Inbox } from './fixtures/wait.ts';

const test = suite('memory-network');

/** A minimal simulated clock: timers run in (time, insertion) order when run() is called. */
class TestClock {
  #now = 0;
  #sequence = 0;
  #timers: { at: number; sequence: number; fn: () => void }[] = [];

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { at: this.#now + Math.max(0, ms), sequence: this.#sequence++, fn };
    this.#timers.push(timer);
    return timer;
  }

  /** Run timers until none is left (or `stepsMax`, so a livelock fails instead of hanging). */
  run(stepsMax = 1_000_000): void {
    for (let step = 0; step < stepsMax; step++) {
      if (this.#timers.length === 0) return;
      this.#timers.sort((a, b) => a.at - b.at || a.sequence - b.sequence);
      const timer = this.#timers.shift() as { at: number; fn: () => void };
      this.#now = timer.at;
      timer.fn();
    }
    throw new Error('TestClock.run: too many steps');
  }
}

function command(tid: number): Message {
  return { type: 'mon.command', tid, cmd: ['status'] };
}

function tidOf(message: Message): number {
  return 'tid' in message ? message.tid : -1;
}

interface World {
  clock: TestClock;
  network: MemoryNetwork;
  endpoints: Map<EntityName, Transport>;
  inboxes: Map<EntityName, Inbox>;
  events: NetworkEvent[];
}

function world(
  seed: number | string,
  faults: Partial<NetworkFaults> = {},
  names = ['mon.a', 'mon.b', 'mon.c'],
): World {
  const clock = new TestClock();
  const prng = new Prng(seed).fork('network');
  const events: NetworkEvent[] = [];
  const network = new MemoryNetwork({
    clock,
    random: () => prng.next(),
    faults,
    onEvent: (event) => events.push(event),
  });
  const endpoints = new Map<EntityName, Transport>();
  const inboxes = new Map<EntityName, Inbox>();
  for (const name of names as EntityName[]) {
    const endpoint = network.endpoint(name);
    const inbox = new Inbox();
    endpoint.setHandlers(inbox.handlers);
    endpoints.set(name, endpoint);
    inboxes.set(name, inbox);
  }
  return { clock, network, endpoints, inboxes, events };
}

function at<K, V>(map: Map<K, V>, key: K): V {
  const value = map.get(key);
  if (value === undefined) throw new Error(`missing ${String(key)}`);
  return value;
}

/** Everyone sends `count` commands to everyone else, interleaved; returns the delivery trace. */
function chatter(w: World, count: number): string[] {
  const names = [...w.endpoints.keys()];
  for (let tid = 0; tid < count; tid++) {
    for (const from of names) {
      for (const to of names) if (from !== to) at(w.endpoints, from).send(to, command(tid));
    }
  }
  w.clock.run();
  return w.events
    .filter((event) => event.kind === 'deliver' || event.kind === 'drop' || event.kind === 'duplicate')
    .map((event) => `${event.at} ${event.kind} ${event.from}->${event.to}`);
}

const faulty: Partial<NetworkFaults> = { delayMs: [1, 50], dropRate: 0.1, duplicateRate: 0.1, reorder: true };

test('same seed, same delivery trace; another seed, another trace', () => {
  const first = chatter(world(12345, faulty), 50);
  const second = chatter(world(12345, faulty), 50);
  const other = chatter(world(54321, faulty), 50);
  assert.ok(first.length > 0);
  assert.equal(first, second);
  assert.not.equal(first, other);

  // The receiving order, message by message, is reproduced too.
  const order = (seed: number): string[] => {
    const w = world(seed, faulty);
    chatter(w, 20);
    return [...w.inboxes].flatMap(([name, inbox]) =>
      inbox.received.map((entry) => `${entry.from}->${name}#${tidOf(entry.message)}`),
    );
  };
  assert.equal(order(7), order(7));
});

test('every sample message arrives equal to what was sent, as a copy', () => {
  const w = world('copies');
  const a = at(w.endpoints, 'mon.a');
  for (const message of sampleMessages) a.send('mon.b', message);
  w.clock.run();
  const received = at(w.inboxes, 'mon.b').from('mon.a');
  assert.equal(received, sampleMessages);
  for (const [index, message] of received.entries()) assert.ok(message !== sampleMessages[index]);
});

test('without reorder each link is FIFO, whatever the random delays', () => {
  const w = world(99, { delayMs: [0, 100], reorder: false });
  chatter(w, 200);
  for (const [name, inbox] of w.inboxes) {
    for (const from of w.endpoints.keys()) {
      if (from === name) continue;
      const tids = inbox.from(from).map(tidOf);
      assert.equal(tids, [...Array(200).keys()], `${from}->${name}`);
    }
  }
  // With reorder on, the same delays do reorder.
  const r = world(99, { delayMs: [0, 100], reorder: true });
  chatter(r, 200);
  const tids = at(r.inboxes, 'mon.b').from('mon.a').map(tidOf);
  assert.is(tids.length, 200);
  assert.not.equal(tids, [...Array(200).keys()]);
});

test('partition blocks both ways between the groups, not within; heal restores', () => {
  const w = world('partition');
  w.network.partition(['mon.a'], ['mon.b', 'mon.c']);
  chatter(w, 3);
  assert.equal(at(w.inboxes, 'mon.a').received, []);
  assert.equal(at(w.inboxes, 'mon.b').from('mon.a'), []);
  assert.is(at(w.inboxes, 'mon.b').from('mon.c').length, 3);
  assert.is(at(w.inboxes, 'mon.c').from('mon.b').length, 3);
  assert.is(w.network.stats().blocked, 12);

  w.network.heal();
  at(w.endpoints, 'mon.a').send('mon.b', command(9));
  at(w.endpoints, 'mon.c').send('mon.a', command(9));
  w.clock.run();
  assert.equal(at(w.inboxes, 'mon.b').from('mon.a').map(tidOf), [9]);
  assert.equal(at(w.inboxes, 'mon.a').from('mon.c').map(tidOf), [9]);
});

test('a one-way block stops a→b only', () => {
  const w = world('one-way');
  w.network.setLink('mon.a', 'mon.b', { blocked: true });
  chatter(w, 4);
  assert.equal(at(w.inboxes, 'mon.b').from('mon.a'), []);
  assert.is(at(w.inboxes, 'mon.a').from('mon.b').length, 4);
  assert.is(at(w.inboxes, 'mon.c').from('mon.a').length, 4);
  w.network.setLink('mon.a', 'mon.b', { blocked: false });
  at(w.endpoints, 'mon.a').send('mon.b', command(7));
  w.clock.run();
  assert.equal(at(w.inboxes, 'mon.b').from('mon.a').map(tidOf), [7]);
});

test('a partition cuts messages already in flight', () => {
  const w = world('in-flight', { delayMs: [10, 10] });
  at(w.endpoints, 'mon.a').send('mon.b', command(1));
  w.network.partition(['mon.a'], ['mon.b']);
  w.clock.run();
  assert.equal(at(w.inboxes, 'mon.b').received, []);
  assert.is(w.network.stats().blocked, 1);
});

test('drop and duplicate rates come out near what was asked', () => {
  const sends = 3000;
  const drop = world('drop', { dropRate: 0.3 }, ['mon.a', 'mon.b']);
  for (let tid = 0; tid < sends; tid++) at(drop.endpoints, 'mon.a').send('mon.b', command(tid));
  drop.clock.run();
  const delivered = at(drop.inboxes, 'mon.b').received.length;
  assert.ok(Math.abs(delivered / sends - 0.7) < 0.04, `delivered ${delivered} of ${sends}`);
  assert.is(drop.network.stats().dropped + delivered, sends);

  const dup = world('duplicate', { duplicateRate: 0.2 }, ['mon.a', 'mon.b']);
  for (let tid = 0; tid < sends; tid++) at(dup.endpoints, 'mon.a').send('mon.b', command(tid));
  dup.clock.run();
  const copies = at(dup.inboxes, 'mon.b').received.length;
  assert.ok(Math.abs(copies / sends - 1.2) < 0.04, `delivered ${copies} for ${sends} sent`);
  assert.is(dup.network.stats().duplicated, copies - sends);
  // Each duplicate is its own object.
  const [first, second] = at(dup.inboxes, 'mon.b').received;
  assert.ok(first && second && first.message !== second.message);
});

test('per-link settings override the network faults', () => {
  const w = world('links', {}, ['mon.a', 'mon.b', 'mon.c']);
  w.network.setLink('mon.a', 'mon.b', { dropRate: 1 });
  w.network.setLink('mon.a', 'mon.c', { delayMs: [500, 500] });
  at(w.endpoints, 'mon.a').send('mon.b', command(1));
  at(w.endpoints, 'mon.a').send('mon.c', command(2));
  w.clock.run();
  assert.equal(at(w.inboxes, 'mon.b').received, []);
  const delivery = w.events.find((event) => event.kind === 'deliver' && event.to === 'mon.c');
  assert.is(delivery?.at, 500);
  assert.throws(() => w.network.setLink('mon.a', 'mon.b', { dropRate: 2 }), /dropRate/);
});

test('a crash loses in-flight messages both ways and resets peers; a restart gets new traffic', () => {
  const w = world('crash', { delayMs: [5, 5] });
  const a = at(w.endpoints, 'mon.a');
  const b = at(w.endpoints, 'mon.b');
  a.send('mon.b', command(1));
  w.clock.run();
  b.send('mon.a', command(2)); // to mon.a, in flight when mon.a crashes
  a.send('mon.b', command(3)); // from mon.a, in flight when mon.a crashes
  void a.close();
  w.clock.run();
  assert.equal(at(w.inboxes, 'mon.b').from('mon.a').map(tidOf), [1]);
  assert.equal(at(w.inboxes, 'mon.a').received, []);
  assert.is(w.network.stats().lost, 2);
  assert.equal(at(w.inboxes, 'mon.b').resets, ['mon.a']);
  assert.equal(at(w.inboxes, 'mon.c').resets, [], 'mon.c never talked with mon.a');

  // While down, mon.a is unreachable; a closed endpoint sends nothing.
  b.send('mon.a', command(4));
  a.send('mon.b', command(5));
  w.clock.run();
  assert.is(w.network.stats().unreachable, 1);

  assert.throws(() => w.network.endpoint('mon.b'), /already open/);
  const restarted = w.network.endpoint('mon.a');
  const inbox = new Inbox();
  restarted.setHandlers(inbox.handlers);
  b.send('mon.a', command(6));
  restarted.send('mon.b', command(7));
  w.clock.run();
  assert.equal(inbox.from('mon.b').map(tidOf), [6]);
  assert.equal(at(w.inboxes, 'mon.b').from('mon.a').map(tidOf), [1, 7]);
});

test('an invalid message is dropped at the receiver, as on TCP', () => {
  const w = world('invalid');
  at(w.endpoints, 'mon.a').send('mon.b', { type: 'mon.ping', op: 'bogus', stamp: 1 } as unknown as Message);
  w.clock.run();
  assert.equal(at(w.inboxes, 'mon.b').received, []);
  assert.is(w.network.stats().invalid, 1);
  assert.ok(w.events.some((event) => event.kind === 'drop' && event.reason === 'invalid'));
});

test('delivery is never synchronous with send', () => {
  const w = world('async');
  at(w.endpoints, 'mon.a').send('mon.b', command(1));
  assert.equal(at(w.inboxes, 'mon.b').received, []);
  w.clock.run();
  assert.is(at(w.inboxes, 'mon.b').received.length, 1);
});

// --- sim/prng.ts -----------------------------------------------------------------------------------

test('prng: deterministic per seed, numeric and string seeds', () => {
  const draw = (seed: number | string): number[] => {
    const prng = new Prng(seed);
    return Array.from({ length: 8 }, () => prng.uint32());
  };
  assert.equal(draw(1), draw(1));
  assert.equal(draw('seed'), draw('seed'));
  assert.not.equal(draw(1), draw(2));
  assert.not.equal(draw(2 ** 40), draw(2 ** 40 + 2 ** 32), 'high bits of a large seed count');
  assert.not.equal(draw('a'), draw('b'));
});

test('prng: ranges, chance and pick', () => {
  const prng = new Prng(2024);
  const counts = new Map<number, number>();
  for (let index = 0; index < 60_000; index++) {
    const value = prng.int(-2, 3);
    assert.ok(value >= -2 && value <= 3 && Number.isInteger(value));
    counts.set(value, (counts.get(value) ?? 0) + 1);
    const unit = prng.next();
    assert.ok(unit >= 0 && unit < 1);
  }
  assert.is(counts.size, 6);
  for (const count of counts.values()) assert.ok(Math.abs(count - 10_000) < 600, `count ${count}`);
  assert.is(prng.chance(0), false);
  assert.is(prng.chance(1), true);
  const hits = Array.from({ length: 10_000 }, () => prng.chance(0.25)).filter(Boolean).length;
  assert.ok(Math.abs(hits - 2500) < 250, `hits ${hits}`);
  assert.is(prng.pick(['only']), 'only');
  assert.throws(() => prng.pick([]), /empty/);
  assert.throws(() => prng.int(3, 2), /lo <= hi/);
  const wide = prng.int(0, 2 ** 40);
  assert.ok(wide >= 0 && wide <= 2 ** 40);
});

test('prng: fork gives independent streams that do not depend on the parent position', () => {
  const parent = new Prng(7);
  const early = parent.fork('network');
  for (let index = 0; index < 100; index++) parent.next();
  const late = parent.fork('network');
  assert.equal(
    Array.from({ length: 5 }, () => early.uint32()),
    Array.from({ length: 5 }, () => late.uint32()),
  );
  const storage = new Prng(7).fork('storage');
  const network = new Prng(7).fork('network');
  assert.not.equal(
    Array.from({ length: 5 }, () => storage.uint32()),
    Array.from({ length: 5 }, () => network.uint32()),
  );
  assert.not.equal(new Prng(7).fork('network').uint32(), new Prng(8).fork('network').uint32());
});

test.run();
