// Property tests of the frame decoder, the first code to touch untrusted bytes: whatever arrives,
// in whatever pieces, it never throws, returns exactly the frames that were sent when the stream
// is valid, and never buffers more than one frame header and payload.
// And of checkFrames and framesOf, which read an opened record's frames: all of them, whole and
// in order, or none.
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  checkFrames,
  encodeFrame,
  FrameDecoder,
  frameHeaderBytes,
  framesOf,
  splitFrames,
} from '../transport/frame.ts';

const test = suite('frame');

/** Cut `bytes` at the given (unsorted, possibly repeated) offsets. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const offsets = [...new Set(cuts.map((cut) => cut % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let previous = 0;
  for (const offset of [...offsets, bytes.byteLength]) {
    chunks.push(bytes.subarray(previous, offset));
    previous = offset;
  }
  return chunks;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

interface Outcome {
  frames: Uint8Array[];
  error: string | undefined;
  bufferedBytesMax: number;
}

/** Feed every chunk, checking the memory bound after each push and that errors are sticky. */
function feed(decoder: FrameDecoder, chunks: Uint8Array[]): Outcome {
  const frames: Uint8Array[] = [];
  let error: string | undefined;
  let bufferedBytesMax = 0;
  for (const chunk of chunks) {
    const result = decoder.push(chunk);
    if (error !== undefined) {
      assert.is(result.frames.length, 0, 'no frames after an error');
      assert.is(result.error, error, 'the error is sticky');
    }
    frames.push(...result.frames.map((frame) => new Uint8Array(frame)));
    error ??= result.error;
    bufferedBytesMax = Math.max(bufferedBytesMax, decoder.bufferedBytes);
    assert.ok(
      decoder.bufferedBytes <= decoder.frameBytesMax + frameHeaderBytes,
      `buffered ${decoder.bufferedBytes} > ${decoder.frameBytesMax} + header`,
    );
  }
  return { frames, error, bufferedBytesMax };
}

const payloads = fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 });
const cuts = fc.array(fc.nat(), { maxLength: 20 });

test('valid streams, cut anywhere: the frames that went in come out', () => {
  fc.assert(
    fc.property(payloads, cuts, (sent, cutAt) => {
      const decoder = new FrameDecoder({ frameBytesMax: 300 });
      const outcome = feed(decoder, split(concat(sent.map(encodeFrame)), cutAt));
      assert.is(outcome.error, undefined);
      assert.equal(outcome.frames, sent);
      assert.is(decoder.bufferedBytes, 0, 'nothing left over');
    }),
    { numRuns: 1000 },
  );
});

test('a truncated stream holds its partial frame and emits only the complete ones', () => {
  fc.assert(
    fc.property(payloads, fc.nat(), (sent, cut) => {
      const stream = concat(sent.map(encodeFrame));
      const length = cut % (stream.byteLength + 1);
      const decoder = new FrameDecoder({ frameBytesMax: 300 });
      const outcome = feed(decoder, [stream.subarray(0, length)]);
      assert.is(outcome.error, undefined);
      // Complete frames are a prefix of what was sent; the rest is buffered, within the bound.
      assert.equal(outcome.frames, sent.slice(0, outcome.frames.length));
      const consumed = outcome.frames.reduce(
        (total, frame) => total + frameHeaderBytes + frame.byteLength,
        0,
      );
      assert.is(decoder.bufferedBytes, length - consumed);
    }),
    { numRuns: 1000 },
  );
});

test('random bytes in random pieces: no exception, bounded memory, sticky errors', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 4096 }),
      cuts,
      fc.integer({ min: 0, max: 512 }),
      (bytes, cutAt, max) => {
        const decoder = new FrameDecoder({ frameBytesMax: max });
        const outcome = feed(decoder, split(bytes, cutAt));
        for (const frame of outcome.frames) assert.ok(frame.byteLength <= max);
        const delivered = outcome.frames.reduce(
          (total, frame) => total + frameHeaderBytes + frame.byteLength,
          0,
        );
        assert.ok(delivered <= bytes.byteLength);
      },
    ),
    { numRuns: 2000 },
  );
});

test('mutated valid streams: no exception, bounded memory, frames are what the bytes say', () => {
  const mutation = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });
  fc.assert(
    fc.property(
      payloads,
      fc.array(mutation, { minLength: 1, maxLength: 4 }),
      cuts,
      (sent, mutations, cutAt) => {
        const stream = concat(sent.map(encodeFrame));
        if (stream.byteLength === 0) return;
        for (const { at, value } of mutations) stream[at % stream.byteLength] = value;
        const decoder = new FrameDecoder({ frameBytesMax: 300 });
        const outcome = feed(decoder, split(stream, cutAt));
        // Whatever came out must be exactly what a sequential reading of the mutated bytes yields.
        let offset = 0;
        for (const frame of outcome.frames) {
          const length = new DataView(stream.buffer, stream.byteOffset + offset).getUint32(0);
          assert.is(frame.byteLength, length);
          assert.equal(frame, stream.slice(offset + frameHeaderBytes, offset + frameHeaderBytes + length));
          offset += frameHeaderBytes + length;
        }
        if (outcome.error !== undefined) {
          const length = new DataView(stream.buffer, stream.byteOffset + offset).getUint32(0);
          assert.ok(length > 300, `error only for an oversized prefix, got ${length}`);
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test('an oversized length prefix is an error the moment the header is complete', () => {
  const decoder = new FrameDecoder();
  assert.equal(decoder.push(new Uint8Array([0xff, 0xff])), { frames: [] });
  const result = decoder.push(new Uint8Array([0xff, 0xff]));
  assert.match(String(result.error), /frame of 4294967295 bytes exceeds the maximum of 67108864 bytes/);
  assert.is(decoder.bufferedBytes, 0);
  assert.equal(decoder.push(encodeFrame(new Uint8Array([1]))).frames, []);
});

test('frames before an error in the same chunk are still returned', () => {
  const decoder = new FrameDecoder({ frameBytesMax: 4 });
  const result = decoder.push(concat([encodeFrame(new Uint8Array([7])), encodeFrame(new Uint8Array(5))]));
  assert.equal(result.frames, [new Uint8Array([7])]);
  assert.match(String(result.error), /frame of 5 bytes exceeds the maximum of 4 bytes/);
});

test('the first frame has its own limit (the handshake), later frames the general one', () => {
  const decoder = new FrameDecoder({ frameBytesMax: 1000, firstFrameBytesMax: 10 });
  const ok = decoder.push(concat([encodeFrame(new Uint8Array(10)), encodeFrame(new Uint8Array(500))]));
  assert.is(ok.error, undefined);
  assert.is(ok.frames.length, 2);
  const strict = new FrameDecoder({ frameBytesMax: 1000, firstFrameBytesMax: 10 });
  assert.match(
    String(strict.push(encodeFrame(new Uint8Array(11))).error),
    /11 bytes exceeds the maximum of 10/,
  );
});

test('firstFrames: the handshake limit holds for that many frames, whole or cut anywhere', () => {
  // The messenger's handshake is three frames each way, all read before the peer is proven.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4 }), cuts, (oversized, cutAt) => {
      const sizes = [10, 10, 10, 500];
      if (oversized < 3) sizes[oversized] = 11;
      const stream = concat(sizes.map((size) => encodeFrame(new Uint8Array(size))));
      const outcome = feed(
        new FrameDecoder({ frameBytesMax: 1000, firstFrameBytesMax: 10, firstFrames: 3 }),
        split(stream, cutAt),
      );
      if (oversized < 3) {
        assert.is(outcome.frames.length, oversized);
        assert.match(String(outcome.error), /11 bytes exceeds the maximum of 10/);
      } else {
        assert.is(outcome.error, undefined);
        assert.equal(
          outcome.frames.map((frame) => frame.byteLength),
          sizes,
        );
      }
    }),
  );
  assert.throws(() => new FrameDecoder({ firstFrames: -1 }), /firstFrames/);
});

test('the general limit can change between frames: it applies to the next header read', () => {
  // The messenger starts every connection at a client's limit and raises it for a monitor's.
  const decoder = new FrameDecoder({ frameBytesMax: 100, firstFrameBytesMax: 10 });
  assert.is(decoder.push(encodeFrame(new Uint8Array(10))).frames.length, 1);
  decoder.frameBytesMax = 1000;
  const big = encodeFrame(new Uint8Array(500));
  assert.equal(decoder.push(big.subarray(0, 6)).frames, []);
  // Lowered mid-frame: the frame being read keeps the limit it was accepted under.
  decoder.frameBytesMax = 100;
  assert.is(decoder.push(big.subarray(6)).frames.length, 1);
  assert.match(
    String(decoder.push(encodeFrame(new Uint8Array(101))).error),
    /101 bytes exceeds the maximum of 100/,
  );
  assert.throws(() => {
    decoder.frameBytesMax = -1;
  }, /frameBytesMax/);
});

test('zero-length frames, views into whole chunks, copies of partial ones', () => {
  const decoder = new FrameDecoder();
  const chunk = concat([encodeFrame(new Uint8Array(0)), encodeFrame(new Uint8Array([1, 2, 3]))]);
  const whole = decoder.push(chunk);
  assert.equal(whole.frames, [new Uint8Array(0), new Uint8Array([1, 2, 3])]);
  assert.is(whole.frames[1]?.buffer, chunk.buffer, 'a frame whole in its chunk is a view, not a copy');
  const partial = encodeFrame(new Uint8Array([4, 5, 6]));
  assert.equal(decoder.push(partial.subarray(0, 5)).frames, []);
  const rest = decoder.push(partial.subarray(5));
  assert.equal(rest.frames, [new Uint8Array([4, 5, 6])]);
  assert.is.not(rest.frames[0]?.buffer, partial.buffer);
});

test('limits are validated', () => {
  assert.throws(() => new FrameDecoder({ frameBytesMax: -1 }), /frameBytesMax/);
  assert.throws(() => new FrameDecoder({ frameBytesMax: 2 ** 32 }), /frameBytesMax/);
  assert.throws(() => new FrameDecoder({ firstFrameBytesMax: 1.5 }), /firstFrameBytesMax/);
});

// --- checkFrames, framesOf: the frames inside an opened record ----------------------------------

const recordPayloads = fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 12 });

test('the frames of a record come out as they went in, in order, as plain views', () => {
  fc.assert(
    fc.property(recordPayloads, fc.nat({ max: 16 }), (sent, offset) => {
      // At an offset in a larger buffer, as an opened record is (a view into a received chunk).
      const record = concat(sent.map(encodeFrame));
      const bytes = new Uint8Array(offset + record.byteLength);
      bytes.set(record, offset);
      const split = splitFrames(bytes.subarray(offset), 300);
      assert.ok('frames' in split, JSON.stringify(split));
      assert.equal(split.frames, sent);
      for (const frame of split.frames) {
        assert.is(frame.constructor, Uint8Array, 'a plain view, not a Buffer');
        if (frame.byteLength > 0) assert.is(frame.buffer, bytes.buffer, 'a view, not a copy');
      }
      assert.equal([...framesOf(bytes.subarray(offset))], sent, 'framesOf alone: the same frames');
    }),
    { numRuns: 1000 },
  );
});

test('all or nothing: no frame, a frame cut short or over the limit is an error, and no frame comes out', () => {
  fc.assert(
    fc.property(recordPayloads, fc.nat(), (sent, cut) => {
      const record = concat(sent.map(encodeFrame));
      const boundaries = new Set<number>([0]);
      let at = 0;
      for (const payload of sent) {
        at += frameHeaderBytes + payload.byteLength;
        boundaries.add(at);
      }
      const length = cut % record.byteLength;
      const split = splitFrames(record.subarray(0, length), 300);
      if (length === 0) assert.equal(split, { error: 'a record with no frame' });
      else if (boundaries.has(length)) assert.ok('frames' in split);
      else assert.ok('error' in split && /ends inside frame/.test(split.error), JSON.stringify(split));
      // The largest frame is over a limit one byte smaller.
      const largest = Math.max(...sent.map((payload) => payload.byteLength));
      if (largest > 0) {
        const over = splitFrames(record, largest - 1);
        assert.ok('error' in over && /exceeds the maximum/.test(over.error));
      }
    }),
    { numRuns: 1000 },
  );
  assert.equal(
    splitFrames(encodeFrame(new Uint8Array(0)), 0),
    { frames: [new Uint8Array(0)] },
    'a keepalive',
  );
});

test('random bytes never throw; what checks re-frames to exactly those bytes; framesOf never reads past them', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 512 }), (bytes, max) => {
      // framesOf on bytes not checked: whole frames only, each inside `bytes`, never an exception.
      const unchecked = [...framesOf(bytes)];
      const read = unchecked.reduce((total, frame) => total + frameHeaderBytes + frame.byteLength, 0);
      assert.ok(read <= bytes.byteLength);
      assert.equal(concat(unchecked.map(encodeFrame)), bytes.subarray(0, read));
      const error = checkFrames(bytes, max);
      const split = splitFrames(bytes, max);
      if (error !== null) {
        assert.equal(split, { error });
        return;
      }
      assert.ok('frames' in split);
      for (const frame of split.frames) assert.ok(frame.byteLength <= max);
      assert.equal(concat(split.frames.map(encodeFrame)), bytes);
    }),
    { numRuns: 2000 },
  );
});

test('framesOf is lazy: a record of a million keepalives is read one frame at a time', () => {
  const keepalives = new Uint8Array(frameHeaderBytes * 1_000_000);
  assert.is(checkFrames(keepalives, 0), null);
  let count = 0;
  let first: Uint8Array | undefined;
  for (const frame of framesOf(keepalives)) {
    first ??= frame;
    assert.is(frame, first, 'every keepalive is the one empty array: nothing allocated per frame');
    count += 1;
  }
  assert.is(count, 1_000_000);
});

test.run();
