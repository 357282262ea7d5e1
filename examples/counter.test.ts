// The counter (./counter.ts) on paxmon's simulator, faults and all: node --import tsx counter.test.ts

import {
  type CounterInput,
  type CounterOutput,
  counterModel,
  type Random,
  type ServiceOperation,
  simulateService,
} from 'paxmon/testing';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { counter } from './counter.js';

type Op = ServiceOperation<CounterInput, CounterOutput>;
const get: Op = {
  cmd: ['counter', 'get'],
  input: { op: 'get' },
  read: true,
  output: (reply) => (reply.r === 0 ? { value: Number(reply.text) } : null),
};
const add = (n: number): Op => ({
  cmd: ['counter', 'add', String(n)],
  input: { op: 'add', n },
  output: (reply) => (reply.r === 0 ? { value: Number(reply.rs.replace('counter = ', '')) } : null), // the total after it
});
const options = {
  model: counterModel(),
  operations: (random: Random) => (random.chance(0.5) ? get : add(random.int(1, 9))),
  finalReads: [get],
  seeds: 5,
};

test('the counter stays linearizable through faults and restarts', async () => {
  const result = await simulateService({ service: counter, ...options });
  assert.ok(result.ok, result.report);
});

test('a counter that forgets its value at a restart is caught', async () => {
  const result = await simulateService({ service: { ...counter, init: () => ({ value: 0 }) }, ...options });
  assert.not.ok(result.ok, 'the kit must catch it');
  console.log(result.report);
});

test.run();
