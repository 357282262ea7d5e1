// The Elector: Ceph's ElectionLogic (src/mon/ElectionLogic.cc, seed 003) and Elector's pinging
// (src/mon/Elector.cc) as a child actor of the monitor. States mirror the logic's modes: `stable`
// (even epoch, nothing to do), `electingMe` (proposed myself, collecting acks), `deferring` (acked
// a better monitor, waiting for its victory). The election epoch is persisted on every bump
// through the I/O actor, and the messages of that step are sent only after it is durable.
//
// Three strategies, the monmap's `election_strategy`, as Ceph has them (ElectionLogic.h):
//   classic       the lowest rank wins (propose_classic_handler)
//   disallow      the lowest rank not in the monmap's disallowed_leaders wins; nobody acks a
//                 disallowed proposer (propose_disallow_handler, victory_makes_sense)
//   connectivity  the monitor whose links the others score highest wins, ties to the lower rank;
//                 disallowed monitors score −1 (propose_connectivity_handler). Scores come from
//                 pings on the elector's own timer (machines/connection-tracker.ts).
//
// Parent protocol (what the monitor sees): `elector.join_election` (an epoch bump pulled me into
// an election: Monitor::join_election), `elector.win`, `elector.lose`, `elector.reset_election`
// (deferred but nobody won and I never joined a quorum: Monitor::bootstrap), `elector.epoch`.
import { assign, enqueueActions, sendParent, setup } from 'xstate';
import type {
  ElectionStrategy,
  EntityName,
  Message,
  MonElection,
  MonMap,
  MonPing,
} from '../transport/messages.ts';
import { defaultConfig } from './config.ts';
import {
  type ConnectionTracker,
  createTracker,
  dumpTracker,
  increaseEpoch,
  receivePeerReport,
  remapTracker,
  reportConnection,
  resetTracker,
  totalScore,
} from './connection-tracker.ts';
import {
  effects,
  type IoEffectsEvent,
  type MessageEvent,
  type Outgoing,
  type ReplyTarget,
  type StoreOp,
} from './effects.ts';

export interface ElectorInput {
  rank: number;
  monmap: MonMap;
  /** The persisted election_epoch (0 when never written). */
  persistedEpoch: number;
  /** Monitor::has_ever_joined: decides between restarting an election and bootstrapping on expiry. */
  hasEverJoined: boolean;
  electionTimeoutMs: number;
  deferExtraMs: number;
  /** The scores loaded from monitor/connectivity_scores (Elector's constructor), or none. */
  connectivityScores?: ConnectionTracker | null;
  /** The connectivity options (machines/config.ts); paxmon's defaults when left out. */
  tracking?: Partial<TrackingOptions>;
}

/** Ceph's elector options for connectivity (mon_elector_ping_timeout, …), in paxmon's units. */
export interface TrackingOptions {
  pingTimeoutMs: number;
  pingDivisor: number;
  halfLifeS: number;
  persistInterval: number;
  ignoreProposeMargin: number;
}

export const defaultTracking: TrackingOptions = {
  pingTimeoutMs: defaultConfig.monElectorPingTimeoutMs,
  pingDivisor: defaultConfig.monElectorPingDivisor,
  halfLifeS: defaultConfig.monConTrackerScoreHalflifeS,
  persistInterval: defaultConfig.monConTrackerPersistInterval,
  ignoreProposeMargin: defaultConfig.monElectorIgnoreProposeMargin,
};

/**
 * Elector's pinging of one peer (live_pinging / dead_pinging, peer_acked_ping, peer_sent_ping).
 * Times are the elector's own clock: the ping timer's ticks, in milliseconds (`pingNowMs`).
 */
export interface PeerPing {
  rank: number;
  live: boolean;
  /** Stamp of the newest ping answered (or when pinging began, or the last dead report). */
  ackedAt: number;
  /** Stamp of the newest ping sent. */
  sentAt: number;
  /** While dead: when the next dead report is due (Elector::dead_ping every ping timeout). */
  deadNextAt: number;
}

export interface ElectorContext {
  rank: number;
  monmap: MonMap;
  epoch: number;
  /** Ranks that acked my proposal (acked_me). */
  ackedMe: number[];
  /** Rank I deferred to, or -1 (leader_acked). */
  leaderAcked: number;
  /** The quorum of the last completed election, for is_current_member(). Cleared on reset. */
  quorum: number[];
  hasEverJoined: boolean;
  electionTimeoutMs: number;
  deferExtraMs: number;
  /** Ranks that nak'ed my proposal (strategy mismatch); reported for diagnosis. */
  nakedBy: number[];
  /** Whether this elector stood since it started: acks it could hold exist only after that. */
  stoodSinceInit: boolean;
  /** Ranks whose session was lost and not heard from since (the monitor tells). */
  downRanks: number[];
  /** My ConnectionTracker (Elector::peer_tracker): my links' scores and the newest of everyone's. */
  tracker: ConnectionTracker;
  /** The scores frozen when this election started (ElectionLogic::stable_peer_tracker). */
  stableTracker: ConnectionTracker | null;
  /** The scores the monitor I acked proposed with (ElectionLogic::leader_peer_tracker). */
  leaderTracker: ConnectionTracker | null;
  /** ElectionLogic::last_election_winner / last_voted_for, for the anti-flap filter. */
  lastElectionWinner: number;
  lastVotedFor: number;
  /** The peers being pinged (connectivity only). */
  pings: PeerPing[];
  /** The elector's clock: the ping timer's ticks so far × its interval, in ms. */
  pingNowMs: number;
  /** The ping timer is armed (it re-arms itself while the strategy is connectivity). */
  pingTimerArmed: boolean;
  tracking: TrackingOptions;
}

export type ElectorEvent =
  /** Monitor::start_election → Elector::call_election. */
  | { type: 'elector.start' }
  /** Monitor bootstrap: stop any timer, forget the quorum; the epoch stays. */
  | { type: 'elector.reset' }
  /** A new monmap (after bootstrap adopted one); ranks may have moved. */
  | { type: 'elector.monmap'; monmap: MonMap; rank: number }
  /** The monitor joined a quorum (as leader or peon) at least once. */
  | { type: 'elector.joined' }
  /** Monitors known down (their session reset and they have not spoken since). */
  | { type: 'elector.down'; ranks: number[] }
  /** `connection scores reset` (Elector::notify_clear_peer_state). */
  | { type: 'elector.scores_reset' }
  /** `connection scores dump` (Elector::dump_connection_scores): answered to `target`. */
  | { type: 'elector.scores_dump'; target: ReplyTarget }
  /** Internal: the ping timer (Elector::ping_check every ping timeout / divisor). */
  | { type: 'elector.ping_tick' }
  | MessageEvent<MonElection>
  | MessageEvent<MonPing>
  /** Internal: a receive_* step moved the elector (raised by dispatch). */
  | { type: 'elector.goto.stable' }
  | { type: 'elector.goto.electingMe' }
  | { type: 'elector.goto.deferring' };

export type ElectorParentEvent =
  | { type: 'elector.join_election'; epoch: number }
  | { type: 'elector.win'; epoch: number; quorum: number[] }
  | { type: 'elector.lose'; epoch: number; quorum: number[]; leader: number }
  | { type: 'elector.reset_election' }
  | { type: 'elector.epoch'; epoch: number };

export const monName = (monmap: MonMap, rank: number): EntityName => `mon.${monmap.mons[rank]?.name ?? '?'}`;

export function rankOf(monmap: MonMap, entity: EntityName): number {
  if (!entity.startsWith('mon.')) return -1;
  const name = entity.slice(4);
  return monmap.mons.findIndex((m) => m.name === name);
}

const isConnectivity = (context: ElectorContext) => context.monmap.electionStrategy === 'connectivity';

/**
 * The elector's disallowed set (Monitor::set_elector_disallowed_leaders): the monmap's
 * disallowed_leaders, by rank. It counts under disallow and connectivity; classic ignores it.
 */
export function disallowedRanks(monmap: MonMap): number[] {
  if (monmap.electionStrategy === 'classic') return [];
  return monmap.mons.filter((m) => monmap.disallowedLeaders.includes(m.name)).map((m) => m.rank);
}

const isDisallowed = (context: ElectorContext, rank: number) =>
  disallowedRanks(context.monmap).includes(rank);

/**
 * ElectionLogic::connectivity_election_score: −1 for a disallowed monitor, else its total score in
 * the scores frozen for this election (or the live ones before any election).
 */
export function electionScore(context: ElectorContext, rank: number): number {
  if (isDisallowed(context, rank)) return -1;
  return totalScore(context.stableTracker ?? context.tracker, rank).score;
}

function electionMessage(
  context: ElectorContext,
  op: MonElection['op'],
  epoch: number,
  quorum: number[] = [],
  sharing?: ConnectionTracker,
): MonElection {
  const msg: MonElection = {
    type: 'mon.election',
    op,
    fsid: context.monmap.fsid,
    epoch,
    monmapEpoch: context.monmap.epoch,
    quorum,
    strategy: context.monmap.electionStrategy as ElectionStrategy,
  };
  // Every election message carries my scores (Elector.cc: peer_tracker.get_encoded_bl()); a
  // propose also the snapshot it was made with (sharing_bl). Only under connectivity, the one
  // strategy that reads them.
  if (isConnectivity(context)) {
    msg.scoring = context.tracker;
    if (sharing) msg.sharing = sharing;
  }
  return msg;
}

function to(context: ElectorContext, rank: number, msg: Message): Outgoing {
  const mon = context.monmap.mons[rank];
  return mon ? { to: `mon.${mon.name}`, addr: mon.addr, msg } : { to: `mon.?`, msg };
}

/** The store key Ceph keeps the scores under (Elector::persist_connectivity_scores). */
export const connectivityScoresKey = { prefix: 'monitor', key: 'connectivity_scores' } as const;

const scoresWrite = (tracker: ConnectionTracker): StoreOp => ({
  op: 'put',
  ...connectivityScoresKey,
  value: JSON.stringify(tracker),
});

/** Elector::persist_epoch: the epoch, and (connectivity) the scores with it. */
function persistEpoch(context: ElectorContext, epoch: number): StoreOp[] {
  const writes: StoreOp[] = [{ op: 'put_number', prefix: 'monitor', key: 'election_epoch', value: epoch }];
  if (isConnectivity(context)) writes.push(scoresWrite(context.tracker));
  return writes;
}

/**
 * ElectionLogic::init: read the persisted epoch; an odd one means we died mid-election, so move
 * to the next even epoch (the election we were in cannot complete with us any more).
 */
export function initialEpoch(persisted: number): number {
  if (persisted === 0) return 1;
  return persisted % 2 === 1 ? persisted + 1 : persisted;
}

type Step = {
  context: Partial<ElectorContext>;
  io?: IoEffectsEvent;
  parent: ElectorParentEvent[];
  /** Which state to be in after the step; undefined keeps the current one (and its timer). */
  next?: 'stable' | 'electingMe' | 'deferring';
};

const nothing = (): Step => ({ context: {}, parent: [] });

/** The next odd epoch after `epoch` (a fresh election: paxmon never reuses an odd epoch). */
const nextOdd = (epoch: number) => epoch + (epoch % 2 === 0 ? 1 : 2);

/**
 * ElectionLogic::start: bump to an odd epoch, ack myself, propose to everybody.
 *
 * paxmon departs from Ceph here: Ceph starts in the current epoch when it is already odd, so
 * acks given earlier in that epoch still count — a monitor paused holding a majority of them
 * declares victory for the same even epoch as the one that won meanwhile (two leaders in one
 * epoch; found by the simulator). A new election therefore always takes a fresh odd epoch,
 * where no earlier ack is valid. `keepEpoch` is for joining an election whose (odd) epoch was
 * just adopted from a peer's message: that election is the one to stand in.
 */
function start(context: ElectorContext, keepEpoch = false): Step {
  let epoch = context.epoch;
  const parent: ElectorParentEvent[] = [];
  // Acks live in memory only: the first election after start-up cannot meet a stale one.
  if (epoch % 2 === 0 || (!keepEpoch && context.stoodSinceInit)) {
    epoch = nextOdd(epoch);
    parent.push({ type: 'elector.join_election', epoch }, { type: 'elector.epoch', epoch });
  }
  // The scores this election is decided on are frozen now and sent with the propose
  // (reset_stable_tracker; propose_to_peers' sharing_bl).
  const tracker = increaseEpoch(context.tracker, epoch);
  const c: ElectorContext = { ...context, epoch, tracker, stableTracker: tracker };
  if (context.monmap.mons.length === 1 && context.rank === 0) {
    // Monitor::win_standalone_election: alone in the monmap, the election is won at once.
    const victory = declareVictory({ ...c, ackedMe: [context.rank] });
    return {
      ...victory,
      io: effects([...persistEpoch(c, epoch), ...(victory.io?.writes ?? [])], victory.io?.messages ?? []),
      parent: [...parent, ...victory.parent],
    };
  }
  const messages = context.monmap.mons
    .filter((m) => m.rank !== context.rank)
    .map((m) => to(c, m.rank, electionMessage(c, 'propose', epoch, [], tracker)));
  return {
    context: {
      epoch,
      tracker,
      stableTracker: tracker,
      leaderTracker: null,
      ackedMe: [context.rank],
      leaderAcked: -1,
      nakedBy: [],
      stoodSinceInit: true,
    },
    io: effects(persistEpoch(c, epoch), messages),
    parent,
    next: 'electingMe',
  };
}

/**
 * ElectionLogic::bump_epoch: adopt a higher epoch, persist it, drop whatever I was doing. The
 * scores are frozen again for the new epoch (connectivity_bump_epoch_in_election; every bump in
 * Ceph is followed or preceded by one). paxmon also forgets whom it acked: an ack is never carried
 * into another epoch.
 */
function bump(context: ElectorContext, epoch: number): Step {
  const tracker = increaseEpoch(context.tracker, epoch);
  const c = { ...context, tracker };
  return {
    context: { epoch, ackedMe: [], leaderAcked: -1, leaderTracker: null, tracker, stableTracker: tracker },
    io: effects(persistEpoch(c, epoch), []),
    parent: [
      { type: 'elector.join_election', epoch },
      { type: 'elector.epoch', epoch },
    ],
    next: 'stable',
  };
}

/** Compose two steps: the second sees the first's context. */
function then(first: Step, context: ElectorContext, second: (c: ElectorContext) => Step): Step {
  const merged = { ...context, ...first.context };
  const s = second(merged);
  const writes = [...(first.io?.writes ?? []), ...(s.io?.writes ?? [])];
  const messages = [...(first.io?.messages ?? []), ...(s.io?.messages ?? [])];
  const step: Step = {
    context: { ...first.context, ...s.context },
    parent: [...first.parent, ...s.parent],
  };
  if (writes.length || messages.length) {
    // Writes of scores alone need no fsync of their own (see pingStep); any other write does.
    const writers = [first.io, s.io].filter((io) => io && io.writes.length > 0);
    const applied = writers.length > 0 && writers.every((io) => io?.durability === 'applied');
    step.io = effects(writes, messages, undefined, applied ? { durability: 'applied' } : {});
  }
  const next = s.next ?? first.next;
  if (next) step.next = next;
  return step;
}

/** ElectionLogic::defer: ack `rank` and give it the election timeout plus a little to declare victory. */
function defer(context: ElectorContext, rank: number, leaderTracker: ConnectionTracker | null = null): Step {
  return {
    context: { ackedMe: [], leaderAcked: rank, leaderTracker },
    io: effects([], [to(context, rank, electionMessage(context, 'ack', context.epoch))]),
    parent: [],
    next: 'deferring',
  };
}

/** ElectionLogic::declare_victory: even epoch, tell the acked monitors, hand the quorum to the monitor. */
function declareVictory(context: ElectorContext): Step {
  const quorum = [...context.ackedMe].sort((a, b) => a - b);
  const epoch = context.epoch + 1;
  const tracker = increaseEpoch(context.tracker, epoch);
  const c = { ...context, tracker };
  const messages = quorum
    .filter((r) => r !== context.rank)
    .map((r) => to(c, r, electionMessage(c, 'victory', epoch, quorum)));
  return {
    context: {
      epoch,
      ackedMe: [],
      leaderAcked: -1,
      quorum,
      hasEverJoined: true,
      // clear_live_election_state; last_election_winner / last_voted_for are me.
      tracker,
      stableTracker: tracker,
      leaderTracker: null,
      lastElectionWinner: context.rank,
      lastVotedFor: context.rank,
    },
    io: effects(persistEpoch(c, epoch), messages),
    parent: [
      { type: 'elector.epoch', epoch },
      { type: 'elector.win', epoch, quorum },
    ],
    next: 'stable',
  };
}

/**
 * ElectionLogic::propose_classic_prefix, the epoch handling every strategy shares: a newer epoch
 * is adopted; an older propose from outside a stable quorum is a monitor that just started, so a
 * new election is called (paxmon then goes on to weigh the proposer in it, see the callers);
 * any other older propose is dropped (`done`).
 */
function proposePrefix(
  context: ElectorContext,
  from: number,
  msg: MonElection,
  electingMe: boolean,
): { step: Step; c: ElectorContext; electingMe: boolean } | { done: Step } {
  if (msg.epoch > context.epoch) {
    const step = bump(context, msg.epoch);
    return { step, c: { ...context, ...step.context }, electingMe: false };
  }
  if (msg.epoch < context.epoch) {
    if (context.epoch % 2 === 0 && !context.quorum.includes(from)) {
      const step = start(context);
      return { step, c: { ...context, ...step.context }, electingMe: true };
    }
    return { done: nothing() };
  }
  return { step: nothing(), c: context, electingMe };
}

/** ElectionLogic::receive_propose: the strategy's handler. */
function receivePropose(context: ElectorContext, from: number, msg: MonElection, electingMe: boolean): Step {
  if (context.monmap.electionStrategy === 'connectivity')
    return proposeConnectivity(context, from, msg, electingMe);
  const prefix = proposePrefix(context, from, msg, electingMe);
  if ('done' in prefix) return prefix.done;
  return rankDecision(context, prefix.step, prefix.c, from, prefix.electingMe);
}

/**
 * propose_classic_handler and propose_disallow_handler: the lower rank wins, a disallowed
 * monitor never does (disallow). When both are disallowed neither wins: nobody acks a
 * disallowed proposer, so a disallowed monitor can only ever hold its own ack.
 */
function rankDecision(
  context: ElectorContext,
  step: Step,
  c: ElectorContext,
  from: number,
  electingMe: boolean,
): Step {
  const meDisallowed = isDisallowed(c, c.rank);
  const fromDisallowed = isDisallowed(c, from);
  const myWin = !meDisallowed && (c.rank < from || fromDisallowed);
  const theirWin = !fromDisallowed && (c.rank > from || meDisallowed);
  if (myWin) {
    // I would win over them: if I already acked someone, that one wins over them too. Stand in
    // the proposer's epoch (Ceph's handler → trigger_new_election → start()).
    if (c.leaderAcked < 0 && !electingMe) return then(step, context, (cc) => start(cc, true));
    return step;
  }
  if (!theirWin) return step;
  // They would win over me: ack unless I acked someone even better.
  if (c.leaderAcked < 0 || c.leaderAcked === from) return then(step, context, (cc) => defer(cc, from));
  if (from < c.leaderAcked) return switchAck(step, context, (cc) => defer(cc, from));
  return step;
}

/**
 * Switching my ack to a better proposer. Ceph acks it in the same epoch, so the monitor I acked
 * first may still count my ack and win that epoch too (two leaders in one epoch; the simulator
 * finds it). paxmon acks at most one proposer per epoch: the switch moves me to the next odd
 * epoch, where the better one collects acks afresh.
 */
function switchAck(step: Step, context: ElectorContext, after: (c: ElectorContext) => Step): Step {
  const moved = then(step, context, (cc) => bump(cc, nextOdd(cc.epoch)));
  return then(moved, context, after);
}

/** ElectionLogic::propose_connectivity_handler. */
function proposeConnectivity(
  context: ElectorContext,
  from: number,
  msg: MonElection,
  electingMe: boolean,
): Step {
  const c0 = context;
  // The anti-flap filter: a stable monitor that did not win the last election ignores a propose
  // from outside its quorum unless the best score now beats its last vote's by
  // mon_elector_ignore_propose_margin (the leader still answers it: it calls an election).
  if (c0.epoch % 2 === 0 && c0.lastElectionWinner !== c0.rank && !c0.quorum.includes(from)) {
    let bestScorer = 0;
    let bestScore = 0;
    let lastVotedForScore = 0;
    for (let rank = 0; rank < c0.monmap.mons.length; rank++) {
      const score = electionScore(c0, rank);
      if (score > bestScore) {
        bestScorer = rank;
        bestScore = score;
      }
      if (c0.lastVotedFor >= 0 && rank === c0.lastVotedFor) lastVotedForScore = score;
    }
    if (bestScorer === c0.lastVotedFor || bestScore - lastVotedForScore < c0.tracking.ignoreProposeMargin)
      return nothing();
  }
  const prefix = proposePrefix(context, from, msg, electingMe);
  if ('done' in prefix) return prefix.done;
  return connectivityDecision(context, prefix.step, prefix.c, from, msg, prefix.electingMe);
}

/** A propose that came without scores (sharing) counts as one whose scores are all 0. */
const emptyTracker = (c: ElectorContext): ConnectionTracker => ({
  rank: 0,
  epoch: 0,
  version: 0,
  halfLife: c.tracking.halfLifeS,
  reports: [],
});

/** The score comparison of propose_connectivity_handler (ties go to the lower rank). */
function connectivityDecision(
  context: ElectorContext,
  step: Step,
  c: ElectorContext,
  from: number,
  msg: MonElection,
  electingMe: boolean,
): Step {
  const me = c.rank;
  const myScore = electionScore(c, me);
  const fromScore = electionScore(c, from);
  const leaderScore = c.leaderAcked >= 0 ? electionScore(c, c.leaderAcked) : -1;
  const myWin = myScore >= 0 && ((me < from && myScore >= fromScore) || myScore > fromScore);
  const theirWin =
    fromScore >= 0 &&
    ((from < me && fromScore >= myScore) || fromScore > myScore) &&
    ((from <= c.leaderAcked && fromScore >= leaderScore) || fromScore > leaderScore);
  if (myWin) {
    if (c.leaderAcked < 0 && !electingMe) return then(step, context, (cc) => start(cc, true));
    return step;
  }
  if (!theirWin && from !== c.leaderAcked) return step;
  const sharing = msg.sharing ?? emptyTracker(c);
  if (c.leaderAcked < 0 || from === c.leaderAcked)
    return then(step, context, (cc) => defer(cc, from, sharing));
  // I acked another monitor: switch only if that monitor's own scores (its propose's) say it
  // would defer to `from` too, so deference stays transitive. paxmon's switch moves to the next
  // odd epoch (switchAck), whose scores are frozen afresh: `from` is weighed again there.
  const leaderScores = c.leaderTracker ?? emptyTracker(c);
  const better = (t: ConnectionTracker) => {
    const f = totalScore(t, from).score;
    const l = totalScore(t, c.leaderAcked).score;
    return (from < c.leaderAcked && f >= l) || f > l;
  };
  if (better(leaderScores))
    return switchAck(step, context, (cc) => connectivityDecision(cc, nothing(), cc, from, msg, false));
  // They should win by my current scores but my acked leader would not defer: score
  // disagreement, so a new election (Ceph: bump_epoch(epoch + 1); start()).
  if (better(c.tracker)) {
    const moved = then(step, context, (cc) => bump(cc, nextOdd(cc.epoch)));
    return then(moved, context, (cc) => start(cc, true));
  }
  return step;
}

/**
 * ElectionLogic::victory_makes_sense. Classic: any victory (Ceph asserts the winner has a lower
 * rank, which its rules make true). Disallow: the winner is allowed and has a lower rank, or I
 * am disallowed. Connectivity: the winner is allowed and scores at least as high as I do. paxmon
 * also refuses a disallowed winner under disallow and connectivity, which Ceph's rules only
 * make impossible.
 */
export function victoryMakesSense(context: ElectorContext, from: number): boolean {
  switch (context.monmap.electionStrategy) {
    case 'classic':
      return true;
    case 'disallow':
      return !isDisallowed(context, from) && (from < context.rank || isDisallowed(context, context.rank));
    case 'connectivity':
      return (
        !isDisallowed(context, from) && electionScore(context, from) >= electionScore(context, context.rank)
      );
  }
}

// --- pinging (Elector::begin_peer_ping, ping_check, dead_ping, handle_ping) ----------------------

const pingIntervalMs = (c: ElectorContext) =>
  Math.max(1, Math.round(c.tracking.pingTimeoutMs / Math.max(1, c.tracking.pingDivisor)));

interface PingDraft {
  tracker: ConnectionTracker;
  pings: PeerPing[];
  messages: Outgoing[];
  persist: boolean;
}

const draftOf = (c: ElectorContext): PingDraft => ({
  tracker: c.tracker,
  pings: c.pings.map((p) => ({ ...p })),
  messages: [],
  persist: false,
});

function report(c: ElectorContext, d: PingDraft, peer: number, alive: boolean, units: number): void {
  const r = reportConnection(d.tracker, peer, alive, units, c.tracking.persistInterval);
  d.tracker = r.tracker;
  if (r.persist) d.persist = true;
}

/** Elector::send_peer_ping: my clock's stamp and my scores. */
function sendPing(c: ElectorContext, d: PingDraft, ping: PeerPing): void {
  if (!c.monmap.mons[ping.rank]) return;
  ping.sentAt = c.pingNowMs;
  d.messages.push(to(c, ping.rank, { type: 'mon.ping', op: 'ping', stamp: c.pingNowMs, scoring: d.tracker }));
}

/** Elector::begin_peer_ping: a monitor I heard from is pinged from now on (it starts live). */
function beginPeerPing(c: ElectorContext, d: PingDraft, peer: number): void {
  if (peer === c.rank || !c.monmap.mons[peer]) return;
  let ping = d.pings.find((p) => p.rank === peer);
  if (ping?.live) return;
  report(c, d, peer, true, 0);
  if (!ping) {
    ping = { rank: peer, live: true, ackedAt: c.pingNowMs, sentAt: c.pingNowMs, deadNextAt: 0 };
    d.pings.push(ping);
    d.pings.sort((a, b) => a.rank - b.rank);
  }
  ping.live = true;
  ping.ackedAt = c.pingNowMs;
  sendPing(c, d, ping);
}

/**
 * The step of a ping draft: the new tracker and pings, the pings to send, and the scores written
 * every mon_con_tracker_persist_interval versions — with no fsync of their own (scores lost in a
 * crash are rebuilt by the next pings).
 */
function pingStep(d: PingDraft): Step {
  const step: Step = { context: { tracker: d.tracker, pings: d.pings }, parent: [] };
  if (d.persist || d.messages.length)
    step.io = effects(d.persist ? [scoresWrite(d.tracker)] : [], d.messages, undefined, {
      durability: 'applied',
    });
  return step;
}

/**
 * Elector::ping_check for every peer, on the elector's ping timer: a live peer that answered no
 * ping for mon_elector_ping_timeout is reported dead for the time since its last answer; one
 * whose newest ping was answered gets the next. A dead peer is reported dead again every ping
 * timeout (Elector::dead_ping) — and, unlike Ceph, pinged too, so that a healed link is noticed
 * without waiting for an election message from that peer.
 */
export function pingCheck(context: ElectorContext): Step {
  const c = { ...context, pingNowMs: context.pingNowMs + pingIntervalMs(context) };
  const d = draftOf(c);
  const now = c.pingNowMs;
  const timeout = c.tracking.pingTimeoutMs;
  for (const ping of d.pings) {
    if (ping.live) {
      if (now - ping.ackedAt > timeout) {
        report(c, d, ping.rank, false, (now - ping.ackedAt) / 1000);
        ping.ackedAt = now;
        ping.live = false;
        ping.deadNextAt = now + timeout;
        sendPing(c, d, ping);
      } else if (ping.ackedAt === ping.sentAt) {
        sendPing(c, d, ping);
      }
    } else if (now >= ping.deadNextAt) {
      report(c, d, ping.rank, false, (now - ping.ackedAt) / 1000);
      ping.ackedAt = now;
      ping.deadNextAt = now + timeout;
      sendPing(c, d, ping);
    }
  }
  const step = pingStep(d);
  step.context.pingNowMs = now;
  return step;
}

/**
 * Elector::handle_ping: begin pinging the sender, take its scores; answer a ping with my scores
 * (the reply echoes its stamp); a reply reports the link alive for the time since the previous
 * answered ping. Ceph also takes a ping's stamp, from the sender's clock, as an answer; paxmon
 * judges a link by the answers to its own pings only, on its own clock.
 */
function handlePing(context: ElectorContext, from: number, msg: MonPing): Step {
  const d = draftOf(context);
  if (msg.scoring) d.tracker = receivePeerReport(d.tracker, msg.scoring, context.monmap.mons.length);
  beginPeerPing(context, d, from);
  if (msg.op === 'ping') {
    d.messages.push(
      to(context, from, {
        type: 'mon.ping',
        op: 'reply',
        stamp: context.pingNowMs,
        echo: msg.stamp,
        scoring: d.tracker,
      }),
    );
  } else if (msg.echo !== undefined) {
    const ping = d.pings.find((p) => p.rank === from);
    // A reply newer than the newest ping sent is not one of mine (Ceph drops it too).
    if (ping && msg.echo <= ping.sentAt && msg.echo > ping.ackedAt) {
      report(context, d, from, true, (msg.echo - ping.ackedAt) / 1000);
      ping.ackedAt = msg.echo;
    }
  }
  return pingStep(d);
}

/** Elector::dispatch, under connectivity: take the sender's scores and begin pinging it. */
function assimilate(context: ElectorContext, from: number, msg: MonElection): Step {
  const d = draftOf(context);
  if (msg.scoring) d.tracker = receivePeerReport(d.tracker, msg.scoring, context.monmap.mons.length);
  beginPeerPing(context, d, from);
  return pingStep(d);
}

const armPing = (c: ElectorContext) => isConnectivity(c) && !c.pingTimerArmed;

export const electorMachine = setup({
  types: {
    context: {} as ElectorContext,
    events: {} as ElectorEvent,
    input: {} as ElectorInput,
  },
  delays: {
    electionTimeout: ({ context }) => context.electionTimeoutMs,
    deferTimeout: ({ context }) => context.electionTimeoutMs + context.deferExtraMs,
  },
  actions: {
    apply: enqueueActions(({ enqueue }, step: Step) => {
      if (Object.keys(step.context).length) enqueue.assign(step.context);
      if (step.io) enqueue.sendParent(step.io);
      for (const event of step.parent) enqueue.sendParent(event);
    }),
    dispatch: enqueueActions(({ enqueue }, step: Step) => {
      if (Object.keys(step.context).length) enqueue.assign(step.context);
      if (step.io) enqueue.sendParent(step.io);
      for (const event of step.parent) enqueue.sendParent(event);
      if (step.next) enqueue.raise({ type: `elector.goto.${step.next}` });
    }),
    /** Arm the ping timer (once; it re-arms itself while the strategy is connectivity). */
    armPingTimer: enqueueActions(({ enqueue, context }) => {
      if (!armPing(context)) return;
      enqueue.assign({ pingTimerArmed: true });
      enqueue.raise({ type: 'elector.ping_tick' }, { delay: pingIntervalMs(context), id: 'elector.ping' });
    }),
  },
  guards: {
    validElectionMessage: ({ context, event }) => {
      if (event.type !== 'mon.election') return false;
      // Elector::dispatch drops messages from another cluster, from monitors not in my map, and
      // with another strategy (a monitor that has not caught up with the monmap yet).
      if (event.msg.fsid !== context.monmap.fsid) return false;
      const from = rankOf(context.monmap, event.from);
      return from >= 0 && from !== context.rank;
    },
  },
}).createMachine({
  id: 'elector',
  context: ({ input }) => {
    const tracking = { ...defaultTracking, ...(input.tracking ?? {}) };
    const rank = Math.max(input.rank, 0);
    // The loaded scores are mine only if they were made at my rank (actors/monitor-state.ts
    // checks them); the half-life is always the configured one.
    const loaded = input.connectivityScores;
    const tracker =
      loaded && loaded.rank === rank
        ? { ...loaded, halfLife: tracking.halfLifeS }
        : createTracker(rank, tracking.halfLifeS);
    return {
      rank: input.rank,
      monmap: input.monmap,
      epoch: initialEpoch(input.persistedEpoch),
      ackedMe: [],
      leaderAcked: -1,
      quorum: [],
      hasEverJoined: input.hasEverJoined,
      electionTimeoutMs: input.electionTimeoutMs,
      deferExtraMs: input.deferExtraMs,
      nakedBy: [],
      stoodSinceInit: false,
      downRanks: [],
      tracker,
      stableTracker: null,
      leaderTracker: null,
      lastElectionWinner: -1,
      lastVotedFor: -1,
      pings: [],
      pingNowMs: 0,
      pingTimerArmed: false,
      tracking,
    };
  },
  entry: [
    // ElectionLogic::init persists the bumped epoch so a restart never reuses an election epoch.
    sendParent(({ context }) => effects(persistEpoch(context, context.epoch), [])),
    sendParent(({ context }) => ({ type: 'elector.epoch', epoch: context.epoch })),
    'armPingTimer',
  ],
  initial: 'stable',
  on: {
    'elector.reset': { target: '.stable', actions: assign({ quorum: [], ackedMe: [], leaderAcked: -1 }) },
    'elector.monmap': {
      target: '.stable',
      actions: [
        assign(({ context, event }) => {
          const rank = Math.max(event.rank, 0);
          // Ranks follow names into the new map (ConnectionTracker::notify_rank_removed /
          // notify_rank_changed); pinging starts over as peers are heard from.
          // A joining monitor (no rank before) has nothing of its own to carry over.
          const tracker =
            context.rank < 0
              ? createTracker(rank, context.tracking.halfLifeS, context.tracker.epoch)
              : remapTracker(context.tracker, context.monmap, event.monmap, rank);
          return {
            monmap: event.monmap,
            rank: event.rank,
            quorum: [],
            ackedMe: [],
            leaderAcked: -1,
            tracker,
            stableTracker: null,
            leaderTracker: null,
            lastElectionWinner: -1,
            lastVotedFor: -1,
            pings: [],
          };
        }),
        'armPingTimer',
      ],
    },
    'elector.joined': { actions: assign({ hasEverJoined: true }) },
    'elector.down': { actions: assign(({ event }) => ({ downRanks: event.ranks })) },
    // start() itself says where to go: electingMe, or stable after a standalone victory.
    'elector.start': { actions: { type: 'dispatch', params: ({ context }) => start(context) } },
    'elector.ping_tick': [
      {
        guard: ({ context }) => isConnectivity(context),
        actions: [
          { type: 'apply', params: ({ context }) => pingCheck(context) },
          enqueueActions(({ enqueue, context }) => {
            enqueue.raise(
              { type: 'elector.ping_tick' },
              { delay: pingIntervalMs(context), id: 'elector.ping' },
            );
          }),
        ],
      },
      // Another strategy now: the timer stops (armPingTimer starts it again if needed).
      { actions: assign({ pingTimerArmed: false, pings: [] }) },
    ],
    'mon.ping': {
      guard: ({ context, event }) => {
        const from = rankOf(context.monmap, event.from);
        return isConnectivity(context) && from >= 0 && from !== context.rank;
      },
      actions: {
        type: 'apply',
        params: ({ context, event }) =>
          handlePing(context, rankOf(context.monmap, event.from), (event as MessageEvent<MonPing>).msg),
      },
    },
    'elector.scores_dump': {
      actions: sendParent(({ context, event }) => {
        const { target } = event as Extract<ElectorEvent, { type: 'elector.scores_dump' }>;
        const answer = JSON.stringify(dumpTracker(context.tracker, context.tracking.persistInterval));
        return { ...effects([], []), replies: [{ target, reply: { r: 0, rs: '', data: answer } }] };
      }),
    },
    'elector.scores_reset': {
      actions: {
        type: 'apply',
        params: ({ context }) => {
          const tracker = resetTracker(context.tracker);
          return {
            context: { tracker },
            io: effects([scoresWrite(tracker)], [], undefined, { durability: 'applied' }),
            parent: [],
          };
        },
      },
    },
    // Every start() and defer() re-arms the election timer (Elector::reset_timer): a transition
    // from the root to a child state exits and re-enters that child, restarting its `after`
    // delay. (`reenter: true` here would re-enter the root itself.)
    'elector.goto.stable': { target: '.stable' },
    'elector.goto.electingMe': { target: '.electingMe' },
    'elector.goto.deferring': { target: '.deferring' },
  },
  states: {
    stable: {
      on: {
        'mon.election': {
          guard: 'validElectionMessage',
          actions: {
            type: 'dispatch',
            params: ({ context, event }) => dispatchStep(context, event as MessageEvent<MonElection>, false),
          },
        },
      },
    },
    electingMe: {
      after: {
        // ElectionLogic::end_election_period: a majority of acks wins; otherwise start again (or
        // bootstrap if I never joined a quorum: my view of the cluster may be wrong).
        electionTimeout: [
          {
            guard: ({ context }) => context.ackedMe.length > Math.floor(context.monmap.mons.length / 2),
            target: 'stable',
            actions: { type: 'apply', params: ({ context }) => declareVictory(context) },
          },
          {
            guard: ({ context }) => context.hasEverJoined,
            target: 'electingMe',
            reenter: true,
            actions: { type: 'apply', params: ({ context }) => start(context) },
          },
          { target: 'stable', actions: sendParent({ type: 'elector.reset_election' }) },
        ],
      },
      on: {
        'mon.election': {
          guard: 'validElectionMessage',
          actions: {
            type: 'dispatch',
            params: ({ context, event }) => dispatchStep(context, event as MessageEvent<MonElection>, true),
          },
        },
        'elector.down': [
          {
            guard: ({ context, event }) => allAcked({ ...context, downRanks: event.ranks }),
            target: 'stable',
            actions: {
              type: 'apply',
              params: ({ context, event }) => {
                const downRanks = (event as { ranks: number[] }).ranks;
                const victory = declareVictory({ ...context, downRanks });
                return { ...victory, context: { ...victory.context, downRanks } };
              },
            },
          },
          { actions: assign(({ event }) => ({ downRanks: event.ranks })) },
        ],
      },
    },
    deferring: {
      after: {
        deferTimeout: [
          {
            guard: ({ context }) => context.hasEverJoined,
            target: 'electingMe',
            actions: { type: 'apply', params: ({ context }) => start(context) },
          },
          { target: 'stable', actions: sendParent({ type: 'elector.reset_election' }) },
        ],
      },
      on: {
        'mon.election': {
          guard: 'validElectionMessage',
          actions: {
            type: 'dispatch',
            params: ({ context, event }) => dispatchStep(context, event as MessageEvent<MonElection>, false),
          },
        },
      },
    },
  },
});

/**
 * Elector::dispatch for one valid message: the step it causes (pure). A step that moves the
 * elector raises `elector.goto.*` (see the `dispatch` action) rather than guards per case, so the
 * Ceph logic reads as one function per message, like ElectionLogic's receive_* methods.
 */
export function dispatchStep(
  context: ElectorContext,
  event: MessageEvent<MonElection>,
  electingMe: boolean,
): Step {
  const from = rankOf(context.monmap, event.from);
  const msg = event.msg;
  if (msg.strategy !== context.monmap.electionStrategy) {
    // Ceph drops a strategy mismatch; paxmon also tells the proposer (nak) so the operator sees
    // why a monitor never joins: one of the two runs with an older monmap.
    if (msg.op !== 'propose') return nothing();
    return {
      context: {},
      parent: [],
      io: effects([], [to(context, from, electionMessage(context, 'nak', context.epoch))]),
    };
  }
  if (isConnectivity(context)) {
    // Scores first, then the message (Elector::dispatch: assimilate_connection_reports,
    // begin_peer_ping, then handle_*).
    const taken = assimilate(context, from, msg);
    return then(taken, context, (c) => receive(c, from, msg, electingMe));
  }
  return receive(context, from, msg, electingMe);
}

function receive(context: ElectorContext, from: number, msg: MonElection, electingMe: boolean): Step {
  switch (msg.op) {
    case 'propose':
      return receivePropose(context, from, msg, electingMe);
    case 'ack':
      return receiveAck(context, from, msg, electingMe);
    case 'victory':
      return receiveVictory(context, from, msg);
    case 'nak':
      return { context: { nakedBy: [...context.nakedBy, from] }, parent: [] };
  }
}

/** ElectionLogic::receive_ack. */
function receiveAck(context: ElectorContext, from: number, msg: MonElection, electingMe: boolean): Step {
  if (msg.epoch > context.epoch) {
    // They are in a newer election than me: join it and stand for it.
    return then(bump(context, msg.epoch), context, (c) => start(c, true));
  }
  if (msg.epoch < context.epoch || !electingMe) return nothing();
  const ackedMe = context.ackedMe.includes(from) ? context.ackedMe : [...context.ackedMe, from];
  const c = { ...context, ackedMe };
  if (allAcked(c)) return declareVictory(c);
  return { context: { ackedMe }, parent: [] };
}

/**
 * No need to wait for the election timer: everyone acked (Ceph), or — paxmon's addition, for a
 * faster failover — a majority acked and every other monitor is known down (its session reset
 * and it has not spoken since), so waiting could not bring another ack.
 */
function allAcked(c: ElectorContext): boolean {
  const n = c.monmap.mons.length;
  if (c.ackedMe.length === n) return true;
  if (c.ackedMe.length <= Math.floor(n / 2)) return false;
  return c.monmap.mons.every((m) => c.ackedMe.includes(m.rank) || c.downRanks.includes(m.rank));
}

/** ElectionLogic::receive_victory_claim: I must have seen the election being won, by a monitor that could. */
function receiveVictory(context: ElectorContext, from: number, msg: MonElection): Step {
  if (msg.epoch % 2 === 1 || msg.epoch <= context.epoch - 1) return nothing();
  // last_election_winner / last_voted_for, and clear_live_election_state.
  const seen: Partial<ElectorContext> = {
    lastElectionWinner: from,
    lastVotedFor: context.leaderAcked,
    leaderAcked: -1,
    leaderTracker: null,
  };
  const c = { ...context, ...seen };
  if (!victoryMakesSense(context, from)) {
    // I should have been elected over this leader (or it may not lead): bump and stand.
    const refused = then({ context: seen, parent: [] }, context, (cc) =>
      bump(cc, Math.max(msg.epoch, cc.epoch)),
    );
    return then(refused, context, (cc) => start(cc, true));
  }
  if (msg.epoch !== context.epoch + 1) {
    // I missed that election (or part of it): take the epoch and stand again.
    const missed = then({ context: seen, parent: [] }, context, (cc) => bump(cc, msg.epoch));
    return then(missed, context, (cc) => start(cc, true));
  }
  const quorum = [...msg.quorum].sort((a, b) => a - b);
  const tracker = increaseEpoch(c.tracker, msg.epoch);
  return {
    context: {
      ...seen,
      epoch: msg.epoch,
      ackedMe: [],
      quorum,
      hasEverJoined: true,
      tracker,
      stableTracker: tracker,
    },
    io: effects(persistEpoch({ ...c, tracker }, msg.epoch), []),
    parent: [
      { type: 'elector.epoch', epoch: msg.epoch },
      { type: 'elector.lose', epoch: msg.epoch, quorum, leader: from },
    ],
    next: 'stable',
  };
}
