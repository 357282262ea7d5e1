// log: Ceph's LogMonitor — the cluster log. `log MESSAGE…` appends an entry (time, who, level,
// text); `log last [N]` prints the latest. Entries live under 'log' with zero-padded sequence
// keys (byte order = time order); the service's versioned history is 'logm'.
import type { AppliedOp, StoreOp } from '../effects.ts';
import type { LoadableService, StoredService } from '../service-load.ts';

export const logDataPrefix = 'log';
/** Entries kept before the oldest are trimmed (Ceph: mon_log_max). */
export const logEntriesMax = 10_000;
const messageBytesMax = 4096;

export interface LogEntry {
  stamp: string;
  name: string;
  rank: number;
  seq: number;
  level: 'DBG' | 'INF' | 'WRN' | 'ERR' | 'SEC';
  message: string;
}

export interface LogState {
  /** The next sequence number (one more than the newest entry's). */
  nextSeq: number;
}

const seqKey = (seq: number) => String(seq).padStart(16, '0');
const levels = new Set(['DBG', 'INF', 'WRN', 'ERR', 'SEC']);

/**
 * The next sequence number as the store holds it: the newest incremental's `next` (one past its
 * last entry), else the full stash's state, else 1 (a new log).
 */
function storedNextSeq(stored: StoredService): number {
  const newest = stored.incrementals.at(-1) ?? stored.full;
  if (!newest) return 1;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(newest.value)) as {
      next?: unknown;
      nextSeq?: unknown;
    };
    const next = newest === stored.full ? parsed.nextSeq : parsed.next;
    return typeof next === 'number' && Number.isSafeInteger(next) && next > 0 ? next : 1;
  } catch {
    return 1;
  }
}

export const logService: LoadableService<LogState, LogEntry[]> = {
  name: 'log',
  prefix: 'logm',
  handles: (cmd) => cmd[0] === 'log',
  // MonCommands.h: both in module "mon"; `log` is "rw", `log last` "r".
  commands: [
    { prefix: 'log last', perm: 'r', args: ['num'], module: 'mon' },
    { prefix: 'log', perm: 'rw', args: ['logtext...'], module: 'mon' },
  ],
  init: (loaded) => ({ nextSeq: typeof loaded === 'number' ? loaded : 1 }),
  load: { loaded: storedNextSeq },
  createInitial: () => [],
  createPending: () => [],
  preprocessQuery(_state, request) {
    const cmd = request.cmd;
    if (cmd[1] !== 'last')
      return cmd.length >= 2 ? null : { reply: { r: -22, rs: 'usage: log <message…> | log last [N]' } };
    const n = cmd[2] === undefined ? 20 : Number(cmd[2]);
    if (!Number.isInteger(n) || n < 1 || n > logEntriesMax || cmd.length > 3) {
      return { reply: { r: -22, rs: `log last: N must be a whole number from 1 to ${logEntriesMax}` } };
    }
    return { read: { kind: 'tail', prefix: logDataPrefix, count: n, excludeKeys: [] } };
  },
  prepareUpdate(state, pending, request, view) {
    let words = request.cmd.slice(1);
    let level: LogEntry['level'] = 'INF';
    // `log --level WRN text` (Ceph's `ceph log` takes the text; levels come from daemons).
    if (words[0] === '--level' && words[1] && levels.has(words[1])) {
      level = words[1] as LogEntry['level'];
      words = words.slice(2);
    }
    const message = words.join(' ');
    if (!message) return { error: { r: -22, rs: 'usage: log <message…>' } };
    if (new TextEncoder().encode(message).length > messageBytesMax) {
      return { error: { r: -27, rs: `log message longer than ${messageBytesMax} bytes` } };
    }
    const isMon = request.client.startsWith('mon.');
    const entry: LogEntry = {
      stamp: new Date(request.receivedAt).toISOString(),
      name: request.client,
      rank: isMon ? view.monmap.mons.findIndex((m) => `mon.${m.name}` === request.client) : -1,
      seq: state.nextSeq + pending.length,
      level,
      message,
    };
    return { pending: [...pending, entry], reply: { r: 0, rs: '' } };
  },
  encodePending(state, pending, version) {
    const ops: StoreOp[] = pending.map((e) => ({
      op: 'put',
      prefix: logDataPrefix,
      key: seqKey(e.seq),
      value: JSON.stringify(e),
    }));
    const next = state.nextSeq + pending.length;
    if (next - 1 > logEntriesMax) {
      ops.push({ op: 'erase_range', prefix: logDataPrefix, start: '', end: seqKey(next - logEntriesMax) });
    }
    ops.push({
      op: 'put',
      prefix: 'logm',
      key: String(version),
      value: JSON.stringify({ entries: pending.length, next }),
    });
    return ops;
  },
  // The committed summary (the state before this version's entries): full_<version - 1>.
  encodeFull: (state, version) => [
    { op: 'put', prefix: 'logm', key: `full_${version - 1}`, value: JSON.stringify(state) },
    { op: 'put', prefix: 'logm', key: 'full_latest', value: String(version - 1) },
  ],
  updateFromPaxos(state, ops: AppliedOp[]) {
    let nextSeq = state.nextSeq;
    for (const op of ops) {
      if (op.op === 'put' && op.prefix === logDataPrefix) nextSeq = Math.max(nextSeq, Number(op.key) + 1);
    }
    return { nextSeq };
  },
  getTrimTo: (_state, versions) => Math.max(0, versions.lastCommitted - 500),
};
