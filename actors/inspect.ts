// Inspection of a monitor's actor tree (DESIGN.md §1): XState reports every actor created, every
// event sent and every snapshot taken to an `inspect` observer. This module turns that stream
// into (a) JSON lines on disk — `paxmon mon --record FILE` — and a readable timeline of them
// — `paxmon replay FILE` —, both working with no network at all, and (b) a live feed to the
// Stately inspector over a WebSocket — `paxmon mon --inspect` — through @statelyai/inspect.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { InspectionEvent } from 'xstate';
import { type InspectionRecord, inspectionRecordVersion } from './inspection-record.ts';

/** What the inspection code reads of an actor (XState's ActorRef, and its internal parent link). */
interface ActorLike {
  sessionId: string;
  id?: string;
  /** The actor's logic: a state machine has its `config` (with the machine's `id`). */
  logic?: { config?: { id?: unknown } };
  _parent?: ActorLike;
  getSnapshot(): unknown;
}
const actorOf = (ref: unknown) => ref as ActorLike;

/** An XState inspection observer, as createMonitor/startMonitor take it (`inspect`). */
export type InspectObserver = (event: InspectionEvent) => void;

/**
 * One observer that forwards to each of the given ones (undefined ones are skipped); undefined
 * when none is left. An observer that throws does not stop the others.
 *
 * @example
 * const inspect = combineInspectors(logContext.inspect, recorder?.inspect);
 */
export function combineInspectors(
  ...observers: (InspectObserver | undefined)[]
): InspectObserver | undefined {
  const list = observers.filter((o): o is InspectObserver => o !== undefined);
  if (list.length === 0) return undefined;
  if (list.length === 1) return list[0];
  return (event) => {
    for (const observer of list) {
      try {
        observer(event);
      } catch {
        // An inspector must never break the monitor it watches.
      }
    }
  };
}

// --- JSON-safe values ----------------------------------------------------------------------------

/** Limits of toJsonSafe: every recorded value is bounded. */
export interface JsonSafeLimits {
  /** Nesting depth kept; deeper values become '[…]'. */
  depthMax: number;
  /** Characters kept of a string. */
  stringCharsMax: number;
  /** Items kept of an array (and entries of an object). */
  itemsMax: number;
  /** Byte arrays up to this size are kept as base64; longer ones only as their length. */
  bytesInlineMax: number;
}

/** The limits toJsonSafe and the recorder use unless told otherwise. */
export const jsonSafeLimitsDefault: JsonSafeLimits = {
  depthMax: 8,
  stringCharsMax: 512,
  itemsMax: 64,
  bytesInlineMax: 64,
};

/**
 * Fields whose contents are users' data or key material (config-key values, command input, reply
 * data such as `auth get`'s keyring, secrets): without `values`, a string there becomes
 * `{ chars: n }` and bytes `{ bytes: n }` — sizes only (issue 13: what the inspector, `--record`
 * files and logs carry has no key material and no config-key values).
 */
const valueFields = new Set(['data', 'inbuf', 'value', 'values', 'secret', 'key_material', 'keyring']);
/**
 * Fields that hold key material as bytes or key text (machines/services/auth.ts AuthRecord.key,
 * MessengerAuth.secret): reduced to their size even with `values`. A config-key *name* is a
 * string under `key` too, so only bytes and key-shaped text (Ceph's `AQ…` base64) are cut.
 */
const keyFields = new Set(['key', 'secret']);
const keyText = /^AQ[A-Za-z0-9+/]{30,}={0,2}$/;
const keyTextAnywhere = /AQ[A-Za-z0-9+/]{30,}={0,2}/g;

/**
 * Command words that are values, not the command's shape: `config-key set KEY VALUE` carries the
 * value in its fourth word (Ceph's `config-key set <key> <val>`). Those words become `<N chars>`.
 */
export function redactCommandWords(cmd: readonly unknown[]): unknown[] {
  const verb = cmd[1];
  if (cmd[0] === 'config-key' && (verb === 'set' || verb === 'put') && cmd.length > 3) {
    return [
      ...cmd.slice(0, 3),
      ...cmd.slice(3).map((word) => (typeof word === 'string' ? `<${word.length} chars>` : '<value>')),
    ];
  }
  return [...cmd];
}

/** How toJsonSafe treats users' data. */
export interface JsonSafeOptions {
  /**
   * Keep values (config-key values, command input and reply data, byte arrays up to
   * bytesInlineMax as base64). Default false: sizes only — an explicit choice of the user
   * (`--inspect-values`, `--record-values`) turns it on.
   */
  values?: boolean;
}

/**
 * A JSON-serialisable copy of any value: `Uint8Array` → `{ bytes: length }`, functions →
 * `{ fn: name }`, Map/Set → objects/arrays, bigint → string, actors → `{ actor: id }`, cycles →
 * '[circular]', and strings, arrays, objects and depth cut to `limits`. Users' data is reduced to
 * its size (see valueFields, redactCommandWords) unless `options.values` is set; then byte arrays
 * up to `bytesInlineMax` are kept as base64.
 *
 * @example
 * toJsonSafe({ value: new Uint8Array([1, 2]) }); // { value: { bytes: 2 } }
 * toJsonSafe({ value: new Uint8Array([1, 2]) }, {}, { values: true }); // { value: { bytes: 2, base64: 'AQI=' } }
 */
export function toJsonSafe(
  value: unknown,
  limits: Partial<JsonSafeLimits> = {},
  options: JsonSafeOptions = {},
): unknown {
  const l = { ...jsonSafeLimitsDefault, ...limits };
  const keepValues = options.values === true;
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v === 'boolean') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
    if (typeof v === 'string') {
      // A key's text inside any string (an `auth get` reply's keyring, a log line) is masked,
      // values or not.
      const masked = v.includes('AQ') ? v.replace(keyTextAnywhere, '<key>') : v;
      return masked.length > l.stringCharsMax
        ? `${masked.slice(0, l.stringCharsMax)}…(${masked.length} chars)`
        : masked;
    }
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'undefined') return undefined;
    if (typeof v === 'symbol') return v.toString();
    if (typeof v === 'function') return { fn: v.name || 'anonymous' };
    if (v instanceof Uint8Array) {
      return keepValues && v.byteLength <= l.bytesInlineMax
        ? {
            bytes: v.byteLength,
            base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'),
          }
        : { bytes: v.byteLength };
    }
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return { bytes: v.byteLength };
    if (v instanceof Date) return v.toISOString();
    if (v instanceof Error) return { error: v.name, message: walk(v.message, depth + 1) };
    const object = v as object;
    if (seen.has(object)) return '[circular]';
    if (depth >= l.depthMax) return '[…]';
    // An actor reference (in a snapshot's children, or an event's sender): name it, do not walk it.
    if (typeof (object as { sessionId?: unknown }).sessionId === 'string' && 'send' in object)
      return { actor: String((object as { id?: unknown }).id) };
    seen.add(object);
    try {
      if (v instanceof Map) return walk(Object.fromEntries(v), depth);
      if (v instanceof Set) return walk([...v], depth);
      if (Array.isArray(v)) {
        const items = v.slice(0, l.itemsMax).map((item) => {
          const safe = walk(item, depth + 1);
          return safe === undefined ? null : safe;
        });
        if (v.length > l.itemsMax) items.push(`…(${v.length - l.itemsMax} more)`);
        return items;
      }
      const out: Record<string, unknown> = {};
      let count = 0;
      for (const [key, item] of Object.entries(object)) {
        if (count === l.itemsMax) {
          out['…'] = `${Object.keys(object).length - l.itemsMax} more keys`;
          break;
        }
        // Key material is never kept, values or not: the auth service holds keys as bytes under `key`.
        const safe =
          keyFields.has(key) &&
          (item instanceof Uint8Array || (typeof item === 'string' && keyText.test(item)))
            ? walk(redactField('secret', item), depth + 1)
            : keepValues
              ? walk(item, depth + 1)
              : walk(redactField(key, item), depth + 1);
        if (safe !== undefined) out[key] = safe;
        count += 1;
      }
      return out;
    } finally {
      seen.delete(object);
    }
  };
  return walk(value, 0);
}

/** A field's value with users' data reduced to its size (toJsonSafe without `values`). */
function redactField(key: string, item: unknown): unknown {
  if (valueFields.has(key)) {
    if (typeof item === 'string') return { chars: item.length };
    if (item instanceof Uint8Array) return { bytes: item.byteLength };
    if (Array.isArray(item)) return { items: item.length };
    if (item !== null && typeof item === 'object') return { fields: Object.keys(item).length };
    return item;
  }
  if (key === 'cmd' && Array.isArray(item)) return redactCommandWords(item);
  return item;
}

// --- recording -----------------------------------------------------------------------------------

// The record format lives in a module without node's APIs, which the dashboard's page imports too.
export { type InspectionRecord, inspectionRecordVersion } from './inspection-record.ts';

/** Where a recorder writes, and how it stamps, names and bounds its records. */
export interface RecorderOptions {
  /** Receives one JSON line (without the newline) per record. */
  write: (line: string) => void;
  /** The monitor's name; learnt from the root actor's context (`name`) when not given. */
  mon?: string;
  /** Clock for `t` (default Date.now; the simulator passes its SimulatedClock's now). */
  now?: () => number;
  /** Keep snapshot contexts (default true). */
  context?: boolean;
  /** Upper bound of one line in bytes (default 16 KiB): contexts, then events, are cut to fit. */
  lineBytesMax?: number;
  limits?: Partial<JsonSafeLimits>;
  /** Record users' data (config-key values, command input, reply data); default: sizes only. */
  values?: boolean;
}

/** A monitor's recorder (createRecorder). */
export interface Recorder {
  /** Pass this as `inspect` to createMonitor/startMonitor. */
  readonly inspect: InspectObserver;
  /** Records written so far. */
  readonly count: number;
}

/** Records held while the monitor's name is not known yet (only the first few of a tree). */
const pendingRecordsMax = 1000;

/**
 * Turn a monitor's inspection events into InspectionRecord lines: one per actor created, per
 * event, and per snapshot of a statechart actor (other actors: when their status changes).
 * XState's action and microstep events are left out.
 *
 * @example
 * const sink = fileSink('election.jsonl');
 * const recorder = createRecorder({ write: sink.write });
 * const mon = await startMonitor({ dir, inspect: recorder.inspect });
 */
export function createRecorder(options: RecorderOptions): Recorder {
  const now = options.now ?? Date.now;
  const lineBytesMax = options.lineBytesMax ?? 16 * 1024;
  const keepContext = options.context ?? true;
  const jsonOptions: JsonSafeOptions = { values: options.values === true };
  const names = new Map<string, string>();
  const statuses = new Map<string, string>();
  let root: ActorLike | undefined;
  let mon = options.mon;
  let seq = 0;
  let count = 0;
  const pending: Omit<InspectionRecord, 'mon'>[] = [];

  const nameOf = (ref: ActorLike): string => {
    const known = names.get(ref.sessionId);
    if (known) return known;
    const parent = ref._parent;
    const machineId = ref.logic?.config?.id;
    const name =
      !parent && typeof machineId === 'string'
        ? machineId
        : ref.id === ref.sessionId && typeof machineId === 'string'
          ? machineId
          : (ref.id ?? ref.sessionId);
    names.set(ref.sessionId, name);
    return name;
  };

  const learnMon = () => {
    if (mon || !root) return;
    try {
      const name = (root.getSnapshot() as { context?: { name?: unknown } } | undefined)?.context?.name;
      mon = typeof name === 'string' ? name : undefined;
    } catch {
      // still being constructed
    }
  };

  const emit = (record: Omit<InspectionRecord, 'mon'>) => {
    const { v, seq: n, t, ...rest } = record;
    const full = { v, seq: n, t, mon: mon ?? '?', ...rest } as InspectionRecord;
    options.write(boundedLine(full, lineBytesMax));
    count += 1;
  };

  const push = (record: Omit<InspectionRecord, 'mon'>) => {
    learnMon();
    if (!mon && pending.length < pendingRecordsMax) {
      pending.push(record);
      return;
    }
    while (pending.length > 0) emit(pending.shift() as Omit<InspectionRecord, 'mon'>);
    emit(record);
  };

  const inspect: InspectObserver = (event) => {
    const ref = actorOf(event.actorRef);
    const base = { v: inspectionRecordVersion, seq: seq++, t: now() } as const;
    switch (event.type) {
      case '@xstate.actor': {
        const parent = ref._parent;
        if (!parent) root ??= ref;
        const machineId = ref.logic?.config?.id;
        push({
          ...base,
          kind: 'actor',
          actor: nameOf(ref),
          session: ref.sessionId,
          ...(parent ? { parent: nameOf(parent) } : {}),
          ...(typeof machineId === 'string' ? { machine: machineId } : {}),
        });
        return;
      }
      case '@xstate.event': {
        push({
          ...base,
          kind: 'event',
          actor: nameOf(ref),
          session: ref.sessionId,
          ...(event.sourceRef ? { source: nameOf(actorOf(event.sourceRef)) } : {}),
          event: toJsonSafe(event.event, options.limits, jsonOptions),
        });
        return;
      }
      case '@xstate.snapshot': {
        const snapshot = event.snapshot as { status?: string; value?: unknown; context?: unknown };
        const status = String(snapshot.status ?? 'active');
        const isMachine = 'value' in snapshot;
        if (!isMachine && statuses.get(ref.sessionId) === status) return;
        statuses.set(ref.sessionId, status);
        push({
          ...base,
          kind: 'snapshot',
          actor: nameOf(ref),
          session: ref.sessionId,
          event: (event.event as { type?: unknown }).type,
          status,
          ...(isMachine ? { value: toJsonSafe(snapshot.value, options.limits, jsonOptions) } : {}),
          ...(isMachine && keepContext && snapshot.context !== undefined
            ? { context: toJsonSafe(snapshot.context, options.limits, jsonOptions) }
            : {}),
        });
        return;
      }
      default:
        return;
    }
  };

  return {
    inspect,
    get count() {
      return count;
    },
  };
}

/** The record as one JSON line of at most `bytesMax` bytes: context, then event, are cut first. */
function boundedLine(record: InspectionRecord, bytesMax: number): string {
  let line = JSON.stringify(record);
  if (Buffer.byteLength(line) <= bytesMax) return line;
  const lean: InspectionRecord = { ...record, truncated: true };
  delete lean.context;
  line = JSON.stringify(lean);
  if (Buffer.byteLength(line) <= bytesMax) return line;
  lean.event = toJsonSafe(lean.event, { depthMax: 2, itemsMax: 8, stringCharsMax: 64, bytesInlineMax: 0 });
  lean.value = toJsonSafe(lean.value, { depthMax: 4, itemsMax: 16, stringCharsMax: 64 });
  line = JSON.stringify(lean);
  if (Buffer.byteLength(line) <= bytesMax) return line;
  const type = (record.event as { type?: unknown } | undefined)?.type ?? record.event;
  const minimal: InspectionRecord = {
    v: record.v,
    seq: record.seq,
    t: record.t,
    mon: record.mon,
    kind: record.kind,
    actor: record.actor,
    session: record.session,
    truncated: true,
  };
  if (typeof type === 'string') minimal.event = { type: type.slice(0, 256) };
  return JSON.stringify(minimal);
}

/** A sink of lines appended to a file. */
export interface FileSink {
  write: (line: string) => void;
  /** Write what is buffered now (synchronously). */
  flush: () => void;
  /** Flush, fsync and close. */
  close: () => void;
}

/**
 * Append lines to `path` (created if missing). Lines are buffered and written in whole lines by
 * one append each (every 100 ms, at 64 KiB, on flush/close and at process exit), so several
 * processes may record into the same file.
 *
 * @example
 * const sink = fileSink('.paxmon/election.jsonl');
 * sink.write(JSON.stringify({ hello: 1 }));
 * sink.close();
 */
export function fileSink(path: string): FileSink {
  const fd = openSync(path, 'a');
  let buffer: string[] = [];
  let bytes = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const flush = () => {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (buffer.length === 0 || closed) return;
    const chunk = `${buffer.join('\n')}\n`;
    buffer = [];
    bytes = 0;
    writeSync(fd, chunk);
  };
  const onExit = () => flush();
  process.on('exit', onExit);
  return {
    write(line) {
      if (closed) return;
      buffer.push(line);
      bytes += line.length + 1;
      if (bytes >= 64 * 1024) flush();
      else if (!timer) {
        timer = setTimeout(flush, 100);
        timer.unref();
      }
    },
    flush,
    close() {
      if (closed) return;
      flush();
      closed = true;
      process.off('exit', onExit);
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    },
  };
}

// --- replay --------------------------------------------------------------------------------------

/** Parse a recording: its records, and how many lines were not records. */
export function readRecords(text: string): { records: InspectionRecord[]; malformed: number } {
  const records: InspectionRecord[] = [];
  let malformed = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const value = JSON.parse(line) as Partial<InspectionRecord>;
      if (
        value.v === inspectionRecordVersion &&
        typeof value.t === 'number' &&
        typeof value.seq === 'number' &&
        typeof value.mon === 'string' &&
        typeof value.actor === 'string' &&
        (value.kind === 'actor' || value.kind === 'event' || value.kind === 'snapshot')
      )
        records.push(value as InspectionRecord);
      else malformed += 1;
    } catch {
      malformed += 1;
    }
  }
  return { records, malformed };
}

/** Filters of formatTimeline (`paxmon replay --mon --actor --all`). */
export interface TimelineOptions {
  /** Only this monitor (`a` or `mon.a`). */
  mon?: string;
  /** Only records of this actor, and events it sent. */
  actor?: string;
  /** Also show `xstate.init` events and snapshots that did not change the state. */
  all?: boolean;
}

/** The leaf paths of a state value: `{ leader: { round: 'active' } }` → ['leader.round.active']. */
export function stateLeaves(value: unknown, prefix = ''): string[] {
  if (typeof value === 'string') return [`${prefix}${value}`];
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return prefix ? [prefix.slice(0, -1)] : [];
    return entries.flatMap(([key, sub]) => stateLeaves(sub, `${prefix}${key}.`));
  }
  return prefix ? [prefix.slice(0, -1)] : [];
}

const str = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

/** One message in a few words: `mon.election propose e3`, `mon.paxos begin pn 100 lc 4`. */
export function describeMessage(msg: unknown): string {
  if (!msg || typeof msg !== 'object') return str(msg);
  const m = msg as Record<string, unknown>;
  const parts = [String(m.type ?? '?')];
  if (typeof m.op === 'string') parts.push(m.op);
  if (typeof m.epoch === 'number') parts.push(`e${m.epoch}`);
  if (typeof m.electionEpoch === 'number') parts.push(`e${m.electionEpoch}`);
  if (typeof m.pn === 'number' && m.pn > 0) parts.push(`pn ${m.pn}`);
  if (typeof m.lastCommitted === 'number') parts.push(`lc ${m.lastCommitted}`);
  if (Array.isArray(m.quorum) && m.quorum.length > 0) parts.push(`quorum [${m.quorum.join(',')}]`);
  if (Array.isArray(m.cmd)) parts.push(`'${m.cmd.join(' ')}'`);
  if (typeof m.r === 'number') parts.push(`r=${m.r}`);
  return parts.join(' ');
}

/** One event in a few words, knowing paxmon's shapes (received messages, io effects). */
export function describeEvent(event: unknown): string {
  if (!event || typeof event !== 'object') return str(event);
  const e = event as Record<string, unknown>;
  const type = String(e.type ?? '?');
  // A received message: { type: 'mon.x', from, msg }.
  if (typeof e.from === 'string' && e.msg && typeof e.msg === 'object')
    return `${describeMessage(e.msg)} from ${e.from}`;
  const timer = /^xstate\.after\.([^.]+)\.(.+)$/.exec(type);
  if (timer) return `timer ${timer[1]} fired (in ${timer[2]})`;
  if (type === 'io.effects') {
    const writes = Array.isArray(e.writes) ? (e.writes as Record<string, unknown>[]) : [];
    const messages = Array.isArray(e.messages) ? (e.messages as Record<string, unknown>[]) : [];
    const parts: string[] = [];
    if (writes.length > 0) {
      const keys = writes
        .slice(0, 4)
        .map((w) => (w.op === 'apply_value' ? 'a paxos value' : `${String(w.prefix)}/${String(w.key)}`));
      parts.push(`write ${keys.join(', ')}${writes.length > 4 ? ` and ${writes.length - 4} more` : ''}`);
    }
    // Group the same message to several peers: "mon.election propose e1 → mon.b, mon.c".
    const groups = new Map<string, string[]>();
    for (const m of messages) {
      const what = describeMessage(m.msg);
      groups.set(what, [...(groups.get(what) ?? []), String(m.to)]);
    }
    for (const [what, to] of groups) parts.push(`send ${what} → ${to.join(', ')}`);
    const notify = e.notify as { token?: unknown } | undefined;
    if (notify?.token !== undefined) parts.push(`notify ${String(notify.token)}`);
    return `io.effects: ${parts.length > 0 ? parts.join('; ') : 'nothing'}`;
  }
  const brief = (value: unknown): string => {
    if (typeof value === 'string') return value.length > 40 ? `${value.slice(0, 39)}…` : value;
    if (Array.isArray(value))
      return value.every((v) => typeof v !== 'object' || v === null) && value.length <= 8
        ? `[${value.join(',')}]`
        : `[${value.length} items]`;
    if (value && typeof value === 'object') return '{…}';
    return String(value);
  };
  const rest = Object.entries(e)
    .filter(([key]) => key !== 'type')
    .map(([key, value]) => `${key}=${brief(value)}`)
    .join(' ');
  const text = rest ? `${type} ${rest}` : type;
  return text.length > 160 ? `${text.slice(0, 159)}…` : text;
}

/**
 * A readable timeline of records (from one or several monitors): who sent what to whom, and
 * each state change, one line each, in time order. Times are seconds since the first record.
 *
 * @example
 * const { records } = readRecords(readFileSync('election.jsonl', 'utf8'));
 * for (const line of formatTimeline(records, { actor: 'elector' })) console.log(line);
 */
export function formatTimeline(records: InspectionRecord[], options: TimelineOptions = {}): string[] {
  const sorted = [...records].sort((x, y) => x.t - y.t || (x.mon === y.mon ? x.seq - y.seq : 0));
  const start = sorted[0]?.t ?? 0;
  const mon = options.mon?.replace(/^mon\./, '');
  const lastLeaves = new Map<string, string[]>();
  const lastStatus = new Map<string, string>();
  const rows: [time: string, mon: string, who: string, text: string][] = [];
  for (const r of sorted) {
    const key = `${r.mon}\u0000${r.session}`;
    // State is tracked over every record, so a filtered view still shows correct "from" states.
    let text: string | undefined;
    let who = r.actor;
    if (r.kind === 'actor') {
      const of = [r.parent ? `child of ${r.parent}` : 'root', r.machine ? `machine ${r.machine}` : '']
        .filter(Boolean)
        .join(', ');
      text = `created (${of})`;
    } else if (r.kind === 'event') {
      const type = (r.event as { type?: unknown } | undefined)?.type;
      if (type !== 'xstate.init' || options.all) {
        who = `${r.source ?? 'outside'} → ${r.actor}`;
        text = describeEvent(r.event);
      }
    } else {
      const status = r.status ?? 'active';
      const previousStatus = lastStatus.get(key);
      lastStatus.set(key, status);
      if (r.value !== undefined) {
        const leaves = stateLeaves(r.value);
        const before = lastLeaves.get(key);
        lastLeaves.set(key, leaves);
        if (!before) text = `state ${leaves.join(', ')}`;
        else {
          const gone = before.filter((l) => !leaves.includes(l));
          const came = leaves.filter((l) => !before.includes(l));
          if (gone.length > 0 || came.length > 0) text = `state ${gone.join(', ')} → ${came.join(', ')}`;
          else if (options.all) text = `state ${leaves.join(', ')} (unchanged)`;
        }
        if (text && typeof r.event === 'string' && r.event !== '') text += `  (on ${r.event})`;
      }
      if (status !== 'active' && status !== previousStatus) text = text ? `${text}; ${status}` : status;
    }
    if (text === undefined) continue;
    if (mon !== undefined && r.mon !== mon) continue;
    if (options.actor !== undefined && r.actor !== options.actor && r.source !== options.actor) continue;
    rows.push([`+${((r.t - start) / 1000).toFixed(3)}s`, `mon.${r.mon}`, who, text]);
  }
  const width = (i: 0 | 1 | 2, max: number) =>
    Math.min(max, Math.max(0, ...rows.map((row) => row[i].length)));
  const [timeWidth, monWidth, whoWidth] = [width(0, 12), width(1, 20), width(2, 36)];
  return rows.map(
    ([time, monName, who, text]) =>
      `${time.padStart(timeWidth)}  ${monName.padEnd(monWidth)}  ${who.padEnd(whoWidth)}  ${text}`,
  );
}

// --- the Stately inspector (live, over a WebSocket) ---------------------------------------------

/** Where connectStatelyInspector sends a monitor's inspection events. */
export interface StatelyInspectorOptions {
  /** The inspector server's WebSocket URL (startInspectorServer's `wsUrl`). */
  url: string;
  /** Prefix for actor names and ids; learnt from the monitor's context when not given. */
  mon?: string;
  /** Re-announce the live actor tree this often, so a browser opened later still sees it (ms). */
  announceEveryMs?: number;
  /** Stream users' data (config-key values, command input, reply data); default: sizes only. */
  values?: boolean;
}

/** A live connection of one monitor to the Stately inspector. */
export interface StatelyInspector {
  /** Pass this as `inspect` to createMonitor/startMonitor. */
  readonly inspect: InspectObserver;
  /** Stop sending and close the WebSocket. */
  stop(): void;
}

/**
 * Stream a monitor's actor tree to the Stately inspector through @statelyai/inspect's
 * WebSocket inspector. Values are made JSON-safe (toJsonSafe) and actor ids are prefixed with
 * the monitor's name, so several monitors can share one inspector. The inspector UI
 * (stately.ai/inspect) loads in the user's browser and needs internet there; with no network
 * use createRecorder instead.
 *
 * @example
 * const server = await startInspectorServer({ port: 8080 });
 * const stately = await connectStatelyInspector({ url: server.wsUrl });
 * const mon = await startMonitor({ dir, inspect: stately.inspect });
 */
export async function connectStatelyInspector(options: StatelyInspectorOptions): Promise<StatelyInspector> {
  const { createWebSocketInspector } = await import('@statelyai/inspect');
  const jsonOptions: JsonSafeOptions = { values: options.values === true };
  let mon = options.mon;
  let root: ActorLike | undefined;
  const prefix = () => {
    if (!mon && root) {
      try {
        const name = (root.getSnapshot() as { context?: { name?: unknown } } | undefined)?.context?.name;
        if (typeof name === 'string') mon = name;
      } catch {
        // still being constructed
      }
    }
    return `mon.${mon ?? '?'}`;
  };
  const names = new Map<string, string>();
  const tag = (id: unknown): unknown =>
    typeof id === 'string' && id !== '' && !id.startsWith('mon.') ? `${prefix()}/${id}` : id;
  const inspector = createWebSocketInspector({
    url: options.url,
    maxDeferredEvents: 1000,
    sanitizeContext: (context) => toJsonSafe(context, {}, jsonOptions) as Record<string, unknown>,
    sanitizeEvent: (event) => toJsonSafe(event, {}, jsonOptions) as { type: string },
    // Idempotent: the adapter serialises events deferred while connecting a second time.
    serialize: (event) => {
      const e = { ...event } as Record<string, unknown>;
      for (const key of ['sessionId', 'parentId', 'rootId', 'sourceId']) if (key in e) e[key] = tag(e[key]);
      if (e.type === '@xstate.actor') {
        // Re-announced actors that are not statecharts (io) come without a name: reuse the first.
        if (typeof e.name === 'string') names.set(String(e.sessionId), e.name);
        const name = typeof e.name === 'string' ? e.name : names.get(String(e.sessionId));
        if (name !== undefined) e.name = tag(name);
      }
      return e as unknown as typeof event;
    },
  });
  const announce = () => {
    if (!root) return;
    const walk = (ref: ActorLike, parent: ActorLike | undefined) => {
      let snapshot: { children?: Record<string, ActorLike> } | undefined;
      try {
        snapshot = ref.getSnapshot() as typeof snapshot;
      } catch {
        return;
      }
      inspector.actor(ref as never, snapshot as never, {
        ...(parent ? { parentId: parent.sessionId } : {}),
        rootId: root?.sessionId ?? ref.sessionId,
      });
      for (const child of Object.values(snapshot?.children ?? {})) if (child) walk(child, ref);
    };
    walk(root, undefined);
  };
  const timer = setInterval(announce, options.announceEveryMs ?? 5000);
  timer.unref();
  return {
    inspect: (event) => {
      if (event.type === '@xstate.actor' && !actorOf(event.actorRef)._parent)
        root ??= actorOf(event.actorRef);
      inspector.inspect.next?.(event);
    },
    stop() {
      clearInterval(timer);
      inspector.stop();
    },
  };
}

/** The inspector bridge server, running in this process (startInspectorServer). */
export interface InspectorServer {
  /** Open this in a browser (it embeds the Stately inspector UI, which needs internet). */
  readonly httpUrl: string;
  /** Monitors connect here (connectStatelyInspector's `url`, `paxmon mon --inspect URL`). */
  readonly wsUrl: string;
  /** Close the server. */
  stop(): void;
}

/** Events kept for a browser that connects late (@statelyai/inspect's bridge keeps 200). */
const bridgeBufferMax = 200;

/** The bridge page: the Stately inspector in an iframe, fed from our WebSocket. */
function bridgePage(wsUrl: string, inspectorUrl: string): string {
  return `<!DOCTYPE html>
<html><head><title>paxmon — Stately inspector</title>
<style>*{margin:0;padding:0}html,body{height:100%}iframe{width:100%;height:100%;border:none}</style>
</head><body><iframe id="inspector" src="${inspectorUrl}"></iframe><script>
const iframe = document.getElementById('inspector');
const buffer = [];
let connected = false;
window.addEventListener('message', (e) => {
  if (e.data && e.data.type === '@statelyai.connected') {
    connected = true;
    for (const event of buffer) iframe.contentWindow.postMessage(event, '*');
    buffer.length = 0;
  }
});
const ws = new WebSocket(${JSON.stringify(wsUrl)});
ws.onmessage = (event) => {
  const data = JSON.parse(event.data);
  if (connected) iframe.contentWindow.postMessage(data, '*'); else buffer.push(data);
};
</script></body></html>`;
}

/**
 * Start the inspector bridge on `host:port` (HTTP page + WebSocket, the same protocol as
 * @statelyai/inspect's createInspectorServer): monitors send their inspection events to `wsUrl`,
 * a browser on `httpUrl` shows them in the Stately inspector. It listens on 127.0.0.1 unless
 * given another host (issue 13: @statelyai/inspect's own server listens on every interface), and
 * refuses WebSocket connections from any web page but its own (a page from another site, open
 * in the user's browser, could otherwise read the stream through ws://localhost). Rejects with
 * an error whose code is EADDRINUSE when the port is taken.
 */
export async function startInspectorServer(options: {
  port: number;
  host?: string;
}): Promise<InspectorServer> {
  const { port } = options;
  const host = options.host ?? '127.0.0.1';
  const { WebSocketServer, WebSocket } = await import('ws');
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const httpUrl = `http://${urlHost}:${port}`;
  const wsUrl = `ws://${urlHost}:${port}`;
  const page = bridgePage(wsUrl, 'https://stately.ai/inspect');
  const server = createHttpServer((_request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    response.end(page);
  });
  const allowedOrigins = new Set([httpUrl, `http://localhost:${port}`]);
  const wss = new WebSocketServer({
    server,
    maxPayload: 4 * 1024 * 1024,
    // Node clients (the monitors) send no Origin; a browser always does.
    verifyClient: ({ origin }: { origin?: string }) => origin === undefined || allowedOrigins.has(origin),
  });
  const buffer: string[] = [];
  wss.on('connection', (socket) => {
    for (const message of buffer) socket.send(message);
    socket.on('message', (data) => {
      const message = data.toString();
      buffer.push(message);
      if (buffer.length > bridgeBufferMax) buffer.shift();
      for (const client of wss.clients)
        if (client !== socket && client.readyState === WebSocket.OPEN) client.send(message);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    httpUrl,
    wsUrl,
    stop: () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.close();
    },
  };
}
