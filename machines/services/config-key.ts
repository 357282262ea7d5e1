// config-key: Ceph's KVMonitor / ConfigKeyService — an arbitrary key/value store kept by Paxos.
// Data lives under its own prefix ('config-key'); the service's versioned history is 'kv'.
import type { CommandDeclaration } from '../caps.ts';
import type { StoreOp } from '../effects.ts';
import type { Preprocessed, Reply, ServiceDefinition, ServiceRequest } from '../paxos-service.ts';

export const configKeyDataPrefix = 'config-key';
/** mon_config_key_max_entry_size (Ceph's default 64 KiB). */
export const configKeyMaxEntrySizeDefault = 64 * 1024;
const keysMax = 100_000;
/**
 * Longest key, in UTF-8 bytes. Ceph sets none, but RocksDB keys are the store's, and paxmon's
 * store refuses keys over 16 KiB: a longer one must be the client's EINVAL, never a store error.
 */
export const configKeyKeyBytesMax = 4096;
/** Service versions kept behind the last committed one (Ceph keeps ~500 of most services). */
const keepVersions = 500;

type Change = { op: 'set'; key: string; value: Uint8Array } | { op: 'rm'; key: string };
/**
 * The pending changes, newest first, as an immutable list: an append is one cell, and a snapshot
 * holding an older list still sees it unchanged. (An array copied per request cost a leader
 * O(n²) copies per proposal under 64 writes in flight: 6% of its allocation.)
 */
export type ConfigKeyPending = { readonly change: Change; readonly before: ConfigKeyPending } | null;

/** The changes of a pending list, oldest first. */
function changesOf(pending: ConfigKeyPending): Change[] {
  const changes: Change[] = [];
  for (let cell = pending; cell !== null; cell = cell.before) changes.push(cell.change);
  return changes.reverse();
}

const einval = (rs: string): Reply => ({ r: -22, rs });
const enoent = (key: string): Reply => ({ r: -2, rs: `key '${key}' doesn't exist` });
const usage =
  'usage: config-key set <key> [<value>] (or -i FILE) | get <key> | rm <key> | exists <key> | ls | dump [<prefix>]';

/**
 * U+FFFD, the replacement character: what bytes that are not UTF-8 become once decoded (a
 * shell's $'\xff' in argv, a raw str in a frame). Two different byte keys would both become it
 * and silently name one entry, so a key containing it is refused rather than merged.
 */
export const replacementCharacter = '\uFFFD';

const utf8 = new TextEncoder();

const keyTooLong = (key: string | undefined): Reply | undefined => {
  if (key === undefined) return undefined;
  if (key.includes(replacementCharacter)) {
    return einval(
      'key contains U+FFFD (bytes that are not UTF-8 decode to it): config-key keys must be valid UTF-8 without U+FFFD',
    );
  }
  // A UTF-16 code unit is at most 3 bytes of UTF-8: a short key needs no encoding to be measured.
  if (key.length * 3 <= configKeyKeyBytesMax) return undefined;
  const bytes = utf8.encode(key).length;
  return bytes > configKeyKeyBytesMax
    ? einval(`key is ${bytes} bytes; config-key keys are limited to ${configKeyKeyBytesMax} bytes`)
    : undefined;
};

/**
 * MonCommands.h's config-key commands (module "config-key"): reads need `r`, changes `rw`. Ceph
 * gives config-key to no blanket cap but `allow *` (machines/caps.ts); `allow command
 * "config-key get" with key prefix app/` finds the key as the argument `key`.
 */
export const configKeyCommands: readonly CommandDeclaration[] = [
  { prefix: 'config-key get', perm: 'r', args: ['key'] },
  { prefix: 'config-key exists', perm: 'r', args: ['key'] },
  { prefix: 'config-key ls', perm: 'r' },
  { prefix: 'config-key list', perm: 'r' },
  { prefix: 'config-key dump', perm: 'r', args: ['key'] },
  { prefix: 'config-key set', perm: 'rw', args: ['key', 'val'] },
  { prefix: 'config-key put', perm: 'rw', args: ['key', 'val'] },
  { prefix: 'config-key rm', perm: 'rw', args: ['key'] },
  { prefix: 'config-key del', perm: 'rw', args: ['key'] },
  { prefix: 'config-key delete', perm: 'rw', args: ['key'] },
];

/** Ceph's aliases: put = set, del/delete = rm, list = ls. */
function verb(cmd: string[]): string | undefined {
  const v = cmd[1];
  return v === 'put' ? 'set' : v === 'del' || v === 'delete' ? 'rm' : v === 'list' ? 'ls' : v;
}

export function configKeyService(
  options: { maxEntrySizeBytes?: number } = {},
): ServiceDefinition<null, ConfigKeyPending> {
  const maxEntrySize = options.maxEntrySizeBytes ?? configKeyMaxEntrySizeDefault;
  return {
    name: 'config-key',
    prefix: 'kv',
    handles: (cmd) => cmd[0] === 'config-key',
    commands: configKeyCommands,
    init: () => null,
    createInitial: () => null,
    createPending: () => null,
    preprocessQuery(_state, request: ServiceRequest): Preprocessed {
      const cmd = request.cmd;
      const key = cmd[2];
      const tooLong = keyTooLong(key);
      if (tooLong) return { reply: tooLong };
      switch (verb(cmd)) {
        case 'get':
          if (key === undefined || cmd.length !== 3) return { reply: einval(`${usage}`) };
          return { read: { kind: 'get', prefix: configKeyDataPrefix, key, missing: enoent(key) } };
        case 'exists':
          if (key === undefined || cmd.length !== 3) return { reply: einval(usage) };
          return {
            read: {
              kind: 'exists',
              prefix: configKeyDataPrefix,
              key,
              rs: `key '${key}' exists`,
              missing: enoent(key),
            },
          };
        case 'ls':
          if (cmd.length !== 2) return { reply: einval(usage) };
          return { read: { kind: 'keys', prefix: configKeyDataPrefix, keyPrefix: '', limit: keysMax } };
        case 'dump':
          if (cmd.length > 3) return { reply: einval(usage) };
          return {
            read: { kind: 'dump', prefix: configKeyDataPrefix, keyPrefix: key ?? '', limit: keysMax },
          };
        case 'set':
        case 'rm':
          return null;
        default:
          return { reply: einval(`unknown config-key command '${cmd.slice(1).join(' ')}'; ${usage}`) };
      }
    },
    prepareUpdate(_state, pending, request) {
      const cmd = request.cmd;
      const key = cmd[2];
      if (key === undefined || key.length === 0) return { error: einval(usage) };
      const tooLong = keyTooLong(key);
      if (tooLong) return { error: tooLong };
      if (verb(cmd) === 'rm') {
        if (cmd.length !== 3) return { error: einval(usage) };
        // KVMonitor::prepare_command: "key deleted" whether or not it existed (rm is idempotent).
        return {
          pending: { change: { op: 'rm', key }, before: pending },
          reply: { r: 0, rs: 'key deleted' },
        };
      }
      if (cmd.length > 4) return { error: einval(`${usage} (quote a value with spaces)`) };
      const value = cmd.length === 4 ? utf8.encode(cmd[3]) : (request.inbuf ?? new Uint8Array());
      if (value.length > maxEntrySize) {
        return {
          error: {
            r: -27,
            rs: `error: entry size limited to ${maxEntrySize} bytes. Use 'mon config key max entry size' to manually adjust`,
          },
        };
      }
      return {
        pending: { change: { op: 'set', key, value }, before: pending },
        reply: { r: 0, rs: `set ${key}` },
      };
    },
    encodePending(_state, pending, version) {
      const changes = changesOf(pending);
      const ops: StoreOp[] = changes.map((c) =>
        c.op === 'set'
          ? { op: 'put', prefix: configKeyDataPrefix, key: c.key, value: c.value }
          : { op: 'erase', prefix: configKeyDataPrefix, key: c.key },
      );
      // The incremental names what changed (Ceph's KVMonitor keeps no value history either).
      ops.push({
        op: 'put',
        prefix: 'kv',
        key: String(version),
        value: JSON.stringify(changes.map((c) => [c.op, c.key])),
      });
      return ops;
    },
    updateFromPaxos: (state) => state,
    getTrimTo: (_state, versions) => Math.max(0, versions.lastCommitted - keepVersions),
  };
}
