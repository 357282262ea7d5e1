// Framing on a byte stream: each frame is a 4-byte big-endian payload length, then the payload;
// an empty payload is a keepalive (isKeepalive), every other payload one MessagePack value.
// After the messenger's handshake the stream carries sealed records instead (TLS's records;
// transport/session-crypto.ts): each record is framed like a frame — a 4-byte length, then its
// sealed bytes — and its plaintext, once opened, is one or more whole frames (checkFrames, framesOf), the
// frames the sender coalesced into one socket write. What is said here of a payload holds for a
// frame taken out of an opened record.
// The decoder is where untrusted bytes first meet paxmon, so it never throws, rejects an
// oversized length prefix the moment it is read (a 4 GiB prefix costs nothing), and never holds
// more than one frame's (or record's) header and payload, received so far, in memory.
import { Buffer } from 'node:buffer';

export const frameHeaderBytes = 4;
/** Default maximum payload of one frame: larger than any sync chunk or Paxos value batch paxmon sends. */
export const frameBytesMaxDefault = 64 * 1024 * 1024;
/** The largest payload a 4-byte length prefix can describe. */
export const frameBytesLimit = 0xffff_ffff;

/** Prefix a payload with its length. Throws RangeError beyond what 4 bytes can describe (a caller bug). */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  if (payload.byteLength > frameBytesLimit) {
    throw new RangeError(`frame payload of ${payload.byteLength} bytes exceeds ${frameBytesLimit}`);
  }
  const frame = Buffer.allocUnsafe(frameHeaderBytes + payload.byteLength);
  frame.writeUInt32BE(payload.byteLength, 0);
  frame.set(payload, frameHeaderBytes);
  return frame;
}

/**
 * The keepalive: a frame with an empty payload (Ceph's keepalive2, reduced to its use here). No
 * MessagePack value is empty, so it can never be mistaken for a message; it carries nothing but
 * the news that its sender is alive and the path between us open. The messenger sends it on a
 * connection that has been idle, in a sealed record like every frame after the handshake (a
 * record of one empty frame: transport/session-crypto.ts), and accepts it only from an opened
 * record.
 */
export function isKeepalive(payload: Uint8Array): boolean {
  return payload.byteLength === 0;
}

/** The keepalive frame unsealed, encoded once (its bytes are never written over). */
export const keepaliveFrame: Uint8Array = encodeFrame(new Uint8Array(0));

/**
 * Null when `bytes` — an opened record's plaintext — are one or more whole frames, each payload
 * within frameBytesMax; else why not (no frame at all, a frame over the limit, a length prefix or
 * payload cut short by the end of the bytes). It reads the length prefixes only, so it costs no
 * allocation however many frames a record holds, and a record is refused whole before any of its
 * frames is read. A record was sealed by the peer itself: such an error is the peer's bug, never
 * the network's, and the session ends. Never throws.
 */
export function checkFrames(bytes: Uint8Array, frameBytesMax: number): string | null {
  const end = bytes.byteLength;
  if (end === 0) return 'a record with no frame';
  let count = 0;
  for (let at = 0; at < end; count++) {
    if (end - at < frameHeaderBytes) return `a record ends inside frame ${count}'s length prefix`;
    const length = readLength(bytes, at);
    at += frameHeaderBytes;
    if (length > frameBytesMax)
      return `frame of ${length} bytes in a record exceeds the maximum of ${frameBytesMax} bytes`;
    if (length > end - at) return `a record ends inside frame ${count} (${end - at} of ${length} bytes)`;
    at += length;
  }
  return null;
}

/** Every keepalive read out of a record: zero bytes, nothing to write over, so one will do. */
const emptyPayload = new Uint8Array(0);

/**
 * The payloads of the frames in `bytes` (which checkFrames accepted), in order, one at a time:
 * plain Uint8Array views, no copy (decodeValue takes a plain view as it is, where a Buffer view
 * would cost it another). Lazy, so a record of a million keepalives is never a million views at
 * once. On bytes checkFrames would refuse it stops where they stop being whole frames.
 */
export function* framesOf(bytes: Uint8Array): Generator<Uint8Array, void, undefined> {
  const end = bytes.byteLength;
  const buffer = bytes.buffer;
  const base = bytes.byteOffset;
  let at = 0;
  while (end - at >= frameHeaderBytes) {
    const length = readLength(bytes, at);
    at += frameHeaderBytes;
    if (length > end - at) return;
    yield length === 0 ? emptyPayload : new Uint8Array(buffer, base + at, length);
    at += length;
  }
}

/** The frames of a record's plaintext (splitFrames), or why it holds none that may be read. */
export type FrameSplit = { frames: Uint8Array[] } | { error: string };

/**
 * checkFrames, then every frame of framesOf in one array: for a record known to be small (the
 * session record) and for specs. A record read from a session goes through framesOf, one frame at
 * a time.
 */
export function splitFrames(bytes: Uint8Array, frameBytesMax: number): FrameSplit {
  const error = checkFrames(bytes, frameBytesMax);
  return error === null ? { frames: [...framesOf(bytes)] } : { error };
}

export interface FrameDecoderOptions {
  /** Largest payload accepted, in bytes (default 64 MiB). */
  frameBytesMax?: number;
  /**
   * Largest payload accepted for the first `firstFrames` frames. The messenger's first frames are
   * the handshake, sent before the peer is authenticated: a stranger must not get to make us
   * buffer 64 MiB (default: frameBytesMax).
   */
  firstFrameBytesMax?: number;
  /** How many frames at the start of the stream firstFrameBytesMax applies to (default 1). */
  firstFrames?: number;
}

export interface FramePushResult {
  /** Complete payloads in arrival order (views into the pushed chunk where a frame lay whole in it). */
  frames: Uint8Array[];
  /** Set once the stream is broken; every later push returns it again with no frames. */
  error?: string;
}

export class FrameDecoder {
  #frameBytesMax: number;
  readonly firstFrameBytesMax: number;
  readonly firstFrames: number;
  readonly #header = new Uint8Array(frameHeaderBytes);
  #headerFilled = 0;
  /** Payload length of the frame being read, or -1 while reading a header. */
  #bodyBytes = -1;
  /** Copies of the partial payload received so far (copies, so we never pin a caller's larger chunk). */
  #bodyPieces: Uint8Array[] = [];
  #bodyFilled = 0;
  #framesStarted = 0;
  #error: string | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    this.#frameBytesMax = checkedLimit('frameBytesMax', options.frameBytesMax ?? frameBytesMaxDefault);
    this.firstFrameBytesMax = checkedLimit(
      'firstFrameBytesMax',
      options.firstFrameBytesMax ?? this.frameBytesMax,
    );
    const firstFrames = options.firstFrames ?? 1;
    if (!Number.isSafeInteger(firstFrames) || firstFrames < 0) {
      throw new RangeError(`firstFrames must be a non-negative integer, got ${firstFrames}`);
    }
    this.firstFrames = firstFrames;
  }

  /** Largest payload accepted for every frame after the first `firstFrames`. */
  get frameBytesMax(): number {
    return this.#frameBytesMax;
  }

  /**
   * Change the limit for frames whose header is read from now on (the messenger raises it once a
   * session is known to be with a monitor; a frame already being read keeps the limit it had).
   */
  set frameBytesMax(value: number) {
    this.#frameBytesMax = checkedLimit('frameBytesMax', value);
  }

  /** Bytes taken in for a frame not yet returned: never more than frameHeaderBytes + frameBytesMax. */
  get bufferedBytes(): number {
    return this.#bodyBytes < 0 ? this.#headerFilled : frameHeaderBytes + this.#bodyFilled;
  }

  get error(): string | undefined {
    return this.#error;
  }

  push(chunk: Uint8Array): FramePushResult {
    const frames: Uint8Array[] = [];
    if (this.#error !== undefined) return { frames, error: this.#error };
    let offset = 0;
    const end = chunk.byteLength;
    while (offset < end) {
      if (this.#bodyBytes < 0) {
        let length: number;
        if (this.#headerFilled === 0 && end - offset >= frameHeaderBytes) {
          // Fast path: the whole header is in this chunk.
          length = readLength(chunk, offset);
          offset += frameHeaderBytes;
        } else {
          const take = Math.min(frameHeaderBytes - this.#headerFilled, end - offset);
          this.#header.set(chunk.subarray(offset, offset + take), this.#headerFilled);
          this.#headerFilled += take;
          offset += take;
          if (this.#headerFilled < frameHeaderBytes) break;
          length = readLength(this.#header, 0);
          this.#headerFilled = 0;
        }
        const limit = this.#framesStarted < this.firstFrames ? this.firstFrameBytesMax : this.frameBytesMax;
        if (length > limit) {
          return {
            frames,
            error: this.#fail(`frame of ${length} bytes exceeds the maximum of ${limit} bytes`),
          };
        }
        this.#framesStarted++;
        this.#bodyBytes = length;
        this.#bodyFilled = 0;
      }

      const needed = this.#bodyBytes - this.#bodyFilled;
      const available = end - offset;
      if (this.#bodyFilled === 0 && available >= needed) {
        // Fast path: the whole payload is in this chunk; hand out a view, no copy.
        frames.push(chunk.subarray(offset, offset + needed));
        offset += needed;
        this.#bodyBytes = -1;
        continue;
      }
      const take = Math.min(needed, available);
      // Uint8Array.prototype.slice copies even for a Buffer, whose own slice() is a view.
      this.#bodyPieces.push(Uint8Array.prototype.slice.call(chunk, offset, offset + take));
      this.#bodyFilled += take;
      offset += take;
      if (this.#bodyFilled === this.#bodyBytes) {
        frames.push(this.#joinBody());
        this.#bodyBytes = -1;
      }
    }
    return { frames };
  }

  #joinBody(): Uint8Array {
    const pieces = this.#bodyPieces;
    this.#bodyPieces = [];
    this.#bodyFilled = 0;
    if (pieces.length === 1) return pieces[0] as Uint8Array;
    const body = new Uint8Array(this.#bodyBytes);
    let at = 0;
    for (const piece of pieces) {
      body.set(piece, at);
      at += piece.byteLength;
    }
    return body;
  }

  #fail(reason: string): string {
    this.#error = reason;
    // Release whatever was buffered: the stream is dead and its bytes are no use.
    this.#bodyPieces = [];
    this.#bodyFilled = 0;
    this.#headerFilled = 0;
    this.#bodyBytes = -1;
    return reason;
  }
}

/** The big-endian uint32 at `at` (multiplying the top byte keeps it unsigned). */
function readLength(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at] as number) * 0x100_0000 +
    (((bytes[at + 1] as number) << 16) | ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number))
  );
}

function checkedLimit(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > frameBytesLimit) {
    throw new RangeError(`${name} must be an integer in [0, ${frameBytesLimit}], got ${value}`);
  }
  return value;
}
