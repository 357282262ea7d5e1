// auth: Ceph's AuthMonitor (src/mon/AuthMonitor.cc) — the entities (`client.admin`,
// `client.NAME`, `osd.0`…), each with its key and caps, kept by Paxos. Commands as Ceph 16.2.15
// answers them (spec/fixtures/ceph-auth/, captured from a real monitor): `auth get`, `get-key` /
// `print-key` / `print_key`, `ls` / `list`, `export`, `get-or-create`, `get-or-create-key`,
// `add`, `import`, `caps`, `del` / `rm`.
//
// Storage: each entity under 'auth_entity' (key: the entity name; value: its key and caps); the
// service's versioned history is 'auth', whose versions name what changed (never a key).
// State: every entity's key as the 28 bytes of Ceph's CryptoKey encoding (byte arrays are what
// the inspector, logs and `--record` files redact; a key is text only in a reply's `data`).
//
// `mon.`: as in Ceph, the monitors' shared key is each monitor's own (its data dir keyring,
// Ceph's KeyServer extra_secrets), not an entry of the database: `auth get mon.` answers it,
// `auth ls` and `auth export` leave it out, `auth rm mon.` finds nothing to remove. Unlike Ceph,
// paxmon refuses to put `mon.` into the database (`auth caps mon.`, `auth add mon.`, `auth import`
// of a keyring naming it): there it would override the key the monitors authenticate each other
// with, and one command could cut every monitor off from the others.
//
// Replies carry Ceph's JSON (`-f json`) as `data`; `renderAuth` gives the plain text Ceph prints.
// Pure: key generation takes its randomness from `options.randomBytes` (node's crypto in the
// runtime, the simulator's PRNG in simulation) and its creation time from the request.
import { type CommandDeclaration, validateMonCaps } from '../caps.ts';
import { decodeCryptoKey, encodeCryptoKey } from '../crypto-key.ts';
import type { AppliedOp, StoreOp } from '../effects.ts';
import {
  compareBytes,
  compareEntityNames,
  type KeyringEntry,
  KeyringError,
  parseEntityName,
  parseKeyring,
} from '../keyring-text.ts';
import type { Preprocessed, Reply, ServiceRequest, ServiceVersions } from '../paxos-service.ts';
import type { LoadableService } from '../service-load.ts';

/** The service's versioned history (auth/first_committed, auth/last_committed, auth/N). */
export const authHistoryPrefix = 'auth';
/** The entities: one key per entity name, its key and caps as JSON. */
export const authDataPrefix = 'auth_entity';
/** Entities kept at most (Ceph sets none; every monitor holds them all in memory). */
export const authEntitiesMax = 100_000;
/** Longest entity name and longest cap text, in UTF-8 bytes. */
const entityBytesMax = 1024;
const capBytesMax = 16 * 1024;
/** Largest keyring `auth import` / `auth add -i` take. */
export const authInbufBytesMax = 1 << 20;
/** Bytes of a generated secret (Ceph's AES keys). */
const secretBytes = 16;
/** History versions kept behind the last committed one. */
const keepVersions = 500;

/** An entity as the service holds it: the key as CryptoKey bytes (never as text), and caps. */
export interface AuthRecord {
  key: Uint8Array;
  caps: Readonly<Record<string, string>>;
}

export interface AuthState {
  /** Whether the auth database exists (create_initial committed): before, the runtime uses the local keyring. */
  created: boolean;
  entities: Readonly<Record<string, AuthRecord>>;
  /** This monitor's own `mon.` entry, from its keyring (Ceph's KeyServer extra_secrets). */
  mon: AuthRecord | undefined;
}

export type AuthChange = { op: 'add'; entity: string; record: AuthRecord } | { op: 'del'; entity: string };
export type AuthPending = AuthChange[];

/** What the runtime loads from the store at start-up for `init`. */
export interface AuthLoaded {
  /** The service's last committed version (0: the database was never created). */
  lastCommitted: number;
  /** Every (key, value) under authDataPrefix. */
  entities: Iterable<readonly [string, Uint8Array]>;
}

export interface AuthServiceOptions {
  /** n random bytes: node's crypto.randomBytes in the runtime, the simulator's PRNG in simulation. */
  randomBytes: (n: number) => Uint8Array;
  /**
   * This monitor's keyring (its data dir's `keyring`, which mkfs fills): its `mon.` entry is the
   * monitors' key; on the leader of a new cluster the others are the database's first entities
   * (AuthMonitor::create_initial imports the mkfs keyring).
   */
  initialKeyring?: readonly KeyringEntry[];
}

// ---------------------------------------------------------------------------------------------
// Keys: text (base64 of the CryptoKey encoding, as in keyrings) ↔ the bytes the state holds.

function keyBytesFromText(text: string): Uint8Array {
  decodeCryptoKey(text); // validates: Ceph AES key, consistent length
  const binary = atob(text.trim());
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function keyTextFromBytes(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The secret in a CryptoKey encoding (after u16 type, u32+u32 created, u16 length). */
const secretOf = (key: Uint8Array): Uint8Array => key.slice(12);

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

const sameCaps = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
};

const recordFromEntry = (entry: KeyringEntry): AuthRecord => ({
  key: keyBytesFromText(entry.key),
  caps: { ...entry.caps },
});

const utf8 = new TextEncoder();
const encodeRecord = (record: AuthRecord): Uint8Array =>
  utf8.encode(JSON.stringify({ key: keyTextFromBytes(record.key), caps: record.caps }));

function decodeRecord(value: Uint8Array): AuthRecord | undefined {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(value)) as { key?: unknown; caps?: unknown };
    if (typeof parsed.key !== 'string' || typeof parsed.caps !== 'object' || parsed.caps === null)
      return undefined;
    const caps: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed.caps)) if (typeof v === 'string') caps[k] = v;
    return { key: keyBytesFromText(parsed.key), caps };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Lookups for the runtime.

/**
 * An entity's secret and caps, for authenticating it (KeyServer::get_auth: the database first,
 * then this monitor's own `mon.`). Undefined for an unknown entity.
 */
export function authLookup(
  state: AuthState,
  entity: string,
): { secret: Uint8Array; caps: Readonly<Record<string, string>> } | undefined {
  const record = Object.hasOwn(state.entities, entity)
    ? state.entities[entity]
    : entity === 'mon.'
      ? state.mon
      : undefined;
  return record ? { secret: secretOf(record.key), caps: record.caps } : undefined;
}

/** Whether the auth database was ever created; before it is, the runtime uses the local keyring. */
export const authCreated = (state: AuthState): boolean => state.created;

/** The AuthLoaded for `init` from what the store holds (the runtime reads the two prefixes). */
export function authLoaded(
  versions: ServiceVersions,
  entities: Iterable<readonly [string, Uint8Array]>,
): AuthLoaded {
  return { lastCommitted: versions.lastCommitted, entities };
}

// ---------------------------------------------------------------------------------------------
// Commands

/** MonCommands.h's auth commands (module "auth"): reads need "rx", changes "rwx". */
export const authCommands: readonly CommandDeclaration[] = [
  { prefix: 'auth export', perm: 'rx', args: ['entity'] },
  { prefix: 'auth get', perm: 'rx', args: ['entity'] },
  { prefix: 'auth get-key', perm: 'rx', args: ['entity'] },
  { prefix: 'auth print-key', perm: 'rx', args: ['entity'] },
  { prefix: 'auth print_key', perm: 'rx', args: ['entity'] },
  { prefix: 'auth list', perm: 'rx' },
  { prefix: 'auth ls', perm: 'rx' },
  { prefix: 'auth import', perm: 'rwx' },
  { prefix: 'auth add', perm: 'rwx', args: ['entity', 'caps...'] },
  { prefix: 'auth get-or-create-key', perm: 'rwx', args: ['entity', 'caps...'] },
  { prefix: 'auth get-or-create', perm: 'rwx', args: ['entity', 'caps...'] },
  { prefix: 'auth caps', perm: 'rwx', args: ['entity', 'caps...'] },
  { prefix: 'auth del', perm: 'rwx', args: ['entity'] },
  { prefix: 'auth rm', perm: 'rwx', args: ['entity'] },
];

const readVerbs = new Set(['export', 'get', 'get-key', 'print-key', 'print_key', 'list', 'ls']);
const writeVerbs = new Set(['import', 'add', 'get-or-create-key', 'get-or-create', 'caps', 'del', 'rm']);
/** Verbs whose second word is the entity (`auth export` takes it optionally). */
const entityVerbs = new Set(
  [...readVerbs, ...writeVerbs].filter((v) => !['list', 'ls', 'import'].includes(v)),
);

const EINVAL = -22;
const ENOENT = -2;
const EEXIST = -17;
const usage =
  'usage: auth get|get-key|print-key|export [ENTITY] | auth ls | auth get-or-create[-key] ENTITY [TYPE CAPS…] | auth add ENTITY [TYPE CAPS…] [-i KEYRING] | auth caps ENTITY TYPE CAPS… | auth del|rm ENTITY | auth import -i KEYRING';

const fail = (r: number, rs: string): Reply => ({ r, rs });
const json = (value: unknown): Uint8Array => utf8.encode(JSON.stringify(value));

/** A keyring's JSON form (KeyRing::encode_formatted): entity, key, caps. */
function entryJson(entity: string, record: AuthRecord) {
  const caps: Record<string, string> = {};
  for (const k of Object.keys(record.caps).sort(compareBytes)) caps[k] = record.caps[k] as string;
  return { entity, key: keyTextFromBytes(record.key), caps };
}

/** What an auth command comes to, given the entities as they stand. */
type Outcome = { reply: Reply } | { change: AuthChange[]; reply: Reply };

/** The entities as they will be once `pending` commits. */
function effective(state: AuthState, pending: AuthPending): Record<string, AuthRecord> {
  if (pending.length === 0) return state.entities as Record<string, AuthRecord>;
  const entities: Record<string, AuthRecord> = { ...state.entities };
  for (const c of pending) {
    if (c.op === 'add') entities[c.entity] = c.record;
    else delete entities[c.entity];
  }
  return entities;
}

/**
 * AuthMonitor::valid_caps for TYPE CAPS pairs: mon caps are parsed (Ceph's error text); osd, mds
 * and mgr caps are kept as given (paxmon has none of those daemons to parse them for); any other
 * type is Ceph's "unknown cap type".
 */
function capsError(pairs: [string, string][]): string | undefined {
  for (const [type, text] of pairs) {
    if (utf8.encode(text).length > capBytesMax) return `cap '${type}' is longer than ${capBytesMax} bytes`;
    if (type === 'mon') {
      const error = validateMonCaps(text);
      if (error) return error;
    } else if (type !== 'osd' && type !== 'mds' && type !== 'mgr') {
      return `unknown cap type '${type}'`;
    }
  }
  return undefined;
}

/** TYPE CAPS … → a map (std::map: a type given twice keeps the last). */
function capsMap(pairs: [string, string][]): Record<string, string> {
  const caps: Record<string, string> = {};
  for (const [type, text] of pairs) caps[type] = text;
  return caps;
}

/** The pairs of the words after the entity (already checked to be even). */
function capPairs(words: string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < words.length; i += 2) pairs.push([words[i] as string, words[i + 1] as string]);
  return pairs;
}

const monRefusal = (entity: string): Reply =>
  fail(
    EINVAL,
    `${entity} is the monitors' own key, kept in each monitor's keyring; auth commands do not change it`,
  );

/**
 * One auth command against `entities` (committed, or committed + pending on the leader):
 * AuthMonitor::preprocess_command and prepare_command in one pure function. A `change` is to be
 * committed before its reply is given; a bare `reply` changes nothing.
 */
export function authCommand(
  entities: Readonly<Record<string, AuthRecord>>,
  mon: AuthRecord | undefined,
  request: Pick<ServiceRequest, 'cmd' | 'inbuf' | 'receivedAt'>,
  randomBytes: (n: number) => Uint8Array,
): Outcome {
  const cmd = request.cmd;
  const verb = cmd[1] ?? '';
  const get = (entity: string): AuthRecord | undefined =>
    Object.hasOwn(entities, entity) ? entities[entity] : entity === 'mon.' ? mon : undefined;
  const inDatabase = (entity: string) => Object.hasOwn(entities, entity);
  const newKey = (): Uint8Array => {
    const secret = randomBytes(secretBytes);
    if (secret.byteLength !== secretBytes)
      throw new RangeError(`randomBytes gave ${secret.byteLength} bytes`);
    return keyBytesFromText(encodeCryptoKey(secret, request.receivedAt));
  };
  const full = (count: number) =>
    Object.keys(entities).length + count > authEntitiesMax
      ? fail(-28, `the auth database holds at most ${authEntitiesMax} entities`)
      : undefined;

  if (!readVerbs.has(verb) && !writeVerbs.has(verb))
    return { reply: fail(EINVAL, `invalid command; ${usage}`) };
  const entity = entityVerbs.has(verb) ? cmd[2] : undefined;
  const rest = cmd.slice(entityVerbs.has(verb) ? 3 : 2);

  // preprocess_command: the reads.
  if (readVerbs.has(verb)) {
    const takesEntity = verb !== 'list' && verb !== 'ls';
    const entityOptional = verb === 'export';
    if (rest.length > 0 || (takesEntity && !entityOptional && entity === undefined)) {
      return { reply: fail(EINVAL, `invalid command; ${usage}`) };
    }
    if (entity !== undefined && (!parseEntityName(entity) || utf8.encode(entity).length > entityBytesMax)) {
      return { reply: fail(EINVAL, `invalid entity_auth ${entity}`) };
    }
    const sorted = () =>
      Object.keys(entities)
        .sort(compareEntityNames)
        .map((name) => entryJson(name, entities[name] as AuthRecord));
    switch (verb) {
      case 'ls':
      case 'list': {
        const all = sorted();
        return {
          reply: {
            r: 0,
            rs: all.length > 0 ? 'installed auth entries:\n' : 'no installed auth entries!\n',
            data: json({ auth_dump: all }),
          },
        };
      }
      case 'export': {
        if (entity === undefined)
          return { reply: { r: 0, rs: 'exported master keyring', data: json(sorted()) } };
        // Ceph: "export auth(key=…)" on stderr, the secret included; paxmon prints no key there.
        const record = inDatabase(entity) ? entities[entity] : undefined;
        if (!record) return { reply: fail(ENOENT, `no key for ${entity}`) };
        return {
          reply: { r: 0, rs: `exported keyring for ${entity}`, data: json([entryJson(entity, record)]) },
        };
      }
      case 'get': {
        const record = get(entity as string);
        if (!record) return { reply: fail(ENOENT, `failed to find ${entity} in keyring`) };
        return {
          reply: {
            r: 0,
            rs: `exported keyring for ${entity}`,
            data: json([entryJson(entity as string, record)]),
          },
        };
      }
      default: {
        // get-key, print-key, print_key
        const record = get(entity as string);
        if (!record) return { reply: fail(ENOENT, `don't have ${entity}`) };
        return { reply: { r: 0, rs: '', data: json({ key: keyTextFromBytes(record.key) }) } };
      }
    }
  }

  // prepare_command: the changes. Ceph's order of checks: caps in pairs, then the entity name.
  if (verb !== 'import' && entity === undefined) return { reply: fail(EINVAL, `invalid command; ${usage}`) };
  if (verb === 'del' || verb === 'rm') {
    if (rest.length > 0) return { reply: fail(EINVAL, `invalid command; ${usage}`) };
  } else if (verb !== 'import' && rest.length % 2 !== 0) {
    return { reply: fail(EINVAL, 'bad capabilities request; odd number of arguments') };
  }
  if (verb === 'caps' && rest.length === 0) {
    return { reply: fail(EINVAL, 'invalid command; usage: auth caps ENTITY TYPE CAPS…') };
  }
  if (verb === 'import' && rest.length > 0) return { reply: fail(EINVAL, `invalid command; ${usage}`) };
  if (entity !== undefined && (!parseEntityName(entity) || utf8.encode(entity).length > entityBytesMax)) {
    return { reply: fail(EINVAL, 'bad entity name') };
  }
  const pairs = capPairs(rest);
  const name = entity as string;

  switch (verb) {
    case 'get-or-create':
    case 'get-or-create-key': {
      const bad = capsError(pairs);
      if (bad) return { reply: fail(EINVAL, bad) };
      const wanted = capsMap(pairs);
      const answer = (record: AuthRecord): Reply =>
        verb === 'get-or-create-key'
          ? { r: 0, rs: '', data: json({ key: keyTextFromBytes(record.key) }) }
          : { r: 0, rs: '', data: json([entryJson(name, record)]) };
      const existing = get(name);
      if (existing) {
        for (const type of Object.keys(wanted).sort(compareBytes)) {
          if (existing.caps[type] !== wanted[type]) {
            return { reply: fail(EINVAL, `key for ${name} exists but cap ${type} does not match`) };
          }
        }
        return { reply: answer(existing) };
      }
      if (name === 'mon.') return { reply: monRefusal(name) };
      const tooMany = full(1);
      if (tooMany) return { reply: tooMany };
      const record: AuthRecord = { key: newKey(), caps: wanted };
      return { change: [{ op: 'add', entity: name, record }], reply: answer(record) };
    }
    case 'add': {
      // AuthMonitor::prepare_command "auth add": the keyring decodes, the command's caps are
      // valid, the keyring names the entity, caps come from one place only.
      let fromKeyring: AuthRecord | undefined;
      const keyring =
        (request.inbuf?.byteLength ?? 0) > 0 ? decodeKeyring(request.inbuf as Uint8Array) : undefined;
      if (keyring && 'error' in keyring) return { reply: fail(EINVAL, 'error decoding keyring') };
      const bad = capsError(pairs);
      if (bad) return { reply: fail(EINVAL, bad) };
      if (keyring) {
        const entry = keyring.entries.find((e) => e.entity === name);
        if (!entry) return { reply: fail(EINVAL, `key for ${name} not found in provided keyring`) };
        if (pairs.length > 0 && Object.keys(entry.caps).length > 0) {
          return { reply: fail(EINVAL, 'caps cannot be specified both in keyring and in command') };
        }
        fromKeyring = recordFromEntry(entry);
      }
      const caps = pairs.length > 0 ? capsMap(pairs) : (fromKeyring?.caps ?? {});
      // paxmon checks the keyring's mon caps too (Ceph takes them as they are).
      const badKeyringCaps = capsError(Object.entries(caps));
      if (badKeyringCaps) return { reply: fail(EINVAL, badKeyringCaps) };
      // AuthMonitor::exists_and_matches_entity
      const existing = get(name);
      if (existing) {
        if (fromKeyring && !sameBytes(secretOf(existing.key), secretOf(fromKeyring.key))) {
          return { reply: fail(EEXIST, `entity ${name} exists but key does not match`) };
        }
        if (Object.keys(caps).length !== Object.keys(existing.caps).length) {
          return { reply: fail(EINVAL, `entity ${name} exists but caps do not match`) };
        }
        for (const type of Object.keys(caps).sort(compareBytes)) {
          if (existing.caps[type] !== caps[type]) {
            return { reply: fail(EINVAL, `entity ${name} exists but cap ${type} does not match`) };
          }
        }
        return { reply: { r: 0, rs: '' } };
      }
      if (name === 'mon.') return { reply: monRefusal(name) };
      const tooMany = full(1);
      if (tooMany) return { reply: tooMany };
      const record: AuthRecord = { key: fromKeyring?.key ?? newKey(), caps };
      return { change: [{ op: 'add', entity: name, record }], reply: { r: 0, rs: `added key for ${name}` } };
    }
    case 'caps': {
      const existing = get(name);
      if (existing && name === 'mon.') return { reply: monRefusal(name) };
      if (!existing) return { reply: fail(ENOENT, `couldn't find entry ${name}`) };
      const bad = capsError(pairs);
      if (bad) return { reply: fail(EINVAL, bad) };
      const record: AuthRecord = { key: existing.key, caps: capsMap(pairs) };
      return {
        change: [{ op: 'add', entity: name, record }],
        reply: { r: 0, rs: `updated caps for ${name}` },
      };
    }
    case 'del':
    case 'rm': {
      if (!inDatabase(name)) return { reply: { r: 0, rs: `entity ${name} does not exist` } };
      return { change: [{ op: 'del', entity: name }], reply: { r: 0, rs: 'updated' } };
    }
    default: {
      // import
      if (!request.inbuf || request.inbuf.byteLength === 0) {
        return { reply: fail(EINVAL, 'auth import: no data supplied') };
      }
      const keyring = decodeKeyring(request.inbuf);
      if ('error' in keyring) {
        return {
          reply: fail(
            EINVAL,
            `error decoding keyring cannot parse buffer: Malformed input (${keyring.error})`,
          ),
        };
      }
      // Ceph adds the entries before the first one without caps and then refuses the rest;
      // paxmon refuses the whole keyring.
      if (keyring.entries.some((e) => Object.keys(e.caps).length === 0)) {
        return { reply: fail(EINVAL, 'auth import: no caps supplied') };
      }
      if (keyring.entries.some((e) => e.entity === 'mon.')) return { reply: monRefusal('mon.') };
      for (const e of keyring.entries) {
        const bad = capsError(Object.entries(e.caps));
        if (bad) return { reply: fail(EINVAL, `${e.entity}: ${bad}`) };
      }
      const tooMany = full(keyring.entries.filter((e) => !inDatabase(e.entity)).length);
      if (tooMany) return { reply: tooMany };
      return {
        change: keyring.entries.map((e) => ({ op: 'add', entity: e.entity, record: recordFromEntry(e) })),
        reply: { r: 0, rs: 'imported keyring' },
      };
    }
  }
}

function decodeKeyring(inbuf: Uint8Array): { entries: KeyringEntry[] } | { error: string } {
  if (inbuf.byteLength > authInbufBytesMax) return { error: `more than ${authInbufBytesMax} bytes` };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(inbuf);
  } catch {
    return { error: 'not UTF-8 text' };
  }
  try {
    const entries = parseKeyring(text);
    return entries.length > 0 ? { entries } : { error: 'no entities' };
  } catch (error) {
    if (error instanceof KeyringError) return { error: error.message };
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Ceph's plain text

/**
 * What Ceph's CLI prints for a successful auth command's reply, in `format` (plain: Ceph's text;
 * json / json-pretty: the reply's JSON, as paxmon's CLI prints JSON). stderr is the status line.
 *
 * @example
 * renderAuth(['auth', 'get-key', 'client.a'], reply, 'plain') // { stdout: 'AQ…==', stderr: '' }
 */
export function renderAuth(
  cmd: string[],
  reply: Reply,
  format: 'plain' | 'json' | 'json-pretty',
): { stdout: string; stderr: string } {
  const verb = cmd[1] ?? '';
  const dataText =
    reply.data === undefined
      ? ''
      : typeof reply.data === 'string'
        ? reply.data
        : new TextDecoder().decode(reply.data);
  const value: unknown = dataText ? JSON.parse(dataText) : undefined;
  // `auth ls` says "installed auth entries:" only over its plain text.
  const stderr =
    reply.rs && !(format !== 'plain' && (verb === 'ls' || verb === 'list')) ? `${reply.rs}\n` : '';
  if (value === undefined) return { stdout: '', stderr };
  if (format !== 'plain') {
    return {
      stdout: `${format === 'json' ? JSON.stringify(value) : JSON.stringify(value, null, 4)}\n`,
      stderr,
    };
  }
  type Entry = { entity: string; key: string; caps: Record<string, string> };
  if (verb === 'ls' || verb === 'list') {
    // KeyServer::encode_plaintext
    let out = '';
    for (const e of (value as { auth_dump: Entry[] }).auth_dump) {
      out += `${e.entity}\n\tkey: ${e.key}\n`;
      for (const [type, caps] of Object.entries(e.caps)) out += `\tcaps: [${type}] ${caps}\n`;
    }
    return { stdout: out, stderr };
  }
  if (verb === 'get-key' || verb === 'print-key' || verb === 'print_key') {
    return { stdout: (value as { key: string }).key, stderr };
  }
  if (verb === 'get-or-create-key') return { stdout: `${(value as { key: string }).key}\n`, stderr };
  const entries = value as Entry[];
  // get-or-create's plain keyring has the key only (AuthMonitor sets caps for the formatted one).
  const keyring = entries.map((e) => ({
    entity: e.entity,
    key: e.key,
    caps: verb === 'get-or-create' ? {} : e.caps,
  }));
  let out = '';
  for (const e of keyring) {
    out += `[${e.entity}]\n\tkey = ${e.key}\n`;
    for (const [type, caps] of Object.entries(e.caps)) {
      out += `\tcaps ${type} = "${caps.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"\n`;
    }
  }
  return { stdout: out, stderr };
}

// ---------------------------------------------------------------------------------------------
// The service

export function authService(options: AuthServiceOptions): LoadableService<AuthState, AuthPending> {
  const initial = options.initialKeyring ?? [];
  const monEntry = initial.find((e) => e.entity === 'mon.');
  const mon = monEntry ? recordFromEntry(monEntry) : undefined;
  return {
    name: 'auth',
    prefix: authHistoryPrefix,
    handles: (cmd) => cmd[0] === 'auth',
    commands: authCommands,
    // KeyServer's data lives outside the history: the entities, read whole at start-up.
    load: {
      dataPrefixes: [authDataPrefix],
      loaded: (stored) => authLoaded(stored.versions, stored.data[authDataPrefix] ?? []),
    },
    init(loaded) {
      const entities: Record<string, AuthRecord> = {};
      const l = loaded as AuthLoaded | null | undefined;
      for (const [name, value] of l?.entities ?? []) {
        const record = decodeRecord(value);
        if (record && parseEntityName(name)) entities[name] = record;
      }
      return { created: (l?.lastCommitted ?? 0) > 0, entities, mon };
    },
    // AuthMonitor::create_initial: the leader's keyring becomes the database (without `mon.`,
    // which stays each monitor's own). Ceph also creates client.bootstrap-* keys for daemons
    // paxmon does not have; paxmon creates none.
    createInitial: () =>
      initial
        .filter((e) => e.entity !== 'mon.' && parseEntityName(e.entity))
        .map((e) => ({ op: 'add', entity: e.entity, record: recordFromEntry(e) })),
    createPending: () => [],
    preprocessQuery(state, request): Preprocessed {
      const outcome = authCommand(state.entities, state.mon, request, () => new Uint8Array(secretBytes));
      // A change goes to prepare_update (on the leader, where the key is made); the rest is answered here.
      return 'change' in outcome ? null : { reply: outcome.reply };
    },
    prepareUpdate(state, pending, request) {
      const outcome = authCommand(effective(state, pending), state.mon, request, options.randomBytes);
      if (!('change' in outcome)) return { error: outcome.reply };
      return { pending: [...pending, ...outcome.change], reply: outcome.reply };
    },
    encodePending(_state, pending, version) {
      const ops: StoreOp[] = pending.map((c) =>
        c.op === 'add'
          ? { op: 'put', prefix: authDataPrefix, key: c.entity, value: encodeRecord(c.record) }
          : { op: 'erase', prefix: authDataPrefix, key: c.entity },
      );
      // The incremental names what changed, never a key.
      ops.push({
        op: 'put',
        prefix: authHistoryPrefix,
        key: String(version),
        value: JSON.stringify(pending.map((c) => [c.op, c.entity])),
      });
      return ops;
    },
    updateFromPaxos(state, ops: AppliedOp[], versions) {
      let entities: Record<string, AuthRecord> | undefined;
      for (const op of ops) {
        if (op.prefix !== authDataPrefix) continue;
        entities ??= { ...state.entities };
        if (op.op === 'put') {
          const record = decodeRecord(op.value);
          if (record) entities[op.key] = record;
        } else if (op.op === 'erase') {
          delete entities[op.key];
        } else {
          for (const name of Object.keys(entities)) {
            if (name >= op.start && (op.end === '' || name < op.end)) delete entities[name];
          }
        }
      }
      const created = state.created || versions.lastCommitted > 0;
      if (!entities && created === state.created) return state;
      return { ...state, created, entities: entities ?? state.entities };
    },
    getTrimTo: (_state, versions) => Math.max(0, versions.lastCommitted - keepVersions),
  };
}
