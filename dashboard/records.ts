// The dashboard's model of a cluster, built from inspection records (actors/inspect.ts
// InspectionRecord: what `--record FILE` writes and what `--dashboard-feed` streams). Pure and
// browser-safe (no node:*): the page runs it on the live feed and on a recording alike, and the
// server uses its validation on every line a monitor or a file gives it.
//
// Every record is untrusted input: parseRecord checks its shape and bounds before anything reads
// it, and the page writes what it shows as text (never as HTML).
import type { InspectionRecord } from '../actors/inspection-record.ts';

/** One inspection record, as checked by parseRecord: the recorder's own format. */
export type DashRecord = InspectionRecord;

/** A record line longer than this is refused (the recorder writes at most 16 KiB). */
export const recordLineCharsMax = 64 * 1024;
const monName = /^[A-Za-z0-9_?-]{1,64}$/;
const kinds = new Set(['actor', 'event', 'snapshot']);
const shortText = (v: unknown, max: number) => typeof v === 'string' && v.length > 0 && v.length <= max;

/** The record in `value`, or why it is not one. */
export function parseRecord(value: unknown): DashRecord | string {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not an object';
  const r = value as Record<string, unknown>;
  if (r.v !== 1) return 'unknown version';
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 0) return 'bad seq';
  if (typeof r.t !== 'number' || !Number.isFinite(r.t)) return 'bad t';
  if (typeof r.mon !== 'string' || !monName.test(r.mon)) return 'bad mon';
  if (typeof r.kind !== 'string' || !kinds.has(r.kind)) return 'bad kind';
  if (!shortText(r.actor, 128)) return 'bad actor';
  if (!shortText(r.session, 64)) return 'bad session';
  for (const field of ['parent', 'machine', 'source', 'status'] as const)
    if (r[field] !== undefined && !shortText(r[field], 128)) return `bad ${field}`;
  return r as unknown as DashRecord;
}

/** One line of a recording or of the feed, or undefined when it is not a valid record. */
export function parseRecordLine(line: string): DashRecord | undefined {
  if (line.length === 0 || line.length > recordLineCharsMax) return undefined;
  try {
    const record = parseRecord(JSON.parse(line));
    return typeof record === 'string' ? undefined : record;
  } catch {
    return undefined;
  }
}

/** The records of a recording's text (JSON lines), in time order, and how many lines were not records. */
export function parseRecording(text: string): { records: DashRecord[]; malformed: number } {
  const records: DashRecord[] = [];
  let malformed = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const record = parseRecordLine(line);
    if (record) records.push(record);
    else malformed += 1;
  }
  return { records: sortRecords(records), malformed };
}

/** Time order; one monitor's records keep their own order (seq) on equal times. */
export function sortRecords(records: DashRecord[]): DashRecord[] {
  return records.sort((x, y) => x.t - y.t || (x.mon === y.mon ? x.seq - y.seq : x.mon < y.mon ? -1 : 1));
}

// --- state values ---------------------------------------------------------------------------------

/** The active leaves of a state value, as paths: `{ inQuorum: { leader: … } }` → `inQuorum.leader.round.active`, … */
export function stateLeaves(value: unknown, prefix = ''): string[] {
  if (typeof value === 'string') return [`${prefix}${value}`];
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return prefix ? [prefix.slice(0, -1)] : [];
    return entries.flatMap(([key, sub]) => stateLeaves(sub, `${prefix}${key}.`));
  }
  return prefix ? [prefix.slice(0, -1)] : [];
}

/** Every active state's path (leaves and their ancestors), the root as ''. */
export function activePaths(value: unknown): Set<string> {
  const paths = new Set<string>(['']);
  for (const leaf of stateLeaves(value)) {
    const keys = leaf.split('.');
    for (let i = 1; i <= keys.length; i += 1) paths.add(keys.slice(0, i).join('.'));
  }
  return paths;
}

// --- messages -------------------------------------------------------------------------------------

/** The message lane's filter groups (issue 18: probe, election, Paxos, lease, sync, client; and the elector's pings). */
export const messageCategories = [
  'probe',
  'election',
  'ping',
  'paxos',
  'lease',
  'sync',
  'client',
  'other',
] as const;
export type MessageCategory = (typeof messageCategories)[number];

/** A message's group: by its type, and for Paxos by its op (lease and lease_ack are the lease's). */
export function messageCategory(msg: Record<string, unknown>): MessageCategory {
  const type = String(msg.type ?? '');
  if (type === 'mon.probe') return 'probe';
  if (type === 'mon.election') return 'election';
  // The elector's connectivity pings (every monitor, every few hundred ms): a group of their own.
  if (type === 'mon.ping') return 'ping';
  if (type === 'mon.paxos') return msg.op === 'lease' || msg.op === 'lease_ack' ? 'lease' : 'paxos';
  if (type === 'mon.sync') return 'sync';
  if (['mon.command', 'mon.command_ack', 'mon.forward', 'mon.route', 'mon.join'].includes(type))
    return 'client';
  return 'other';
}

/** A message in a few words: `paxos begin pn 200 lc 7`, `election propose e5`. */
export function describeMessage(msg: Record<string, unknown>): string {
  const parts = [String(msg.type ?? '?').replace(/^mon\./, '')];
  if (typeof msg.op === 'string') parts.push(msg.op);
  if (typeof msg.epoch === 'number') parts.push(`e${msg.epoch}`);
  if (typeof msg.pn === 'number' && msg.pn > 0) parts.push(`pn ${msg.pn}`);
  if (typeof msg.lastCommitted === 'number') parts.push(`lc ${msg.lastCommitted}`);
  if (Array.isArray(msg.quorum) && msg.quorum.length > 0) parts.push(`quorum [${msg.quorum.join(',')}]`);
  if (Array.isArray(msg.cmd)) parts.push(msg.cmd.map((w) => String(w)).join(' '));
  if (typeof msg.r === 'number') parts.push(`r=${msg.r}`);
  const text = parts.join(' ');
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** One message between monitors (or from a client), as its receiver's monitor actor got it. */
export interface LaneMessage {
  /** Index of the record it came from (in the World's record order). */
  index: number;
  t: number;
  /** Sender: `a` for mon.a, or the client's session name (`client.x1y2`). */
  from: string;
  /** Receiver: the monitor's name. */
  to: string;
  category: MessageCategory;
  text: string;
}

/** A state change of one actor, with the event that caused it. */
export interface StateChange {
  index: number;
  t: number;
  mon: string;
  actor: string;
  /** Active leaves before and after. */
  from: string[];
  to: string[];
  /** The event type that led to it (`mon.election`, `xstate.after.…`). */
  event: string;
}

// --- the world ------------------------------------------------------------------------------------

/** One actor of a monitor's tree, as its records last showed it. */
export interface ActorView {
  actor: string;
  session: string;
  machine?: string;
  parent?: string;
  value?: unknown;
  status: string;
  context?: unknown;
  /** The active leaves (stateLeaves of value). */
  leaves: string[];
  /** Every state path this actor has been in (for "what did the election go through"). */
  visited: Set<string>;
}

/** One monitor as its records show it. */
export interface MonView {
  name: string;
  /** Actors by session id. */
  actors: Map<string, ActorView>;
  /** Time of its last record. */
  lastT: number;
}

/** Limits of a World: the lane and the change list keep their newest entries. */
export const laneMessagesMax = 4000;
export const stateChangesMax = 1000;

/**
 * The cluster as the records seen so far show it: each monitor's actors (state value, context,
 * status), the messages received (the lane), the state changes. apply() one record at a time, in
 * time order.
 */
export class World {
  readonly mons = new Map<string, MonView>();
  messages: LaneMessage[] = [];
  changes: StateChange[] = [];
  /** Records applied. */
  count = 0;
  /** Time of the last record applied. */
  t = 0;

  /** Apply one record. */
  apply(r: DashRecord): void {
    const index = this.count;
    this.count += 1;
    this.t = Math.max(this.t, r.t);
    let mon = this.mons.get(r.mon);
    if (!mon) {
      mon = { name: r.mon, actors: new Map(), lastT: r.t };
      this.mons.set(r.mon, mon);
    }
    mon.lastT = r.t;
    let actor = mon.actors.get(r.session);
    if (r.kind === 'actor' || !actor) {
      // A new actor, or one whose creation this view never saw (a feed that joined late). A new
      // root is a monitor (re)started: what its previous process had is gone.
      if (r.kind === 'actor' && r.parent === undefined) mon.actors.clear();
      actor = {
        actor: r.actor,
        session: r.session,
        status: 'active',
        leaves: [],
        visited: new Set(),
        ...(r.machine !== undefined ? { machine: r.machine } : {}),
        ...(r.parent !== undefined ? { parent: r.parent } : {}),
      };
      mon.actors.set(r.session, actor);
    }
    if (r.kind === 'snapshot') {
      if (r.status !== undefined) actor.status = r.status;
      if (r.context !== undefined) actor.context = r.context;
      if (r.value !== undefined) {
        const leaves = stateLeaves(r.value);
        const before = actor.leaves;
        actor.value = r.value;
        actor.leaves = leaves;
        for (const path of activePaths(r.value)) actor.visited.add(path);
        const changed = before.length !== leaves.length || before.some((l, i) => l !== leaves[i]);
        if (changed && before.length > 0) {
          this.changes.push({
            index,
            t: r.t,
            mon: r.mon,
            actor: r.actor,
            from: before,
            to: leaves,
            event: typeof r.event === 'string' ? r.event : '',
          });
          if (this.changes.length > stateChangesMax)
            this.changes.splice(0, this.changes.length - stateChangesMax);
        }
      }
      return;
    }
    if (r.kind === 'event' && r.actor === 'monitor') {
      const e = r.event as Record<string, unknown> | undefined;
      const msg = e?.msg;
      if (e && typeof e.from === 'string' && msg && typeof msg === 'object' && !Array.isArray(msg)) {
        const m = msg as Record<string, unknown>;
        this.messages.push({
          index,
          t: r.t,
          from: e.from.replace(/^mon\./, ''),
          to: r.mon,
          category: messageCategory(m),
          text: describeMessage(m),
        });
        if (this.messages.length > laneMessagesMax)
          this.messages.splice(0, this.messages.length - laneMessagesMax);
      }
    }
  }

  /** The actor of a monitor by its name (`monitor`, `elector`, `service:health`). */
  actorOf(mon: string, actor: string): ActorView | undefined {
    const view = this.mons.get(mon);
    if (!view) return undefined;
    let found: ActorView | undefined;
    for (const a of view.actors.values()) if (a.actor === actor) found = a;
    return found;
  }
}

/** Keys a monitor's sync has copied, from its context (undefined when it is not syncing). */
const syncKeys = (context: unknown) =>
  num(((context as { sync?: unknown } | undefined)?.sync as { keys?: unknown } | null | undefined)?.keys);

/**
 * Whether a record is worth stopping at when stepping: a state change, a message between
 * monitors, or a sync's progress (each chunk's keys landing: a sync stays in one state).
 */
export function isStep(r: DashRecord, world: World): boolean {
  if (r.kind === 'snapshot' && r.value !== undefined) {
    const actor = world.mons.get(r.mon)?.actors.get(r.session);
    const leaves = stateLeaves(r.value);
    if (!actor || actor.leaves.join('|') !== leaves.join('|')) return true;
    return (
      r.actor === 'monitor' && r.context !== undefined && syncKeys(r.context) !== syncKeys(actor.context)
    );
  }
  if (r.kind === 'event' && r.actor === 'monitor') {
    const e = r.event as Record<string, unknown> | undefined;
    return !!e && typeof e.from === 'string' && !!e.msg && typeof e.msg === 'object';
  }
  return r.kind === 'actor';
}

// --- what a monitor's card shows ------------------------------------------------------------------

/** The facts of one monitor, from its monitor actor's state and context. */
export interface MonFacts {
  /** Ceph's state name: probing, synchronizing, electing, leader, peon, shutdown. */
  state: string;
  rank?: number;
  electionEpoch?: number;
  quorum?: number[];
  leader?: number;
  firstCommitted?: number;
  lastCommitted?: number;
  /** The Paxos round's state (leader or peon region), e.g. active, updating. */
  paxos?: string;
  /** The lease region's state: valid, expired, held.valid, held.suspended. */
  lease?: string;
  /** A sync in progress: keys and bytes copied, of how many when known. */
  sync?: {
    kind: string;
    provider: string;
    keys: number;
    totalKeys?: number;
    bytes: number;
    totalBytes?: number;
  };
  /** Monitors whose session reset (the monitor's own view of who is down). */
  peersDown?: string[];
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const nums = (v: unknown) =>
  Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined;

/** A monitor's facts from its `monitor` actor (undefined before its first snapshot). */
export function monFacts(monitor: ActorView | undefined): MonFacts | undefined {
  if (!monitor || monitor.value === undefined) return undefined;
  const leaves = monitor.leaves;
  const top = leaves[0]?.split('.')[0] ?? '?';
  const role = leaves[0]?.split('.')[1];
  const state = top === 'inQuorum' && role ? role : top;
  const region = (name: string) => {
    const prefix = `inQuorum.${role}.${name}.`;
    const leaf = leaves.find((l) => l.startsWith(prefix));
    return leaf?.slice(prefix.length);
  };
  const c = (monitor.context ?? {}) as Record<string, unknown>;
  const paxos = (c.paxos ?? {}) as Record<string, unknown>;
  const sync = c.sync as Record<string, unknown> | null | undefined;
  const peers = (c.peers ?? {}) as Record<string, unknown>;
  const facts: MonFacts = { state };
  const set = <K extends keyof MonFacts>(key: K, value: MonFacts[K] | undefined) => {
    if (value !== undefined) facts[key] = value;
  };
  set('rank', num(c.rank));
  set('electionEpoch', num(c.electionEpoch));
  set('quorum', nums(c.quorum));
  set('leader', num(c.leader));
  set('firstCommitted', num(paxos.firstCommitted));
  set('lastCommitted', num(paxos.lastCommitted));
  if (top === 'inQuorum') {
    set('paxos', region('round'));
    set('lease', region('lease'));
  }
  if (sync && typeof sync === 'object') {
    const totalKeys = num(sync.totalKeys);
    const totalBytes = num(sync.totalBytes);
    facts.sync = {
      kind: String(sync.kind ?? '?'),
      provider: String(sync.provider ?? '?'),
      keys: num(sync.keys) ?? 0,
      bytes: num(sync.bytes) ?? 0,
      ...(totalKeys !== undefined ? { totalKeys } : {}),
      ...(totalBytes !== undefined ? { totalBytes } : {}),
    };
  }
  if (Array.isArray(peers.down)) set('peersDown', peers.down.map(String));
  return facts;
}

/** Health checks from a monitor's health service (`{ committed: { status, checks } }`). */
export function healthOf(
  health: ActorView | undefined,
): { status: string; checks: Record<string, string> } | undefined {
  const state = (health?.context as { state?: { committed?: unknown } } | undefined)?.state?.committed;
  if (!state || typeof state !== 'object') return undefined;
  const s = state as { status?: unknown; checks?: unknown };
  const checks: Record<string, string> = {};
  if (s.checks && typeof s.checks === 'object')
    for (const [name, check] of Object.entries(s.checks as Record<string, unknown>)) {
      const summary = (check as { summary?: unknown } | null)?.summary;
      checks[name] = typeof summary === 'string' ? summary : name;
    }
  return { status: typeof s.status === 'string' ? s.status : '?', checks };
}
