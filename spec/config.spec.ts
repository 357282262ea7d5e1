// Ceph-style option overrides (--set name=value): units, and values refused before a monitor
// runs with them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyCephOptions, cephDefaults, defaultConfig } from '../machines/config.ts';

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

test('values that parse but cannot work are refused, naming the option (issue 13)', () => {
  for (const [pairs, reason] of [
    [['mon_lease=0'], /'mon_lease' must be more than 0 .*no quorum ever forms/],
    [['mon_lease=0.0001'], /'mon_lease' must be more than 0/],
    [
      ['mon_lease_renew_interval_factor=0'],
      /'mon_lease_renew_interval_factor' must be more than 0 and less than 1 \(the leader would renew its lease continuously\)/,
    ],
    [
      ['mon_lease_renew_interval_factor=1'],
      /'mon_lease_renew_interval_factor' must be more than 0 and less than 1 \(the lease would expire/,
    ],
    [['mon_lease=0.002', 'mon_lease_renew_interval_factor=0.25'], /renew interval .* less than 1 ms/],
    [
      ['mon_lease_ack_timeout_factor=0.2'],
      /'mon_lease_ack_timeout_factor' must be more than mon_lease_renew_interval_factor/,
    ],
    [['mon_accept_timeout_factor=0'], /'mon_accept_timeout_factor' must be more than 0/],
    [['mon_election_timeout=0'], /'mon_election_timeout' must be more than 0/],
    [['mon_probe_timeout=0'], /'mon_probe_timeout' must be more than 0/],
    [['mon_tick_interval=0'], /'mon_tick_interval' must be more than 0/],
    [['mon_sync_timeout=0'], /'mon_sync_timeout' must be more than 0/],
    [['mon_sync_max_payload_keys=0'], /'mon_sync_max_payload_keys' must be more than 0/],
    [['mon_sync_max_payload_size=0'], /'mon_sync_max_payload_size' must be more than 0/],
    [['mon_session_answers_max=0'], /'mon_session_answers_max' must be more than 0/],
    [['mon_client_deadline_max=0'], /'mon_client_deadline_max' must be more than 0/],
    [['paxos_min=2.5'], /'paxos_min' needs a whole number/],
  ] as const) {
    const result = applyCephOptions(defaultConfig, [...pairs]);
    assert.type(result, 'string', pairs.join(' '));
    assert.match(result as string, reason, pairs.join(' '));
  }
  // Zero where zero works: propose at once, no gather, an empty entry limit, no drift allowed.
  for (const pair of [
    'paxos_propose_interval=0',
    'paxos_propose_gather=0',
    'mon_config_key_max_entry_size=0',
    'mon_clock_drift_allowed=0',
    'paxos_max_join_drift=0',
  ]) {
    assert.type(applyCephOptions(defaultConfig, [pair]), 'object', pair);
  }
  // Ceph's own defaults, and a renew factor raised together with the ack timeout, are accepted.
  assert.type(applyCephOptions(cephDefaults, []), 'object');
  assert.type(
    applyCephOptions(defaultConfig, [
      'mon_lease_renew_interval_factor=0.6',
      'mon_lease_ack_timeout_factor=2',
    ]),
    'object',
  );
});

test.run();
