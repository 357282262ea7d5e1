// Inspection (issue 7 §3): the recorded stream of a simulated election holds every actor of each
// monitor's tree — monitor (Paxos runs in it), elector, io and each service — with their state changes; the
// recording replays as a timeline; values are JSON-safe and lines bounded; every statechart
// exports as JSON and as a mermaid diagram, and the README embeds the current diagrams.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyActorRef } from 'xstate';
import {
  createRecorder,
  formatTimeline,
  type InspectionRecord,
  readRecords,
  startInspectorServer,
  stateLeaves,
  toJsonSafe,
} from '../actors/inspect.ts';
import { MonitorLogContext } from '../actors/log.ts';
import { createMonitor } from '../actors/monitor.ts';
import {
  readmeMarkers,
  statechartJson,
  statechartMermaid,
  statecharts,
  updateReadmeDiagrams,
} from '../cli/statecharts.ts';
import { monitorStateName } from '../machines/monitor.ts';
import { SimCluster } from '../sim/cluster.ts';
import type { EntityName } from '../transport/messages.ts';
import { paxmon, repoRoot, tempDir } from './support/process.ts';
import { simClient } from './support/sim-client.ts';

const work = tempDir('inspect');
test.after(() => rmSync(work, { recursive: true, force: true }));

/** A 3-monitor election on the simulator, every monitor recorded; the lines and the live trees. */
async function recordElection(lineBytesMax?: number, extra: { values?: boolean; write?: boolean } = {}) {
  const c = new SimCluster({ size: 3, seed: 7 });
  await c.mkfs();
  const lines: string[] = [];
  const logContexts = new Map<string, MonitorLogContext>();
  for (const node of c.nodes) {
    // SimCluster.start() without inspection: the same monitor, started here with a recorder.
    const recorder = createRecorder({
      write: (line) => lines.push(line),
      now: () => c.clock.now(),
      ...(lineBytesMax ? { lineBytesMax } : {}),
      ...(extra.values ? { values: true } : {}),
    });
    const logContext = new MonitorLogContext();
    logContexts.set(node.name, logContext);
    const transport = c.network.endpoint(`mon.${node.name}` as EntityName);
    node.transport = transport;
    node.monitor = await createMonitor({
      store: node.store,
      transport,
      config: c.config,
      clock: c.clock,
      now: () => c.clock.now(),
      keyring: c.keyring,
      turn: queueMicrotask,
      inspect: (event) => {
        recorder.inspect(event);
        logContext.inspect(event);
      },
    });
  }
  await c.runUntil(() => c.stableQuorum(3), 20_000);
  if (extra.write) {
    // A secret written, read back and listed: none of it may reach the recording (issue 13).
    const client = simClient(c);
    const leaderName = c.leaders()[0]?.name as string;
    for (const cmd of [
      ['config-key', 'set', 'db/password', 'hunter2'],
      ['config-key', 'get', 'db/password'],
      ['config-key', 'dump'],
    ]) {
      const tid = client.send(leaderName, cmd);
      await c.runUntil(() => client.acks.some((a) => a.tid === tid), 10_000);
      assert.is(client.acks.find((a) => a.tid === tid)?.r, 0);
    }
    assert.match(client.acks.map((a) => a.data).join(' '), /hunter2/);
  }
  // The live trees: every actor each monitor runs now.
  const trees = new Map<string, string[]>();
  for (const node of c.nodes) {
    const root = node.monitor?.actor as AnyActorRef;
    const children = Object.keys((root.getSnapshot() as { children: Record<string, unknown> }).children);
    trees.set(node.name, children);
  }
  const leader = c.leaders()[0]?.name as string;
  const fields = Object.fromEntries([...logContexts].map(([name, ctx]) => [name, ctx.fields()]));
  await c.stopAll();
  return { lines, trees, leader, fields };
}

let election: Awaited<ReturnType<typeof recordElection>>;
test.before(async () => {
  election = await recordElection();
});

test('the recording of an election holds every actor of every monitor, and their state changes', () => {
  const { records, malformed } = readRecords(election.lines.join('\n'));
  assert.is(malformed, 0);
  assert.ok(records.length > 100, `${records.length} records`);
  for (const [mon, children] of election.trees) {
    const mine = records.filter((r) => r.mon === mon);
    const created = mine.filter((r) => r.kind === 'actor');
    const root = created.find((r) => r.parent === undefined);
    assert.is(root?.actor, 'monitor', `mon.${mon}'s root`);
    assert.ok(children.includes('elector') && children.includes('io'));
    assert.not.ok(children.includes('paxos'), 'Paxos runs inside the monitor statechart');
    // Every actor of the live tree was recorded as created (services too, whatever they are).
    for (const child of children) {
      assert.ok(
        created.some((r) => r.actor === child && r.parent === 'monitor'),
        `mon.${mon}: ${child} created`,
      );
    }
    // The monitor (with its Paxos) and the elector changed state during the election; services
    // keep their role in their context (only their proposal state moves, on the leader).
    const machines = created.filter((r) => r.machine !== undefined).map((r) => r.actor);
    assert.ok(machines.includes('elector'));
    assert.ok(
      children.some((c) => c.startsWith('service:') && machines.includes(c)),
      'services recorded',
    );
    for (const actor of ['monitor', ...machines.filter((m) => m !== 'monitor')]) {
      const values = mine
        .filter((r) => r.kind === 'snapshot' && r.actor === actor && r.value !== undefined)
        .map((r) => stateLeaves(r.value).join(','));
      assert.ok(values.length > 0, `mon.${mon}: snapshots of ${actor}`);
      const changed = new Set(values).size > 1;
      if (actor === 'monitor' || actor === 'elector')
        assert.ok(changed, `mon.${mon}: ${actor} changed state (${[...new Set(values)].join(' | ')})`);
    }
  }
  // The election itself: proposals sent by electors, acks and the victory received.
  const electionOps = (kind: 'sent' | 'received') =>
    records
      .filter((r) => r.kind === 'event')
      .flatMap((r) => {
        const e = r.event as { type?: string; messages?: { msg: { type: string; op: string } }[] };
        if (kind === 'sent' && e.type === 'io.effects' && r.source === 'elector')
          return (e.messages ?? []).map((m) => m.msg.op);
        if (kind === 'received' && e.type === 'mon.election' && r.actor === 'elector')
          return [(r.event as { msg: { op: string } }).msg.op];
        return [];
      });
  for (const op of ['propose', 'victory']) assert.ok(electionOps('sent').includes(op), `sent ${op}`);
  for (const op of ['ack', 'victory']) assert.ok(electionOps('received').includes(op), `received ${op}`);
  const leader = records.filter(
    (r) => r.mon === election.leader && r.actor === 'monitor' && r.kind === 'snapshot',
  );
  assert.ok(leader.some((r) => monitorStateName({ value: r.value }) === 'leader'));
});

test('recorded values are JSON-safe: bytes become { bytes }, lines stay under the bound', async () => {
  const bytesSeen = election.lines.some((l) => /"bytes":\d+/.test(l));
  assert.ok(bytesSeen, 'some Uint8Array recorded as { bytes }');
  for (const line of election.lines) {
    assert.ok(Buffer.byteLength(line) <= 16 * 1024);
    assert.not.match(line, /"0":\d+,"1":\d+/, 'no typed array serialised index by index');
  }
  const small = await recordElection(600);
  for (const line of small.lines) assert.ok(Buffer.byteLength(line) <= 600, line.slice(0, 200));
  assert.ok(
    small.lines.some((l) => l.includes('"truncated":true')),
    'some lines cut to fit',
  );
  assert.is(readRecords(small.lines.join('\n')).malformed, 0);
});

test('a recording carries no config-key value unless asked for (sizes only), and with --inspect-values it does', async () => {
  const secret = /hunter2|aHVudGVyMg/;
  const redacted = await recordElection(undefined, { write: true });
  const hits = redacted.lines.filter((l) => secret.test(l));
  assert.is(hits.length, 0, hits.slice(0, 3).join('\n'));
  assert.ok(
    redacted.lines.some((l) => l.includes('"<7 chars>"')),
    'the command is recorded with the value replaced by its size',
  );
  const full = await recordElection(undefined, { write: true, values: true });
  assert.ok(full.lines.some((l) => l.includes('hunter2')));
});

test('the inspector bridge listens on 127.0.0.1 by default and refuses WebSockets from other web pages', async () => {
  const { WebSocket } = await import('ws');
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const server = await startInspectorServer({ port });
  try {
    assert.is(server.wsUrl, `ws://127.0.0.1:${port}`);
    const open = (headers: Record<string, string>) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(server.wsUrl, { headers });
        ws.on('open', () => {
          ws.close();
          resolve('open');
        });
        ws.on('error', (error) => resolve(error.message));
      });
    assert.is(await open({}), 'open', 'a monitor (no Origin) connects');
    assert.is(await open({ Origin: `http://127.0.0.1:${port}` }), 'open', 'the bridge page connects');
    assert.match(await open({ Origin: 'http://evil.example' }), /Unexpected server response: 401/);
    const { networkInterfaces } = await import('node:os');
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    if (external) {
      // Not reachable on the machine's other addresses.
      const reached = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: external, port }, () => {
          socket.destroy();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      });
      assert.is(reached, false, `reachable on ${external}`);
    }
  } finally {
    server.stop();
  }
});

test("toJsonSafe: sizes only for users' data (values, input, reply data, config-key set words) unless values is asked for", () => {
  assert.equal(toJsonSafe({ value: new Uint8Array([1, 2]) }), { value: { bytes: 2 } });
  assert.equal(toJsonSafe({ data: 'key = AQB…' }), { data: { chars: 10 } });
  assert.equal(toJsonSafe({ inbuf: new Uint8Array(5) }), { inbuf: { bytes: 5 } });
  assert.equal(toJsonSafe({ cmd: ['config-key', 'set', 'k', 'hunter2'] }), {
    cmd: ['config-key', 'set', 'k', '<7 chars>'],
  });
  assert.equal(toJsonSafe({ cmd: ['config-key', 'get', 'k'] }), { cmd: ['config-key', 'get', 'k'] });
  assert.equal(toJsonSafe({ value: new Uint8Array([1, 2]) }, {}, { values: true }), {
    value: { bytes: 2, base64: 'AQI=' },
  });
  assert.equal(toJsonSafe({ cmd: ['config-key', 'set', 'k', 'v'] }, {}, { values: true }), {
    cmd: ['config-key', 'set', 'k', 'v'],
  });
  // Key material never, values or not; a config-key name under `key` stays.
  const record = { key: new Uint8Array(28), caps: { mon: 'allow r' } };
  assert.equal(toJsonSafe(record, {}, { values: true }), { key: { bytes: 28 }, caps: { mon: 'allow r' } });
  assert.equal(toJsonSafe({ key: 'AQBSdFNlAAAAABAAp0bMaqMfTOrKzn+vvlvdjQ==' }, {}, { values: true }), {
    key: { chars: 40 },
  });
  assert.equal(toJsonSafe({ op: 'set', key: 'db/password' }), { op: 'set', key: 'db/password' });
  assert.equal(
    toJsonSafe(
      { data: '[client.x]\n\tkey = AQBSdFNlAAAAABAAp0bMaqMfTOrKzn+vvlvdjQ==\n' },
      {},
      { values: true },
    ),
    { data: '[client.x]\n\tkey = <key>\n' },
  );
});

test('toJsonSafe: bytes, cycles, functions, depth, long strings and arrays', () => {
  const limits = { depthMax: 3, stringCharsMax: 10, itemsMax: 4, bytesInlineMax: 8 };
  const safe = (value: unknown) => toJsonSafe(value, limits, { values: true });
  const cyclic: Record<string, unknown> = { name: 'x' };
  cyclic.self = cyclic;
  assert.equal(safe(new Uint8Array([1, 2, 3])), { bytes: 3, base64: 'AQID' });
  assert.equal(safe({ value: new Uint8Array(1000) }), { value: { bytes: 1000 } });
  assert.equal(safe(cyclic), { name: 'x', self: '[circular]' });
  assert.equal(
    safe(function named() {}),
    { fn: 'named' },
  );
  assert.equal(safe({ a: { b: { c: { d: 1 } } } }), { a: { b: { c: '[…]' } } });
  assert.match(String(safe('x'.repeat(100))), /^x{10}…\(100 chars\)$/);
  assert.equal(safe(Array.from({ length: 10 }, (_, i) => i)), [0, 1, 2, 3, '…(6 more)']);
  assert.equal(safe({ a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 }), { a: 1, b: 2, c: 3, d: 4, '…': '2 more keys' });
  assert.equal(safe([Number.NaN, 10n, undefined]), ['NaN', '10', null]);
  assert.equal(safe(new Map([['k', new Set([1])]])), { k: [1] });
  assert.not.throws(() => JSON.stringify(safe({ cyclic, bytes: new Uint8Array(9) })));
});

test('every log line can carry the monitor name, state and election epoch (MonitorLogContext)', () => {
  for (const [name, fields] of Object.entries(election.fields)) {
    assert.is(fields.mon, name);
    assert.ok(fields.state === 'leader' || fields.state === 'peon', String(fields.state));
    assert.type(fields.election_epoch, 'number');
    assert.is((fields.election_epoch as number) % 2, 0, 'a stable epoch is even');
  }
});

test('replay prints a timeline: who sent what to whom and state changes, filtered by monitor and actor', async () => {
  const file = join(work, 'election.jsonl');
  writeFileSync(file, `${election.lines.join('\n')}\n`);
  const all = formatTimeline(readRecords(election.lines.join('\n')).records);
  assert.ok(all.length > 50);
  assert.match(all.join('\n'), /mon\.a\s+monitor\s+created \(root, machine monitor\)/);
  assert.match(
    all.join('\n'),
    /elector → monitor\s+io\.effects: write monitor\/election_epoch; send mon\.election propose e\d+ → /,
  );
  assert.match(all.join('\n'), /io → monitor\s+mon\.election ack e\d+ from mon\./);
  assert.match(all.join('\n'), /monitor\s+state probing → electing/);
  assert.match(all.join('\n'), /monitor\s+state electing → inQuorum\.(leader|peon)\./);
  // Times are non-decreasing.
  const times = all.map((l) => Number(/^\s*\+([\d.]+)s/.exec(l)?.[1]));
  assert.ok(times.every((t, i) => i === 0 || t >= (times[i - 1] as number)));

  const r = await paxmon(['replay', file, '--mon', 'mon.b', '--actor', 'elector']);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.ok(lines.length > 3, r.stdout);
  for (const line of lines) {
    assert.match(line, /^\s*\+[\d.]+s {2}mon\.b {2}/, line);
    assert.match(line, /elector/, line);
  }
  assert.match(r.stdout, /elector\s+state stable → /);
  const missing = await paxmon(['replay', file, '--mon', 'z']);
  assert.is(missing.code, 2);
  assert.match(
    missing.stderr,
    /^Error ENOENT: mon\.z is not in the recording \(it has mon\.a, mon\.b, mon\.c\)/m,
  );
  const garbage = join(work, 'garbage.jsonl');
  writeFileSync(garbage, 'not json\n{"also": "not a record"}\n');
  const bad = await paxmon(['replay', garbage]);
  assert.is(bad.code, 22);
  assert.match(bad.stderr, /^Error EINVAL: .* holds no paxmon inspection records \(2 bad lines\)/m);
});

/** Structural checks of a mermaid stateDiagram-v2: declared ids, balanced braces, known edges. */
function checkMermaid(name: string, text: string, keys: string[]) {
  const lines = text.trimEnd().split('\n');
  assert.is(lines[0], 'stateDiagram-v2', name);
  let depth = 0;
  const declared = new Set<string>();
  const edges: [string, string, string][] = [];
  for (const raw of lines.slice(1)) {
    const line = raw.trim();
    if (line === '}') depth -= 1;
    else if (line === '--') assert.ok(depth > 0, `${name}: a region separator inside a composite`);
    else if (/^state [A-Za-z0-9_]+ \{$/.test(line)) {
      depth += 1;
      declared.add(line.split(' ')[1] as string);
    } else if (/^state "[^"]+" as [A-Za-z0-9_]+$/.test(line)) declared.add(line.split(' as ')[1] as string);
    else if (/^[A-Za-z0-9_]+$/.test(line)) declared.add(line);
    else {
      const edge = /^(\[\*\]|[A-Za-z0-9_]+) --> (\[\*\]|[A-Za-z0-9_]+)(?:: (.+))?$/.exec(line);
      assert.ok(edge, `${name}: unexpected mermaid line '${line}'`);
      edges.push([edge?.[1] as string, edge?.[2] as string, edge?.[3] ?? '']);
    }
    assert.ok(depth >= 0, `${name}: unbalanced braces`);
  }
  assert.is(depth, 0, `${name}: unbalanced braces`);
  for (const [from, to, label] of edges) {
    for (const end of [from, to]) assert.ok(end === '[*]' || declared.has(end), `${name}: '${end}' declared`);
    if (from !== '[*]' && to !== '[*]') assert.ok(label.length > 0, `${name}: ${from} --> ${to} has a label`);
  }
  const shown = [
    ...lines.join('\n').matchAll(/state "([^"]+)" as|^\s*([A-Za-z0-9_]+)$|^\s*state ([A-Za-z0-9_]+) \{/gm),
  ].map((m) => m[1] ?? m[2] ?? m[3]);
  for (const key of keys)
    assert.ok(
      shown.some((s) => s === key || s?.endsWith(`_${key}`)),
      `${name}: state ${key} drawn`,
    );
  return edges;
}

test('statecharts: every machine exports as JSON and as a valid mermaid diagram', () => {
  assert.ok(['monitor', 'elector', 'paxosService'].every((n) => n in statecharts));
  assert.not.ok('paxos' in statecharts, 'Paxos is part of the monitor statechart');
  for (const [name, machine] of Object.entries(statecharts)) {
    const json = statechartJson(machine) as { id: string; states: Record<string, unknown> };
    assert.is(json.id, machine.id);
    assert.ok(Object.keys(json.states).length > 0);
    assert.equal(JSON.parse(JSON.stringify(json)), json, `${name}: plain JSON`);
    const keys: string[] = [];
    const walk = (states: Record<string, { states?: Record<string, unknown> }>) => {
      for (const [key, sub] of Object.entries(states)) {
        keys.push(key);
        if (sub.states) walk(sub.states as never);
      }
    };
    walk(json.states as never);
    const edges = checkMermaid(name, statechartMermaid(machine), keys);
    assert.ok(edges.length > 0, `${name}: transitions drawn`);
  }
  const monitor = statechartMermaid(statecharts.monitor as never);
  assert.match(monitor, /^ {2}\[\*\] --> probing$/m);
  assert.match(monitor, /^ {2}probing --> probing: after probeTimeout$/m);
  assert.match(monitor, /^ {2}electing --> leader: elector\.win$/m);
  assert.match(monitor, /^ {2}state inQuorum \{$/m, 'leader and peon share inQuorum');
  assert.match(monitor, /^ {4}state leader \{$/m, 'the leader (with its Paxos regions) is a composite');
  assert.match(monitor, /^ {6}--$/m, 'parallel regions');
  assert.match(monitor, /: after leaseRenew$/m);
  assert.match(statechartMermaid(statecharts.elector as never), /electingMe --> .*: after electionTimeout/);
});

test('paxmon statecharts --out writes one file per machine; the README embeds the current diagrams', async () => {
  const out = join(work, 'charts');
  mkdirSync(out, { recursive: true });
  const json = await paxmon(['statecharts', '--format', 'json', '--out', out]);
  assert.is(json.code, 0, json.stderr);
  const mermaid = await paxmon(['statecharts', '--format', 'mermaid', '--out', out]);
  assert.is(mermaid.code, 0, mermaid.stderr);
  const files = readdirSync(out).sort();
  for (const name of Object.keys(statecharts)) {
    assert.ok(files.includes(`${name}.json`) && files.includes(`${name}.mmd`), files.join(' '));
    const parsed = JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8')) as { id: string };
    assert.is(parsed.id, statecharts[name]?.id);
    assert.is(readFileSync(join(out, `${name}.mmd`), 'utf8'), statechartMermaid(statecharts[name] as never));
  }
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const diagrams = Object.fromEntries(
    ['monitor', 'elector'].map((n) => [n, statechartMermaid(statecharts[n] as never)]),
  );
  for (const name of Object.keys(diagrams))
    assert.ok(readme.includes(readmeMarkers(name)[0]), `README: ${name}`);
  const { text, updated } = updateReadmeDiagrams(readme, diagrams);
  assert.equal(updated, ['monitor', 'elector']);
  assert.ok(
    text === readme,
    'the README diagrams are stale: run `npm run -s paxmon -- statecharts --readme README.md`',
  );
});

test('records of several monitors merge by time; a record line is what the recorder wrote', () => {
  const { records } = readRecords(election.lines.join('\n'));
  const mons = new Set(records.map((r: InspectionRecord) => r.mon));
  assert.equal([...mons].sort(), ['a', 'b', 'c']);
  const first = JSON.parse(election.lines[0] as string) as InspectionRecord;
  assert.equal(Object.keys(first).slice(0, 6), ['v', 'seq', 't', 'mon', 'kind', 'actor']);
});

test.run();
