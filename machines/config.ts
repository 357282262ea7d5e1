// Monitor options, named after Ceph's (src/common/options/mon.yaml.in, DESIGN.md §5), in
// milliseconds. Ceph's defaults are sized for big cluster maps and slow disks; paxmon defaults to
// faster timing, like etcd's 100 ms heartbeat / 1 s election timeout, because its values are
// small and a monitor that is gone should be noticed in about a second, not in 10. Every option
// stays configurable, and `cephDefaults` gives Ceph's own values.
export interface MonConfig {
  /** mon_lease: how long a peon may serve reads after a lease (Ceph 5 s). */
  monLeaseMs: number;
  /** mon_lease_renew_interval_factor: the leader renews every lease × this (Ceph 0.6). */
  monLeaseRenewIntervalFactor: number;
  /** mon_lease_ack_timeout_factor: leader waits lease × this for lease acks; a peon waits as long for a lease (Ceph 2). */
  monLeaseAckTimeoutFactor: number;
  /** mon_accept_timeout_factor: collect and begin wait lease × this for the quorum (Ceph 2). */
  monAcceptTimeoutFactor: number;
  /** mon_election_timeout (Ceph 5 s). */
  monElectionTimeoutMs: number;
  /** Extra time a deferring monitor gives the one it acked to declare victory (Ceph's reset_timer(1.0)). */
  monElectionDeferExtraMs: number;
  /** mon_probe_timeout (Ceph 2 s). */
  monProbeTimeoutMs: number;
  /**
   * mon_elector_ping_timeout: under the connectivity strategy a peer whose ping is not answered
   * for this long is reported dead (Ceph 2 s).
   */
  monElectorPingTimeoutMs: number;
  /** mon_elector_ping_divisor: pings (and their checks) every ping timeout / this (Ceph 2). */
  monElectorPingDivisor: number;
  /** mon_con_tracker_score_halflife, in seconds: how fast a link's score follows its pings (Ceph 43200). */
  monConTrackerScoreHalflifeS: number;
  /** mon_con_tracker_persist_interval: scores are written every this many updates (Ceph 10). */
  monConTrackerPersistInterval: number;
  /**
   * mon_elector_ignore_propose_margin: a stable monitor ignores a propose from outside its
   * quorum unless the best score beats its last vote's by this much (Ceph 0.0005).
   */
  monElectorIgnoreProposeMargin: number;
  /** paxos_max_join_drift: versions a monitor may lag before it must sync rather than catch up (Ceph 10). */
  paxosMaxJoinDrift: number;
  /** paxos_propose_interval: 0 proposes at once when idle and batches what arrives during a round (Ceph 1 s). */
  paxosProposeIntervalMs: number;
  /**
   * paxmon's paxos_propose_gather (no Ceph equivalent; 0 turns it off): after a commit that
   * answered several requests, a leader's service waits up to this long for as many requests as
   * were in flight (the answered clients' next ones) before it proposes again. A commit that
   * answered one request proposes the next at once, so a lone client waits for nothing.
   * 8 ms: under 64 writes in flight the answered clients' next requests take 3–6 ms to arrive on
   * this 2-core VM; with 4 ms some rounds left without them (five A/B pairs, 8 ms won each).
   */
  paxosProposeGatherMs: number;
  /** paxos_min: versions kept after a trim (Ceph 500). */
  paxosMin: number;
  /** paxos_trim_min: trim only when this many versions beyond paxos_min can go (Ceph 250). */
  paxosTrimMin: number;
  /** paxos_trim_max: at most this many versions trimmed in one proposal (Ceph 500). */
  paxosTrimMax: number;
  /** paxos_service_trim_min: a service trims only when this many versions can go (Ceph 250). */
  paxosServiceTrimMin: number;
  /** paxos_service_trim_max: at most this many service versions trimmed at once (Ceph 500). */
  paxosServiceTrimMax: number;
  /** mon_config_key_max_entry_size (Ceph 64 KiB). */
  monConfigKeyMaxEntrySizeBytes: number;
  /** mon_clock_drift_allowed: beyond this, MON_CLOCK_SKEW (Ceph 0.05 s). */
  monClockDriftAllowedMs: number;
  /** mon_tick_interval: services' tick (Ceph 5 s). */
  monTickIntervalMs: number;
  /** mon_sync_timeout: a sync step that waits longer fails and bootstraps (Ceph 60 s). */
  monSyncTimeoutMs: number;
  /** mon_sync_max_payload_size: bytes per sync chunk (Ceph 1 MiB). */
  monSyncMaxPayloadSizeBytes: number;
  /** mon_sync_max_payload_keys: keys per sync chunk (Ceph 2000). */
  monSyncMaxPayloadKeys: number;
  /**
   * paxmon's mon_session_answers_max (no Ceph equivalent): the answers of committed client
   * updates a service remembers at most, each until its request's deadline has passed
   * (machines/sessions.ts). Beyond it, new updates are answered EAGAIN until answers expire —
   * never forgotten early, which could let a late copy of an update apply twice.
   */
  monSessionAnswersMax: number;
  /**
   * paxmon's mon_client_deadline_max (no Ceph equivalent): how far ahead of the leader's clock an
   * update's deadline may be (beyond: EINVAL). It bounds how long answers are remembered.
   */
  monClientDeadlineMaxMs: number;
}

export const defaultConfig: MonConfig = {
  monLeaseMs: 1000,
  // A peon reads under lease n once lease n+1 confirms that the whole quorum acked n, until
  // mon_lease after the token n echoed — sent with its ack of n-1 (machines/paxos.ts
  // handleLease). That is mon_lease − 2 renew intervals from the arrival of n+1, and n+2 comes
  // one interval later: below a third there is no gap (0.25 leaves margin for delays). With
  // Ceph's 0.6 a peon's lease would never serve reads, and its requests go to the leader.
  monLeaseRenewIntervalFactor: 0.25,
  monLeaseAckTimeoutFactor: 2,
  monAcceptTimeoutFactor: 2,
  monElectionTimeoutMs: 1000,
  monElectionDeferExtraMs: 200,
  monProbeTimeoutMs: 500,
  // Ceph's elector options scaled as the election timeout is (1 s for Ceph's 5): a dead link is
  // noticed in 0.4–0.6 s, before an election times out, as Ceph's 2 s ping timeout is before 5 s.
  monElectorPingTimeoutMs: 400,
  monElectorPingDivisor: 2,
  monConTrackerScoreHalflifeS: 8640,
  monConTrackerPersistInterval: 10,
  monElectorIgnoreProposeMargin: 0.0005,
  paxosMaxJoinDrift: 10,
  paxosProposeIntervalMs: 0,
  paxosProposeGatherMs: 8,
  paxosMin: 500,
  paxosTrimMin: 250,
  paxosTrimMax: 500,
  paxosServiceTrimMin: 250,
  paxosServiceTrimMax: 500,
  monConfigKeyMaxEntrySizeBytes: 64 * 1024,
  monClockDriftAllowedMs: 50,
  monTickIntervalMs: 1000,
  monSyncTimeoutMs: 10_000,
  monSyncMaxPayloadSizeBytes: 1024 * 1024,
  monSyncMaxPayloadKeys: 2000,
  monSessionAnswersMax: 262_144,
  monClientDeadlineMaxMs: 300_000,
};

export const cephDefaults: MonConfig = {
  monLeaseMs: 5000,
  monLeaseRenewIntervalFactor: 0.6,
  monLeaseAckTimeoutFactor: 2,
  monAcceptTimeoutFactor: 2,
  monElectionTimeoutMs: 5000,
  monElectionDeferExtraMs: 1000,
  monProbeTimeoutMs: 2000,
  monElectorPingTimeoutMs: 2000,
  monElectorPingDivisor: 2,
  monConTrackerScoreHalflifeS: 43200,
  monConTrackerPersistInterval: 10,
  monElectorIgnoreProposeMargin: 0.0005,
  paxosMaxJoinDrift: 10,
  paxosProposeIntervalMs: 1000,
  paxosProposeGatherMs: 0,
  paxosMin: 500,
  paxosTrimMin: 250,
  paxosTrimMax: 500,
  paxosServiceTrimMin: 250,
  paxosServiceTrimMax: 500,
  monConfigKeyMaxEntrySizeBytes: 64 * 1024,
  monClockDriftAllowedMs: 50,
  monTickIntervalMs: 5000,
  monSyncTimeoutMs: 60_000,
  monSyncMaxPayloadSizeBytes: 1024 * 1024,
  monSyncMaxPayloadKeys: 2000,
  monSessionAnswersMax: 262_144,
  monClientDeadlineMaxMs: 300_000,
};

/** Ceph option name (`mon_lease`) → field, for `--set mon_lease=5` style overrides (seconds, as Ceph). */
export const cephOptionNames: Record<string, { field: keyof MonConfig; seconds: boolean }> = {
  mon_lease: { field: 'monLeaseMs', seconds: true },
  mon_lease_renew_interval_factor: { field: 'monLeaseRenewIntervalFactor', seconds: false },
  mon_lease_ack_timeout_factor: { field: 'monLeaseAckTimeoutFactor', seconds: false },
  mon_accept_timeout_factor: { field: 'monAcceptTimeoutFactor', seconds: false },
  mon_election_timeout: { field: 'monElectionTimeoutMs', seconds: true },
  mon_probe_timeout: { field: 'monProbeTimeoutMs', seconds: true },
  mon_elector_ping_timeout: { field: 'monElectorPingTimeoutMs', seconds: true },
  mon_elector_ping_divisor: { field: 'monElectorPingDivisor', seconds: false },
  mon_con_tracker_score_halflife: { field: 'monConTrackerScoreHalflifeS', seconds: false },
  mon_con_tracker_persist_interval: { field: 'monConTrackerPersistInterval', seconds: false },
  mon_elector_ignore_propose_margin: { field: 'monElectorIgnoreProposeMargin', seconds: false },
  paxos_max_join_drift: { field: 'paxosMaxJoinDrift', seconds: false },
  paxos_propose_interval: { field: 'paxosProposeIntervalMs', seconds: true },
  paxos_propose_gather: { field: 'paxosProposeGatherMs', seconds: true },
  paxos_min: { field: 'paxosMin', seconds: false },
  paxos_trim_min: { field: 'paxosTrimMin', seconds: false },
  paxos_trim_max: { field: 'paxosTrimMax', seconds: false },
  paxos_service_trim_min: { field: 'paxosServiceTrimMin', seconds: false },
  paxos_service_trim_max: { field: 'paxosServiceTrimMax', seconds: false },
  mon_config_key_max_entry_size: { field: 'monConfigKeyMaxEntrySizeBytes', seconds: false },
  mon_clock_drift_allowed: { field: 'monClockDriftAllowedMs', seconds: true },
  mon_tick_interval: { field: 'monTickIntervalMs', seconds: true },
  mon_sync_timeout: { field: 'monSyncTimeoutMs', seconds: true },
  mon_sync_max_payload_size: { field: 'monSyncMaxPayloadSizeBytes', seconds: false },
  mon_sync_max_payload_keys: { field: 'monSyncMaxPayloadKeys', seconds: false },
  mon_session_answers_max: { field: 'monSessionAnswersMax', seconds: false },
  mon_client_deadline_max: { field: 'monClientDeadlineMaxMs', seconds: true },
};

const timerMsMax = 2 ** 31 - 1;

/** Parse `name=value` overrides in Ceph's units into a config; returns a reason on error. */
export function applyCephOptions(base: MonConfig, pairs: string[]): MonConfig | string {
  const config = { ...base };
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return `option '${pair}' is not name=value`;
    const name = pair.slice(0, eq).replace(/-/g, '_');
    const option = cephOptionNames[name];
    if (!option) return `unknown option '${name}' (known: ${Object.keys(cephOptionNames).join(', ')})`;
    const text = pair.slice(eq + 1).trim();
    const value = Number(text);
    if (text === '' || !Number.isFinite(value) || value < 0)
      return `option '${name}' needs a non-negative number`;
    const converted = option.seconds ? Math.round(value * 1000) : value;
    // A timer longer than a timer can be (2^31 - 1 ms, about 24.8 days) fires at once, every time.
    if (option.seconds && converted > timerMsMax)
      return `option '${name}' is at most ${timerMsMax / 1000} seconds`;
    if (integerOptions.has(name) && !Number.isInteger(converted))
      return `option '${name}' needs a whole number`;
    config[option.field] = converted;
  }
  return unworkable(config);
}

/** Options that count things (versions, keys, bytes): a fraction of one means nothing. */
const integerOptions = new Set([
  'mon_elector_ping_divisor',
  'mon_con_tracker_persist_interval',
  'paxos_max_join_drift',
  'paxos_min',
  'paxos_trim_min',
  'paxos_trim_max',
  'paxos_service_trim_min',
  'paxos_service_trim_max',
  'mon_config_key_max_entry_size',
  'mon_sync_max_payload_size',
  'mon_sync_max_payload_keys',
  'mon_session_answers_max',
]);

/**
 * Values that parse but cannot work, refused before a monitor runs with them (issue 13): each
 * check names the option and what would happen. Checked on the whole result, since some bounds
 * relate two options.
 */
function unworkable(config: MonConfig): MonConfig | string {
  const positive: [string, number, string][] = [
    ['mon_lease', config.monLeaseMs, 'a zero lease expires as it is granted: no quorum ever forms'],
    [
      'mon_election_timeout',
      config.monElectionTimeoutMs,
      'an election would end before any ack could arrive',
    ],
    ['mon_probe_timeout', config.monProbeTimeoutMs, 'probing would restart before any reply could arrive'],
    ['mon_elector_ping_timeout', config.monElectorPingTimeoutMs, 'every link would be reported dead at once'],
    ['mon_elector_ping_divisor', config.monElectorPingDivisor, 'pings would never be sent'],
    ['mon_con_tracker_score_halflife', config.monConTrackerScoreHalflifeS, 'scores would have no half-life'],
    [
      'mon_con_tracker_persist_interval',
      config.monConTrackerPersistInterval,
      'scores would never be written',
    ],
    ['mon_tick_interval', config.monTickIntervalMs, 'a zero tick spins the monitor'],
    ['mon_sync_timeout', config.monSyncTimeoutMs, 'every sync step would time out at once'],
    ['mon_accept_timeout_factor', config.monAcceptTimeoutFactor, 'collect and begin would time out at once'],
    ['mon_sync_max_payload_size', config.monSyncMaxPayloadSizeBytes, 'a sync chunk could carry nothing'],
    ['mon_sync_max_payload_keys', config.monSyncMaxPayloadKeys, 'a sync chunk could carry no key'],
    ['mon_session_answers_max', config.monSessionAnswersMax, 'every update would be answered EAGAIN'],
    ['mon_client_deadline_max', config.monClientDeadlineMaxMs, "every update's deadline would be refused"],
  ];
  for (const [name, value, why] of positive) {
    if (!(value > 0)) return `option '${name}' must be more than 0 (${why})`;
  }
  const factor = config.monLeaseRenewIntervalFactor;
  if (!(factor > 0 && factor < 1)) {
    return `option 'mon_lease_renew_interval_factor' must be more than 0 and less than 1 (${
      factor <= 0
        ? 'the leader would renew its lease continuously'
        : 'the lease would expire before it is renewed'
    })`;
  }
  if (config.monLeaseMs * factor < 1) {
    return `option 'mon_lease_renew_interval_factor' makes the renew interval (mon_lease × factor) less than 1 ms`;
  }
  if (!(config.monLeaseAckTimeoutFactor > factor)) {
    return `option 'mon_lease_ack_timeout_factor' must be more than mon_lease_renew_interval_factor (${factor}): a peon would give up on its lease before the next renewal`;
  }
  return config;
}
