// Messenger throughput over loopback, in each session mode (issue 13: 'secure' encrypts and
// authenticates every record, 'crc' authenticates it; a record is one socket write's frames):
// mon.b streams mon.command messages to mon.a with a bounded window of messages in flight (below
// the queue bound, so nothing is dropped), then a ping-pong round trip with one message
// outstanding; last, the cost of sealing, opening and splitting records alone, of one frame and of
// 64 small frames (transport/session-crypto.ts, no sockets). Bounded: each phase runs for a fixed
// time.
// Both messengers run in this one process, so a message's seal and its open are both counted.
//   node --import tsx bench/transport.ts
import { randomBytes } from 'node:crypto';
import { encodeMessage } from '../transport/codec.ts';
import { encodeFrame, splitFrames } from '../transport/frame.ts';
import type { Message } from '../transport/messages.ts';
import { Messenger, monEntity } from '../transport/messenger.ts';
import { deriveSession, type SessionMode, sessionChannels } from '../transport/session-crypto.ts';
import { benchArgs } from './harness/args.ts';

benchArgs(
  'bench/transport.ts',
  'node --import tsx bench/transport.ts\nmessages per second over loopback TCP, per session mode (no options)\n',
  {},
);

const fsid = '5f0c3b4e-9a43-4d1e-8c7b-2f6a1d9e0b11';
const phaseMs = 2000;
const windowMessages = 2048;
const monSecret = new Uint8Array(randomBytes(16));

/** A mon.command whose frame (header included) is `frameBytes` long. */
function commandOfFrameBytes(frameBytes: number): Message {
  const message: Message = { type: 'mon.command', tid: 0, cmd: ['config-key', 'set', 'bench', ''] };
  const overhead = encodeFrame(encodeMessage(message)).byteLength;
  // The string header grows by a byte or two past 31 and 255 characters; settle it in a few tries.
  let fill = Math.max(0, frameBytes - overhead);
  for (let attempt = 0; attempt < 4; attempt++) {
    message.cmd[3] = 'x'.repeat(fill);
    const size = encodeFrame(encodeMessage(message)).byteLength;
    if (size === frameBytes) break;
    fill = Math.max(0, fill + frameBytes - size);
  }
  return message;
}

async function pair(mode: SessionMode): Promise<{ a: Messenger; b: Messenger; addr: string }> {
  const auth = { entity: monEntity, secret: monSecret, modes: [mode] };
  const a = new Messenger({ name: 'mon.a', fsid, rank: 0, auth });
  const b = new Messenger({ name: 'mon.b', fsid, rank: 1, auth });
  const addr = await a.listen();
  await b.listen();
  return { a, b, addr };
}

async function stream(mode: SessionMode, frameBytes: number): Promise<void> {
  const { a, b, addr } = await pair(mode);
  const message = commandOfFrameBytes(frameBytes);
  const actualFrameBytes = encodeFrame(encodeMessage(message)).byteLength;
  let sent = 0;
  let received = 0;
  let measuring = false;
  let done = false;
  const pump = (): void => {
    while (!done && sent - received < windowMessages) {
      b.send('mon.a', message, addr);
      sent++;
    }
  };
  let startReceived = 0;
  let startNs = 0n;
  const finished = new Promise<void>((resolve) => {
    a.setHandlers({
      onMessage: () => {
        received++;
        if (!measuring && received >= windowMessages * 4) {
          // Warm-up done (connection up, JIT warm): start the clock.
          measuring = true;
          startReceived = received;
          startNs = process.hrtime.bigint();
          setTimeout(() => {
            done = true;
            resolve();
          }, phaseMs);
        }
        if (sent - received < windowMessages / 2) pump();
      },
    });
  });
  pump();
  await finished;
  const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  const messages = received - startReceived;
  const rate = messages / seconds;
  console.log(
    `${mode.padEnd(6)}  stream ${String(actualFrameBytes).padStart(6)} B frames: ${Math.round(rate).toLocaleString('en-US').padStart(10)} msg/s` +
      `  ${(1e6 / rate).toFixed(2).padStart(6)} µs/msg` +
      `  ${((rate * actualFrameBytes) / 1e6).toFixed(1).padStart(7)} MB/s` +
      `  (dropped ${b.stats().dropped}, invalid ${a.stats().invalid})`,
  );
  await Promise.all([a.close(), b.close()]);
}

async function pingPong(mode: SessionMode): Promise<void> {
  const { a, b, addr } = await pair(mode);
  const bAddr = b.addr as string;
  let trips = 0;
  let done = false;
  const ping: Message = { type: 'mon.ping', op: 'ping', stamp: 0 };
  a.setHandlers({
    onMessage: (from, message) => a.send(from, { ...message, op: 'reply' } as Message, bAddr),
  });
  const finished = new Promise<void>((resolve) => {
    b.setHandlers({
      onMessage: () => {
        trips++;
        if (done) resolve();
        else b.send('mon.a', ping, addr);
      },
    });
  });
  b.send('mon.a', ping, addr);
  const startNs = process.hrtime.bigint();
  setTimeout(() => {
    done = true;
  }, phaseMs / 2);
  await finished;
  const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  console.log(
    `${mode.padEnd(6)}  ping-pong (one outstanding): ${Math.round(trips / seconds).toLocaleString('en-US')} round trips/s, ` +
      `${((seconds / trips) * 1e6).toFixed(1)} µs per round trip`,
  );
  await Promise.all([a.close(), b.close()]);
}

console.log(
  `paxmon transport bench — node ${process.version}, loopback TCP, window ${windowMessages} messages`,
);
/**
 * Seal, open and split records of `framesPerRecord` frames of `payloadBytes` in one session, as fast
 * as one core does it: the cost per frame.
 */
function sealOpen(mode: SessionMode, payloadBytes: number, framesPerRecord: number): void {
  const challenge = (): Uint8Array => new Uint8Array(randomBytes(32));
  const secrets = deriveSession(monSecret, {
    diallerHello: new Uint8Array(64),
    acceptorHello: new Uint8Array(64),
    diallerChallenge: challenge(),
    acceptorChallenge: challenge(),
  });
  const dialler = sessionChannels(secrets, mode, 'dialler');
  const acceptor = sessionChannels(secrets, mode, 'acceptor');
  const payloads = Array.from({ length: framesPerRecord }, () => new Uint8Array(randomBytes(payloadBytes)));
  const round = (records: number): void => {
    for (let i = 0; i < records; i++) {
      const record = dialler.sealer.seal(payloads);
      const plaintext = acceptor.opener.open(record.subarray(4));
      if (plaintext === null) throw new Error('a sealed record did not open');
      const split = splitFrames(plaintext, payloadBytes);
      if ('error' in split || split.frames.length !== framesPerRecord)
        throw new Error('a record did not split');
    }
  };
  const frames = payloadBytes > 1024 ? 20_000 : 100_000;
  const records = Math.max(1, Math.round(frames / framesPerRecord));
  round(Math.max(1, Math.round(records / 20)));
  const startNs = process.hrtime.bigint();
  round(records);
  const microseconds = Number(process.hrtime.bigint() - startNs) / 1e3 / (records * framesPerRecord);
  console.log(
    `${mode.padEnd(6)}  seal + open alone, ${String(framesPerRecord).padStart(2)} × ${String(payloadBytes).padStart(5)} B frames a record: ${microseconds.toFixed(2)} µs per frame`,
  );
}

for (const mode of ['crc', 'secure'] as const) {
  await stream(mode, 100);
  await stream(mode, 16 * 1024);
  await pingPong(mode);
}
for (const mode of ['crc', 'secure'] as const) {
  sealOpen(mode, 100, 1);
  sealOpen(mode, 100, 64);
  sealOpen(mode, 16 * 1024, 1);
}
