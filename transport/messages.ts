// The message catalogue: every wire message paxmon speaks is one member of the `Message`
// discriminated union below, with its TypeBox schema defined once and its static type derived
// from that schema. Field meanings follow Ceph's src/messages/MMon*.h (DESIGN.md §3), in
// TypeScript casing. Machines may `import type` from here; the compiled validators are for the
// transport boundary, where every received message is checked (TigerBeetle's invalid_header():
// a reason string, never an exception).
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { type TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler';
import { limits } from '../machines/limits.ts';

// The bounds live with the protocol (machines/limits.ts, no imports) so that machines/ can use
// them without importing this module's validators; they are the catalogue's as much.
export { limits };

const Version = Type.Integer({ minimum: 0 });
const Epoch = Type.Integer({ minimum: 0 });
/** Wall-clock milliseconds since the epoch (a client request's deadline). */
const DeadlineMs = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Rank = Type.Integer({ minimum: 0, maximum: limits.monitorsMax - 1 });
const Fsid = Type.String({
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
});
/** A monitor's short name (`a`, `b`, `mon-3`); its entity name is `mon.<name>`. */
const MonName = Type.String({ pattern: '^[A-Za-z0-9_-]+$', minLength: 1, maxLength: limits.nameBytesMax });
/** `host:port`, IPv4 or a host name (IPv6 in brackets). */
const Addr = Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$', maxLength: 300 });
const Bytes = Type.Uint8Array();
const Quorum = Type.Array(Rank, { maxItems: limits.monitorsMax });

export const ElectionStrategySchema = Type.Union([
  Type.Literal('classic'),
  Type.Literal('disallow'),
  Type.Literal('connectivity'),
]);
export type ElectionStrategy = Static<typeof ElectionStrategySchema>;

export const MonInfoSchema = Type.Object(
  { name: MonName, rank: Rank, addr: Addr },
  { additionalProperties: false },
);
export type MonInfo = Static<typeof MonInfoSchema>;

/** Ceph's MonMap: fsid, epoch and the monitors in rank order (a lower rank has priority). */
export const MonMapSchema = Type.Object(
  {
    fsid: Fsid,
    epoch: Epoch,
    mons: Type.Array(MonInfoSchema, { minItems: 1, maxItems: limits.monitorsMax }),
    electionStrategy: ElectionStrategySchema,
    disallowedLeaders: Type.Array(MonName, { maxItems: limits.monitorsMax }),
    /** Milliseconds since the epoch when epoch 1 was created (Ceph's `created`). */
    created: Type.Integer({ minimum: 0 }),
    /** Milliseconds since the epoch of the last change (Ceph's `last_changed`). */
    lastChanged: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type MonMap = Static<typeof MonMapSchema>;

// --- connectivity scores (Ceph's ConnectionTracker / ConnectionReport) ------------------------
/** One monitor's view of its links to its peers (ConnectionReport): per peer, its score (Ceph's
 * `history`, 0..1) and whether the link is up now (`current`), stamped with the (election epoch,
 * version) the report was made at — the order receive_peer_report merges by. */
export const ConnectionReportSchema = Type.Object(
  {
    rank: Rank,
    epoch: Epoch,
    version: Version,
    peers: Type.Array(
      Type.Object(
        { rank: Rank, score: Type.Number({ minimum: 0, maximum: 1 }), alive: Type.Boolean() },
        { additionalProperties: false },
      ),
      { maxItems: limits.monitorsMax },
    ),
  },
  { additionalProperties: false },
);
export type ConnectionReport = Static<typeof ConnectionReportSchema>;
/** A monitor's ConnectionTracker: its own report and the newest it has of every other monitor. */
export const ConnectionTrackerSchema = Type.Object(
  {
    rank: Rank,
    epoch: Epoch,
    version: Version,
    /** mon_con_tracker_score_halflife, in seconds. */
    halfLife: Type.Number({ exclusiveMinimum: 0, maximum: 1e9 }),
    reports: Type.Array(ConnectionReportSchema, { maxItems: limits.monitorsMax }),
  },
  { additionalProperties: false },
);
export type ConnectionTracker = Static<typeof ConnectionTrackerSchema>;

// --- mon.probe (MMonProbe) -------------------------------------------------------------------
export const MonProbeSchema = Type.Object(
  {
    type: Type.Literal('mon.probe'),
    op: Type.Union([Type.Literal('probe'), Type.Literal('reply'), Type.Literal('missing_features')]),
    fsid: Fsid,
    name: MonName,
    quorum: Quorum,
    monmap: MonMapSchema,
    paxosFirstVersion: Version,
    paxosLastVersion: Version,
    hasEverJoined: Type.Boolean(),
  },
  { additionalProperties: false },
);

// --- mon.sync (MMonSync) ---------------------------------------------------------------------
const StoreKey = Type.Object({
  prefix: Type.String({ maxLength: 256 }),
  key: Type.String({ maxLength: 4096 }),
});
export const MonSyncSchema = Type.Object(
  {
    type: Type.Literal('mon.sync'),
    op: Type.Union([
      Type.Literal('get_cookie_full'),
      Type.Literal('get_cookie_recent'),
      Type.Literal('cookie'),
      Type.Literal('get_chunk'),
      Type.Literal('chunk'),
      Type.Literal('last_chunk'),
      Type.Literal('no_cookie'),
    ]),
    cookie: Type.Integer({ minimum: 0 }),
    lastCommitted: Version,
    lastKey: Type.Optional(StoreKey),
    /** An encoded storage Transaction (storage/transaction.ts), applied atomically by the requester. */
    chunk: Type.Optional(Bytes),
    /** Keys in this chunk (progress). */
    chunkKeys: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Keys and bytes the provider expects to send in all, when it knows (progress). */
    totalKeys: Type.Optional(Type.Integer({ minimum: 0 })),
    totalBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);

// --- mon.election (MMonElection) -------------------------------------------------------------
export const MonElectionSchema = Type.Object(
  {
    type: Type.Literal('mon.election'),
    op: Type.Union([
      Type.Literal('propose'),
      Type.Literal('ack'),
      Type.Literal('nak'),
      Type.Literal('victory'),
    ]),
    fsid: Fsid,
    epoch: Epoch,
    monmapEpoch: Epoch,
    quorum: Quorum,
    strategy: ElectionStrategySchema,
    /** Connectivity scores by rank (connectivity strategy only). */
    scores: Type.Optional(
      Type.Array(Type.Number({ minimum: 0, maximum: 1 }), { maxItems: limits.monitorsMax }),
    ),
    /** The sender's ConnectionTracker (Ceph's scoring_bl), on every message under connectivity. */
    scoring: Type.Optional(ConnectionTrackerSchema),
    /** A propose's scores frozen when the election started (Ceph's sharing_bl), under connectivity. */
    sharing: Type.Optional(ConnectionTrackerSchema),
  },
  { additionalProperties: false },
);

// --- mon.ping (MMonPing) ---------------------------------------------------------------------
export const MonPingSchema = Type.Object(
  {
    type: Type.Literal('mon.ping'),
    op: Type.Union([Type.Literal('ping'), Type.Literal('reply')]),
    /** Sender's clock in milliseconds (round trip and skew estimates). */
    stamp: Type.Number(),
    /** In a reply: the `stamp` of the ping it answers (Monitor::handle_timecheck). */
    echo: Type.Optional(Type.Number()),
    /** Reserved (an encoded tracker); the elector's pings carry `scoring` instead. */
    tracker: Type.Optional(Bytes),
    /**
     * The sender's ConnectionTracker (Ceph's MMonPing tracker_bl). A ping that carries one is the
     * elector's (Elector::send_peer_ping, connectivity strategy); one without is a time check.
     */
    scoring: Type.Optional(ConnectionTrackerSchema),
  },
  { additionalProperties: false },
);

// --- mon.paxos (MMonPaxos) -------------------------------------------------------------------
export const PaxosValueSchema = Type.Object(
  { version: Version, value: Bytes },
  { additionalProperties: false },
);
export type PaxosValue = Static<typeof PaxosValueSchema>;
export const MonPaxosSchema = Type.Object(
  {
    type: Type.Literal('mon.paxos'),
    op: Type.Union([
      Type.Literal('collect'),
      Type.Literal('last'),
      Type.Literal('begin'),
      Type.Literal('accept'),
      Type.Literal('commit'),
      Type.Literal('lease'),
      Type.Literal('lease_ack'),
    ]),
    electionEpoch: Epoch,
    pn: Version,
    uncommittedPn: Version,
    firstCommitted: Version,
    lastCommitted: Version,
    /** Values by version: committed ones (share_state) or the uncommitted one at lc+1. */
    values: Type.Array(PaxosValueSchema, { maxItems: limits.paxosValuesMax }),
    /** Lease length granted by the leader, in milliseconds (op lease). */
    leaseMs: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Which lease a lease_ack answers (op lease / lease_ack): the leader counts acks per lease. */
    leaseSeq: Type.Optional(Type.Integer({ minimum: 0 })),
    /**
     * A peon's lease token (op last / lease_ack), echoed by the leader in its next lease to that
     * peon (op lease): the peon's lease runs mon_lease from when it sent the token, a moment
     * before the leader sent the lease — never from a late arrival.
     */
    leaseToken: Type.Optional(Type.Integer({ minimum: 0 })),
    /** The newest lease every quorum member acked (op lease): the leases a peon may read under. */
    leaseConfirmed: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);

// --- mon.join (MMonJoin) ---------------------------------------------------------------------
export const MonJoinSchema = Type.Object(
  { type: Type.Literal('mon.join'), name: MonName, addr: Addr },
  { additionalProperties: false },
);

// --- commands: mon.command / mon.command_ack (MMonCommand), mon.forward / mon.route --------------
export const CommandSchema = Type.Array(Type.String({ maxLength: limits.commandWordBytesMax }), {
  minItems: 1,
  maxItems: limits.commandWordsMax,
});
export const CommandReplySchema = Type.Object(
  { r: Type.Integer(), rs: Type.String(), data: Bytes },
  { additionalProperties: false },
);
export type CommandReply = Static<typeof CommandReplySchema>;

export const MonCommandSchema = Type.Object(
  {
    type: Type.Literal('mon.command'),
    tid: Type.Integer({ minimum: 0 }),
    cmd: CommandSchema,
    /** Input buffer (`-i FILE`). */
    inbuf: Type.Optional(Bytes),
    /**
     * The request's deadline, in wall-clock milliseconds since the epoch, the same for every
     * attempt of one request. An update is applied at most once, and only before its deadline:
     * the cluster remembers its answer until the deadline has passed (README, "Where paxmon
     * departs from Ceph"). Updates without one are refused.
     */
    deadline: Type.Optional(DeadlineMs),
  },
  { additionalProperties: false },
);
/**
 * On the answer to a request a peon forwarded (Monitor::forward_request_leader), where it went:
 * the leader's name and address and the command's declared prefix (machines/caps.ts
 * commandPerm). A hint, not an order: MonClient sends the next commands of that prefix to that
 * leader when it is one of its own monitors (no forward, no route back: two sealed records and a
 * hop fewer per update). A stale hint costs nothing but a forward: any monitor still forwards.
 */
export const LeaderHintSchema = Type.Object(
  { name: MonName, addr: Addr, prefix: Type.String({ minLength: 1, maxLength: limits.leaderHintPrefixMax }) },
  { additionalProperties: false },
);
export type LeaderHint = Static<typeof LeaderHintSchema>;
export const MonCommandAckSchema = Type.Object(
  {
    type: Type.Literal('mon.command_ack'),
    tid: Type.Integer({ minimum: 0 }),
    cmd: CommandSchema,
    r: Type.Integer(),
    rs: Type.String(),
    data: Bytes,
    leader: Type.Optional(LeaderHintSchema),
  },
  { additionalProperties: false },
);
export const MonForwardSchema = Type.Object(
  {
    type: Type.Literal('mon.forward'),
    /** Forwarding monitor's own tid for this request (Ceph's MForward::tid). */
    tid: Type.Integer({ minimum: 0 }),
    /** The original client and its tid: the leader's dedupe key (client id + tid). */
    client: Type.String({ maxLength: 128 }),
    clientTid: Type.Integer({ minimum: 0 }),
    electionEpoch: Epoch,
    request: Type.Object(
      { cmd: CommandSchema, inbuf: Type.Optional(Bytes), deadline: Type.Optional(DeadlineMs) },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export const MonRouteSchema = Type.Object(
  {
    type: Type.Literal('mon.route'),
    tid: Type.Integer({ minimum: 0 }),
    /**
     * The client and client tid of the forwarded request this answers: the peon checks them, so
     * an answer to a forward of its previous incarnation (forward tids start over at a restart)
     * never reaches another client.
     */
    client: Type.Optional(Type.String({ maxLength: 128 })),
    clientTid: Type.Optional(Type.Integer({ minimum: 0 })),
    reply: CommandReplySchema,
  },
  { additionalProperties: false },
);

export const MessageSchema = Type.Union([
  MonProbeSchema,
  MonSyncSchema,
  MonElectionSchema,
  MonPingSchema,
  MonPaxosSchema,
  MonJoinSchema,
  MonCommandSchema,
  MonCommandAckSchema,
  MonForwardSchema,
  MonRouteSchema,
]);

export type MonProbe = Static<typeof MonProbeSchema>;
export type MonSync = Static<typeof MonSyncSchema>;
export type MonElection = Static<typeof MonElectionSchema>;
export type MonPing = Static<typeof MonPingSchema>;
export type MonPaxos = Static<typeof MonPaxosSchema>;
export type MonJoin = Static<typeof MonJoinSchema>;
export type MonCommand = Static<typeof MonCommandSchema>;
export type MonCommandAck = Static<typeof MonCommandAckSchema>;
export type MonForward = Static<typeof MonForwardSchema>;
export type MonRoute = Static<typeof MonRouteSchema>;
export type Message = Static<typeof MessageSchema>;
export type MessageType = Message['type'];

/** Narrow the union to one member by its `type`. */
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/** An entity name as Ceph writes it: `mon.a` or `client.<id>`. */
export type EntityName = `mon.${string}` | `client.${string}`;

const schemasByType: Record<MessageType, TSchema> = {
  'mon.probe': MonProbeSchema,
  'mon.sync': MonSyncSchema,
  'mon.election': MonElectionSchema,
  'mon.ping': MonPingSchema,
  'mon.paxos': MonPaxosSchema,
  'mon.join': MonJoinSchema,
  'mon.command': MonCommandSchema,
  'mon.command_ack': MonCommandAckSchema,
  'mon.forward': MonForwardSchema,
  'mon.route': MonRouteSchema,
};

export const messageTypes = Object.keys(schemasByType) as MessageType[];

/**
 * Each message type's validator is compiled the first time a message of that type arrives: a
 * monitor soon uses them all, but a client command (`paxmon config-key get`) sees three or four
 * types, and compiling all 40 at start-up was ~20 ms of a command's ~250 (issue 17 §2).
 */
const compiled = new Map<string, TypeCheck<TSchema>>();
function checkerFor(type: string): TypeCheck<TSchema> | undefined {
  let check = compiled.get(type);
  if (check) return check;
  if (!Object.hasOwn(schemasByType, type)) return undefined;
  check = TypeCompiler.Compile(schemasByType[type as MessageType]);
  compiled.set(type, check);
  return check;
}
let compiledMonMapOnce: TypeCheck<typeof MonMapSchema> | undefined;
const compiledMonMap = () => (compiledMonMapOnce ??= TypeCompiler.Compile(MonMapSchema));

/**
 * Check a decoded value against the catalogue. Returns null when it is a valid `Message`, or a
 * short reason naming the first offending field (for the log line; the message is dropped).
 */
export function validate(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'message is not an object';
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') return 'message has no type';
  const check = checkerFor(type);
  if (!check) return `unknown message type ${JSON.stringify(type).slice(0, 80)}`;
  if (check.Check(value)) return trackerRefusal(value as Message);
  const first = check.Errors(value).First();
  return first ? `${type}: ${first.path || '/'} ${first.message}` : `${type}: invalid`;
}

/** Type guard form of `validate`. */
export function isMessage(value: unknown): value is Message {
  return validate(value) === null;
}

/** Validate a monmap (from a store or a peer). Returns a reason or null. */
export function validateMonMap(value: unknown): string | null {
  if (compiledMonMap().Check(value)) {
    const map = value as MonMap;
    const names = new Set<string>();
    const addrs = new Set<string>();
    for (const [index, mon] of map.mons.entries()) {
      if (mon.rank !== index) return `monmap: mon.${mon.name} has rank ${mon.rank}, expected ${index}`;
      if (names.has(mon.name)) return `monmap: duplicate name ${mon.name}`;
      if (addrs.has(mon.addr)) return `monmap: duplicate address ${mon.addr}`;
      names.add(mon.name);
      addrs.add(mon.addr);
    }
    return null;
  }
  const first = compiledMonMap().Errors(value).First();
  return `monmap: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}`;
}

/**
 * What the schema cannot say about a ConnectionTracker: one report per rank, one entry per peer
 * in a report, and no monitor scoring itself. Returns a reason or null.
 */
export function validateConnectionTracker(tracker: ConnectionTracker): string | null {
  const ranks = new Set<number>();
  for (const report of tracker.reports) {
    if (ranks.has(report.rank)) return `tracker: two reports of rank ${report.rank}`;
    ranks.add(report.rank);
    const peers = new Set<number>();
    for (const peer of report.peers) {
      if (peer.rank === report.rank) return `tracker: rank ${report.rank} scores itself`;
      if (peers.has(peer.rank)) return `tracker: rank ${report.rank} scores rank ${peer.rank} twice`;
      peers.add(peer.rank);
    }
  }
  return null;
}

let compiledTrackerOnce: TypeCheck<typeof ConnectionTrackerSchema> | undefined;
const compiledTracker = () => (compiledTrackerOnce ??= TypeCompiler.Compile(ConnectionTrackerSchema));

/** A stored or received tracker: the schema, then validateConnectionTracker. Returns a reason or null. */
export function checkConnectionTracker(value: unknown): string | null {
  if (!compiledTracker().Check(value)) {
    const first = compiledTracker().Errors(value).First();
    return `tracker: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}`;
  }
  return validateConnectionTracker(value as ConnectionTracker);
}

function trackerRefusal(msg: Message): string | null {
  if (msg.type !== 'mon.election' && msg.type !== 'mon.ping') return null;
  for (const [field, tracker] of [
    ['scoring', msg.scoring],
    ['sharing', msg.type === 'mon.election' ? msg.sharing : undefined],
  ] as const) {
    if (!tracker) continue;
    const reason = validateConnectionTracker(tracker);
    if (reason) return `${msg.type}: /${field} ${reason}`;
  }
  return null;
}
