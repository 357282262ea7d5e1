// The simulator's state checker (TigerBeetle's StateChecker): the safety properties of paxmon's
// Paxos and Elector, checked continuously while a seeded run throws faults at the cluster.
//
// What is checked, precisely:
//
// 1. one leader per election epoch — over the whole run, across restarts: every time any
//    monitor's statechart enters or stays in `leader` (seen on every snapshot, not only at step
//    boundaries), the pair (election_epoch, name) is recorded; a second name for an epoch fails.
//    A leader's epoch must also be even (odd epochs are elections in progress).
//    Ceph's classic ElectionLogic breaks this under message loss or a pause (sim/regressions.json,
//    seed 1): an election restarted in the same odd epoch, or an ack switched to a better
//    proposer in the same epoch, lets two candidates count one ack. paxmon's elector fixed both
//    (machines/elector.ts start() and receivePropose()), so `leaders: 'strict'` — the property
//    as stated — is the default. `leaders: 'active'` keeps Ceph's weaker guarantee for
//    comparison: at most one leader per epoch *completes recovery* (paxos active, updating or
//    writing), counting the weaker case only as a coverage mark.
// 2. committed values agree — for every Paxos version v, the bytes stored at `paxos/v` are
//    identical on every monitor that has v committed. The first bytes seen for v are kept; each
//    monitor's store is read incrementally, only the versions between what was checked last and
//    the store's own `paxos/last_committed` (the store's, not the statechart's: a peon's context
//    moves before its I/O actor applies the write). Versions below the store's first_committed
//    have been trimmed and are skipped; a committed version at or above it must be present. A
//    restarted monitor is rescanned from its first_committed.
// 3. last_committed never goes back — (a) within one incarnation of a monitor, the paxos
//    statechart's last_committed never decreases; (b) across a crash: a restarted monitor loads
//    a last_committed ≥ the highest last_committed it ever *announced* — put in a message that
//    left it (mon.paxos `lastCommitted`, a probe's `paxosLastVersion`) — with one exception: a
//    commit is applied without an fsync of its own (the value was accepted durably by the whole
//    quorum first; the next begin's fsync covers it), so a crash may lose the newest commit, and
//    then only that one, and only if the monitor still holds that very value as its accepted,
//    uncommitted one (pending_v): it forgot that the value was chosen, not the value. Recovery
//    (collect/last) commits it again. Any other loss fails: no other monitor (and no client) may
//    have observed a value this monitor then forgets.
// 4. first_committed ≤ last_committed — on every paxos snapshot; and lc > 0 ⇒ fc ≥ 1.
// 5. reads only under a lease — a monitor that answers a client's read (a config-key read such as
//    `config-key get`, or a read the workload issued — sim/workload.ts — with r = 0 or ENOENT) must be readable (Paxos::is_readable: in a quorum, lease valid) when the
//    answer leaves it, or — if the reply waited behind the monitor's I/O queue — it must have been
//    readable at some instant between receiving the request and sending the answer.
// 6. acknowledged writes are never lost, and 7. elections converge once the network heals — are
//    the liveness phase's and the history check's (sim/simulator.ts): after the faults stop, every
//    monitor must be in one stable quorum and every client answered within a bound, and then a
//    read of every key goes into the history that must be linearizable, so an acknowledged set
//    that a later read does not see fails the run.
import type { EntityName, Message } from '../transport/messages.ts';
import type { Coverage } from './coverage.ts';
import { isConfigKeyRead } from './workload.ts';

export class InvariantViolation extends Error {
  readonly invariant: string;
  readonly at: number;

  constructor(invariant: string, at: number, message: string) {
    super(`${invariant}: ${message}`);
    this.invariant = invariant;
    this.at = at;
  }
}

/** What the checker needs of a store: MemoryStore's reads (visible state). */
export interface CheckedStore {
  get(prefix: string, key: string): Promise<Uint8Array | undefined>;
  getNumber(prefix: string, key: string): Promise<number>;
}

/** A client read answered with data (not "try elsewhere"): ENOENT is an answer too. */
export function isReadAnswer(
  message: Message,
  isRead: (cmd: readonly string[]) => boolean = isConfigKeyRead,
): boolean {
  if (message.type !== 'mon.command_ack') return false;
  if (!isRead(message.cmd)) return false;
  return message.r === 0 || message.r === -2;
}

interface Incarnation {
  lastCommitted: number;
  /** Paxos::is_readable now. */
  readable: boolean;
  /** When it last stopped being readable (−∞ if never). */
  readableUntil: number;
  /** Client requests delivered to it: `client:tid` → when. */
  requests: Map<string, number>;
}

/** Which form of "one leader per election epoch" to enforce (see the header). */
export type LeaderInvariant = 'strict' | 'active';

export class StateChecker {
  readonly #now: () => number;
  readonly #coverage: Coverage;
  readonly #leaderInvariant: LeaderInvariant;
  #violation: InvariantViolation | null = null;
  /** election epoch → the one monitor that led it. */
  readonly #leaders = new Map<number, string>();
  /** Epochs already counted as led twice (the mark counts epochs, not snapshots). */
  readonly #doubleLed = new Set<number>();
  /** election epoch → the one leader whose Paxos recovery completed in it. */
  readonly #activeLeaders = new Map<number, string>();
  /** Paxos version → the first committed bytes seen for it, and where. */
  readonly #committed = new Map<number, { value: Uint8Array; name: string }>();
  /** Per monitor: versions up to this one have been compared. */
  readonly #checkedUpTo = new Map<string, number>();
  /** Per monitor: the highest last_committed it put in a message (survives crashes). */
  readonly #announced = new Map<string, number>();
  /** Requests a peon forwarded (peon:forwardTid → the client's request and when it left). */
  readonly #forwarded = new Map<string, { client: string; clientTid: number; cmd: string[]; at: number }>();
  /** Answers a peon relays from its leader (peon:client:tid): checked at the leader instead. */
  readonly #relayed = new Set<string>();
  readonly #incarnations = new Map<string, Incarnation>();
  /** Which commands are reads (config-key's, and those a workload issues as reads). */
  readonly #isRead: (cmd: readonly string[]) => boolean;

  constructor(
    now: () => number,
    coverage: Coverage,
    leaderInvariant: LeaderInvariant = 'strict',
    isRead: (cmd: readonly string[]) => boolean = isConfigKeyRead,
  ) {
    this.#now = now;
    this.#coverage = coverage;
    this.#leaderInvariant = leaderInvariant;
    this.#isRead = isRead;
  }

  get violation(): InvariantViolation | null {
    return this.#violation;
  }

  /** Throw the first violation recorded (callbacks record; the step loop throws). */
  assertOk(): void {
    if (this.#violation) throw this.#violation;
  }

  /** Record a violation; only the first one is kept (later ones are usually its echoes). */
  fail(invariant: string, message: string): void {
    this.#violation ??= new InvariantViolation(invariant, this.#now(), message);
  }

  /** Distinct versions compared so far. */
  get committedVersions(): number {
    return this.#committed.size;
  }

  /** Election epochs that had a leader. */
  get leaderEpochs(): number {
    return this.#leaders.size;
  }

  // --- 1. one leader per election epoch ------------------------------------------------------

  onLeader(name: string, electionEpoch: number): void {
    if (electionEpoch % 2 !== 0) {
      this.fail('leader epoch is even', `mon.${name} leads in odd (electing) epoch ${electionEpoch}`);
    }
    const previous = this.#leaders.get(electionEpoch);
    if (previous === undefined) this.#leaders.set(electionEpoch, name);
    else if (previous !== name) {
      const message = `mon.${name} leads election epoch ${electionEpoch}, which mon.${previous} led`;
      if (this.#leaderInvariant === 'strict') this.fail('one leader per election epoch', message);
      else if (!this.#doubleLed.has(electionEpoch)) {
        this.#doubleLed.add(electionEpoch);
        this.#coverage.mark('two leaders in one election epoch (classic: restart in the same odd epoch)');
      }
    }
  }

  /** A leader's Paxos completed recovery (active, updating or writing) in `electionEpoch`. */
  onLeaderRecovered(name: string, electionEpoch: number): void {
    const previous = this.#activeLeaders.get(electionEpoch);
    if (previous === undefined) this.#activeLeaders.set(electionEpoch, name);
    else if (previous !== name) {
      this.fail(
        'one recovered leader per election epoch',
        `mon.${name} completed Paxos recovery as leader of election epoch ${electionEpoch}, as mon.${previous} did`,
      );
    }
  }

  // --- 3 & 4. last_committed monotone, first ≤ last -------------------------------------------

  /** A monitor (re)started; `firstCommitted`/`lastCommitted` are what it loaded from its store. */
  onStart(
    name: string,
    firstCommitted: number,
    lastCommitted: number,
    uncommitted?: { version: number; value: Uint8Array } | null,
  ): void {
    const announced = this.#announced.get(name) ?? 0;
    const chosen = this.#committed.get(announced);
    const lostOnlyTheLastCommit =
      lastCommitted === announced - 1 &&
      uncommitted?.version === announced &&
      (!chosen || sameBytes(chosen.value, uncommitted.value));
    if (lostOnlyTheLastCommit) {
      this.#coverage.mark('restart lost the newest commit but holds its value as accepted');
    } else if (lastCommitted < announced) {
      this.fail(
        'last_committed never goes back',
        `mon.${name} restarted at last_committed ${lastCommitted}, but had announced ${announced} before it crashed`,
      );
    }
    this.#incarnations.set(name, {
      lastCommitted,
      readable: false,
      readableUntil: Number.NEGATIVE_INFINITY,
      requests: new Map(),
    });
    // Rescan a restarted monitor from its first version: its disk is what it is now.
    this.#checkedUpTo.set(name, Math.max(0, firstCommitted - 1));
  }

  onCrash(name: string): void {
    this.#incarnations.delete(name);
  }

  /** Every paxos snapshot of a running monitor. */
  onPaxos(name: string, firstCommitted: number, lastCommitted: number, readable: boolean): void {
    const incarnation = this.#incarnations.get(name);
    if (!incarnation) return;
    if (lastCommitted < incarnation.lastCommitted) {
      this.fail(
        'last_committed never goes back',
        `mon.${name} last_committed went from ${incarnation.lastCommitted} to ${lastCommitted}`,
      );
    }
    incarnation.lastCommitted = Math.max(incarnation.lastCommitted, lastCommitted);
    if (firstCommitted > lastCommitted || (lastCommitted > 0 && firstCommitted < 1)) {
      this.fail(
        'first_committed <= last_committed',
        `mon.${name} has first_committed ${firstCommitted}, last_committed ${lastCommitted}`,
      );
    }
    if (incarnation.readable && !readable) incarnation.readableUntil = this.#now();
    incarnation.readable = readable;
  }

  // --- 3b & 5. what leaves a monitor, what reaches it -----------------------------------------

  /** A client request reached a monitor (for the read-lease window). */
  onRequest(name: string, from: EntityName, tid: number): void {
    // The earliest copy counts (a duplicate or a retry of the same tid arrives later).
    const requests = this.#incarnations.get(name)?.requests;
    const key = `${from}:${tid}`;
    if (requests && !requests.has(key)) requests.set(key, this.#now());
  }

  /** A message leaves monitor `name`. */
  onSend(name: string, to: EntityName, message: Message): void {
    let announced: number | undefined;
    if (message.type === 'mon.paxos') announced = message.lastCommitted;
    else if (message.type === 'mon.probe') announced = message.paxosLastVersion;
    if (announced !== undefined && announced > (this.#announced.get(name) ?? 0)) {
      this.#announced.set(name, announced);
    }
    if (message.type === 'mon.forward') {
      this.#forwarded.set(`${name}:${message.tid}`, {
        client: message.client,
        clientTid: message.clientTid,
        cmd: message.request.cmd,
        at: this.#now(),
      });
    }
    if (message.type === 'mon.route') {
      // A leader answers a forwarded request: a read must be under the leader's lease.
      const peon = to.slice('mon.'.length);
      const forward = this.#forwarded.get(`${peon}:${message.tid}`);
      if (forward) {
        const relay = this.#relayed.has(`${name}:${forward.client}:${forward.clientTid}`);
        this.#relayed.add(`${peon}:${forward.client}:${forward.clientTid}`);
        // A monitor that forwarded the request on itself only passes the leader's answer back.
        if (relay) return;
        const answer = {
          type: 'mon.command_ack' as const,
          tid: forward.clientTid,
          cmd: forward.cmd,
          ...message.reply,
        };
        if (isReadAnswer(answer, this.#isRead))
          this.#checkRead(name, forward.client as EntityName, answer, forward.at);
      }
    }
    if (message.type === 'mon.command_ack' && isReadAnswer(message, this.#isRead)) {
      if (this.#relayed.has(`${name}:${to}:${message.tid}`)) return;
      this.#checkRead(name, to, message);
    }
  }

  #checkRead(
    name: string,
    to: EntityName,
    message: Message & { type: 'mon.command_ack' },
    forwardedAt?: number,
  ): void {
    const incarnation = this.#incarnations.get(name);
    if (!incarnation) return;
    // Kept after the answer: a duplicated request is answered twice. A forwarded request was
    // received no earlier than the peon sent it on.
    const received = forwardedAt ?? incarnation.requests.get(`${to}:${message.tid}`);
    if (incarnation.readable) return;
    if (received !== undefined && incarnation.readableUntil >= received) {
      this.#coverage.mark('read answered just after the lease ended (reply queued behind I/O)');
      return;
    }
    this.fail(
      'reads only under a valid lease',
      `mon.${name} answered ${to}'s read (tid ${message.tid}, ${message.cmd.join(' ')}, r=${message.r}) while not readable` +
        (received === undefined
          ? ''
          : ` (request received at ${received} ms; readable until ${incarnation.readableUntil} ms)`),
    );
  }

  // --- 2. committed values agree --------------------------------------------------------------

  /** Whether scan() may find something: the monitor's statechart committed past what was compared. */
  scanDue(name: string): boolean {
    const incarnation = this.#incarnations.get(name);
    return incarnation !== undefined && incarnation.lastCommitted > (this.#checkedUpTo.get(name) ?? 0);
  }

  /** Compare the newly committed versions of one running monitor's store. */
  async scan(name: string, store: CheckedStore): Promise<void> {
    const incarnation = this.#incarnations.get(name);
    if (!incarnation) return;
    const checked = this.#checkedUpTo.get(name) ?? 0;
    // Cheap test first: nothing new in the statechart means nothing new on disk either.
    if (incarnation.lastCommitted <= checked) return;
    const storeLastCommitted = await store.getNumber('paxos', 'last_committed');
    if (storeLastCommitted <= checked) return;
    const storeFirstCommitted = await store.getNumber('paxos', 'first_committed');
    for (let version = checked + 1; version <= storeLastCommitted; version++) {
      const value = await store.get('paxos', String(version));
      if (value === undefined) {
        if (version < storeFirstCommitted) continue; // trimmed
        this.fail(
          'committed values agree',
          `mon.${name} has last_committed ${storeLastCommitted} but no value at paxos/${version}`,
        );
        return;
      }
      const first = this.#committed.get(version);
      if (!first) this.#committed.set(version, { value, name });
      else if (!sameBytes(first.value, value)) {
        this.fail(
          'committed values agree',
          `paxos/${version} differs: mon.${first.name} committed ${describeBytes(first.value)}, mon.${name} has ${describeBytes(value)}`,
        );
        return;
      }
    }
    this.#checkedUpTo.set(name, storeLastCommitted);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}

function describeBytes(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.subarray(0, 24)).toString('hex');
  return `${bytes.length} bytes ${hex}${bytes.length > 24 ? '…' : ''}`;
}
