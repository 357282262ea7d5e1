// Property tests of the session cryptography (transport/session-crypto.ts), the part of issue 13 an
// attacker on the wire meets: whatever is done to sealed frames — a bit flipped, bytes cut or
// added, frames reordered, replayed, dropped, taken from the other direction or another session —
// they do not open; and no handshake completes with a wrong key, with a recorded handshake
// replayed to a side that drew a new challenge, or with a hello altered on the way (another name,
// another entity, a downgraded mode).
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeValue } from '../transport/codec.ts';
import { FrameDecoder } from '../transport/frame.ts';
import {
  authenticate,
  challengeBytes,
  deriveSession,
  FrameOpener,
  FrameSealer,
  proofMatches,
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

/** Seal payloads with `sealer` and cut the result back into the sealed frames (length prefix off). */
function sealedFrames(sealer: FrameSealer, payloads: Uint8Array[]): Uint8Array[] {
  const bytes = sealer.seal(
    payloads,
    payloads.reduce((sum, payload) => sum + payload.byteLength, 0),
  );
  const { frames, error } = new FrameDecoder().push(bytes);
  assert.is(error, undefined);
  return frames.map((frame) => new Uint8Array(frame));
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

// --- sealing -------------------------------------------------------------------------------------

test('sealed frames open in order to what was sealed, both ways, each frame its tag longer', () => {
  fc.assert(
    fc.property(secretsArb, payloadsArb, payloadsArb, ({ secrets, mode }, out, back) => {
      const { dialler, acceptor } = session(secrets, mode);
      const forward = sealedFrames(dialler.sealer, out);
      assert.equal(
        forward.map((frame) => frame.byteLength),
        out.map((payload) => payload.byteLength + sealTagBytes),
      );
      assert.equal(
        forward.map((frame) => new Uint8Array(acceptor.opener.open(frame) ?? [0xff])),
        out,
      );
      const backward = sealedFrames(acceptor.sealer, back);
      assert.equal(
        backward.map((frame) => new Uint8Array(dialler.opener.open(frame) ?? [0xff])),
        back,
      );
      assert.is(acceptor.opener.seq, out.length);
      assert.is(dialler.opener.seq, back.length);
    }),
    { numRuns: 200 },
  );
});

test('secure mode hides the payload; crc mode carries it in the clear, authenticated', () => {
  const secrets = deriveSession(
    new Uint8Array(16).fill(7),
    transcriptOf(hello(new Uint8Array(32)), new Uint8Array(32), 'crc'),
  );
  const payload = new TextEncoder().encode('config-key set db/password hunter2');
  const [crc] = sealedFrames(new FrameSealer('crc', secrets.diallerToAcceptor), [payload]);
  const [secure] = sealedFrames(new FrameSealer('secure', secrets.diallerToAcceptor), [payload]);
  const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString('latin1');
  assert.ok(text(crc).includes('hunter2'));
  assert.not.ok(text(secure).includes('hunter2'));
  // The same payload twice seals differently (the sequence number is in every tag and IV).
  const sealer = new FrameSealer('secure', secrets.diallerToAcceptor);
  const [first, second] = sealedFrames(sealer, [payload, payload]);
  assert.not.equal(first, second);
});

test('any bit flipped in a sealed frame: it does not open, nor does any frame after it', () => {
  fc.assert(
    fc.property(secretsArb, payloadsArb, fc.nat(), fc.nat(), ({ secrets, mode }, payloads, which, bit) => {
      const { dialler, acceptor } = session(secrets, mode);
      const frames = sealedFrames(dialler.sealer, payloads);
      const index = which % frames.length;
      const target = frames[index] as Uint8Array;
      const position = bit % (target.byteLength * 8);
      (target as Uint8Array)[position >> 3] =
        ((target[position >> 3] as number) ^ (1 << (position & 7))) & 0xff;
      for (let i = 0; i < index; i++) assert.ok(acceptor.opener.open(frames[i] as Uint8Array));
      assert.is(acceptor.opener.open(target), null);
      // The session is over: even the untouched frames after it are refused.
      for (let i = index + 1; i < frames.length; i++)
        assert.is(acceptor.opener.open(frames[i] as Uint8Array), null);
    }),
    { numRuns: 300 },
  );
});

test('a sealed frame cut short, extended, or emptied does not open', () => {
  fc.assert(
    fc.property(
      secretsArb,
      fc.uint8Array({ maxLength: 200 }),
      fc.oneof(
        fc.record({ cut: fc.integer({ min: 1, max: 300 }) }),
        fc.record({ extra: fc.uint8Array({ minLength: 1, maxLength: 20 }) }),
        fc.record({ front: fc.integer({ min: 1, max: 300 }) }),
      ),
      ({ secrets, mode }, payload, change) => {
        const { dialler, acceptor } = session(secrets, mode);
        const [frame] = sealedFrames(dialler.sealer, [payload]) as [Uint8Array];
        let altered: Uint8Array;
        if ('cut' in change) altered = frame.subarray(0, Math.max(0, frame.byteLength - change.cut));
        else if ('front' in change) altered = frame.subarray(Math.min(frame.byteLength, change.front));
        else altered = Buffer.concat([frame, change.extra]);
        assert.is(acceptor.opener.open(altered), null);
      },
    ),
    { numRuns: 300 },
  );
});

test('frames reordered, replayed or dropped do not open, even frames with the same payload', () => {
  fc.assert(
    fc.property(
      secretsArb,
      fc.array(fc.constantFrom(new Uint8Array([1]), new Uint8Array([2]), new Uint8Array(0)), {
        minLength: 2,
        maxLength: 8,
      }),
      fc.nat(),
      fc.nat(),
      ({ secrets, mode }, payloads, a, b) => {
        const { dialler, acceptor } = session(secrets, mode);
        const frames = sealedFrames(dialler.sealer, payloads);
        // Deliver frames 0..i-1 in order, then frame j ≠ i (a reorder, a replay of an earlier
        // frame, or a frame after a dropped one): it never opens.
        const i = a % frames.length;
        let j = b % frames.length;
        if (j === i) j = (j + 1) % frames.length;
        for (let k = 0; k < i; k++) assert.ok(acceptor.opener.open(frames[k] as Uint8Array));
        assert.is(acceptor.opener.open(frames[j] as Uint8Array), null);
      },
    ),
    { numRuns: 300 },
  );
});

test('a frame sealed for the other direction or another session does not open', () => {
  fc.assert(
    fc.property(
      secretArb,
      challengeArb,
      challengeArb,
      challengeArb,
      modeArb,
      payloadsArb,
      (secret, diallerChallenge, acceptorChallenge, otherChallenge, mode, payloads) => {
        fc.pre(Buffer.compare(acceptorChallenge, otherChallenge) !== 0);
        const secrets = deriveSession(secret, transcriptOf(hello(diallerChallenge), acceptorChallenge, mode));
        const { dialler, acceptor } = session(secrets, mode);
        // Reflected: the dialler's own frames fed back to it.
        const reflected = sealedFrames(dialler.sealer, payloads);
        assert.is(dialler.opener.open(reflected[0] as Uint8Array), null);
        // The same secret and dialler challenge, but a session whose acceptor drew another challenge.
        const other = deriveSession(secret, transcriptOf(hello(diallerChallenge), otherChallenge, mode));
        const foreign = sealedFrames(session(other, mode).dialler.sealer, payloads);
        assert.is(acceptor.opener.open(foreign[0] as Uint8Array), null);
        // And a frame of the right session in the wrong mode.
        const otherMode: SessionMode = mode === 'crc' ? 'secure' : 'crc';
        const [wrongMode] = sealedFrames(new FrameSealer(otherMode, secrets.diallerToAcceptor), payloads);
        assert.is(new FrameOpener(mode, secrets.diallerToAcceptor).open(wrongMode as Uint8Array), null);
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
