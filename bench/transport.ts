// Messenger throughput over loopback: mon.b streams mon.command messages to mon.a with a bounded
// window of messages in flight (below the queue bound, so nothing is dropped), then a ping-pong
// round trip with one message outstanding. Bounded: each phase runs for a fixed time.
//   node --import tsx bench/transport.ts
import { encodeMessage } from '../transport/codec.ts';
import { encodeFrame } from '../transport/frame.ts';
import type { Message } from '../transport/messages.ts';
import { Messenger } from '../transport/messenger.ts';

const fsid = '5f0c3b4e-9a43-4d1e-8c7b-2f6a1d9e0b11';
const phaseMs = 2000;
const windowMessages = 2048;

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

async function pair(): Promise<{ a: Messenger; b: Messenger; addr: string }> {
  const a = new Messenger({ name: 'mon.a', fsid, rank: 0 });
  const b = new Messenger({ name: 'mon.b', fsid, rank: 1 });
  const addr = await a.listen();
  await b.listen();
  return { a, b, addr };
}

async function stream(frameBytes: number): Promise<void> {
  const { a, b, addr } = await pair();
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
    `stream  ${String(actualFrameBytes).padStart(6)} B frames: ${Math.round(rate).toLocaleString('en-US').padStart(10)} msg/s` +
      `  ${((rate * actualFrameBytes) / 1e6).toFixed(1).padStart(7)} MB/s` +
      `  (dropped ${b.stats().dropped}, invalid ${a.stats().invalid})`,
  );
  await Promise.all([a.close(), b.close()]);
}

async function pingPong(): Promise<void> {
  const { a, b, addr } = await pair();
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
    `ping-pong (one outstanding): ${Math.round(trips / seconds).toLocaleString('en-US')} round trips/s, ` +
      `${((seconds / trips) * 1e6).toFixed(1)} µs per round trip`,
  );
  await Promise.all([a.close(), b.close()]);
}

console.log(
  `paxmon transport bench — node ${process.version}, loopback TCP, window ${windowMessages} messages`,
);
await stream(100);
await stream(16 * 1024);
await pingPong();
