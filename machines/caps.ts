// Ceph's mon caps (src/mon/MonCap.{h,cc}): the grammar, MonCap::is_capable, and the perm every
// command needs (src/mon/MonCommands.h: each command with its module, perm and named args).
//
//   allow r | allow rw | allow rwx | allow * | allow all
//   allow service NAME r|rw|rwx|*          (NAME: the command's module — mon, config-key, auth…)
//   allow command "PREFIX" [with ARG=VALUE | ARG prefix VALUE | ARG regex VALUE …]
//   [allow] profile NAME
//   … each optionally followed by `network CIDR`; grants separated by `,` or `;`.
//
// What a grant gives (MonCapGrant::get_allowed), kept as Ceph 16.2.15 answers (checked against a
// real monitor, spec/fixtures/ceph-auth/mon-caps-*.tsv):
// - a blanket `allow r|rw|rwx` grants those bits on every module except config-key: Ceph lets
//   config-key (which holds secrets) be reached only by `allow *`, `allow service config-key …`,
//   an `allow command "config-key …"` or a profile that names it.
// - `allow service NAME BITS` grants BITS on that module only.
// - `allow command "PREFIX" [with …]` grants everything for that one command when every
//   constraint holds (an argument a constraint names must be present).
// - `allow *` (also `allow all`) is everything, config-key and auth included.
// Pure (no node:*): the monitor checks a session's caps at the command door.

/** The bits of a perm (MON_CAP_R, _W, _X) and `*` (MON_CAP_ANY). */
const capR = 1 << 1;
const capW = 1 << 2;
const capX = 1 << 3;
const capAll = capR | capW | capX;
const capAny = 0xff;

/** A command's perm, as MonCommands.h writes it (`auth get` is "rx": Ceph's auth needs x even to read). */
export type Perm = 'r' | 'rw' | 'rx' | 'rwx';

export type StringConstraint =
  | { match: 'equal'; value: string }
  | { match: 'prefix'; value: string }
  | { match: 'regex'; value: string };

/** One grant (MonCapGrant): exactly one of service, command, profile, or none (a blanket grant). */
export interface MonCapGrant {
  service?: string;
  profile?: string;
  command?: string;
  /** `with` constraints on a command's arguments, by argument name. */
  commandArgs?: Record<string, StringConstraint>;
  /** MON_CAP_* bits (0xff for `*`). */
  allow: number;
  /** `network CIDR` as written; a grant whose network does not contain the peer is skipped. */
  network?: string;
}

export interface MonCaps {
  text: string;
  grants: MonCapGrant[];
}

export class CapsError extends Error {
  override name = 'CapsError';
}

// ---------------------------------------------------------------------------------------------
// The grammar (MonCapParser, a boost::spirit PEG): each rule takes the text and a position and
// returns the position after what it matched, or -1. Ordered choice and backtracking as spirit's.

type Rule<T> = (s: string, at: number) => { at: number; value: T } | null;

const spacesAt = (s: string, at: number): number => {
  let i = at;
  while (s[i] === ' ' || s[i] === '\n' || s[i] === '\t') i++;
  return i > at ? i : -1;
};
const optSpaces = (s: string, at: number): number => {
  const i = spacesAt(s, at);
  return i < 0 ? at : i;
};
const lit = (s: string, at: number, word: string): number => (s.startsWith(word, at) ? at + word.length : -1);

/** quoted_string: "…" or '…', at least one character; unquoted_word: +[a-zA-Z0-9_./-]. */
const str: Rule<string> = (s, at) => {
  const q = s[at];
  if (q === '"' || q === "'") {
    const end = s.indexOf(q, at + 1);
    if (end > at + 1) return { at: end + 1, value: s.slice(at + 1, end) };
    return null;
  }
  let i = at;
  while (i < s.length && /[a-zA-Z0-9_./-]/.test(s[i] as string)) i++;
  return i > at ? { at: i, value: s.slice(at, i) } : null;
};

/** network_str: +[/.:a-fA-F0-9\][]. */
const networkStr: Rule<string> = (s, at) => {
  let i = at;
  while (i < s.length && /[/.:a-fA-F0-9[\]]/.test(s[i] as string)) i++;
  return i > at ? { at: i, value: s.slice(at, i) } : null;
};

/** rwxa := * | all | [r][w][x] (at least one, in that order). */
const rwxa: Rule<number> = (s, at) => {
  if (s[at] === '*') return { at: at + 1, value: capAny };
  if (s.startsWith('all', at)) return { at: at + 3, value: capAny };
  let i = at;
  let bits = 0;
  if (s[i] === 'r') {
    bits |= capR;
    i++;
  }
  if (s[i] === 'w') {
    bits |= capW;
    i++;
  }
  if (s[i] === 'x') {
    bits |= capX;
    i++;
  }
  return i > at ? { at: i, value: bits } : null;
};

/** -(spaces >> "network" >> spaces >> network_str) */
const optNetwork = (s: string, at: number): { at: number; network?: string } => {
  let i = spacesAt(s, at);
  if (i < 0) return { at };
  i = lit(s, i, 'network');
  if (i < 0) return { at };
  i = spacesAt(s, i);
  if (i < 0) return { at };
  const n = networkStr(s, i);
  return n ? { at: n.at, network: n.value } : { at };
};

/** kv_pair := str ('=' str | spaces 'prefix' spaces str | spaces 'regex' spaces str) */
const kvPair: Rule<[string, StringConstraint]> = (s, at) => {
  const key = str(s, at);
  if (!key) return null;
  if (s[key.at] === '=') {
    const v = str(s, key.at + 1);
    if (v) return { at: v.at, value: [key.value, { match: 'equal', value: v.value }] };
  }
  for (const kind of ['prefix', 'regex'] as const) {
    let i = spacesAt(s, key.at);
    if (i < 0) continue;
    i = lit(s, i, kind);
    if (i < 0) continue;
    i = spacesAt(s, i);
    if (i < 0) continue;
    const v = str(s, i);
    if (v) return { at: v.at, value: [key.value, { match: kind, value: v.value }] };
  }
  return null;
};

/** kv_map := kv_pair *(spaces kv_pair) — std::map: a repeated key keeps its first value. */
const kvMap: Rule<Record<string, StringConstraint>> = (s, at) => {
  const first = kvPair(s, at);
  if (!first) return null;
  const map: Record<string, StringConstraint> = { [first.value[0]]: first.value[1] };
  let i = first.at;
  for (;;) {
    const sp = spacesAt(s, i);
    if (sp < 0) break;
    const next = kvPair(s, sp);
    if (!next) break;
    if (!Object.hasOwn(map, next.value[0])) map[next.value[0]] = next.value[1];
    i = next.at;
  }
  return { at: i, value: map };
};

/** ('=' | spaces) after `service`, `command`, `profile`. */
const equalsOrSpaces = (s: string, at: number): number => (s[at] === '=' ? at + 1 : spacesAt(s, at));

/** -spaces 'allow' spaces */
const allowWord = (s: string, at: number): number => {
  let i = lit(s, optSpaces(s, at), 'allow');
  if (i < 0) return -1;
  i = spacesAt(s, i);
  return i;
};

const withNetwork = (grant: MonCapGrant, s: string, at: number) => {
  const n = optNetwork(s, at);
  return { at: n.at, value: n.network === undefined ? grant : { ...grant, network: n.network } };
};

const rwxaMatch: Rule<MonCapGrant> = (s, at) => {
  const i = allowWord(s, at);
  if (i < 0) return null;
  const bits = rwxa(s, i);
  return bits ? withNetwork({ allow: bits.value }, s, bits.at) : null;
};

const profileMatch: Rule<MonCapGrant> = (s, at) => {
  let i = optSpaces(s, at);
  const allowed = allowWord(s, i);
  if (allowed >= 0) i = allowed;
  i = lit(s, i, 'profile');
  if (i < 0) return null;
  i = equalsOrSpaces(s, i);
  if (i < 0) return null;
  const name = str(s, i);
  return name ? withNetwork({ profile: name.value, allow: 0 }, s, name.at) : null;
};

const serviceMatch: Rule<MonCapGrant> = (s, at) => {
  let i = allowWord(s, at);
  if (i < 0) return null;
  i = lit(s, i, 'service');
  if (i < 0) return null;
  i = equalsOrSpaces(s, i);
  if (i < 0) return null;
  const name = str(s, i);
  if (!name) return null;
  i = spacesAt(s, name.at);
  if (i < 0) return null;
  const bits = rwxa(s, i);
  return bits ? withNetwork({ service: name.value, allow: bits.value }, s, bits.at) : null;
};

const commandMatch: Rule<MonCapGrant> = (s, at) => {
  let i = allowWord(s, at);
  if (i < 0) return null;
  i = lit(s, i, 'command');
  if (i < 0) return null;
  i = equalsOrSpaces(s, i);
  if (i < 0) return null;
  const command = str(s, i);
  if (!command) return null;
  const grant: MonCapGrant = { command: command.value, allow: 0 };
  i = command.at;
  // -(spaces >> "with" >> spaces >> kv_map)
  const sp = spacesAt(s, i);
  const w = sp < 0 ? -1 : lit(s, sp, 'with');
  const sp2 = w < 0 ? -1 : spacesAt(s, w);
  const kv = sp2 < 0 ? null : kvMap(s, sp2);
  if (kv) {
    grant.commandArgs = kv.value;
    i = kv.at;
  }
  return withNetwork(grant, s, i);
};

/** grant := -spaces (rwxa_match | profile_match | service_match | command_match) -spaces */
const grantRule: Rule<MonCapGrant> = (s, at) => {
  for (const rule of [rwxaMatch, profileMatch, serviceMatch, commandMatch]) {
    const g = rule(s, at);
    if (g) return { at: optSpaces(s, g.at), value: g.value };
  }
  return null;
};

/**
 * Parse mon caps (MonCap::parse). Throws CapsError with Ceph's text, e.g.
 * `mon capability parse failed, stopped at 'ead' of 'allow read'`.
 *
 * @example
 * parseMonCaps('allow r, allow command "config-key get" with key prefix app/')
 */
export function parseMonCaps(text: string): MonCaps {
  const grants: MonCapGrant[] = [];
  let at = 0;
  const first = grantRule(text, at);
  if (first) {
    grants.push(first.value);
    at = first.at;
    // grant % (*' ' >> (';' | ',') >> *' ')
    for (;;) {
      let i = at;
      while (text[i] === ' ') i++;
      if (text[i] !== ';' && text[i] !== ',') break;
      i++;
      while (text[i] === ' ') i++;
      const next = grantRule(text, i);
      if (!next) break;
      grants.push(next.value);
      at = next.at;
    }
  }
  if (first && at === text.length) return { text, grants };
  throw new CapsError(
    at < text.length
      ? `mon capability parse failed, stopped at '${text.slice(at)}' of '${text}'`
      : `mon capability parse failed, stopped at end of '${text}'`,
  );
}

/** Whether `text` parses as mon caps; the error text (Ceph's) when not. */
export function validateMonCaps(text: string): string | undefined {
  try {
    parseMonCaps(text);
    return undefined;
  } catch (error) {
    if (error instanceof CapsError) return error.message;
    throw error;
  }
}

/** MonCap's operator<<: the caps as Ceph prints a parsed MonCap (for logs and specs). */
export function formatMonCaps(caps: MonCaps): string {
  const quote = (v: string) => (/^[A-Za-z0-9_-]+$/.test(v) ? v : `"${v}"`);
  const bits = (a: number) =>
    a === capAny ? '*' : `${a & capR ? 'r' : ''}${a & capW ? 'w' : ''}${a & capX ? 'x' : ''}`;
  return caps.grants
    .map((g) => {
      let out = 'allow';
      if (g.service) out += ` service ${quote(g.service)}`;
      if (g.command) {
        out += ` command ${quote(g.command)}`;
        const args = Object.entries(g.commandArgs ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        if (args.length) {
          out += ' with';
          for (const [k, c] of args) {
            out +=
              c.match === 'equal'
                ? ` ${quote(k)}=${quote(c.value)}`
                : ` ${quote(k)} ${c.match} ${quote(c.value)}`;
          }
        }
      }
      if (g.profile) out += ` profile ${quote(g.profile)}`;
      if (g.allow) out += ` ${bits(g.allow)}`;
      if (g.network) out += ` network ${g.network}`;
      return out;
    })
    .join(', ');
}

// ---------------------------------------------------------------------------------------------
// is_capable

/** What a command asks of the caps (Monitor::_allowed_command's arguments). */
export interface CapsRequest {
  /** The command's module (MonCommands.h's modulename: mon, config-key, auth, log…). */
  service: string;
  /** The command's prefix: its literal words (`config-key get`). */
  prefix: string;
  perm: Perm;
  /** Named arguments (`key`, `entity`, `caps_mon`…), as Monitor::_generate_command_map makes them. */
  args: Record<string, string>;
  /** The caller's entity name (`client.x`): the daemon profiles' daemon-private/NAME/ keys use it. */
  entity?: string;
  /** The caller's address (`HOST:PORT`): grants with a `network` apply only when it is inside. */
  addr?: string;
}

const grant = (g: Omit<MonCapGrant, 'allow'> & { allow?: number }): MonCapGrant => ({ allow: 0, ...g });
const serviceGrant = (service: string, allow: number) => grant({ service, allow });
const commandGrant = (command: string, commandArgs?: Record<string, StringConstraint>) =>
  grant(commandArgs ? { command, commandArgs } : { command });

/**
 * MonCapGrant::expand_profile for mon caps (the profiles Ceph 16 defines; an unknown profile
 * grants nothing, as in Ceph). The ones that fit paxmon: `read-only` (r on every module but
 * config-key and auth's x), `read-write` (rw likewise), `role-definer` (mon r, auth *), `mon`
 * (mon and log *, the monitors' own). The daemon and bootstrap profiles are kept as Ceph writes
 * them; most of what they grant names modules paxmon does not have (osd, pg, mds, mgr).
 */
export function expandProfile(profile: string, entity?: string): MonCapGrant[] {
  const grants: MonCapGrant[] = [];
  const push = (...g: MonCapGrant[]) => grants.push(...g);
  if (profile === 'read-only') return [grant({ allow: capR })];
  if (profile === 'read-write') return [grant({ allow: capR | capW })];
  if (profile === 'mon') push(serviceGrant('mon', capAll), serviceGrant('log', capAll));
  if (profile === 'osd') {
    push(serviceGrant('osd', capAll), serviceGrant('mon', capR), serviceGrant('pg', capR | capW));
    push(serviceGrant('log', capW));
  }
  if (profile === 'mds') {
    push(serviceGrant('mds', capAll), serviceGrant('mon', capR), serviceGrant('osd', capR));
    push(commandGrant('osd pool rmsnap'), commandGrant('osd blocklist'), serviceGrant('log', capW));
  }
  if (profile === 'mgr') {
    push(serviceGrant('mgr', capAll), serviceGrant('log', capR | capW), serviceGrant('mon', capR | capW));
    push(serviceGrant('mds', capR | capW), serviceGrant('fs', capR | capW), serviceGrant('osd', capR | capW));
    push(serviceGrant('auth', capR | capX), serviceGrant('config-key', capR | capW));
    push(serviceGrant('config', capR | capW));
  }
  if (['osd', 'mds', 'mon', 'mgr'].includes(profile) && entity !== undefined) {
    const key: StringConstraint = { match: 'prefix', value: `daemon-private/${entity}/` };
    for (const verb of ['get', 'put', 'set', 'exists', 'delete']) {
      push(commandGrant(`config-key ${verb}`, { key }));
    }
  }
  if (profile.startsWith('bootstrap-')) {
    push(serviceGrant('mon', capR));
    if (profile !== 'bootstrap-rbd' && profile !== 'bootstrap-rbd-mirror') {
      push(serviceGrant('osd', capR), commandGrant('mon getmap'));
    }
    if (profile === 'bootstrap-osd') push(commandGrant('osd new'), commandGrant('osd purge-new'));
    const getOrCreate = (args: Record<string, StringConstraint>) =>
      push(commandGrant('auth get-or-create', args));
    const eq = (value: string): StringConstraint => ({ match: 'equal', value });
    if (profile === 'bootstrap-mds') {
      getOrCreate({
        entity: { match: 'prefix', value: 'mds.' },
        caps_mon: eq('allow profile mds'),
        caps_osd: eq('allow rwx'),
        caps_mds: eq('allow'),
      });
    }
    if (profile === 'bootstrap-mgr') {
      getOrCreate({ entity: { match: 'prefix', value: 'mgr.' }, caps_mon: eq('allow profile mgr') });
    }
    if (profile === 'bootstrap-rgw') {
      getOrCreate({
        entity: { match: 'prefix', value: 'client.rgw.' },
        caps_mon: eq('allow rw'),
        caps_osd: eq('allow rwx'),
      });
    }
    if (profile === 'bootstrap-rbd' || profile === 'bootstrap-rbd-mirror') {
      getOrCreate({
        entity: { match: 'prefix', value: 'client.' },
        caps_mon: eq(profile === 'bootstrap-rbd-mirror' ? 'profile rbd-mirror' : 'profile rbd'),
        caps_osd: {
          match: 'regex',
          value: `^([ ,]*profile(=|[ ]+)['"]?rbd[^ ,'"]*['"]?([ ]+pool(=|[ ]+)['"]?[^,'"]+['"]?)?)+$`,
        },
      });
    }
  }
  if (profile === 'fs-client') {
    push(
      serviceGrant('mon', capR),
      serviceGrant('mds', capR),
      serviceGrant('osd', capR),
      serviceGrant('pg', capR),
    );
  }
  if (profile === 'simple-rados-client' || profile === 'rbd' || profile === 'rbd-mirror') {
    push(serviceGrant('mon', capR), serviceGrant('osd', capR), serviceGrant('pg', capR));
  }
  if (profile === 'rbd-mirror') {
    push(commandGrant('config-key get', { key: { match: 'prefix', value: 'rbd/mirror/' } }));
  }
  if (profile === 'crash') push(serviceGrant('mon', capR));
  if (profile === 'role-definer') push(serviceGrant('mon', capR), serviceGrant('auth', capAll));
  return grants;
}

/** std::regex with regex::extended, as near as a JavaScript RegExp comes; a bad pattern matches nothing. */
function regexMatches(pattern: string, value: string): boolean {
  try {
    return new RegExp(`^(?:${pattern})$`).test(value);
  } catch {
    return false;
  }
}

/** MonCapGrant::get_allowed: the bits one grant gives this request. */
function allowedBy(g: MonCapGrant, request: CapsRequest): number {
  if (g.profile !== undefined) {
    let bits = 0;
    for (const sub of expandProfile(g.profile, request.entity)) bits |= allowedBy(sub, request);
    return bits;
  }
  if (g.service !== undefined) return g.service === request.service ? g.allow : 0;
  if (g.command !== undefined) {
    if (g.command !== request.prefix) return 0;
    for (const [name, constraint] of Object.entries(g.commandArgs ?? {})) {
      // An argument a constraint names must be present.
      if (!Object.hasOwn(request.args, name)) return 0;
      const value = request.args[name] as string;
      if (constraint.match === 'equal' && constraint.value !== value) return 0;
      if (constraint.match === 'prefix' && !value.startsWith(constraint.value)) return 0;
      if (constraint.match === 'regex' && !regexMatches(constraint.value, value)) return 0;
    }
    return capAll;
  }
  // Blanket caps other than `*` never reach config-key (Ceph's MonCapGrant::get_allowed).
  if (request.service === 'config-key') return 0;
  return g.allow;
}

const isAllowAll = (g: MonCapGrant) =>
  g.allow === capAny && g.service === undefined && g.profile === undefined && g.command === undefined;

/** An IPv4 or IPv6 address as bytes, or undefined. */
function addressBytes(text: string): Uint8Array | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const parts = v4.slice(1).map(Number);
    return parts.every((p) => p <= 255) ? new Uint8Array(parts) : undefined;
  }
  if (!/^[0-9a-fA-F:]+$/.test(text) || !text.includes(':')) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const words = (part: string) => (part === '' ? [] : part.split(':'));
  const head = words(halves[0] as string);
  const tail = halves.length === 2 ? words(halves[1] as string) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 2 && fill < 1) || (halves.length === 1 && fill !== 0)) return undefined;
  const all = [...head, ...Array<string>(Math.max(0, fill)).fill('0'), ...tail];
  if (all.some((w) => w.length === 0 || w.length > 4)) return undefined;
  const bytes = new Uint8Array(16);
  all.forEach((w, i) => {
    const n = Number.parseInt(w, 16);
    bytes[i * 2] = n >> 8;
    bytes[i * 2 + 1] = n & 0xff;
  });
  return bytes;
}

/** network_contains: whether `addr` (HOST:PORT, [V6]:PORT or a bare address) is in `network` (CIDR). */
export function networkContains(network: string, addr: string): boolean {
  const slash = network.lastIndexOf('/');
  const base = addressBytes(slash < 0 ? network : network.slice(0, slash));
  if (!base) return false;
  const prefixBits = slash < 0 ? base.length * 8 : Number(network.slice(slash + 1));
  if (!Number.isInteger(prefixBits) || prefixBits < 0 || prefixBits > base.length * 8) return false;
  const host = addr.startsWith('[')
    ? addr.slice(1, addr.indexOf(']'))
    : /^[^:]+:\d+$/.test(addr)
      ? addr.slice(0, addr.lastIndexOf(':'))
      : addr;
  const bytes = addressBytes(host);
  if (!bytes || bytes.length !== base.length) return false;
  for (let bit = 0; bit < prefixBits; bit++) {
    const mask = 0x80 >> (bit % 8);
    if (((bytes[bit >> 3] as number) & mask) !== ((base[bit >> 3] as number) & mask)) return false;
  }
  return true;
}

/**
 * MonCap::is_capable: grants are tried in order, their bits add up, and the request is allowed
 * once the bits it needs are all there; an `allow *` grant allows anything.
 *
 * @example
 * capsAllow(parseMonCaps('allow r'), { service: 'mon', prefix: 'mon dump', perm: 'r', args: {} }) // true
 * capsAllow(parseMonCaps('allow r'), { service: 'config-key', prefix: 'config-key get', perm: 'r', args: { key: 'a' } }) // false
 */
export function capsAllow(caps: MonCaps, request: CapsRequest): boolean {
  const needR = request.perm.includes('r');
  const needW = request.perm.includes('w');
  const needX = request.perm.includes('x');
  let allow = 0;
  for (const g of caps.grants) {
    if (
      g.network !== undefined &&
      (request.addr === undefined || !networkContains(g.network, request.addr))
    ) {
      continue;
    }
    if (isAllowAll(g)) return true;
    allow |= allowedBy(g, request);
    if ((!needR || allow & capR) && (!needW || allow & capW) && (!needX || allow & capX)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Perms of commands

/**
 * One command as a service declares it (Ceph's MonCommands.h COMMAND(signature, help, module,
 * perm)): its prefix words, the perm it needs, and the names of the arguments after the prefix
 * (a name ending in `...` takes the rest; `caps...` makes Ceph's `caps_TYPE` pairs).
 */
export interface CommandDeclaration {
  prefix: string;
  perm: Perm;
  args?: string[];
  /** The module caps name (`allow service NAME`); default: the service's name. */
  module?: string;
}

/** What a command needs, found by commandPerm. */
export interface CommandPerm {
  service: string;
  prefix: string;
  perm: Perm;
  args: Record<string, string>;
}

/**
 * The commands the monitor answers itself, outside every service (Monitor::handle_command):
 * `mon_status` and `quorum_status`, both "mon", "r" in MonCommands.h, and the connectivity
 * scores (`tell mon.X connection scores dump|reset`).
 */
export const monitorCommands: readonly CommandDeclaration[] = [
  { prefix: 'mon_status', perm: 'r', module: 'mon' },
  { prefix: 'quorum_status', perm: 'r', module: 'mon' },
  // Ceph's admin-socket commands (no caps there: the socket is the host's); over the network,
  // a dump is a read and a reset changes how the monitor votes.
  { prefix: 'connection scores dump', perm: 'r', module: 'mon' },
  { prefix: 'connection scores reset', perm: 'rw', module: 'mon' },
];

/** The named arguments of `cmd` after a declaration's prefix (Monitor::_generate_command_map). */
/**
 * A declaration's prefix words, split once: every command is matched against every declaration
 * of its tables at the command door, and splitting them per command was most of that cost.
 */
const prefixWordsCache = new WeakMap<CommandDeclaration, readonly string[]>();
function prefixWords(declaration: CommandDeclaration): readonly string[] {
  let words = prefixWordsCache.get(declaration);
  if (!words) {
    words = declaration.prefix.split(' ');
    prefixWordsCache.set(declaration, words);
  }
  return words;
}

function commandArgs(declaration: CommandDeclaration, cmd: string[]): Record<string, string> {
  const args: Record<string, string> = {};
  const rest = cmd.slice(prefixWords(declaration).length);
  const names = declaration.args ?? [];
  for (let i = 0; i < names.length && i < rest.length; i++) {
    const name = names[i] as string;
    if (name.endsWith('...')) {
      const tail = rest.slice(i);
      if (name === 'caps...' && tail.length % 2 === 0) {
        for (let j = 0; j + 1 < tail.length; j += 2) args[`caps_${tail[j]}`] = tail[j + 1] as string;
      } else args[name.slice(0, -3)] = tail.join(',');
      break;
    }
    args[name] = rest[i] as string;
  }
  return args;
}

/**
 * What `cmd` needs: the longest declared prefix of the service that handles it (or of the
 * monitor's own commands). Undefined when nothing handles it. A service without a `commands`
 * table: every command needs `rw` on the service's name. A command its service's table does not
 * declare needs `rwx` (all a service could do), so a forgotten alias is never a way around caps.
 *
 * @example
 * commandPerm(services, ['config-key', 'get', 'app/x'])
 * // { service: 'config-key', prefix: 'config-key get', perm: 'r', args: { key: 'app/x' } }
 */
export function commandPerm(
  services: readonly {
    name: string;
    handles(cmd: string[]): boolean;
    commands?: readonly CommandDeclaration[];
  }[],
  cmd: string[],
): CommandPerm | undefined {
  const matchIn = (table: readonly CommandDeclaration[]) => {
    let best: CommandDeclaration | undefined;
    let bestLength = 0;
    for (const d of table) {
      const words = prefixWords(d);
      if (words.length > cmd.length || words.length <= bestLength) continue;
      let matches = true;
      for (let i = 0; i < words.length && matches; i++) matches = cmd[i] === words[i];
      if (!matches) continue;
      best = d;
      bestLength = words.length;
    }
    return best;
  };
  const own = matchIn(monitorCommands);
  if (own && prefixWords(own).length === cmd.length) {
    return { service: own.module ?? 'mon', prefix: own.prefix, perm: own.perm, args: commandArgs(own, cmd) };
  }
  const service = services.find((s) => s.handles(cmd));
  if (!service) return undefined;
  if (!service.commands) return { service: service.name, prefix: cmd.join(' '), perm: 'rw', args: {} };
  const found = matchIn(service.commands);
  if (!found) return { service: service.name, prefix: cmd.join(' '), perm: 'rwx', args: {} };
  return {
    service: found.module ?? service.name,
    prefix: found.prefix,
    perm: found.perm,
    args: commandArgs(found, cmd),
  };
}
