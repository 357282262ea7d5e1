// The TCP Messenger (Ceph's AsyncMessenger, reduced to what monitors need): length-prefixed
// MessagePack frames over node:net, an authenticated handshake naming both ends, every later write
// one sealed record of frames, one connection per peer pair, lazy dialling with bounded
// exponential backoff, a bounded outgoing queue per peer, and ms_handle_reset-style notification
// when a session is lost. Monitor connections are lossy, as in Ceph: what was written to a
// connection that then dies is gone, and the monitor protocols (probe, election, Paxos timeouts)
// recover from that. Bytes from the network never make this module throw: a bad frame or record
// costs its connection, never the process or the other connections.
//
// The handshake (issue 13 §2; Ceph's msgr2 HELLO, AUTH_* and AUTH_SIGNATURE frames with cephx's
// mutual authentication), three frames each way, the first two plain MessagePack values:
//   dialler  → hello      {banner, protocolVersion, name, entity, nonce, rank?, challenge, modes}
//   acceptor → reply      {banner, protocolVersion, name, nonce, rank?, challenge, mode}  | refusal
//   dialler  → proof      {proof}   HMAC of both hellos' exact bytes under the entity's secret
//   acceptor → proof      {proof}   its own, under another label (it knows the secret too) | EACCES
//   acceptor ⇒ session    {fsid}    the first sealed record: the fsid only for a proven peer
//   dialler  ⇒ session    {fsid}    sent once the acceptor's proof verified; then messages
// (transport/session-crypto.ts derives the proofs and keys). A peer's name is believed only once
// it proved a key that may carry it (`mon.*`: the `mon.` key), so a session for a monitor's name
// replaces another only after it authenticated.
//
// After the handshake each socket write is one sealed record (TLS's records; Ceph seals each
// frame): its plaintext is the frames coalesced into that write, each still length-prefixed —
// messages, keepalives (empty frames), the session frame alone in the first record — sealed under
// the direction's key and the record's implicit sequence number (transport/session-crypto.ts).
// On the wire a record is framed like a frame, so the FrameDecoder bounds it as it bounds a
// frame: the connection's frame limit is its record limit. A record that does not open (altered,
// cut, extended, replayed, reordered, injected) closes the session; one that opens must hold
// whole frames only (frame.ts splitFrames), or the session closes too.
//
// The kernel alone would let a partitioned connection hang for minutes: a connect() whose SYNs
// are dropped waits ~2 min, and an ESTABLISHED connection whose packets are dropped retransmits
// with a backoff that reaches many seconds, so after a partition heals nothing moves until the
// next retransmission. The messenger bounds both itself: a dial that has not connected within
// connectTimeoutMs has failed (and is retried with the reconnect backoff), an idle connection
// carries a keepalive frame every keepaliveIntervalMs, and a connection that has read nothing for
// readTimeoutMs is closed as dead (a reset; redialled when traffic waits), as Ceph's monitors
// declare a connection down when their pings stop (mon_elector_ping_timeout).
//
// Anyone who can reach the port can start a handshake, and a client with a key can open sessions,
// so what a connection may cost is bounded here (issue 13): handshake frames of helloBytesMax; one
// frame's decode cost (codec.ts scanValue: values and nesting, not only bytes); the bytes buffered
// per connection and in total for every connection not known to be a monitor's (a smaller frame
// limit; Ceph's mon_client_bytes for the sum); an idle timeout for client sessions (Ceph's
// mon_session_timeout); a cap on connections from one source address below the total; and one log
// line per connection per interval, with a count, for invalid messages.
import { Buffer } from 'node:buffer';
import { randomBytes, randomInt } from 'node:crypto';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { decodeMessage, decodeValue, encodeMessage, encodeValue } from './codec.ts';
import {
  checkFrames,
  encodeFrame,
  FrameDecoder,
  frameBytesMaxDefault,
  frameHeaderBytes,
  framesOf,
  isKeepalive,
  splitFrames,
} from './frame.ts';
import { type EntityName, limits, type Message } from './messages.ts';
import {
  authenticate,
  challengeBytes,
  deriveSession,
  newChallenge,
  proofMatches,
  type RecordOpener,
  type RecordSealer,
  recordOverheadBytes,
  type SessionMode,
  type SessionSecrets,
  sealTagBytes,
  sessionChannels,
  sessionModes,
} from './session-crypto.ts';
import type { PeerSession, Transport, TransportHandlers } from './transport.ts';

export { authenticate, type SessionMode } from './session-crypto.ts';

// --- handshake ------------------------------------------------------------------------------

export const protocolBanner = 'paxmon';
/** 2: the authenticated handshake and sealed records (issue 13); 1 had neither. */
export const protocolVersion = 3;
/** Each handshake frame is tiny; before a peer is authenticated it may not make us buffer more. */
export const helloBytesMax = 4096;
/** Frames each side reads before its session is established: the hello, the proof, the session frame. */
export const handshakeFramesEachWay = 3;
/** The entity whose key every monitor holds (Ceph's `mon.`): the only one that may carry a `mon.*` name. */
export const monEntity = 'mon.';

/**
 * The dialler's first frame (Ceph's banner, HELLO and AUTH_REQUEST): who it is, which key it is
 * about to prove, a fresh challenge, and the session modes it offers in order of preference.
 */
export interface Hello {
  banner: typeof protocolBanner;
  protocolVersion: typeof protocolVersion;
  /** The session name: `mon.b`, or a client instance's own `client.<random>`. */
  name: EntityName;
  /** The entity whose key the dialler proves: `mon.`, `client.admin`, … */
  entity: string;
  rank?: number;
  /**
   * Random per Messenger instance (Ceph's entity_addr nonce): a session from the same name with a
   * new nonce comes from a restarted peer, so it replaces the old session at once rather than
   * losing the one-connection-per-pair tie-break to a stale half-open socket.
   */
  nonce: number;
  /** Fresh random bytes (challengeBytes) per connection: no recorded handshake can be replayed. */
  challenge: Uint8Array;
  modes: SessionMode[];
}

/** The acceptor's answer: its name, its own fresh challenge and the mode chosen — no fsid. */
export interface HelloReply {
  banner: typeof protocolBanner;
  protocolVersion: typeof protocolVersion;
  name: EntityName;
  rank?: number;
  nonce: number;
  challenge: Uint8Array;
  mode: SessionMode;
}

/** Each side's proof of the secret (Ceph's AUTH_SIGNATURE), the dialler's first. */
export interface Proof {
  proof: Uint8Array;
}

/** The session frame, alone in the first sealed record each way: what only a proven peer is told. */
export interface SessionInfo {
  fsid: string;
}

/** The accepting side's answer to a handshake it will not take; the connection closes after it. */
export interface Refusal {
  refused: string;
}

/**
 * The refusal a dialler gets for a wrong key or an unknown entity alike: nothing tells it which.
 * A CLI shows it as `Error EACCES: authentication failed for client.admin` (exit 13).
 */
export function authFailedReason(entity: string): string {
  return `EACCES: authentication failed for ${entity}`;
}

/**
 * The nil UUID as a client's fsid: "I do not know the cluster yet" (a client given only `-m
 * HOST:PORT`, as a Ceph client is before it reads the monmap). A monitor accepts it from a
 * `client.*` only, and such a client accepts whatever fsid the monitor answers with.
 */
export const anyFsid = '00000000-0000-0000-0000-000000000000';

const entityNamePattern = new RegExp(`^(mon|client)\\.[A-Za-z0-9_-]{1,${limits.nameBytesMax}}$`);
/** `mon.`, or `client.` and a name (Ceph's entity ids may hold dots: `client.rgw.a`). */
const authEntityPattern = new RegExp(`^(mon\\.|client\\.[A-Za-z0-9_.-]{1,${limits.nameBytesMax}})$`);
const fsidPattern = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const refusalReasonBytesMax = 200;
/** Secrets shorter than Ceph's AES keys (16 bytes) are refused at construction. */
const secretBytesMin = 16;

/** Whether a session name may be carried by a key: `mon.*` only by `mon.`, `client.*` only by a `client.*` entity. */
export function mayCarryName(entity: string, name: string): boolean {
  return name.startsWith('mon.') ? entity === monEntity : entity.startsWith('client.');
}

/**
 * Whether two ends' fsids let them talk: the same cluster, or a client that does not know its
 * cluster yet (anyFsid). Symmetric, so each side decides alike once it knows both.
 */
export function fsidsAgree(
  local: { fsid: string; name: EntityName },
  peer: { fsid: string; name: EntityName },
): boolean {
  if (peer.fsid.toLowerCase() === local.fsid.toLowerCase()) return true;
  return (
    (peer.fsid === anyFsid && peer.name.startsWith('client.')) ||
    (local.fsid === anyFsid && local.name.startsWith('client.'))
  );
}

/** The fields both hellos share, checked before anything is proven: null, or the reason to refuse. */
function checkHelloCommon(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return 'handshake is not an object';
  const fields = value as Record<string, unknown>;
  if (fields.banner !== protocolBanner) return `wrong banner ${quote(fields.banner)}`;
  if (fields.protocolVersion !== protocolVersion) {
    return `unsupported protocol version ${quote(fields.protocolVersion)} (speaking ${protocolVersion})`;
  }
  if (typeof fields.name !== 'string' || !entityNamePattern.test(fields.name)) {
    return `malformed entity name ${quote(fields.name)}`;
  }
  if (fields.rank !== undefined && !(Number.isInteger(fields.rank) && (fields.rank as number) >= 0)) {
    return `malformed rank ${quote(fields.rank)}`;
  }
  if (typeof fields.nonce !== 'number' || !Number.isSafeInteger(fields.nonce)) {
    return `malformed nonce ${quote(fields.nonce)}`;
  }
  if (!(fields.challenge instanceof Uint8Array) || fields.challenge.byteLength !== challengeBytes) {
    return `malformed challenge (${challengeBytes} bytes expected)`;
  }
  return null;
}

/** A dialler's hello, as the acceptor checks it before any proof: null, or the reason to refuse. */
export function checkHello(value: unknown): string | null {
  const common = checkHelloCommon(value);
  if (common !== null) return common;
  const fields = value as Record<string, unknown>;
  if (typeof fields.entity !== 'string' || !authEntityPattern.test(fields.entity)) {
    return `malformed auth entity ${quote(fields.entity)}`;
  }
  const modes = fields.modes;
  if (
    !Array.isArray(modes) ||
    modes.length === 0 ||
    modes.length > sessionModes.length ||
    new Set(modes).size !== modes.length ||
    !modes.every((mode) => sessionModes.includes(mode))
  ) {
    return `malformed session modes ${quote(modes)}`;
  }
  return null;
}

/** An acceptor's reply, as the dialler checks it: null, or the reason to give up. */
export function checkHelloReply(value: unknown): string | null {
  const common = checkHelloCommon(value);
  if (common !== null) return common;
  const fields = value as Record<string, unknown>;
  if (!sessionModes.includes(fields.mode as SessionMode))
    return `malformed session mode ${quote(fields.mode)}`;
  return null;
}

function checkSessionInfo(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'session frame is not an object';
  const fsid = (value as Record<string, unknown>).fsid;
  if (typeof fsid !== 'string' || !fsidPattern.test(fsid)) return `malformed fsid ${quote(fsid)}`;
  return null;
}

/**
 * A socket connected to itself. Linux completes a connect() to a port of its ephemeral range
 * that nothing listens on with the socket itself (TCP simultaneous open) once a redial happens
 * to draw that very port as its source port. Such a "connection" answers its own hello, and its
 * TIME-WAIT would keep the port's real owner (a monitor starting there) from listening for a
 * minute; it is reset at once, which leaves no TIME-WAIT.
 */
export function connectedToItself(socket: net.Socket): boolean {
  return socket.localPort === socket.remotePort && socket.localAddress === socket.remoteAddress;
}

function isRefusal(value: unknown): value is Refusal {
  return typeof value === 'object' && value !== null && typeof (value as Refusal).refused === 'string';
}

function sameBytes(a: unknown, b: Uint8Array): boolean {
  return a instanceof Uint8Array && Buffer.compare(a, b) === 0;
}

function quote(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = typeof value;
  }
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/**
 * Where one connection's handshake is (three frames each way; the module comment lists them).
 * Plain data the handshake steps read and advance.
 */
interface Handshake {
  /** The frame expected next from the peer. */
  expect: 'hello' | 'proof' | 'session';
  /** Our hello or reply: its exact payload bytes, and its challenge. */
  ownHello: Uint8Array | undefined;
  ownChallenge: Uint8Array | undefined;
  /** The peer's hello or reply: its exact payload bytes (a copy), once read. */
  peerHello: Uint8Array | undefined;
  peerChallenge: Uint8Array | undefined;
  /** Who the peer says it is: believed once it proved `entity`'s key. */
  peerName: EntityName | undefined;
  peerNonce: number;
  /** The entity whose key is being proven: ours when dialling, the dialler's claim when accepting. */
  entity: string | undefined;
  mode: SessionMode | undefined;
  secrets: SessionSecrets | undefined;
  sealer: RecordSealer | undefined;
  opener: RecordOpener | undefined;
}

function newHandshake(): Handshake {
  return {
    expect: 'hello',
    ownHello: undefined,
    ownChallenge: undefined,
    peerHello: undefined,
    peerChallenge: undefined,
    peerName: undefined,
    peerNonce: -1,
    entity: undefined,
    mode: undefined,
    secrets: undefined,
    sealer: undefined,
    opener: undefined,
  };
}

/** What one handshake frame leads to: frames to write, then wait, establish, or close. */
type HandshakeStep =
  | { next: 'wait'; send: Uint8Array[] }
  | { next: 'established'; send: Uint8Array[] }
  | {
      next: 'close';
      send: Uint8Array[];
      reason: string;
      /**
       * 'refused': a handshake refused, by us (send holds the refusal frame, written before our
       * FIN) or by the peer; 'failed': anything else (an undecodable frame, a frame that did not
       * open), closed at once.
       */
      kind: 'refused' | 'failed';
      /** A proof that did not verify (ours or the peer's). */
      authFailure?: boolean;
    };

/** A keepalive's payload: empty, sealed in a record like any frame (frame.ts isKeepalive). */
const keepalivePayload = new Uint8Array(0);

/**
 * The session frame's value, from the first sealed record each way, which holds that frame alone:
 * null when the record does not open, else the value or why it is no session frame.
 */
function openSessionRecord(
  opener: RecordOpener,
  record: Uint8Array,
): { value: SessionInfo } | { error: string } | null {
  const plaintext = opener.open(record);
  if (plaintext === null) return null;
  const split = splitFrames(plaintext, helloBytesMax);
  if ('error' in split) return split;
  const [frame] = split.frames;
  if (frame === undefined || split.frames.length !== 1)
    return { error: `${split.frames.length} frames in the session record` };
  const decoded = decodeValue(frame);
  if ('error' in decoded) return decoded;
  const reason = checkSessionInfo(decoded.value);
  return reason === null ? { value: decoded.value as SessionInfo } : { error: reason };
}

function refusalFrame(reason: string): Uint8Array {
  const refusal: Refusal = { refused: reason.slice(0, refusalReasonBytesMax) };
  return encodeFrame(encodeValue(refusal));
}

// --- addresses ------------------------------------------------------------------------------

/** Split `host:port` (IPv6 in brackets); null when malformed. Port 0 is allowed (listen anywhere). */
export function parseAddr(addr: string): { host: string; port: number } | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(addr);
  if (!match) return null;
  const port = Number(match[3]);
  if (port > 65_535) return null;
  return { host: match[1] ?? match[2] ?? '', port };
}

function formatAddr(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

// --- options, stats, logger -----------------------------------------------------------------

/** The subset of pino's API the messenger uses: (fields, message). */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * The messenger's default timing, sized for monitors that must find a healed peer again within
 * about a second (paxmon's mon_probe_timeout is 0.5 s, its election 1 s; machines/config.ts).
 */
export const messengerTimingDefaults = {
  /**
   * A LAN connect takes well under a millisecond; 2 s leaves room for the kernel's first SYN
   * retransmission (Linux sends it after 1 s). Ceph bounds connect + handshake together
   * (ms_connection_ready_timeout, 10 s): handshakeTimeoutMs keeps that role here.
   */
  connectTimeoutMs: 2000,
  /** Ceph's monitors ping each other every mon_elector_ping_timeout / mon_elector_ping_divisor = 1 s. */
  keepaliveIntervalMs: 1000,
  /**
   * Five keepalive intervals, and Ceph's mon_lease: longer than any of paxmon's protocol timeouts
   * (a peon waits mon_lease × 2 = 2 s for a lease), so the monitors notice a lost peer first and
   * a connection is declared dead only when the protocols cannot have been using it anyway.
   */
  readTimeoutMs: 5000,
  /**
   * Redial after 50 ms, doubling per failure up to 1 s: a healed peer is dialled again within a
   * second (Ceph's ms_initial_backoff 0.2 s, ms_max_backoff 15 s, are for thousands of OSDs).
   */
  reconnectMs: { initial: 50, max: 1000 },
  handshakeTimeoutMs: 10_000,
  /**
   * A client session that has sent no message for this long is closed (its MonClient redials
   * for its next command). Ceph's mon_session_timeout is 300 s; a minute frees the slots of
   * sessions opened and left idle five times sooner, and keepalives do not count.
   */
  clientIdleTimeoutMs: 60_000,
  /** Invalid messages on one connection: one log line per interval, with a count. */
  invalidLogIntervalMs: 5000,
} as const;

/**
 * The messenger's default budgets for connections not known to be a monitor's (clients, and
 * connections still handshaking). A monitor session (one we dialled, or one from a monitor whose
 * address we were given: a monmap member) keeps frameBytesMax.
 */
export const messengerBudgetDefaults = {
  /**
   * Largest frame from a client: a command's words (commandWordBytesMax, 4 MiB) and its input
   * buffer (mon_config_key_max_entry_size, 64 KiB) fit with room to spare.
   */
  clientFrameBytesMax: 8 * 1024 * 1024,
  /**
   * Ceph's mon_client_bytes (100 MiB): bytes of unfinished frames buffered from all client
   * connections together. Beyond it, the connection holding the most is closed, until the sum
   * fits again (Ceph's throttle makes the reader wait instead; here a client retries).
   */
  clientBytesMax: 100 * 1024 * 1024,
  /** Accepted connections from one source address: an eighth of connectionsMax (1024). */
  connectionsPerAddressMax: 128,
} as const;

/**
 * Who a messenger proves to be, and how it checks who a peer is (issue 13, Ceph's cephx): the
 * handshake proves knowledge of an entity's secret in both directions; a peer's name is trusted
 * only once it proved a key that may carry that name (`mon.*` names: the `mon.` key).
 */
export interface MessengerAuth {
  /** The entity whose secret this messenger proves: `mon.` for every monitor, `client.admin`, … */
  entity: string;
  /** That entity's secret (the secret bytes of its Ceph CryptoKey, machines/crypto-key.ts). */
  secret: Uint8Array;
  /**
   * Accepting side: the secret of the entity a dialler claims to be, or undefined when there is
   * no such entity (the dialler gets EACCES, and nothing tells it whether the entity exists).
   * Without it, a messenger accepts only its own entity (monitors proving `mon.` to each other).
   */
  keyFor?(entity: string): Uint8Array | undefined;
  /**
   * Session modes in order of preference (Ceph's ms_client_mode / ms_cluster_mode /
   * ms_service_mode): 'secure' encrypts and authenticates every frame (AES-256-GCM), 'crc'
   * authenticates every frame (HMAC-SHA256) without encrypting. Dialling, the list offered
   * (default: ['secure', 'crc'] for a monitor, Ceph's ms_cluster_mode; ['crc', 'secure'] for a
   * client, Ceph's ms_client_mode). Accepting, the modes allowed (default both): the first of the
   * dialler's list that is allowed is chosen.
   */
  modes?: SessionMode[];
}

export interface MessengerOptions {
  name: EntityName;
  fsid: string;
  /** Authentication (issue 13): every connection proves a key, both ways, before any message. */
  auth: MessengerAuth;
  rank?: number;
  /** `host:port` to listen on (port 0: any free port); default 127.0.0.1:0. */
  listenAddr?: string;
  /**
   * Largest record sent or accepted, in bytes (default 64 MiB): the frames inside and the 16-byte
   * tag, the record's own length prefix aside. A message, sealed alone in a record, may encode to
   * frameBytesMax - recordOverheadBytes (its frame's length prefix and the tag).
   */
  frameBytesMax?: number;
  /** Messages waiting per peer before the oldest is dropped (default 4096). */
  queueMessagesMax?: number;
  /** Bytes waiting per peer before the oldest is dropped (default 4 × frameBytesMax). */
  queueBytesMax?: number;
  logger?: Logger;
  /** Delay before re-dialling a monitor, doubling per failure from initial up to max (default 50…1000). */
  reconnectMs?: { initial: number; max: number };
  /** Time allowed from connect to a completed handshake (default 10 s). */
  handshakeTimeoutMs?: number;
  /**
   * Time a dial may take to connect (until the TCP handshake completes) before it counts as
   * failed: the queued messages stay and the reconnect backoff applies (default 2 s).
   */
  connectTimeoutMs?: number;
  /** An established connection that has written nothing for this long sends a keepalive frame (default 1 s). */
  keepaliveIntervalMs?: number;
  /**
   * A connection that has read nothing (not even a keepalive) for this long is closed as dead:
   * a reset, and a redial when messages wait for the peer (default 5 s; at least twice
   * keepaliveIntervalMs, since the peer's keepalives must have time to arrive).
   */
  readTimeoutMs?: number;
  /** Time a deliberately closed connection may take to flush before it is destroyed (default 5 s). */
  lingerMs?: number;
  /** Simultaneous accepted connections (default 1024). */
  connectionsMax?: number;
  /**
   * Simultaneous accepted connections from one source IP address (default 128; at most
   * connectionsMax): one host cannot take every slot.
   */
  connectionsPerAddressMax?: number;
  /** Largest record accepted from a connection not known to be a monitor's (default 8 MiB, at most frameBytesMax). */
  clientFrameBytesMax?: number;
  /** Bytes of unfinished frames buffered from all such connections together (default 100 MiB, Ceph's mon_client_bytes). */
  clientBytesMax?: number;
  /** A client session with no message for this long is closed (default 60 s; keepalives do not count). */
  clientIdleTimeoutMs?: number;
  /** Invalid messages on one connection are logged once per interval, with a count (default 5 s). */
  invalidLogIntervalMs?: number;
  /**
   * Bytes of frames (length prefixes included) coalesced into one socket write, one sealed record
   * (default 1 MiB); a frame larger than that goes alone. Held below clientFrameBytesMax less the
   * tag, so a record of many frames fits the smallest limit a peer configured alike reads with.
   */
  writeBatchBytesMax?: number;
}

export interface MessengerStats {
  /** Messages written to a socket. */
  sent: number;
  /** Valid messages delivered to onMessage. */
  received: number;
  /** Messages dropped: queue overflow, no route to the peer, too large, queued when closing. */
  dropped: number;
  /** Handshakes refused, by us or by the peer. */
  refused: number;
  /** Received messages that failed validation (dropped; the connection stays). */
  invalid: number;
  /** Received frames that were not one MessagePack value (the connection is closed). */
  undecodable: number;
  /**
   * Broken framing: an oversized length prefix, or a record that opened but does not hold whole
   * frames (the connection is closed).
   */
  framingErrors: number;
  /** Sessions lost (onReset calls). */
  resets: number;
  /** Outgoing connection attempts. */
  dials: number;
  /** Dials that had not connected within connectTimeoutMs. */
  connectTimeouts: number;
  /** Connections closed because nothing was read on them for readTimeoutMs. */
  readTimeouts: number;
  /** Keepalive frames sent on idle connections. */
  keepalives: number;
  /** Client sessions closed for sending no message for clientIdleTimeoutMs. */
  idleTimeouts: number;
  /** Connections closed because the clients' buffered bytes exceeded clientBytesMax. */
  budgetCloses: number;
  /** Connections refused because their source address had connectionsPerAddressMax open. */
  addressRefusals: number;
  /** Bytes of unfinished frames currently buffered from connections not known to be a monitor's. */
  clientBufferedBytes: number;
  /** Queued messages taken back by withdraw() before any socket had them. */
  withdrawn: number;
  /** Handshakes completed, both directions. */
  handshakes: number;
  /**
   * Handshakes that failed authentication: a dialler with a wrong key or an unknown entity
   * (refused by us), or a peer that did not prove the key (when we dialled).
   */
  authFailures: number;
  /**
   * Records after the handshake that did not open (altered, replayed, reordered, injected, or sealed
   * for another session): each closed its connection.
   */
  frameAuthFailures: number;
  /** Connections closed in favour of another to the same peer (simultaneous connect, restarts). */
  replaced: number;
  bytesSent: number;
  bytesReceived: number;
  /** Currently open sockets, handshaking or not. */
  connections: number;
  /** Messages currently waiting in peer queues. */
  queued: number;
}

// --- internals ------------------------------------------------------------------------------

type ConnectionState = 'handshaking' | 'open' | 'closing' | 'closed';

interface Connection {
  readonly id: number;
  readonly socket: net.Socket;
  readonly direction: 'outgoing' | 'incoming';
  readonly decoder: FrameDecoder;
  state: ConnectionState;
  /** Set when the handshake completes: messages are accepted only from established connections. */
  established: boolean;
  peer: Peer | undefined;
  remoteNonce: number;
  remoteAddr: string;
  /** The handshake under way; undefined once established (or never begun). */
  handshake: Handshake | undefined;
  /** What the peer proved (set when established): passed with every message it sends. */
  session: PeerSession | undefined;
  /** Seals what we send and opens what we read, from the end of the handshake on. */
  sealer: RecordSealer | undefined;
  opener: RecordOpener | undefined;
  /** Closed on purpose (replaced, refused, messenger closing): no reset, no reconnect. */
  retired: boolean;
  closeReason: string | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Messenger ticks since a byte was read (or, while connecting, since the dial began). */
  silentTicks: number;
  /** Messenger ticks since a byte was written. */
  idleTicks: number;
  /** Messenger ticks since a message was delivered (an incoming client session's idleness). */
  quietTicks: number;
  /** The remote IP of an accepted connection (its per-address count); undefined for dials. */
  readonly sourceAddress: string | undefined;
  /** This connection's bytes counted in the clients' buffered total. */
  clientBufferedBytes: number;
  /** Invalid messages not yet logged, the latest reason, and when the last line was written. */
  invalidUnlogged: number;
  invalidReason: string | undefined;
  invalidLoggedAt: number;
}

/**
 * A message send() queued for a peer: withdraw() takes it back as long as it waits in the
 * queue. Plain data: the queue's id and the message's position in it.
 */
export interface Queued {
  readonly to: EntityName;
  readonly queue: number;
  readonly position: number;
}

let frameQueueIds = 0;

/**
 * A bounded FIFO of encoded messages (payloads, framed and sealed only when written to a
 * connection, whose session keys they need), O(1) at both ends and for taking one back from the
 * middle: every entry has a position (counted from the queue's creation), a withdrawn one leaves
 * a hole that shift() and peek() skip.
 */
class FrameQueue {
  readonly id = ++frameQueueIds;
  #items: (Uint8Array | undefined)[] = [];
  #head = 0;
  /** The position of #items[0]. */
  #base = 0;
  #count = 0;
  bytes = 0;

  get length(): number {
    return this.#count;
  }

  /** Append a frame; returns its position, for remove(). */
  push(frame: Uint8Array): number {
    this.#items.push(frame);
    this.#count += 1;
    this.bytes += frame.byteLength;
    return this.#base + this.#items.length - 1;
  }

  shift(): Uint8Array | undefined {
    this.#skipHoles();
    if (this.#head >= this.#items.length) return undefined;
    const frame = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (frame) this.#taken(frame);
    // Compact now and then so a long-lived queue does not grow its backing array forever.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
    return frame;
  }

  peek(): Uint8Array | undefined {
    this.#skipHoles();
    return this.#items[this.#head];
  }

  /** Take back the frame at `position` if it is still waiting; false when it has left or was dropped. */
  remove(position: number): boolean {
    const index = position - this.#base;
    if (index < this.#head || index >= this.#items.length) return false;
    const frame = this.#items[index];
    if (!frame) return false;
    this.#items[index] = undefined;
    this.#taken(frame);
    return true;
  }

  clear(): number {
    const count = this.#count;
    this.#base += this.#items.length;
    this.#items = [];
    this.#head = 0;
    this.#count = 0;
    this.bytes = 0;
    return count;
  }

  #taken(frame: Uint8Array): void {
    this.#count -= 1;
    this.bytes -= frame.byteLength;
    // Empty: start a fresh array (positions go on counting), dropping the holes with it.
    if (this.#count === 0) this.clear();
  }

  #skipHoles(): void {
    while (this.#head < this.#items.length && this.#items[this.#head] === undefined) this.#head += 1;
  }
}

interface Peer {
  readonly name: EntityName;
  /** Where to dial a monitor; unknown for clients and for monitors that only dialled us. */
  addr: string | undefined;
  readonly queue: FrameQueue;
  /** The established connection messages go out on. */
  active: Connection | undefined;
  /** Established connections not yet closed (the active one, plus ones being replaced). */
  readonly connections: Set<Connection>;
  /** Our outgoing connection while it connects and handshakes. */
  dialing: Connection | undefined;
  reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  backoffMs: number;
  flushScheduled: boolean;
  /**
   * The active connection closed while our own dial to the peer was still handshaking: the peer
   * may just be retiring its side of a simultaneous connect. Report a reset only if that dial fails.
   */
  resetPending: boolean;
}

let connectionIds = 0;

export class Messenger implements Transport {
  readonly name: EntityName;
  readonly fsid: string;
  readonly rank: number | undefined;
  readonly frameBytesMax: number;
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  readonly #listenAddr: string;
  readonly #logger: Logger;
  readonly #reconnectMs: { initial: number; max: number };
  readonly #handshakeTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #keepaliveIntervalMs: number;
  readonly #readTimeoutMs: number;
  /** The period of the one timer that counts every connection's silence and idleness. */
  readonly #tickMs: number;
  readonly #connectTimeoutTicks: number;
  readonly #keepaliveTicks: number;
  readonly #readTimeoutTicks: number;
  #ticker: ReturnType<typeof setInterval> | undefined;
  readonly #lingerMs: number;
  readonly #connectionsMax: number;
  readonly #connectionsPerAddressMax: number;
  readonly clientFrameBytesMax: number;
  readonly clientBytesMax: number;
  readonly #clientIdleTimeoutMs: number;
  readonly #clientIdleTimeoutTicks: number;
  readonly #invalidLogIntervalMs: number;
  /** Accepted connections open per source IP address. */
  readonly #connectionsByAddress = new Map<string, number>();
  #clientBufferedBytes = 0;
  /** Refusals over the per-address cap since the last line about them (logged once per interval). */
  #addressRefusalsUnlogged = 0;
  #addressRefusalLoggedAt = -Infinity;
  /** Bytes of frames coalesced into one record: writeBatchBytesMax, held below clientFrameBytesMax. */
  readonly #recordFramesBytesMax: number;
  readonly #nonce = randomInt(0, 2 ** 47);
  /** The entity this messenger proves, and its secret. */
  readonly entity: string;
  readonly #secret: Uint8Array;
  readonly #keyFor: (entity: string) => Uint8Array | undefined;
  /** Modes offered when dialling, in order of preference; and those allowed when accepting. */
  readonly #offeredModes: SessionMode[];
  readonly #allowedModes: ReadonlySet<SessionMode>;
  /** What every message sent to ourselves arrives with. */
  readonly #ownSession: PeerSession;

  #handlers: TransportHandlers | undefined;
  /**
   * Messages read after listen() but before the owner set its handlers (a monitor listens, then
   * loads its store and starts its actors). Ceph's DispatchQueue likewise holds what arrives
   * until the Monitor has registered as a dispatcher; dropping them silently cost a client its
   * whole attempt timeout.
   */
  #early: Array<{ from: EntityName; message: Message; session: PeerSession }> = [];
  #server: net.Server | undefined;
  #boundAddr: string | undefined;
  readonly #peers = new Map<EntityName, Peer>();
  readonly #connections = new Set<Connection>();
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #stats: Omit<MessengerStats, 'connections' | 'queued' | 'clientBufferedBytes'> = {
    sent: 0,
    received: 0,
    dropped: 0,
    refused: 0,
    invalid: 0,
    undecodable: 0,
    framingErrors: 0,
    resets: 0,
    dials: 0,
    connectTimeouts: 0,
    readTimeouts: 0,
    keepalives: 0,
    idleTimeouts: 0,
    budgetCloses: 0,
    addressRefusals: 0,
    withdrawn: 0,
    handshakes: 0,
    authFailures: 0,
    frameAuthFailures: 0,
    replaced: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };

  constructor(options: MessengerOptions) {
    if (!entityNamePattern.test(options.name)) throw new RangeError(`malformed entity name ${options.name}`);
    if (!fsidPattern.test(options.fsid)) throw new RangeError(`malformed fsid ${options.fsid}`);
    if (options.fsid === anyFsid && !options.name.startsWith('client.')) {
      throw new RangeError(`${options.name}: only a client may leave the fsid unknown`);
    }
    const auth = options.auth;
    if (!auth) throw new TypeError(`${options.name}: a messenger needs auth (an entity and its secret)`);
    if (!authEntityPattern.test(auth.entity)) throw new RangeError(`malformed auth entity ${auth.entity}`);
    if (!mayCarryName(auth.entity, options.name)) {
      throw new RangeError(`${auth.entity} may not carry the name ${options.name}`);
    }
    if (!(auth.secret instanceof Uint8Array) || auth.secret.byteLength < secretBytesMin) {
      throw new RangeError(`the secret of ${auth.entity} must be at least ${secretBytesMin} bytes`);
    }
    const modes = auth.modes ?? (options.name.startsWith('mon.') ? ['secure', 'crc'] : ['crc', 'secure']);
    if (
      modes.length === 0 ||
      new Set(modes).size !== modes.length ||
      !modes.every((mode) => sessionModes.includes(mode))
    ) {
      throw new RangeError(`session modes must be a non-empty list of ${sessionModes.join(', ')}`);
    }
    this.entity = auth.entity;
    this.#secret = Uint8Array.prototype.slice.call(auth.secret);
    const ownEntity = this.entity;
    const ownSecret = this.#secret;
    this.#keyFor =
      auth.keyFor?.bind(auth) ?? ((entity: string) => (entity === ownEntity ? ownSecret : undefined));
    this.#offeredModes = [...modes];
    this.#allowedModes = new Set(auth.modes ?? sessionModes);
    this.#ownSession = { entity: this.entity };
    this.name = options.name;
    this.fsid = options.fsid;
    this.rank = options.rank;
    this.frameBytesMax = positiveInteger('frameBytesMax', options.frameBytesMax ?? frameBytesMaxDefault);
    this.queueMessagesMax = positiveInteger('queueMessagesMax', options.queueMessagesMax ?? 4096);
    this.queueBytesMax = positiveInteger('queueBytesMax', options.queueBytesMax ?? 4 * this.frameBytesMax);
    this.#listenAddr = options.listenAddr ?? '127.0.0.1:0';
    this.#logger = options.logger ?? silentLogger;
    const defaults = messengerTimingDefaults;
    const reconnect = options.reconnectMs ?? defaults.reconnectMs;
    this.#reconnectMs = {
      initial: positiveInteger('reconnectMs.initial', reconnect.initial),
      max: positiveInteger('reconnectMs.max', Math.max(reconnect.max, reconnect.initial)),
    };
    this.#handshakeTimeoutMs = positiveInteger(
      'handshakeTimeoutMs',
      options.handshakeTimeoutMs ?? defaults.handshakeTimeoutMs,
    );
    this.#connectTimeoutMs = positiveInteger(
      'connectTimeoutMs',
      options.connectTimeoutMs ?? defaults.connectTimeoutMs,
    );
    this.#keepaliveIntervalMs = positiveInteger(
      'keepaliveIntervalMs',
      options.keepaliveIntervalMs ?? defaults.keepaliveIntervalMs,
    );
    this.#readTimeoutMs = positiveInteger('readTimeoutMs', options.readTimeoutMs ?? defaults.readTimeoutMs);
    if (this.#readTimeoutMs < 2 * this.#keepaliveIntervalMs) {
      throw new RangeError(
        `readTimeoutMs (${this.#readTimeoutMs}) must be at least twice keepaliveIntervalMs (${this.#keepaliveIntervalMs}): the peer's keepalives need time to arrive`,
      );
    }
    // A quarter of the shortest bound: each bound is kept to within a quarter of itself.
    this.#tickMs = Math.max(1, Math.floor(Math.min(this.#keepaliveIntervalMs, this.#connectTimeoutMs) / 4));
    // Strictly more ticks than the bound (see #tick): never declared silent before the bound.
    this.#connectTimeoutTicks = Math.ceil(this.#connectTimeoutMs / this.#tickMs);
    this.#readTimeoutTicks = Math.ceil(this.#readTimeoutMs / this.#tickMs);
    this.#keepaliveTicks = Math.max(1, Math.floor(this.#keepaliveIntervalMs / this.#tickMs));
    this.#lingerMs = positiveInteger('lingerMs', options.lingerMs ?? 5000);
    this.#connectionsMax = positiveInteger('connectionsMax', options.connectionsMax ?? 1024);
    const budgets = messengerBudgetDefaults;
    this.#connectionsPerAddressMax = Math.min(
      this.#connectionsMax,
      positiveInteger(
        'connectionsPerAddressMax',
        options.connectionsPerAddressMax ?? budgets.connectionsPerAddressMax,
      ),
    );
    this.clientFrameBytesMax = Math.min(
      this.frameBytesMax,
      positiveInteger('clientFrameBytesMax', options.clientFrameBytesMax ?? budgets.clientFrameBytesMax),
    );
    this.clientBytesMax = positiveInteger('clientBytesMax', options.clientBytesMax ?? budgets.clientBytesMax);
    this.#clientIdleTimeoutMs = positiveInteger(
      'clientIdleTimeoutMs',
      options.clientIdleTimeoutMs ?? defaults.clientIdleTimeoutMs,
    );
    this.#invalidLogIntervalMs = positiveInteger(
      'invalidLogIntervalMs',
      options.invalidLogIntervalMs ?? defaults.invalidLogIntervalMs,
    );
    this.#clientIdleTimeoutTicks = Math.ceil(this.#clientIdleTimeoutMs / this.#tickMs);
    // A record of many frames must fit the smallest record limit a peer configured like us reads
    // with (its clients'); a frame larger than a batch still goes, alone, up to frameBytesMax.
    this.#recordFramesBytesMax = Math.max(
      frameHeaderBytes,
      Math.min(
        positiveInteger('writeBatchBytesMax', options.writeBatchBytesMax ?? 1024 * 1024),
        this.clientFrameBytesMax - sealTagBytes,
      ),
    );
  }

  /** The bound `host:port` once listening. */
  get addr(): string | undefined {
    return this.#boundAddr;
  }

  setHandlers(handlers: TransportHandlers): void {
    this.#handlers = handlers;
    if (this.#early.length === 0) return;
    const early = this.#early;
    this.#early = [];
    // After the caller's own start-up code, and before any socket read that follows it.
    queueMicrotask(() => {
      for (const { from, message, session } of early) {
        if (this.#closed) return;
        this.#stats.received++;
        this.#handlers?.onMessage(from, message, session);
      }
    });
  }

  /**
   * The entity a peer proved in its established session (`mon.`, `client.admin`, …); undefined
   * when there is no established session with it. Our own entity for our own name.
   */
  sessionEntity(peer: EntityName): string | undefined {
    if (peer === this.name) return this.entity;
    const active = this.#peers.get(peer)?.active;
    return active?.established ? active.session?.entity : undefined;
  }

  /** Hold a message read before handlers were set, up to queueMessagesMax; beyond that, drop it. */
  #holdEarly(from: EntityName, message: Message, session: PeerSession): void {
    if (this.#early.length < this.queueMessagesMax) {
      this.#early.push({ from, message, session });
      this.#logger.debug({ entity: this.name, peer: from }, 'message held until handlers are set');
      return;
    }
    this.#stats.dropped++;
    this.#logger.debug({ entity: this.name, peer: from }, 'message before handlers were set; dropped');
  }

  stats(): MessengerStats {
    let queued = 0;
    for (const peer of this.#peers.values()) queued += peer.queue.length;
    return {
      ...this.#stats,
      connections: this.#connections.size,
      queued,
      clientBufferedBytes: this.#clientBufferedBytes,
    };
  }

  /** Listen on listenAddr; resolves to the bound `host:port` (the real port when 0 was asked). */
  listen(): Promise<string> {
    if (this.#closed) return Promise.reject(new Error(`${this.name}: messenger is closed`));
    if (this.#server) return Promise.reject(new Error(`${this.name}: already listening`));
    const parsed = parseAddr(this.#listenAddr);
    if (!parsed) return Promise.reject(new RangeError(`malformed listen address ${this.#listenAddr}`));
    const server = net.createServer({ noDelay: true, keepAlive: true }, (socket) => this.#accept(socket));
    server.maxConnections = this.#connectionsMax;
    this.#server = server;
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        this.#server = undefined;
        reject(error);
      };
      server.once('error', onError);
      server.listen({ host: parsed.host, port: parsed.port }, () => {
        server.off('error', onError);
        // A listening server's later errors (rare: EMFILE on accept) are logged, never thrown.
        server.on('error', (error) =>
          this.#logger.error({ entity: this.name, err: error.message }, 'server error'),
        );
        const bound = server.address();
        this.#boundAddr =
          bound !== null && typeof bound === 'object'
            ? formatAddr(bound.address, bound.port)
            : this.#listenAddr;
        this.#logger.info({ entity: this.name, addr: this.#boundAddr }, 'listening');
        resolve(this.#boundAddr);
      });
    });
  }

  /**
   * Learn the entity name of whoever listens at `addr` (a client given only `-m HOST:PORT`, as
   * Ceph's MonClient hunts from a list of addresses): a handshake-only connection, authenticated
   * both ways and closed at once. Resolves with the peer's name; rejects with the refusal (a wrong
   * key: `refused by ADDR: EACCES: authentication failed for ENTITY`), a failed proof, or on
   * timeout.
   */
  connect(addr: string, timeoutMs = this.#handshakeTimeoutMs): Promise<EntityName> {
    const parsed = parseAddr(addr);
    if (!parsed || parsed.port === 0)
      return Promise.reject(new Error(`cannot dial malformed address ${addr}`));
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: parsed.host, port: parsed.port, noDelay: true });
      const decoder = new FrameDecoder({
        frameBytesMax: helloBytesMax,
        firstFrameBytesMax: helloBytesMax,
        firstFrames: handshakeFramesEachWay,
      });
      const handshake = newHandshake();
      let settled = false;
      const finish = (error: Error | null, name?: EntityName) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // FIN after our session frame, so the monitor sees a session end rather than a reset.
        if (error) socket.destroy();
        else socket.end();
        if (error) reject(error);
        else resolve(name as EntityName);
      };
      const timer = setTimeout(
        () => finish(new Error(`no handshake from ${addr} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      timer.unref();
      socket.once('connect', () => {
        if (!connectedToItself(socket)) return socket.write(this.#startDial(handshake));
        socket.resetAndDestroy();
        finish(new Error(`nothing listens at ${addr} (the connection reached itself)`));
      });
      socket.on('error', (error) => finish(error));
      socket.on('close', () => finish(new Error(`${addr} closed the connection during the handshake`)));
      socket.on('data', (chunk: Buffer) => {
        const { frames, error } = decoder.push(chunk);
        for (const frame of frames) {
          if (settled) return;
          const step = this.#diallerStep(handshake, frame, { who: addr, addr, expected: undefined });
          for (const bytes of step.send) socket.write(bytes);
          if (step.next === 'close') return finish(new Error(step.reason));
          if (step.next === 'established') return finish(null, handshake.peerName);
        }
        if (error) finish(new Error(`bad handshake from ${addr}: ${error}`));
      });
    });
  }

  /**
   * Send as the Transport port says. When the message waits in the peer's queue (for a
   * connection, or for this turn's flush), returns where, for withdraw(); undefined when it was
   * dropped or sent to ourselves.
   */
  send(to: EntityName, message: Message, addr?: string): Queued | undefined {
    if (this.#closed) {
      this.#stats.dropped++;
      return;
    }
    let payload: Uint8Array;
    try {
      payload = encodeMessage(message);
    } catch (error) {
      this.#stats.dropped++;
      this.#logger.error(
        { entity: this.name, peer: to, err: String(error) },
        'cannot encode message; dropped',
      );
      return;
    }
    if (payload.byteLength + recordOverheadBytes > this.frameBytesMax) {
      // The peer would close the connection on it: better to drop it here, loudly.
      this.#stats.dropped++;
      this.#logger.error(
        {
          entity: this.name,
          peer: to,
          type: message.type,
          bytes: payload.byteLength,
          frameBytesMax: this.frameBytesMax,
        },
        'message exceeds the maximum frame size; dropped',
      );
      return;
    }
    if (to === this.name) {
      this.#sendToSelf(payload);
      return;
    }
    // A copy: the codec's output is a view into a slab it shares between calls, which a queued
    // view would pin (as large as the largest message encoded). allocUnsafe takes a small copy
    // from node's buffer pool; Uint8Array.prototype.slice on a Buffer made a new ArrayBuffer for
    // every message (~8% of a small-message stream's CPU). Every byte is written over at once.
    const frame = Buffer.allocUnsafe(payload.byteLength);
    frame.set(payload);
    const dialable = to.startsWith('mon.');
    let peer = this.#peers.get(to);
    if (!peer) {
      if (!dialable || addr === undefined) {
        this.#stats.dropped++;
        this.#logger.debug(
          { entity: this.name, peer: to, type: message.type },
          'no connection to peer; dropped',
        );
        return;
      }
      peer = this.#newPeer(to);
    }
    if (dialable && addr !== undefined) peer.addr = addr;
    if (peer.active) {
      const queued = this.#enqueue(peer, frame);
      this.#scheduleFlush(peer);
      return queued;
    }
    if (!dialable || peer.addr === undefined) {
      // A client (or a monitor known only by the connection it opened) is reachable only over
      // that connection, and it is gone.
      this.#stats.dropped++;
      this.#logger.debug(
        { entity: this.name, peer: to, type: message.type },
        'no connection to peer; dropped',
      );
      return;
    }
    const queued = this.#enqueue(peer, frame);
    if (!peer.dialing && !peer.reconnectTimer) this.#dial(peer);
    return queued;
  }

  /**
   * Take back a message send() queued, if no socket has it yet: a request its sender gave up on
   * must not reach the peer later, once a connection forms (a client's timed-out attempt). What
   * was written to a socket cannot be recalled. True when the message was withdrawn.
   */
  withdraw(queued: Queued): boolean {
    const peer = this.#peers.get(queued.to);
    if (!peer || peer.queue.id !== queued.queue || !peer.queue.remove(queued.position)) return false;
    this.#stats.withdrawn++;
    this.#logger.debug({ entity: this.name, peer: peer.name }, 'queued message withdrawn');
    return true;
  }

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    // What the owner sent before closing (the answer to a read a stopping monitor waited for) is
    // written out to the open connections, up to the kernel's buffer; the rest is dropped.
    for (const peer of this.#peers.values()) if (peer.queue.length > 0) this.#flush(peer);
    this.#closed = true;
    this.#early = [];
    this.#stopTicking();
    const waits: Promise<void>[] = [];
    const server = this.#server;
    if (server) waits.push(new Promise((resolve) => server.close(() => resolve())));
    for (const peer of this.#peers.values()) {
      if (peer.reconnectTimer) clearTimeout(peer.reconnectTimer);
      peer.reconnectTimer = undefined;
      this.#stats.dropped += peer.queue.clear();
    }
    for (const connection of this.#connections) {
      connection.retired = true;
      connection.closeReason ??= 'messenger closed';
      if (connection.state === 'closed') continue;
      waits.push(new Promise((resolve) => connection.socket.once('close', () => resolve())));
      if (connection.state !== 'open') {
        connection.socket.destroy();
        continue;
      }
      // FIN after what was written (a plain close could reset the connection and discard it,
      // when the peer's last bytes were still unread); a peer that does not close its side in
      // time is cut off.
      clearTimeout(connection.timer);
      connection.timer = setTimeout(() => connection.socket.destroy(), Math.min(this.#lingerMs, 1000));
      connection.timer.unref();
      connection.socket.end();
    }
    this.#closing = Promise.all(waits).then(() => {
      this.#peers.clear();
      this.#logger.debug({ entity: this.name }, 'messenger closed');
    });
    return this.#closing;
  }

  // --- connections ----------------------------------------------------------------------------

  #newPeer(name: EntityName): Peer {
    const peer: Peer = {
      name,
      addr: undefined,
      queue: new FrameQueue(),
      active: undefined,
      connections: new Set(),
      dialing: undefined,
      reconnectTimer: undefined,
      backoffMs: this.#reconnectMs.initial,
      flushScheduled: false,
      resetPending: false,
    };
    this.#peers.set(name, peer);
    return peer;
  }

  #track(
    socket: net.Socket,
    direction: Connection['direction'],
    remoteAddr: string,
    sourceAddress?: string,
  ): Connection {
    socket.setNoDelay(true);
    const connection: Connection = {
      id: ++connectionIds,
      socket,
      direction,
      // A client's limit until the session is known to be a monitor's (#onData raises it).
      decoder: new FrameDecoder({
        frameBytesMax: this.clientFrameBytesMax,
        firstFrameBytesMax: helloBytesMax,
        firstFrames: handshakeFramesEachWay,
      }),
      state: 'handshaking',
      established: false,
      peer: undefined,
      remoteNonce: -1,
      remoteAddr,
      handshake: newHandshake(),
      session: undefined,
      sealer: undefined,
      opener: undefined,
      retired: false,
      closeReason: undefined,
      timer: setTimeout(() => this.#abort(connection, 'handshake timed out'), this.#handshakeTimeoutMs),
      silentTicks: 0,
      idleTicks: 0,
      quietTicks: 0,
      sourceAddress,
      clientBufferedBytes: 0,
      invalidUnlogged: 0,
      invalidReason: undefined,
      invalidLoggedAt: Number.NEGATIVE_INFINITY,
    };
    connection.timer?.unref();
    this.#connections.add(connection);
    this.#startTicking();
    socket.on('data', (chunk: Buffer) => this.#onData(connection, chunk));
    socket.on('drain', () => {
      const peer = connection.peer;
      if (peer && peer.active === connection) this.#flush(peer);
    });
    socket.on('error', (error: Error) => {
      connection.closeReason ??= error.message;
    });
    socket.on('close', () => this.#onClose(connection));
    return connection;
  }

  #accept(socket: net.Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const source = socket.remoteAddress ?? '?';
    const open = this.#connectionsByAddress.get(source) ?? 0;
    if (open >= this.#connectionsPerAddressMax) {
      // Refused before anything is read or allocated; logged once per interval with a count, so
      // a host opening connections in a loop cannot flood the log either.
      this.#stats.addressRefusals++;
      this.#addressRefusalsUnlogged++;
      const now = performance.now();
      if (now - this.#addressRefusalLoggedAt >= this.#invalidLogIntervalMs) {
        this.#logger.warn(
          {
            entity: this.name,
            addr: source,
            count: this.#addressRefusalsUnlogged,
            connectionsPerAddressMax: this.#connectionsPerAddressMax,
          },
          'connection refused: too many from one address',
        );
        this.#addressRefusalsUnlogged = 0;
        this.#addressRefusalLoggedAt = now;
      }
      socket.destroy();
      return;
    }
    this.#connectionsByAddress.set(source, open + 1);
    const remoteAddr = formatAddr(source, socket.remotePort ?? 0);
    this.#track(socket, 'incoming', remoteAddr, source);
  }

  #dial(peer: Peer): void {
    const addr = peer.addr;
    const parsed = addr === undefined ? null : parseAddr(addr);
    if (!parsed || parsed.port === 0) {
      const dropped = peer.queue.clear();
      this.#stats.dropped += dropped;
      this.#logger.error(
        { entity: this.name, peer: peer.name, addr, dropped },
        'cannot dial malformed address',
      );
      return;
    }
    this.#stats.dials++;
    const socket = net.connect({ host: parsed.host, port: parsed.port, noDelay: true, keepAlive: true });
    const connection = this.#track(socket, 'outgoing', addr as string);
    connection.peer = peer;
    peer.dialing = connection;
    socket.once('connect', () => {
      if (connectedToItself(socket)) {
        connection.closeReason = `nothing listens at ${addr} (the connection reached itself)`;
        socket.resetAndDestroy();
        return;
      }
      // From here the silence counted is the peer's (readTimeoutMs), no longer the dial's.
      connection.silentTicks = 0;
      if (connection.state === 'handshaking' && connection.handshake)
        this.#write(connection, this.#startDial(connection.handshake));
    });
  }

  // --- timing: connect, keepalive and read bounds ---------------------------------------------

  #startTicking(): void {
    if (this.#ticker || this.#closed) return;
    this.#ticker = setInterval(() => this.#tick(), this.#tickMs);
    this.#ticker.unref();
  }

  #stopTicking(): void {
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /**
   * The messenger's one timer, running while there are connections (TigerBeetle ticks all its
   * timeouts from one place). Each tick counts, per connection, the ticks since a byte was read
   * and since one was written. Counting ticks rather than reading the clock means that a stall
   * of this process (a long GC pause, a blocked event loop) counts as one tick: a peer is
   * declared silent only for a silence we were awake to hear, not for our own.
   */
  #tick(): void {
    for (const connection of this.#connections) {
      // A closing connection has its linger timer; a closed one is about to leave the set.
      if (connection.state === 'closing' || connection.state === 'closed') continue;
      connection.silentTicks += 1;
      if (connection.socket.connecting) {
        if (connection.silentTicks > this.#connectTimeoutTicks) {
          // Quietly, as a refused connect is: the peer is down or cut off, the dial failed.
          this.#stats.connectTimeouts++;
          connection.closeReason = `connect timed out after ${this.#connectTimeoutMs} ms`;
          connection.socket.destroy();
        }
        continue;
      }
      if (connection.silentTicks > this.#readTimeoutTicks) {
        this.#stats.readTimeouts++;
        this.#abort(connection, `nothing received for ${this.#readTimeoutMs} ms`);
        continue;
      }
      if (
        connection.established &&
        ++connection.quietTicks > this.#clientIdleTimeoutTicks &&
        !this.#monitorSession(connection)
      ) {
        // Keepalives keep a connection alive, not a session: a client that asks nothing leaves.
        this.#stats.idleTimeouts++;
        connection.closeReason = `idle client session: no message for ${this.#clientIdleTimeoutMs} ms`;
        this.#logger.info(
          { entity: this.name, peer: connection.peer?.name, addr: connection.remoteAddr },
          'closing idle client session',
        );
        connection.socket.destroy();
        continue;
      }
      if (
        connection.invalidUnlogged > 0 &&
        performance.now() - connection.invalidLoggedAt >= this.#invalidLogIntervalMs
      )
        this.#logInvalid(connection);
      // Keepalives only once the handshake is done: a record of one empty frame, like every later write.
      if (connection.state !== 'open' || ++connection.idleTicks < this.#keepaliveTicks) continue;
      // A socket the kernel cannot drain already has bytes on their way; a keepalive adds nothing.
      if (connection.socket.writableNeedDrain || !connection.sealer) continue;
      this.#stats.keepalives++;
      this.#write(connection, connection.sealer.sealOne(keepalivePayload));
    }
  }

  #scheduleReconnect(peer: Peer): void {
    if (this.#closed || peer.reconnectTimer || peer.dialing || peer.active || peer.queue.length === 0) return;
    const delayMs = peer.backoffMs;
    peer.backoffMs = Math.min(this.#reconnectMs.max, peer.backoffMs * 2);
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = undefined;
      if (!this.#closed && !peer.active && !peer.dialing && peer.queue.length > 0) this.#dial(peer);
    }, delayMs);
    peer.reconnectTimer.unref();
  }

  #onData(connection: Connection, chunk: Buffer): void {
    this.#stats.bytesReceived += chunk.byteLength;
    connection.silentTicks = 0;
    if (connection.state === 'closed' || (connection.state === 'closing' && !connection.established)) return;
    const monitor = this.#monitorSession(connection);
    const decoder = connection.decoder;
    const limit = monitor ? this.frameBytesMax : this.clientFrameBytesMax;
    if (decoder.frameBytesMax !== limit) decoder.frameBytesMax = limit;
    const { frames, error } = decoder.push(chunk);
    // The clients' buffered total: what this connection holds of unfinished frames now.
    const buffered = monitor ? 0 : decoder.bufferedBytes;
    this.#clientBufferedBytes += buffered - connection.clientBufferedBytes;
    connection.clientBufferedBytes = buffered;
    // Before the handshake is over the decoder's frames are handshake frames; after it, records.
    for (const frame of frames) {
      // A handler may have closed the messenger, or this connection been aborted, mid-batch.
      if (connection.socket.destroyed) return;
      if (!connection.established) {
        // After a refusal (ours or the peer's) the rest is ignored.
        if (connection.state !== 'handshaking') return;
        this.#onHandshake(connection, frame);
        continue;
      }
      if (!this.#onRecord(connection, frame, limit)) return;
    }
    if (error !== undefined && !connection.socket.destroyed) {
      this.#stats.framingErrors++;
      this.#abort(connection, `framing error: ${error}`);
    }
    if (this.#clientBufferedBytes > this.clientBytesMax) this.#enforceClientBudget();
  }

  /**
   * One record read after the handshake: open it, cut it into its frames, deliver their messages
   * in order. False once the connection is closed (nothing more of it is read).
   */
  #onRecord(connection: Connection, record: Uint8Array, recordBytesMax: number): boolean {
    const opener = connection.opener as RecordOpener;
    const plaintext = opener.open(record);
    if (plaintext === null) {
      // Nothing unauthenticated is read after the handshake: one line, and the session ends.
      this.#stats.frameAuthFailures++;
      this.#abort(
        connection,
        `record ${opener.seq} failed authentication (altered, replayed, reordered or injected)`,
      );
      return false;
    }
    // Whole frames only, none larger than a record of its own could be: the peer sealed this
    // record itself, so a record that breaks the rule is its bug, and no frame of it is read.
    const malformed = checkFrames(plaintext, Math.max(0, recordBytesMax - recordOverheadBytes));
    if (malformed !== null) {
      this.#stats.framingErrors++;
      this.#abort(connection, `framing error in record ${opener.seq - 1}: ${malformed}`);
      return false;
    }
    const from = (connection.peer as Peer).name;
    const session = connection.session as PeerSession;
    for (const payload of framesOf(plaintext)) {
      // A handler may have closed the messenger, or this connection been aborted, mid-record.
      if (connection.socket.destroyed) return false;
      // A keepalive has done its work by arriving (silentTicks, in #onData); it is not a message.
      if (isKeepalive(payload)) continue;
      const decoded = decodeMessage(payload);
      if ('error' in decoded) {
        if (decoded.kind === 'invalid') {
          // A well-formed frame with a bad message: drop it, keep the connection (DESIGN.md §3).
          this.#stats.invalid++;
          connection.invalidUnlogged++;
          connection.invalidReason = decoded.error;
          if (performance.now() - connection.invalidLoggedAt >= this.#invalidLogIntervalMs)
            this.#logInvalid(connection);
          continue;
        }
        this.#stats.undecodable++;
        this.#abort(connection, decoded.error);
        return false;
      }
      connection.quietTicks = 0;
      const handlers = this.#handlers;
      if (!handlers) {
        this.#holdEarly(from, decoded.message, session);
        continue;
      }
      this.#stats.received++;
      // Handlers are not guarded: an exception here is a bug in the monitor, and a crash is the
      // honest answer to invalid state (TigerBeetle); only bad *input* is survivable.
      handlers.onMessage(from, decoded.message, session);
    }
    return true;
  }

  /**
   * A session with a monitor: one we dialled (an address we were given), or one whose peer is a
   * monitor we were given an address for (a monmap member). Every other connection — clients,
   * unknown names, connections still handshaking — gets the clients' budgets.
   */
  #monitorSession(connection: Connection): boolean {
    if (connection.direction === 'outgoing') return true;
    return (
      connection.established &&
      connection.session?.entity === monEntity &&
      connection.peer?.addr !== undefined
    );
  }

  /**
   * The clients' buffered bytes are over clientBytesMax: close the connections holding the most
   * until they fit. Whoever holds big unfinished frames pays, not the small command that happened
   * to arrive last.
   */
  #enforceClientBudget(): void {
    while (this.#clientBufferedBytes > this.clientBytesMax) {
      let largest: Connection | undefined;
      for (const candidate of this.#connections) {
        if (candidate.socket.destroyed || candidate.clientBufferedBytes === 0) continue;
        if (!largest || candidate.clientBufferedBytes > largest.clientBufferedBytes) largest = candidate;
      }
      if (!largest) return;
      const total = this.#clientBufferedBytes;
      this.#stats.budgetCloses++;
      // Counted out at once (the socket's 'close' comes later), so the loop makes progress.
      this.#clientBufferedBytes -= largest.clientBufferedBytes;
      largest.clientBufferedBytes = 0;
      this.#abort(
        largest,
        `receive budget exhausted: ${total} bytes of unfinished frames from clients, at most ${this.clientBytesMax}`,
      );
    }
  }

  /** One line for the invalid messages not yet logged on a connection, with their count. */
  #logInvalid(connection: Connection): void {
    if (connection.invalidUnlogged === 0) return;
    this.#logger.warn(
      {
        entity: this.name,
        peer: connection.peer?.name,
        addr: connection.remoteAddr,
        reason: connection.invalidReason,
        count: connection.invalidUnlogged,
      },
      'invalid message dropped',
    );
    connection.invalidUnlogged = 0;
    connection.invalidLoggedAt = performance.now();
  }

  /** One handshake frame read on a connection: take the step its direction calls for. */
  #onHandshake(connection: Connection, frame: Uint8Array): void {
    const handshake = connection.handshake as Handshake;
    const step =
      connection.direction === 'outgoing'
        ? this.#diallerStep(handshake, frame, {
            who: (connection.peer as Peer).name,
            addr: connection.remoteAddr,
            expected: (connection.peer as Peer).name,
          })
        : this.#acceptorStep(handshake, frame);
    for (const bytes of step.send) this.#write(connection, bytes);
    if (step.next === 'wait') return;
    if (step.next === 'established') {
      this.#established(connection, handshake);
      return;
    }
    if (step.authFailure) this.#stats.authFailures++;
    if (step.kind === 'failed') {
      this.#abort(connection, step.reason);
      return;
    }
    this.#stats.refused++;
    if (connection.direction === 'outgoing') {
      this.#abort(connection, step.reason);
      return;
    }
    // Refused by us: the refusal frame (if any) goes out before our FIN.
    this.#logger.warn(
      { entity: this.name, addr: connection.remoteAddr, reason: step.reason },
      'refusing connection',
    );
    connection.closeReason = `refused: ${step.reason}`;
    this.#retire(connection);
  }

  /** The dialler's first frame, with a fresh challenge; the handshake then waits for the reply. */
  #startDial(handshake: Handshake): Uint8Array {
    const challenge = newChallenge();
    const hello: Hello = {
      banner: protocolBanner,
      protocolVersion,
      name: this.name,
      entity: this.entity,
      nonce: this.#nonce,
      ...(this.rank === undefined ? {} : { rank: this.rank }),
      challenge,
      modes: this.#offeredModes,
    };
    const bytes = encodeValue(hello);
    handshake.ownHello = Uint8Array.prototype.slice.call(bytes);
    handshake.ownChallenge = challenge;
    handshake.entity = this.entity;
    handshake.expect = 'hello';
    return encodeFrame(bytes);
  }

  /**
   * The dialling side (Ceph's ProtocolV2 client side): read the reply and prove our key, then check
   * the acceptor's proof before anything else is sent, then exchange the sealed session records.
   * `who` names the peer in reasons; `expected` is the name we dialled (none for connect()).
   */
  #diallerStep(
    handshake: Handshake,
    frame: Uint8Array,
    context: { who: string; addr: string; expected: EntityName | undefined },
  ): HandshakeStep {
    const { who } = context;
    const fail = (reason: string, authFailure = false): HandshakeStep => ({
      next: 'close',
      send: [],
      reason,
      kind: 'refused',
      authFailure,
    });
    if (handshake.expect === 'session') {
      const opened = openSessionRecord(handshake.opener as RecordOpener, frame);
      if (opened === null) {
        return {
          next: 'close',
          send: [],
          reason: `session frame from ${who} failed authentication`,
          kind: 'failed',
        };
      }
      if ('error' in opened) return fail(`bad session frame from ${who}: ${opened.error}`);
      const peerFsid = opened.value.fsid;
      const info: SessionInfo = { fsid: this.fsid };
      // Sent even when the fsids differ, so the acceptor logs the mismatch too.
      const send = [(handshake.sealer as RecordSealer).sealOne(encodeValue(info))];
      const peer = { fsid: peerFsid, name: handshake.peerName as EntityName };
      if (!fsidsAgree(this, peer)) {
        return {
          next: 'close',
          send,
          reason: `fsid mismatch: ${who} is of cluster ${peerFsid}`,
          kind: 'refused',
        };
      }
      return { next: 'established', send };
    }
    const decoded = decodeValue(frame);
    if ('error' in decoded) {
      return {
        next: 'close',
        send: [],
        reason: `undecodable handshake from ${who}: ${decoded.error}`,
        kind: 'failed',
      };
    }
    const value = decoded.value;
    if (isRefusal(value)) return fail(`refused by ${who}: ${value.refused.slice(0, refusalReasonBytesMax)}`);
    if (handshake.expect === 'hello') {
      const fields = value as Partial<HelloReply> | null;
      if (
        sameBytes(fields?.challenge, handshake.ownChallenge as Uint8Array) ||
        fields?.nonce === this.#nonce
      ) {
        return fail(`nothing listens at ${context.addr} (the connection reached itself)`);
      }
      const reason = checkHelloReply(value);
      if (reason !== null) return fail(`bad handshake reply from ${who}: ${reason}`);
      const reply = value as HelloReply;
      if (!reply.name.startsWith('mon.')) return fail(`${who} answered as ${reply.name}, not a monitor`);
      if (context.expected !== undefined && reply.name !== context.expected) {
        return fail(`dialled ${context.expected} at ${context.addr} but reached ${reply.name}`);
      }
      if (!this.#offeredModes.includes(reply.mode)) {
        return fail(`${who} chose session mode ${reply.mode}, which was not offered`);
      }
      handshake.peerHello = Uint8Array.prototype.slice.call(frame);
      handshake.peerChallenge = reply.challenge;
      handshake.peerName = reply.name;
      handshake.peerNonce = reply.nonce;
      handshake.mode = reply.mode;
      handshake.secrets = deriveSession(this.#secret, {
        diallerHello: handshake.ownHello as Uint8Array,
        acceptorHello: handshake.peerHello,
        diallerChallenge: handshake.ownChallenge as Uint8Array,
        acceptorChallenge: reply.challenge,
      });
      handshake.expect = 'proof';
      const proof: Proof = { proof: handshake.secrets.diallerProof };
      return { next: 'wait', send: [encodeFrame(encodeValue(proof))] };
    }
    // The acceptor's proof: it knows our secret too, so it is a monitor of this cluster (or the
    // keeper of our key); nothing more is sent to a peer that cannot show it.
    const secrets = handshake.secrets as SessionSecrets;
    const received =
      typeof value === 'object' && value !== null ? (value as Partial<Proof>).proof : undefined;
    if (!proofMatches(secrets.acceptorProof, received)) {
      return fail(`${who} did not prove the key of ${this.entity}: not a monitor of this cluster`, true);
    }
    const channels = sessionChannels(secrets, handshake.mode as SessionMode, 'dialler');
    handshake.sealer = channels.sealer;
    handshake.opener = channels.opener;
    handshake.expect = 'session';
    return { next: 'wait', send: [] };
  }

  /**
   * The accepting side (Ceph's ProtocolV2 server side, with cephx's monitor role): check the hello
   * and answer with a fresh challenge; verify the dialler's proof against the key of the entity it
   * claims (a missing entity and a wrong key look the same to it); prove the key back and tell the
   * fsid, sealed; then read the dialler's sealed session record.
   */
  #acceptorStep(handshake: Handshake, frame: Uint8Array): HandshakeStep {
    const refuse = (reason: string, authFailure = false): HandshakeStep => ({
      next: 'close',
      send: [refusalFrame(reason)],
      reason,
      kind: 'refused',
      authFailure,
    });
    if (handshake.expect === 'session') {
      const opened = openSessionRecord(handshake.opener as RecordOpener, frame);
      if (opened === null) {
        return { next: 'close', send: [], reason: 'session frame failed authentication', kind: 'failed' };
      }
      if ('error' in opened)
        return { next: 'close', send: [], reason: `bad session frame: ${opened.error}`, kind: 'failed' };
      const peerFsid = opened.value.fsid;
      if (!fsidsAgree(this, { fsid: peerFsid, name: handshake.peerName as EntityName })) {
        // The stream is sealed now: no plain refusal frame; the dialler saw the mismatch itself.
        // The reason names the fsid the peer sent, never ours.
        return { next: 'close', send: [], reason: `fsid mismatch: peer sent ${peerFsid}`, kind: 'refused' };
      }
      return { next: 'established', send: [] };
    }
    const decoded = decodeValue(frame);
    if ('error' in decoded) {
      return { next: 'close', send: [], reason: `undecodable handshake: ${decoded.error}`, kind: 'failed' };
    }
    const value = decoded.value;
    if (handshake.expect === 'hello') {
      let reason = checkHello(value);
      const hello = value as Hello;
      if (reason === null && hello.name === this.name) reason = `peer claims my own name ${this.name}`;
      if (reason === null && this.name.startsWith('client.')) reason = 'a client accepts no connections';
      if (reason === null && !mayCarryName(hello.entity, hello.name)) {
        reason = `EACCES: ${hello.entity} may not take the name ${hello.name}`;
      }
      const mode =
        reason === null ? hello.modes.find((candidate) => this.#allowedModes.has(candidate)) : undefined;
      if (reason === null && mode === undefined) {
        reason = `no common session mode: offered ${hello.modes.join(', ')}, allowed ${[...this.#allowedModes].join(', ')}`;
      }
      if (reason !== null) return refuse(reason);
      const challenge = newChallenge();
      const reply: HelloReply = {
        banner: protocolBanner,
        protocolVersion,
        name: this.name,
        ...(this.rank === undefined ? {} : { rank: this.rank }),
        nonce: this.#nonce,
        challenge,
        mode: mode as SessionMode,
      };
      const bytes = encodeValue(reply);
      handshake.ownHello = Uint8Array.prototype.slice.call(bytes);
      handshake.ownChallenge = challenge;
      handshake.peerHello = Uint8Array.prototype.slice.call(frame);
      handshake.peerChallenge = hello.challenge;
      handshake.peerName = hello.name;
      handshake.peerNonce = hello.nonce;
      handshake.entity = hello.entity;
      handshake.mode = mode;
      handshake.expect = 'proof';
      return { next: 'wait', send: [encodeFrame(bytes)] };
    }
    const entity = handshake.entity as string;
    // An unknown entity is checked against a random key: the same work and the same answer as a
    // wrong key, so a dialler cannot tell which entities exist.
    const secret = this.#keyFor(entity) ?? randomBytes(secretBytesMin);
    const received =
      typeof value === 'object' && value !== null ? (value as Partial<Proof>).proof : undefined;
    const secrets = authenticate(
      secret,
      {
        diallerHello: handshake.peerHello as Uint8Array,
        acceptorHello: handshake.ownHello as Uint8Array,
        diallerChallenge: handshake.peerChallenge as Uint8Array,
        acceptorChallenge: handshake.ownChallenge as Uint8Array,
      },
      received,
    );
    if (secrets === null) return refuse(authFailedReason(entity), true);
    const channels = sessionChannels(secrets, handshake.mode as SessionMode, 'acceptor');
    handshake.secrets = secrets;
    handshake.sealer = channels.sealer;
    handshake.opener = channels.opener;
    handshake.expect = 'session';
    const proof: Proof = { proof: secrets.acceptorProof };
    const info: SessionInfo = { fsid: this.fsid };
    return {
      next: 'wait',
      send: [encodeFrame(encodeValue(proof)), channels.sealer.sealOne(encodeValue(info))],
    };
  }

  /**
   * The handshake is complete: the peer proved a key that may carry its name. Only now may its
   * session take the place of another for the same name (a restarted peer, a simultaneous connect).
   */
  #established(connection: Connection, handshake: Handshake): void {
    const name = handshake.peerName as EntityName;
    const entity = handshake.entity as string;
    // A name in use stays with the entity that holds it: a client key may carry any `client.*`
    // name, and a session of another entity must not take over the replies to this one.
    const holder = (connection.peer ?? this.#peers.get(name))?.active;
    if (holder?.state === 'open' && holder.session?.entity !== entity) {
      this.#stats.refused++;
      this.#abort(connection, `${name} is in use by a session of another entity`);
      return;
    }
    clearTimeout(connection.timer);
    connection.timer = undefined;
    connection.established = true;
    connection.state = 'open';
    connection.handshake = undefined;
    connection.remoteNonce = handshake.peerNonce;
    connection.session = { entity };
    connection.sealer = handshake.sealer;
    connection.opener = handshake.opener;
    this.#stats.handshakes++;
    let peer = connection.peer;
    if (!peer) {
      peer = this.#peers.get(name) ?? this.#newPeer(name);
      connection.peer = peer;
    }
    if (peer.dialing === connection) {
      peer.dialing = undefined;
      peer.backoffMs = this.#reconnectMs.initial;
    }
    peer.connections.add(connection);
    this.#logger.info(
      {
        entity: this.name,
        peer: peer.name,
        auth: connection.session.entity,
        mode: handshake.mode,
        direction: connection.direction,
        addr: connection.remoteAddr,
      },
      'connected',
    );

    const current = peer.active;
    if (current?.state !== 'open') {
      peer.active = connection;
    } else if (current.remoteNonce !== connection.remoteNonce) {
      // The peer restarted: the old session is dead even if its socket has not noticed yet.
      peer.active = connection;
      this.#stats.replaced++;
      current.closeReason = `${peer.name} restarted`;
      current.retired = true;
      current.socket.destroy();
      this.#reset(peer, 'peer restarted');
    } else {
      const winner = this.#preferred(peer, current, connection);
      const loser = winner === current ? connection : current;
      peer.active = winner;
      this.#stats.replaced++;
      loser.closeReason = 'replaced by another connection to the same peer';
      this.#logger.debug(
        { entity: this.name, peer: peer.name, kept: winner.direction, closed: loser.direction },
        'one connection per peer: closing the other',
      );
      this.#retire(loser);
    }
    if (peer.active === connection) {
      peer.resetPending = false;
      this.#scheduleFlush(peer);
    }
  }

  /**
   * One connection per peer pair. When both monitors dialled each other, both keep the connection
   * dialled by the lexicographically smaller name, so the two sides agree without talking. Two
   * connections in the same direction: the newer one (the older is a leftover of a reconnect).
   */
  #preferred(peer: Peer, current: Connection, candidate: Connection): Connection {
    if (current.direction === candidate.direction) return candidate;
    const keepOutgoing = this.name < peer.name;
    return (candidate.direction === 'outgoing') === keepOutgoing ? candidate : current;
  }

  /**
   * Close a connection on purpose without losing what was written to it: end() sends our FIN after
   * the buffered bytes, and the peer, which may still be writing to us, is read to its own FIN (its
   * messages are still delivered). A peer that never closes is destroyed after lingerMs.
   */
  #retire(connection: Connection): void {
    if (connection.state === 'closed' || connection.state === 'closing') return;
    connection.retired = true;
    connection.state = 'closing';
    clearTimeout(connection.timer);
    connection.timer = setTimeout(() => connection.socket.destroy(), this.#lingerMs);
    connection.timer.unref();
    connection.socket.end();
  }

  /** Close a connection at once, logging why: framing errors, bad handshakes, timeouts. */
  #abort(connection: Connection, reason: string): void {
    if (connection.socket.destroyed) return;
    connection.closeReason = reason;
    this.#logger.warn(
      { entity: this.name, peer: connection.peer?.name, addr: connection.remoteAddr, reason },
      'closing connection',
    );
    connection.socket.destroy();
  }

  #onClose(connection: Connection): void {
    if (connection.state === 'closed') return;
    const wasEstablished = connection.established;
    connection.state = 'closed';
    clearTimeout(connection.timer);
    connection.timer = undefined;
    this.#connections.delete(connection);
    this.#clientBufferedBytes -= connection.clientBufferedBytes;
    connection.clientBufferedBytes = 0;
    if (connection.sourceAddress !== undefined) {
      const open = (this.#connectionsByAddress.get(connection.sourceAddress) ?? 1) - 1;
      if (open > 0) this.#connectionsByAddress.set(connection.sourceAddress, open);
      else this.#connectionsByAddress.delete(connection.sourceAddress);
    }
    this.#logInvalid(connection);
    if (this.#connections.size === 0) this.#stopTicking();
    const peer = connection.peer;
    this.#logger.debug(
      {
        entity: this.name,
        peer: peer?.name,
        direction: connection.direction,
        addr: connection.remoteAddr,
        reason: connection.closeReason,
      },
      'connection closed',
    );
    if (!peer || this.#closed) return;

    if (peer.dialing === connection) {
      peer.dialing = undefined;
      this.#logger.debug(
        { entity: this.name, peer: peer.name, addr: connection.remoteAddr, reason: connection.closeReason },
        'connect failed',
      );
      if (peer.resetPending) this.#reset(peer, connection.closeReason ?? 'connection lost');
      else if (!wasEstablished && peer.queue.length > 0)
        this.#handlers?.onUnreachable?.(peer.name, connection.closeReason ?? 'connection failed');
    }
    peer.connections.delete(connection);

    if (wasEstablished && peer.active === connection) {
      peer.active = undefined;
      const other = [...peer.connections].find((candidate) => candidate.state === 'open');
      if (other) {
        peer.active = other;
        this.#scheduleFlush(peer);
      } else if (peer.dialing) {
        peer.resetPending = true;
      } else if (!connection.retired) {
        this.#reset(peer, connection.closeReason ?? 'connection closed by peer');
      }
    }

    if (!peer.active && !peer.dialing && peer.connections.size === 0) {
      if (peer.addr === undefined) {
        // Reachable only over a connection it opened, and there is none: forget it.
        this.#stats.dropped += peer.queue.clear();
        this.#peers.delete(peer.name);
      } else {
        this.#scheduleReconnect(peer);
      }
    }
  }

  /** Ceph's ms_handle_reset: the session with the peer is gone; what was in flight may be lost. */
  #reset(peer: Peer, reason: string): void {
    peer.resetPending = false;
    this.#stats.resets++;
    this.#logger.info({ entity: this.name, peer: peer.name, reason }, 'connection reset');
    this.#handlers?.onReset?.(peer.name);
  }

  // --- writing --------------------------------------------------------------------------------

  #enqueue(peer: Peer, frame: Uint8Array): Queued {
    const queue = peer.queue;
    const position = queue.push(frame);
    // Drop the oldest: a monitor's newest message (latest lease, latest election epoch) is the
    // one worth delivering, and the protocols retry what matters.
    while (queue.length > 1 && (queue.length > this.queueMessagesMax || queue.bytes > this.queueBytesMax)) {
      queue.shift();
      this.#stats.dropped++;
    }
    return { to: peer.name, queue: queue.id, position };
  }

  /**
   * Coalesce everything sent in this turn of the event loop into as few socket writes as
   * possible: the flush runs after the I/O callbacks of the turn (setImmediate), so the answers
   * to every message read in one poll leave together. A socket write to a local peer costs a
   * wake-up of that process; under load this is a large share of a monitor's CPU. Each write is
   * one sealed record, so coalescing saves a seal (a cipher or HMAC object) per frame as well.
   */
  #scheduleFlush(peer: Peer): void {
    if (peer.flushScheduled) return;
    peer.flushScheduled = true;
    setImmediate(() => {
      peer.flushScheduled = false;
      this.#flush(peer);
    });
  }

  #flush(peer: Peer): void {
    const connection = peer.active;
    if (connection?.state !== 'open' || this.#closed) return;
    const socket = connection.socket;
    const queue = peer.queue;
    const sealer = connection.sealer as RecordSealer;
    // Stop at the kernel's back-pressure: what does not fit waits in the bounded peer queue, and
    // 'drain' resumes the flush.
    while (queue.length > 0 && !socket.writableNeedDrain && !socket.writableEnded && !socket.destroyed) {
      const batch: Uint8Array[] = [];
      let framesBytes = 0;
      for (let next = queue.peek(); next !== undefined; next = queue.peek()) {
        const frameBytes = frameHeaderBytes + next.byteLength;
        if (batch.length > 0 && framesBytes + frameBytes > this.#recordFramesBytesMax) break;
        queue.shift();
        batch.push(next);
        framesBytes += frameBytes;
      }
      this.#stats.sent += batch.length;
      // One write, one record: the batch's frames sealed together under the next sequence number.
      this.#write(connection, sealer.seal(batch));
    }
  }

  #write(connection: Connection, bytes: Uint8Array): void {
    if (connection.socket.destroyed || connection.socket.writableEnded) return;
    connection.idleTicks = 0;
    this.#stats.bytesSent += bytes.byteLength;
    connection.socket.write(bytes);
  }

  /** Ceph's loopback connection: a message to oneself goes through the codec and arrives async. */
  #sendToSelf(payload: Uint8Array): void {
    const copy = Uint8Array.prototype.slice.call(payload);
    this.#stats.sent++;
    setImmediate(() => {
      if (this.#closed) return;
      const decoded = decodeMessage(copy);
      if ('error' in decoded) {
        this.#stats.invalid++;
        this.#logger.warn(
          { entity: this.name, peer: this.name, reason: decoded.error },
          'invalid message dropped',
        );
        return;
      }
      if (!this.#handlers) {
        this.#holdEarly(this.name, decoded.message, this.#ownSession);
        return;
      }
      this.#stats.received++;
      this.#handlers.onMessage(this.name, decoded.message, this.#ownSession);
    });
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer`);
  return value;
}
