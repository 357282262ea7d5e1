// Message ⇄ bytes with MessagePack. Every peer decodes with no state shared with the sender
// (no msgpackr records or shared structures), so a frame means the same thing to any monitor,
// to a restarted one, and to the simulator's in-memory network. Decoding never throws: bytes
// from the network are input, and bad input is a reason string (TigerBeetle's invalid_header()).
import { type Options, Packr } from 'msgpackr';
import { limits, type Message, validate } from './messages.ts';

/** How much of a decoder's error text reaches a log line; msgpackr may quote the data it read. */
const errorTextBytesMax = 200;

// `skipValues` is a msgpackr option its type declarations omit, hence the widened type.
const packrOptions: Options & { skipValues: unknown[] } = {
  // Standard MessagePack maps, never msgpackr's record extension: records need both ends to
  // share a structure table, which a restarted peer or a new connection would not have.
  useRecords: false,
  mapsAsObjects: true,
  // Binary fields (Paxos values, sync chunks) are copied out of the frame: a long-lived value must
  // not pin a whole receive buffer, and a copy from a plain Uint8Array view decodes as a plain
  // Uint8Array (not a Node Buffer), so decoded messages deep-equal what was sent.
  copyBuffers: true,
  // The structured-clone extensions (object ids and pointers) could build cyclic values from
  // peer-supplied bytes; no paxmon message needs them.
  structuredClone: false,
  // An optional field set to undefined is absent on the wire, as the schemas expect.
  skipValues: [undefined],
  // useFloat32 stays unset: non-integers travel as float64, so scores and stamps round-trip exactly.
};
const packr = new Packr(packrOptions);

/** Encode a message. Throws only on a value MessagePack cannot represent (a caller bug). */
export function encodeMessage(message: Message): Uint8Array {
  // Packr returns a view into a slab it shares between calls. msgpackr never writes over it, so the
  // view stays valid, but it keeps the whole slab (as large as the largest message encoded) alive:
  // copy it before holding on to it (the messenger copies into a frame at once).
  return packr.pack(message);
}

export type DecodeResult =
  | { message: Message }
  | {
      error: string;
      /**
       * `undecodable`: the bytes are not one MessagePack value — the peer or the framing is broken,
       * so the connection is closed. `invalid`: a well-formed value that fails the catalogue's
       * schema — logged and dropped, the connection stays (DESIGN.md §3).
       */
      kind: 'undecodable' | 'invalid';
    };

/**
 * What one frame may cost to decode, beyond its bytes. A MessagePack byte can stand for a whole
 * object (0x80 is an empty map), so 8 MiB of them decode to 8 million JavaScript objects — over
 * half a GiB of heap from one frame — and msgpackr sets no depth limit of its own.
 */
export interface DecodeBounds {
  /** Containers (maps, arrays) nested inside one another, the outermost counting 1. */
  depthMax: number;
  /** Values of every kind, map keys included, the outermost value counting 1. */
  valuesMax: number;
}

/**
 * Sized from the catalogue: the deepest message (mon.probe → monmap → mons → a monitor) nests 4
 * containers; the largest (mon.paxos with paxosValuesMax values of 2 fields) holds ~50,000 values.
 * At the bound, a frame of empty maps costs the heap a few tens of MiB, not gigabytes.
 */
export const decodeBoundsDefault: DecodeBounds = {
  depthMax: limits.decodeDepthMax,
  valuesMax: limits.decodeValuesMax,
};

/**
 * Walk one MessagePack value's encoding without building it, counting values and nesting: null
 * when decoding it stays within `bounds`, else the reason. O(bytes) time, O(depthMax) memory,
 * never throws. Extension types are refused (paxmon sends none; msgpackr's built-in ones decode
 * nested values inside their payload, out of this walk's sight), except the 3-byte fixext the
 * encoder uses for `undefined`. Truncation and trailing bytes are left to the decoder.
 */
export function scanValue(bytes: Uint8Array, bounds: DecodeBounds = decodeBoundsDefault): string | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  // remaining[d]: values still to read inside the container open at depth d + 1.
  const remaining: number[] = [];
  let values = 0;
  let at = 0;
  const need = (count: number): boolean => at + count <= end;
  do {
    if (!need(1)) return null; // truncated: msgpackr reports it
    const byte = bytes[at] as number;
    at += 1;
    values += 1;
    if (values > bounds.valuesMax) return `more than ${bounds.valuesMax} values in one frame`;
    let children = 0;
    let container = false;
    if (byte <= 0x7f || byte >= 0xe0 || (byte >= 0xc0 && byte <= 0xc3)) {
      // fixint, negative fixint, nil, (never used), false, true
      if (byte === 0xc1) return 'reserved MessagePack byte 0xc1';
    } else if (byte <= 0x8f) {
      container = true;
      children = 2 * (byte & 0x0f);
    } else if (byte <= 0x9f) {
      container = true;
      children = byte & 0x0f;
    } else if (byte <= 0xbf) at += byte & 0x1f;
    else {
      switch (byte) {
        case 0xc4: // bin 8, str 8
        case 0xd9:
          if (!need(1)) return null;
          at += 1 + view.getUint8(at);
          break;
        case 0xc5: // bin 16, str 16
        case 0xda:
          if (!need(2)) return null;
          at += 2 + view.getUint16(at);
          break;
        case 0xc6: // bin 32, str 32
        case 0xdb:
          if (!need(4)) return null;
          at += 4 + view.getUint32(at);
          break;
        case 0xcc:
        case 0xd0:
          at += 1;
          break;
        case 0xcd:
        case 0xd1:
          at += 2;
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          at += 4;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          at += 8;
          break;
        case 0xd4:
          if (!need(2) || bytes[at] !== 0 || bytes[at + 1] !== 0)
            return 'MessagePack extension types are not accepted';
          at += 2;
          break;
        case 0xdc:
          if (!need(2)) return null;
          container = true;
          children = view.getUint16(at);
          at += 2;
          break;
        case 0xdd:
          if (!need(4)) return null;
          container = true;
          children = view.getUint32(at);
          at += 4;
          break;
        case 0xde:
          if (!need(2)) return null;
          container = true;
          children = 2 * view.getUint16(at);
          at += 2;
          break;
        case 0xdf:
          if (!need(4)) return null;
          container = true;
          children = 2 * view.getUint32(at);
          at += 4;
          break;
        default: // 0xc7–0xc9 ext 8/16/32, 0xd5–0xd8 fixext 2–16
          return 'MessagePack extension types are not accepted';
      }
    }
    // This value is one of its container's children.
    if (remaining.length > 0)
      remaining[remaining.length - 1] = (remaining[remaining.length - 1] as number) - 1;
    if (container) {
      // A count beyond the budget is refused from the container's header, before any of it is read.
      if (values + children > bounds.valuesMax) return `more than ${bounds.valuesMax} values in one frame`;
      if (remaining.length + 1 > bounds.depthMax) return `containers nested deeper than ${bounds.depthMax}`;
      if (children > 0) remaining.push(children);
    }
    while (remaining.length > 0 && remaining[remaining.length - 1] === 0) remaining.pop();
  } while (remaining.length > 0);
  return null;
}

/** Decode exactly one MessagePack value from `bytes`, or a reason. Never throws. */
export function decodeValue(
  bytes: Uint8Array,
  bounds: DecodeBounds = decodeBoundsDefault,
): { value: unknown } | { error: string } {
  if (bytes.byteLength === 0) return { error: 'empty payload' };
  // Bound the cost before paying it: msgpackr would build every object first.
  const tooCostly = scanValue(bytes, bounds);
  if (tooCostly !== null) return { error: `undecodable payload: ${tooCostly}` };
  // A plain Uint8Array view (not a Buffer) makes the copied binary fields plain Uint8Arrays too.
  const view =
    bytes.constructor === Uint8Array
      ? bytes
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let value: unknown;
  let end = -1;
  try {
    // unpackMultiple stopped after the first value tells us where it ended, so trailing bytes are
    // detected here instead of by msgpackr's own check, which serialises the decoded value as JSON
    // for its error message (costly on a large garbage frame).
    packr.unpackMultiple(view, (decoded: unknown, _start?: number, stop?: number) => {
      value = decoded;
      end = stop ?? -1;
      return false;
    });
  } catch (error) {
    // Garbage can raise anything from a RangeError (nesting deeper than the stack) to a TypeError.
    return { error: `undecodable payload: ${errorText(error)}` };
  }
  if (end !== view.byteLength) {
    return { error: `undecodable payload: ${view.byteLength - end} trailing bytes after the value` };
  }
  return { value };
}

/** Decode and validate one message. Never throws. */
export function decodeMessage(bytes: Uint8Array, bounds: DecodeBounds = decodeBoundsDefault): DecodeResult {
  const decoded = decodeValue(bytes, bounds);
  if ('error' in decoded) return { error: decoded.error, kind: 'undecodable' };
  const reason = validate(decoded.value);
  if (reason !== null) return { error: reason, kind: 'invalid' };
  return { message: decoded.value as Message };
}

/** Encode any plain value (the handshake, which is not a catalogue message). */
export function encodeValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

function errorText(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error ? error.message : String(error);
  } catch {
    text = 'unprintable error';
  }
  return text.length > errorTextBytesMax ? `${text.slice(0, errorTextBytesMax)}…` : text;
}
