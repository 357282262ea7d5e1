// Issue 16, chaos soak seed 16016 (finding 5): a client was told its write failed (r = -13,
// "authentication failed for client.admin") when the write had been applied. Two faults together:
// (1) a monitor that was starting refused every client's handshake with EACCES — actors/daemon.ts
//     bound the auth lookup only after createMonitor(), and the messenger listened before it (fixed:
//     it listens once the lookup is bound);
// (2) MonClient took an EACCES from onUnreachable as the command's final answer (r = -13), even
//     when an earlier attempt of the same command went to another monitor, which may have applied
//     it (fixed: once a request may have reached a monitor, an EACCES sends it to the next one).
// This spec reproduces (2) with a starting monitor's behaviour (1): monitor a takes the command and
// its connection drops before it answers; monitor b refuses the client's key as a starting monitor
// does. The command must not end as a final failure: it may have happened.
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MonClient, MonClientError } from '../actors/mon-client.ts';
import { encodeCryptoKey } from '../machines/crypto-key.ts';
import type { EntityName, Message } from '../transport/messages.ts';
import { Messenger } from '../transport/messenger.ts';

const fsid = '11111111-2222-4333-8444-555555555555';
const monSecret = new Uint8Array(randomBytes(16));
const adminSecret = new Uint8Array(randomBytes(16));
const adminKey = encodeCryptoKey(adminSecret, Date.now());

test('an EACCES from a starting monitor after an attempt went elsewhere is not the final answer of a write', async () => {
  const applied: string[][] = [];
  // mon.a: knows client.admin; records the command (as a leader that commits it), then goes away
  // before answering (killed).
  const a = new Messenger({
    name: 'mon.a' as EntityName,
    fsid,
    auth: {
      entity: 'mon.',
      secret: monSecret,
      keyFor: (e) => (e === 'client.admin' ? adminSecret : e === 'mon.' ? monSecret : undefined),
    },
  });
  a.setHandlers({
    onMessage(_from, message: Message) {
      if (message.type !== 'mon.command') return;
      applied.push(message.cmd);
      void a.close();
    },
  });
  const aAddr = await a.listen();
  // mon.b: starting — its auth lookup knows nobody but mon. yet.
  const b = new Messenger({
    name: 'mon.b' as EntityName,
    fsid,
    auth: { entity: 'mon.', secret: monSecret, keyFor: (e) => (e === 'mon.' ? monSecret : undefined) },
  });
  b.setHandlers({ onMessage() {} });
  const bAddr = await b.listen();
  const client = new MonClient({
    mons: [
      { name: 'a', addr: aAddr },
      { name: 'b', addr: bAddr },
    ],
    fsid,
    key: adminKey,
    attemptTimeoutMs: 500,
    timeoutMs: 2000,
  });
  let outcome: string;
  try {
    const reply = await client.command(['config-key', 'set', 'k', 'v']);
    outcome = `answer r=${reply.r} ${reply.rs}`;
  } catch (error) {
    outcome = error instanceof MonClientError ? `thrown ${error.code}` : String(error);
  } finally {
    await client.close();
    await a.close().catch(() => {});
    await b.close();
  }
  assert.equal(applied, [['config-key', 'set', 'k', 'v']], 'mon.a took the command');
  // Before the fix: "answer r=-13 authentication failed for client.admin" — a final failure of a
  // write that mon.a may have applied (in the soak, it had).
  assert.not.match(outcome, /r=-13/, outcome);
});

test.run();
