// The Elector: Ceph's classic ElectionLogic (src/mon/ElectionLogic.cc, seed 003) as a child
// actor of the monitor. States mirror the logic's modes: `stable` (even epoch, nothing to do),
// `electingMe` (proposed myself, collecting acks), `deferring` (acked a better-ranked monitor,
// waiting for its victory). The election epoch is persisted on every bump through the I/O
// actor, and the messages of that step are sent only after it is durable.
//
// Parent protocol (what the monitor sees): `elector.join_election` (an epoch bump pulled me into
// an election: Monitor::join_election), `elector.win`, `elector.lose`, `elector.reset_election`
// (deferred but nobody won and I never joined a quorum: Monitor::bootstrap), `elector.epoch`.
import { assign, enqueueActions, sendParent, sendTo, setup } from 'xstate';
import type { ElectionStrategy, EntityName, MonElection, MonMap } from '../transport/messages.ts';
import { effects, type IoEffectsEvent, type MessageEvent, type Outgoing } from './effects.ts';

export interface ElectorInput {
  rank: number;
  monmap: MonMap;
  /** The persisted election_epoch (0 when never written). */
  persistedEpoch: number;
  /** Monitor::has_ever_joined: decides between restarting an election and bootstrapping on expiry. */
  hasEverJoined: boolean;
  electionTimeoutMs: number;
  deferExtraMs: number;
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
  | MessageEvent<MonElection>
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

function electionMessage(
  context: ElectorContext,
  op: MonElection['op'],
  epoch: number,
  quorum: number[] = [],
): MonElection {
  return {
    type: 'mon.election',
    op,
    fsid: context.monmap.fsid,
    epoch,
    monmapEpoch: context.monmap.epoch,
    quorum,
    strategy: context.monmap.electionStrategy as ElectionStrategy,
  };
}

function to(context: ElectorContext, rank: number, msg: MonElection): Outgoing {
  const mon = context.monmap.mons[rank];
  return mon ? { to: `mon.${mon.name}`, addr: mon.addr, msg } : { to: `mon.?`, msg };
}

const persistEpoch = (epoch: number) =>
  ({ op: 'put_number', prefix: 'monitor', key: 'election_epoch', value: epoch }) as const;

/**
 * ElectionLogic::init: read the persisted epoch; an odd one means we died mid-election, so move
 * to the next even epoch (the election we were in cannot complete with us any more).
 */
export function initialEpoch(persisted: number): number {
  if (persisted === 0) return 1;
  return persisted % 2 === 1 ? persisted + 1 : persisted;
}

/** Who may lead under the current strategy ('disallow': listed monitors never do). */
function canLead(monmap: MonMap, rank: number): boolean {
  if (monmap.electionStrategy !== 'disallow') return true;
  const name = monmap.mons[rank]?.name;
  return name !== undefined && !monmap.disallowedLeaders.includes(name);
}

/** Classic priority with 'disallow' applied: true when `a` would win over `b`. */
function outranks(monmap: MonMap, a: number, b: number): boolean {
  const aLeads = canLead(monmap, a);
  const bLeads = canLead(monmap, b);
  if (aLeads !== bLeads) return aLeads;
  return a < b;
}

type Step = {
  context: Partial<ElectorContext>;
  io?: IoEffectsEvent;
  parent: ElectorParentEvent[];
  /** Which state to be in after the step; undefined keeps the current one (and its timer). */
  next?: 'stable' | 'electingMe' | 'deferring';
};

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
    epoch += epoch % 2 === 0 ? 1 : 2;
    parent.push({ type: 'elector.join_election', epoch }, { type: 'elector.epoch', epoch });
  }
  if (context.monmap.mons.length === 1 && context.rank === 0) {
    // Monitor::win_standalone_election: alone in the monmap, the election is won at once.
    const victory = declareVictory({ ...context, epoch, ackedMe: [context.rank] });
    return {
      ...victory,
      io: effects([persistEpoch(epoch), ...(victory.io?.writes ?? [])], victory.io?.messages ?? []),
      parent: [...parent, ...victory.parent],
    };
  }
  const messages = context.monmap.mons
    .filter((m) => m.rank !== context.rank)
    .map((m) => to(context, m.rank, electionMessage(context, 'propose', epoch)));
  return {
    context: { epoch, ackedMe: [context.rank], leaderAcked: -1, nakedBy: [], stoodSinceInit: true },
    io: effects([persistEpoch(epoch)], messages),
    parent,
    next: 'electingMe',
  };
}

/** ElectionLogic::bump_epoch: adopt a higher epoch, persist it, drop whatever I was doing. */
function bump(epoch: number): Step {
  return {
    context: { epoch, ackedMe: [], leaderAcked: -1 },
    io: effects([persistEpoch(epoch)], []),
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
  if (writes.length || messages.length) step.io = effects(writes, messages);
  const next = s.next ?? first.next;
  if (next) step.next = next;
  return step;
}

/** ElectionLogic::defer: ack `rank` and give it the election timeout plus a little to declare victory. */
function defer(context: ElectorContext, rank: number): Step {
  return {
    context: { ackedMe: [], leaderAcked: rank },
    io: effects([], [to(context, rank, electionMessage(context, 'ack', context.epoch))]),
    parent: [],
    next: 'deferring',
  };
}

/** ElectionLogic::declare_victory: even epoch, tell the acked monitors, hand the quorum to the monitor. */
function declareVictory(context: ElectorContext): Step {
  const quorum = [...context.ackedMe].sort((a, b) => a - b);
  const epoch = context.epoch + 1;
  const messages = quorum
    .filter((r) => r !== context.rank)
    .map((r) => to(context, r, electionMessage(context, 'victory', epoch, quorum)));
  return {
    context: { epoch, ackedMe: [], leaderAcked: -1, quorum, hasEverJoined: true },
    io: effects([persistEpoch(epoch)], messages),
    parent: [
      { type: 'elector.epoch', epoch },
      { type: 'elector.win', epoch, quorum },
    ],
    next: 'stable',
  };
}

/** ElectionLogic::receive_propose + propose_classic_handler. */
function receivePropose(context: ElectorContext, from: number, msg: MonElection, electingMe: boolean): Step {
  let step: Step = { context: {}, parent: [] };
  let c = context;
  if (msg.epoch > c.epoch) {
    step = bump(msg.epoch);
    c = { ...c, ...step.context };
    electingMe = false;
  } else if (msg.epoch < c.epoch) {
    // An old propose. From outside a stable quorum it is a monitor that just started: call a
    // new election so it can rejoin. Otherwise it is stale and ignored.
    if (c.epoch % 2 === 0 && !c.quorum.includes(from)) {
      step = start(c);
      c = { ...c, ...step.context };
      electingMe = true;
    } else {
      return { context: {}, parent: [] };
    }
  }
  if (outranks(c.monmap, c.rank, from)) {
    // I would win over them: if I already acked someone, they outrank the proposer too.
    // Stand in the proposer's epoch (Ceph's propose_classic_handler → start()).
    if (c.leaderAcked < 0 && !electingMe) return then(step, context, (cc) => start(cc, true));
    return step;
  }
  // They would win over me: ack unless I acked someone even better.
  if (c.leaderAcked < 0 || c.leaderAcked === from) return then(step, context, (cc) => defer(cc, from));
  if (outranks(c.monmap, from, c.leaderAcked)) {
    // Switching my ack to a better proposer. Ceph acks it in the same epoch, so the monitor I
    // acked first may still count my ack and win that epoch too (two leaders in one epoch; the
    // simulator finds it). paxmon acks at most one proposer per epoch: the switch moves me to
    // the next odd epoch, where the better one collects acks afresh.
    const moved = then(step, context, (cc) => bump(cc.epoch + (cc.epoch % 2 === 0 ? 1 : 2)));
    return then(moved, context, (cc) => defer(cc, from));
  }
  return step;
}

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
      if (step.io) enqueue.sendTo(({ system }) => system.get('io'), step.io);
      for (const event of step.parent) enqueue.sendParent(event);
    }),
    dispatch: enqueueActions(({ enqueue }, step: Step) => {
      if (Object.keys(step.context).length) enqueue.assign(step.context);
      if (step.io) enqueue.sendTo(({ system }) => system.get('io'), step.io);
      for (const event of step.parent) enqueue.sendParent(event);
      if (step.next) enqueue.raise({ type: `elector.goto.${step.next}` });
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
  context: ({ input }) => ({
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
  }),
  entry: [
    // ElectionLogic::init persists the bumped epoch so a restart never reuses an election epoch.
    sendTo(
      ({ system }) => system.get('io'),
      ({ context }) => effects([persistEpoch(context.epoch)], []),
    ),
    sendParent(({ context }) => ({ type: 'elector.epoch', epoch: context.epoch })),
  ],
  initial: 'stable',
  on: {
    'elector.reset': { target: '.stable', actions: assign({ quorum: [], ackedMe: [], leaderAcked: -1 }) },
    'elector.monmap': {
      target: '.stable',
      actions: assign(({ event }) => ({
        monmap: event.monmap,
        rank: event.rank,
        quorum: [],
        ackedMe: [],
        leaderAcked: -1,
      })),
    },
    'elector.joined': { actions: assign({ hasEverJoined: true }) },
    'elector.down': { actions: assign(({ event }) => ({ downRanks: event.ranks })) },
    // start() itself says where to go: electingMe, or stable after a standalone victory.
    'elector.start': { actions: { type: 'dispatch', params: ({ context }) => start(context) } },
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
    if (msg.op !== 'propose') return { context: {}, parent: [] };
    return {
      context: {},
      parent: [],
      io: effects([], [to(context, from, electionMessage(context, 'nak', context.epoch))]),
    };
  }
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
    return then(bump(msg.epoch), context, (c) => start(c, true));
  }
  if (msg.epoch < context.epoch || !electingMe) return { context: {}, parent: [] };
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

/** ElectionLogic::receive_victory_claim: I must have seen the election being won. */
function receiveVictory(context: ElectorContext, from: number, msg: MonElection): Step {
  if (msg.epoch % 2 === 1 || msg.epoch <= context.epoch - 1) return { context: {}, parent: [] };
  if (msg.epoch !== context.epoch + 1) {
    // I missed that election (or part of it): take the epoch and stand again.
    return then(bump(msg.epoch), context, (c) => start(c, true));
  }
  const quorum = [...msg.quorum].sort((a, b) => a - b);
  return {
    context: { epoch: msg.epoch, ackedMe: [], leaderAcked: -1, quorum, hasEverJoined: true },
    io: effects([persistEpoch(msg.epoch)], []),
    parent: [
      { type: 'elector.epoch', epoch: msg.epoch },
      { type: 'elector.lose', epoch: msg.epoch, quorum, leader: from },
    ],
    next: 'stable',
  };
}
