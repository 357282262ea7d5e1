// Ceph's keyring text (src/auth/KeyRing.cc, KeyRing::print and decode_plaintext over
// src/common/ConfUtils.cc's ini grammar), as `ceph-authtool` and `ceph auth get` write it:
//
//   [client.admin]
//   	key = AQBSdFNlAAAAABAAp0bMaqMfTOrKzn+vvlvdjQ==
//   	caps mon = "allow *"
//
// Pure (no node:*): the auth service parses `auth import -i` input with it; actors/keyring.ts
// adds the file I/O and key generation. Entity names are Ceph's EntityName (TYPE.ID).
import { CryptoKeyError, decodeCryptoKey } from './crypto-key.ts';

export interface KeyringEntry {
  /** `TYPE.ID`, e.g. `client.admin`, `mon.` (EntityName::to_str). */
  entity: string;
  /** The key's text form (base64 of Ceph's CryptoKey encoding, `AQ…==`). */
  key: string;
  /** Caps by service (`mon`, `osd`, `mgr`, `mds`): the cap text, e.g. `allow *`. */
  caps: Record<string, string>;
}

export class KeyringError extends Error {
  override name = 'KeyringError';
  /** The 1-based line of the keyring text the error is about, when there is one. */
  readonly line: number | undefined;
  /** The keyring file, when the text came from one. */
  readonly path: string | undefined;
  /** An errno name for the CLI's exit code: EINVAL for malformed text, ENOENT, EACCES… for I/O. */
  readonly code: string;
  /** The message without the path and line. */
  readonly reason: string;
  constructor(message: string, options: { line?: number; path?: string; code?: string } = {}) {
    const where = `${options.path === undefined ? '' : `keyring ${options.path}: `}${options.line === undefined ? '' : `line ${options.line}: `}`;
    super(`${where}${message}`);
    this.line = options.line;
    this.path = options.path;
    this.code = options.code ?? 'EINVAL';
    this.reason = message;
  }
}

/**
 * Entity types and their CEPH_ENTITY_TYPE_* codes (EntityName::STR_TO_ENTITY_TYPE): a keyring,
 * `auth ls` and `auth export` list entities by code, then by id (EntityName's operator<), so
 * `mon.` comes first and `client.*` after `osd.*`.
 */
export const entityTypeCodes: Readonly<Record<string, number>> = {
  mon: 0x01,
  mds: 0x02,
  osd: 0x04,
  client: 0x08,
  mgr: 0x10,
  auth: 0x20,
};

/**
 * EntityName::from_str: `TYPE.ID` with TYPE one of auth, mon, osd, mds, mgr, client, split at
 * the first dot; the id may be empty (`mon.`). Stricter than Ceph in one respect: an id with a
 * control character (a newline would end the keyring's section line) is refused.
 *
 * @example
 * parseEntityName('client.admin') // { type: 'client', id: 'admin' }
 * parseEntityName('foo.bar')      // undefined
 */
export function parseEntityName(text: string): { type: string; id: string } | undefined {
  const dot = text.indexOf('.');
  if (dot < 0) return undefined;
  const type = text.slice(0, dot);
  const id = text.slice(dot + 1);
  if (!Object.hasOwn(entityTypeCodes, type)) return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters
  if (/[\u0000-\u001f\u007f]/.test(id)) return undefined;
  return { type, id };
}

/** EntityName's operator<: by type code, then id (byte order, as std::string compares). */
export function compareEntityNames(a: string, b: string): number {
  const na = parseEntityName(a);
  const nb = parseEntityName(b);
  const ta = na ? (entityTypeCodes[na.type] ?? 0) : 0;
  const tb = nb ? (entityTypeCodes[nb.type] ?? 0) : 0;
  if (ta !== tb) return ta - tb;
  return compareBytes(na?.id ?? a, nb?.id ?? b);
}

/** std::string's operator< on UTF-8 bytes (JS's < compares UTF-16 code units). */
export function compareBytes(a: string, b: string): number {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) {
    const d = (ea[i] as number) - (eb[i] as number);
    if (d !== 0) return d;
  }
  return ea.length - eb.length;
}

/** ConfFile::normalize_key_name, then KeyRing::decode_plaintext's `_` → ` `: `caps_mon` = `caps mon`. */
const fieldName = (raw: string) => raw.trim().replace(/\s+/g, '_').replace(/_/g, ' ');

/**
 * One value of an ini line (ConfUtils.cc's IniGrammer): `"…"` or `'…'` quoted, or unquoted up
 * to a comment (`#`, `;`) and trimmed; a backslash takes the next character literally.
 * `undefined` when a quote is not closed or text follows it.
 */
function parseValue(text: string): string | undefined {
  const s = text.trim();
  const quote = s[0] === '"' || s[0] === "'" ? s[0] : undefined;
  let out = '';
  let i = quote ? 1 : 0;
  for (; i < s.length; i++) {
    const c = s[i] as string;
    if (c === '\\' && i + 1 < s.length) {
      out += s[++i];
      continue;
    }
    if (c === '#' || c === ';') {
      if (quote) return undefined; // Ceph's grammar: a comment character inside quotes ends the value
      break;
    }
    if (quote && c === quote) {
      const rest = s.slice(i + 1).trim();
      return rest === '' || rest[0] === '#' || rest[0] === ';' ? out : undefined;
    }
    out += c;
  }
  return quote ? undefined : out.trim();
}

/** Where a `#` or `;` comment starts outside quotes and escapes (-1: none). */
function commentStart(line: string): number {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' || c === ';') return i;
  }
  return -1;
}

/**
 * Parse keyring text (KeyRing::decode_plaintext). A `[global]` section is skipped, as Ceph does.
 * Throws KeyringError with the line number for: a line that is neither a section, a `field =
 * value`, a comment nor blank; a section name that is not an entity (Ceph's "bad entity name in
 * keyring"); a key that does not decode; a field other than `key`, `caps SERVICE`, `auid`;
 * a field outside a section; a section without a key. Stricter than Ceph, which merges them
 * (the last one wins): the same entity twice, or the same field twice in a section.
 *
 * @example
 * parseKeyring('[mon.]\n\tkey = AQBSdFNlAAAAABAAp0bMaqMfTOrKzn+vvlvdjQ==\n\tcaps mon = "allow *"\n')
 * // [{ entity: 'mon.', key: 'AQBSdFNl…vlvdjQ==', caps: { mon: 'allow *' } }]
 */
export function parseKeyring(text: string): KeyringEntry[] {
  const entries: KeyringEntry[] = [];
  const seen = new Map<string, number>();
  let current: { entry: KeyringEntry; line: number; fields: Set<string> } | null = null;
  let skipping = false;
  const finish = () => {
    if (current && current.entry.key === '') {
      throw new KeyringError(`[${current.entry.entity}] has no key`, { line: current.line });
    }
  };
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const raw = lines[index] as string;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed[0] === '#' || trimmed[0] === ';') continue;
    if (trimmed[0] === '[') {
      const comment = commentStart(trimmed);
      const heading = (comment < 0 ? trimmed : trimmed.slice(0, comment)).trim();
      if (!heading.endsWith(']') || heading.length < 3 || heading.slice(1, -1).includes(']')) {
        throw new KeyringError(`malformed section heading: ${trimmed}`, { line: lineNumber });
      }
      finish();
      const name = heading.slice(1, -1);
      if (name === 'global') {
        skipping = true;
        current = null;
        continue;
      }
      skipping = false;
      if (!parseEntityName(name))
        throw new KeyringError(`bad entity name in keyring: ${name}`, { line: lineNumber });
      const before = seen.get(name);
      if (before !== undefined) {
        throw new KeyringError(`duplicate entity [${name}] (first at line ${before})`, { line: lineNumber });
      }
      seen.set(name, lineNumber);
      current = { entry: { entity: name, key: '', caps: {} }, line: lineNumber, fields: new Set() };
      entries.push(current.entry);
      continue;
    }
    const eq = raw.indexOf('=');
    if (eq < 0) throw new KeyringError(`expected '[TYPE.ID]' or 'field = value'`, { line: lineNumber });
    const field = fieldName(raw.slice(0, eq));
    const value = parseValue(raw.slice(eq + 1));
    if (field === '') throw new KeyringError(`expected '[TYPE.ID]' or 'field = value'`, { line: lineNumber });
    if (value === undefined) throw new KeyringError(`malformed value of '${field}'`, { line: lineNumber });
    if (skipping) continue;
    if (!current) throw new KeyringError(`'${field}' outside a section`, { line: lineNumber });
    const name = current.entry.entity;
    if (current.fields.has(field)) {
      throw new KeyringError(`duplicate '${field}' in [${name}]`, { line: lineNumber });
    }
    current.fields.add(field);
    if (field === 'key') {
      try {
        decodeCryptoKey(value);
      } catch (error) {
        // Ceph's "error setting modifier for [NAME] type=key", without the value: it is a secret.
        const why = error instanceof CryptoKeyError ? error.message : String(error);
        throw new KeyringError(`error setting modifier for [${name}] type=key: ${why}`, { line: lineNumber });
      }
      current.entry.key = value;
    } else if (field.startsWith('caps ') && field.length > 5) {
      current.entry.caps[field.slice(5)] = value;
    } else if (field === 'auid') {
      // Ceph's long-gone auid: read and ignored, as Ceph does since Nautilus.
    } else {
      // A key pasted without its `key =` reads as a field name: never repeat one that could be a secret.
      const shown = /^[A-Za-z ]{1,24}$/.test(field) ? field : '(not shown)';
      throw new KeyringError(`error setting modifier for [${name}] type=${shown}: unknown field`, {
        line: lineNumber,
      });
    }
  }
  finish();
  return entries;
}

/** A cap's text as KeyRing::print quotes it (`"` as `\"`; paxmon also escapes `\`, so it reads back). */
const quoteCaps = (caps: string) => `"${caps.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/**
 * Keyring text exactly as KeyRing::print writes it: entities in EntityName order (mon, mds, osd,
 * client, mgr, auth; then by id), caps by service name, a tab before each field.
 *
 * @example
 * formatKeyring([{ entity: 'client.admin', key: 'AQ…==', caps: { mon: 'allow *' } }])
 * // '[client.admin]\n\tkey = AQ…==\n\tcaps mon = "allow *"\n'
 */
export function formatKeyring(entries: readonly KeyringEntry[]): string {
  const sorted = [...entries].sort((a, b) => compareEntityNames(a.entity, b.entity));
  let out = '';
  for (const entry of sorted) {
    out += `[${entry.entity}]\n\tkey = ${entry.key}\n`;
    for (const service of Object.keys(entry.caps).sort(compareBytes)) {
      out += `\tcaps ${service} = ${quoteCaps(entry.caps[service] as string)}\n`;
    }
  }
  return out;
}
