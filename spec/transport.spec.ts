// The TCP transport end to end on 127.0.0.1 (port 0): codec, framing, the authenticated handshake
// and sealed records (issue 13), the Messenger's routing, queueing, withdrawing and reconnects, its
// bounds on hung dials and silent peers (keepalives), and its survival of bad bytes. No sleeps: every wait is on an event (a delivered
// message, a log line, a closed socket) with a bounded timeout.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MonClient, type MonClientError, requestDeadlineMaxMs } from '../actors/mon-client.ts';
import { encodeCryptoKey } from '../machines/crypto-key.ts';
import { decodeMessage, decodeValue, encodeMessage, encodeValue, scanValue } from '../transport/codec.ts';
import { encodeFrame, FrameDecoder, isKeepalive, keepaliveFrame, splitFrames } from '../transport/frame.ts';
import { type EntityName, limits, type Message, MessageSchema, validate } from '../transport/messages.ts';
import {
  anyFsid,
  connectedToItself,
  type HelloReply,
  helloBytesMax,
  Messenger,
  type MessengerAuth,
  type MessengerOptions,
  monEntity,
  protocolVersion,
} from '../transport/messenger.ts';
import {
  challengeBytes,
  deriveSession,
  proofMatches,
  type RecordOpener,
  type RecordSealer,
  recordOverheadBytes,
  type SessionMode,
  type SessionSecrets,
  sealTagBytes,
  sessionChannels,
} from '../transport/session-crypto.ts';
import { fsid, otherFsid, sampleMessages } from './fixtures/messages.ts';
import { CaptureLogger, Inbox, Signal, within } from './fixtures/wait.ts';
import { freePorts, pollUntil } from './support/process.ts';

const test = suite('transport');

// --- helpers ----------------------------------------------------------------------------------

// The spec's keys (issue 13): every monitor proves `mon.`, every client `client.admin`, unless a
// test says otherwise. Fresh per run, as a cluster's keyring is.
const monSecret = new Uint8Array(randomBytes(16));
const adminSecret = new Uint8Array(randomBytes(16));
const keys = new Map<string, Uint8Array>([
  [monEntity, monSecret],
  ['client.admin', adminSecret],
  ['client.other', new Uint8Array(randomBytes(16))],
]);
/** client.admin's key as a keyring holds it, for MonClient. */
const adminKey = encodeCryptoKey(adminSecret, Date.now());

/** A monitor proves `mon.` and knows every key of the spec; a client proves client.admin. */
function authFor(name: string): MessengerAuth {
  return name.startsWith('mon.')
    ? { entity: monEntity, secret: monSecret, keyFor: (entity) => keys.get(entity) }
    : { entity: 'client.admin', secret: adminSecret };
}

interface Node {
  messenger: Messenger;
  inbox: Inbox;
  logger: CaptureLogger;
  addr: string;
}

let open: Messenger[] = [];

async function startNode(
  name: EntityName,
  options: Partial<MessengerOptions> = {},
  listen = true,
): Promise<Node> {
  const logger = new CaptureLogger();
  const inbox = new Inbox();
  const messenger = new Messenger({
    name,
    fsid,
    logger,
    reconnectMs: { initial: 10, max: 100 },
    auth: authFor(name),
    ...options,
  });
  messenger.setHandlers(inbox.handlers);
  open.push(messenger);
  const addr = listen ? await messenger.listen() : '';
  return { messenger, inbox, logger, addr };
}

function command(tid: number, word = 'status'): Message {
  return { type: 'mon.command', tid, cmd: [word] };
}

function tids(messages: Message[]): number[] {
  return messages.map((message) => ('tid' in message ? message.tid : -1));
}

/** A monitor stand-in: every mon.command gets the ack `answer` gives (r, rs, data). */
function answerCommands(
  node: Node,
  answer: (command: Extract<Message, { type: 'mon.command' }>) => {
    r: number;
    rs: string;
    data?: Uint8Array;
  },
): void {
  node.inbox.onMessage = (from, message) => {
    if (message.type !== 'mon.command') return;
    const { r, rs, data = new Uint8Array() } = answer(message);
    node.messenger.send(from, { type: 'mon.command_ack', tid: message.tid, cmd: message.cmd, r, rs, data });
  };
}

/** Listen on a free loopback port; resolves to the server's `host:port`. */
function listenLoopback(server: net.Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as net.AddressInfo).port}`)),
  );
}

function decoded(bytes: Uint8Array): unknown {
  const result = decodeValue(bytes);
  return 'error' in result ? result : result.value;
}

interface RawHandshake {
  /** The session name claimed. */
  name: EntityName;
  /** The entity whose key is proven (default: `mon.` for a `mon.*` name, else client.admin). */
  entity?: string;
  /** The secret used (default: the entity's, from the spec's keys; a random one if it has none). */
  secret?: Uint8Array;
  /** Hello fields to override or add (a bad banner, another nonce, the modes offered…). */
  hello?: Record<string, unknown>;
  /** The fsid told in the sealed session frame (default: the fixture's). */
  fsid?: string;
}

/**
 * A hand-driven TCP peer that speaks raw frames, for feeding a Messenger bad bytes: it runs the
 * handshake itself (transport/session-crypto.ts), as a dialler (handshake()) or an acceptor (the
 * `accept` option), and then seals what it sends (sendValue, sendPayloads: one record per call)
 * and opens the records it reads, unless told to write raw bytes to its socket. Keepalives are
 * counted, not kept among the frames; records that do not open (or hold no whole frames) are
 * counted too.
 */
class RawPeer {
  /** Values read after the handshake (before one, or without one: every value read). */
  readonly frames: unknown[] = [];
  /** Values of the handshake frames read: the reply (or refusal), the proof, the session frame. */
  readonly handshakeFrames: unknown[] = [];
  /** Every byte read, for asserting what was never said. */
  readonly received: Buffer[] = [];
  readonly signal = new Signal();
  readonly #decoder = new FrameDecoder();
  closed = false;
  keepalives = 0;
  unopened = 0;
  sealer: RecordSealer | undefined;
  opener: RecordOpener | undefined;
  /** Where the handshake is: undefined when none was started; 'done' once over (or refused). */
  step: 'hello' | 'reply' | 'proof' | 'session' | 'done' | undefined;
  #role: 'dialler' | 'acceptor' | undefined;
  #options: RawHandshake | undefined;
  #secret: Uint8Array = new Uint8Array(16);
  #ownHello: Uint8Array = new Uint8Array();
  #ownChallenge: Uint8Array = new Uint8Array();
  #mode: SessionMode = 'crc';
  #secrets: SessionSecrets | undefined;

  constructor(
    readonly socket: net.Socket,
    options: { accept?: RawHandshake } = {},
  ) {
    if (options.accept) this.#begin('acceptor', options.accept);
    socket.on('data', (chunk: Buffer) => {
      this.received.push(chunk);
      for (const frame of this.#decoder.push(chunk).frames) this.#onFrame(frame);
      this.signal.notify();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.signal.notify();
    });
  }

  static connect(addr: string, localAddress?: string): Promise<RawPeer> {
    const [host, port] = addr.split(':') as [string, string];
    const socket = net.connect({ host, port: Number(port), ...(localAddress ? { localAddress } : {}) });
    return within(
      new Promise((resolve) => socket.once('connect', () => resolve(new RawPeer(socket)))),
      `raw connect to ${addr}`,
    );
  }

  /** Send a value: in a record of its own once the session is sealed, a plain frame before. */
  sendValue(value: unknown): void {
    const payload = encodeValue(value);
    this.socket.write(this.sealer ? this.sealer.sealOne(payload) : encodeFrame(payload));
  }

  /** Seal payloads (any bytes, not only messages) as the frames of one record, in one write. */
  sendPayloads(payloads: Uint8Array[]): void {
    this.socket.write((this.sealer as RecordSealer).seal(payloads));
  }

  /** The keys the handshake derived (for sealing records by hand). */
  get secrets(): SessionSecrets | undefined {
    return this.#secrets;
  }

  sendKeepalive(): void {
    this.sendPayloads([new Uint8Array(0)]);
  }

  frameCount(count: number): Promise<void> {
    return this.signal.until(() => this.frames.length >= count, `${count} frames on the raw socket`);
  }

  whenClosed(): Promise<void> {
    return this.signal.until(() => this.closed, 'the raw socket to close');
  }

  /** The handshake is over (established, refused, or the connection closed). */
  whenHandshaken(): Promise<void> {
    return this.signal.until(() => this.step === 'done' || this.closed, 'the raw handshake');
  }

  /**
   * Dial: run the handshake as `name` (a client.admin or `mon.` key by default); resolves with the
   * monitor's reply, or its refusal.
   */
  async handshake(name: EntityName, options: Omit<RawHandshake, 'name'> = {}): Promise<unknown> {
    this.#begin('dialler', { name, ...options });
    const challenge = new Uint8Array(randomBytes(challengeBytes));
    const hello = {
      banner: 'paxmon',
      protocolVersion,
      name,
      entity: this.#options?.entity,
      nonce: 42,
      challenge,
      modes: ['crc', 'secure'],
      ...options.hello,
    };
    this.#ownHello = encodeValue(hello).slice();
    this.#ownChallenge = hello.challenge instanceof Uint8Array ? hello.challenge : challenge;
    this.socket.write(encodeFrame(this.#ownHello));
    await this.whenHandshaken();
    return this.handshakeFrames[0];
  }

  #begin(role: 'dialler' | 'acceptor', options: RawHandshake): void {
    const entity = options.entity ?? (options.name.startsWith('mon.') ? monEntity : 'client.admin');
    this.#role = role;
    this.#options = { ...options, entity };
    this.#secret = options.secret ?? keys.get(entity) ?? new Uint8Array(randomBytes(16));
    this.step = role === 'dialler' ? 'reply' : 'hello';
  }

  #onFrame(frame: Uint8Array): void {
    if (this.opener) {
      const plaintext = this.opener.open(frame);
      const split = plaintext === null ? undefined : splitFrames(plaintext, 0xffff_ffff);
      if (split === undefined || 'error' in split) {
        this.unopened += 1;
        return;
      }
      for (const payload of split.frames) this.#onSealedFrame(payload);
      return;
    }
    const value = decoded(frame);
    if (this.step === undefined || this.step === 'done') {
      if (isKeepalive(frame)) this.keepalives += 1;
      else this.frames.push(value);
      return;
    }
    this.handshakeFrames.push(value);
    if (typeof value === 'object' && value !== null && 'refused' in value) {
      this.step = 'done';
      return;
    }
    const fields = (value ?? {}) as Record<string, unknown>;
    if (this.#role === 'dialler') this.#diallerStep(frame, fields);
    else this.#acceptorStep(frame, fields);
  }

  /** A frame out of an opened record. */
  #onSealedFrame(payload: Uint8Array): void {
    if (payload.byteLength === 0) {
      this.keepalives += 1;
      return;
    }
    if (this.step !== 'session') {
      this.frames.push(decoded(payload));
      return;
    }
    this.handshakeFrames.push(decoded(payload));
    // The peer's session frame (its fsid): the dialler answers with its own.
    if (this.#role === 'dialler') this.sendValue({ fsid: this.#options?.fsid ?? fsid });
    this.step = 'done';
  }

  #diallerStep(frame: Uint8Array, fields: Record<string, unknown>): void {
    if (this.step === 'reply') {
      this.#mode = fields.mode as SessionMode;
      this.#secrets = deriveSession(this.#secret, {
        diallerHello: this.#ownHello,
        acceptorHello: frame.slice(),
        diallerChallenge: this.#ownChallenge,
        acceptorChallenge: fields.challenge as Uint8Array,
      });
      this.step = 'proof';
      this.sendValue({ proof: this.#secrets.diallerProof });
      return;
    }
    // The acceptor's proof: wrong, and the handshake stops here, as a Messenger's would.
    const secrets = this.#secrets as SessionSecrets;
    if (!proofMatches(secrets.acceptorProof, fields.proof)) {
      this.step = 'done';
      return;
    }
    ({ sealer: this.sealer, opener: this.opener } = sessionChannels(secrets, this.#mode, 'dialler'));
    this.step = 'session';
  }

  #acceptorStep(frame: Uint8Array, fields: Record<string, unknown>): void {
    if (this.step === 'hello') {
      const options = this.#options as RawHandshake;
      this.#mode = ((fields.modes as SessionMode[] | undefined) ?? ['crc'])[0] as SessionMode;
      const challenge = new Uint8Array(randomBytes(challengeBytes));
      const reply = {
        banner: 'paxmon',
        protocolVersion,
        name: options.name,
        nonce: 7,
        challenge,
        mode: this.#mode,
        ...options.hello,
      };
      this.#ownHello = encodeValue(reply).slice();
      this.#ownChallenge = challenge;
      this.#secrets = deriveSession(this.#secret, {
        diallerHello: frame.slice(),
        acceptorHello: this.#ownHello,
        diallerChallenge: fields.challenge as Uint8Array,
        acceptorChallenge: challenge,
      });
      this.step = 'proof';
      this.socket.write(encodeFrame(this.#ownHello));
      return;
    }
    // The dialler's proof: answered with ours and the sealed session frame, right or wrong (a
    // fake monitor does not care).
    const secrets = this.#secrets as SessionSecrets;
    this.sendValue({ proof: secrets.acceptorProof });
    ({ sealer: this.sealer, opener: this.opener } = sessionChannels(secrets, this.#mode, 'acceptor'));
    this.sendValue({ fsid: this.#options?.fsid ?? fsid });
    this.step = 'session';
  }
}

/**
 * A loopback port whose SYNs the kernel drops, as a partitioned peer's are: a child process
 * listens there with a backlog of 1 and never accepts (its thread blocked), and two connections
 * fill that backlog (Linux queues backlog + 1). Released by killing the child, by pid.
 */
async function jammedPort(): Promise<{ addr: string; release: () => Promise<void> }> {
  const script = `const server = require('node:net').createServer();
server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
  // Block at once: an accept between here and the block would make room in the backlog.
  process.stdout.write(server.address().port + '\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
});`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const fillers: net.Socket[] = [];
  const release = async (): Promise<void> => {
    for (const socket of fillers) socket.destroy();
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null)
      process.kill(child.pid, 'SIGKILL');
    await within(exited, 'the jammed listener to exit');
  };
  try {
    const port = await within(
      new Promise<number>((resolve) => child.stdout.once('data', (data) => resolve(Number(String(data))))),
      'the jammed listener',
    );
    for (let i = 0; i < 2; i++) {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.on('error', () => {});
      fillers.push(socket);
      await within(new Promise((resolve) => socket.once('connect', resolve)), `backlog filler ${i}`);
    }
    return { addr: `127.0.0.1:${port}`, release };
  } catch (error) {
    await release();
    throw error;
  }
}

/**
 * A port that accepts connections and holds them, their bytes unread, until open() pipes them
 * through to a real address: a dial that hangs in its handshake until the gate opens.
 */
class Gate {
  readonly held: net.Socket[] = [];
  readonly #upstreams: net.Socket[] = [];
  readonly server = net.createServer((socket) => {
    socket.pause();
    socket.on('error', () => {});
    this.held.push(socket);
  });

  open(addr: string): void {
    const [host, port] = addr.split(':') as [string, string];
    for (const socket of this.held) {
      const upstream = net.connect({ host, port: Number(port) });
      upstream.on('error', () => {});
      this.#upstreams.push(upstream);
      socket.pipe(upstream);
      upstream.pipe(socket);
    }
  }

  close(): Promise<void> {
    for (const socket of [...this.held, ...this.#upstreams]) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

test.after.each(async () => {
  await Promise.all(open.map((messenger) => messenger.close()));
  open = [];
});

// --- the catalogue and the codec ------------------------------------------------------------------

test('fixtures: one valid sample for every message type and op', () => {
  for (const message of sampleMessages) assert.is(validate(message), null, JSON.stringify(message));
  type SchemaView = { properties: { type: { const: string }; op?: { anyOf: { const: string }[] } } };
  for (const schema of MessageSchema.anyOf as unknown as SchemaView[]) {
    const type = schema.properties.type.const;
    const ops = schema.properties.op?.anyOf.map((literal) => literal.const) ?? [undefined];
    for (const op of ops) {
      const found = sampleMessages.some(
        (message) => message.type === type && (op === undefined || (message as { op?: string }).op === op),
      );
      assert.ok(found, `no sample for ${type}${op ? ` op ${op}` : ''}`);
    }
  }
});

test('codec: every sample round-trips, binary fields as plain Uint8Array', () => {
  for (const message of sampleMessages) {
    const decoded = decodeMessage(encodeMessage(message));
    assert.ok('message' in decoded, JSON.stringify(decoded));
    assert.equal(decoded.message, message);
  }
  const chunk = decodeMessage(
    encodeMessage(sampleMessages.find((m) => m.type === 'mon.sync' && m.chunk) as Message),
  );
  assert.ok(
    'message' in chunk &&
      chunk.message.type === 'mon.sync' &&
      chunk.message.chunk?.constructor === Uint8Array,
  );
});

test('codec: undecodable versus invalid, and never a throw on arbitrary bytes', () => {
  const trailing = decodeMessage(new Uint8Array([...encodeMessage(command(1)), 0x01]));
  assert.ok('error' in trailing && trailing.kind === 'undecodable' && trailing.error.includes('trailing'));
  const deep = decodeMessage(new Uint8Array(200_000).fill(0x91));
  assert.ok('error' in deep && deep.kind === 'undecodable');
  assert.ok('error' in decodeMessage(new Uint8Array([0xc1])));
  const invalid = decodeMessage(encodeValue({ type: 'mon.ping', op: 'bogus', stamp: 1 }));
  assert.ok(
    'error' in invalid && invalid.kind === 'invalid' && invalid.error.startsWith('mon.ping'),
    JSON.stringify(invalid),
  );
  const cyclic = decodeMessage(new Uint8Array([0xd6, 0x69, 0, 0, 0, 1, 0x91, 0xd6, 0x70, 0, 0, 0, 1]));
  assert.ok('error' in cyclic);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      const result = decodeMessage(bytes);
      return 'message' in result ? validate(result.message) === null : result.error.length > 0;
    }),
    { numRuns: 2000 },
  );
  // Still healthy after all that garbage.
  const after = decodeMessage(encodeMessage(command(7)));
  assert.ok('message' in after);
});

test('frame: a stream split at every byte boundary reassembles', () => {
  const payloads = sampleMessages.map((message) => encodeMessage(message));
  const stream = Buffer.concat(payloads.map((payload) => encodeFrame(payload)));
  const check = (chunks: Uint8Array[]): void => {
    const decoder = new FrameDecoder();
    const frames: Uint8Array[] = [];
    for (const chunk of chunks) {
      const result = decoder.push(chunk);
      assert.is(result.error, undefined);
      frames.push(...result.frames);
    }
    assert.is(decoder.bufferedBytes, 0);
    assert.equal(
      frames.map((frame) => decodeMessage(frame)),
      sampleMessages.map((message) => ({ message })),
    );
  };
  for (let cut = 0; cut <= stream.byteLength; cut++) check([stream.subarray(0, cut), stream.subarray(cut)]);
  check([...stream].map((byte) => new Uint8Array([byte])));
});

// --- the messenger: delivery ----------------------------------------------------------------------

test('every message type round-trips over TCP, in order, from the handshake name', async () => {
  const a = await startNode('mon.a', { rank: 0 });
  const b = await startNode('mon.b', { rank: 1 });
  for (const message of sampleMessages) b.messenger.send('mon.a', message, a.addr);
  await a.inbox.count(sampleMessages.length);
  assert.equal(a.inbox.from('mon.b'), sampleMessages);
  assert.is(a.inbox.received.length, sampleMessages.length);
  const stats = b.messenger.stats();
  assert.is(stats.sent, sampleMessages.length);
  assert.is(stats.dials, 1);
  // Frames sent in one tick were coalesced: far fewer socket writes than messages is not observable
  // directly, but every byte counted went out on one connection.
  assert.is(a.messenger.stats().received, sampleMessages.length);
});

test('a message to oneself arrives through the codec', async () => {
  const a = await startNode('mon.a');
  a.messenger.send('mon.a', command(5));
  await a.inbox.count(1);
  assert.equal(a.inbox.received[0], { from: 'mon.a', message: command(5) });
});

test('client replies go over the connection the client opened', async () => {
  const a = await startNode('mon.a');
  const client = await startNode('client.x7Kp2', {}, false);
  answerCommands(a, () => ({ r: 0, rs: 'ok', data: new Uint8Array([1]) }));
  client.messenger.send('mon.a', command(9), a.addr);
  await client.inbox.count(1);
  assert.equal(client.inbox.received[0], {
    from: 'mon.a',
    message: { type: 'mon.command_ack', tid: 9, cmd: ['status'], r: 0, rs: 'ok', data: new Uint8Array([1]) },
  });
  assert.is(a.messenger.stats().dials, 0, 'the monitor never dials a client');

  // Once the client is gone, a reply to it is dropped and counted, and the monitor heard the reset.
  await client.messenger.close();
  await a.inbox.reset('client.x7Kp2');
  const dropped = a.messenger.stats().dropped;
  a.messenger.send('client.x7Kp2', command(10));
  assert.is(a.messenger.stats().dropped, dropped + 1);
  a.messenger.send('client.never-seen', command(11));
  assert.is(a.messenger.stats().dropped, dropped + 2);
});

test('the queue bound drops the oldest and counts it', async () => {
  const a = await startNode('mon.a');
  const b = await startNode('mon.b', { queueMessagesMax: 3 });
  // All sent in one tick, before the lazy connection can exist: five messages, room for three.
  for (let tid = 1; tid <= 5; tid++) b.messenger.send('mon.a', command(tid), a.addr);
  assert.is(b.messenger.stats().dropped, 2);
  assert.is(b.messenger.stats().queued, 3);
  await a.inbox.count(3);
  b.messenger.send('mon.a', command(6), a.addr);
  await a.inbox.count(4);
  assert.equal(tids(a.inbox.from('mon.b')), [3, 4, 5, 6]);
});

test('messages read before handlers are set are held and delivered in order once they are', async () => {
  // A monitor listens first and sets its handlers after it has loaded its store: a client's
  // command read in between must not vanish (it cost the client its whole attempt timeout).
  const logger = new CaptureLogger();
  const early = new Messenger({ name: 'mon.a', fsid, logger, queueMessagesMax: 3, auth: authFor('mon.a') });
  open.push(early);
  const addr = await early.listen();
  const client = await startNode('client.h0ld', {}, false);
  for (let tid = 1; tid <= 4; tid++) client.messenger.send('mon.a', command(tid), addr);
  await logger.signal.until(
    () => logger.matching('held until handlers are set').length + logger.matching('; dropped').length >= 4,
    'four messages read before the handlers',
  );
  assert.is(logger.matching('held until handlers are set').length, 3, 'held up to queueMessagesMax');
  assert.is(early.stats().dropped, 1, 'the one beyond the bound is dropped and counted');
  assert.is(early.stats().received, 0);

  const inbox = new Inbox();
  early.setHandlers(inbox.handlers);
  assert.is(inbox.received.length, 0, 'delivered after the caller has finished setting up');
  client.messenger.send('mon.a', command(5), addr);
  await inbox.count(4);
  assert.equal(tids(inbox.from('client.h0ld')), [1, 2, 3, 5]);
  assert.is(early.stats().received, 4);
});

test('MonClient: "not in quorum" answers are retried with a backoff, under one tid, until an answer or the deadline', async () => {
  const a = await startNode('mon.a');
  const tidsSeen: number[] = [];
  let refuseFirst = 3;
  answerCommands(a, (message) => {
    tidsSeen.push(message.tid);
    return tidsSeen.length <= refuseFirst
      ? { r: -11, rs: 'mon.a is not in quorum (state electing)' }
      : { r: 0, rs: '' };
  });
  const client = new MonClient({ key: adminKey, mons: [{ name: 'a', addr: a.addr }], fsid, timeoutMs: 5000 });
  try {
    const reply = await client.command(['quorum_status']);
    assert.is(reply.r, 0);
    assert.is(tidsSeen.length, 4);
    assert.equal(new Set(tidsSeen).size, 1, 'a retry is the same request');

    // Refused throughout: a bounded number of attempts (25, 50, 100, 200, 400 ms apart), not a
    // tight loop, then ETIMEDOUT naming the last refusal.
    tidsSeen.length = 0;
    refuseFirst = Number.POSITIVE_INFINITY;
    const failing = new MonClient({
      key: adminKey,
      mons: [{ name: 'a', addr: a.addr }],
      fsid,
      timeoutMs: 1000,
    });
    const error = await failing.command(['quorum_status']).then(
      () => null,
      (e: unknown) => e as MonClientError,
    );
    await failing.close();
    assert.is(error?.code, 'ETIMEDOUT');
    assert.match(error?.message ?? '', /not in quorum/);
    assert.ok(tidsSeen.length >= 2 && tidsSeen.length <= 8, `${tidsSeen.length} attempts in 1 s`);
  } finally {
    await client.close();
  }
});

test('a connection that reached itself is refused: its own hello echoed back, or a TCP self-connect', async () => {
  // What a socket connected to itself reads is its own hello. An echo server shows it without
  // luck; MonClient used to learn its own name there and then dial "mon.nt.<id>" for the rest
  // of the command (and its redial loop held the port a monitor was about to listen on).
  const echo = net.createServer((socket) => socket.pipe(socket));
  const echoAddr = await listenLoopback(echo);
  try {
    const client = await startNode('client.s3lf', {}, false);
    const error = await client.messenger.connect(echoAddr, 2000).then(
      () => null,
      (e: Error) => e,
    );
    assert.match(error?.message ?? 'connected', /reached itself/);
    const mc = new MonClient({ key: adminKey, mons: [{ addr: echoAddr }], timeoutMs: 300 });
    const failed = await mc.command(['quorum_status']).then(
      () => null,
      (e: MonClientError) => e,
    );
    await mc.close();
    assert.is(failed?.code, 'ETIMEDOUT');
    assert.match(failed?.message ?? '', /reached itself/);
    assert.not.match(failed?.message ?? '', /mon\.nt\./);
  } finally {
    await new Promise((resolve) => echo.close(resolve));
  }

  // The kernel's own self-connect (source port = destination port, nothing listening) is what
  // connectedToItself() recognises; reset at once, it leaves the port free to listen on.
  const probe = net.createServer();
  const port = Number((await listenLoopback(probe)).split(':')[1]);
  await new Promise((resolve) => probe.close(resolve));
  const self = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1', localPort: port });
  await within(new Promise((resolve) => self.once('connect', resolve)), 'a self-connect');
  assert.ok(connectedToItself(self));
  const closed = new Promise((resolve) => self.once('close', resolve));
  self.resetAndDestroy();
  await closed;
  const server = net.createServer();
  await within(
    new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    'listen after the reset',
  );
  await new Promise((resolve) => server.close(resolve));
});

test('MonClient: monitors that refuse connections are retried with a backoff, not a tight loop', async () => {
  // A port that accepts and hangs up at once: every attempt fails fast, as a monitor starting.
  let accepted = 0;
  const slam = net.createServer((socket) => {
    accepted += 1;
    socket.destroy();
  });
  const addr = await listenLoopback(slam);
  try {
    const mc = new MonClient({ key: adminKey, mons: [{ addr }], timeoutMs: 1000 });
    const failed = await mc.command(['quorum_status']).then(
      () => null,
      (e: MonClientError) => e,
    );
    await mc.close();
    assert.is(failed?.code, 'ETIMEDOUT');
    // The hang-up reads as a close or a reset, whichever the kernel delivers first.
    assert.match(failed?.message ?? '', /no answer from 127\.0\.0\.1:\d+: /);
    assert.ok(accepted >= 2 && accepted <= 8, `${accepted} connections in 1 s`);
  } finally {
    await new Promise((resolve) => slam.close(resolve));
  }
});

test('MonClient: an input a monitor would not read from a client (clientFrameBytesMax) is EFBIG at once, not a timeout', async () => {
  const a = await startNode('mon.a');
  answerCommands(a, () => ({ r: 0, rs: 'ok' }));
  const client = new MonClient({ key: adminKey, mons: [{ name: 'a', addr: a.addr }], fsid, timeoutMs: 3000 });
  try {
    const started = Date.now();
    const error = await client
      .command(['config-key', 'set', 'k'], new Uint8Array(a.messenger.clientFrameBytesMax))
      .then(
        () => undefined,
        (failure: MonClientError) => failure,
      );
    assert.is(error?.code, 'EFBIG', String(error));
    assert.ok(Date.now() - started < 1000, 'refused before anything was sent');
    assert.is((await client.command(['status'], new Uint8Array(64 * 1024))).rs, 'ok');
  } finally {
    await client.close();
  }
});

test('MonClient: a monitor that refuses connections is left at once for the next one, not after the attempt timeout', async () => {
  const b = await startNode('mon.b', { rank: 1 });
  answerCommands(b, () => ({ r: 0, rs: 'from b' }));
  const dead = await freePorts(1);
  // Attempts as long as the whole command: only the refused connect can move it on to mon.b.
  const client = new MonClient({
    key: adminKey,
    mons: [
      { name: 'a', addr: `127.0.0.1:${dead}` },
      { name: 'b', addr: b.addr },
    ],
    fsid,
    attemptTimeoutMs: 30_000,
    timeoutMs: 30_000,
  });
  try {
    const reply = await client.command(['quorum_status']);
    assert.is(reply.rs, 'from b');
  } finally {
    await client.close();
  }
});

test('MonClient: every attempt of a command carries the same deadline, at most requestDeadlineMaxMs ahead', async () => {
  const a = await startNode('mon.a');
  const seen: Extract<Message, { type: 'mon.command' }>[] = [];
  let answer = (count: number) =>
    count <= 3 ? { r: -11, rs: 'mon.a is not in quorum (state electing)' } : { r: 0, rs: '' };
  answerCommands(a, (message) => {
    seen.push(message);
    return answer(seen.length);
  });
  const client = new MonClient({ key: adminKey, mons: [{ name: 'a', addr: a.addr }], fsid, timeoutMs: 5000 });
  const long = new MonClient({
    key: adminKey,
    mons: [{ name: 'a', addr: a.addr }],
    fsid,
    timeoutMs: 3_600_000,
  });
  try {
    const before = Date.now();
    const reply = await client.command(['config-key', 'set', 'k', 'v']);
    assert.is(reply.r, 0);
    assert.is(seen.length, 4, 'three refusals, then the answer');
    const deadlines = new Set(seen.map((message) => message.deadline));
    assert.is(deadlines.size, 1, `one deadline for all attempts: ${[...deadlines].join(', ')}`);
    const deadline = seen[0]?.deadline ?? 0;
    assert.ok(
      deadline >= before + 5000 && deadline <= before + 5000 + 1000,
      `deadline ${deadline - before} ms ahead`,
    );

    // A longer timeout is cut to the monitors' window; their ETIMEDOUT answer is final.
    seen.length = 0;
    answer = () => ({ r: -110, rs: 'deadline passed; not applied' });
    const start = Date.now();
    const late = await long.command(['config-key', 'set', 'k', 'w']);
    assert.equal([late.r, late.rs], [-110, 'deadline passed; not applied']);
    assert.is(seen.length, 1, 'ETIMEDOUT from a monitor is not retried');
    const capped = seen[0]?.deadline ?? 0;
    assert.ok(
      capped >= start + requestDeadlineMaxMs && capped <= Date.now() + requestDeadlineMaxMs,
      `deadline ${capped - start} ms ahead`,
    );
  } finally {
    await client.close();
    await long.close();
  }
});

test('MonClient: an attempt at a monitor that was down never reaches it once it is up', async () => {
  // Refused connects: every attempt ends at once (onUnreachable), and its request used to stay
  // queued in the messenger, whose redials would deliver it once the monitor listened.
  const port = await freePorts(1);
  const addr = `127.0.0.1:${port}`;
  const client = new MonClient({
    key: adminKey,
    mons: [{ name: 'x', addr }],
    fsid,
    attemptTimeoutMs: 100,
    timeoutMs: 300,
  });
  try {
    const failed = await client.command(['config-key', 'set', 'k', 'v']).then(
      () => null,
      (e: MonClientError) => e,
    );
    assert.is(failed?.code, 'ETIMEDOUT');
    const x = await startNode('mon.x', { listenAddr: addr });
    const seen: string[][] = [];
    answerCommands(x, (message) => {
      seen.push(message.cmd);
      return { r: 0, rs: '' };
    });
    // The client's next command goes to mon.x behind anything still queued for it (one FIFO
    // per peer): once it has arrived, nothing older can follow.
    const reply = await client.command(['mon_status']);
    assert.is(reply.r, 0);
    assert.equal(seen, [['mon_status']], 'the abandoned command never arrived');
  } finally {
    await client.close();
  }
});

test('MonClient: an attempt that timed out while its dial hung never reaches the monitor later', async () => {
  // The dial connects to the gate and its handshake hangs there, as one to a partitioned
  // monitor does: each attempt's request waits in the messenger's queue until it times out.
  const gate = new Gate();
  const gateAddr = await listenLoopback(gate.server);
  const client = new MonClient({
    key: adminKey,
    mons: [{ name: 'x', addr: gateAddr }],
    fsid,
    attemptTimeoutMs: 100,
    timeoutMs: 350,
  });
  try {
    const failed = await client.command(['config-key', 'set', 'k', 'v']).then(
      () => null,
      (e: MonClientError) => e,
    );
    assert.is(failed?.code, 'ETIMEDOUT');
    assert.match(failed?.message ?? '', /did not answer within/);
    assert.is(gate.held.length, 1, 'one dial, held at the gate');
    const x = await startNode('mon.x');
    const seen: string[][] = [];
    answerCommands(x, (message) => {
      seen.push(message.cmd);
      return { r: 0, rs: '' };
    });
    gate.open(x.addr);
    const reply = await client.command(['mon_status']);
    assert.is(reply.r, 0);
    assert.equal(seen, [['mon_status']], 'the timed-out command never arrived');
  } finally {
    await client.close();
    await gate.close();
  }
});

test('reconnect after the peer restarts on the same port; onReset on the loss', async () => {
  const a = await startNode('mon.a');
  const b = await startNode('mon.b');
  b.messenger.send('mon.a', command(1), a.addr);
  await a.inbox.count(1);

  await a.messenger.close();
  await b.inbox.reset('mon.a');
  // Sent while mon.a is down: it waits in the queue while dials fail and back off.
  b.messenger.send('mon.a', command(2), a.addr);
  await b.logger.waitFor('connect failed', 'debug');

  const restarted = await startNode('mon.a', { listenAddr: a.addr });
  assert.is(restarted.addr, a.addr);
  await restarted.inbox.count(1);
  assert.equal(tids(restarted.inbox.from('mon.b')), [2]);
  assert.ok(b.messenger.stats().dials >= 3, `dials ${b.messenger.stats().dials}`);
  // And the restarted monitor can answer over the same connection (one connection per pair).
  restarted.messenger.send('mon.b', command(3), b.addr);
  await b.inbox.count(1);
  assert.is(restarted.messenger.stats().dials, 0);
});

test('a new connection from a restarted peer (new nonce) replaces a stale session at once', async () => {
  const a = await startNode('mon.a');
  // Two incarnations of mon.b, the first one's socket still open as a crashed peer's may look.
  const stale = await RawPeer.connect(a.addr);
  await stale.handshake('mon.b', { hello: { nonce: 1 } });
  const fresh = await RawPeer.connect(a.addr);
  await fresh.handshake('mon.b', { hello: { nonce: 2 } });
  await stale.whenClosed();
  await a.inbox.reset('mon.b');
  a.messenger.send('mon.b', command(1));
  await fresh.frameCount(1);
  assert.equal(fresh.frames[0], command(1));

  // The same incarnation reconnecting: the newer connection wins quietly (no reset).
  const again = await RawPeer.connect(a.addr);
  await again.handshake('mon.b', { hello: { nonce: 2 } });
  await fresh.whenClosed();
  assert.equal(a.inbox.resets, ['mon.b']);
  a.messenger.send('mon.b', command(2));
  await again.frameCount(1);
  assert.equal(again.frames[0], command(2));
  assert.is(a.messenger.stats().replaced, 2);
  again.socket.destroy();
});

test('simultaneous connect of two monitors ends with one connection and loses nothing', async () => {
  for (let round = 0; round < 5; round++) {
    const a = await startNode('mon.a');
    const b = await startNode('mon.b');
    const count = 20;
    for (let tid = 0; tid < count; tid++) {
      a.messenger.send('mon.b', command(tid), b.addr);
      b.messenger.send('mon.a', command(tid), a.addr);
    }
    await a.inbox.count(count, `round ${round}: mon.a receives ${count}`);
    await b.inbox.count(count, `round ${round}: mon.b receives ${count}`);
    // Each side logs every closed connection after counting it: re-check on each side's log.
    await Promise.all(
      [a, b].map((node) =>
        node.logger.signal.until(
          () => node.messenger.stats().connections === 1,
          `round ${round}: ${node.messenger.name} down to one connection`,
        ),
      ),
    );
    assert.equal(
      tids(a.inbox.from('mon.b')).sort((x, y) => x - y),
      [...Array(count).keys()],
    );
    assert.equal(
      tids(b.inbox.from('mon.a')).sort((x, y) => x - y),
      [...Array(count).keys()],
    );
    assert.equal(a.inbox.resets, [], 'a replaced connection is not a reset');
    assert.equal(b.inbox.resets, []);
    assert.is(a.messenger.stats().dropped + b.messenger.stats().dropped, 0);
    // There really were two connections, and each side closed one of them.
    assert.is(a.messenger.stats().handshakes, 2);
    assert.is(b.messenger.stats().handshakes, 2);
    assert.is(a.messenger.stats().replaced + b.messenger.stats().replaced, 2);

    // The surviving connection carries traffic both ways without new dials.
    const dials = a.messenger.stats().dials + b.messenger.stats().dials;
    a.messenger.send('mon.b', command(100), b.addr);
    b.messenger.send('mon.a', command(100), a.addr);
    await a.inbox.count(count + 1);
    await b.inbox.count(count + 1);
    assert.is(a.messenger.stats().dials + b.messenger.stats().dials, dials);
    assert.is(a.messenger.stats().connections, 1);
    await Promise.all([a.messenger.close(), b.messenger.close()]);
  }
});

test('close() is idempotent and later sends are dropped and counted', async () => {
  const a = await startNode('mon.a');
  const b = await startNode('mon.b');
  b.messenger.send('mon.a', command(1), a.addr);
  await a.inbox.count(1);
  const first = b.messenger.close();
  assert.is(b.messenger.close(), first);
  await first;
  assert.is(b.messenger.stats().connections, 0);
  const dropped = b.messenger.stats().dropped;
  b.messenger.send('mon.a', command(2), a.addr);
  assert.is(b.messenger.stats().dropped, dropped + 1);
  await a.inbox.reset('mon.b');
});

// --- the messenger: bad peers -----------------------------------------------------------------------

/** After each bad peer, the server must still serve a well-behaved client. */
async function assertStillServing(server: Node): Promise<void> {
  const client = await startNode(`client.check${Math.floor(Math.random() * 1e9)}`, {}, false);
  const before = server.inbox.received.length;
  client.messenger.send('mon.a', command(77), server.addr);
  await server.inbox.count(before + 1, 'a message from a well-behaved client');
  await client.messenger.close();
}

test('garbage before the handshake: logged reason, connection closed, server keeps serving', async () => {
  const a = await startNode('mon.a');
  const raw = await RawPeer.connect(a.addr);
  raw.socket.write('GET / HTTP/1.1\r\nHost: paxmon\r\n\r\n');
  await raw.whenClosed();
  const line = await a.logger.waitFor('exceeds the maximum', 'warn');
  assert.match(String(line.fields.reason), /framing error/);
  assert.is(a.messenger.stats().framingErrors, 1);
  await assertStillServing(a);
});

test('an undecodable frame after the handshake closes that connection only', async () => {
  const a = await startNode('mon.a');
  const raw = await RawPeer.connect(a.addr);
  const reply = (await raw.handshake('client.raw')) as HelloReply;
  assert.is(reply.name, 'mon.a');
  raw.sendPayloads([new Uint8Array([0xc1, 0x00])]);
  await raw.whenClosed();
  await a.logger.waitFor('undecodable payload', 'warn');
  assert.is(a.messenger.stats().undecodable, 1);
  await assertStillServing(a);
});

test('a 4 GiB length prefix is refused at once, without waiting for its payload', async () => {
  const a = await startNode('mon.a');
  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('client.raw');
  raw.socket.write(new Uint8Array([0xff, 0xff, 0xff, 0xff]));
  await raw.whenClosed();
  const line = await a.logger.waitFor('frame of 4294967295 bytes exceeds the maximum', 'warn');
  assert.is(line.fields.peer, 'client.raw');
  await assertStillServing(a);
});

test('an invalid message is logged and dropped; the connection stays', async () => {
  const a = await startNode('mon.a');
  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('client.raw');
  raw.sendValue({ type: 'mon.ping', op: 'bogus', stamp: 1 });
  raw.sendValue({ type: 'mon.nonsense' });
  raw.sendValue({ type: 'mon.ping', op: 'ping', stamp: 2 });
  await a.inbox.count(1);
  assert.equal(a.inbox.received[0], {
    from: 'client.raw',
    message: { type: 'mon.ping', op: 'ping', stamp: 2 },
  });
  // The first is logged at once; the second, within the same interval, with the count on close.
  const first = a.logger.matching('invalid message dropped', 'warn');
  assert.is(first.length, 1);
  assert.match(String(first[0]?.fields.reason), /^mon\.ping: \/op/);
  assert.is(first[0]?.fields.count, 1);
  assert.is(a.messenger.stats().invalid, 2);
  assert.not.ok(raw.closed);
  raw.socket.destroy();
  await a.logger.signal.until(
    () => a.logger.matching('invalid message dropped', 'warn').length === 2,
    'the rest counted when the connection closes',
  );
  const rest = a.logger.matching('invalid message dropped', 'warn')[1];
  assert.match(String(rest?.fields.reason), /unknown message type/);
  assert.is(rest?.fields.count, 1);
});

test('bad hellos are refused with a reason frame, logged, and closed', async () => {
  const a = await startNode('mon.a');
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ banner: 'ceph v2' }, /wrong banner "ceph v2"/],
    [{ protocolVersion: 1 }, /unsupported protocol version 1/],
    [{ name: 'osd.3' }, /malformed entity name/],
    [{ name: 'mon.a', entity: monEntity }, /my own name/],
    [{ entity: 'osd.3' }, /malformed auth entity/],
    [{ challenge: new Uint8Array(8) }, /malformed challenge/],
    [{ modes: ['plain'] }, /malformed session modes/],
    [{ modes: [] }, /malformed session modes/],
  ];
  for (const [overrides, reason] of cases) {
    const raw = await RawPeer.connect(a.addr);
    const reply = await raw.handshake('client.raw', { hello: overrides });
    assert.match(String((reply as { refused?: string }).refused), reason);
    await raw.whenClosed();
    assert.ok(
      a.logger
        .matching('refusing connection', 'warn')
        .some((entry) => reason.test(String(entry.fields.reason))),
      `logged ${reason}`,
    );
  }
  assert.is(a.messenger.stats().refused, cases.length);
  await assertStillServing(a);
});

test('a monitor of another cluster: EACCES for its key; with the same key, an fsid mismatch both sides log', async () => {
  const a = await startNode('mon.a');
  // Another cluster has another `mon.` key: refused before any fsid is told.
  const stranger = await startNode('mon.z', {
    fsid: otherFsid,
    auth: { entity: monEntity, secret: new Uint8Array(randomBytes(16)) },
  });
  stranger.messenger.send('mon.a', command(1), a.addr);
  const refused = await stranger.logger.waitFor('refused by mon.a', 'warn');
  assert.is(refused.fields.reason, 'refused by mon.a: EACCES: authentication failed for mon.');
  // A key copied from this cluster into another: authenticated, then the fsids differ.
  const copied = await startNode('mon.y', { fsid: otherFsid });
  copied.messenger.send('mon.a', command(2), a.addr);
  const line = await a.logger.waitFor('fsid mismatch', 'warn');
  assert.is(line.fields.reason, `fsid mismatch: peer sent ${otherFsid}`);
  const theirs = await copied.logger.waitFor('fsid mismatch', 'warn');
  assert.is(theirs.fields.reason, `fsid mismatch: mon.a is of cluster ${fsid}`);
  assert.ok(stranger.messenger.stats().refused >= 1 && copied.messenger.stats().refused >= 1);
  await assertStillServing(a);
  assert.equal(tids(a.inbox.from('mon.z')), []);
  assert.equal(tids(a.inbox.from('mon.y')), []);
});

test('a client that does not know the fsid yet (nil UUID) may talk to any monitor; a monitor may not', async () => {
  const a = await startNode('mon.a');
  const client = await startNode('client.nofsid', { fsid: anyFsid }, false);
  a.inbox.onMessage = (from) => a.messenger.send(from, command(2));
  client.messenger.send('mon.a', command(1), a.addr);
  await client.inbox.count(1);
  assert.equal(tids(client.inbox.from('mon.a')), [2]);
  assert.throws(
    () => new Messenger({ name: 'mon.z', fsid: anyFsid, auth: authFor('mon.z') }),
    /only a client/,
  );
  // A monitor's key, and the nil fsid: authenticated, then refused (the stream is sealed by then,
  // so the refusal is the close, logged by the monitor).
  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('mon.z', { fsid: anyFsid });
  await raw.whenClosed();
  await a.logger.waitFor(`fsid mismatch: peer sent ${anyFsid}`, 'warn');
});

test('dialling an address that answers with another name is refused', async () => {
  const a = await startNode('mon.a');
  const b = await startNode('mon.b');
  b.messenger.send('mon.c', command(1), a.addr);
  const line = await b.logger.waitFor('but reached mon.a', 'warn');
  assert.is(line.fields.peer, 'mon.c');
  assert.equal(a.inbox.received, []);
});

test('a silent connection is closed when the handshake times out', async () => {
  const a = await startNode('mon.a', { handshakeTimeoutMs: 50 });
  const raw = await RawPeer.connect(a.addr);
  await raw.whenClosed();
  await a.logger.waitFor('handshake timed out', 'warn');
  await assertStillServing(a);
});

test('frame size limits: too big to send is dropped at the sender; too big to receive resets', async () => {
  const a = await startNode('mon.a', { frameBytesMax: 1024 });
  const b = await startNode('mon.b');
  const big: Message = { type: 'mon.command', tid: 1, cmd: ['x'.repeat(2000)] };
  a.messenger.send('mon.b', big, b.addr);
  assert.is(a.messenger.stats().dropped, 1);
  await a.logger.waitFor('exceeds the maximum frame size', 'error');

  // Sent in one turn they would share a record, refused whole: the big one follows the small one.
  b.messenger.send('mon.a', command(1), a.addr);
  await a.inbox.count(1);
  b.messenger.send('mon.a', big, a.addr);
  await a.logger.waitFor('exceeds the maximum of 1024 bytes', 'warn');
  await b.inbox.reset('mon.a');
  assert.equal(tids(a.inbox.from('mon.b')), [1]);
  // The next message redials and gets through.
  b.messenger.send('mon.a', command(2), a.addr);
  await a.inbox.count(2);
});

// --- the messenger: withdrawing, and bounds on connects and silent peers ------------------------

test('withdraw() takes back a message still queued, never one a socket has', async () => {
  const addr = `127.0.0.1:${await freePorts(1)}`;
  const b = await startNode('mon.b');
  const first = b.messenger.send('mon.x', command(1), addr);
  const second = b.messenger.send('mon.x', command(2), addr);
  assert.ok(first && second);
  assert.is(b.messenger.stats().queued, 2);
  assert.ok(b.messenger.withdraw(first));
  assert.not.ok(b.messenger.withdraw(first), 'only once');
  assert.is(b.messenger.stats().queued, 1);
  assert.is(b.messenger.stats().withdrawn, 1);

  const x = await startNode('mon.x', { listenAddr: addr });
  await x.inbox.count(1);
  assert.not.ok(b.messenger.withdraw(second), 'written to a socket: too late');
  // Behind an established connection a message waits for this turn's flush: still in reach.
  const third = b.messenger.send('mon.x', command(3), addr);
  b.messenger.send('mon.x', command(4), addr);
  assert.ok(third && b.messenger.withdraw(third));
  await x.inbox.count(2);
  assert.equal(tids(x.inbox.from('mon.b')), [2, 4]);
  assert.is(b.messenger.send('mon.b', command(5)), undefined, 'to oneself: nothing queued');
  assert.is(b.messenger.stats().dropped, 0);
});

test('timing options are validated: the read timeout leaves room for two keepalives', () => {
  const auth = authFor('mon.a');
  assert.throws(
    () => new Messenger({ name: 'mon.a', fsid, auth, keepaliveIntervalMs: 100, readTimeoutMs: 150 }),
    /at least twice keepaliveIntervalMs/,
  );
  assert.throws(() => new Messenger({ name: 'mon.a', fsid, auth, connectTimeoutMs: 0 }), /connectTimeoutMs/);
  assert.throws(() => new Messenger({ name: 'mon.a', fsid, auth, readTimeoutMs: 2.5 }), /readTimeoutMs/);
});

test('a dial that does not connect within connectTimeoutMs fails quietly, reports the peer unreachable, and is retried with the backoff', async () => {
  const jam = await jammedPort();
  try {
    const b = await startNode('mon.b', { connectTimeoutMs: 200, reconnectMs: { initial: 20, max: 40 } });
    const unreachable: string[] = [];
    b.messenger.setHandlers({
      ...b.inbox.handlers,
      onUnreachable: (_peer, reason) => {
        unreachable.push(reason);
        b.inbox.signal.notify();
      },
    });
    const started = performance.now();
    b.messenger.send('mon.x', command(1), jam.addr);
    await b.inbox.signal.until(() => unreachable.length >= 1, 'the first dial to fail');
    const elapsedMs = performance.now() - started;
    assert.match(unreachable[0] ?? '', /connect timed out after 200 ms/);
    assert.ok(elapsedMs >= 190 && elapsedMs < 1000, `failed after ${Math.round(elapsedMs)} ms`);
    await b.inbox.signal.until(() => unreachable.length >= 2, 'the redial to fail too');
    const stats = b.messenger.stats();
    assert.ok(stats.dials >= 2 && stats.connectTimeouts >= 2, JSON.stringify(stats));
    assert.is(stats.queued, 1, 'the message still waits for the peer');
    assert.equal(b.logger.matching('closing connection', 'warn'), [], 'a failed dial is no warning');
  } finally {
    await jam.release();
  }
});

for (const behaviour of ['reads', 'stops reading'] as const) {
  test(`a peer that answers the handshake, then sends nothing and ${behaviour}: reset after readTimeoutMs, redialled for the next message`, async () => {
    // What a connection looks like from one side when the other side's packets are dropped, or
    // its process is frozen: the kernel says nothing for minutes.
    const accepted: RawPeer[] = [];
    const signal = new Signal();
    const mute = net.createServer((socket) => {
      accepted.push(new RawPeer(socket, { accept: { name: 'mon.x' } }));
      signal.notify();
    });
    const addr = await listenLoopback(mute);
    try {
      const b = await startNode('mon.b', { keepaliveIntervalMs: 40, readTimeoutMs: 200 });
      b.messenger.send('mon.x', command(1), addr);
      await signal.until(() => accepted.length === 1, 'the dial');
      const x = accepted[0] as RawPeer;
      await x.whenHandshaken();
      const connectedAt = performance.now();
      await x.frameCount(1);
      assert.equal(x.frames[0], command(1));
      if (behaviour === 'stops reading') x.socket.pause();
      await b.inbox.reset('mon.x');
      const silentMs = performance.now() - connectedAt;
      assert.ok(silentMs >= 190 && silentMs < 2000, `reset after ${Math.round(silentMs)} ms`);
      // A paused socket reports the close only once what is buffered before it has been read.
      x.socket.resume();
      await x.whenClosed();
      if (behaviour === 'reads') assert.ok(x.keepalives >= 2, `${x.keepalives} keepalives meanwhile`);
      const line = await b.logger.waitFor('nothing received for 200 ms', 'warn');
      assert.is(line.fields.peer, 'mon.x');
      assert.is(b.messenger.stats().readTimeouts, 1);

      b.messenger.send('mon.x', command(2), addr);
      await signal.until(() => accepted.length === 2, 'the redial');
      assert.is(b.messenger.stats().dials, 2);
    } finally {
      for (const peer of accepted) peer.socket.destroy();
      await new Promise((resolve) => mute.close(resolve));
    }
  });
}

test('keepalives keep an idle connection open past readTimeoutMs, both ways', async () => {
  const timing = { keepaliveIntervalMs: 20, readTimeoutMs: 100 };
  const a = await startNode('mon.a', timing);
  const b = await startNode('mon.b', timing);
  b.messenger.send('mon.a', command(1), a.addr);
  await a.inbox.count(1);
  // Fifteen keepalives each way: idle for three read timeouts at least.
  await pollUntil(
    'fifteen keepalives each way',
    5000,
    async () =>
      a.messenger.stats().keepalives >= 15 && b.messenger.stats().keepalives >= 15 ? true : undefined,
    { intervalMs: 10 },
  );
  for (const node of [a, b]) {
    const stats = node.messenger.stats();
    assert.is(stats.readTimeouts, 0, node.messenger.name);
    assert.is(stats.connections, 1, node.messenger.name);
    assert.equal(node.inbox.resets, [], node.messenger.name);
  }
  a.messenger.send('mon.b', command(2), b.addr);
  await b.inbox.count(1);
  assert.equal(a.inbox.from('mon.b').concat(b.inbox.from('mon.a')), [command(1), command(2)]);
  assert.is(a.messenger.stats().dials + b.messenger.stats().dials, 1, 'still the first connection');
});

test('a keepalive is no hello: before the handshake it costs the connection; after it, sealed, it reaches no handler; unsealed, it ends the session', async () => {
  const a = await startNode('mon.a');
  const early = await RawPeer.connect(a.addr);
  early.socket.write(keepaliveFrame);
  await early.whenClosed();
  await a.logger.waitFor('undecodable handshake: empty payload', 'warn');

  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('client.raw');
  raw.sendKeepalive();
  raw.sendKeepalive();
  raw.sendValue({ type: 'mon.ping', op: 'ping', stamp: 3 });
  await a.inbox.count(1);
  assert.equal(a.inbox.received, [
    { from: 'client.raw', message: { type: 'mon.ping', op: 'ping', stamp: 3 } },
  ]);
  assert.is(a.messenger.stats().invalid, 0);
  assert.not.ok(raw.closed);
  // Nothing unauthenticated is read after the handshake, not even an empty frame.
  raw.socket.write(keepaliveFrame);
  await raw.whenClosed();
  await a.logger.waitFor('failed authentication', 'warn');
  assert.is(a.messenger.stats().frameAuthFailures, 1);
});

// --- budgets: what one connection, one host, and all clients together may cost (issue 13) --------

/** `count` empty maps in one array: one byte each, one JavaScript object each once decoded. */
function emptyMaps(count: number): Uint8Array {
  const payload = Buffer.alloc(5 + count, 0x80);
  payload[0] = 0xdd;
  payload.writeUInt32BE(count, 1);
  return payload;
}

/** Maps nested `depth` deep: {"": {"": … {}}}. */
function nestedMaps(depth: number): Uint8Array {
  const payload = Buffer.alloc(2 * (depth - 1) + 1, 0x80);
  for (let i = 0; i < depth - 1; i++) {
    payload[2 * i] = 0x81;
    payload[2 * i + 1] = 0xa0;
  }
  return payload;
}

test('codec: decode cost is bounded by values and nesting before anything is built', () => {
  for (const message of sampleMessages) assert.is(scanValue(encodeMessage(message)), null, message.type);
  const values = Array.from({ length: limits.paxosValuesMax }, (_, version) => ({
    version,
    value: new Uint8Array(8),
  }));
  const largest: Message = {
    type: 'mon.paxos',
    op: 'commit',
    electionEpoch: 2,
    pn: 100,
    uncommittedPn: 0,
    firstCommitted: 1,
    lastCommitted: limits.paxosValuesMax,
    values,
  };
  assert.ok('message' in decodeMessage(encodeMessage(largest)), 'the largest Paxos message decodes');
  const bounds = { depthMax: 4, valuesMax: 10 };
  assert.is(scanValue(encodeValue([1, 2, 3, 4, 5, 6, 7, 8, 9]), bounds), null);
  assert.match(
    String(scanValue(encodeValue([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), bounds)),
    /more than 10 values/,
  );
  assert.match(
    String(scanValue(encodeValue({ a: 1, b: 2, c: 3, d: 4, e: 5 }), bounds)),
    /more than 10 values/,
  );
  assert.is(scanValue(nestedMaps(4), bounds), null);
  assert.match(String(scanValue(nestedMaps(5), bounds)), /nested deeper than 4/);
  // A count no frame could hold is refused from its header alone.
  assert.match(String(scanValue(new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff]))), /more than/);
  const eightMillion = decodeValue(emptyMaps(8 * 1024 * 1024 - 5));
  assert.ok('error' in eightMillion && /more than 200000 values/.test(eightMillion.error));
  // msgpackr's extensions decode nested values out of the walk's sight: refused; undefined is not one.
  assert.match(String(scanValue(new Uint8Array([0xd5, 0x73, 0x90, 0x90]))), /extension/);
  assert.equal(decodeValue(new Uint8Array([0x92, 0x01, 0xd4, 0x00, 0x00])), { value: [1, undefined] });
  // Truncated or not, a scan never throws and never reads past the end.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => typeof (scanValue(bytes) ?? '') === 'string'),
  );
});

test('an 8 MiB frame of 8 million empty maps, or maps nested 17 deep, closes the connection before decoding', async () => {
  const a = await startNode('mon.a');
  const heapBefore = process.memoryUsage().heapUsed;
  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('client.raw');
  // 8 MiB with its record's length prefix and tag: the largest record a client may send.
  raw.sendPayloads([emptyMaps(8 * 1024 * 1024 - 5 - recordOverheadBytes)]);
  await raw.whenClosed();
  const line = await a.logger.waitFor('more than 200000 values in one frame', 'warn');
  assert.is(line.fields.peer, 'client.raw');
  // Decoded, the frame would have been ~500 MiB of objects; refused, it costs about its bytes.
  const grownMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  assert.ok(grownMiB < 64, `heap grew ${grownMiB.toFixed(0)} MiB`);

  const deep = await RawPeer.connect(a.addr);
  await deep.handshake('client.deep');
  deep.sendPayloads([nestedMaps(17)]);
  await deep.whenClosed();
  await a.logger.waitFor('containers nested deeper than 16', 'warn');
  assert.is(a.messenger.stats().undecodable, 2);
  await assertStillServing(a);
});

test('a record of two million keepalives (the largest a client may send) is read one frame at a time: no heap, no harm', async () => {
  const a = await startNode('mon.a');
  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('client.ka');
  const heapBefore = process.memoryUsage().heapUsed;
  // 8 MiB of zeros less the tag: 2,097,148 empty frames, sealed by hand (RawPeer's sealer would
  // need an array of them); a ping follows in the next record.
  const plaintext = new Uint8Array(8 * 1024 * 1024 - sealTagBytes);
  const sealer = raw.sealer as RecordSealer;
  const key = (raw.secrets as SessionSecrets).diallerToAcceptor.key;
  raw.socket.write(crcRecord(key, sealer.seq, plaintext));
  raw.socket.write(
    crcRecord(key, sealer.seq + 1, encodeFrame(encodeValue({ type: 'mon.ping', op: 'ping', stamp: 2 }))),
  );
  await a.inbox.count(1);
  const grownMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  assert.ok(grownMiB < 32, `heap grew ${grownMiB.toFixed(0)} MiB`);
  assert.equal(a.inbox.received, [
    { from: 'client.ka', message: { type: 'mon.ping', op: 'ping', stamp: 2 } },
  ]);
  assert.not.ok(raw.closed);
  raw.socket.destroy();
});

test("a client's frame is limited to clientFrameBytesMax at its header; a monitor's session keeps frameBytesMax", async () => {
  const a = await startNode('mon.a');
  assert.is(a.messenger.clientFrameBytesMax, 8 * 1024 * 1024);
  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('client.raw');
  const header = Buffer.alloc(4);
  header.writeUInt32BE(9 * 1024 * 1024);
  raw.socket.write(header);
  await raw.whenClosed();
  await a.logger.waitFor('frame of 9437184 bytes exceeds the maximum of 8388608 bytes', 'warn');

  // Small limits, real messages: mon.b's 2 KiB command is a client's until mon.a knows mon.b
  // as a monitor (it was given mon.b's address: a monmap member).
  const c = await startNode('mon.c', { frameBytesMax: 64 * 1024, clientFrameBytesMax: 1024 });
  const b = await startNode('mon.b');
  const big: Message = { type: 'mon.command', tid: 2, cmd: ['x'.repeat(2000)] };
  b.messenger.send('mon.c', command(1), c.addr);
  b.messenger.send('mon.c', big, c.addr);
  await c.logger.waitFor('exceeds the maximum of 1024 bytes', 'warn');
  await b.inbox.reset('mon.c');
  c.messenger.send('mon.b', command(3), b.addr);
  await b.inbox.count(1);
  b.messenger.send('mon.c', big, c.addr);
  await c.inbox.signal.until(() => tids(c.inbox.from('mon.b')).includes(2), 'the big command from a monitor');
});

test('unfinished frames from clients share clientBytesMax: the connection holding the most is closed', async () => {
  const a = await startNode('mon.a', { clientBytesMax: 64 * 1024, clientFrameBytesMax: 48 * 1024 });
  const held: RawPeer[] = [];
  for (const [index, bytes] of [20, 30, 25].entries()) {
    const raw = await RawPeer.connect(a.addr);
    await raw.handshake(`client.hold${index}`);
    const frame = encodeFrame(encodeValue({ type: 'mon.command', tid: 1, cmd: ['y'.repeat(40 * 1024)] }));
    raw.socket.write(frame.subarray(0, bytes * 1024));
    held.push(raw);
    if (index < 2) {
      await pollUntil(
        'the bytes to be buffered',
        5000,
        async () =>
          a.messenger.stats().clientBufferedBytes >= (index === 0 ? 20 : 50) * 1024 ? true : undefined,
        { intervalMs: 5 },
      );
    }
  }
  await (held[1] as RawPeer).whenClosed();
  const line = await a.logger.waitFor('receive budget exhausted', 'warn');
  assert.is(line.fields.peer, 'client.hold1');
  const stats = a.messenger.stats();
  assert.is(stats.budgetCloses, 1);
  assert.ok(stats.clientBufferedBytes <= 64 * 1024, `${stats.clientBufferedBytes} bytes buffered`);
  assert.not.ok((held[0] as RawPeer).closed || (held[2] as RawPeer).closed);
  // A small command, whole in one read, is served while the budget is nearly full.
  await assertStillServing(a);
  for (const raw of held) raw.socket.destroy();
  await pollUntil(
    'the budget to be released',
    5000,
    async () => (a.messenger.stats().clientBufferedBytes === 0 ? true : undefined),
    { intervalMs: 5 },
  );
});

test('connections from one address are capped below the total; refusals are logged once per interval', async () => {
  const a = await startNode('mon.a', { connectionsPerAddressMax: 3 });
  const connectFrom = (localAddress: string): Promise<RawPeer> => {
    const [host, port] = a.addr.split(':') as [string, string];
    const socket = net.connect({ host, port: Number(port), localAddress });
    return within(
      new Promise((resolve) => socket.once('connect', () => resolve(new RawPeer(socket)))),
      `connect from ${localAddress}`,
    );
  };
  const kept: RawPeer[] = [];
  for (let i = 0; i < 3; i++) kept.push(await connectFrom('127.0.0.1'));
  const refused: RawPeer[] = [];
  for (let i = 0; i < 5; i++) refused.push(await connectFrom('127.0.0.1'));
  for (const raw of refused) await raw.whenClosed();
  assert.is(a.messenger.stats().addressRefusals, 5);
  const lines = a.logger.matching('too many from one address', 'warn');
  assert.is(lines.length, 1);
  assert.is(lines[0]?.fields.addr, '127.0.0.1');
  // Another host is served, and the first host's own connections still work.
  const other = await connectFrom('127.0.0.2');
  assert.is(((await other.handshake('client.other')) as HelloReply).name, 'mon.a');
  assert.is(((await (kept[0] as RawPeer).handshake('client.kept')) as HelloReply).name, 'mon.a');
  assert.not.ok(kept.some((raw) => raw.closed));
  // Closing one frees its slot.
  (kept[1] as RawPeer).socket.destroy();
  await pollUntil(
    'a slot to free',
    5000,
    async () => (a.messenger.stats().connections === 3 ? true : undefined),
    {
      intervalMs: 5,
    },
  );
  const again = await connectFrom('127.0.0.1');
  assert.is(((await again.handshake('client.again')) as HelloReply).name, 'mon.a');
  for (const raw of [...kept, other, again]) raw.socket.destroy();
});

test('a client session that sends no message for clientIdleTimeoutMs is closed, keepalives or not; a monitor session is not', async () => {
  const timing = { keepaliveIntervalMs: 50, readTimeoutMs: 10_000, clientIdleTimeoutMs: 300 };
  const a = await startNode('mon.a', timing);
  const b = await startNode('mon.b', timing);
  // Two monitors that know each other (each was given the other's address: monmap members),
  // over one connection; both then go quiet.
  a.messenger.send('mon.b', command(1), b.addr);
  await b.inbox.count(1);
  b.messenger.send('mon.a', command(2), a.addr);
  await a.inbox.count(1);
  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('client.idle');
  raw.sendValue({ type: 'mon.ping', op: 'ping', stamp: 1 });
  const started = Date.now();
  const keepalives = setInterval(() => raw.sendKeepalive(), 20);
  try {
    await raw.whenClosed();
  } finally {
    clearInterval(keepalives);
  }
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 300, `closed after ${elapsed} ms`);
  assert.is(a.messenger.stats().idleTimeouts, 1);
  await a.logger.waitFor('closing idle client session', 'info');
  assert.equal(b.inbox.resets, []);
  assert.equal(a.inbox.resets, []);
  assert.is(a.messenger.stats().readTimeouts, 0);
});

test('a flood of invalid messages is logged as one line per connection per interval, with a count', async () => {
  const a = await startNode('mon.a');
  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('client.flood');
  const flood = 20_000;
  // Frames of one positive fixint (and its seal): a valid MessagePack value but no message.
  raw.sendPayloads(Array.from({ length: flood }, () => new Uint8Array([0x01])));
  raw.sendValue({ type: 'mon.ping', op: 'ping', stamp: 1 });
  await a.inbox.count(1);
  assert.is(a.messenger.stats().invalid, flood);
  assert.is(a.logger.matching('invalid message dropped', 'warn').length, 1);
  raw.socket.destroy();
  await a.logger.signal.until(
    () => a.logger.matching('invalid message dropped', 'warn').length === 2,
    'the count logged when the connection closes',
  );
  const lines = a.logger.matching('invalid message dropped', 'warn');
  assert.is(
    lines.reduce((sum, line) => sum + Number(line.fields.count), 0),
    flood,
  );
  assert.match(String(lines[1]?.fields.reason), /message is not an object/);
});

// --- authentication and sealed sessions (issue 13 §2) --------------------------------------------

/**
 * A TCP proxy that cuts both directions into frames — after the handshake, records — and forwards
 * them, re-framed, through a tamper function (numbered from 0 per direction: the dialler's are its
 * hello, its proof, its session record, then the records of its writes). What it forwarded is
 * recorded, to look for plaintext; how many it has read each way is counted, to wait on.
 */
class TamperProxy {
  readonly seen: Buffer[] = [];
  /** Client → monitor: the payloads to forward in place of record `index` (default: itself). */
  up: ((payload: Uint8Array, index: number) => Uint8Array[]) | undefined;
  /** Monitor → client, likewise. */
  down: ((payload: Uint8Array, index: number) => Uint8Array[]) | undefined;
  /** Frames and records read from each side so far. */
  readonly read = { up: 0, down: 0 };
  readonly signal = new Signal();
  readonly #sockets: net.Socket[] = [];
  readonly server = net.createServer((client) => {
    const [host, port] = this.target.split(':') as [string, string];
    const upstream = net.connect({ host, port: Number(port) });
    this.#sockets.push(client, upstream);
    this.#pipe(client, upstream, 'up');
    this.#pipe(upstream, client, 'down');
  });

  constructor(readonly target: string) {}

  /** Wait until `count` frames and records have been read from the `direction` side. */
  hasRead(direction: 'up' | 'down', count: number): Promise<void> {
    return this.signal.until(() => this.read[direction] >= count, `${count} records read ${direction}`);
  }

  #pipe(from: net.Socket, to: net.Socket, direction: 'up' | 'down'): void {
    const decoder = new FrameDecoder();
    from.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk).frames) {
        const index = this.read[direction]++;
        const payloads = this[direction]?.(frame.slice(), index) ?? [frame];
        for (const payload of payloads) {
          const bytes = encodeFrame(payload);
          this.seen.push(Buffer.from(bytes));
          to.write(bytes);
        }
      }
      this.signal.notify();
    });
    from.on('error', () => {});
    from.on('close', () => to.destroy());
  }

  /** Whether `text` crossed the proxy in the clear. */
  carried(text: string): boolean {
    return Buffer.concat(this.seen).includes(text);
  }

  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A client whose every message, with the session it came over, is recorded by `node`. */
function recordSessions(node: Node): { from: EntityName; entity: string | undefined }[] {
  const sessions: { from: EntityName; entity: string | undefined }[] = [];
  node.messenger.setHandlers({
    ...node.inbox.handlers,
    onMessage: (from, message, session) => {
      sessions.push({ from, entity: session?.entity });
      node.inbox.handlers.onMessage(from, message, session);
    },
  });
  return sessions;
}

test('monitors seal their sessions in secure mode, clients in crc; every message arrives with the entity its peer proved', async () => {
  const a = await startNode('mon.a');
  const b = await startNode('mon.b');
  const client = await startNode('client.c1', {}, false);
  const sessions = recordSessions(a);
  b.messenger.send('mon.a', command(1), a.addr);
  client.messenger.send('mon.a', command(2), a.addr);
  a.messenger.send('mon.a', command(3));
  await a.inbox.count(3);
  const connected = a.logger.matching('connected', 'info');
  const modeOf = (peer: string) => connected.find((line) => line.fields.peer === peer)?.fields.mode;
  assert.is(modeOf('mon.b'), 'secure');
  assert.is(modeOf('client.c1'), 'crc');
  assert.equal(
    sessions.sort((x, y) => x.from.localeCompare(y.from)),
    [
      { from: 'client.c1', entity: 'client.admin' },
      { from: 'mon.a', entity: monEntity },
      { from: 'mon.b', entity: monEntity },
    ],
  );
  assert.is(a.messenger.sessionEntity('mon.b'), monEntity);
  assert.is(a.messenger.sessionEntity('client.c1'), 'client.admin');
  assert.is(a.messenger.sessionEntity('client.never'), undefined);
  assert.is(b.messenger.sessionEntity('mon.a'), monEntity);
});

test('a wrong key or an unknown entity: the dialler is refused with EACCES naming the entity and nothing else', async () => {
  const a = await startNode('mon.a');
  const wrongKey = await startNode(
    'client.w1',
    {
      auth: { entity: 'client.admin', secret: new Uint8Array(randomBytes(16)) },
    },
    false,
  );
  const unreachable: string[] = [];
  wrongKey.messenger.setHandlers({
    ...wrongKey.inbox.handlers,
    onUnreachable: (_peer, reason) => {
      unreachable.push(reason);
      wrongKey.inbox.signal.notify();
    },
  });
  wrongKey.messenger.send('mon.a', command(1), a.addr);
  await wrongKey.inbox.signal.until(() => unreachable.length > 0, 'the refusal');
  assert.equal(unreachable, ['refused by mon.a: EACCES: authentication failed for client.admin']);
  const refusing = await a.logger.waitFor('refusing connection', 'warn');
  assert.is(refusing.fields.reason, 'EACCES: authentication failed for client.admin');

  // An entity that does not exist gets the same answer, and connect() rejects with it.
  const nobody = await startNode(
    'client.n1',
    {
      auth: { entity: 'client.nobody', secret: new Uint8Array(randomBytes(16)) },
    },
    false,
  );
  const error = await nobody.messenger.connect(a.addr).then(
    () => null,
    (e: Error) => e,
  );
  assert.is(error?.message, `refused by ${a.addr}: EACCES: authentication failed for client.nobody`);
  assert.is(a.messenger.stats().authFailures, 2);
  assert.equal(a.inbox.received, [], 'nothing delivered');

  // What a peer with a wrong key reads, byte for byte, never holds the fsid.
  const raw = await RawPeer.connect(a.addr);
  const reply = await raw.handshake('client.raw', { secret: new Uint8Array(randomBytes(16)) });
  assert.equal(Object.keys(reply as object).sort(), [
    'banner',
    'challenge',
    'mode',
    'name',
    'nonce',
    'protocolVersion',
  ]);
  assert.equal(raw.handshakeFrames[1], { refused: 'EACCES: authentication failed for client.admin' });
  await raw.whenClosed();
  assert.not.ok(Buffer.concat(raw.received).includes(fsid));

  // MonClient: EACCES at once (exit 13 in the CLI), not a timeout, whether it knew the monitor's
  // name (the refusal ends the attempt) or had to learn it (connect() is refused).
  for (const mon of [{ name: 'a', addr: a.addr }, { addr: a.addr }]) {
    const wrong = new MonClient({
      key: encodeCryptoKey(new Uint8Array(randomBytes(16)), 0),
      mons: [mon],
      timeoutMs: 5000,
    });
    try {
      const started = Date.now();
      const outcome = await wrong.command(['status']).then(
        (reply) => ({ r: reply.r, text: reply.rs }),
        (e: MonClientError) => ({ r: e.code === 'EACCES' ? -13 : -1, text: e.message }),
      );
      assert.equal(outcome, { r: -13, text: 'authentication failed for client.admin' }, JSON.stringify(mon));
      assert.ok(Date.now() - started < 2000, `refused after ${Date.now() - started} ms`);
    } finally {
      await wrong.close();
    }
  }
});

test('the fsid is told only to a proven peer, in the sealed session frame', async () => {
  const a = await startNode('mon.a');
  const raw = await RawPeer.connect(a.addr);
  const reply = await raw.handshake('client.raw');
  assert.not.ok('fsid' in (reply as object));
  assert.equal(raw.handshakeFrames[2], { fsid });
  // In crc mode the session frame is authenticated, not hidden; in secure mode nothing shows it.
  const secure = await RawPeer.connect(a.addr);
  await secure.handshake('client.raw2', { hello: { modes: ['secure'] } });
  assert.equal(secure.handshakeFrames[2], { fsid });
  assert.not.ok(Buffer.concat(secure.received).includes(fsid));
  raw.socket.destroy();
  secure.socket.destroy();
});

test('a name is taken only with a key that may carry it: mon.* with mon., client.* with a client key', async () => {
  const a = await startNode('mon.a');
  const cases: [EntityName, string, string][] = [
    ['mon.x', 'client.admin', 'EACCES: client.admin may not take the name mon.x'],
    ['client.x', monEntity, 'EACCES: mon. may not take the name client.x'],
  ];
  for (const [name, entity, reason] of cases) {
    const raw = await RawPeer.connect(a.addr);
    const reply = await raw.handshake(name, { entity });
    assert.equal(reply, { refused: reason });
    await raw.whenClosed();
  }
  assert.throws(
    () => new Messenger({ name: 'mon.x', fsid, auth: authFor('client.x') }),
    /client\.admin may not carry the name mon\.x/,
  );
  assert.throws(
    () => new Messenger({ name: 'client.x', fsid, auth: authFor('mon.x') }),
    /mon\. may not carry the name client\.x/,
  );
  assert.equal(a.inbox.received, []);
});

test("a forged session for a monitor's name replaces nothing: the real one keeps the name", async () => {
  const a = await startNode('mon.a');
  const b = await startNode('mon.b');
  b.messenger.send('mon.a', command(1), a.addr);
  await a.inbox.count(1);
  // The forger claims mon.b with a new nonce (a restart, were it real) and a key of its own.
  for (const nonce of [999, 1000]) {
    const forger = await RawPeer.connect(a.addr);
    const reply = await forger.handshake('mon.b', {
      secret: new Uint8Array(randomBytes(16)),
      hello: { nonce },
    });
    assert.equal(reply && (reply as { name?: string }).name, 'mon.a');
    assert.equal(forger.handshakeFrames[1], { refused: 'EACCES: authentication failed for mon.' });
    await forger.whenClosed();
  }
  assert.equal(a.inbox.resets, [], 'the real session was never replaced');
  assert.is(a.messenger.stats().replaced, 0);
  a.messenger.send('mon.b', command(2), b.addr);
  await b.inbox.count(1);
  assert.equal(tids(b.inbox.from('mon.a')), [2]);
  assert.is(a.messenger.stats().dials, 0, 'over the session mon.b opened');
});

test("a client session's name stays with its entity: another client key cannot take it over", async () => {
  const a = await startNode('mon.a');
  const admin = await RawPeer.connect(a.addr);
  await admin.handshake('client.same');
  // client.other has a key of its own, and may carry any client.* name — but not this one now.
  const other = await RawPeer.connect(a.addr);
  await other.handshake('client.same', { entity: 'client.other', hello: { nonce: 43 } });
  await other.whenClosed();
  await a.logger.waitFor('client.same is in use by a session of another entity', 'warn');
  a.messenger.send('client.same', command(1));
  await admin.frameCount(1);
  assert.equal(admin.frames, [command(1)]);
  assert.equal(a.inbox.resets, []);
  assert.is(a.messenger.sessionEntity('client.same'), 'client.admin');
  admin.socket.destroy();
});

test('a monitor that cannot prove the client key gets nothing from the client', async () => {
  const accepted: RawPeer[] = [];
  const signal = new Signal();
  const fake = net.createServer((socket) => {
    accepted.push(
      new RawPeer(socket, { accept: { name: 'mon.a', secret: new Uint8Array(randomBytes(16)) } }),
    );
    signal.notify();
  });
  const addr = await listenLoopback(fake);
  try {
    const client = await startNode('client.f1', {}, false);
    client.messenger.send(
      'mon.a',
      { type: 'mon.command', tid: 1, cmd: ['config-key', 'set', 'k', 'secret'] },
      addr,
    );
    const line = await client.logger.waitFor('did not prove the key of client.admin', 'warn');
    assert.is(line.fields.peer, 'mon.a');
    const x = accepted[0] as RawPeer;
    await x.whenClosed();
    assert.is(x.handshakeFrames.length, 2, 'the hello and the proof, nothing more');
    assert.equal(x.frames, []);
    assert.is(client.messenger.stats().authFailures, 1);
    const error = await client.messenger.connect(addr).then(
      () => null,
      (e: Error) => e,
    );
    assert.match(error?.message ?? '', new RegExp(`^${addr} did not prove the key of client\\.admin`));
  } finally {
    for (const peer of accepted) peer.socket.destroy();
    await new Promise((resolve) => fake.close(resolve));
  }
});

test('session modes: the acceptor picks the first of the dialler’s it allows; none in common, or a mode not offered, is refused', async () => {
  const a = await startNode('mon.a', { auth: { ...authFor('mon.a'), modes: ['secure'] } });
  const crcOnly = await startNode('client.m1', { auth: { ...authFor('client.m1'), modes: ['crc'] } }, false);
  const error = await crcOnly.messenger.connect(a.addr).then(
    () => null,
    (e: Error) => e,
  );
  assert.is(error?.message, `refused by ${a.addr}: no common session mode: offered crc, allowed secure`);
  const either = await startNode('client.m2', {}, false);
  either.messenger.send('mon.a', command(1), a.addr);
  await a.inbox.count(1);
  const line = a.logger.matching('connected', 'info').find((entry) => entry.fields.peer === 'client.m2');
  assert.is(line?.fields.mode, 'secure');

  // A reply choosing what was not offered (a downgrade, or an upgrade) ends the dial.
  const accepted: RawPeer[] = [];
  const rogue = net.createServer((socket) => {
    accepted.push(new RawPeer(socket, { accept: { name: 'mon.a', hello: { mode: 'secure' } } }));
  });
  const addr = await listenLoopback(rogue);
  try {
    const refused = await crcOnly.messenger.connect(addr).then(
      () => null,
      (e: Error) => e,
    );
    assert.is(refused?.message, `${addr} chose session mode secure, which was not offered`);
  } finally {
    for (const peer of accepted) peer.socket.destroy();
    await new Promise((resolve) => rogue.close(resolve));
  }
  assert.throws(
    () => new Messenger({ name: 'mon.q', fsid, auth: { ...authFor('mon.q'), modes: [] } }),
    /non-empty list/,
  );
});

test('every handshake frame is held to helloBytesMax, not only the first', async () => {
  const a = await startNode('mon.a');
  const raw = await RawPeer.connect(a.addr);
  raw.sendValue({
    banner: 'paxmon',
    protocolVersion,
    name: 'client.big',
    entity: 'client.admin',
    nonce: 1,
    challenge: new Uint8Array(challengeBytes),
    modes: ['crc'],
  });
  await raw.frameCount(1);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(helloBytesMax + 1);
  raw.socket.write(header);
  await raw.whenClosed();
  await a.logger.waitFor(
    `frame of ${helloBytesMax + 1} bytes exceeds the maximum of ${helloBytesMax} bytes`,
    'warn',
  );
});

/** A client that never sends a keepalive while a test runs: the record numbers are its writes'. */
function quietClient(name: EntityName): Promise<Node> {
  return startNode(name, { keepaliveIntervalMs: 60_000, readTimeoutMs: 120_000 }, false);
}

/**
 * Client → monitor records 0–2 are the handshake; 3 carries command 1, 4 command 2 alone, and 5
 * commands 3 and 4 together (sent in one turn: one write, one record).
 */
async function sendFourCommands(client: Node, proxy: TamperProxy, proxyAddr: string): Promise<void> {
  client.messenger.send('mon.a', command(1), proxyAddr);
  await proxy.hasRead('up', 4);
  client.messenger.send('mon.a', command(2), proxyAddr);
  await proxy.hasRead('up', 5);
  client.messenger.send('mon.a', command(3), proxyAddr);
  client.messenger.send('mon.a', command(4), proxyAddr);
}

test('the messages of one write cross as one record and arrive in order, whole', async () => {
  const a = await startNode('mon.a');
  const proxy = new TamperProxy(a.addr);
  const proxyAddr = await listenLoopback(proxy.server);
  try {
    const client = await quietClient('client.r1');
    await sendFourCommands(client, proxy, proxyAddr);
    await a.inbox.count(4);
    assert.equal(tids(a.inbox.from('client.r1')), [1, 2, 3, 4]);
    assert.is(proxy.read.up, 6, 'the handshake, then three writes: three records');
    assert.is(a.messenger.stats().frameAuthFailures, 0);
  } finally {
    await proxy.close();
  }
});

/** Flip one bit in the middle of `payload`. */
function flipped(payload: Uint8Array): Uint8Array {
  payload[payload.byteLength >> 1] = ((payload[payload.byteLength >> 1] as number) ^ 0x10) & 0xff;
  return payload;
}

for (const [kind, tamper, delivered] of [
  ['a flipped bit', (payload: Uint8Array, index: number) => [index === 4 ? flipped(payload) : payload], [1]],
  [
    'a flipped bit in a record of two messages',
    (payload: Uint8Array, index: number) => [index === 5 ? flipped(payload) : payload],
    [1, 2],
  ],
  [
    'a replayed record',
    (() => {
      let first: Uint8Array | undefined;
      return (payload: Uint8Array, index: number) => {
        if (index === 3) first = payload;
        return index === 4 ? [first as Uint8Array] : [payload];
      };
    })(),
    [1],
  ],
  [
    'reordered records',
    (() => {
      let held: Uint8Array | undefined;
      return (payload: Uint8Array, index: number) => {
        if (index === 4) {
          held = payload;
          return [];
        }
        return index === 5 ? [payload, held as Uint8Array] : [payload];
      };
    })(),
    [1],
  ],
  ['a dropped record', (payload: Uint8Array, index: number) => (index === 4 ? [] : [payload]), [1]],
  [
    'an injected record',
    (payload: Uint8Array, index: number) => (index === 4 ? [encodeMessage(command(99)), payload] : [payload]),
    [1],
  ],
  [
    'a record cut short',
    (payload: Uint8Array, index: number) =>
      index === 4 ? [payload.subarray(0, payload.byteLength - 1)] : [payload],
    [1],
  ],
  [
    'a record of two messages cut between them',
    (payload: Uint8Array, index: number) =>
      index === 5 ? [payload.subarray(0, payload.byteLength >> 1)] : [payload],
    [1, 2],
  ],
  [
    'a record extended',
    (payload: Uint8Array, index: number) =>
      index === 4 ? [Buffer.concat([payload, Buffer.of(0)])] : [payload],
    [1],
  ],
] as const) {
  test(`${kind} in an established stream closes that session, and nothing after it is delivered`, async () => {
    const a = await startNode('mon.a');
    const proxy = new TamperProxy(a.addr);
    const proxyAddr = await listenLoopback(proxy.server);
    try {
      const client = await quietClient('client.t1');
      proxy.up = tamper as (payload: Uint8Array, index: number) => Uint8Array[];
      await sendFourCommands(client, proxy, proxyAddr);
      await client.inbox.reset('mon.a');
      const line = await a.logger.waitFor('failed authentication', 'warn');
      assert.is(line.fields.peer, 'client.t1');
      assert.is(a.messenger.stats().frameAuthFailures, 1);
      assert.equal(tids(a.inbox.from('client.t1')), [...delivered]);
      assert.is(a.logger.matching('failed authentication', 'warn').length, 1, 'one line');
      await assertStillServing(a);
    } finally {
      await proxy.close();
    }
  });
}

test('a record altered on its way back to the client closes the session on the client side', async () => {
  const a = await startNode('mon.a');
  const proxy = new TamperProxy(a.addr);
  const proxyAddr = await listenLoopback(proxy.server);
  try {
    answerCommands(a, () => ({ r: 0, rs: 'ok' }));
    const client = await quietClient('client.t2');
    // Monitor → client: 0 the reply, 1 the proof, 2 the session record, 3 the first answer.
    proxy.down = (payload, index) => {
      if (index === 4) payload[0] = ((payload[0] as number) ^ 1) & 0xff;
      return [payload];
    };
    client.messenger.send('mon.a', command(1), proxyAddr);
    await client.inbox.count(1);
    client.messenger.send('mon.a', command(2), proxyAddr);
    await client.inbox.reset('mon.a');
    await client.logger.waitFor('failed authentication', 'warn');
    assert.equal(tids(client.inbox.from('mon.a')), [1]);
    assert.is(client.messenger.stats().frameAuthFailures, 1);
  } finally {
    await proxy.close();
  }
});

/**
 * A crc record sealed by hand, as transport/session-crypto.ts specifies it: `plaintext`, then
 * HMAC-SHA256(key, 8-byte big-endian seq ‖ plaintext) cut to 16 bytes; framed by its length.
 */
function crcRecord(key: Uint8Array, seq: number, plaintext: Uint8Array): Uint8Array {
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeBigUInt64BE(BigInt(seq));
  const tag = createHmac('sha256', key).update(seqBytes).update(plaintext).digest().subarray(0, sealTagBytes);
  return encodeFrame(Buffer.concat([plaintext, tag]));
}

test('a record that opens but does not hold whole frames closes the session, and none of its frames is delivered', async () => {
  const a = await startNode('mon.a');
  const ping = encodeFrame(encodeValue({ type: 'mon.ping', op: 'ping', stamp: 1 }));
  const header = (length: number): Buffer => {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(length);
    return bytes;
  };
  const cases: [string, Uint8Array][] = [
    ['no frame', new Uint8Array(0)],
    ['a frame, then part of a header', Buffer.concat([ping, header(5).subarray(0, 2)])],
    ['a frame, then a header and part of its payload', Buffer.concat([ping, header(10), Buffer.alloc(3)])],
    ['a frame larger than a record could hold', Buffer.concat([ping, header(9 * 1024 * 1024)])],
  ];
  for (const [index, [label, plaintext]] of cases.entries()) {
    const raw = await RawPeer.connect(a.addr);
    await raw.handshake(`client.split${index}`);
    const sealer = raw.sealer as RecordSealer;
    // Sealed right (a record of the session's crc key and its next sequence number): it opens.
    assert.is(sealer.mode, 'crc');
    raw.socket.write(crcRecord((raw.secrets as SessionSecrets).diallerToAcceptor.key, sealer.seq, plaintext));
    await raw.whenClosed();
    await a.logger.signal.until(
      () => a.logger.matching('framing error in record', 'warn').length > index,
      label,
    );
  }
  assert.is(a.messenger.stats().framingErrors, cases.length);
  assert.is(a.messenger.stats().frameAuthFailures, 0, 'every record opened');
  assert.equal(a.inbox.received, [], 'not even the whole frame before the break');
  // The same hand-made record, well formed, is read: the format above is the sealer's.
  const raw = await RawPeer.connect(a.addr);
  await raw.handshake('client.whole');
  const sealer = raw.sealer as RecordSealer;
  raw.socket.write(crcRecord((raw.secrets as SessionSecrets).diallerToAcceptor.key, sealer.seq, ping));
  await a.inbox.count(1);
  assert.equal(a.inbox.received, [
    { from: 'client.whole', message: { type: 'mon.ping', op: 'ping', stamp: 1 } },
  ]);
  raw.socket.destroy();
});

test('secure mode hides what it carries; crc carries it in the clear but authenticated', async () => {
  const a = await startNode('mon.a');
  for (const mode of ['secure', 'crc'] as const) {
    const proxy = new TamperProxy(a.addr);
    const proxyAddr = await listenLoopback(proxy.server);
    try {
      const client = await startNode(
        `client.${mode}`,
        { auth: { ...authFor('client.x'), modes: [mode] } },
        false,
      );
      const before = a.inbox.received.length;
      client.messenger.send(
        'mon.a',
        { type: 'mon.command', tid: 1, cmd: ['config-key', 'set', 'db/password', 'hunter2'] },
        proxyAddr,
      );
      await a.inbox.count(before + 1);
      assert.is(proxy.carried('hunter2'), mode === 'crc', mode);
      assert.is(proxy.carried(fsid), mode === 'crc', `${mode}: the fsid in the session frames`);
    } finally {
      await proxy.close();
    }
  }
});

test('nothing left open: all servers and sockets of this suite are closed', async () => {
  await Promise.all(open.map((messenger) => messenger.close()));
  open = [];
  // 'close' can be emitted before libuv runs the handle's close callback, which comes after the
  // loop's setImmediate phase: a few turns finish it.
  const tcpHandles = () => process.getActiveResourcesInfo().filter((kind) => kind.startsWith('TCP'));
  for (let turn = 0; turn < 10 && tcpHandles().length > 0; turn++)
    await new Promise((resolve) => setTimeout(resolve, 1));
  assert.equal(tcpHandles(), []);
});

test.run();
