// The monitor's I/O actor (systemId 'io'): the one place where the pure machines meet a Store
// and a Transport. It serves both production (RocksDB + TCP) and the simulator (MemoryStore +
// MemoryNetwork), which is what lets the same machines run in both.
//
// Outbound (the one door out): the monitor sends one `io.effects` record per step. Records are
// queued in order; consecutive queued records are written as one Transaction (group commit: one
// batch for everything that arrived during the last write). Then, record by record, the monitor
// hears what each wrote (`io.written`: the committed values it applied, for update_from_paxos,
// and the token it asked for) and its messages and answers are sent. A message is therefore
// never sent before the writes of its own step or of any earlier step are durable (DESIGN.md §1,
// "durability is ordered as data") — with two marked exceptions, both about values Paxos has
// already made safe elsewhere: a leader's begin leaves while its own copy is being written
// (`sendBeforeDurable`), and a commit is applied without an fsync of its own (`durability:
// 'applied'`; the batch is synced only when some write in it needs that).
//
// Inbound (the one door in): every validated message from the Transport becomes an event on the
// monitor, typed by the message type; client commands go to `onCommand`.
import { type EventObject, fromCallback } from 'xstate';
import type {
  AppliedOp,
  CommandReplyData,
  IoClockEvent,
  IoEffectsEvent,
  IoWrittenEvent,
  MessageEvent,
  Outgoing,
  ReadPlan,
  ReplyTarget,
  StoreOp,
} from '../machines/effects.ts';
import { nonMemberRefusal, type StoredInput } from '../machines/monitor.ts';
import { appendPlainOp } from '../machines/paxos/core.ts';
import type { ServiceDefinition } from '../machines/paxos-service.ts';
import { type StoreFacts, stagedCopyRefusal, stagePrefix } from '../machines/sync.ts';
import type { IoSyncServeEvent, SyncServe } from '../machines/sync-provider.ts';
import type { Store } from '../storage/store.ts';
import { storeChunks, storeStats } from '../storage/sync-iterator.ts';
import { decodeNumber, Transaction } from '../storage/transaction.ts';
import type {
  EntityName,
  Message,
  MonCommand,
  MonForward,
  MonMap,
  MonRoute,
  MonSync,
  PaxosValue,
} from '../transport/messages.ts';
import type { PeerSession, Transport } from '../transport/transport.ts';
import { loadMonitorState } from './monitor-state.ts';

export interface IoDeps {
  store: Store;
  transport: Transport;
  /** A client command (mon.command), answered by the runtime from the monitor's state. */
  onCommand?: (from: EntityName, msg: MonCommand, session?: PeerSession) => void;
  /** Messages the monitor statechart does not handle (e.g. mon.forward before services exist). */
  onOther?: (from: EntityName, msg: Message) => void;
  /** A durable write failed: the monitor cannot go on consistently and must stop (Ceph asserts). */
  onFatal: (error: Error) => void;
  /** Paxos values shared in one message at most (Paxos::share_state; keeps a message under the frame limit). */
  shareValuesMax?: number;
  /** Wall-clock milliseconds, stamped on received messages (`receivedAt`). */
  now?: () => number;
  /** How forwards and routes received together are batched (batchPerTurn; default setImmediate). */
  turn?: Turn;
  /** What the sync provider served (for the log). */
  onSyncServed?: (event: {
    op: string;
    peer: EntityName;
    cookie: number;
    keys?: number;
    bytes?: number;
  }) => void;
  /** Store work under way (a write batch and what follows it): a shutdown waits for it. */
  track?: (work: Promise<void>) => void;
  /**
   * Input refused and dropped: a monitor-protocol message from a session that is no monitor's,
   * a value that does not decode, or what a machine refused (`io.refused`). For the log.
   */
  onRefused?: (from: EntityName, type: string, reason: string) => void;
  /** The monitor's current monmap: quorum messages come only from its members (nonMemberRefusal). */
  monmap?: () => MonMap | undefined;
  /**
   * The services the monitor runs (paxmon's and an app's): what `io.load` reads for each after a
   * store sync, as the monitor's start read it (loadMonitorState).
   */
  services?: readonly ServiceDefinition[];
}

/** A machine's report of input it refused (logged by the runtime; nothing else happens). */
export interface IoRefusedEvent {
  type: 'io.refused';
  from: EntityName;
  message: string;
  reason: string;
}

// Values checked at receipt (checkValues) are decoded once: applying them takes the decoded copy.
// A WeakMap keyed by the bytes received, so nothing is held once the message is gone.
const decodedValues = new WeakMap<Uint8Array, Transaction>();

/** Decode one or more concatenated encoded Transactions (a batched Paxos value). */
export function decodeValue(value: Uint8Array): Transaction {
  const known = decodedValues.get(value);
  if (known) return known;
  const tx = Transaction.decodeAll(value);
  decodedValues.set(value, tx);
  return tx;
}

/**
 * Messages of the monitor protocol: they can only come from a monitor (a `mon.*` session). A
 * client's session that sends one is refused (the name is what the peer claimed in its
 * handshake until sessions authenticate, so this stops a plain client connection, no more).
 */
const monitorProtocol = new Set<Message['type']>([
  'mon.probe',
  'mon.election',
  'mon.paxos',
  'mon.sync',
  'mon.join',
  'mon.forward',
  'mon.route',
  'mon.ping',
]);

/**
 * Why a received message is refused before any machine sees it, or null. Every Paxos value and
 * sync chunk must decode (TigerBeetle's invalid_header(): invalid input is logged and dropped):
 * a value that does not decode would otherwise fail the store write that applies it and stop
 * the monitor — one garbage frame must not do that.
 */
export function refuseReason(from: EntityName, msg: Message, monmap?: MonMap): string | null {
  if (monitorProtocol.has(msg.type) && !from.startsWith('mon.'))
    return `${msg.type} from ${from}: monitor-protocol messages come only from monitors`;
  if (monmap) {
    const refusal = nonMemberRefusal(from, msg as { type: string; op?: unknown }, monmap);
    if (refusal !== null) return refusal;
  }
  try {
    if (msg.type === 'mon.paxos') for (const v of msg.values) decodeValue(v.value);
    else if (msg.type === 'mon.sync' && msg.chunk) decodeValue(msg.chunk);
  } catch (error) {
    return `${msg.type} from ${from}: ${error instanceof Error ? error.message : String(error)}`;
  }
  return null;
}

/**
 * A staged full sync as one transaction sees it: the staged keys already in the store (read
 * before the transaction is built, when it holds a commit_stage), and those staged by earlier
 * ops of the transaction itself — by prefix.
 */
export interface StageView {
  stored: Map<string, [key: string, value: Uint8Array][]>;
  staged: Map<string, Map<string, Uint8Array>>;
  /** The store in use, as the switch compares it with the copy (see stagedCopyRefusal). */
  live?: StoreFacts;
  /** The copy was refused: the staging is discarded and the store in use kept. */
  onRefused?: (reason: string) => void;
}

/** The facts stagedCopyRefusal weighs, from a store's paxos and monmap keys. */
export function storeFacts(get: (prefix: string, key: string) => Uint8Array | undefined): StoreFacts {
  const num = (prefix: string, key: string) => {
    const bytes = get(prefix, key);
    try {
      return bytes ? decodeNumber(bytes) : 0;
    } catch {
      return 0;
    }
  };
  const paxosLastCommitted = num('paxos', 'last_committed');
  let top = 0;
  const first = num('paxos', 'first_committed');
  if (paxosLastCommitted > 0 && get('paxos', String(first))) {
    top = first;
    while (top < paxosLastCommitted && get('paxos', String(top + 1))) top += 1;
  }
  const monmapEpoch = num('monmap', 'last_committed');
  let fsid = '';
  const map = get('monmap', String(monmapEpoch));
  if (map) {
    try {
      const parsed = JSON.parse(new TextDecoder().decode(map)) as { fsid?: unknown };
      if (typeof parsed.fsid === 'string') fsid = parsed.fsid;
    } catch {
      fsid = '';
    }
  }
  return { paxosLastCommitted, paxosContiguousTop: top, monmapEpoch, fsid };
}

/** The same facts of the store in use (read before a switch). */
async function liveFacts(store: Store): Promise<StoreFacts> {
  const keys: [string, string][] = [
    ['paxos', 'last_committed'],
    ['paxos', 'first_committed'],
    ['monmap', 'last_committed'],
  ];
  const values = new Map<string, Uint8Array>();
  const read = async (prefix: string, key: string) => {
    const value = await store.get(prefix, key);
    if (value) values.set(`${prefix}\0${key}`, value);
  };
  for (const [prefix, key] of keys) await read(prefix, key);
  const first = storeFacts((p, k) => values.get(`${p}\0${k}`));
  // Versions and the map, now that their numbers are known.
  const fc = values.get('paxos\0first_committed');
  const lc = first.paxosLastCommitted;
  const from = fc ? decodeNumber(fc) : 0;
  for (let v = from; v <= lc && v > 0; v += 1) {
    if (!(await store.exists('paxos', String(v)))) break;
    values.set(`paxos\0${v}`, new Uint8Array(1));
  }
  await read('monmap', String(first.monmapEpoch));
  return storeFacts((p, k) => values.get(`${p}\0${k}`));
}

/** What a commit_stage will move: the staged keys of `prefixes` in the store now. */
export async function readStage(store: Store, prefixes: string[]): Promise<StageView['stored']> {
  const stored = new Map<string, [string, Uint8Array][]>();
  for (const prefix of prefixes) {
    const entries: [string, Uint8Array][] = [];
    for await (const entry of store.iterate(stagePrefix(prefix))) entries.push(entry);
    stored.set(prefix, entries);
  }
  return stored;
}

/**
 * Turn a machine's plain-data writes into one storage Transaction. `decoded` receives each
 * applied Paxos value's decoded transaction, so that the caller does not decode it again.
 */
export function toTransaction(
  ops: StoreOp[],
  tx = new Transaction(),
  decoded?: (version: number, value: Transaction) => void,
  stage: StageView = { stored: new Map(), staged: new Map() },
): Transaction {
  for (const op of ops) {
    if (appendPlainOp(tx, op)) continue;
    switch (op.op) {
      case 'apply_value': {
        const value = decodeValue(op.value);
        decoded?.(op.version, value);
        tx.append(value);
        break;
      }
      case 'apply_encoded':
        tx.append(decodeValue(op.value));
        break;
      case 'stage_encoded':
        for (const chunkOp of decodeValue(op.value).ops) {
          // Only puts of the synced prefixes: a provider cannot write anything else of mine.
          if (chunkOp.type !== 'put' || !op.prefixes.includes(chunkOp.prefix)) continue;
          tx.put(stagePrefix(chunkOp.prefix), chunkOp.key, chunkOp.value);
          const staged = stage.staged.get(chunkOp.prefix) ?? new Map<string, Uint8Array>();
          staged.set(chunkOp.key, chunkOp.value);
          stage.staged.set(chunkOp.prefix, staged);
        }
        break;
      case 'commit_stage': {
        // The copy as it would be once switched in: what is stored, overridden by this transaction's.
        const storedByPrefix = new Map(
          [...stage.stored].map(([prefix, entries]) => [prefix, new Map(entries)] as const),
        );
        const copy = (prefix: string, key: string) =>
          stage.staged.get(prefix)?.get(key) ?? storedByPrefix.get(prefix)?.get(key);
        const refusal = stage.live ? stagedCopyRefusal(storeFacts(copy), stage.live) : null;
        if (refusal !== null) {
          for (const prefix of op.prefixes) tx.eraseRange(stagePrefix(prefix), '', '');
          stage.staged.clear();
          stage.onRefused?.(refusal);
          break;
        }
        for (const prefix of op.prefixes) tx.eraseRange(prefix, '', '');
        for (const prefix of op.prefixes) {
          const staged = stage.staged.get(prefix);
          for (const [key, value] of stage.stored.get(prefix) ?? [])
            if (!staged?.has(key)) tx.put(prefix, key, value);
          for (const [key, value] of staged ?? []) tx.put(prefix, key, value);
          tx.eraseRange(stagePrefix(prefix), '', '');
        }
        stage.staged.clear();
        break;
      }
    }
  }
  return tx;
}

/** The ops of a committed value as services see them in update_from_paxos. */
export function appliedOps(value: Uint8Array | Transaction): AppliedOp[] {
  const ops: AppliedOp[] = [];
  for (const op of (value instanceof Transaction ? value : decodeValue(value)).ops) {
    if (op.type === 'put') ops.push({ op: 'put', prefix: op.prefix, key: op.key, value: op.value });
    else if (op.type === 'erase') ops.push({ op: 'erase', prefix: op.prefix, key: op.key });
    else if (op.type === 'erase_range')
      ops.push({ op: 'erase_range', prefix: op.prefix, start: op.start, end: op.end });
  }
  return ops;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const toBytes = (data: Uint8Array | string | undefined) =>
  data === undefined ? new Uint8Array() : typeof data === 'string' ? encoder.encode(data) : data;

/**
 * Answer a read plan from the store (PaxosService::preprocess_query reading mon->store). A key
 * the store refuses (a RangeError: too long, say) is the request's error (EINVAL), not a store
 * failure: a read changes nothing, so it is answered and the monitor goes on.
 */
export async function performRead(store: Store, plan: ReadPlan): Promise<CommandReplyData> {
  try {
    return await readPlan(store, plan);
  } catch (error) {
    if (error instanceof RangeError) return { r: -22, rs: error.message };
    throw error;
  }
}

async function readPlan(store: Store, plan: ReadPlan): Promise<CommandReplyData> {
  switch (plan.kind) {
    case 'get': {
      const value = await store.get(plan.prefix, plan.key);
      return value ? { r: 0, rs: plan.rs ?? '', data: value } : plan.missing;
    }
    case 'exists':
      return (await store.exists(plan.prefix, plan.key)) ? { r: 0, rs: plan.rs } : plan.missing;
    case 'keys':
    case 'dump': {
      const keys: string[] = [];
      const dump: Record<string, string> = {};
      const range = plan.keyPrefix ? { start: plan.keyPrefix, end: `${plan.keyPrefix}\u{10FFFF}` } : {};
      for await (const [key, value] of store.iterate(plan.prefix, range)) {
        if (!key.startsWith(plan.keyPrefix)) continue;
        if (keys.length >= plan.limit) break;
        keys.push(key);
        if (plan.kind === 'dump') dump[key] = decoder.decode(value);
      }
      return { r: 0, rs: '', data: JSON.stringify(plan.kind === 'keys' ? keys : dump) };
    }
    case 'tail': {
      // Keys are zero-padded versions, so the last `count` in byte order are the newest.
      const recent: unknown[] = [];
      for await (const [key, value] of store.iterate(plan.prefix)) {
        if (plan.excludeKeys.includes(key)) continue;
        try {
          recent.push(JSON.parse(decoder.decode(value)));
        } catch {
          continue;
        }
        if (recent.length > plan.count) recent.shift();
      }
      return { r: 0, rs: '', data: JSON.stringify(recent) };
    }
  }
}

const routedToMonitor = new Set<Message['type']>([
  'mon.probe',
  'mon.election',
  'mon.paxos',
  'mon.sync',
  'mon.join',
  'mon.ping',
]);

/** Runs a callback later in this turn of the event loop (setImmediate, queueMicrotask). */
export type Turn = (run: () => void) => void;

/**
 * Items pushed during one turn reach `send` as one batch: one statechart step for all of them
 * instead of one each. In a process the turn is the event loop's (setImmediate, the default): the
 * requests read from every connection in one poll go together, as etcd-raft's node takes every
 * message of a loop iteration into one Ready. Under the bench's (b), 64 writes in flight over 8
 * connections, a leader took 8 requests per step when batching per read (a microtask each) and
 * 27 per turn; its CPU per write fell by ~15% (three alternating runs). The simulator passes
 * queueMicrotask: its network delivers inside the simulator's own steps.
 */
export function batchPerTurn<T>(send: (batch: T[]) => void, turn: Turn = setImmediate): (item: T) => void {
  let batch: T[] = [];
  return (item: T) => {
    batch.push(item);
    if (batch.length > 1) return;
    turn(() => {
      const items = batch;
      batch = [];
      send(items);
    });
  };
}

export function ioLogic(deps: IoDeps) {
  return fromCallback<EventObject>(({ sendBack, receive }) => {
    const queue: IoEffectsEvent[] = [];
    let pumping = false;
    // The pump under way (or the last one): io.load reads after it.
    let pumped: Promise<void> = Promise.resolve();
    let stopped = false;

    const perRead = <T>(send: (batch: T[]) => void) =>
      batchPerTurn<T>((items) => {
        if (!stopped) send(items);
      }, deps.turn);
    const forward = perRead<MessageEvent<MonForward> & { receivedAt: number }>((forwards) =>
      sendBack({ type: 'monitor.commands', requests: [], forwards }),
    );
    // A peon gets one mon.route per forwarded request.
    const route = perRead<MessageEvent<MonRoute>>((routes) => sendBack({ type: 'monitor.routes', routes }));

    // Monitors whose session was lost (Ceph's ms_handle_reset), until they are heard from again.
    const down = new Set<EntityName>();
    deps.transport.setHandlers({
      onReset(peer) {
        if (stopped || !peer.startsWith('mon.') || down.has(peer)) return;
        down.add(peer);
        sendBack({ type: 'monitor.peer_reset', peer });
      },
      onMessage(from, msg, session) {
        if (stopped) return;
        const refused = refuseReason(from, msg, deps.monmap?.());
        if (refused !== null) {
          deps.onRefused?.(from, msg.type, refused);
          return;
        }
        if (down.delete(from)) sendBack({ type: 'monitor.peer_alive', peer: from });
        if (msg.type === 'mon.command') deps.onCommand?.(from, msg, session);
        else if (msg.type === 'mon.forward')
          forward({ type: 'mon.forward', from, msg, receivedAt: deps.now?.() ?? 0 });
        else if (msg.type === 'mon.route') route({ type: 'mon.route', from, msg });
        // A peer asks for a store sync: the provider's (machines/sync-provider.ts) to decide.
        else if (msg.type === 'mon.sync' && msg.op.startsWith('get_'))
          sendBack({ type: 'monitor.sync_request', from, msg, receivedAt: deps.now?.() ?? 0 });
        else if (routedToMonitor.has(msg.type))
          sendBack({ type: msg.type, from, msg, receivedAt: deps.now?.() ?? 0 } as never);
        else deps.onOther?.(from, msg);
      },
    });

    async function fill(out: Outgoing): Promise<Message> {
      if (!out.shareValues || out.msg.type !== 'mon.paxos') return out.msg;
      // Paxos::share_state: the committed values the peer lacks, read from the store.
      const values: PaxosValue[] = [];
      const last = Math.min(out.shareValues.to, out.shareValues.from + (deps.shareValuesMax ?? 5000) - 1);
      for (let v = out.shareValues.from; v <= last; v += 1) {
        const value = await deps.store.get('paxos', String(v));
        if (value) values.push({ version: v, value });
      }
      const lastShared = values.length
        ? (values[values.length - 1] as PaxosValue).version
        : out.msg.lastCommitted;
      return {
        ...out.msg,
        values: [...values, ...out.msg.values],
        // What the peer can store now; it asks again (next collect) for the rest.
        lastCommitted: Math.min(out.msg.lastCommitted, lastShared),
      };
    }

    /**
     * What the sync provider decided to serve (machines/sync-provider.ts): read it, report a
     * chunk's progress to the provider, then answer the requester — in that order, so that the
     * cookie has moved on before the requester's next get_chunk can arrive.
     */
    async function serveSync(serve: SyncServe): Promise<void> {
      const lc = await deps.store.getNumber('paxos', 'last_committed');
      if (stopped) return;
      const send = (msg: Omit<MonSync, 'type'>) =>
        deps.transport.send(serve.to, { type: 'mon.sync', ...msg });
      if (serve.kind === 'cookie') {
        // A full sync's totals count what its chunks count (keys and bytes of the puts). A recent
        // sync's chunks carry each version's writes, unknown until decoded: no total (it was once
        // the count of versions, which the requester's key count overran: "131 of 18 keys").
        const totals = serve.sync === 'full' ? await storeStats(deps.store, serve.prefixes) : undefined;
        if (stopped) return;
        deps.onSyncServed?.({ op: `get_cookie_${serve.sync}`, peer: serve.to, cookie: serve.cookie });
        send({
          op: 'cookie',
          cookie: serve.cookie,
          lastCommitted: lc,
          ...(totals ? { totalKeys: totals.keys, totalBytes: totals.bytes } : {}),
        });
        return;
      }
      let tx: Transaction;
      let done: boolean;
      let lastKey: { prefix: string; key: string } | undefined;
      if (serve.sync === 'full') {
        const chunks = storeChunks(deps.store, serve.prefixes, {
          payloadBytesMax: serve.payloadBytesMax,
          payloadKeysMax: serve.payloadKeysMax,
          ...(serve.after ? { after: serve.after } : {}),
        });
        const first = await chunks.next();
        await chunks.return(undefined);
        const chunk = first.done ? { tx: new Transaction(), lastKey: serve.after, done: true } : first.value;
        ({ tx, done, lastKey } = chunk);
        if (stopped) return;
        sendBack({ type: 'monitor.sync_served', cookie: serve.cookie, done });
      } else {
        // Recent: the missing Paxos versions, each stored and applied as Paxos::store_state would.
        tx = new Transaction();
        let version = serve.nextVersion;
        while (version <= lc && tx.bytes < serve.payloadBytesMax && tx.keys < serve.payloadKeysMax) {
          const value = await deps.store.get('paxos', String(version));
          if (!value) break;
          tx.put('paxos', String(version), value);
          tx.append(decodeValue(value));
          tx.putNumber('paxos', 'last_committed', version);
          version += 1;
        }
        if (stopped) return;
        if (version <= serve.nextVersion && serve.nextVersion <= lc) {
          // A version it needs is gone (trimmed since the cookie was given): start over in full.
          sendBack({ type: 'monitor.sync_served', cookie: serve.cookie, done: true });
          send({ op: 'no_cookie', cookie: serve.cookie, lastCommitted: 0 });
          return;
        }
        done = version > lc;
        sendBack({ type: 'monitor.sync_served', cookie: serve.cookie, nextVersion: version, done });
      }
      const op = done ? 'last_chunk' : 'chunk';
      deps.onSyncServed?.({ op, peer: serve.to, cookie: serve.cookie, keys: tx.keys, bytes: tx.bytes });
      send({
        op,
        cookie: serve.cookie,
        lastCommitted: lc,
        chunk: tx.encode(),
        chunkKeys: tx.keys,
        ...(lastKey ? { lastKey } : {}),
      });
    }

    function reply(target: ReplyTarget, answer: CommandReplyData) {
      // A monitor's own requests (health updates, quorum log lines) need no answer.
      if (!target.via && target.client === deps.transport.name) return;
      const r = { r: answer.r, rs: answer.rs, data: toBytes(answer.data) };
      if (target.via) {
        // Monitor::forward_request_leader: the answer goes back through the peon (mon.route).
        deps.transport.send(target.via.peer, {
          type: 'mon.route',
          tid: target.via.forwardTid,
          client: target.client,
          clientTid: target.tid,
          reply: r,
        });
      } else {
        deps.transport.send(target.client, {
          type: 'mon.command_ack',
          tid: target.tid,
          cmd: target.cmd,
          ...r,
          ...(answer.leader ? { leader: answer.leader } : {}),
        });
      }
    }

    function send(effect: IoEffectsEvent) {
      for (const out of effect.messages) deps.transport.send(out.to, out.msg, out.addr);
    }

    /**
     * Monitor::sync_finish → init_paxos: read what the synced store holds, as the monitor's start
     * reads it, after every record queued before the request (the switch to the synced copy is
     * one of them), and answer with it (monitor.loaded).
     */
    async function load(): Promise<void> {
      await pumped;
      if (stopped) return;
      try {
        const loaded = await loadMonitorState(deps.store, deps.services ?? []);
        if (stopped) return;
        const input: StoredInput = {
          ...loaded.input,
          inSync: loaded.inSync,
          ...(loaded.addr ? { addr: loaded.addr } : {}),
        };
        sendBack({ type: 'monitor.loaded', input });
      } catch (error) {
        // A store the monitor cannot start from (no monmap, a map of another fsid): as at start.
        if (!stopped) deps.onFatal(error instanceof Error ? error : new Error(String(error)));
        stopped = true;
      }
    }

    async function pump() {
      if (pumping) return;
      pumping = true;
      try {
        while (queue.length && !stopped) {
          const batch = queue.splice(0, queue.length);
          const tx = new Transaction();
          // The committed values each record applies, reported with it (update_from_paxos).
          const applied = batch.map(() => [] as { version: number; value: Transaction }[]);
          let sync = false;
          // A staged sync's switch moves what earlier batches staged: read it first (the
          // batches before this one are applied; nothing else writes the staging area).
          const switchTo = batch.flatMap((effect) => effect.writes).find((op) => op.op === 'commit_stage');
          const stage: StageView = {
            stored: switchTo ? await readStage(deps.store, switchTo.prefixes) : new Map(),
            staged: new Map(),
            ...(switchTo
              ? {
                  live: await liveFacts(deps.store),
                  onRefused: (reason: string) =>
                    deps.onRefused?.(
                      deps.transport.name,
                      'mon.sync last_chunk',
                      `staged copy refused: ${reason}`,
                    ),
                }
              : {}),
          };
          for (const [index, effect] of batch.entries()) {
            const mine = applied[index] as { version: number; value: Transaction }[];
            toTransaction(effect.writes, tx, (version, value) => mine.push({ version, value }), stage);
            if (effect.writes.length > 0 && effect.durability !== 'applied') sync = true;
          }
          // Messages that may leave before this batch's fsync: those of the leading effects that
          // write nothing (what they follow is durable already) and of effects marked
          // sendBeforeDurable, up to the first effect that needs its writes durable first.
          let early = 0;
          let earlyWrites = false;
          for (const effect of batch) {
            if (effect.sendBeforeDurable) earlyWrites ||= effect.writes.length > 0;
            else if (effect.writes.length > 0 || earlyWrites) break;
            if (effect.messages.some((out) => out.shareValues)) break;
            early += 1;
          }
          for (const effect of batch.slice(0, early)) send(effect);
          if (!tx.empty) await deps.store.apply(tx, { sync });
          for (const [index, effect] of batch.entries()) {
            // What the record wrote, first: the monitor (and the services a committed value
            // concerns) apply it before its messages and answers leave.
            const values = applied[index] ?? [];
            if (effect.notify || values.length) {
              const written: IoWrittenEvent = { type: 'io.written' };
              if (effect.notify) written.token = effect.notify;
              if (values.length)
                written.applied = values.map(({ version, value }) => ({ version, ops: appliedOps(value) }));
              sendBack(written);
            }
            if (index >= early) {
              for (const out of effect.messages) {
                // Only a share of committed values needs the store; everything else is sent in
                // this tick, so the messenger coalesces a step's messages to a peer in one write.
                const msg = out.shareValues ? await fill(out) : out.msg;
                deps.transport.send(out.to, msg, out.addr);
              }
            }
            for (const read of effect.reads ?? [])
              reply(read.target, await performRead(deps.store, read.plan));
            for (const answer of effect.replies ?? []) reply(answer.target, answer.reply);
          }
        }
      } catch (error) {
        // After a stop the store may close under a read that was under way: not a failure.
        if (!stopped) deps.onFatal(error instanceof Error ? error : new Error(String(error)));
        stopped = true;
      } finally {
        pumping = false;
      }
    }

    receive((event) => {
      if (stopped) return;
      if (event.type === 'io.refused') {
        const refused = event as IoRefusedEvent;
        deps.onRefused?.(refused.from, refused.message, refused.reason);
        return;
      }
      if (event.type === 'io.sync_serve') {
        // Served at once, beside the write records: a chunk read must not hold up Paxos.
        const serve = (event as IoSyncServeEvent).serve;
        deps.track?.(
          serveSync(serve).catch(() => {
            if (stopped) return;
            if (serve.kind === 'chunk')
              sendBack({ type: 'monitor.sync_served', cookie: serve.cookie, done: true });
            deps.transport.send(serve.to, {
              type: 'mon.sync',
              op: 'no_cookie',
              cookie: serve.cookie,
              lastCommitted: 0,
            });
          }),
        );
        return;
      }
      if (event.type === 'io.load') {
        // The statechart reloads after a store sync (IoLoadEvent): the store is the io actor's to read.
        const loading = load();
        deps.track?.(loading);
        return;
      }
      if (event.type === 'io.clock') {
        // The statechart asks the time (its tick is due, a quorum formed): the runtime's to give.
        sendBack({ type: (event as IoClockEvent).reply, now: deps.now?.() ?? 0 });
        return;
      }
      if (event.type !== 'io.effects') return;
      const effect = event as IoEffectsEvent;
      if (
        effect.writes.length === 0 &&
        effect.messages.length === 0 &&
        !effect.notify &&
        !effect.reads?.length &&
        !effect.replies?.length
      )
        return;
      queue.push(effect);
      // A running pump takes up what was queued; a new one is store work a shutdown waits for.
      if (!pumping) {
        pumped = pump();
        deps.track?.(pumped);
      }
    });

    return () => {
      stopped = true;
    };
  });
}
