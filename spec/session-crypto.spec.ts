// Property tests of the session cryptography (transport/session-crypto.ts), the part of issue 13 an
// attacker on the wire meets: whatever is done to sealed records — a bit flipped, bytes cut or
// added, records reordered, replayed, dropped, taken from the other direction or another session —
// they do not open; a record that opens gives back its frames in order and whole; and no handshake
// completes with a wrong key, with a recorded handshake replayed to a side that drew a new
// challenge, or with a hello altered on the way (another name, another entity, a downgraded mode).
import { createCipheriv, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeValue } from '../transport/codec.ts';
import { FrameDecoder, frameHeaderBytes, splitFrames } from '../transport/frame.ts';
import {
  authenticate,
  challengeBytes,
  deriveSession,
  proofMatches,
  RecordOpener,
  RecordSealer,
  recordOverheadBytes,
  type SessionMode,
  type SessionSecrets,
  sealTagBytes,
  sessionChannels,
  type Transcript,
} from '../transport/session-crypto.ts';

const test = suite('session-crypto');

const modes: SessionMode[] = ['crc', 'secure'];
const secretArb = fc.uint8Array({ minLength: 16, maxLength: 32 });
const challengeArb = fc.uint8Array({ minLength: challengeBytes, maxLength: challengeBytes });
const modeArb = fc.constantFrom<SessionMode>(...modes);
const payloadsArb = fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 8 });
/** The writes of a stream: each one record of one or more frames (empty ones are keepalives). */
const writesArb = fc.array(payloadsArb, { minLength: 1, maxLength: 6 });

interface HelloFields {
  name: string;
  entity: string;
  challenge: Uint8Array;
  modes: SessionMode[];
}

/** The two hellos of a handshake as the messenger encodes them, and the transcript they make. */
function transcriptOf(dialler: HelloFields, acceptorChallenge: Uint8Array, mode: SessionMode): Transcript {
  const diallerHello = encodeValue({ banner: 'paxmon', protocolVersion: 2, nonce: 1, ...dialler });
  const acceptorHello = encodeValue({
    banner: 'paxmon',
    protocolVersion: 2,
    name: 'mon.a',
    nonce: 2,
    challenge: acceptorChallenge,
    mode,
  });
  return {
    diallerHello,
    acceptorHello,
    diallerChallenge: dialler.challenge,
    acceptorChallenge,
  };
}

function hello(challenge: Uint8Array, overrides: Partial<HelloFields> = {}): HelloFields {
  return { name: 'client.x', entity: 'client.admin', challenge, modes: ['crc', 'secure'], ...overrides };
}

/** Seal each write as one record and cut the stream back into the sealed records (length prefix off). */
function sealedRecords(sealer: RecordSealer, writes: Uint8Array[][]): Uint8Array[] {
  const stream = Buffer.concat(writes.map((payloads) => sealer.seal(payloads)));
  const { frames, error } = new FrameDecoder().push(stream);
  assert.is(error, undefined);
  assert.is(frames.length, writes.length);
  return frames.map((record) => new Uint8Array(record));
}

/** A record opened and cut into its frames (copies); null when it does not open or is not whole frames. */
function openFrames(opener: RecordOpener, record: Uint8Array): Uint8Array[] | null {
  const plaintext = opener.open(record);
  if (plaintext === null) return null;
  const split = splitFrames(plaintext, 0xffff_ffff);
  return 'error' in split ? null : split.frames.map((frame) => new Uint8Array(frame));
}

/** The bytes a record of `payloads` holds once opened, before the tag: each payload length-prefixed. */
function plaintextOf(payloads: Uint8Array[]): Buffer {
  return Buffer.concat(
    payloads.flatMap((payload) => {
      const header = Buffer.alloc(frameHeaderBytes);
      header.writeUInt32BE(payload.byteLength);
      return [header, payload];
    }),
  );
}

/** A fresh session's channels for both sides. */
function session(secrets: SessionSecrets, mode: SessionMode) {
  return {
    dialler: sessionChannels(secrets, mode, 'dialler'),
    acceptor: sessionChannels(secrets, mode, 'acceptor'),
  };
}

const secretsArb = fc
  .tuple(secretArb, challengeArb, challengeArb, modeArb)
  .map(([secret, diallerChallenge, acceptorChallenge, mode]) => ({
    mode,
    secrets: deriveSession(secret, transcriptOf(hello(diallerChallenge), acceptorChallenge, mode)),
  }));

// --- sealing: one record per write ---------------------------------------------------------------

test('records open in order to the frames sealed, whole and in order, both ways', () => {
  fc.assert(
    fc.property(secretsArb, writesArb, writesArb, ({ secrets, mode }, out, back) => {
      const { dialler, acceptor } = session(secrets, mode);
      const forward = sealedRecords(dialler.sealer, out);
      // A record is its frames, each length-prefixed, and one tag: nothing per frame beyond the prefix.
      assert.equal(
        forward.map((record) => record.byteLength),
        out.map((payloads) => plaintextOf(payloads).byteLength + sealTagBytes),
      );
      assert.equal(
        forward.map((record) => openFrames(acceptor.opener, record)),
        out,
      );
      const backward = sealedRecords(acceptor.sealer, back);
      assert.equal(
        backward.map((record) => openFrames(dialler.opener, record)),
        back,
      );
      assert.is(dialler.sealer.seq, out.length);
      assert.is(acceptor.opener.seq, out.length);
      assert.is(dialler.opener.seq, back.length);
    }),
    { numRuns: 200 },
  );
});

test('the record format: crc is the plaintext and HMAC-SHA256(seq ‖ plaintext) cut to 16 bytes; secure is AES-256-GCM under salt ‖ seq', () => {
  fc.assert(
    fc.property(secretsArb, writesArb, ({ secrets }, writes) => {
      const direction = secrets.diallerToAcceptor;
      const crc = sealedRecords(new RecordSealer('crc', direction), writes);
      const secure = sealedRecords(new RecordSealer('secure', direction), writes);
      for (const [seq, payloads] of writes.entries()) {
        const plaintext = plaintextOf(payloads);
        const seqBytes = Buffer.alloc(8);
        seqBytes.writeBigUInt64BE(BigInt(seq));
        const tag = createHmac('sha256', direction.key).update(seqBytes).update(plaintext).digest();
        assert.equal(crc[seq], new Uint8Array(Buffer.concat([plaintext, tag.subarray(0, sealTagBytes)])));
        const iv = Buffer.concat([direction.ivSalt, seqBytes]);
        const cipher = createCipheriv('aes-256-gcm', direction.key, iv, { authTagLength: sealTagBytes });
        const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
        assert.equal(secure[seq], new Uint8Array(sealed));
      }
    }),
    { numRuns: 100 },
  );
  assert.is(recordOverheadBytes, frameHeaderBytes + sealTagBytes);
  const secrets = deriveSession(
    new Uint8Array(16),
    transcriptOf(hello(new Uint8Array(32)), new Uint8Array(32), 'crc'),
  );
  const sealer = new RecordSealer('crc', secrets.diallerToAcceptor);
  assert.throws(() => sealer.seal([]), /at least one frame/);
  assert.is(sealer.seq, 0, 'nothing sealed, no sequence number spent');
});

test('secure mode hides the payload; crc mode carries it in the clear, authenticated', () => {
  const secrets = deriveSession(
    new Uint8Array(16).fill(7),
    transcriptOf(hello(new Uint8Array(32)), new Uint8Array(32), 'crc'),
  );
  const payload = new TextEncoder().encode('config-key set db/password hunter2');
  const [crc] = sealedRecords(new RecordSealer('crc', secrets.diallerToAcceptor), [[payload]]);
  const [secure] = sealedRecords(new RecordSealer('secure', secrets.diallerToAcceptor), [[payload, payload]]);
  const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString('latin1');
  assert.ok(text(crc).includes('hunter2'));
  assert.not.ok(text(secure).includes('hunter2'));
  // The same record twice seals differently (the sequence number is in every tag and IV).
  const sealer = new RecordSealer('secure', secrets.diallerToAcceptor);
  const [first, second] = sealedRecords(sealer, [[payload], [payload]]);
  assert.not.equal(first, second);
});

test('any bit flipped in a record: none of its frames opens, nor any record after it', () => {
  fc.assert(
    fc.property(secretsArb, writesArb, fc.nat(), fc.nat(), ({ secrets, mode }, writes, which, bit) => {
      const { dialler, acceptor } = session(secrets, mode);
      const records = sealedRecords(dialler.sealer, writes);
      const index = which % records.length;
      const target = records[index] as Uint8Array;
      const position = bit % (target.byteLength * 8);
      target[position >> 3] = ((target[position >> 3] as number) ^ (1 << (position & 7))) & 0xff;
      for (let i = 0; i < index; i++) assert.ok(openFrames(acceptor.opener, records[i] as Uint8Array));
      assert.is(acceptor.opener.open(target), null);
      // The session is over: even the untouched records after it are refused.
      for (let i = index + 1; i < records.length; i++)
        assert.is(acceptor.opener.open(records[i] as Uint8Array), null);
    }),
    { numRuns: 300 },
  );
});

test('a record cut short (between its frames or inside one), cut from the front, extended, or emptied does not open', () => {
  fc.assert(
    fc.property(
      secretsArb,
      payloadsArb,
      fc.oneof(
        fc.record({ cut: fc.integer({ min: 1, max: 2000 }) }),
        fc.record({ front: fc.integer({ min: 1, max: 2000 }) }),
        fc.record({ extra: fc.uint8Array({ minLength: 1, maxLength: 20 }) }),
      ),
      ({ secrets, mode }, payloads, change) => {
        const { dialler, acceptor } = session(secrets, mode);
        const [record] = sealedRecords(dialler.sealer, [payloads]) as [Uint8Array];
        let altered: Uint8Array;
        if ('cut' in change) altered = record.subarray(0, Math.max(0, record.byteLength - change.cut));
        else if ('front' in change) altered = record.subarray(Math.min(record.byteLength, change.front));
        else altered = Buffer.concat([record, change.extra]);
        assert.is(acceptor.opener.open(altered), null);
      },
    ),
    { numRuns: 300 },
  );
});

test('two records joined into one, or a record and part of the next, do not open', () => {
  fc.assert(
    fc.property(secretsArb, payloadsArb, payloadsArb, fc.nat(), ({ secrets, mode }, first, second, at) => {
      const { dialler } = session(secrets, mode);
      const [a, b] = sealedRecords(dialler.sealer, [first, second]) as [Uint8Array, Uint8Array];
      const cut = 1 + (at % b.byteLength);
      for (const joined of [Buffer.concat([a, b]), Buffer.concat([a, b.subarray(0, cut)])]) {
        assert.is(session(secrets, mode).acceptor.opener.open(joined), null);
      }
    }),
    { numRuns: 200 },
  );
});

test('records reordered, replayed or dropped do not open, even records with the same frames', () => {
  fc.assert(
    fc.property(
      secretsArb,
      fc.array(
        fc.array(fc.constantFrom(new Uint8Array([1]), new Uint8Array([2]), new Uint8Array(0)), {
          minLength: 1,
          maxLength: 3,
        }),
        { minLength: 2, maxLength: 8 },
      ),
      fc.nat(),
      fc.nat(),
      ({ secrets, mode }, writes, a, b) => {
        const { dialler, acceptor } = session(secrets, mode);
        const records = sealedRecords(dialler.sealer, writes);
        // Deliver records 0..i-1 in order, then record j ≠ i (a reorder, a replay of an earlier
        // record, or a record after a dropped one): it never opens.
        const i = a % records.length;
        let j = b % records.length;
        if (j === i) j = (j + 1) % records.length;
        for (let k = 0; k < i; k++) assert.ok(openFrames(acceptor.opener, records[k] as Uint8Array));
        assert.is(acceptor.opener.open(records[j] as Uint8Array), null);
      },
    ),
    { numRuns: 300 },
  );
});

test('a record sealed for the other direction or another session, or in the other mode, does not open', () => {
  fc.assert(
    fc.property(
      secretArb,
      challengeArb,
      challengeArb,
      challengeArb,
      modeArb,
      writesArb,
      (secret, diallerChallenge, acceptorChallenge, otherChallenge, mode, writes) => {
        fc.pre(Buffer.compare(acceptorChallenge, otherChallenge) !== 0);
        const secrets = deriveSession(secret, transcriptOf(hello(diallerChallenge), acceptorChallenge, mode));
        const { dialler, acceptor } = session(secrets, mode);
        // Reflected: the dialler's own records fed back to it.
        const reflected = sealedRecords(dialler.sealer, writes);
        assert.is(dialler.opener.open(reflected[0] as Uint8Array), null);
        // The same secret and dialler challenge, but a session whose acceptor drew another challenge.
        const other = deriveSession(secret, transcriptOf(hello(diallerChallenge), otherChallenge, mode));
        const foreign = sealedRecords(session(other, mode).dialler.sealer, writes);
        assert.is(acceptor.opener.open(foreign[0] as Uint8Array), null);
        // And a record of the right session in the wrong mode.
        const otherMode: SessionMode = mode === 'crc' ? 'secure' : 'crc';
        const [wrongMode] = sealedRecords(new RecordSealer(otherMode, secrets.diallerToAcceptor), writes);
        assert.is(new RecordOpener(mode, secrets.diallerToAcceptor).open(wrongMode as Uint8Array), null);
      },
    ),
    { numRuns: 200 },
  );
});

// --- the handshake's proofs ---------------------------------------------------------------------

test('the proofs verify with the same secret and transcript, and with nothing else', () => {
  fc.assert(
    fc.property(secretArb, secretArb, challengeArb, challengeArb, modeArb, (secret, wrong, dc, ac, mode) => {
      fc.pre(Buffer.compare(secret, wrong) !== 0);
      const transcript = transcriptOf(hello(dc), ac, mode);
      const dialler = deriveSession(secret, transcript);
      // The acceptor, with the right key: the session both derive is the same.
      const accepted = authenticate(secret, transcript, dialler.diallerProof);
      assert.ok(accepted);
      assert.ok(proofMatches(accepted.acceptorProof, dialler.acceptorProof));
      assert.equal(accepted.diallerToAcceptor.key, dialler.diallerToAcceptor.key);
      // A wrong key, on either side.
      assert.is(authenticate(wrong, transcript, dialler.diallerProof), null);
      assert.is(authenticate(secret, transcript, deriveSession(wrong, transcript).diallerProof), null);
      assert.not.ok(proofMatches(dialler.acceptorProof, deriveSession(wrong, transcript).acceptorProof));
      // The acceptor's proof is no dialler's proof (nothing can be reflected), nor is garbage.
      assert.is(authenticate(secret, transcript, dialler.acceptorProof), null);
      assert.is(authenticate(secret, transcript, undefined), null);
      assert.is(authenticate(secret, transcript, dialler.diallerProof.subarray(0, 16)), null);
      assert.is(authenticate(secret, transcript, 'proof'), null);
    }),
    { numRuns: 150 },
  );
});

test('a recorded handshake replayed to an acceptor that drew a new challenge fails', () => {
  fc.assert(
    fc.property(
      secretArb,
      challengeArb,
      challengeArb,
      challengeArb,
      modeArb,
      (secret, dc, recorded, fresh, mode) => {
        fc.pre(Buffer.compare(recorded, fresh) !== 0);
        // The attacker replays the dialler's recorded hello and proof; the acceptor answers with a
        // fresh challenge, so the transcript it checks against is not the recorded one.
        const recordedProof = deriveSession(secret, transcriptOf(hello(dc), recorded, mode)).diallerProof;
        assert.is(authenticate(secret, transcriptOf(hello(dc), fresh, mode), recordedProof), null);
        // Replayed the other way: a recorded acceptor proof, to a dialler with a fresh challenge.
        const recordedAcceptor = deriveSession(secret, transcriptOf(hello(dc), recorded, mode)).acceptorProof;
        const now = deriveSession(secret, transcriptOf(hello(fresh), recorded, mode));
        assert.not.ok(proofMatches(now.acceptorProof, recordedAcceptor));
      },
    ),
    { numRuns: 150 },
  );
});

test('a hello altered on the way (name, entity, offered modes, chosen mode) fails the proofs', () => {
  const alterations: [string, (h: HelloFields) => HelloFields, SessionMode?][] = [
    ['another session name', (h) => ({ ...h, name: 'mon.x' })],
    ['another entity', (h) => ({ ...h, entity: 'client.other' })],
    ['name and entity swapped', (h) => ({ ...h, name: h.entity, entity: h.name })],
    ['offered modes downgraded', (h) => ({ ...h, modes: ['crc'] })],
    ['chosen mode changed in the reply', (h) => h, 'secure'],
  ];
  fc.assert(
    fc.property(secretArb, challengeArb, challengeArb, (secret, dc, ac) => {
      const sent = hello(dc);
      const dialler = deriveSession(secret, transcriptOf(sent, ac, 'crc'));
      for (const [label, alter, mode] of alterations) {
        // What the acceptor saw (and answered) differs from what the dialler sent and received.
        const seen = transcriptOf(alter(sent), ac, mode ?? 'crc');
        assert.is(authenticate(secret, seen, dialler.diallerProof), null, label);
        assert.not.ok(proofMatches(dialler.acceptorProof, deriveSession(secret, seen).acceptorProof), label);
      }
    }),
    { numRuns: 100 },
  );
});

test('challenges must be 32 bytes', () => {
  const transcript = transcriptOf(hello(new Uint8Array(32)), new Uint8Array(32), 'crc');
  assert.throws(
    () => deriveSession(new Uint8Array(16), { ...transcript, diallerChallenge: new Uint8Array(8) }),
    /dialler challenge/,
  );
  assert.throws(
    () => deriveSession(new Uint8Array(16), { ...transcript, acceptorChallenge: new Uint8Array(33) }),
    /acceptor challenge/,
  );
});

test.run();
