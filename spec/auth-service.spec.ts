// The auth service (machines/services/auth.ts, Ceph's AuthMonitor) as pure functions, against a
// real Ceph 16.2.15 monitor: spec/fixtures/ceph-auth/golden.json holds what `ceph auth …` printed
// (stdout, stderr, exit code; plain and -f json), command after command on one cluster. The spec
// starts the service from that cluster's first `auth export` and `auth get mon.`, replays every
// command in the same order and compares: exit codes, error texts, status lines, plain text and
// JSON. Ceph made its keys at random: the spec gives the service Ceph's secrets in the order Ceph
// made them, and compares keys by their secret (Ceph's key also carries its creation time in ns).
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { capsAllow, commandPerm, parseMonCaps } from '../machines/caps.ts';
import { decodeCryptoKey } from '../machines/crypto-key.ts';
import type { AppliedOp, StoreOp } from '../machines/effects.ts';
import { formatKeyring, type KeyringEntry, parseKeyring } from '../machines/keyring-text.ts';
import {
  createPaxosService,
  type MonitorView,
  type Reply,
  type ServiceDefinition,
  type ServiceRequest,
} from '../machines/paxos-service.ts';
import {
  type AuthPending,
  type AuthState,
  authCreated,
  authDataPrefix,
  authLoaded,
  authLookup,
  authService,
  renderAuth,
} from '../machines/services/auth.ts';
import type { MonMap } from '../transport/messages.ts';
import { runChild } from './support/child-harness.ts';

const fixtures = new URL('./fixtures/ceph-auth/', import.meta.url);
interface Run {
  argv: string[];
  rc: number;
  stdout: string;
  stderr: string;
}
const golden = JSON.parse(readFileSync(new URL('golden.json', fixtures), 'utf8')) as Record<
  string,
  { runs: { plain: Run; json: Run } }
>;

const monmap: MonMap = {
  fsid: '11111111-2222-3333-4444-555555555555',
  epoch: 1,
  mons: [{ name: 'a', rank: 0, addr: '127.0.0.1:6789' }],
  electionStrategy: 'classic',
  disallowedLeaders: [],
  created: 0,
  lastChanged: 0,
};
const view: MonitorView = {
  name: 'a',
  rank: 0,
  monmap,
  electionEpoch: 1,
  quorum: [0],
  leader: 0,
  role: 'leader',
  clockSkewsMs: {},
};

const errnoNames: Record<number, string> = { 2: 'ENOENT', 17: 'EEXIST', 22: 'EINVAL', 28: 'ENOSPC' };
const keyPattern = /AQ[A-Za-z0-9+/]{36}==/g;
const secretText = (key: string) => Buffer.from(decodeCryptoKey(key).secret).toString('base64');
/** Every key in a text replaced by its secret: Ceph's creation times have nanoseconds. */
const bySecret = (text: string) => text.replace(keyPattern, (key) => `<${secretText(key)}>`);

/** What a committed StoreOp looks like to update_from_paxos. */
function appliedOps(ops: StoreOp[]): AppliedOp[] {
  const out: AppliedOp[] = [];
  for (const op of ops) {
    if (op.op === 'put') {
      out.push({
        ...op,
        value: typeof op.value === 'string' ? new TextEncoder().encode(op.value) : op.value,
      });
    } else if (op.op === 'put_number') {
      // The store keeps numbers as 8 bytes little-endian (Ceph's encode of a version_t).
      const value = new Uint8Array(8);
      new DataView(value.buffer).setBigUint64(0, BigInt(op.value), true);
      out.push({ op: 'put', prefix: op.prefix, key: op.key, value });
    } else if (op.op === 'erase' || op.op === 'erase_range') out.push(op);
  }
  return out;
}

/** A leader's whole path for one command: preprocess_query, prepare_update, commit, update_from_paxos. */
class Leader {
  version = 0;
  constructor(
    readonly def: ServiceDefinition<AuthState, AuthPending>,
    public state: AuthState,
  ) {}
  commit(pending: AuthPending) {
    this.version += 1;
    const ops = appliedOps(this.def.encodePending(this.state, pending, this.version));
    this.state = this.def.updateFromPaxos(this.state, ops, {
      firstCommitted: 1,
      lastCommitted: this.version,
    });
    return ops;
  }
  run(cmd: string[], inbuf?: Uint8Array, receivedAt = 1_700_000_000_000): Reply {
    const request: ServiceRequest = {
      client: 'client.admin',
      tid: 1,
      cmd,
      receivedAt,
      ...(inbuf ? { inbuf } : {}),
    };
    const pre = this.def.preprocessQuery(this.state, request, view);
    if (pre && 'reply' in pre) return pre.reply;
    assert.is(pre, null, 'auth answers from memory, never with a store read');
    const result = this.def.prepareUpdate(this.state, this.def.createPending(this.state), request, view);
    if ('error' in result) return result.error;
    this.commit(result.pending);
    return result.reply;
  }
}

function startFromCeph(randomBytes: (n: number) => Uint8Array) {
  const initial = parseKeyring(golden['auth-export-initial']?.runs.plain.stdout ?? '');
  const mon = parseKeyring(golden['auth-get-mon']?.runs.plain.stdout ?? '');
  const def = authService({ randomBytes, initialKeyring: [...mon, ...initial] });
  const leader = new Leader(def, def.init(null));
  assert.not.ok(authCreated(leader.state));
  leader.commit(def.createInitial?.(leader.state, view) ?? []);
  assert.ok(authCreated(leader.state));
  return { leader, initial, mon };
}

/**
 * Cases where paxmon answers otherwise, on purpose. `scratch`: run on a copy of the state, so the
 * rest of the replay still follows Ceph's cluster.
 */
const differs: Record<string, { why: string; scratch?: boolean; check(reply: Reply, run: Run): void }> = {
  'auth-get-or-create-bad-osd-caps': {
    why: 'paxmon keeps osd/mds/mgr caps as given (no OSDCap parser: no OSDs); Ceph refuses ones it cannot parse',
    scratch: true,
    check: (reply) => assert.is(reply.r, 0),
  },
  'auth-caps-none': {
    why: "Ceph's CLI refuses a missing <caps>... before sending; the service answers EINVAL with its usage",
    check: (reply, run) => {
      assert.is(-reply.r, run.rc);
      assert.match(reply.rs, /^invalid command/);
    },
  },
  'auth-export-entity': {
    why: 'Ceph prints "export auth(key=<the secret>)" on stderr; paxmon keeps secrets off status lines',
    check: (reply, run) => {
      assert.is(reply.rs, 'exported keyring for client.app');
      assert.match(run.stderr, /^export auth\(key=AQ/);
    },
  },
  'auth-export-missing': {
    why: 'Ceph names an empty EntityAuth ("no key for auth(key=AAAAAAAAAAAAAAAA)"); paxmon names the entity',
    check: (reply, run) => {
      assert.is(-reply.r, run.rc);
      assert.is(reply.rs, 'no key for client.nope');
    },
  },
  'auth-import-bad-keyring': {
    why: "Ceph's text, then what the parser found (the line)",
    check: (reply, run) => {
      assert.is(-reply.r, run.rc);
      assert.ok(`Error EINVAL: ${reply.rs}`.startsWith(run.stderr.trim()), reply.rs);
      assert.match(reply.rs, /\(line 1: /);
    },
  },
};

test("golden: every `ceph auth` command of a real monitor, replayed, answers as Ceph's did", () => {
  // Ceph's secrets, in the order Ceph made them: the keys of its outputs that were neither in the
  // first export nor in a keyring given with -i.
  const inputs = new Set<string>();
  for (const file of [
    'fromfile.keyring',
    'other.keyring',
    'fromfile2.keyring',
    'import.keyring',
    'nocaps.keyring',
  ]) {
    for (const e of parseKeyring(readFileSync(new URL(`in/${file}`, fixtures), 'utf8')))
      inputs.add(secretText(e.key));
  }
  const initialText = `${golden['auth-export-initial']?.runs.plain.stdout}${golden['auth-get-mon']?.runs.plain.stdout}`;
  for (const key of initialText.match(keyPattern) ?? []) inputs.add(secretText(key));
  const made: string[] = [];
  for (const { runs } of Object.values(golden)) {
    for (const run of [runs.plain, runs.json]) {
      for (const key of run.stdout.match(keyPattern) ?? []) {
        const s = secretText(key);
        if (!inputs.has(s) && !made.includes(s)) made.push(s);
      }
    }
  }
  assert.is(made.length, 6, 'app, multi, cmd, nocaps, k, added');
  const queue = made.map((s) => new Uint8Array(Buffer.from(s, 'base64')));
  let scratch = false;
  const { leader } = startFromCeph((n) => {
    if (scratch) return new Uint8Array(n);
    const next = queue.shift();
    assert.ok(next && next.length === n, 'a key Ceph made');
    return next as Uint8Array;
  });

  let compared = 0;
  for (const [name, { runs }] of Object.entries(golden)) {
    for (const [format, run] of [
      ['plain', runs.plain],
      ['json', runs.json],
    ] as const) {
      const words = run.argv.slice(1);
      let inbuf: Uint8Array | undefined;
      const i = words.indexOf('-i');
      if (i >= 0) {
        inbuf = new Uint8Array(readFileSync(new URL(`in/${words[i + 1]}`, fixtures)));
        words.splice(i, 2);
      }
      const f = words.indexOf('-f');
      if (f >= 0) words.splice(f, 2);
      const where = `${name} (${format}): ceph ${run.argv.slice(1).join(' ')}`;
      const deviation = differs[name];
      if (deviation) {
        const saved = leader.state;
        const savedVersion = leader.version;
        scratch = deviation.scratch === true;
        deviation.check(leader.run(words, inbuf), run);
        scratch = false;
        if (deviation.scratch) {
          leader.state = saved;
          leader.version = savedVersion;
        }
        continue;
      }
      const reply = leader.run(words, inbuf);
      assert.is(-reply.r, run.rc, `${where}: exit code`);
      if (reply.r < 0) {
        assert.is(`Error ${errnoNames[-reply.r]}: ${reply.rs}\n`, run.stderr, `${where}: error`);
      } else {
        const shown = renderAuth(words, reply, format);
        assert.is(shown.stderr, run.stderr, `${where}: stderr`);
        // Ceph prints JSON after an empty line and without a newline; paxmon's CLI prints JSON + '\n'.
        const theirs = format === 'json' ? run.stdout.trim() : run.stdout;
        const ours = format === 'json' ? shown.stdout.trim() : shown.stdout;
        assert.is(bySecret(ours), bySecret(theirs), `${where}: stdout`);
      }
      compared += 1;
    }
  }
  assert.ok(compared >= 100, `${compared} runs compared`);
  assert.is(queue.length, 0, 'every key Ceph made, made here too');
  // The database at the end holds what Ceph's did, key for key (secrets) and cap for cap.
  const finalCeph = parseKeyring(golden['auth-export-final']?.runs.plain.stdout ?? '');
  const finalOurs = parseKeyring(
    renderAuth(['auth', 'export'], leader.run(['auth', 'export']), 'plain').stdout,
  );
  const norm = (entries: KeyringEntry[]) => entries.map((e) => ({ ...e, key: secretText(e.key) }));
  assert.equal(norm(finalOurs), norm(finalCeph));
});

test("authLookup: secret bytes and caps, mon. from the monitor's own keyring, nothing for strangers", () => {
  const { leader, initial, mon } = startFromCeph(() => new Uint8Array(16).fill(7));
  const admin = initial.find((e) => e.entity === 'client.admin') as KeyringEntry;
  const found = authLookup(leader.state, 'client.admin');
  assert.ok(found);
  assert.equal(found?.secret, decodeCryptoKey(admin.key).secret);
  assert.equal(found?.caps, admin.caps);
  assert.equal(
    authLookup(leader.state, 'mon.')?.secret,
    decodeCryptoKey((mon[0] as KeyringEntry).key).secret,
  );
  assert.is(authLookup(leader.state, 'client.nobody'), undefined);
  leader.run(['auth', 'get-or-create', 'client.new', 'mon', 'allow r']);
  assert.equal(authLookup(leader.state, 'client.new')?.secret, new Uint8Array(16).fill(7));
  leader.run(['auth', 'rm', 'client.new']);
  assert.is(authLookup(leader.state, 'client.new'), undefined);
});

test('secrets are bytes everywhere but in replies: state, pending, store ops and history', () => {
  const { leader } = startFromCeph(() => new Uint8Array(16).fill(9));
  const def = leader.def;
  const request: ServiceRequest = {
    client: 'client.admin',
    tid: 1,
    cmd: ['auth', 'get-or-create', 'client.s', 'mon', 'allow r'],
    receivedAt: 5_000,
  };
  const result = def.prepareUpdate(leader.state, [], request, view);
  assert.ok('pending' in result);
  const pending = (result as { pending: AuthPending }).pending;
  const ops = def.encodePending(leader.state, pending, 2);
  const strings: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === 'string') strings.push(v);
    else if (v instanceof Uint8Array) return;
    else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  walk(leader.state);
  walk(pending);
  walk(ops);
  assert.ok(strings.length > 0);
  for (const s of strings)
    assert.not.match(s, /AQ[A-Za-z0-9+/]{36}==/, `no key text in ${JSON.stringify(s)}`);
  const history = ops.find((o) => o.op === 'put' && o.prefix === 'auth');
  assert.equal(JSON.parse(String((history as { value: string }).value)), [['add', 'client.s']]);
  const record = ops.find((o) => o.op === 'put' && o.prefix === authDataPrefix);
  assert.instance((record as { value: unknown }).value, Uint8Array);
  // The reply has the key (as Ceph's does), created at the request's time.
  const data = JSON.parse(new TextDecoder().decode((result as { reply: Reply }).reply.data as Uint8Array));
  assert.is(decodeCryptoKey(data[0].key).createdMs, 5_000);
});

test('init from the store (authLoaded) gives the same state as the commits did', () => {
  const { leader } = startFromCeph(() => new Uint8Array(16).fill(3));
  leader.run(['auth', 'get-or-create', 'client.x', 'mon', 'allow r']);
  const stored: [string, Uint8Array][] = [];
  const def = leader.def;
  const ops = def.encodePending(
    leader.state,
    Object.entries(leader.state.entities).map(([entity, record]) => ({
      op: 'add' as const,
      entity,
      record,
    })),
    99,
  );
  for (const op of appliedOps(ops))
    if (op.op === 'put' && op.prefix === authDataPrefix) stored.push([op.key, op.value]);
  const reloaded = def.init(authLoaded({ firstCommitted: 1, lastCommitted: leader.version }, stored));
  assert.ok(authCreated(reloaded));
  assert.equal(reloaded.entities, leader.state.entities);
  assert.not.ok(authCreated(def.init(authLoaded({ firstCommitted: 0, lastCommitted: 0 }, []))));
  // Garbage under the prefix is skipped, not a crash.
  const odd = def.init(
    authLoaded({ firstCommitted: 1, lastCommitted: 1 }, [['client.bad', new Uint8Array([1, 2])]]),
  );
  assert.equal(odd.entities, {});
});

test('mon.: answered from the keyring, never changed by auth commands (Ceph would store it)', () => {
  const { leader, mon } = startFromCeph(() => new Uint8Array(16).fill(1));
  const monKey = (mon[0] as KeyringEntry).key;
  assert.is(leader.run(['auth', 'get', 'mon.']).r, 0);
  assert.is(leader.run(['auth', 'get-or-create', 'mon.', 'mon', 'allow *']).r, 0);
  assert.is(
    leader.run(['auth', 'get-or-create', 'mon.', 'mon', 'allow r']).rs,
    'key for mon. exists but cap mon does not match',
  );
  assert.match(leader.run(['auth', 'caps', 'mon.', 'mon', 'allow r']).rs, /monitors' own key/);
  const other = `[mon.]\n\tkey = AQBSdFNlAAAAABAAp0bMaqMfTOrKzn+vvlvdjQ==\n\tcaps mon = "allow *"\n`;
  assert.is(
    leader.run(['auth', 'add', 'mon.'], new TextEncoder().encode(other)).rs,
    'entity mon. exists but key does not match',
  );
  assert.match(
    leader.run(
      ['auth', 'import'],
      new TextEncoder().encode(`${other}[client.z]\n\tkey = ${monKey}\n\tcaps mon = "allow r"\n`),
    ).rs,
    /monitors' own key/,
  );
  assert.is(authLookup(leader.state, 'client.z'), undefined, 'the import is refused as a whole');
  assert.is(leader.run(['auth', 'rm', 'mon.']).rs, 'entity mon. does not exist');
  assert.equal(authLookup(leader.state, 'mon.')?.secret, decodeCryptoKey(monKey).secret);
  // A monitor without a mon. key in its keyring cannot create one either.
  const bare = authService({ randomBytes: () => new Uint8Array(16) });
  const alone = new Leader(bare, bare.init(null));
  alone.commit([]);
  assert.match(alone.run(['auth', 'get-or-create', 'mon.']).rs, /monitors' own key/);
  assert.is(alone.run(['auth', 'get', 'mon.']).r, -2);
});

test('the pending change counts: two get-or-create in one round make one key', () => {
  let made = 0;
  const { leader } = startFromCeph(() => {
    made += 1;
    return new Uint8Array(16).fill(made);
  });
  const def = leader.def;
  const req = (tid: number): ServiceRequest => ({
    client: 'client.admin',
    tid,
    cmd: ['auth', 'get-or-create', 'client.twice', 'mon', 'allow r'],
    receivedAt: 1,
  });
  const first = def.prepareUpdate(leader.state, [], req(1), view);
  assert.ok('pending' in first);
  const second = def.prepareUpdate(leader.state, (first as { pending: AuthPending }).pending, req(2), view);
  assert.ok('error' in second, 'nothing more to change: answered at once');
  const data = (r: Reply) => new TextDecoder().decode(r.data as Uint8Array);
  assert.is(data((second as { error: Reply }).error), data((first as { reply: Reply }).reply));
  assert.is(made, 1);
  // A peon (preprocess_query) sends the creation on, and answers the existing entity itself.
  assert.is(def.preprocessQuery(leader.state, req(3), { ...view, role: 'peon' }), null);
  leader.commit((first as { pending: AuthPending }).pending);
  const pre = def.preprocessQuery(leader.state, req(4), { ...view, role: 'peon' });
  assert.ok(pre && 'reply' in pre && pre.reply.r === 0);
});

test('limits: a keyring over 1 MiB, an entity name over 1 KiB, caps over 16 KiB are EINVAL', () => {
  const { leader } = startFromCeph(() => new Uint8Array(16));
  assert.is(leader.run(['auth', 'import'], new Uint8Array((1 << 20) + 1).fill(0x20)).r, -22);
  assert.is(leader.run(['auth', 'get-or-create', `client.${'x'.repeat(1100)}`]).rs, 'bad entity name');
  assert.match(
    leader.run(['auth', 'get-or-create', 'client.y', 'osd', 'x'.repeat(17_000)]).rs,
    /longer than/,
  );
  assert.is(leader.run(['auth']).r, -22);
  assert.is(leader.run(['auth', 'frobnicate']).r, -22);
  assert.is(leader.run(['auth', 'get']).r, -22);
  assert.is(leader.run(['auth', 'ls', 'extra']).r, -22);
});

test('caps: what an entity may do follows its stored mon caps (the runtime asks authLookup + capsAllow)', () => {
  const { leader } = startFromCeph(() => new Uint8Array(16).fill(2));
  leader.run(['auth', 'get-or-create', 'client.reader', 'mon', 'allow r']);
  const services = [leader.def];
  const caps = parseMonCaps(authLookup(leader.state, 'client.reader')?.caps.mon ?? '');
  const may = (...cmd: string[]) => {
    const need = commandPerm(services, cmd);
    return need !== undefined && capsAllow(caps, need);
  };
  assert.not.ok(may('auth', 'ls'), 'auth needs x');
  assert.not.ok(may('auth', 'get-or-create', 'client.other'));
  const admin = parseMonCaps(authLookup(leader.state, 'client.admin')?.caps.mon ?? '');
  const need = commandPerm(services, ['auth', 'rm', 'client.reader']);
  assert.ok(need && capsAllow(admin, need));
});

test('through the PaxosService template: create_initial imports the keyring; get-or-create answers after its commit', () => {
  const keyring = parseKeyring(golden['auth-export-initial']?.runs.plain.stdout ?? '').slice(0, 1);
  const def = authService({ randomBytes: () => new Uint8Array(16).fill(4), initialKeyring: keyring });
  const h = runChild(createPaxosService(def), {
    monitor: view,
    versions: { firstCommitted: 0, lastCommitted: 0 },
    loaded: null,
    proposeIntervalMs: 0,
    trimMin: 250,
    trimMax: 500,
  });
  const proposals = () => h.proposals();
  const replies = () => h.io.flatMap((e) => e.replies ?? []);
  h.send({ type: 'paxos.status', firstCommitted: 0, lastCommitted: 0, readable: true, writeable: true });
  const [initial] = proposals();
  assert.ok(initial, 'create_initial proposed');
  const put = initial?.ops.find((o) => o.op === 'put' && o.prefix === authDataPrefix);
  assert.is((put as { key: string }).key, 'client.admin');
  // The applied ops first: the service knows its new version before Paxos says it is writeable again.
  const commit = (version: number, id: string, ops: StoreOp[]) => {
    h.send({ type: 'store.applied', version, ops: appliedOps(ops) });
    h.send({
      type: 'paxos.committed',
      version,
      ids: [id],
      status: { firstCommitted: 1, lastCommitted: version, readable: true, writeable: true },
    });
  };
  commit(1, initial?.id as string, initial?.ops ?? []);
  h.send({
    type: 'service.request',
    request: {
      client: 'client.admin',
      tid: 9,
      cmd: ['auth', 'get-or-create', 'client.t', 'mon', 'allow r'],
      receivedAt: 10,
      deadline: 60_000,
    },
  });
  assert.is(proposals().length, 2, 'create_initial once, then the change');
  const second = proposals()[1];
  assert.equal(replies(), [], 'no key before the commit');
  commit(2, second?.id as string, second?.ops ?? []);
  const [reply] = replies();
  assert.is(reply?.reply.r, 0);
  const shown = renderAuth(['auth', 'get-or-create', 'client.t'], reply?.reply as Reply, 'plain').stdout;
  assert.match(shown, /^\[client\.t\]\n\tkey = AQ[A-Za-z0-9+/]{36}==\n$/);
  h.send({
    type: 'service.request',
    request: { client: 'client.admin', tid: 10, cmd: ['auth', 'ls'], receivedAt: 11, deadline: 60_000 },
  });
  const ls = renderAuth(['auth', 'ls'], replies()[1]?.reply as Reply, 'plain');
  assert.match(
    ls.stdout,
    /^client\.admin\n\tkey: AQ.*\n(\tcaps: .*\n)+client\.t\n\tkey: AQ.*\n\tcaps: \[mon\] allow r\n$/,
  );
  assert.is(ls.stderr, 'installed auth entries:\n\n');
  assert.is(formatKeyring([]), '');
  h.stop();
});

test.run();
