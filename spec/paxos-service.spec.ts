// The PaxosService template, with a toy counter service, driven event by event (no cluster):
// Ceph's dispatch flow — preprocess, forward, wait for writeable, propose, answer after commit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AppliedOp, StoreOp } from '../machines/effects.ts';
import {
  createPaxosService,
  type MonitorView,
  type ServiceDefinition,
  type ServiceRequest,
} from '../machines/paxos-service.ts';
import { type SessionsBoot, sessionPrefix, sessionsBootFrom } from '../machines/sessions.ts';
import type { MonMap } from '../transport/messages.ts';
import { runChild } from './support/child-harness.ts';

const monmap: MonMap = {
  fsid: '11111111-2222-3333-4444-555555555555',
  epoch: 1,
  mons: ['a', 'b', 'c'].map((name, rank) => ({ name, rank, addr: `127.0.0.1:${6789 + rank}` })),
  electionStrategy: 'classic',
  disallowedLeaders: [],
  created: 0,
  lastChanged: 0,
};

/** A counter: `get` is a read; `add N` an update. */
const counter: ServiceDefinition<{ value: number }, number> = {
  name: 'counter',
  prefix: 'counter',
  handles: (cmd) => cmd[0] === 'counter',
  init: () => ({ value: 0 }),
  createPending: () => 0,
  preprocessQuery: (state, request) =>
    request.cmd[1] === 'get' ? { reply: { r: 0, rs: String(state.value) } } : null,
  prepareUpdate: (_state, pending, request) => {
    const n = Number(request.cmd[2]);
    if (!Number.isInteger(n)) return { error: { r: -22, rs: 'not a number' } };
    return { pending: pending + n, reply: { r: 0, rs: `added ${n}` } };
  },
  encodePending: (state, pending, version) => [
    { op: 'put', prefix: 'counter', key: String(version), value: String(state.value + pending) },
  ],
  updateFromPaxos: (state, ops: AppliedOp[]) => {
    const put = ops.find(
      (o) =>
        o.op === 'put' && o.prefix === 'counter' && o.key !== 'last_committed' && o.key !== 'first_committed',
    );
    return put && put.op === 'put' ? { value: Number(new TextDecoder().decode(put.value)) } : state;
  },
};

const view = (role: MonitorView['role'], rank = role === 'leader' ? 0 : 1): MonitorView => ({
  name: monmap.mons[rank]?.name ?? 'a',
  rank,
  monmap,
  electionEpoch: 2,
  quorum: [0, 1, 2],
  leader: 0,
  role,
  clockSkewsMs: {},
});

function service(role: MonitorView['role'], proposeGatherMs = 0, sessions?: SessionsBoot) {
  const h = runChild(createPaxosService(counter), {
    ...(sessions ? { sessions } : {}),
    monitor: view(role),
    versions: { firstCommitted: 1, lastCommitted: 1 },
    loaded: null,
    proposeIntervalMs: 0,
    proposeGatherMs,
    trimMin: 250,
    trimMax: 500,
  });
  return h;
}

const request = (tid: number, ...cmd: string[]): ServiceRequest => ({
  client: 'client.x',
  tid,
  cmd: ['counter', ...cmd],
  receivedAt: 0,
  deadline: 60_000,
});
const status = (readable: boolean, writeable: boolean, lastCommitted = 1) => ({
  type: 'paxos.status',
  firstCommitted: 1,
  lastCommitted,
  readable,
  writeable,
});
/** Paxos committed `version` (the leader's status after it rides along). */
const committed = (version: number, ids: string[]) => ({
  type: 'paxos.committed',
  version,
  ids,
  status: { firstCommitted: 1, lastCommitted: version, readable: true, writeable: true },
});
const applied = (version: number, value: number) => ({
  type: 'store.applied',
  version,
  ops: [
    { op: 'put', prefix: 'counter', key: String(version), value: new TextEncoder().encode(String(value)) },
    { op: 'put', prefix: 'counter', key: 'last_committed', value: le64(version) },
  ],
});
function le64(n: number) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}
const replies = (h: ReturnType<typeof service>) =>
  h.io.flatMap((e) => e.replies ?? []).map((r) => `${r.target.tid}:${r.reply.r}:${r.reply.rs}`);
const proposals = (h: ReturnType<typeof service>) => h.proposals();

const forwards = (h: ReturnType<typeof service>) =>
  h.io.flatMap((e) => e.messages).filter((m) => m.msg.type === 'mon.forward');

test('preprocess_query answers a read at once, without Paxos, once readable', () => {
  const h = service('peon');
  h.send(applied(1, 0));
  h.send({ type: 'service.request', request: request(1, 'get') });
  assert.equal(replies(h), [], 'not readable yet: no local answer');
  // Ceph's peon would wait; paxmon's hands the request to the leader, which answers it.
  assert.equal(
    forwards(h).map((m) => m.to),
    ['mon.a'],
  );
  h.send(status(true, false));
  h.send({ type: 'service.request', request: request(2, 'get') });
  assert.equal(replies(h), ['2:0:0']);
  assert.is(forwards(h).length, 1, 'readable: answered here');
  assert.equal(proposals(h), []);
  h.stop();
});

test('an update on a peon is forwarded to the leader and answered through mon.route', () => {
  const h = service('peon');
  h.send(applied(1, 0));
  h.send(status(true, false));
  h.send({ type: 'service.request', request: request(7, 'add', '3') });
  const forwards = h.io.flatMap((e) => e.messages).filter((m) => m.msg.type === 'mon.forward');
  assert.is(forwards.length, 1);
  assert.is(forwards[0]?.to, 'mon.a');
  const fwd = forwards[0]?.msg as { tid: number; client: string; clientTid: number };
  assert.is(fwd.client, 'client.x');
  assert.is(fwd.clientTid, 7);
  assert.equal(proposals(h), [], 'a peon never proposes');
  h.send({
    type: 'service.routes',
    routes: [{ type: 'mon.route', tid: fwd.tid, reply: { r: 0, rs: 'added 3', data: new Uint8Array() } }],
  });
  assert.equal(replies(h), ['7:0:added 3']);
  h.stop();
});

test('replies routed back together answer each forwarded request once, in arrival order', () => {
  const h = service('peon');
  h.send(applied(1, 0));
  h.send(status(true, false));
  h.send({
    type: 'service.requests',
    requests: [request(1, 'add', '1'), request(2, 'add', '2'), request(3, 'add', '3')],
  });
  const tids = h.io
    .flatMap((e) => e.messages)
    .filter((m) => m.msg.type === 'mon.forward')
    .map((m) => (m.msg as { tid: number }).tid);
  assert.is(tids.length, 3);
  const route = (tid: number, rs: string) => ({
    type: 'mon.route' as const,
    tid,
    reply: { r: 0, rs, data: new Uint8Array() },
  });
  // The third and the first answered together, then the first again (a resend after an election)
  // and a tid this monitor never forwarded: only the second is still owed.
  h.send({ type: 'service.routes', routes: [route(tids[2] as number, 'c'), route(tids[0] as number, 'a')] });
  assert.equal(replies(h), ['3:0:c', '1:0:a']);
  h.send({ type: 'service.routes', routes: [route(tids[0] as number, 'again'), route(999_999, 'x')] });
  assert.equal(replies(h), ['3:0:c', '1:0:a'], 'no second answer, nothing for an unknown tid');
  h.send({ type: 'service.routes', routes: [route(tids[1] as number, 'b')] });
  assert.equal(replies(h), ['3:0:c', '1:0:a', '2:0:b']);
  h.stop();
});

test('forwarded requests are resent to the new leader after an election', () => {
  const h = service('peon');
  h.send(applied(1, 0));
  h.send(status(true, false));
  h.send({ type: 'service.request', request: request(8, 'add', '1') });
  h.send({ type: 'service.monitor', monitor: { ...view('peon'), electionEpoch: 4, leader: 2 } });
  const forwards = h.io.flatMap((e) => e.messages).filter((m) => m.msg.type === 'mon.forward');
  assert.equal(
    forwards.map((m) => m.to),
    ['mon.a', 'mon.c'],
  );
  h.stop();
});

test('on the leader, an update waits until writeable and is answered only after the commit', () => {
  const h = service('leader');
  h.send(applied(1, 0));
  h.send(status(true, false));
  h.send({ type: 'service.request', request: request(1, 'add', '5') });
  assert.equal(proposals(h), [], 'not writeable: waits');
  h.send(status(true, true));
  const [p] = proposals(h);
  assert.ok(p, 'proposed once writeable');
  assert.ok(
    p.ops.some((o) => o.op === 'put' && o.key === '2'),
    'encode_pending wrote version 2',
  );
  assert.equal(replies(h), [], 'no answer before the commit');
  h.send(committed(2, [p.id]));
  assert.equal(replies(h), ['1:0:added 5']);
  h.stop();
});

test('batching: updates arriving while a round is in flight go together into the next one', () => {
  const h = service('leader');
  h.send(applied(1, 0));
  h.send(status(true, true));
  for (let i = 1; i <= 10; i += 1) h.send({ type: 'service.request', request: request(i, 'add', '1') });
  assert.is(proposals(h).length, 1, 'the first goes out at once');
  const first = proposals(h)[0];
  h.send(committed(2, [first?.id ?? '']));
  h.send(applied(2, 1));
  assert.is(proposals(h).length, 2, 'the other nine in one more round');
  const second = proposals(h)[1];
  h.send(committed(3, [second?.id ?? '']));
  assert.is(replies(h).length, 10, 'every request answered');
  h.stop();
});

test('paxos_propose_gather: after a commit that answered several, wait for as many as were in flight', () => {
  const h = service('leader', 2);
  h.send(applied(1, 0));
  h.send(status(true, true));
  // Round 2 carries one; three more arrive while it is in flight.
  for (let i = 1; i <= 4; i += 1) h.send({ type: 'service.request', request: request(i, 'add', '1') });
  h.send(committed(2, [proposals(h)[0]?.id ?? '']));
  h.send(applied(2, 1));
  assert.is(proposals(h).length, 2, 'one answered: the three waiting go at once');
  // Round 3 answers three with nothing pending: the next proposal waits for three requests.
  h.send(committed(3, [proposals(h)[1]?.id ?? '']));
  h.send(applied(3, 4));
  h.send({ type: 'service.request', request: request(5, 'add', '1') });
  h.send({ type: 'service.request', request: request(6, 'add', '1') });
  assert.is(proposals(h).length, 2, 'two of three: still gathering');
  h.send({ type: 'service.request', request: request(7, 'add', '1') });
  assert.is(proposals(h).length, 3, 'the third arrived: proposed without waiting for the timer');
  // Round 4 answers three again; only one comes back: the timer proposes it.
  h.send(committed(4, [proposals(h)[2]?.id ?? '']));
  h.send(applied(4, 7));
  h.send({ type: 'service.request', request: request(8, 'add', '1') });
  assert.is(proposals(h).length, 3);
  h.advance(1);
  assert.is(proposals(h).length, 3, 'before paxos_propose_gather: waiting');
  h.advance(1);
  assert.is(proposals(h).length, 4, 'paxos_propose_gather passed: proposed');
  h.send(committed(5, [proposals(h)[3]?.id ?? '']));
  assert.is(replies(h).length, 8, 'every request answered');
  h.stop();
});

test('paxos_propose_gather: requests that waited out the round count toward the target (rounds stay full)', () => {
  // 64 writers in flight: half are answered by a commit while the other half waited out the
  // round (wait_for_writeable while proposing). Counting only the answered made the next round
  // leave at once with the waiting half, and rounds carried 32 for ever after.
  const h = service('leader', 2);
  h.send(applied(1, 0));
  h.send(status(true, true));
  for (let i = 1; i <= 2; i += 1) h.send({ type: 'service.request', request: request(i, 'add', '1') });
  h.send(committed(2, [proposals(h)[0]?.id ?? '']));
  h.send(applied(2, 1));
  assert.is(proposals(h).length, 2, 'round 3 carries the second');
  // Two more arrive while round 3 is in flight; it answers one (the first group of two).
  h.send({ type: 'service.request', request: request(3, 'add', '1') });
  h.send({ type: 'service.request', request: request(4, 'add', '1') });
  h.send(committed(3, [proposals(h)[1]?.id ?? '']));
  h.send(applied(3, 2));
  assert.is(proposals(h).length, 3, 'one answered: the two waiting go at once');
  // Round 4 answers two while two more wait: the next round waits for the answered two as well.
  h.send({ type: 'service.request', request: request(5, 'add', '1') });
  h.send({ type: 'service.request', request: request(6, 'add', '1') });
  h.send(committed(4, [proposals(h)[2]?.id ?? '']));
  h.send(applied(4, 4));
  assert.is(proposals(h).length, 3, 'two waited, two answered: gathering for four');
  h.send({ type: 'service.request', request: request(7, 'add', '1') });
  assert.is(proposals(h).length, 3, 'three of four');
  h.send({ type: 'service.request', request: request(8, 'add', '1') });
  assert.is(proposals(h).length, 4, 'all four: proposed without waiting for the timer');
  const last = proposals(h)[3];
  assert.is(last?.replies.length, 4, 'one round for the four');
  h.send(committed(5, [last?.id ?? '']));
  assert.is(replies(h).length, 8, 'every request answered');
  h.stop();
});

test('paxos_propose_gather: a lone client waits for nothing (a commit that answered one)', () => {
  const h = service('leader', 2);
  h.send(applied(1, 0));
  h.send(status(true, true));
  for (let i = 1; i <= 3; i += 1) {
    h.send({ type: 'service.request', request: request(i, 'add', '1') });
    assert.is(proposals(h).length, i, `request ${i} proposed at once`);
    h.send(committed(1 + i, [proposals(h)[i - 1]?.id ?? '']));
    h.send(applied(1 + i, i));
  }
  assert.is(replies(h).length, 3);
  h.stop();
});

test('an aborted round answers EAGAIN; a retry of a committed update is answered without applying it again', () => {
  const h = service('leader');
  h.send(applied(1, 0));
  h.send(status(true, true));
  h.send({ type: 'service.request', request: request(1, 'add', '2') });
  const [p1] = proposals(h);
  h.send({ type: 'paxos.aborted', ids: [p1?.id ?? ''], reason: 'election' });
  assert.equal(replies(h), ['1:-11:update not committed (election); retry']);
  h.send({ type: 'service.request', request: request(1, 'add', '2') });
  const p2 = proposals(h)[1];
  h.send(applied(2, 2));
  h.send(committed(2, [p2?.id ?? '']));
  h.send({ type: 'service.request', request: request(1, 'add', '2') });
  assert.is(proposals(h).length, 2, 'the second retry did not propose');
  assert.equal(replies(h).slice(1), ['1:0:added 2', '1:0:added 2']);
  h.stop();
});

test('prepare_update errors are answered at once and change nothing', () => {
  const h = service('leader');
  h.send(applied(1, 0));
  h.send(status(true, true));
  h.send({ type: 'service.request', request: request(3, 'add', 'x') });
  assert.equal(replies(h), ['3:-22:not a number']);
  assert.equal(proposals(h), []);
  h.stop();
});

test('not readable while the service lags what paxos committed (update_from_paxos not seen yet)', () => {
  const h = service('peon');
  h.send(applied(1, 0));
  h.send(status(true, false, 2));
  h.send({ type: 'service.request', request: request(1, 'get') });
  assert.equal(replies(h), [], 'paxos is at 2, this service has applied 1');
  assert.is(forwards(h).length, 1, 'so the leader answers it');
  h.send(applied(2, 9));
  h.send({ type: 'service.request', request: request(2, 'get') });
  assert.equal(replies(h), ['2:0:9']);
  h.stop();
});

// --- at most once (machines/sessions.ts) ------------------------------------------------------

/** A request at a wall-clock time, with a deadline. */
const timed = (
  tid: number,
  receivedAt: number,
  deadline: number | undefined,
  ...cmd: string[]
): ServiceRequest => ({
  client: 'client.x',
  tid,
  cmd: ['counter', ...cmd],
  receivedAt,
  ...(deadline === undefined ? {} : { deadline }),
});

/** A proposal's ops as update_from_paxos sees them once committed (what the io actor reports). */
function asApplied(ops: StoreOp[]): AppliedOp[] {
  const utf8 = new TextEncoder();
  return ops.flatMap((op): AppliedOp[] => {
    if (op.op === 'put')
      return [{ ...op, value: typeof op.value === 'string' ? utf8.encode(op.value) : op.value }];
    if (op.op === 'put_number') return [{ op: 'put', prefix: op.prefix, key: op.key, value: le64(op.value) }];
    if (op.op === 'erase' || op.op === 'erase_range') return [op];
    return [];
  });
}

/** Commit the latest proposal: store.applied with its own ops, then paxos.committed. */
function commitLatest(h: ReturnType<typeof service>, version: number, store?: Map<string, Uint8Array>) {
  const proposal = proposals(h).at(-1);
  assert.ok(proposal, 'a proposal to commit');
  const ops = asApplied(proposal.ops);
  for (const op of ops) {
    if (op.prefix !== sessionPrefix || !store) continue;
    if (op.op === 'put') store.set(op.key, op.value);
    if (op.op === 'erase') store.delete(op.key);
  }
  h.send({ type: 'store.applied', version, ops });
  h.send(committed(version, [proposal.id]));
  return proposal;
}

test('an update is applied only before its deadline: none, passed, or too far ahead are refused, not proposed', () => {
  const h = service('leader');
  h.send(applied(1, 0));
  h.send(status(true, true));
  h.send({ type: 'service.request', request: timed(1, 10_000, undefined, 'add', '1') });
  h.send({ type: 'service.request', request: timed(2, 10_000, 9_000, 'add', '1') });
  h.send({ type: 'service.request', request: timed(3, 10_000, 10_000 + 301_000, 'add', '1') });
  assert.equal(replies(h), [
    '1:-22:an update needs a deadline (mon.command deadline, ms since the epoch): without one it cannot be applied at most once',
    "2:-110:the request's deadline passed 1000 ms ago; not applied",
    "3:-22:the request's deadline is 301 s ahead, more than 300 s (is the client's clock ahead?)",
  ]);
  assert.equal(proposals(h), []);
  // Reads need no deadline.
  h.send({ type: 'service.request', request: timed(4, 10_000, undefined, 'get') });
  assert.equal(replies(h).at(-1), '4:0:0');
  h.stop();
});

test('a remembered answer outlives a restart and a trim, and goes only once the clock has passed its deadline', () => {
  const store = new Map<string, Uint8Array>();
  const first = service('leader');
  first.send(applied(1, 0));
  first.send(status(true, true));
  first.send({ type: 'service.request', request: timed(1, 1_000, 60_000, 'add', '2') });
  const proposal = commitLatest(first, 2, store);
  assert.ok(
    proposal.ops.some(
      (o) => o.op === 'put_number' && o.prefix === sessionPrefix && o.key === 'counter_clock',
    ),
    'the clock rides along',
  );
  assert.equal(replies(first), ['1:0:added 2']);
  first.stop();

  // A new leader (a restart, or a monitor that full-synced after the versions were trimmed):
  // it knows only what the store holds under mon_session.
  const boot = sessionsBootFrom('counter', [...store.entries()]);
  assert.is(boot.clockMs, 1_000);
  const h = service('leader', 0, boot);
  h.send(applied(2, 2));
  h.send(status(true, true, 2));
  h.send({ type: 'service.request', request: timed(1, 30_000, 60_000, 'add', '2') });
  assert.equal(replies(h), ['1:0:added 2'], 'a late copy gets the first answer');
  assert.equal(proposals(h), [], 'and is not applied again');

  // The clock passes the deadline (a later update at 70 s): that proposal erases the record…
  h.send({ type: 'service.request', request: timed(2, 70_000, 130_000, 'add', '1') });
  const next = commitLatest(h, 3, store);
  assert.ok(
    next.ops.some((o) => o.op === 'erase' && o.prefix === sessionPrefix && o.key === 'counter_2'),
    'the expired record goes',
  );
  assert.ok(store.has('counter_3') && !store.has('counter_2'));
  // …and a copy arriving now is refused by its deadline: either remembered or refused, never twice.
  h.send({ type: 'service.request', request: timed(1, 70_500, 60_000, 'add', '2') });
  assert.equal(replies(h).at(-1), "1:-110:the request's deadline passed 10500 ms ago; not applied");
  assert.is(proposals(h).length, 1, 'only the update at 70 s was proposed');
  h.stop();
});

test('the clock never goes back: a leader whose own clock is behind still refuses what expired', () => {
  const store = new Map<string, Uint8Array>();
  const first = service('leader');
  first.send(applied(1, 0));
  first.send(status(true, true));
  first.send({ type: 'service.request', request: timed(1, 100_000, 110_000, 'add', '1') });
  commitLatest(first, 2, store);
  first.stop();
  const h = service('leader', 0, sessionsBootFrom('counter', [...store.entries()]));
  h.send(applied(2, 1));
  h.send(status(true, true, 2));
  // This leader's clock says 50 s, but the cluster's clock is at 100 s.
  h.send({ type: 'service.request', request: timed(7, 50_000, 90_000, 'add', '1') });
  assert.equal(replies(h), ["7:-110:the request's deadline passed 10000 ms ago; not applied"]);
  assert.equal(proposals(h), []);
  h.stop();
});

test('a deposed leader answers what it holds EAGAIN and never proposes it later', () => {
  const h = service('leader');
  h.send(applied(1, 0));
  h.send(status(true, true));
  h.send({ type: 'service.request', request: timed(1, 1_000, 60_000, 'add', '1') });
  assert.is(proposals(h).length, 1, 'in flight');
  h.send({ type: 'service.request', request: timed(2, 1_000, 60_000, 'add', '5') });
  assert.equal(replies(h), [], 'waits to be writeable (a proposal is in flight)');
  // The new role first (the monitor announces it as it leaves the quorum), then Paxos abandons
  // the round, answering its client EAGAIN; the service answers what it held itself.
  h.send({ type: 'service.monitor', monitor: { ...view('peon'), electionEpoch: 4, leader: 1 } });
  h.send({ type: 'paxos.aborted', ids: [proposals(h)[0]?.id ?? ''], reason: 'paxos restarted' });
  assert.equal(replies(h), [
    '2:-11:mon.b is no longer the leader; retry',
    '1:-11:update not committed (paxos restarted); retry',
  ]);
  // Leader again, writeable: nothing of the old term is proposed.
  h.send({ type: 'service.monitor', monitor: { ...view('leader'), electionEpoch: 6 } });
  h.send(status(true, true));
  assert.is(proposals(h).length, 1);
  h.stop();
});

test.run();
