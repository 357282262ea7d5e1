// The cryptography of a Messenger session (issue 13 §2), with no I/O: the keys and proofs a
// handshake derives from an entity's secret and the exact bytes of the two hellos, and the
// sealing of every record after it. node's crypto only — HKDF-SHA256, HMAC-SHA256, AES-256-GCM,
// timingSafeEqual, randomBytes — and no cryptography written here. The messenger owns the hello
// formats and the order of the frames (transport/messenger.ts); it calls these functions and
// nothing else that touches a key.
//
// What it follows in Ceph:
// - cephx's mutual authentication (src/auth/cephx/CephxProtocol.cc, CephxServiceHandler.cc): the
//   monitor sends a fresh server_challenge, the client answers with a fresh client_challenge and
//   cephx_calc_client_server_challenge() of the two under its secret, and the monitor proves itself
//   by sealing the session key with that same secret. Here both sides send a fresh 32-byte challenge
//   in their hello, and each proves the entity's secret with an HMAC over the whole transcript
//   under its own label: the dialler first, the acceptor only after the dialler's proof verified.
// - msgr2 (src/msg/async/ProtocolV2.cc): the AUTH_SIGNATURE frames, an HMAC-SHA256 of every byte
//   the other side sent before authentication, so a hello altered on the way (a downgraded mode
//   list, another name) fails the handshake; then every frame sealed. Ceph's secure mode
//   (crypto_onwire.cc, AES128GCM_OnWireTxHandler) seals with AES-128-GCM and a 96-bit nonce of a
//   fixed 32-bit part and a 64-bit counter that is incremented per frame and never sent.
//
// Where paxmon differs:
// - No tickets and no rotating service secrets: each session proves the entity's long-term secret
//   directly (cephx's first phase only), and the session keys are derived from that secret and
//   the two challenges by HKDF, per direction, instead of being chosen by the monitor.
// - Ceph seals each frame; paxmon seals each socket write, as TLS seals records: the frames
//   coalesced into one write, each still length-prefixed, are one record's plaintext, sealed once
//   under the next sequence number. A sealing costs a cipher or HMAC object (~3 µs in node 20),
//   and monitors write many small frames at once: per frame, the seals cost more than the rest of
//   the messenger together. A receiver opens a record whole before it reads any frame in it.
// - 'crc' mode authenticates every record (an HMAC-SHA256 tag, cut to 16 bytes, over the implicit
//   sequence number and the plaintext) without encrypting it. Ceph's crc mode is a crc32c, which
//   catches accidents, not attackers; issue 13 asks every session to resist an active attacker.
// - 'secure' mode is AES-256-GCM (Ceph: AES-128-GCM); its IV is a 4-byte salt from HKDF and the
//   64-bit record counter.
// - The sequence number is 64 bits per direction from 0 and a session ends long before it could
//   wrap (2^53 records: the messenger never gets there), so no nonce ever repeats under a key — the
//   flaw Ceph fixed in 2020 (its 32-bit counter wrapped).
// - As in Ceph, every monitor holds the one `mon.` secret, so a monitor's *name* is not proven
//   individually, and whoever holds a client's secret could play the monitor to that client (the
//   acceptor proves the same secret the dialler does).
import { Buffer } from 'node:buffer';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { frameBytesLimit, frameHeaderBytes } from './frame.ts';

/**
 * 'secure' encrypts and authenticates every record (AES-256-GCM); 'crc' authenticates every record
 * (HMAC-SHA256) without encrypting it. Ceph's ms_cluster_mode / ms_client_mode values.
 */
export type SessionMode = 'secure' | 'crc';

export const sessionModes: readonly SessionMode[] = ['secure', 'crc'];
/** Bytes of each side's fresh random challenge. */
export const challengeBytes = 32;
/** Bytes of a handshake proof (one HMAC-SHA256). */
export const proofBytes = 32;
/** Bytes sealing adds to a record's plaintext: the GCM tag, or the truncated HMAC. */
export const sealTagBytes = 16;
/**
 * Bytes a record adds around the payload of a frame sealed alone: the frame's length prefix inside
 * and the tag (the record's own length prefix is the framing's, as a frame's is).
 */
export const recordOverheadBytes = frameHeaderBytes + sealTagBytes;

const keyBytes = 32;
const ivSaltBytes = 4;
const ivBytes = 12;
const seqBytes = 8;
const labels = {
  proofKey: 'paxmon v1 proof key',
  diallerProof: 'paxmon v1 dialler proof',
  acceptorProof: 'paxmon v1 acceptor proof',
  diallerToAcceptor: 'paxmon v1 dialler to acceptor',
  acceptorToDialler: 'paxmon v1 acceptor to dialler',
} as const;

/** A fresh challenge: 32 bytes from the system's CSPRNG. */
export function newChallenge(): Uint8Array {
  return new Uint8Array(randomBytes(challengeBytes));
}

/** The key and IV salt of one direction of one session. */
export interface DirectionKey {
  readonly key: Buffer;
  readonly ivSalt: Buffer;
}

/** The direction's key as a KeyObject, made once: createHmac and createCipheriv set up faster from one. */
function keyObject(direction: DirectionKey): KeyObject {
  return createSecretKey(direction.key);
}

/** What one handshake derives: both proofs and a key per direction. */
export interface SessionSecrets {
  /** What the dialler sends to prove the secret. */
  readonly diallerProof: Buffer;
  /** What the acceptor sends back, once the dialler's proof verified. */
  readonly acceptorProof: Buffer;
  readonly diallerToAcceptor: DirectionKey;
  readonly acceptorToDialler: DirectionKey;
}

export interface Transcript {
  /** The exact payload bytes of the dialler's hello frame, as sent and as received. */
  diallerHello: Uint8Array;
  /** The exact payload bytes of the acceptor's hello frame. */
  acceptorHello: Uint8Array;
  /** The two challenges (also inside the hellos): the HKDF salt. */
  diallerChallenge: Uint8Array;
  acceptorChallenge: Uint8Array;
}

/**
 * Derive a session from an entity's secret and the handshake so far. Both sides compute the same
 * thing from the same bytes; any difference — another secret, a hello altered by a byte, another
 * challenge (a recorded handshake replayed to a side that drew a new one) — gives other proofs and
 * other keys. HKDF(secret, salt = both challenges, info = label || SHA-256(transcript)), the
 * transcript being both hellos, each prefixed with its length.
 */
export function deriveSession(secret: Uint8Array, transcript: Transcript): SessionSecrets {
  if (transcript.diallerChallenge.byteLength !== challengeBytes)
    throw new RangeError('bad dialler challenge');
  if (transcript.acceptorChallenge.byteLength !== challengeBytes)
    throw new RangeError('bad acceptor challenge');
  const hash = createHash('sha256');
  for (const hello of [transcript.diallerHello, transcript.acceptorHello]) {
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(hello.byteLength, 0);
    hash.update(length);
    hash.update(hello);
  }
  const transcriptHash = hash.digest();
  const salt = Buffer.concat([transcript.diallerChallenge, transcript.acceptorChallenge]);
  const expand = (label: string, bytes: number): Buffer =>
    Buffer.from(hkdfSync('sha256', secret, salt, Buffer.concat([Buffer.from(label), transcriptHash]), bytes));
  const proofKey = expand(labels.proofKey, keyBytes);
  const prove = (label: string): Buffer =>
    createHmac('sha256', proofKey).update(label).update(transcriptHash).digest();
  const direction = (label: string): DirectionKey => {
    const material = expand(label, keyBytes + ivSaltBytes);
    return { key: material.subarray(0, keyBytes), ivSalt: material.subarray(keyBytes) };
  };
  return {
    diallerProof: prove(labels.diallerProof),
    acceptorProof: prove(labels.acceptorProof),
    diallerToAcceptor: direction(labels.diallerToAcceptor),
    acceptorToDialler: direction(labels.acceptorToDialler),
  };
}

/**
 * The acceptor's check of a dialler's proof: derive the session from the secret of the entity the
 * dialler claims and the handshake so far, and return it if `received` is the dialler's proof;
 * null if it is not (a wrong secret, or an entity with no secret checked against a random one).
 */
export function authenticate(
  secret: Uint8Array,
  transcript: Transcript,
  received: unknown,
): SessionSecrets | null {
  const secrets = deriveSession(secret, transcript);
  return proofMatches(secrets.diallerProof, received) ? secrets : null;
}

/** Whether `received` is exactly the expected proof, compared in constant time. */
export function proofMatches(expected: Uint8Array, received: unknown): boolean {
  return (
    received instanceof Uint8Array &&
    received.byteLength === expected.byteLength &&
    timingSafeEqual(received, expected)
  );
}

/** The 8-byte big-endian sequence number (a JavaScript number: exact up to 2^53). */
function writeSeq(target: Buffer, at: number, seq: number): void {
  target.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), at);
  target.writeUInt32BE(seq >>> 0, at + 4);
}

/** One direction's sequence counter; a session that reached 2^53 records must end (it never does). */
function nextSeq(seq: number): number {
  if (seq >= Number.MAX_SAFE_INTEGER) throw new RangeError('session sequence number exhausted');
  return seq + 1;
}

/**
 * Seals what one side sends, one record per socket write (TLS's records): the frames of the write,
 * each still length-prefixed, are the record's plaintext, sealed under the direction's key and the
 * next sequence number, which is never sent — the receiver counts too. On the wire a record is
 * framed like a frame: a 4-byte length, then the sealed plaintext and its 16-byte tag. One
 * createHmac or createCipheriv per record, however many frames it holds.
 */
export class RecordSealer {
  #seq = 0;
  readonly #seqBytes = Buffer.alloc(seqBytes);
  readonly #iv: Buffer;
  readonly #key: KeyObject;

  constructor(
    readonly mode: SessionMode,
    direction: DirectionKey,
  ) {
    this.#iv = Buffer.alloc(ivBytes);
    direction.ivSalt.copy(this.#iv, 0);
    this.#key = keyObject(direction);
  }

  /** Records sealed so far (the next record's sequence number). */
  get seq(): number {
    return this.#seq;
  }

  /**
   * One record holding `payloads` as frames, in order, ready for one socket write. At least one
   * payload (a keepalive is a record of one empty frame); the caller bounds how many bytes it
   * coalesces (the messenger: writeBatchBytesMax).
   */
  seal(payloads: readonly Uint8Array[]): Buffer {
    if (payloads.length === 0) throw new RangeError('a record holds at least one frame');
    let plaintextBytes = 0;
    for (const payload of payloads) plaintextBytes += frameHeaderBytes + payload.byteLength;
    const sealedBytes = plaintextBytes + sealTagBytes;
    if (sealedBytes > frameBytesLimit)
      throw new RangeError(`record of ${sealedBytes} bytes cannot be framed`);
    const out = Buffer.allocUnsafe(frameHeaderBytes + sealedBytes);
    out.writeUInt32BE(sealedBytes, 0);
    let at = frameHeaderBytes;
    for (const payload of payloads) {
      out.writeUInt32BE(payload.byteLength, at);
      out.set(payload, at + frameHeaderBytes);
      at += frameHeaderBytes + payload.byteLength;
    }
    const plaintext = out.subarray(frameHeaderBytes, at);
    const seq = this.#seq;
    this.#seq = nextSeq(seq);
    if (this.mode === 'crc') {
      writeSeq(this.#seqBytes, 0, seq);
      const tag = createHmac('sha256', this.#key).update(this.#seqBytes).update(plaintext).digest();
      tag.copy(out, at, 0, sealTagBytes);
      return out;
    }
    writeSeq(this.#iv, ivSaltBytes, seq);
    const cipher = createCipheriv('aes-256-gcm', this.#key, this.#iv, { authTagLength: sealTagBytes });
    // node has no in-place update: the ciphertext is copied back over the plaintext (a memcpy, far
    // cheaper than the encryption itself).
    const encrypted = cipher.update(plaintext);
    encrypted.copy(out, frameHeaderBytes);
    const rest = cipher.final();
    rest.copy(out, frameHeaderBytes + encrypted.byteLength);
    cipher.getAuthTag().copy(out, at);
    return out;
  }

  /** One record of one frame (the session frame, a keepalive). */
  sealOne(payload: Uint8Array): Buffer {
    return this.seal([payload]);
  }
}

/**
 * Opens what one side receives, record by record in order, with the sequence number it expects
 * next: a record that was altered, cut, extended, replayed, reordered, sealed for the other
 * direction or another session, or injected, fails to open (null), and the caller ends the
 * session. After one failure every later record fails too. What opens is the plaintext the peer
 * sealed, frames and all: splitting it (frame.ts splitFrames) is the caller's.
 */
export class RecordOpener {
  #seq = 0;
  #failed = false;
  readonly #seqBytes = Buffer.alloc(seqBytes);
  readonly #iv: Buffer;
  readonly #key: KeyObject;

  constructor(
    readonly mode: SessionMode,
    direction: DirectionKey,
  ) {
    this.#iv = Buffer.alloc(ivBytes);
    direction.ivSalt.copy(this.#iv, 0);
    this.#key = keyObject(direction);
  }

  /** Records opened so far (the sequence number the next record must carry). */
  get seq(): number {
    return this.#seq;
  }

  /**
   * The plaintext of one sealed record (its length prefix already taken off), or null. In crc
   * mode a view into `sealed`; in secure mode a new buffer.
   */
  open(sealed: Uint8Array): Uint8Array | null {
    if (this.#failed || sealed.byteLength < sealTagBytes) return this.#fail();
    const plaintextBytes = sealed.byteLength - sealTagBytes;
    const body = sealed.subarray(0, plaintextBytes);
    const tag = sealed.subarray(plaintextBytes);
    const seq = this.#seq;
    if (this.mode === 'crc') {
      writeSeq(this.#seqBytes, 0, seq);
      const expected = createHmac('sha256', this.#key).update(this.#seqBytes).update(body).digest();
      if (!timingSafeEqual(tag, expected.subarray(0, sealTagBytes))) return this.#fail();
      this.#seq = nextSeq(seq);
      return body;
    }
    writeSeq(this.#iv, ivSaltBytes, seq);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, this.#iv, {
      authTagLength: sealTagBytes,
    });
    decipher.setAuthTag(tag);
    let plaintext: Buffer;
    try {
      const head = decipher.update(body);
      const rest = decipher.final();
      plaintext = rest.byteLength === 0 ? head : Buffer.concat([head, rest]);
    } catch {
      return this.#fail();
    }
    this.#seq = nextSeq(seq);
    return plaintext;
  }

  #fail(): null {
    this.#failed = true;
    return null;
  }
}

/** The sealer and opener of one side of a session. */
export function sessionChannels(
  secrets: SessionSecrets,
  mode: SessionMode,
  role: 'dialler' | 'acceptor',
): { sealer: RecordSealer; opener: RecordOpener } {
  const outgoing = role === 'dialler' ? secrets.diallerToAcceptor : secrets.acceptorToDialler;
  const incoming = role === 'dialler' ? secrets.acceptorToDialler : secrets.diallerToAcceptor;
  return { sealer: new RecordSealer(mode, outgoing), opener: new RecordOpener(mode, incoming) };
}
