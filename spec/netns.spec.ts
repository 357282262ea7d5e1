// A real network (issue 20, "Rejoin after an isolation"): three `paxmon mon` processes, one per
// network namespace, joined by a bridge made for the run. The leader is cut off with iptables —
// every packet in and out of its link dropped, so its TCP connections neither fail nor move —
// for 8 s, then the network heals, and the isolated monitor must be back in the quorum within
// mon_probe_timeout + an election + the messenger's redial. Needs root, `ip` and `iptables`;
// anywhere else it prints why and counts as skipped, never as passed.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { keySecret } from '../actors/keyring.ts';
import { newClusterKeyring } from '../actors/mkfs.ts';
import { MonClient } from '../actors/mon-client.ts';
import { mkfs, monitorCommand } from '../cli/cluster.ts';
import { defaultConfig } from '../machines/config.ts';
import type { EntityName } from '../transport/messages.ts';
import { Messenger, messengerTimingDefaults } from '../transport/messenger.ts';
import { Signal } from './fixtures/wait.ts';
import {
  createLab,
  interfaceNameBytesMax,
  type LabHost,
  netnsUnavailable,
  planLab,
} from './support/netns.ts';
import { pollUntil, type QuorumStatus, repoRoot, tempDir } from './support/process.ts';

const test = suite('netns');

const hostNames = ['a', 'b', 'c'];
const monPort = 6789;
/** As long as the isolations of the report (7–9 s): longer than readTimeoutMs, so connections die. */
const isolationMs = 8000;
/**
 * mon_probe_timeout + an election, plus the messenger's redial: a dial whose SYNs went out during
 * the isolation has failed within connectTimeoutMs, and the next follows within the backoff.
 */
const rejoinBoundMs =
  defaultConfig.monProbeTimeoutMs +
  defaultConfig.monElectionTimeoutMs +
  messengerTimingDefaults.connectTimeoutMs +
  messengerTimingDefaults.reconnectMs.max;

interface MonStatus {
  name: string;
  rank: number;
  state: string;
  quorum: number[];
}

const decoder = new TextDecoder();
/** The run's cluster keyring: every monitor's mon. key, and client.admin for `ask`. */
const keyring = newClusterKeyring();
const adminKeyText = keyring.find((e) => e.entity === 'client.admin')?.key as string;

/** One command to `hosts`, bounded; the parsed answer, or undefined when none answered r = 0. */
async function ask<T>(hosts: readonly LabHost[], fsid: string, cmd: string[]): Promise<T | undefined> {
  const client = new MonClient({
    mons: hosts.map((host) => ({ name: host.name, addr: `${host.ip}:${monPort}` })),
    fsid,
    attemptTimeoutMs: 250,
    timeoutMs: 500,
    key: adminKeyText,
  });
  try {
    const reply = await client.command(cmd);
    return reply.r === 0 ? (JSON.parse(decoder.decode(reply.data)) as T) : undefined;
  } finally {
    await client.close();
  }
}

function tail(file: string, lines: number): string {
  if (!existsSync(file)) return `(no ${file})`;
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

test('the lab plan: names unique per run, interface names within IFNAMSIZ, one /24', () => {
  const plan = planLab(hostNames, 'z9y8x7', 123);
  assert.equal(
    plan.hosts.map((host) => [host.netns, host.ip]),
    [
      ['pm-a-z9y8x7', '10.99.123.1'],
      ['pm-b-z9y8x7', '10.99.123.2'],
      ['pm-c-z9y8x7', '10.99.123.3'],
    ],
  );
  assert.is(plan.rootIp, '10.99.123.254');
  const interfaces = [plan.rootIface, ...plan.hosts.map((host) => host.iface)];
  assert.ok(interfaces.every((name) => name.length <= interfaceNameBytesMax && name.includes('z9y8x7')));
  assert.is(new Set(interfaces).size, interfaces.length);
  assert.throws(() => planLab(hostNames, 'Bad-Suffix', 1), /suffix/);
  assert.throws(() => planLab(['toolong'], 'x', 1), /host name/);
});

const title = `an isolated leader (iptables DROP for ${isolationMs / 1000} s) is back in the quorum within ${rejoinBoundMs} ms of the heal`;
const unavailable = await netnsUnavailable();
if (unavailable !== undefined) {
  console.log(`netns: skipped: ${unavailable}`);
  test.skip(title, () => {});
} else {
  test(title, async () => {
    const dir = tempDir('netns');
    const lab = await createLab(hostNames);
    let isolated: LabHost | undefined;
    try {
      const fsid = randomUUID();
      const mons = lab.hosts.map((host) => `${host.name}=${host.ip}:${monPort}`);
      for (const host of lab.hosts)
        await mkfs({ dir: join(dir, host.name), name: host.name, fsid, mons, keyring });
      for (const host of lab.hosts) {
        const monDir = join(dir, host.name);
        const argv = [
          process.execPath,
          ...monitorCommand(),
          'mon',
          '--dir',
          monDir,
          '--log-file',
          join(monDir, 'log'),
        ];
        lab.spawn(host, argv, join(monDir, 'out'), repoRoot);
      }
      const formed = await pollUntil(
        'a quorum of 3',
        30_000,
        async () => {
          const status = await ask<QuorumStatus>(lab.hosts, fsid, ['quorum_status']);
          return status?.quorum.length === 3 ? status : undefined;
        },
        { intervalMs: 100 },
      );
      const leader = lab.hosts.find((host) => host.name === formed.quorum_leader_name);
      if (!leader) throw new Error(`the leader ${formed.quorum_leader_name} is none of the lab's hosts`);
      const others = lab.hosts.filter((host) => host !== leader);

      await lab.isolate(leader);
      isolated = leader;
      const isolatedAt = Date.now();

      // Meanwhile, on the real network: a dial to the isolated monitor hangs (its SYNs are
      // dropped) until the connect bound fails it, and the other two elect a leader.
      const probe = new Messenger({
        name: 'client.probe',
        fsid,
        connectTimeoutMs: 300,
        auth: { entity: 'client.admin', secret: keySecret(adminKeyText) },
      });
      const signal = new Signal();
      const unreachable: string[] = [];
      probe.setHandlers({
        onMessage() {},
        onUnreachable: (_peer: EntityName, reason: string) => {
          unreachable.push(reason);
          signal.notify();
        },
      });
      try {
        probe.send(
          `mon.${leader.name}`,
          { type: 'mon.command', tid: 1, cmd: ['mon_status'] },
          `${leader.ip}:${monPort}`,
        );
        await signal.until(() => unreachable.length > 0, 'a dial to the isolated monitor to fail');
        assert.match(unreachable[0] ?? '', /connect timed out after 300 ms/);
      } finally {
        await probe.close();
      }
      const two = await pollUntil(
        'a quorum of the other two',
        isolationMs,
        async () => {
          const status = await ask<QuorumStatus>(others, fsid, ['quorum_status']);
          return status?.quorum.length === 2 && !status.quorum_names.includes(leader.name)
            ? status
            : undefined;
        },
        { intervalMs: 100 },
      );
      assert.ok(two.election_epoch > formed.election_epoch);

      // The isolation lasts as long as in the report: a fault schedule, not a wait for an event.
      await pollUntil(
        'the end of the isolation',
        isolationMs + 1000,
        async () => (Date.now() - isolatedAt >= isolationMs ? true : undefined),
        { intervalMs: 20 },
      );
      await lab.heal(leader);
      const healedAt = Date.now();
      await pollUntil(
        `mon.${leader.name} back in the quorum`,
        30_000,
        async () => {
          const status = await ask<MonStatus>([leader], fsid, ['mon_status']);
          return status && ['leader', 'peon'].includes(status.state) && status.quorum.length === 3
            ? status
            : undefined;
        },
        { intervalMs: 20 },
      );
      const rejoinMs = Date.now() - healedAt;
      console.log(
        `netns: mon.${leader.name} back in the quorum ${rejoinMs} ms after the heal of a ${isolationMs / 1000} s isolation (bound ${rejoinBoundMs} ms)`,
      );
      assert.ok(rejoinMs <= rejoinBoundMs, `rejoined after ${rejoinMs} ms, bound ${rejoinBoundMs} ms`);
    } catch (error) {
      if (isolated)
        console.log(`mon.${isolated.name}'s log, last lines:\n${tail(join(dir, isolated.name, 'log'), 30)}`);
      throw error;
    } finally {
      await lab.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();
