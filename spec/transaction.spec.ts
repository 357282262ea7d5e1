// MonitorDBStore::Transaction: counters, the version_t encoding, and the wire format — a
// deterministic round trip for any ops, and decode() failing only with TransactionDecodeError on
// any malformed input (random, mutated, truncated).
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decodeNumber,
  encodeNumber,
  keyBytesMax,
  prefixBytesMax,
  Transaction,
  TransactionDecodeError,
  type TransactionOp,
} from '../storage/transaction.ts';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const loneSurrogate = /[\uD800-\uDFFF]/u;

/** decode() must either throw TransactionDecodeError or give back exactly these bytes on encode(). */
function decodesCanonicallyOrRejects(bytes: Uint8Array): boolean {
  let tx: Transaction;
  try {
    tx = Transaction.decode(bytes);
  } catch (error) {
    if (error instanceof TransactionDecodeError && error.code === 'EBADMSG') return true;
    throw error;
  }
  return hex(tx.encode()) === hex(bytes);
}

function build(ops: readonly TransactionOp[]): Transaction {
  const tx = new Transaction();
  for (const op of ops) {
    switch (op.type) {
      case 'put':
        tx.put(op.prefix, op.key, op.value);
        break;
      case 'erase':
        tx.erase(op.prefix, op.key);
        break;
      case 'erase_range':
        tx.eraseRange(op.prefix, op.start, op.end);
        break;
      case 'compact':
        tx.compact(op.prefix, op.start, op.end);
        break;
    }
  }
  return tx;
}

const prefixArb = fc
  .oneof(
    fc.constantFrom('paxos', 'monmap', 'a', 'ab', 'mon_sync', 'é', '\u{1F600}'),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }),
  )
  .filter((prefix) => prefix.length > 0 && !prefix.includes('\0') && !loneSurrogate.test(prefix));
const keyArb = fc
  .oneof(
    fc.constant(''),
    fc.constantFrom('last_committed', 'first_committed', '1', '10', '9', '\uFEFFbom', 'a\0b'),
    fc.string({ unit: 'binary', maxLength: 12 }),
    fc.string({ unit: 'grapheme', maxLength: 6 }),
  )
  .filter((key) => !loneSurrogate.test(key));
const valueArb = fc.oneof(
  fc.uint8Array({ maxLength: 48 }),
  fc.constant(new Uint8Array(0)),
  fc.string({ unit: 'binary', maxLength: 12 }).map(utf8),
);
const opArb: fc.Arbitrary<TransactionOp> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), prefix: prefixArb, key: keyArb, value: valueArb }),
  fc.record({ type: fc.constant('erase' as const), prefix: prefixArb, key: keyArb }),
  fc.record({ type: fc.constant('erase_range' as const), prefix: prefixArb, start: keyArb, end: keyArb }),
  fc.record({ type: fc.constant('compact' as const), prefix: prefixArb, start: keyArb, end: keyArb }),
);
const opsArb = fc.array(opArb, { maxLength: 12 });

const Counters = suite('transaction: keys and bytes');

Counters('count keys and UTF-8 bytes like Ceph get_keys()/get_bytes()', () => {
  const tx = new Transaction();
  assert.ok(tx.empty);
  assert.is(tx.keys, 0);
  assert.is(tx.bytes, 0);
  tx.put('paxos', '1', new Uint8Array(10)); // 5 + 1 + 10
  tx.putNumber('paxos', 'last_committed', 1); // 5 + 14 + 8
  tx.erase('monmap', 'é'); // 6 + 2
  tx.eraseRange('kv', 'a', 'b'); // 2 + 1 + 1
  tx.compact('kv'); // a hint: counts nothing, as in Ceph
  tx.put('kv', '\u{1F600}', 'ü'); // 2 + 4 + 2
  assert.is(tx.keys, 5);
  assert.is(tx.bytes, 16 + 27 + 8 + 4 + 8);
  assert.is(tx.size, 6);
  assert.not.ok(tx.empty);

  const other = new Transaction().put('x', 'y', 'z');
  const before = tx.bytes;
  tx.append(other);
  assert.is(tx.keys, 6);
  assert.is(tx.bytes, before + 3);
  assert.is(other.size, 1, 'append leaves the other transaction intact');
  assert.equal(tx.ops.at(-1), other.ops[0]);
});

Counters('put copies its value: later writes to the caller buffer change nothing', () => {
  const value = Buffer.from('abc');
  const tx = new Transaction().put('p', 'k', value);
  value[0] = 0x7a;
  const op = tx.ops[0];
  assert.ok(op?.type === 'put');
  assert.is(Buffer.from(op.value).toString(), 'abc');
  assert.is(op.value.constructor, Uint8Array);
});

Counters('reject keys that cannot be stored or would not round-trip', () => {
  const tx = new Transaction();
  assert.throws(() => tx.put('', 'k', 'v'), /non-empty/);
  assert.throws(() => tx.put('a\0b', 'k', 'v'), /NUL/);
  assert.throws(() => tx.put('p', 'bad\uD800', 'v'), /well-formed/);
  assert.throws(() => tx.put('\uDC00', 'k', 'v'), /well-formed/);
  assert.throws(() => tx.put('x'.repeat(prefixBytesMax + 1), 'k', 'v'), /limit/);
  assert.throws(() => tx.erase('p', 'k'.repeat(keyBytesMax + 1)), /limit/);
  assert.throws(() => tx.putNumber('p', 'k', -1), /non-negative/);
  assert.throws(() => tx.putNumber('p', 'k', 2 ** 53), /safe integer/);
  assert.ok(tx.empty, 'a rejected op leaves no trace');
  // NUL is fine inside a key: the prefix ends at the first one.
  tx.put('p', 'a\0b', 'v');
  assert.is(tx.size, 1);
});

const Numbers = suite('transaction: version_t numbers');

Numbers('encode version_t as 8 little-endian bytes', () => {
  assert.is(hex(encodeNumber(0)), '0000000000000000');
  assert.is(hex(encodeNumber(1)), '0100000000000000');
  assert.is(hex(encodeNumber(0x0102030405)), '0504030201000000');
  assert.is(decodeNumber(encodeNumber(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
  fc.assert(fc.property(fc.maxSafeNat(), (n) => decodeNumber(encodeNumber(n)) === n));
});

Numbers('decodeNumber rejects anything but 8 bytes of a safe integer', () => {
  for (const bad of [new Uint8Array(0), new Uint8Array(7), new Uint8Array(9), new Uint8Array(8).fill(0xff)]) {
    assert.throws(
      () => decodeNumber(bad),
      (error: unknown) => error instanceof TransactionDecodeError,
    );
  }
});

const Wire = suite('transaction: encoding');

Wire('pin the version 1 wire format', () => {
  const tx = new Transaction()
    .put('p', 'k', new Uint8Array([0xff]))
    .erase('p', '')
    .compact('p')
    .eraseRange('p', 'a', 'b');
  assert.is(
    hex(tx.encode()),
    [
      '01', // version
      '04', // op count
      '01' + '0170' + '016b' + '01ff', // put p k [ff]
      '02' + '0170' + '00', // erase p ''
      '03' + '0170' + '00' + '00', // compact p '' ''
      '04' + '0170' + '0161' + '0162', // erase_range p a b
    ].join(''),
  );
  assert.is(hex(new Transaction().encode()), '0100');
});

Wire('encode/decode round-trips any ops byte for byte', () => {
  fc.assert(
    fc.property(opsArb, (ops) => {
      const tx = build(ops);
      const bytes = tx.encode();
      const decoded = Transaction.decode(bytes);
      assert.equal(decoded.ops, tx.ops);
      assert.is(decoded.keys, tx.keys);
      assert.is(decoded.bytes, tx.bytes);
      assert.is(hex(decoded.encode()), hex(bytes));
    }),
    { numRuns: 500 },
  );
});

Wire('long lengths use multi-byte varints and still round-trip', () => {
  const tx = new Transaction().put('paxos', 'k'.repeat(300), new Uint8Array(70_000).fill(7));
  const bytes = tx.encode();
  assert.equal(Transaction.decode(bytes).ops, tx.ops);
  assert.is(hex(Transaction.decode(bytes).encode()), hex(bytes));
});

Wire('reject malformed encodings with TransactionDecodeError', () => {
  const cases: [string, number[]][] = [
    ['empty input', []],
    ['unknown version', [2, 0]],
    ['version 0', [0, 0]],
    ['truncated count', [1]],
    ['unknown op', [1, 1, 9, 1, 0x70, 0]],
    ['op 0', [1, 1, 0]],
    ['length past the end', [1, 1, 2, 5, 0x70]],
    ['trailing bytes', [1, 0, 0]],
    ['non-shortest varint', [1, 0x80, 0x00]],
    ['varint beyond 32 bits', [1, 0xff, 0xff, 0xff, 0xff, 0x1f]],
    ['six-byte varint', [1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]],
    ['count larger than the input', [1, 0x7f, 2, 1, 0x70, 0]],
    ['empty prefix', [1, 1, 2, 0, 0]],
    ['NUL in prefix', [1, 1, 2, 1, 0x00, 0]],
    ['invalid UTF-8', [1, 1, 2, 1, 0xff, 0]],
    ['overlong UTF-8', [1, 1, 2, 2, 0xc0, 0xaf, 0]],
    ['encoded surrogate', [1, 1, 2, 3, 0xed, 0xa0, 0x80, 0]],
    ['huge value length', [1, 1, 1, 1, 0x70, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]],
  ];
  for (const [name, bytes] of cases) {
    assert.throws(
      () => Transaction.decode(new Uint8Array(bytes)),
      (error: unknown) => error instanceof TransactionDecodeError && error.code === 'EBADMSG',
      name,
    );
  }
  assert.throws(
    () => Transaction.decode('not bytes' as unknown as Uint8Array),
    (error: unknown) => error instanceof TransactionDecodeError,
  );
});

Wire('every proper prefix of an encoding is rejected', () => {
  fc.assert(
    fc.property(opsArb, (ops) => {
      const bytes = build(ops).encode();
      for (let length = 0; length < bytes.length; length++) {
        assert.throws(
          () => Transaction.decode(bytes.subarray(0, length)),
          (error: unknown) => error instanceof TransactionDecodeError,
        );
      }
    }),
    { numRuns: 100 },
  );
});

Wire('random bytes decode canonically or throw only TransactionDecodeError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
      // Half the inputs start with a valid version byte so decoding gets past the header.
      return decodesCanonicallyOrRejects(tail) && decodesCanonicallyOrRejects(new Uint8Array([1, ...tail]));
    }),
    { numRuns: 2000 },
  );
});

Wire('mutated encodings decode canonically or throw only TransactionDecodeError', () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), byte: fc.constant(0) }),
  );
  fc.assert(
    fc.property(opsArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (ops, mutations) => {
      const bytes = [...build(ops).encode()];
      for (const { kind, at, byte } of mutations) {
        const index = at % (bytes.length + 1);
        if (kind === 'flip' && index < bytes.length) bytes[index] = byte;
        else if (kind === 'insert') bytes.splice(index, 0, byte);
        else if (kind === 'delete' && index < bytes.length) bytes.splice(index, 1);
      }
      return decodesCanonicallyOrRejects(new Uint8Array(bytes));
    }),
    { numRuns: 2000 },
  );
});

Counters.run();
Numbers.run();
Wire.run();

const Batches = suite('Transaction.decodeAll (batched Paxos values)');

Batches('concatenated encodings decode into one transaction, in order', () => {
  const a = new Transaction().put('kv', 'x', '1').erase('kv', 'y');
  const b = new Transaction().put('kv', 'x', '2');
  const joined = new Uint8Array([...a.encode(), ...b.encode()]);
  const all = Transaction.decodeAll(joined);
  assert.equal(
    all.ops.map((op) => `${op.type} ${'key' in op ? op.key : ''}`),
    ['put x', 'erase y', 'put x'],
  );
  assert.equal(Transaction.decodeAll(a.encode()).encode(), a.encode());
  assert.throws(
    () => Transaction.decode(joined),
    (error: unknown) => error instanceof TransactionDecodeError,
  );
});

Batches('garbage after a valid block is a decode error', () => {
  const a = new Transaction().put('kv', 'x', '1').encode();
  assert.throws(
    () => Transaction.decodeAll(new Uint8Array([...a, 7, 7])),
    (error: unknown) => error instanceof TransactionDecodeError,
  );
  assert.throws(
    () => Transaction.decodeAll(new Uint8Array()),
    (error: unknown) => error instanceof TransactionDecodeError,
  );
});

Batches.run();
