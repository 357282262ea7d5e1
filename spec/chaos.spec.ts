// Real-network chaos (issue 16): three `paxmon mon` processes in network namespaces of their own,
// 16 MonClients doing config-key set/get/rm on 8 keys, and one round of a fixed seed's schedule of
// kill -9 + restart, SIGSTOP pauses, a one-way drop and a cut link (chaos/). The history must be
// linearizable per key, and the final reads after every fault healed must lose no acknowledged
// write; every monitor must be back in one quorum after each heal. About 60–90 s. Needs root,
// `ip` and `iptables`; anywhere else it prints why and counts as skipped, never as passed.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { planSchedule } from '../chaos/nemesis.ts';
import { quorumAllBoundMs, runChaos } from '../chaos/run.ts';
import { netnsUnavailable } from './support/netns.ts';
import { tempDir } from './support/process.ts';

const test = suite('chaos');

const seed = 16;
const nemeses = ['kill', 'pause', 'oneway', 'link'] as const;

test('the schedule is the seed’s: the same seed, the same steps; each nemesis once per round', () => {
  const one = planSchedule(seed, nemeses, 0, 2);
  assert.equal(one, planSchedule(seed, nemeses, 0, 2));
  assert.is(one.length, 8);
  assert.equal(new Set(one.slice(0, 4).map((step) => step.kind)).size, 4);
  assert.equal(new Set(one.slice(4).map((step) => step.kind)).size, 4);
  assert.not.equal(
    one.map((step) => step.kind),
    planSchedule(seed + 1, nemeses, 0, 2).map((step) => step.kind),
  );
  // Planning by time is a prefix of the same stream.
  const timed = planSchedule(seed, nemeses, 30);
  assert.equal(timed.slice(0, 4), one.slice(0, 4));
});

const title = `3 monitors, seed ${seed}, one round of ${nemeses.join(', ')}: linearizable, no acknowledged write lost`;
const unavailable = await netnsUnavailable();
if (unavailable !== undefined) {
  console.log(`chaos: skipped: ${unavailable}`);
  test.skip(title, () => {});
} else {
  test(title, async () => {
    const out = tempDir('chaos');
    let passed = false;
    try {
      const result = await runChaos({
        seconds: 60,
        rounds: 1,
        monitors: 3,
        seed,
        nemeses,
        clients: 16,
        keys: 8,
        rate: 100,
        out,
        log: () => {},
      });
      const { analysis, events } = result;
      console.log(result.summary);
      assert.equal(events.map((event) => event.kind).sort(), [...nemeses].sort(), 'each nemesis ran once');
      assert.ok(analysis.total > 500, `only ${analysis.total} operations`);
      assert.is(analysis.finalReads.ok, analysis.finalReads.keys, 'every key read after the heal');
      assert.equal(analysis.lostWrites, [], 'no acknowledged write lost');
      assert.equal(analysis.failedButRead, [], 'no write the client was told failed was read');
      assert.is(analysis.linearizable, 'ok', result.summary);
      assert.equal(result.exits, [], 'no monitor exited by itself');
      // The monitors ran the bundle frozen at the start, and the run says from which code.
      assert.match(result.summary, /monitors ran a bundle frozen at the start .* of (commit|not a git)/);
      assert.ok(existsSync(join(out, 'bundle', 'paxmon.mjs')) && existsSync(result.files.run));
      for (const recovery of analysis.recoveries)
        assert.ok(
          recovery.quorumAllAfterMs !== undefined,
          `no quorum of all within ${quorumAllBoundMs} ms after #${recovery.index} ${recovery.kind}`,
        );
      passed = true;
    } finally {
      if (passed) rmSync(out, { recursive: true, force: true });
      else console.log(`chaos: the run's history, timeline and monitor logs are in ${out}`);
    }
  });
}

test.run();
