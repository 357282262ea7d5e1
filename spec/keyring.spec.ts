// Keyring files in Ceph's format (actors/keyring.ts, machines/keyring-text.ts): round trips,
// keyrings Ceph wrote (ceph-authtool 16.2.15, spec/fixtures/ceph-auth/ceph-authtool.keyring),
// malformed input with the line named, and files written 0600 and atomically.
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  formatKeyring,
  generateKey,
  type KeyringEntry,
  KeyringError,
  keySecret,
  parseEntityName,
  parseKeyring,
  readKeyring,
  writeKeyring,
} from '../actors/keyring.ts';
import { decodeCryptoKey, encodeCryptoKey, isCryptoKey } from '../machines/crypto-key.ts';

const fixture = fileURLToPath(new URL('./fixtures/ceph-auth/ceph-authtool.keyring', import.meta.url));
const monKey = 'AQBSdFNlAAAAABAAp0bMaqMfTOrKzn+vvlvdjQ==';

function throwsKeyring(text: string, pattern: RegExp, line?: number) {
  try {
    parseKeyring(text);
  } catch (error) {
    assert.instance(error, KeyringError);
    assert.match((error as Error).message, pattern);
    if (line !== undefined) assert.is((error as KeyringError).line, line, (error as Error).message);
    return;
  }
  assert.unreachable(`parsed: ${JSON.stringify(text)}`);
}

test('the Ceph sample: [mon.] with caps mon, and its exact text back', () => {
  const text = `[mon.]\n\tkey = ${monKey}\n\tcaps mon = "allow *"\n`;
  const entries = parseKeyring(text);
  assert.equal(entries, [{ entity: 'mon.', key: monKey, caps: { mon: 'allow *' } }]);
  assert.is(formatKeyring(entries), text);
  assert.is(keySecret(entries[0] as KeyringEntry).byteLength, 16);
  assert.equal(keySecret(monKey), keySecret(entries[0] as KeyringEntry));
});

test('a keyring ceph-authtool wrote reads, and formats back byte for byte (order, quotes, escapes)', async () => {
  const text = await readFile(fixture, 'utf8');
  const entries = parseKeyring(text);
  assert.equal(
    entries.map((e) => e.entity),
    ['mon.', 'mds.a', 'osd.0', 'client.admin', 'client.x', 'mgr.x'],
  );
  const x = entries.find((e) => e.entity === 'client.x') as KeyringEntry;
  assert.equal(x.caps, { mon: 'allow command "config-key get" with key prefix app/', osd: 'allow rw' });
  assert.is(formatKeyring(entries), text);
  // Ceph's order whatever order the entries come in: mon, mds, osd, client, mgr; then by id.
  assert.is(formatKeyring([...entries].reverse()), text);
  // Ceph's keys carry nanoseconds: the text is kept as it was, never re-encoded.
  assert.ok(entries.every((e) => isCryptoKey(e.key)));
});

test("what Ceph's ini grammar accepts: comments, caps_mon, single quotes, blanks, [global], auid", () => {
  const text = [
    '# a comment',
    '; another',
    '[global]',
    '  fsid = whatever',
    '',
    '[client.a]   # trailing comment',
    `    key=${monKey}`,
    "    caps_mon = 'allow r'",
    '    caps   osd = allow rw ; comment',
    '    caps mgr = "allow \\"quoted\\" # not a comment"',
    '    auid = 0',
    '[client.b]',
    `\tkey = ${monKey}`,
    '',
  ].join('\r\n');
  throwsKeyring(text, /malformed value of 'caps mgr'/, 10);
  const fine = text.replace('# not a comment', 'not a comment');
  assert.equal(parseKeyring(fine), [
    {
      entity: 'client.a',
      key: monKey,
      caps: { mon: 'allow r', osd: 'allow rw', mgr: 'allow "quoted" not a comment' },
    },
    { entity: 'client.b', key: monKey, caps: {} },
  ]);
  assert.equal(parseKeyring(''), []);
});

test('malformed keyrings: each refused with its line', () => {
  throwsKeyring(`[foo]\n\tkey = ${monKey}\n`, /line 1: bad entity name in keyring: foo/, 1);
  throwsKeyring(`[bar.x]\n\tkey = ${monKey}\n`, /bad entity name in keyring: bar\.x/, 1);
  throwsKeyring(`[client.a\n\tkey = ${monKey}\n`, /malformed section heading/, 1);
  throwsKeyring(`[]\n`, /malformed section heading/, 1);
  throwsKeyring(
    '[client.a]\n\tkey = AQAMsx\n',
    /line 2: error setting modifier for \[client\.a\] type=key/,
    2,
  );
  throwsKeyring(`[client.a]\n\tkey = ${monKey.replace('AQ', 'Ag')}\n`, /type=key: key type/, 2);
  throwsKeyring(`[client.a]\n\tkey = ${monKey}\n\tbogus = 1\n`, /type=bogus: unknown field/, 3);
  throwsKeyring(`[client.a]\n\tkey = ${monKey}\n\tcaps = x\n`, /type=caps: unknown field/, 3);
  throwsKeyring(
    `[client.a]\n\tkey = ${monKey}\n[client.a]\n\tkey = ${monKey}\n`,
    /duplicate entity \[client\.a\] \(first at line 1\)/,
    3,
  );
  throwsKeyring(`[client.a]\n\tkey = ${monKey}\n\tkey = ${monKey}\n`, /duplicate 'key' in \[client\.a\]/, 3);
  throwsKeyring(`\tkey = ${monKey}\n`, /line 1: 'key' outside a section/, 1);
  throwsKeyring(`[client.a]\n\tcaps mon = "allow r"\n`, /\[client\.a\] has no key/, 1);
  throwsKeyring(`[client.a]\n\tcaps mon = "allow r\n\tkey = ${monKey}\n`, /malformed value of 'caps mon'/, 2);
  throwsKeyring(`[client.a]\n\tkey\n`, /line 2: expected '\[TYPE\.ID\]' or 'field = value'/, 2);
  throwsKeyring(`[client.a]\n\t${monKey}\n`, /line 2: .*type=\(not shown\): unknown field/, 2);
  // The secret itself is never repeated in an error.
  try {
    parseKeyring(`[client.a]\n\t${monKey}\n`);
  } catch (error) {
    assert.not.match((error as Error).message, monKey.slice(0, 20));
  }
});

test('entity names as EntityName::from_str takes them', () => {
  assert.equal(parseEntityName('client.admin'), { type: 'client', id: 'admin' });
  assert.equal(parseEntityName('mon.'), { type: 'mon', id: '' });
  assert.equal(parseEntityName('osd.0'), { type: 'osd', id: '0' });
  assert.equal(parseEntityName('client.rgw.a.b'), { type: 'client', id: 'rgw.a.b' });
  for (const t of ['mds', 'mgr', 'auth']) assert.ok(parseEntityName(`${t}.x`));
  for (const bad of ['client', 'admin', 'foo.bar', '.x', 'CLIENT.x', 'client.a\nb']) {
    assert.is(parseEntityName(bad), undefined, bad);
  }
});

test('generateKey: a Ceph AES key of 16 random bytes, created now', () => {
  const a = generateKey(1_700_000_000_123);
  const b = generateKey(1_700_000_000_123);
  assert.is(a.length, 40);
  assert.ok(a.startsWith('AQ'));
  assert.is.not(a, b);
  assert.is(decodeCryptoKey(a).createdMs, 1_700_000_000_123);
  assert.is(keySecret(a).byteLength, 16);
});

test("round trip: any entries format and parse back to themselves (in Ceph's order)", () => {
  const entity = fc
    .tuple(fc.constantFrom('mon', 'mds', 'osd', 'client', 'mgr'), fc.stringMatching(/^[a-z0-9_.-]{0,12}$/))
    .map(([t, id]) => `${t}.${id}`);
  // Printable ASCII without Ceph's comment characters (`\`, `"` and quotes are escaped).
  const capText = fc.stringMatching(/^[ -~]{0,40}$/).filter((s) => !/[#;]/.test(s) && s.trim() === s);
  fc.assert(
    fc.property(
      fc.uniqueArray(
        fc
          .record({
            entity,
            key: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((secret) => encodeCryptoKey(secret, 0)),
            caps: fc
              .dictionary(fc.constantFrom('mon', 'osd', 'mgr', 'mds'), capText)
              .map((caps) => ({ ...caps })),
          })
          .map((e) => ({ ...e })),
        { selector: (e) => e.entity, maxLength: 6 },
      ),
      (entries) => {
        const text = formatKeyring(entries);
        const back = parseKeyring(text);
        assert.equal(
          [...back].sort((a, b) => a.entity.localeCompare(b.entity)),
          [...entries].sort((a, b) => a.entity.localeCompare(b.entity)),
        );
        assert.is(formatKeyring(back), text);
      },
    ),
    { numRuns: 200 },
  );
});

test('writeKeyring: mode 0600 whatever the umask, atomic (no temp file left), readKeyring reads it back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'paxmon-keyring-'));
  try {
    const path = join(dir, 'keyring');
    const entries: KeyringEntry[] = [
      { entity: 'client.admin', key: generateKey(), caps: { mon: 'allow *' } },
      { entity: 'mon.', key: generateKey(), caps: { mon: 'allow *' } },
    ];
    const previous = process.umask(0o000);
    try {
      await writeKeyring(path, entries);
    } finally {
      process.umask(previous);
    }
    assert.is((await stat(path)).mode & 0o777, 0o600);
    assert.equal(await readdir(dir), ['keyring']);
    assert.is(await readFile(path, 'utf8'), formatKeyring(entries));
    assert.equal(
      (await readKeyring(path)).map((e) => e.entity),
      ['mon.', 'client.admin'],
    );
    // Over an existing, world-readable file: replaced, and 0600 again.
    await writeFile(path, 'old', { mode: 0o644 });
    await writeKeyring(path, entries.slice(0, 1));
    assert.is((await stat(path)).mode & 0o777, 0o600);
    assert.is((await readKeyring(path)).length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readKeyring: errors name the path (and the line), with an errno code', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'paxmon-keyring-'));
  try {
    const missing = join(dir, 'nope');
    try {
      await readKeyring(missing);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, KeyringError);
      assert.is((error as KeyringError).code, 'ENOENT');
      assert.match((error as Error).message, `keyring ${missing}: cannot read it`);
    }
    const bad = join(dir, 'bad');
    await writeFile(bad, `[client.a]\n\tkey = ${monKey}\n\tfoo = 1\n`);
    try {
      await readKeyring(bad);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, KeyringError);
      assert.is((error as KeyringError).code, 'EINVAL');
      assert.is((error as KeyringError).line, 3);
      assert.is(
        (error as Error).message,
        `keyring ${bad}: line 3: error setting modifier for [client.a] type=foo: unknown field`,
      );
    }
    await writeFile(bad, new Uint8Array([0x5b, 0xff, 0x5d]));
    try {
      await readKeyring(bad);
      assert.unreachable();
    } catch (error) {
      assert.match((error as Error).message, 'not UTF-8');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
