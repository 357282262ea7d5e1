// Paxos core rules (Ceph's Paxos.cc), driven message by message on a SimulatedClock.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type AnyActorRef, createActor, fromCallback, SimulatedClock } from 'xstate';
import { defaultConfig } from '../machines/config.ts';
import type { IoClockEvent, IoEffectsEvent } from '../machines/effects.ts';
import { assertPaxosInvariants, createMonitorMachine, type MonitorContext } from '../machines/monitor.ts';
import { newProposalNumber, type PaxosContext, type Uncommitted } from '../machines/paxos.ts';
import type { MonMap, MonPaxos } from '../transport/messages.ts';

const fsid = '11111111-2222-3333-4444-555555555555';
const monmap: MonMap = {
  fsid,
  epoch: 1,
  mons: ['a', 'b', 'c'].map((name, rank) => ({ name, rank, addr: `127.0.0.1:${6789 + rank}` })),
  electionStrategy: 'classic',
  disallowedLeaders: [],
  created: 0,
  lastChanged: 0,
};
const LEASE = 1000;
const bytes = (text: string) => new TextEncoder().encode(text);

/**
 * Paxos runs in the monitor statechart's `inQuorum` state. This harness runs a monitor with no
 * services over an io actor that records every record (and reports each write at once, as a
 * store whose writes are durable immediately), and drives its Paxos message by message on a
 * SimulatedClock: `paxos.leader_init` / `paxos.peon_init` stand for an election won or lost
 * (the elector's verdict, sent as the elector would), `paxos.restart` for a new election.
 */
function paxos(
  rank: number,
  state: Partial<{
    firstCommitted: number;
    lastCommitted: number;
    acceptedPn: number;
    lastPn: number;
    uncommitted: Uncommitted | null;
  }> = {},
) {
  const io: IoEffectsEvent[] = [];
  const clock = new SimulatedClock();
  const recorder = fromCallback(({ receive, sendBack }) => {
    receive((event) => {
      // The statechart asks the time (its tick, a quorum formed): the simulated clock's.
      if (event.type === 'io.clock') {
        sendBack({ type: (event as IoClockEvent).reply, now: clock.now() });
        return;
      }
      const record = event as IoEffectsEvent;
      io.push(record);
      if (record.type === 'io.effects' && record.notify)
        sendBack({ type: 'io.written', token: record.notify });
    });
  });
  const machine = createMonitorMachine([]).provide({ actors: { io: recorder } });
  const actor = createActor(machine, {
    clock,
    input: {
      name: monmap.mons[rank]?.name ?? 'a',
      monmap,
      config: {
        ...defaultConfig,
        monLeaseMs: LEASE,
        monLeaseRenewIntervalFactor: 0.6,
        monLeaseAckTimeoutFactor: 2,
        monAcceptTimeoutFactor: 2,
        // The elector's verdicts are sent by hand here: its own timers must stay quiet.
        monElectionTimeoutMs: 1e9,
        monProbeTimeoutMs: 1e9,
      },
      hasEverJoined: true,
      electionEpoch: 1,
      paxos: { firstCommitted: 0, lastCommitted: 0, acceptedPn: 0, lastPn: 0, uncommitted: null, ...state },
    },
  });
  actor.start();
  let taken = 0;
  const bootstraps: string[] = [];
  let probing = true;
  actor.subscribe((snap) => {
    const now = snap.matches('probing');
    if (now && !probing) bootstraps.push((snap.context as MonitorContext).lastBootstrapReason);
    probing = now;
  });
  const snapshot = () => actor.getSnapshot();
  const inQuorum = () => snapshot().matches('inQuorum');
  const elect = (verdict: Record<string, unknown>) => {
    if (inQuorum()) actor.send({ type: 'elector.join_election', epoch: verdict.epoch as number });
    else if (!snapshot().matches('electing')) actor.send({ type: 'monitor.start_election' });
    actor.send(verdict as never);
  };
  return {
    clock,
    io,
    actor: actor as AnyActorRef,
    snapshot,
    send(event: { type: string; [key: string]: unknown }) {
      if (event.type === 'paxos.leader_init')
        elect({ type: 'elector.win', epoch: event.electionEpoch, quorum: event.quorum });
      else if (event.type === 'paxos.peon_init')
        elect({
          type: 'elector.lose',
          epoch: event.electionEpoch,
          quorum: event.quorum,
          leader: event.leader,
        });
      else if (event.type === 'paxos.restart') actor.send({ type: 'monitor.bootstrap', reason: 'restart' });
      else actor.send(event as never);
    },
    advance: (ms: number) => clock.increment(ms),
    takeMessages() {
      const fresh = io.slice(taken);
      taken = io.length;
      return fresh.flatMap((e) =>
        (e.messages ?? []).map((m) => ({
          to: m.to,
          type: m.msg.type,
          op: (m.msg as { op?: string }).op,
          msg: m.msg as unknown as Record<string, unknown>,
        })),
      );
    },
    /** Why the monitor bootstrapped (back to probing) since the last call: Paxos's timeouts. */
    takeBootstraps(): string[] {
      return bootstraps.splice(0, bootstraps.length);
    },
    stop: () => actor.stop(),
  };
}

/** A proposal as a service hands it to Paxos: ops, and the answer owed to its client once committed. */
const proposal = (id: string, text: string) => ({
  type: 'paxos.propose',
  id,
  ops: [{ op: 'put', prefix: 'kv', key: id, value: text }],
  replies: [{ target: { client: 'client.t', tid: 1, cmd: ['set', id] }, reply: { r: 0, rs: `set ${id}` } }],
});
/** The answers the io actor was asked to send. */
const answers = (h: ReturnType<typeof paxos>) =>
  h.io.flatMap((e) => e.replies ?? []).map((r) => `${r.reply.r}:${r.reply.rs}`);

function msg(from: string, op: MonPaxos['op'], fields: Partial<MonPaxos> = {}) {
  return {
    type: 'mon.paxos',
    from: `mon.${from}`,
    msg: {
      type: 'mon.paxos',
      op,
      electionEpoch: 2,
      pn: 0,
      uncommittedPn: 0,
      firstCommitted: 0,
      lastCommitted: 0,
      values: [],
      ...fields,
    },
  };
}

const ctx = (h: ReturnType<typeof paxos>) => (h.snapshot().context as { paxos: PaxosContext }).paxos;
let nextLeaseSeq = 1;
/**
 * Leases as the leader sends them to a peon: each echoes the peon's newest token, and a lease
 * is read under only once a later one confirms that the whole quorum acked it.
 */
function lease(h: ReturnType<typeof paxos>, fields: Partial<MonPaxos> = {}, confirm?: number): number {
  const seq = nextLeaseSeq++;
  h.send(
    msg('a', 'lease', {
      pn: 100,
      leaseMs: LEASE,
      leaseSeq: seq,
      leaseToken: ctx(h).leaseTokenSeq,
      ...(confirm !== undefined ? { leaseConfirmed: confirm } : {}),
      ...fields,
    }),
  );
  return seq;
}
/** Two leases, the second confirming the first: a peon with a fresh token reads after them. */
function grant(h: ReturnType<typeof paxos>, fields: Partial<MonPaxos> = {}): void {
  const first = lease(h, fields);
  lease(h, fields, first);
}
const matches = (h: ReturnType<typeof paxos>, value: unknown) =>
  h.snapshot().matches({ inQuorum: value } as never) as boolean;

test('proposal numbers: (max/100 + 1) * 100 + rank, always above what was seen', () => {
  assert.is(newProposalNumber(0, 0, 1), 101);
  assert.is(newProposalNumber(101, 0, 2), 202);
  assert.is(newProposalNumber(101, 350, 0), 400);
});

test('leader: collect with a new persisted pn, then active with a lease once the whole quorum answered', () => {
  const h = paxos(0);
  h.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1, 2] });
  const collects = h.takeMessages().filter((m) => m.op === 'collect');
  assert.equal(collects.map((m) => m.to).sort(), ['mon.b', 'mon.c']);
  assert.is(collects[0]?.msg.pn, 100);
  assert.ok(
    h.io.some((e) => e.writes.some((w) => w.op === 'put_number' && w.key === 'last_pn' && w.value === 100)),
  );
  h.send(msg('b', 'last', { pn: 100 }));
  assert.ok(matches(h, { leader: { round: 'recovering' } }), 'still waiting for c');
  h.send(msg('c', 'last', { pn: 100 }));
  assert.ok(matches(h, { leader: { round: 'active', lease: 'expired' } }), 'a lease counts only once acked');
  const leases = h.takeMessages().filter((m) => m.op === 'lease');
  assert.equal(leases.map((m) => m.to).sort(), ['mon.b', 'mon.c']);
  const seq = leases[0]?.msg.leaseSeq as number;
  h.send(msg('b', 'lease_ack', { pn: 100, leaseSeq: seq }));
  assert.ok(matches(h, { leader: { lease: 'expired' } }), 'not every peon acked yet');
  h.send(msg('c', 'lease_ack', { pn: 100, leaseSeq: seq }));
  assert.ok(matches(h, { leader: { round: 'active', lease: 'valid' } }));
  // Renewals keep it valid only while they are acked: mon_lease after the last acked one, it ends.
  h.advance(LEASE);
  assert.ok(matches(h, { leader: { lease: 'expired' } }), 'unacked renewals do not extend reads');
  h.stop();
});

test("peon: a lease promise defers its answer to another epoch's collect until mon_lease has passed", () => {
  const h = paxos(1);
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1], leader: 0 });
  h.send(msg('a', 'collect', { pn: 100 }));
  h.send(msg('a', 'lease', { pn: 100, leaseMs: LEASE, leaseSeq: 1, leaseToken: ctx(h).leaseTokenSeq }));
  h.takeMessages();
  // A new election makes c the leader of epoch 4; its collect must wait for the promise to a.
  h.send({ type: 'paxos.peon_init', electionEpoch: 4, quorum: [1, 2], leader: 2 });
  h.send({
    ...msg('c', 'collect', { pn: 202 }),
    msg: { ...msg('c', 'collect', { pn: 202 }).msg, electionEpoch: 4 },
  });
  assert.equal(
    h.takeMessages().filter((m) => m.op === 'last'),
    [],
    'no last while the promise holds',
  );
  h.advance(LEASE);
  assert.equal(
    h
      .takeMessages()
      .filter((m) => m.op === 'last')
      .map((m) => m.to),
    ['mon.c'],
  );
  h.stop();
});

test('leader: a last with a higher pn makes it collect again above it', () => {
  const h = paxos(0);
  h.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1, 2] });
  h.takeMessages();
  h.send(msg('b', 'last', { pn: 301 }));
  assert.is(ctx(h).acceptedPn, 400);
  assert.equal(
    h
      .takeMessages()
      .filter((m) => m.op === 'collect')
      .map((m) => m.msg.pn),
    [400, 400],
  );
  h.stop();
});

test('leader: commits only when every quorum member accepted', () => {
  const h = paxos(0);
  h.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1, 2] });
  h.send(msg('b', 'last', { pn: 100 }));
  h.send(msg('c', 'last', { pn: 100 }));
  h.takeMessages();
  h.send(proposal('x', 'v1'));
  assert.ok(matches(h, { leader: { round: 'updating' } }));
  assert.equal(
    h
      .takeMessages()
      .filter((m) => m.op === 'begin')
      .map((m) => m.to)
      .sort(),
    ['mon.b', 'mon.c'],
  );
  h.send(msg('b', 'accept', { pn: 100, lastCommitted: 0 }));
  assert.ok(
    matches(h, { leader: { round: 'updating' } }),
    'a majority is not enough: Ceph waits for the whole quorum',
  );
  h.send(msg('c', 'accept', { pn: 100, lastCommitted: 0 }));
  assert.is(ctx(h).lastCommitted, 1);
  assert.equal(answers(h), ['0:set x'], "the proposal's client is answered with the commit");
  assert.equal(
    h
      .takeMessages()
      .filter((m) => m.op === 'commit')
      .map((m) => m.to)
      .sort(),
    ['mon.b', 'mon.c'],
  );
  h.stop();
});

test('leader: begin leaves while the leader writes its own (fsynced) copy', () => {
  const h = paxos(0);
  h.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1, 2] });
  h.send(msg('b', 'last', { pn: 100 }));
  h.send(msg('c', 'last', { pn: 100 }));
  h.send(proposal('x', 'v1'));
  const begin = h.io.find((e) => e.messages.some((m) => (m.msg as MonPaxos).op === 'begin'));
  assert.ok(begin?.sendBeforeDurable, 'the begin goes out with the write, not after it');
  assert.is(begin?.durability, undefined, "the leader's copy is fsynced");
  h.stop();
});

test('leader: a commit sends no lease; the lease is renewed every mon_lease × renew factor', () => {
  const h = paxos(0);
  h.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1, 2] });
  h.send(msg('b', 'last', { pn: 100 }));
  h.send(msg('c', 'last', { pn: 100 }));
  const first = h.takeMessages().filter((m) => m.op === 'lease');
  assert.is(first.length, 2, 'a lease once recovered');
  for (const m of first)
    h.send(msg(m.to.slice(4), 'lease_ack', { pn: 100, leaseSeq: m.msg.leaseSeq as number }));
  h.send(proposal('x', 'v1'));
  h.send(msg('b', 'accept', { pn: 100, lastCommitted: 0 }));
  h.send(msg('c', 'accept', { pn: 100, lastCommitted: 0 }));
  assert.is(ctx(h).lastCommitted, 1);
  const ops = h.takeMessages().map((m) => m.op);
  assert.ok(ops.includes('commit'));
  assert.not.ok(ops.includes('lease'), 'Ceph extends the lease at every commit; paxmon does not');
  assert.ok(matches(h, { leader: { round: 'active', lease: 'valid' } }));
  h.advance(LEASE * 0.6);
  assert.equal(
    h
      .takeMessages()
      .filter((m) => m.op === 'lease')
      .map((m) => m.to)
      .sort(),
    ['mon.b', 'mon.c'],
    'renewed on time',
  );
  h.stop();
});

test('leader: recovers an uncommitted value reported by a peon and re-proposes it first (updating_previous)', () => {
  const h = paxos(1, { lastCommitted: 3, firstCommitted: 1, acceptedPn: 100, lastPn: 100 });
  h.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [1, 2] });
  h.takeMessages();
  // c accepted v4 under the old leader's pn 100 but never learnt of its commit.
  h.send(
    msg('c', 'last', {
      pn: 201,
      lastCommitted: 3,
      firstCommitted: 1,
      uncommittedPn: 100,
      values: [{ version: 4, value: bytes('old') }],
    }),
  );
  assert.ok(matches(h, { leader: { round: 'updating_previous' } }));
  const begins = h.takeMessages().filter((m) => m.op === 'begin');
  assert.equal(begins.length, 1);
  const values = begins[0]?.msg.values as { version: number; value: Uint8Array }[];
  assert.is(values[0]?.version, 4);
  assert.is(new TextDecoder().decode(values[0]?.value), 'old');
  h.send(msg('c', 'accept', { pn: 201, lastCommitted: 3 }));
  assert.is(ctx(h).lastCommitted, 4);
  h.stop();
});

test('leader: a lagging peon is sent the commits it lacks (share_state)', () => {
  const h = paxos(0, { lastCommitted: 7, firstCommitted: 1 });
  h.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1] });
  h.takeMessages();
  h.send(msg('b', 'last', { pn: 100, lastCommitted: 4, firstCommitted: 1 }));
  const shares = h.io.flatMap((e) => e.messages).filter((m) => m.shareValues);
  assert.equal(
    shares.map((m) => [m.to, m.shareValues?.from, m.shareValues?.to]),
    [['mon.b', 5, 7]],
  );
  h.stop();
});

test('leader: accept timeout sends the monitor back to bootstrap', () => {
  const h = paxos(0);
  h.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1] });
  h.send(msg('b', 'last', { pn: 100 }));
  h.send(msg('b', 'lease_ack', { pn: 100 }));
  h.send(proposal('x', 'v1'));
  h.takeBootstraps();
  h.advance(2 * LEASE - 1);
  assert.equal(h.takeBootstraps(), []);
  h.advance(1);
  assert.equal(h.takeBootstraps(), ['accept timeout']);
  h.stop();
});

test('leader: collect timeout and lease-ack timeout send the monitor back to bootstrap', () => {
  const collect = paxos(0);
  collect.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1] });
  collect.advance(2 * LEASE);
  assert.equal(collect.takeBootstraps(), ['collect timeout']);
  collect.stop();
  const ack = paxos(0);
  ack.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1] });
  ack.send(msg('b', 'last', { pn: 100 }));
  ack.advance(2 * LEASE);
  assert.equal(ack.takeBootstraps(), ['lease ack timeout']);
  ack.stop();
});

test('peon: promises a higher pn durably, reports its uncommitted value, shares commits the leader lacks', () => {
  const h = paxos(1, {
    lastCommitted: 5,
    firstCommitted: 1,
    acceptedPn: 100,
    uncommitted: { version: 6, pn: 100, value: bytes('u') },
  });
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1], leader: 0 });
  h.send(msg('a', 'collect', { pn: 200, lastCommitted: 3, firstCommitted: 1 }));
  assert.is(ctx(h).acceptedPn, 200);
  const effect = h.io.find((e) => e.messages.some((m) => (m.msg as MonPaxos).op === 'last'));
  assert.ok(
    effect?.writes.some((w) => w.op === 'put_number' && w.key === 'accepted_pn' && w.value === 200),
    'promise persisted with the reply',
  );
  const last = effect?.messages[0];
  assert.ok(last, 'a last reply was sent');
  // Paxos::handle_collect: the leader's lc (3) <= mine, so my value at lc+1 goes along with its pn.
  assert.is((last.msg as MonPaxos).uncommittedPn, 100);
  assert.equal(
    (last.msg as MonPaxos).values.map((v) => v.version),
    [6],
  );
  assert.equal(last.shareValues, { from: 4, to: 5 });
  h.stop();
});

test('peon: accepts a begin only after storing it; its lease is suspended until the commit', () => {
  const h = paxos(1);
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1], leader: 0 });
  h.send(msg('a', 'collect', { pn: 100 }));
  const first = lease(h);
  assert.ok(matches(h, { peon: { lease: 'expired' } }), 'not before the quorum acked it');
  lease(h, {}, first);
  assert.ok(matches(h, { peon: { round: 'active', lease: { held: 'valid' } } }));
  h.takeMessages();
  h.send(msg('a', 'begin', { pn: 100, lastCommitted: 0, values: [{ version: 1, value: bytes('v1') }] }));
  assert.ok(matches(h, { peon: { round: 'updating', lease: { held: 'suspended' } } }));
  assert.not.ok(h.snapshot().hasTag('readable'), 'no reads while a value is accepted but not committed');
  const effect = h.io.find((e) => e.messages.some((m) => (m.msg as MonPaxos).op === 'accept'));
  assert.ok(
    effect?.writes.some((w) => w.op === 'put' && w.key === '1'),
    'the accept leaves with the write of the value',
  );
  // A lease for the old version does not make it readable while it holds the uncommitted value.
  h.send(msg('a', 'lease', { pn: 100, lastCommitted: 0, leaseMs: LEASE, leaseToken: ctx(h).leaseTokenSeq }));
  assert.ok(matches(h, { peon: { lease: { held: 'suspended' } } }));
  h.advance(LEASE / 2);
  h.send(msg('a', 'commit', { pn: 100, lastCommitted: 1, values: [{ version: 1, value: bytes('v1') }] }));
  assert.is(ctx(h).lastCommitted, 1);
  // The commit makes it readable again under the lease it holds, which still ends on time.
  assert.ok(matches(h, { peon: { round: 'active', lease: { held: 'valid' } } }));
  h.advance(LEASE / 2);
  assert.ok(matches(h, { peon: { lease: 'expired' } }), 'the commit did not extend the lease');
  // A confirmed lease that echoes a token whose window is over (a late lease) is acked but
  // serves no reads; once a lease echoing the token of that ack is confirmed, it does.
  h.takeMessages();
  const late = lease(h, { lastCommitted: 1 });
  const next = lease(h, { lastCommitted: 1 }, late);
  assert.ok(matches(h, { peon: { lease: 'expired' } }), 'a late lease does not make it readable');
  assert.ok(
    h.takeMessages().every((m) => m.op !== 'lease_ack' || m.msg.leaseToken),
    'acks carry tokens',
  );
  lease(h, { lastCommitted: 1 }, next);
  assert.ok(matches(h, { peon: { round: 'active', lease: { held: 'valid' } } }));
  h.stop();
});

test('peon: a commit applies only the value it accepted in this round (same pn, version, bytes); anything else is refused', () => {
  const h = paxos(1);
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1], leader: 0 });
  h.send(msg('a', 'collect', { pn: 100 }));
  h.send(msg('a', 'begin', { pn: 100, lastCommitted: 0, values: [{ version: 1, value: bytes('v1') }] }));
  const refused = () => h.io.filter((e) => (e as { type: string }).type === 'io.refused');
  const writesBefore = h.io.length;
  // Other bytes at the accepted version, or the accepted bytes under another pn: refused.
  h.send(msg('a', 'commit', { pn: 100, lastCommitted: 1, values: [{ version: 1, value: bytes('evil') }] }));
  h.send(msg('a', 'commit', { pn: 200, lastCommitted: 1, values: [{ version: 1, value: bytes('v1') }] }));
  // The next version, never begun: beyond what the collect announced (last_committed 0).
  h.send(msg('a', 'commit', { pn: 100, lastCommitted: 2, values: [{ version: 2, value: bytes('x') }] }));
  assert.is(ctx(h).lastCommitted, 0, 'nothing applied');
  assert.is(refused().length, 3);
  assert.match(
    JSON.stringify(refused()),
    /not the value I accepted.*values I never accepted.*beyond the last_committed 0/,
  );
  assert.not.ok(
    h.io.slice(writesBefore).some((e) => e.writes?.some((w) => w.op === 'apply_value')),
    'no apply_value was written',
  );
  // The real commit: applied from the peon's own accepted copy, without an fsync of its own.
  h.send(msg('a', 'commit', { pn: 100, lastCommitted: 1, values: [{ version: 1, value: bytes('v1') }] }));
  assert.is(ctx(h).lastCommitted, 1);
  const applied = h.io.find((e) => e.writes?.some((w) => w.op === 'apply_value'));
  assert.is(applied?.durability, 'applied');
  h.stop();
});

test("peon: the commits a leader shares after my last are taken up to the collect's last_committed, in that round only", () => {
  const h = paxos(1, { lastCommitted: 2, firstCommitted: 1, acceptedPn: 100 });
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1], leader: 0 });
  // Before any collect of this leader: refused.
  h.send(msg('a', 'commit', { pn: 200, lastCommitted: 3, values: [{ version: 3, value: bytes('c3') }] }));
  assert.is(ctx(h).lastCommitted, 2);
  h.send(msg('a', 'collect', { pn: 200, lastCommitted: 4, firstCommitted: 1 }));
  // Another pn than the collect's: refused.
  h.send(msg('a', 'commit', { pn: 300, lastCommitted: 3, values: [{ version: 3, value: bytes('c3') }] }));
  assert.is(ctx(h).lastCommitted, 2);
  // share_state: versions 3..4 of the leader's history (its collect said last_committed 4).
  h.send(
    msg('a', 'commit', {
      pn: 200,
      lastCommitted: 4,
      values: [
        { version: 3, value: bytes('c3') },
        { version: 4, value: bytes('c4') },
      ],
    }),
  );
  assert.is(ctx(h).lastCommitted, 4);
  // Beyond it, a value never begun: refused.
  h.send(msg('a', 'commit', { pn: 200, lastCommitted: 5, values: [{ version: 5, value: bytes('c5') }] }));
  assert.is(ctx(h).lastCommitted, 4);
  h.stop();
});

test('peon: a lease some quorum member never acked serves no reads (that member may be in another quorum already)', () => {
  const h = paxos(1);
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1, 2], leader: 0 });
  h.send(msg('a', 'collect', { pn: 100 }));
  const first = lease(h);
  const second = lease(h, {}, 0);
  lease(h, {}, 0);
  assert.ok(matches(h, { peon: { lease: 'expired' } }), 'acked, but not by everyone: no reads');
  assert.equal(h.takeBootstraps(), []);
  lease(h, {}, second);
  assert.ok(matches(h, { peon: { lease: { held: 'valid' } } }), 'confirmed: reads');
  assert.ok(first < second);
  h.stop();
});

test('peon: a lease delivered late (after a pause) serves reads only until mon_lease after the token it echoes', () => {
  const h = paxos(1);
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1], leader: 0 });
  h.send(msg('a', 'collect', { pn: 100 }));
  const token = ctx(h).leaseTokenSeq;
  assert.ok(token > 0, 'the last reply carries a token');
  h.advance(LEASE * 0.75);
  grant(h);
  assert.ok(matches(h, { peon: { lease: { held: 'valid' } } }));
  h.advance(LEASE * 0.25);
  assert.ok(matches(h, { peon: { lease: 'expired' } }), 'mon_lease after the token, not after the arrival');
  h.stop();
});

test('peon: the lease expires after mon_lease and the lease timeout sends it to bootstrap', () => {
  const h = paxos(1);
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1], leader: 0 });
  h.send(msg('a', 'collect', { pn: 100 }));
  grant(h);
  assert.ok(matches(h, { peon: { lease: { held: 'valid' } } }));
  h.advance(LEASE);
  assert.ok(matches(h, { peon: { lease: 'expired' } }));
  assert.equal(h.takeBootstraps(), []);
  h.advance(LEASE);
  assert.equal(h.takeBootstraps(), ['lease timeout']);
  h.stop();
});

test('peon: messages from another election epoch or from a non-leader are ignored', () => {
  const h = paxos(1);
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1, 2], leader: 0 });
  h.send({
    ...msg('a', 'collect', { pn: 900 }),
    msg: { ...msg('a', 'collect', { pn: 900 }).msg, electionEpoch: 4 },
  });
  h.send(msg('c', 'collect', { pn: 900 }));
  assert.is(ctx(h).acceptedPn, 0);
  h.stop();
});

test('outside a quorum, proposals are refused at once; a restart fails what was queued', () => {
  const h = paxos(0);
  h.send(proposal('early', 'x'));
  assert.equal(answers(h), ['-11:update not committed (not in quorum); retry']);
  h.send({ type: 'paxos.leader_init', electionEpoch: 2, quorum: [0, 1] });
  h.send(proposal('queued', 'y'));
  h.send({ type: 'paxos.restart' });
  assert.equal(answers(h).slice(1), [
    '-11:update not committed (paxos restarted (bootstrap or election)); retry',
  ]);
  h.stop();
});

test('a proposal on a peon is refused (only the leader proposes)', () => {
  const h = paxos(1);
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1], leader: 0 });
  h.send(proposal('x', 'v'));
  assert.equal(answers(h), ['-11:update not committed (not the leader); retry']);
  h.stop();
});

test('Paxos invariants: a step that breaks one is a crash with the state printed', () => {
  const h = paxos(1, { lastCommitted: 3, firstCommitted: 1, acceptedPn: 100 });
  h.send({ type: 'paxos.peon_init', electionEpoch: 2, quorum: [0, 1], leader: 0 });
  const before = ctx(h);
  assert.not.throws(() => assertPaxosInvariants(before, before, 'nothing'));
  const broken: [Partial<PaxosContext>, RegExp][] = [
    [{ lastCommitted: 2 }, /last_committed went back/],
    [{ acceptedPn: 50 }, /accepted_pn went back/],
    [{ uncommitted: { version: 6, pn: 100, value: bytes('x') } }, /not at last_committed \+ 1/],
    [{ accepted: [2] }, /outside the quorum/],
    [{ firstCommitted: 5 }, /first_committed is beyond last_committed/],
  ];
  for (const [changes, reason] of broken) {
    assert.throws(() => assertPaxosInvariants(before, { ...before, ...changes }, 'a test step'), reason);
    assert.throws(
      () => assertPaxosInvariants(before, { ...before, ...changes }, 'a test step'),
      /before \{"rank":1.*"lastCommitted":3.*after \{/,
    );
  }
  h.stop();
});

test.run();
