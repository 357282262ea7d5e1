// Ceph-style option overrides (--set name=value): units, and values refused before a monitor
// runs with them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyCephOptions, defaultConfig } from '../machines/config.ts';

test('seconds become milliseconds; counts and factors stay as given', () => {
  const config = applyCephOptions(defaultConfig, [
    'mon_lease=2.5',
    'paxos_min=7',
    'mon-lease-ack-timeout-factor=1.5',
  ]);
  assert.type(config, 'object');
  const c = config as typeof defaultConfig;
  assert.is(c.monLeaseMs, 2500);
  assert.is(c.paxosMin, 7);
  assert.is(c.monLeaseAckTimeoutFactor, 1.5);
});

test('an empty, negative, non-numeric or too long value is refused with the reason', () => {
  for (const [pair, reason] of [
    ['mon_lease=', /needs a non-negative number/],
    ['mon_lease=-1', /needs a non-negative number/],
    ['mon_lease=soon', /needs a non-negative number/],
    ['mon_lease=1e7', /is at most 2147483\.647 seconds/],
    ['no_such_option=1', /unknown option 'no_such_option'/],
    ['mon_lease', /is not name=value/],
  ] as const) {
    const result = applyCephOptions(defaultConfig, [pair]);
    assert.type(result, 'string', pair);
    assert.match(result as string, reason, pair);
  }
});

test.run();
