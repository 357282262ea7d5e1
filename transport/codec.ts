// Message ⇄ bytes with MessagePack. Every peer decodes with no state shared with the sender
// (no msgpackr records or shared structures), so a frame means the same thing to any monitor,
// to a restarted one, and to the simulator's in-memory network. Decoding never throws: bytes
// from the network are input, and bad input is a reason string (TigerBeetle's invalid_header()).
import { type Options, Packr } from 'msgpackr';
import { type Message, validate } from './messages.ts';

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

/** Decode exactly one MessagePack value from `bytes`, or a reason. Never throws. */
export function decodeValue(bytes: Uint8Array): { value: unknown } | { error: string } {
  if (bytes.byteLength === 0) return { error: 'empty payload' };
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
export function decodeMessage(bytes: Uint8Array): DecodeResult {
  const decoded = decodeValue(bytes);
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
