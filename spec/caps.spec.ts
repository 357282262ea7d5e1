// Ceph's mon caps (machines/caps.ts) against a real Ceph 16.2.15 monitor: which cap texts parse
// and Ceph's error for those that do not (spec/fixtures/ceph-auth/mon-caps-parse.tsv, from
// `ceph auth get-or-create-key client.parseN mon CAPS`), and which commands each cap allows
// (mon-caps-matrix.tsv: a client with that cap ran each command; exit 13 is EACCES).
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CapsError,
  capsAllow,
  commandPerm,
  formatMonCaps,
  networkContains,
  type Perm,
  parseMonCaps,
} from '../machines/caps.ts';
import { authService } from '../machines/services/auth.ts';
import { defaultServices } from '../machines/services/index.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/ceph-auth/${name}`, import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.length > 0);

const services = defaultServices({
  configKeyMaxEntrySizeBytes: 65536,
  clockDriftAllowedMs: 50,
  auth: { randomBytes: (n) => new Uint8Array(n) },
});

test("grammar: every cap text Ceph was given parses (or fails) as Ceph's did, with Ceph's error", () => {
  const rows = fixture('mon-caps-parse.tsv');
  assert.ok(rows.length >= 40);
  for (const row of rows) {
    // CAP \t RC \t STDERR — the cap itself may hold a tab.
    const last = row.lastIndexOf('\t');
    const middle = row.lastIndexOf('\t', last - 1);
    const cap = row.slice(0, middle);
    const rc = Number(row.slice(middle + 1, last));
    const stderr = row.slice(last + 1);
    let error: string | undefined;
    try {
      parseMonCaps(cap);
    } catch (e) {
      assert.instance(e, CapsError);
      error = (e as Error).message;
    }
    if (rc === 0) assert.is(error, undefined, `'${cap}' parses in Ceph`);
    else assert.is(`Error EINVAL: ${error}`, stderr, `'${cap}'`);
  }
  assert.throws(() => parseMonCaps(''), /stopped at end of ''/);
});

test('grammar: what a parse gives', () => {
  assert.equal(parseMonCaps('allow r').grants, [{ allow: 2 }]);
  assert.equal(parseMonCaps('allow *').grants, [{ allow: 0xff }]);
  const caps = parseMonCaps(
    'allow service config-key rw; allow command "config-key get" with key prefix app/ entity=client.x, profile read-only network 10.0.0.0/8',
  );
  assert.equal(caps.grants, [
    { service: 'config-key', allow: 6 },
    {
      command: 'config-key get',
      allow: 0,
      commandArgs: { key: { match: 'prefix', value: 'app/' }, entity: { match: 'equal', value: 'client.x' } },
    },
    { profile: 'read-only', allow: 0, network: '10.0.0.0/8' },
  ]);
  assert.is(
    formatMonCaps(caps),
    // MonCap's operator<< (maybe_quote_string quotes a word with anything but letters, digits, - and _).
    'allow service config-key rw, allow command "config-key get" with entity="client.x" key prefix "app/", allow profile read-only network 10.0.0.0/8',
  );
  assert.equal(parseMonCaps(`allow command 'a b' with k regex "^x.*$"`).grants[0]?.commandArgs, {
    k: { match: 'regex', value: '^x.*$' },
  });
});

/** Where paxmon is stricter than Ceph, on purpose (issue 13): membership changes need rwx. */
const stricter = new Set(['allow rw\tmon rm zz', 'profile read-write\tmon rm zz']);

test('is_capable: the whole matrix a real monitor answered, command by command', () => {
  const rows = fixture('mon-caps-matrix.tsv');
  assert.ok(rows.length >= 400);
  let compared = 0;
  for (const [index, row] of rows.entries()) {
    const [cap, command, rc] = row.split('\t') as [string, string, string];
    const words = command.split(' ');
    const need = commandPerm(services, words);
    assert.ok(need, `a service handles '${command}'`);
    const client = `client.m${Math.floor(index / 19) + 1}`;
    const allowed = capsAllow(parseMonCaps(cap), {
      ...(need as NonNullable<typeof need>),
      entity: client,
      addr: '127.0.0.1:40000',
    });
    const cephAllowed = rc !== '13';
    if (stricter.has(`${cap}\t${command}`)) {
      assert.ok(cephAllowed && !allowed, `${cap} / ${command}: Ceph allows, paxmon does not`);
      continue;
    }
    assert.is(
      allowed,
      cephAllowed,
      `'${cap}' running '${command}': Ceph ${cephAllowed ? 'allows' : 'refuses'}`,
    );
    compared += 1;
  }
  assert.ok(compared > 400);
});

test('commandPerm: the longest declared prefix, Ceph modules, named args, caps_TYPE pairs', () => {
  assert.equal(commandPerm(services, ['config-key', 'get', 'app/x']), {
    service: 'config-key',
    prefix: 'config-key get',
    perm: 'r',
    args: { key: 'app/x' },
  });
  assert.equal(commandPerm(services, ['config-key', 'set', 'k', 'v']), {
    service: 'config-key',
    prefix: 'config-key set',
    perm: 'rw',
    args: { key: 'k', val: 'v' },
  });
  assert.equal(commandPerm(services, ['log', 'last', '3'])?.perm, 'r');
  assert.equal(commandPerm(services, ['log', 'last', '3'])?.service, 'mon');
  assert.equal(commandPerm(services, ['log', 'hello', 'world']), {
    service: 'mon',
    prefix: 'log',
    perm: 'rw',
    args: { logtext: 'hello,world' },
  });
  assert.equal(commandPerm(services, ['mon', 'add', 'd', '127.0.0.1:1'])?.perm, 'rwx');
  assert.equal(commandPerm(services, ['mon', 'dump'])?.perm, 'r');
  assert.equal(commandPerm(services, ['health', 'detail'])?.prefix, 'health');
  assert.equal(commandPerm(services, ['status'])?.service, 'mon');
  assert.equal(commandPerm(services, ['quorum_status']), {
    service: 'mon',
    prefix: 'quorum_status',
    perm: 'r',
    args: {},
  });
  assert.equal(commandPerm(services, ['mon_status'])?.perm, 'r');
  assert.equal(
    commandPerm(services, ['auth', 'get-or-create', 'client.x', 'mon', 'allow r', 'osd', 'allow rw']),
    {
      service: 'auth',
      prefix: 'auth get-or-create',
      perm: 'rwx',
      args: { entity: 'client.x', caps_mon: 'allow r', caps_osd: 'allow rw' },
    },
  );
  assert.equal(commandPerm(services, ['auth', 'get', 'client.x'])?.perm, 'rx');
  assert.equal(commandPerm(services, ['auth', 'get-key', 'client.x'])?.prefix, 'auth get-key');
  // Undeclared words of a declared service: all of rwx. A service without a table: rw.
  assert.equal(commandPerm(services, ['config-key', 'frobnicate'])?.perm, 'rwx');
  const counter = { name: 'counter', handles: (cmd: string[]) => cmd[0] === 'counter' };
  assert.equal(commandPerm([counter], ['counter', 'get']), {
    service: 'counter',
    prefix: 'counter get',
    perm: 'rw',
    args: {},
  });
  assert.is(commandPerm(services, ['nothing', 'handles', 'this']), undefined);
});

test('every command each service handles is declared (no command falls to the rwx default by omission)', () => {
  const used = [
    ['config-key', 'get', 'k'],
    ['config-key', 'exists', 'k'],
    ['config-key', 'ls'],
    ['config-key', 'list'],
    ['config-key', 'dump'],
    ['config-key', 'set', 'k', 'v'],
    ['config-key', 'put', 'k', 'v'],
    ['config-key', 'rm', 'k'],
    ['config-key', 'del', 'k'],
    ['config-key', 'delete', 'k'],
    ['mon', 'dump'],
    ['mon', 'stat'],
    ['mon', 'getmap'],
    ['mon', 'add', 'd', 'h:1'],
    ['mon', 'rm', 'd'],
    ['mon', 'remove', 'd'],
    ['log', 'x'],
    ['log', 'last'],
    ['health'],
    ['health', 'detail'],
    ['status'],
    ...['export', 'get', 'get-key', 'print-key', 'print_key', 'caps', 'del', 'rm', 'add'].map((v) => [
      'auth',
      v,
      'client.x',
    ]),
    ['auth', 'ls'],
    ['auth', 'list'],
    ['auth', 'import'],
    ['auth', 'get-or-create', 'client.x'],
    ['auth', 'get-or-create-key', 'client.x'],
  ];
  const expected: Record<string, Perm> = {
    'config-key': 'r',
    mon: 'r',
    log: 'rw',
    health: 'r',
    status: 'r',
    auth: 'rx',
  };
  for (const cmd of used) {
    const need = commandPerm(services, cmd);
    assert.ok(need, cmd.join(' '));
    assert.is(need?.prefix, cmd.slice(0, (need?.prefix ?? '').split(' ').length).join(' '), cmd.join(' '));
    assert.ok(need?.prefix.startsWith(cmd[0] as string));
    assert.ok(
      ['r', 'rw', 'rx', 'rwx'].includes(need?.perm as string) && expected[cmd[0] as string] !== undefined,
      cmd.join(' '),
    );
  }
  // The perm table.
  const perm = (...cmd: string[]) => commandPerm(services, cmd)?.perm;
  for (const read of [
    ['config-key', 'get', 'k'],
    ['config-key', 'ls'],
    ['mon', 'stat'],
    ['log', 'last'],
    ['health'],
  ])
    assert.is(perm(...read), 'r', read.join(' '));
  for (const write of [
    ['config-key', 'set', 'k'],
    ['config-key', 'rm', 'k'],
    ['log', 'x'],
  ])
    assert.is(perm(...write), 'rw', write.join(' '));
  for (const change of [
    ['mon', 'add', 'd', 'h:1'],
    ['mon', 'rm', 'd'],
    ['auth', 'caps', 'client.x', 'mon', 'x'],
  ])
    assert.is(perm(...change), 'rwx', change.join(' '));
  assert.is(perm('auth', 'ls'), 'rx');
});

test('is_capable: with key prefix / = / regex on the named argument, and an argument that is absent', () => {
  const caps = parseMonCaps('allow command "config-key get" with key prefix app/');
  const get = (key?: string) =>
    capsAllow(caps, {
      service: 'config-key',
      prefix: 'config-key get',
      perm: 'r',
      args: key === undefined ? {} : { key },
    });
  assert.ok(get('app/x'));
  assert.ok(get('app/'));
  assert.not.ok(get('ap'));
  assert.not.ok(get('other/app/x'));
  assert.not.ok(get(undefined));
  const set = capsAllow(caps, {
    service: 'config-key',
    prefix: 'config-key set',
    perm: 'rw',
    args: { key: 'app/x' },
  });
  assert.not.ok(set);
  const exact = parseMonCaps('allow command "config-key get" with key=app/x');
  assert.ok(
    capsAllow(exact, { service: 'config-key', prefix: 'config-key get', perm: 'r', args: { key: 'app/x' } }),
  );
  assert.not.ok(
    capsAllow(exact, { service: 'config-key', prefix: 'config-key get', perm: 'r', args: { key: 'app/xy' } }),
  );
  const regex = parseMonCaps('allow command "config-key get" with key regex "a.*/x"');
  assert.ok(
    capsAllow(regex, { service: 'config-key', prefix: 'config-key get', perm: 'r', args: { key: 'ab/x' } }),
  );
  assert.not.ok(
    capsAllow(regex, { service: 'config-key', prefix: 'config-key get', perm: 'r', args: { key: 'ab/xy' } }),
  );
  // A command grant is every bit, for that command only.
  const all = parseMonCaps('allow command "auth caps"');
  assert.ok(
    capsAllow(all, { service: 'auth', prefix: 'auth caps', perm: 'rwx', args: { entity: 'client.x' } }),
  );
  assert.not.ok(
    capsAllow(all, { service: 'auth', prefix: 'auth rm', perm: 'rwx', args: { entity: 'client.x' } }),
  );
});

test('is_capable: bits add up across grants; profiles; networks; config-key needs more than blanket caps', () => {
  const need = (service: string, prefix: string, perm: Perm, entity?: string) => ({
    service,
    prefix,
    perm,
    args: {},
    ...(entity ? { entity } : {}),
  });
  assert.ok(
    capsAllow(parseMonCaps('allow service auth r, allow service auth x'), need('auth', 'auth get', 'rx')),
  );
  assert.not.ok(capsAllow(parseMonCaps('allow service auth r'), need('auth', 'auth get', 'rx')));
  assert.ok(capsAllow(parseMonCaps('allow rx'), need('auth', 'auth ls', 'rx')));
  assert.not.ok(capsAllow(parseMonCaps('allow rx'), need('auth', 'auth rm', 'rwx')));
  assert.ok(capsAllow(parseMonCaps('allow rwx'), need('auth', 'auth rm', 'rwx')));
  assert.ok(capsAllow(parseMonCaps('allow *'), need('config-key', 'config-key set', 'rw')));
  assert.ok(capsAllow(parseMonCaps('allow all'), need('config-key', 'config-key set', 'rw')));
  assert.not.ok(capsAllow(parseMonCaps('allow rwx'), need('config-key', 'config-key get', 'r')));
  assert.not.ok(capsAllow(parseMonCaps('profile read-write'), need('config-key', 'config-key get', 'r')));
  assert.ok(capsAllow(parseMonCaps('profile read-write'), need('mon', 'log', 'rw')));
  assert.not.ok(capsAllow(parseMonCaps('profile read-only'), need('mon', 'log', 'rw')));
  assert.not.ok(capsAllow(parseMonCaps('profile read-only'), need('auth', 'auth ls', 'rx')));
  assert.ok(capsAllow(parseMonCaps('profile role-definer'), need('auth', 'auth caps', 'rwx')));
  assert.ok(capsAllow(parseMonCaps('profile mgr'), need('config-key', 'config-key set', 'rw')));
  assert.not.ok(capsAllow(parseMonCaps('profile nope'), need('mon', 'mon dump', 'r')));
  // A daemon profile reaches its own daemon-private/NAME/ config keys.
  const mine = {
    ...need('config-key', 'config-key get', 'r', 'mon.a'),
    args: { key: 'daemon-private/mon.a/x' },
  };
  assert.ok(capsAllow(parseMonCaps('profile mon'), mine));
  assert.not.ok(capsAllow(parseMonCaps('profile mon'), { ...mine, args: { key: 'daemon-private/mon.b/x' } }));
  // network: a grant applies only to a peer inside it; without an address, not at all.
  const local = parseMonCaps('allow r network 127.0.0.0/8');
  assert.ok(capsAllow(local, { ...need('mon', 'mon dump', 'r'), addr: '127.0.0.1:5000' }));
  assert.not.ok(capsAllow(local, { ...need('mon', 'mon dump', 'r'), addr: '10.0.0.1:5000' }));
  assert.not.ok(capsAllow(local, need('mon', 'mon dump', 'r')));
  assert.ok(networkContains('::1/128', '[::1]:6789'));
  assert.ok(networkContains('fd00::/8', 'fd12:3456::1'));
  assert.not.ok(networkContains('fd00::/8', 'fe80::1'));
  assert.not.ok(networkContains('127.0.0.0/8', '[::1]:6789'));
  assert.not.ok(networkContains('f', '127.0.0.1'));
  assert.ok(networkContains('10.1.2.3', '10.1.2.3:1'));
});

test.run();
