// At most once: what a PaxosService remembers of its clients' updates, as replicated state.
//
// A client update is applied at most once, whatever the partitions, crashes, syncs, trims, leader
// changes and late frames. Raft's client sessions (Ongaro's dissertation §6.3) keep per client the
// answers of its requests in the replicated state machine and expire them by a rule every server
// applies identically; paxmon does the same with a deadline the client puts in every request:
//
// - Every client update carries a deadline (wall-clock ms since the epoch; MonClient sends its
//   command timeout), the same for every attempt of that request.
// - The answer of an applied update is written in the very Paxos version that applies it
//   (`mon_session/<prefix>_<version>`: client#tid, r, rs, deadline), so it commits — or not —
//   with the update, travels with every store sync, and is never cut by a Paxos trim.
// - Each version also carries the service's clock (`mon_session/<prefix>_clock`): the highest
//   leader time committed so far. It never goes back, whoever leads, whatever their clocks say.
// - A remembered answer is dropped (its record erased, in a later version) only once the clock
//   has passed its deadline; and an update whose deadline is not after the clock — or after the
//   leader's own time — is refused (ETIMEDOUT), never applied.
//
// So for any request, either its answer is in the table (a retry gets that same answer), or the
// clock has passed its deadline on every monitor that may lead (refused): no count, no trim, no
// sync and no leader change can make a monitor forget an update that a late copy could still
// apply. Only the leader's clock decides *when* an answer may go; a skewed clock can refuse a
// request early or keep an answer late, never apply a request twice.
//
// Pure: the runtime gives wall-clock times in the requests (`receivedAt`) and ticks (`now`).
import type { AppliedOp, CommandReplyData, StoreOp } from './effects.ts';

/** The store prefix of the records (synced with the store; see machines/sync.ts). */
export const sessionPrefix = 'mon_session';

/** One remembered answer as a record stores it: [client#tid, r, rs, deadline]. */
export type AnsweredRecord = [key: string, r: number, rs: string, deadlineMs: number];

/**
 * One service's remembered answers. Mutated in place, and only here: every dispatch looks a
 * request up, so copying it per commit would cost a copy of the whole table per write (the bench
 * profile showed a copied table at a third of a leader's CPU).
 */
export interface Sessions {
  /** The service's clock: the highest leader time committed (never goes back). */
  clockMs: number;
  /**
   * Committed answers, by client, then by tid ({@link ClientAnswers}). A monitor remembers every
   * answer until its deadline — tens of thousands under load (the bench's (e) has ~55,000 per
   * monitor) — so an answer is two array slots in its client's entry, not a map entry of its own:
   * a table keyed by `client#tid` strings held 170 bytes of heap per answer (its hash table, the
   * key string and a reply object: 9.4 of a leader's 22 MiB of live heap after 100,000 writes).
   */
  answers: Map<string, ClientAnswers>;
  /** Answers whose key is not `client#tid` with a canonical tid (none that paxmon writes). */
  otherAnswers: Map<string, Remembered>;
  /** How many answers are remembered (mon_session_answers_max counts these). */
  answerCount: number;
  /** The versions whose record is in the store: version → the latest deadline in it, its answers. */
  records: Map<number, AnswerRecord>;
  /** Records by the second their latest deadline falls in (ceil), for expiry in deadline order. */
  expiries: Map<number, Set<number>>;
  /** The seconds of `expiries`, ascending. */
  expirySeconds: number[];
}

/**
 * A remembered reply: its text alone when r = 0 (most answers; `''` is one shared string), else
 * the reply (shared when it has no text: `internReply`).
 */
type Remembered = string | CommandReplyData;

/**
 * One client's remembered answers: its tids ascending, each with its reply, or `undefined` once
 * erased — the slot stays until more than half the entry is erased, then the entry is compacted
 * (a client's answers are recorded and expire in about tid order, so most appends and erasures are
 * at the ends).
 */
export interface ClientAnswers {
  /** The client's name: the one string of it that every record naming it holds. */
  client: string;
  tids: number[];
  replies: (Remembered | undefined)[];
  erased: number;
}

/**
 * The answers of one version's record, to erase them when it expires: `clients[i]`'s tid
 * `tids[i]`, or with tid -1 a key of `otherAnswers` (tids are never negative: transport/messages.ts).
 */
interface AnswerRecord {
  deadlineMs: number;
  clients: string[];
  tids: number[];
}

export interface SessionsBoot {
  clockMs: number;
  records: { version: number; answers: AnsweredRecord[] }[];
}

/** Records erased in one proposal, at most (a large backlog goes over several). */
export const expiredRecordsPerProposalMax = 500;

const recordKey = (prefix: string, version: number) => `${prefix}_${version}`;
const clockKey = (prefix: string) => `${prefix}_clock`;

export function createSessions(boot?: SessionsBoot): Sessions {
  const sessions: Sessions = {
    clockMs: boot?.clockMs ?? 0,
    answers: new Map(),
    otherAnswers: new Map(),
    answerCount: 0,
    records: new Map(),
    expiries: new Map(),
    expirySeconds: [],
  };
  for (const { version, answers } of boot?.records ?? []) addRecord(sessions, version, answers);
  return sessions;
}

/** The remembered answer of `client`'s update `tid`, already applied, if any. */
export function answerOf(sessions: Sessions, client: string, tid: number): CommandReplyData | undefined {
  const entry = sessions.answers.get(client);
  if (entry) {
    const at = tidIndex(entry.tids, tid);
    const remembered = entry.tids[at] === tid ? entry.replies[at] : undefined;
    if (remembered !== undefined) return replyOf(remembered);
  }
  if (sessions.otherAnswers.size === 0) return undefined;
  const other = sessions.otherAnswers.get(requestKey(client, tid));
  return other === undefined ? undefined : replyOf(other);
}

/**
 * The key of a client's request in a stored record: client#tid. `join` builds one flat string
 * (a template literal builds a rope of three).
 */
export const requestKey = (client: string, tid: number): string => [client, tid].join('#');

const replyOf = (remembered: Remembered): CommandReplyData =>
  typeof remembered === 'string' ? { r: 0, rs: remembered } : remembered;

/**
 * Whether a client update may still be applied at `nowMs` (the leader's time): null when it may,
 * else the refusal (the request is not applied). Monitors' own requests (`mon.*`) are not retried
 * by anyone and carry no deadline.
 */
export function admit(
  sessions: Sessions,
  request: { client: string; deadline?: number },
  nowMs: number,
  limits: { deadlineMaxMs: number; answersMax: number },
): CommandReplyData | null {
  if (request.client.startsWith('mon.')) return null;
  const deadline = request.deadline;
  if (deadline === undefined)
    return {
      r: -22,
      rs: 'an update needs a deadline (mon.command deadline, ms since the epoch): without one it cannot be applied at most once',
    };
  const now = Math.max(sessions.clockMs, nowMs);
  if (deadline <= now)
    return {
      r: -110,
      rs: `the request's deadline passed ${now - deadline} ms ago; not applied`,
    };
  if (deadline > nowMs + limits.deadlineMaxMs)
    return {
      r: -22,
      rs: `the request's deadline is ${Math.round((deadline - nowMs) / 1000)} s ahead, more than ${limits.deadlineMaxMs / 1000} s (is the client's clock ahead?)`,
    };
  if (sessions.answerCount >= limits.answersMax)
    return { r: -11, rs: `${sessions.answerCount} answers remembered, the most allowed; retry` };
  return null;
}

/**
 * The ops a proposal of `version` carries for at-most-once: the answers it applies, the clock, and
 * the erasure of records every deadline of which the clock has passed.
 */
export function sessionOps(
  sessions: Sessions,
  prefix: string,
  version: number,
  nowMs: number,
  answers: { key: string; reply: CommandReplyData; deadlineMs: number }[],
): StoreOp[] {
  const clockMs = Math.max(sessions.clockMs, nowMs);
  const ops: StoreOp[] = [{ op: 'put_number', prefix: sessionPrefix, key: clockKey(prefix), value: clockMs }];
  if (answers.length) {
    const record: AnsweredRecord[] = answers.map((a) => [a.key, a.reply.r, a.reply.rs, a.deadlineMs]);
    ops.push({
      op: 'put',
      prefix: sessionPrefix,
      key: recordKey(prefix, version),
      value: JSON.stringify(record),
    });
  }
  let erased = 0;
  for (const second of sessions.expirySeconds) {
    // Every deadline of this second's records is at most second × 1000.
    if (second * 1000 >= clockMs || erased >= expiredRecordsPerProposalMax) break;
    for (const expired of sessions.expiries.get(second) ?? []) {
      if (erased >= expiredRecordsPerProposalMax) break;
      ops.push({ op: 'erase', prefix: sessionPrefix, key: recordKey(prefix, expired) });
      erased += 1;
    }
  }
  return ops;
}

/**
 * A committed version's ops (update_from_paxos, on every monitor): its answers, clock and
 * erasures. Returns whether anything of this service's sessions changed.
 */
export function applySessionOps(sessions: Sessions, prefix: string, ops: AppliedOp[]): boolean {
  let changed = false;
  const own = `${prefix}_`;
  for (const op of ops) {
    if (op.prefix !== sessionPrefix) continue;
    if (op.op === 'erase_range') {
      // A store sync starting over: nothing of the old store is remembered.
      clear(sessions);
      changed = true;
      continue;
    }
    if (!op.key.startsWith(own)) continue;
    const suffix = op.key.slice(own.length);
    if (suffix === 'clock') {
      if (op.op === 'put') sessions.clockMs = Math.max(sessions.clockMs, readNumber(op.value));
      changed = true;
      continue;
    }
    const version = Number(suffix);
    if (!Number.isSafeInteger(version) || version <= 0) continue;
    changed = true;
    // The leader remembered this version's answers as it answered them (recordAnswers): a
    // version's record never changes, so its copy from the store is not parsed a second time.
    if (op.op === 'put') {
      if (!sessions.records.has(version)) addRecord(sessions, version, parseAnswered(op.value));
    } else removeRecord(sessions, version);
  }
  return changed;
}

/** Remember the answers `version` applied (the leader, as it answers them at the commit). */
export function recordAnswers(sessions: Sessions, version: number, answers: AnsweredRecord[]): void {
  if (answers.length) addRecord(sessions, version, answers);
}

function addRecord(sessions: Sessions, version: number, answers: AnsweredRecord[]): void {
  if (sessions.records.has(version)) removeRecord(sessions, version);
  let deadlineMs = 0;
  const clients: string[] = [];
  const tids: number[] = [];
  for (const [key, r, rs, deadline] of answers) {
    const remembered: Remembered = r === 0 ? rs : internReply(r, rs);
    const at = key.lastIndexOf('#');
    const tidText = key.slice(at + 1);
    const tid = Number(tidText);
    if (at > 0 && Number.isSafeInteger(tid) && tid >= 0 && String(tid) === tidText) {
      const [client, added] = putAnswer(sessions, key.slice(0, at), tid, remembered);
      if (added) sessions.answerCount += 1;
      clients.push(client);
      tids.push(tid);
    } else {
      if (!sessions.otherAnswers.has(key)) sessions.answerCount += 1;
      sessions.otherAnswers.set(key, remembered);
      clients.push(key);
      tids.push(-1);
    }
    if (deadline > deadlineMs) deadlineMs = deadline;
  }
  sessions.records.set(version, { deadlineMs, clients, tids });
  const second = Math.ceil(deadlineMs / 1000);
  let bucket = sessions.expiries.get(second);
  if (!bucket) {
    bucket = new Set();
    sessions.expiries.set(second, bucket);
    const seconds = sessions.expirySeconds;
    let at = seconds.length;
    while (at > 0 && (seconds[at - 1] as number) > second) at -= 1;
    seconds.splice(at, 0, second);
  }
  bucket.add(version);
}

/** The first index of `tids` (ascending) whose tid is not below `tid`. */
function tidIndex(tids: number[], tid: number): number {
  let lo = 0;
  let hi = tids.length;
  // Most lookups are of a client's latest requests: try the end first.
  if (hi > 0 && (tids[hi - 1] as number) < tid) return hi;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((tids[mid] as number) < tid) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Remember `client`'s answer to `tid`. Returns the client's name as the table keeps it (one string
 * per client for every record that names it) and whether the answer is new.
 */
function putAnswer(
  sessions: Sessions,
  client: string,
  tid: number,
  remembered: Remembered,
): [string, boolean] {
  const entry = sessions.answers.get(client);
  if (!entry) {
    sessions.answers.set(client, { client, tids: [tid], replies: [remembered], erased: 0 });
    return [client, true];
  }
  client = entry.client;
  const { tids, replies } = entry;
  const at = tidIndex(tids, tid);
  if (at === tids.length) {
    tids.push(tid);
    replies.push(remembered);
    return [client, true];
  }
  if (tids[at] === tid) {
    const added = replies[at] === undefined;
    if (added) entry.erased -= 1;
    replies[at] = remembered;
    return [client, added];
  }
  tids.splice(at, 0, tid);
  replies.splice(at, 0, remembered);
  return [client, true];
}

/** Forget `client`'s answer to `tid` (its record expired). */
function eraseAnswer(sessions: Sessions, client: string, tid: number): void {
  if (tid < 0) {
    if (sessions.otherAnswers.delete(client)) sessions.answerCount -= 1;
    return;
  }
  const entry = sessions.answers.get(client);
  if (!entry) return;
  const at = tidIndex(entry.tids, tid);
  if (entry.tids[at] !== tid || entry.replies[at] === undefined) return;
  entry.replies[at] = undefined;
  entry.erased += 1;
  sessions.answerCount -= 1;
  const live = entry.tids.length - entry.erased;
  if (live === 0) {
    sessions.answers.delete(client);
    return;
  }
  if (entry.erased <= live) return;
  // More erased slots than answers: keep only the answers (amortised O(1) per erasure).
  let to = 0;
  for (let from = 0; from < entry.tids.length; from++) {
    const remembered = entry.replies[from];
    if (remembered === undefined) continue;
    entry.tids[to] = entry.tids[from] as number;
    entry.replies[to] = remembered;
    to += 1;
  }
  entry.tids.length = to;
  entry.replies.length = to;
  entry.erased = 0;
}

/** Shared replies without text, by return code: most remembered answers are `{ r: 0, rs: '' }`. */
const plainReplies = new Map<number, CommandReplyData>();

/** A remembered reply; one without text is shared, frozen since every retry of its request gets it. */
function internReply(r: number, rs: string): CommandReplyData {
  if (rs !== '') return { r, rs };
  let reply = plainReplies.get(r);
  if (!reply) {
    reply = Object.freeze({ r, rs });
    if (plainReplies.size < 256) plainReplies.set(r, reply);
  }
  return reply;
}

function removeRecord(sessions: Sessions, version: number): void {
  const record = sessions.records.get(version);
  if (!record) return;
  sessions.records.delete(version);
  for (let i = 0; i < record.tids.length; i++)
    eraseAnswer(sessions, record.clients[i] as string, record.tids[i] as number);
  const second = Math.ceil(record.deadlineMs / 1000);
  const bucket = sessions.expiries.get(second);
  if (!bucket) return;
  bucket.delete(version);
  if (bucket.size > 0) return;
  sessions.expiries.delete(second);
  const at = sessions.expirySeconds.indexOf(second);
  if (at >= 0) sessions.expirySeconds.splice(at, 1);
}

function clear(sessions: Sessions): void {
  sessions.answers.clear();
  sessions.otherAnswers.clear();
  sessions.answerCount = 0;
  sessions.records.clear();
  sessions.expiries.clear();
  sessions.expirySeconds.length = 0;
}

/**
 * A record's answers. A record written before deadlines existed ([key, r, rs]) counts as expired
 * (deadline 0) and goes with the next proposal; a malformed one holds nothing.
 */
export function parseAnswered(value: Uint8Array): AnsweredRecord[] {
  try {
    const entries = JSON.parse(new TextDecoder().decode(value)) as unknown;
    if (!Array.isArray(entries)) return [];
    const records: AnsweredRecord[] = [];
    for (const e of entries) {
      if (
        !Array.isArray(e) ||
        typeof e[0] !== 'string' ||
        typeof e[1] !== 'number' ||
        typeof e[2] !== 'string'
      )
        continue;
      records.push([e[0], e[1], e[2], typeof e[3] === 'number' && Number.isFinite(e[3]) ? e[3] : 0]);
    }
    return records;
  } catch {
    return [];
  }
}

/** What a store holds of one service's sessions (keys under `mon_session`), for a boot. */
export function sessionsBootFrom(prefix: string, entries: [key: string, value: Uint8Array][]): SessionsBoot {
  const boot: SessionsBoot = { clockMs: 0, records: [] };
  const own = `${prefix}_`;
  for (const [key, value] of entries) {
    if (!key.startsWith(own)) continue;
    const suffix = key.slice(own.length);
    if (suffix === 'clock') {
      boot.clockMs = readNumber(value);
      continue;
    }
    const version = Number(suffix);
    if (Number.isSafeInteger(version) && version > 0)
      boot.records.push({ version, answers: parseAnswered(value) });
  }
  boot.records.sort((a, b) => a.version - b.version);
  return boot;
}

function readNumber(bytes: Uint8Array): number {
  if (bytes.length !== 8) return 0;
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}
