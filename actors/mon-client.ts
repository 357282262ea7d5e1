// MonClient (Ceph's src/mon/MonClient.cc): sends commands to any monitor of a list and fails over.
// Each command carries a unique tid and one deadline for all its attempts; a timeout, a lost
// connection or "not in quorum" (EAGAIN) moves it to the next monitor, until that deadline, after
// which it fails with ETIMEDOUT. An attempt that ends unanswered takes its request back from the
// messenger's queue, so it never reaches a monitor after the client has moved on.
//
// The client authenticates as an entity (`client.admin` unless named) with that entity's key
// (Ceph's `-n NAME -k KEYRING`); its session name stays its own (`client.<random>`, one per
// process, as Ceph's client.<global_id>), so two processes with one key are two sessions. A wrong
// key is final: EACCES at once, with no retry on another monitor — unless an attempt of the
// command may already have reached a monitor: then an EACCES (a monitor starting, or restarted
// under the client, refuses every key for a moment) is no answer to a command that may have been
// applied, and the client goes on to the next monitor (issue 16, soak finding 5).
//
// Updates go to the leader once the client knows it: a peon that forwarded a request names the
// leader and the command's prefix in its answer (transport/messages.ts LeaderHint), and the next
// commands of that prefix go to that leader first — learnt as Ceph's MonClient learns monitors
// from the monmap, not only from its list. Reads stay with the monitor the client talks to (a
// peon answers them under its lease). Ceph's MonClient sends everything to the one monitor it
// hunted to, which forwards every update; paxmon's saves that forward and its route back (two
// sealed records between monitors and a hop, issue 13). A hint that has gone stale costs a
// forward; an attempt at the hinted leader that fails forgets it and goes on as before.
import { nanoid } from 'nanoid';
import { CryptoKeyError, decodeCryptoKey } from '../machines/crypto-key.ts';
import {
  type CommandReply,
  type EntityName,
  type LeaderHint,
  limits,
  type Message,
} from '../transport/messages.ts';
import { Messenger, messengerBudgetDefaults, type Queued, type SessionMode } from '../transport/messenger.ts';

export interface MonAddress {
  /** The monitor's name when known (`a`); otherwise it is learnt from the handshake. */
  name?: string;
  addr: string;
}

export interface MonClientOptions {
  mons: MonAddress[];
  /** The entity to authenticate as (Ceph's `-n`; default `client.admin`). */
  name?: string;
  /**
   * That entity's key, as a keyring holds it (`AQ…==`, machines/crypto-key.ts): from the
   * cluster's keyring (actors/keyring.ts readKeyring) or `auth get-or-create`.
   */
  key: string;
  /** Session modes offered, in order of preference (Ceph's ms_client_mode; default crc, then secure). */
  modes?: SessionMode[];
  /** The cluster fsid when known; otherwise any cluster's monitor is accepted. */
  fsid?: string;
  /** Time for one attempt at one monitor (default 2 s). */
  attemptTimeoutMs?: number;
  /**
   * Time for the whole command across monitors (default 10 s), at most requestDeadlineMaxMs:
   * the command's deadline, sent with every attempt.
   */
  timeoutMs?: number;
}

/**
 * The longest a command's deadline may lie ahead: 300 s, the widest window the monitors accept
 * (they remember an update's answer until its deadline, to answer a retry without applying it
 * twice). A command's deadline is `Date.now() + Math.min(timeoutMs, requestDeadlineMaxMs)`, the
 * same for all its attempts; the client stops retrying at it.
 */
export const requestDeadlineMaxMs = 300_000;

export class MonClientError extends Error {
  constructor(
    readonly errno: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Also a monitor's answer when a request's deadline passed before it could be applied (it was not). */
export const ETIMEDOUT = 110;
export const EAGAIN = 11;
export const EACCES = 13;
/** A refusal that is final: the monitor did not accept our key (transport/messenger.ts). */
const authRefused = /EACCES/;
/** Command prefixes a client remembers as updates (a cluster has a few dozen commands). */
const updatePrefixesMax = 256;
/** Any-cluster fsid: the client does not know the cluster yet (like a Ceph client before auth). */
export const anyFsid = '00000000-0000-0000-0000-000000000000';

interface Pending {
  resolve: (reply: CommandReply) => void;
  monitor: EntityName;
}

/**
 * A client of the monitors (Ceph's MonClient): sends Ceph commands to any monitor of its list
 * over TCP, failing over on timeouts, lost connections and EAGAIN until the command's deadline
 * (`timeoutMs` ahead, at most {@link requestDeadlineMaxMs}), which every attempt carries.
 *
 * @example
 * const client = new MonClient({ mons: [{ addr: '127.0.0.1:6789' }, { addr: '127.0.0.1:6790' }] });
 * const reply = await client.command(['quorum_status']); // { r, rs, data }
 * await client.close();
 */
export class MonClient {
  readonly name: EntityName = `client.${nanoid(10).replace(/[^A-Za-z0-9_-]/g, '_')}`;
  /** The entity this client authenticates as. */
  readonly entity: string;
  readonly #messenger: Messenger;
  readonly #mons: MonAddress[];
  readonly #attemptTimeoutMs: number;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  #tid = 0;
  #next = 0;
  /** The leader's index in #mons, from the last LeaderHint; undefined when not known. */
  #leader: number | undefined;
  /** Command prefixes a peon forwarded to the leader (updates), at most updatePrefixesMax. */
  readonly #updatePrefixes = new Set<string>();

  constructor(options: MonClientOptions) {
    if (options.mons.length === 0) throw new MonClientError(22, 'EINVAL', 'no monitor address given');
    // A copy: monitors learnt from hints join it (the caller's entries still learn their names).
    this.#mons = [...options.mons];
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 2000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.entity = options.name ?? 'client.admin';
    if (!/^client\.[^\s]+$/.test(this.entity))
      throw new MonClientError(22, 'EINVAL', `'${this.entity}' is not a client entity name (client.NAME)`);
    let secret: Uint8Array;
    try {
      secret = decodeCryptoKey(options.key).secret;
    } catch (error) {
      if (!(error instanceof CryptoKeyError)) throw error;
      throw new MonClientError(22, 'EINVAL', `the key of ${this.entity} is malformed: ${error.message}`);
    }
    this.#messenger = new Messenger({
      name: this.name,
      fsid: options.fsid ?? anyFsid,
      reconnectMs: { initial: 50, max: 500 },
      auth: { entity: this.entity, secret, modes: options.modes ?? ['crc', 'secure'] },
    });
    this.#messenger.setHandlers({
      onMessage: (_from: EntityName, message: Message) => {
        if (message.type !== 'mon.command_ack') return;
        const pending = this.#pending.get(message.tid);
        if (!pending) return; // a late reply to an attempt we gave up on
        this.#pending.delete(message.tid);
        if (message.leader) this.#learnLeader(message.leader);
        pending.resolve({ r: message.r, rs: message.rs, data: message.data });
      },
      onReset: (peer: EntityName) => this.#failPending(peer, `connection to ${peer} lost`),
      // A monitor that is down costs one refused connect, not the whole attempt timeout.
      onUnreachable: (peer: EntityName, reason: string) => {
        if (authRefused.test(reason)) this.#failPending(peer, reason.replace(/^.*?EACCES: /, ''), -EACCES);
        else this.#failPending(peer, `${peer} unreachable: ${reason}`);
      },
    });
  }

  /**
   * Run one command (its words, as on the command line) and return Ceph's `{ r, rs, data }`.
   * Rejects with MonClientError ETIMEDOUT when no monitor answered in time. An answer other than
   * EAGAIN is final, r = -110 (ETIMEDOUT: the deadline passed, the command was not applied) too.
   *
   * @example
   * const client = new MonClient({ mons: [{ addr: '127.0.0.1:6789' }] });
   * const { data } = await client.command(['quorum_status']);
   */
  async command(cmd: string[], inbuf?: Uint8Array): Promise<CommandReply> {
    // One deadline for every attempt: the monitors apply the request only before it, and at most
    // once (they remember the answer until then), so no attempt can be applied after the client
    // has given up on the command.
    const windowMs = Math.min(this.#timeoutMs, requestDeadlineMaxMs);
    const deadline = Date.now() + windowMs;
    // One tid for every attempt: a retry is the same request, so the leader's dedupe (client +
    // tid) answers it from the first attempt's commit instead of applying it twice.
    const tid = ++this.#tid;
    // Beyond a frame no monitor would read it (the messenger drops it at the sender): say so now
    // rather than time out.
    // A monitor reads at most clientFrameBytesMax from a client (transport/messenger.ts).
    const frameRoom = messengerBudgetDefaults.clientFrameBytesMax - 64 * 1024;
    if (inbuf && inbuf.byteLength > frameRoom)
      throw new MonClientError(
        27,
        'EFBIG',
        `input of ${inbuf.byteLength} bytes exceeds a message's ${frameRoom} bytes`,
      );
    const noAnswer = 'no monitor answered';
    let lastError = noAnswer;
    // Every monitor of the list refused the connection or said "not in quorum" in a row: they
    // are starting or electing. Wait a little before going round again instead of a tight loop
    // (Ceph's monitor holds such a command until it is in quorum, and MonClient hunts on a
    // timer; paxmon answers EAGAIN and the client comes back).
    let refusals = 0;
    let backoffMs = 25;
    const timedOutAt = new Set<EntityName>();
    let leaderFirst = this.#leader !== undefined && this.#isUpdate(cmd);
    // An attempt's request was written to a monitor's socket (it may have been applied): from then
    // on an EACCES is one monitor's refusal of the session, not the command's answer.
    let reached = false;
    // An attempt shortened by the command's deadline that failed as the deadline came failed
    // for that alone: the error names the failure before it (1 ms: timers round).
    const cutShort = (allowedMs: number) =>
      allowedMs < this.#attemptTimeoutMs && deadline - Date.now() <= 1 && lastError !== noAnswer;
    while (Date.now() < deadline) {
      if (refusals >= this.#mons.length) {
        await new Promise((r) => setTimeout(r, Math.max(0, Math.min(backoffMs, deadline - Date.now()))));
        backoffMs = Math.min(backoffMs * 2, 400);
        refusals = 0;
        continue;
      }
      // An update of a prefix a peon forwarded goes to the leader first (once per command).
      const hinted = leaderFirst ? this.#leader : undefined;
      leaderFirst = false;
      const mon = this.#mons[hinted ?? this.#next % this.#mons.length] as MonAddress;
      // After a failed attempt: the hinted leader is forgotten (the next forward names the new
      // one); otherwise the next monitor of the list.
      const moveOn = () => {
        if (hinted === undefined) this.#next += 1;
        else if (this.#leader === hinted) this.#leader = undefined;
      };
      const resolveMs = Math.min(this.#attemptTimeoutMs, deadline - Date.now());
      const resolved = await this.#resolve(mon, resolveMs);
      if ('error' in resolved && authRefused.test(resolved.error) && !reached)
        throw new MonClientError(EACCES, 'EACCES', resolved.error.replace(/^.*?(EACCES: )/, ''));
      if ('error' in resolved) {
        if (!cutShort(resolveMs)) lastError = `no answer from ${mon.addr}: ${resolved.error}`;
        refusals += 1;
        moveOn();
        continue;
      }
      const { name } = resolved;
      const waitMs = Math.max(1, Math.min(this.#attemptTimeoutMs, deadline - Date.now()));
      const request: Message = { type: 'mon.command', tid, cmd, deadline, ...(inbuf ? { inbuf } : {}) };
      let queued: Queued | undefined;
      const reply = await new Promise<CommandReply | null>((resolve) => {
        const timer = setTimeout(() => {
          this.#pending.delete(tid);
          resolve(null);
        }, waitMs);
        this.#pending.set(tid, {
          monitor: name,
          resolve: (r) => {
            clearTimeout(timer);
            resolve(r);
          },
        });
        queued = this.#messenger.send(name, request, mon.addr);
      });
      // However the attempt ended, take back the request if it still waits in the messenger's
      // queue (the monitor unreachable, the dial hanging): sent once a connection formed, it
      // would reach the monitor after the client moved on. Once written to a socket it cannot be
      // recalled, and its deadline bounds it; after an answer there is nothing to take back.
      if (queued && !this.#messenger.withdraw(queued)) reached = true;
      // A session refused (the handshake's EACCES, said by this client, not the monitor's answer
      // to the command: a caps refusal is an answer, and final).
      if (reply?.r === -EACCES && reached && this.#sessionRefusals.has(reply)) {
        lastError = reply.rs;
        refusals += 1;
        moveOn();
        continue;
      }
      // ETIMEDOUT while this client's own clock says the deadline is still ahead: that monitor's
      // clock runs ahead of ours (the deadline is wall-clock time). It did not apply the request
      // and never will; another monitor, with a truer clock, may (chaos finding: a monitor two
      // minutes ahead refused every command sent to it, and the client gave up at once). Once
      // every monitor of the list has said so, the answer is final.
      if (reply?.r === -ETIMEDOUT) timedOutAt.add(name);
      const skewed =
        reply?.r === -ETIMEDOUT && Date.now() < deadline - 1 && timedOutAt.size < this.#mons.length;
      if (reply && reply.r !== -EAGAIN && !skewed) return reply;
      refusals = reply ? refusals + 1 : 0;
      if (reply) lastError = reply.rs;
      else if (!cutShort(waitMs)) lastError = `${name} (${mon.addr}) did not answer within ${waitMs} ms`;
      moveOn();
    }
    throw new MonClientError(
      ETIMEDOUT,
      'ETIMEDOUT',
      `no monitor answered within ${windowMs} ms (last: ${lastError})`,
    );
  }

  /** The monitor this client sends updates to first (a peon's LeaderHint named it), if any. */
  get leader(): string | undefined {
    return this.#leader === undefined ? undefined : this.#mons[this.#leader]?.name;
  }

  /**
   * Learn the name of every monitor of the list given by address only (one handshake each, at
   * once); those that do not answer within the attempt timeout keep no name.
   */
  async resolveNames(): Promise<MonAddress[]> {
    await Promise.all(this.#mons.map((mon) => this.#resolve(mon, this.#attemptTimeoutMs)));
    return this.#mons.map((mon) => ({ ...mon }));
  }

  /**
   * A peon's LeaderHint: remember the prefix as an update and the leader, added to the list when
   * it is not in it (by name, or by address when the entry's name is not known yet).
   */
  #learnLeader(hint: LeaderHint): void {
    if (this.#updatePrefixes.size >= updatePrefixesMax) this.#updatePrefixes.clear();
    this.#updatePrefixes.add(hint.prefix);
    let index = this.#mons.findIndex((m) => m.name === hint.name);
    if (index < 0) index = this.#mons.findIndex((m) => m.name === undefined && m.addr === hint.addr);
    if (index < 0) {
      if (this.#mons.length >= limits.monitorsMax) return;
      index = this.#mons.push({ name: hint.name, addr: hint.addr }) - 1;
    }
    const mon = this.#mons[index] as MonAddress;
    mon.name ??= hint.name;
    this.#leader = index;
  }

  /** Whether a peon forwarded a command of this prefix (its first words, as declared). */
  #isUpdate(cmd: readonly string[]): boolean {
    let prefix = '';
    for (let i = 0; i < cmd.length && prefix.length <= limits.leaderHintPrefixMax; i++) {
      prefix = i === 0 ? (cmd[0] as string) : `${prefix} ${cmd[i]}`;
      if (this.#updatePrefixes.has(prefix)) return true;
    }
    return false;
  }

  /** Give up on the attempts waiting for `monitor`: they go on to the next monitor. */
  #failPending(monitor: EntityName, rs: string, r = -EAGAIN): void {
    for (const [tid, pending] of this.#pending) {
      if (pending.monitor !== monitor) continue;
      this.#pending.delete(tid);
      const reply = { r, rs, data: new Uint8Array() };
      if (r === -EACCES) this.#sessionRefusals.add(reply);
      pending.resolve(reply);
    }
  }

  /** The replies this client made up for a session the monitor refused (not a monitor's answer). */
  readonly #sessionRefusals = new WeakSet<CommandReply>();

  /** The monitor's entity name: given, or learnt by connecting to its address. */
  async #resolve(mon: MonAddress, timeoutMs: number): Promise<{ name: EntityName } | { error: string }> {
    if (mon.name) return { name: `mon.${mon.name}` };
    try {
      const learnt = await this.#messenger.connect(mon.addr, timeoutMs);
      if (!learnt.startsWith('mon.')) return { error: `${learnt} listens there, not a monitor` };
      mon.name = learnt.slice(4);
      return { name: learnt };
    } catch (error) {
      return { error: (error as Error).message };
    }
  }

  async close(): Promise<void> {
    for (const pending of this.#pending.values())
      pending.resolve({ r: -EAGAIN, rs: 'client closed', data: new Uint8Array() });
    this.#pending.clear();
    await this.#messenger.close();
  }
}
