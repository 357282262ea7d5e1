// MonitorDBStore::Transaction (src/mon/MonitorDBStore.h): an ordered list of put / erase /
// erase_range / compact ops that a Store applies atomically and durably. A Transaction also
// travels: Paxos values are encoded Transactions (Paxos::decode_append_transaction) and every
// sync chunk is one (MMonSync::chunk_bl), so the encoding is deterministic — the same ops give
// the same bytes on every monitor, and encode(decode(bytes)) returns the input byte for byte.
//
// Wire format, version 1 (all integers unsigned LEB128, canonical — shortest form only):
//   u8 version = 1
//   varint opCount
//   opCount × op:
//     u8 type  (Ceph's numbers: 1 put, 2 erase, 3 compact, 4 erase_range)
//     put:          str prefix, str key, bytes value
//     erase:        str prefix, str key
//     compact:      str prefix, str start, str end
//     erase_range:  str prefix, str start, str end
//   str / bytes = varint length + that many bytes (str: well-formed UTF-8)
// Ceph wraps each op in ENCODE_START/ENCODE_FINISH with u32 lengths; paxmon needs no
// cross-version skipping inside one transaction, so it keeps one version byte for the whole
// thing and short varints (most keys are a few bytes, most Paxos values carry many ops).

/** The format version written by encode(); decode() accepts only this one. */
export const transactionFormatVersion = 1;

/**
 * Limits on everything. Ceph's own keys are short (`last_committed`, decimal versions, service
 * names); mon_config_key_max_entry_size is 64 KiB and mon_sync_max_payload_size 1 MiB, so these
 * bounds leave ample room while keeping a hostile encoded value from asking for gigabytes.
 */
export const prefixBytesMax = 255;
export const keyBytesMax = 16 * 1024;
export const valueBytesMax = 64 * 1024 * 1024;
export const transactionOpsMax = 1 << 20;
export const transactionBytesMax = 256 * 1024 * 1024;

/** Ceph's op codes (MonitorDBStore::Transaction OP_PUT … OP_ERASE_RANGE), kept on the wire. */
const opCodePut = 1;
const opCodeErase = 2;
const opCodeCompact = 3;
const opCodeEraseRange = 4;

export type TransactionOp =
  | { readonly type: 'put'; readonly prefix: string; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'erase'; readonly prefix: string; readonly key: string }
  /**
   * Keys in [start, end) of prefix, in byte order (Ceph's erase_range → rm_range_keys).
   * `end === ''` means "to the end of the prefix": no key sorts before '' so Ceph's literal
   * reading would always be empty, and this way a whole prefix can be cleared atomically.
   */
  | { readonly type: 'erase_range'; readonly prefix: string; readonly start: string; readonly end: string }
  /** A compaction hint applied after the batch is durable; '' bounds mean the whole prefix. */
  | { readonly type: 'compact'; readonly prefix: string; readonly start: string; readonly end: string };

/** Thrown by Transaction.decode and decodeNumber on any malformed input, and by nothing else. */
export class TransactionDecodeError extends Error {
  readonly code = 'EBADMSG';
  constructor(message: string, options?: { cause?: unknown }) {
    super(`transaction decode failed: ${message}`, options);
    this.name = 'TransactionDecodeError';
  }
}

const utf8Encoder = new TextEncoder();
// fatal: reject invalid UTF-8 (it would not round-trip); ignoreBOM: keep a leading U+FEFF in
// a key instead of silently stripping it (that would not round-trip either).
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The number of bytes `text` takes in UTF-8, without allocating. */
export function utf8Length(text: string): number {
  let length = 0;
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    if (unit < 0x80) length += 1;
    else if (unit < 0x800) length += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && index + 1 < text.length) {
      // A surrogate pair is one code point of 4 bytes (lone surrogates are rejected earlier).
      length += 4;
      index++;
    } else length += 3;
  }
  return length;
}

// With the `u` flag a surrogate class matches only *lone* surrogates: a proper pair is one code
// point. TextEncoder would turn a lone one into U+FFFD, so such a key would not round-trip.
const loneSurrogate = /[\uD800-\uDFFF]/u;

/** Prefixes already checked, with their UTF-8 length: a store uses a handful, over and over. */
const checkedPrefixes = new Map<string, number>();
const checkedPrefixesMax = 1024;

function checkPrefix(prefix: string): number {
  const known = checkedPrefixes.get(prefix);
  if (known !== undefined) return known;
  if (typeof prefix !== 'string' || prefix.length === 0)
    throw new RangeError('store prefix must be non-empty');
  // The prefix ends at the first NUL of `prefix\0key` (Ceph's combine_strings for RocksDB).
  if (prefix.includes('\0')) throw new RangeError(`store prefix ${JSON.stringify(prefix)} contains NUL`);
  if (loneSurrogate.test(prefix)) throw new RangeError('store prefix is not well-formed Unicode');
  const bytes = utf8Length(prefix);
  if (bytes > prefixBytesMax) throw new RangeError(`store prefix is ${bytes} bytes, limit ${prefixBytesMax}`);
  if (checkedPrefixes.size < checkedPrefixesMax) checkedPrefixes.set(prefix, bytes);
  return bytes;
}

function checkKey(key: string, what = 'key', limit = keyBytesMax): number {
  if (typeof key !== 'string') throw new RangeError(`store ${what} must be a string`);
  // loneSurrogate and utf8Length in one pass (every put, erase and read checks a key).
  let bytes = 0;
  for (let index = 0; index < key.length; index++) {
    const unit = key.charCodeAt(index);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit < 0xd800 || unit > 0xdfff) bytes += 3;
    else {
      const next = index + 1 < key.length ? key.charCodeAt(index + 1) : 0;
      if (unit > 0xdbff || next < 0xdc00 || next > 0xdfff)
        throw new RangeError(`store ${what} is not well-formed Unicode`);
      bytes += 4;
      index++;
    }
  }
  if (bytes > limit) throw new RangeError(`store ${what} is ${bytes} bytes, limit ${limit}`);
  return bytes;
}

function toValueBytes(value: Uint8Array | string): Uint8Array {
  let bytes: Uint8Array;
  if (typeof value === 'string') {
    if (loneSurrogate.test(value)) throw new RangeError('store value string is not well-formed Unicode');
    bytes = utf8Encoder.encode(value);
  } else if (value instanceof Uint8Array) {
    // Copy: the caller may reuse its buffer, and a queued transaction must write what was put.
    // (Not value.slice(): on a Buffer that is a view, not a copy.)
    bytes = new Uint8Array(value);
  } else {
    throw new RangeError('store value must be a Uint8Array or a string');
  }
  if (bytes.length > valueBytesMax) {
    throw new RangeError(`store value is ${bytes.length} bytes, limit ${valueBytesMax}`);
  }
  return bytes;
}

/** Ceph encodes version_t as a little-endian u64 (Transaction::put(prefix, key, version_t)). */
export function encodeNumber(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`version must be a non-negative safe integer, got ${n}`);
  // Two 32-bit halves, not a BigInt: Paxos writes a few of these per commit.
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, n >>> 0, true);
  view.setUint32(4, Math.floor(n / 0x1_0000_0000), true);
  return bytes;
}

/** The inverse of encodeNumber; anything but 8 bytes holding a safe integer is malformed. */
export function decodeNumber(bytes: Uint8Array): number {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 8) {
    throw new TransactionDecodeError(
      `a version is 8 bytes, got ${bytes instanceof Uint8Array ? bytes.length : typeof bytes}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const high = view.getUint32(4, true);
  // Number.MAX_SAFE_INTEGER is 2^53 − 1: a high half above 2^21 − 1 is beyond it.
  if (high > 0x1f_ffff)
    throw new TransactionDecodeError(`version ${view.getBigUint64(0, true)} is beyond 2^53`);
  return high * 0x1_0000_0000 + view.getUint32(0, true);
}

export class Transaction {
  readonly #ops: TransactionOp[] = [];
  #keys = 0;
  #bytes = 0;

  /** The ops in the order they apply. */
  get ops(): readonly TransactionOp[] {
    return this.#ops;
  }

  /** Ceph's get_keys(): puts, erases and erase_ranges each count one. */
  get keys(): number {
    return this.#keys;
  }

  /**
   * Ceph's get_bytes(), without Ceph's per-op framing overhead: UTF-8 bytes of prefix + key +
   * value for a put, prefix + key for an erase, prefix + start + end for an erase_range.
   * Sync chunks are bounded by it (WholeStoreIteratorImpl::get_chunk_tx).
   */
  get bytes(): number {
    return this.#bytes;
  }

  get empty(): boolean {
    return this.#ops.length === 0;
  }

  get size(): number {
    return this.#ops.length;
  }

  put(prefix: string, key: string, value: Uint8Array | string): this {
    const bytes = checkPrefix(prefix) + checkKey(key);
    const valueBytes = toValueBytes(value);
    return this.#push({ type: 'put', prefix, key, value: valueBytes }, 1, bytes + valueBytes.length);
  }

  /** A version_t (Transaction::put(prefix, key, version_t)): 8 bytes, little-endian. */
  putNumber(prefix: string, key: string, n: number): this {
    return this.put(prefix, key, encodeNumber(n));
  }

  erase(prefix: string, key: string): this {
    const bytes = checkPrefix(prefix) + checkKey(key);
    return this.#push({ type: 'erase', prefix, key }, 1, bytes);
  }

  /** Erase keys in [start, end) of prefix in byte order; end '' = to the end of the prefix. */
  eraseRange(prefix: string, start: string, end: string): this {
    const bytes = checkPrefix(prefix) + checkKey(start, 'range start') + checkKey(end, 'range end');
    return this.#push({ type: 'erase_range', prefix, start, end }, 1, bytes);
  }

  /**
   * A compaction hint (Ceph's compact_prefix / compact_range), run after the batch is durable;
   * it changes no data and counts neither keys nor bytes, as in Ceph.
   */
  compact(prefix: string, start = '', end = ''): this {
    checkPrefix(prefix);
    checkKey(start, 'range start');
    checkKey(end, 'range end');
    return this.#push({ type: 'compact', prefix, start, end }, 0, 0);
  }

  /** Append a copy of other's ops (Ceph's append); other is left unchanged. */
  append(other: Transaction): this {
    if (this.#ops.length + other.#ops.length > transactionOpsMax) {
      throw new RangeError(
        `transaction would hold ${this.#ops.length + other.#ops.length} ops, limit ${transactionOpsMax}`,
      );
    }
    if (this.#bytes + other.#bytes > transactionBytesMax) {
      throw new RangeError(
        `transaction would hold ${this.#bytes + other.#bytes} bytes, limit ${transactionBytesMax}`,
      );
    }
    // Ops are immutable records holding private copies of their values, so sharing them is safe.
    for (const op of other.#ops) this.#ops.push(op);
    this.#keys += other.#keys;
    this.#bytes += other.#bytes;
    return this;
  }

  #push(op: TransactionOp, keys: number, bytes: number): this {
    if (this.#ops.length >= transactionOpsMax)
      throw new RangeError(`transaction holds ${transactionOpsMax} ops, the limit`);
    if (this.#bytes + bytes > transactionBytesMax) {
      throw new RangeError(
        `transaction would hold ${this.#bytes + bytes} bytes, limit ${transactionBytesMax}`,
      );
    }
    this.#ops.push(Object.freeze(op));
    this.#keys += keys;
    this.#bytes += bytes;
    return this;
  }

  encode(): Uint8Array {
    const writer = new ByteWriter();
    writer.u8(transactionFormatVersion);
    writer.varint(this.#ops.length);
    for (const op of this.#ops) {
      switch (op.type) {
        case 'put':
          writer.u8(opCodePut);
          writer.string(op.prefix);
          writer.string(op.key);
          writer.bytes(op.value);
          break;
        case 'erase':
          writer.u8(opCodeErase);
          writer.string(op.prefix);
          writer.string(op.key);
          break;
        case 'compact':
          writer.u8(opCodeCompact);
          writer.string(op.prefix);
          writer.string(op.start);
          writer.string(op.end);
          break;
        case 'erase_range':
          writer.u8(opCodeEraseRange);
          writer.string(op.prefix);
          writer.string(op.start);
          writer.string(op.end);
          break;
      }
    }
    return writer.finish();
  }

  /** Decode an encoded transaction; anything malformed throws TransactionDecodeError. */
  static decode(encoded: Uint8Array): Transaction {
    if (!(encoded instanceof Uint8Array)) throw new TransactionDecodeError('input is not a Uint8Array');
    const reader = new ByteReader(encoded);
    const tx = Transaction.#decodeBlock(reader, new Transaction());
    if (reader.remaining !== 0) throw new TransactionDecodeError(`${reader.remaining} trailing bytes`);
    return tx;
  }

  /**
   * Decode one or more encoded transactions laid end to end into one transaction, in order.
   * A batched Paxos value is exactly that: the encoded pending transactions of one round
   * (every service's, PaxosService::propose_pending), concatenated by the leader.
   */
  static decodeAll(encoded: Uint8Array): Transaction {
    if (!(encoded instanceof Uint8Array)) throw new TransactionDecodeError('input is not a Uint8Array');
    const reader = new ByteReader(encoded);
    const tx = new Transaction();
    do Transaction.#decodeBlock(reader, tx);
    while (reader.remaining > 0);
    return tx;
  }

  static #decodeBlock(reader: ByteReader, tx: Transaction): Transaction {
    const version = reader.u8('version');
    if (version !== transactionFormatVersion) {
      throw new TransactionDecodeError(
        `unknown format version ${version}, this monitor speaks ${transactionFormatVersion}`,
      );
    }
    const opCount = reader.varint('op count');
    if (opCount > transactionOpsMax)
      throw new TransactionDecodeError(`${opCount} ops, limit ${transactionOpsMax}`);
    // Every op takes at least 3 bytes (type + two empty lengths): a cheap bound on a lying count.
    if (opCount * 3 > reader.remaining)
      throw new TransactionDecodeError(`${opCount} ops cannot fit in ${reader.remaining} bytes`);
    for (let index = 0; index < opCount; index++) {
      const type = reader.u8('op type');
      // The Transaction methods re-check every limit; turn their RangeErrors into decode errors.
      try {
        switch (type) {
          case opCodePut:
            tx.put(reader.string('prefix'), reader.string('key'), reader.bytes('value', valueBytesMax));
            break;
          case opCodeErase:
            tx.erase(reader.string('prefix'), reader.string('key'));
            break;
          case opCodeCompact:
            tx.compact(reader.string('prefix'), reader.string('start'), reader.string('end'));
            break;
          case opCodeEraseRange:
            tx.eraseRange(reader.string('prefix'), reader.string('start'), reader.string('end'));
            break;
          default:
            throw new TransactionDecodeError(`op ${index}: unknown op type ${type}`);
        }
      } catch (error) {
        if (error instanceof TransactionDecodeError) throw error;
        throw new TransactionDecodeError(
          `op ${index}: ${error instanceof Error ? error.message : String(error)}`,
          {
            cause: error,
          },
        );
      }
    }
    return tx;
  }
}

class ByteWriter {
  #buffer = new Uint8Array(256);
  #length = 0;

  #reserve(bytes: number): void {
    const needed = this.#length + bytes;
    if (needed <= this.#buffer.length) return;
    let capacity = this.#buffer.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
  }

  u8(value: number): void {
    this.#reserve(1);
    this.#buffer[this.#length++] = value;
  }

  varint(value: number): void {
    this.#reserve(5);
    let rest = value >>> 0;
    while (rest >= 0x80) {
      this.#buffer[this.#length++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    this.#buffer[this.#length++] = rest;
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.#reserve(value.length);
    this.#buffer.set(value, this.#length);
    this.#length += value.length;
  }

  string(value: string): void {
    const length = utf8Length(value);
    this.varint(length);
    this.#reserve(length);
    const { written } = utf8Encoder.encodeInto(
      value,
      this.#buffer.subarray(this.#length, this.#length + length),
    );
    this.#length += written;
  }

  finish(): Uint8Array {
    return this.#buffer.slice(0, this.#length);
  }
}

class ByteReader {
  readonly #input: Uint8Array;
  #offset = 0;

  constructor(input: Uint8Array) {
    this.#input = input;
  }

  get remaining(): number {
    return this.#input.length - this.#offset;
  }

  u8(what: string): number {
    const value = this.#input[this.#offset];
    if (value === undefined)
      throw new TransactionDecodeError(`truncated before ${what} at byte ${this.#offset}`);
    this.#offset++;
    return value;
  }

  /** Unsigned LEB128 up to 2^32 − 1, shortest form only (so re-encoding gives the same bytes). */
  varint(what: string): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.u8(what);
      const part = byte & 0x7f;
      if (shift === 28 && part > 0x0f) throw new TransactionDecodeError(`${what} overflows 32 bits`);
      value += part * 2 ** shift;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && shift > 0) throw new TransactionDecodeError(`${what} is not in shortest form`);
        return value;
      }
    }
    throw new TransactionDecodeError(`${what} varint longer than 5 bytes`);
  }

  #take(what: string, limit: number): Uint8Array {
    const length = this.varint(`${what} length`);
    if (length > limit) throw new TransactionDecodeError(`${what} is ${length} bytes, limit ${limit}`);
    if (length > this.remaining) {
      throw new TransactionDecodeError(
        `${what} of ${length} bytes runs past the end (${this.remaining} left)`,
      );
    }
    const bytes = this.#input.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return bytes;
  }

  bytes(what: string, limit: number): Uint8Array {
    // put() copies the value, so a view is enough here.
    return this.#take(what, limit);
  }

  string(what: string): string {
    const bytes = this.#take(what, keyBytesMax);
    try {
      return utf8Decoder.decode(bytes);
    } catch (error) {
      throw new TransactionDecodeError(`${what} is not valid UTF-8`, { cause: error });
    }
  }
}

/**
 * The key layout of MonitorDBStore over RocksDB: `prefix + '\0' + key` as UTF-8 bytes
 * (RocksDBStore::combine_strings). Prefixes hold no NUL, so byte order sorts each prefix's keys
 * together and `a` never mixes with `ab` (`a\0…` < `a\x01` ≤ `ab…`).
 */
export function storeKeyBytes(prefix: string, key: string): Uint8Array {
  const prefixBytes = utf8Encoder.encode(prefix);
  const keyBytes = utf8Encoder.encode(key);
  const combined = new Uint8Array(prefixBytes.length + 1 + keyBytes.length);
  combined.set(prefixBytes, 0);
  combined[prefixBytes.length] = 0;
  combined.set(keyBytes, prefixBytes.length + 1);
  return combined;
}

/**
 * The byte range [gte, lt) holding keys [start, end) of prefix; an empty or absent end means the
 * end of the prefix (`prefix\x01`, the first key past every `prefix\0…`).
 */
export function storeRangeBytes(prefix: string, start = '', end = ''): { gte: Uint8Array; lt: Uint8Array } {
  checkPrefix(prefix);
  // One byte of slack: `key + '\0'`, the successor of a longest key, is a valid read bound.
  checkKey(start, 'range start', keyBytesMax + 1);
  checkKey(end, 'range end', keyBytesMax + 1);
  const gte = storeKeyBytes(prefix, start);
  let lt: Uint8Array;
  if (end === '') {
    const prefixBytes = utf8Encoder.encode(prefix);
    lt = new Uint8Array(prefixBytes.length + 1);
    lt.set(prefixBytes, 0);
    lt[prefixBytes.length] = 1;
  } else {
    lt = storeKeyBytes(prefix, end);
  }
  return { gte, lt };
}

/** Byte-wise comparison, RocksDB's default BytewiseComparator. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    const difference = (a[index] as number) - (b[index] as number);
    if (difference !== 0) return difference;
  }
  return a.length - b.length;
}

/** Validate a prefix/key pair for a read (the same rules as a write). */
export function checkStoreKey(prefix: string, key: string): void {
  checkPrefix(prefix);
  checkKey(key);
}

/** Decode the key part of a stored `prefix\0key` (UTF-8 written by this module). */
export function decodeKeyPart(storeKey: Uint8Array, prefixBytes: number): string {
  return utf8Decoder.decode(storeKey.subarray(prefixBytes + 1));
}
