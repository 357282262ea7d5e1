// MemoryStore orders keys by comparing the JavaScript strings (storage/memory-store.ts
// compareKeys), not their UTF-8 encodings as it once did: that order must be RocksDB's bytewise
// one on the encodings, for every pair of well-formed keys — ASCII, 2- and 3-byte characters, the
// units U+E000–U+FFFF that UTF-16 puts after the surrogates, and astral characters.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Prng } from '../sim/prng.ts';
import { compareKeys } from '../storage/memory-store.ts';
import { compareBytes } from '../storage/transaction.ts';

const encoder = new TextEncoder();
const sign = (n: number) => Math.sign(n);
/** Code points from each region where UTF-16 and UTF-8 order could part. */
const alphabet = [
  0x00, 0x01, 0x30, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff,
];

function key(prng: Prng): string {
  const length = prng.int(0, 4);
  let text = '';
  for (let i = 0; i < length; i++) text += String.fromCodePoint(prng.pick(alphabet));
  return text;
}

test('compareKeys orders like bytewise comparison of the UTF-8 encodings', () => {
  const prng = new Prng('key order');
  for (let i = 0; i < 20_000; i++) {
    const a = key(prng);
    const b = key(prng);
    const expected = sign(compareBytes(encoder.encode(a), encoder.encode(b)));
    assert.is(sign(compareKeys(a, b)), expected, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
  // The pair where JavaScript's own < is wrong: U+FFFF sorts before U+10000 in UTF-8.
  assert.ok('\u{10000}' < '\uFFFF');
  assert.ok(compareKeys('\uFFFF', '\u{10000}') < 0);
});

test.run();
