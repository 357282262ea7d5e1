// Ceph-style client commands (paxmon [-m HOST:PORT,…] [--format …] COMMAND…): each is a
// mon.command sent by a MonClient to any monitor of the list, answered with Ceph's { r, rs, data }.
import { chmodSync, closeSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import type { Command } from 'commander';
import { keyringBytesMax } from '../actors/keyring.ts';
import { type MonAddress, MonClient, MonClientError } from '../actors/mon-client.ts';
import { type KeyringEntry, parseKeyring } from '../machines/keyring-text.ts';
import { configKeyMaxEntrySizeDefault, replacementCharacter } from '../machines/services/config-key.ts';
import {
  cephHealth,
  cephLog,
  cephMonDump,
  cephMonStat,
  cephMonStatus,
  cephQuorumStatus,
  cephStatus,
  type PaxmonHealth,
  type PaxmonLogLine,
  type PaxmonMonmap,
  type PaxmonMonStatus,
  type PaxmonQuorumStatus,
  type PaxmonStatus,
  plainHealth,
  plainLog,
  plainMonDump,
  plainMonStat,
  plainStatus,
} from './ceph-shapes.ts';
import { alive, isMonAddr, pidOf, readClusterFile, writeClusterFile } from './cluster-file.ts';
import { CliError, errnoName, errnoOf, fail } from './errors.ts';

export type Format = 'plain' | 'json' | 'json-pretty';

export interface GlobalOptions {
  monHost?: string;
  dir: string;
  format: Format;
  timeout: string;
  /** The entity to authenticate as (Ceph's -n/--name; default client.admin). */
  name?: string;
  /** A keyring file holding its key (Ceph's -k/--keyring; default the cluster's, DIR/keyring). */
  keyring?: string;
}

/**
 * Who the CLI is and its key (Ceph's `-n NAME -k KEYRING`): the entity's entry in `-k FILE`, else
 * in the local cluster's keyring (`paxmon up` writes DIR/keyring with client.admin's key).
 */
export function clientCredentials(options: { dir: string; name?: string; keyring?: string }): {
  name: string;
  key: string;
} {
  const name = options.name ?? 'client.admin';
  if (!/^client\.\S+$/.test(name)) fail('EINVAL', `-n '${name}' is not a client entity name (client.NAME)`);
  const file = options.keyring ?? join(options.dir, 'keyring');
  let text: string;
  try {
    const bytes = readFileSync(file);
    if (bytes.byteLength > keyringBytesMax)
      fail('EINVAL', `keyring ${file} is ${bytes.byteLength} bytes: not a keyring`);
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof CliError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    return fail(
      errnoOf(code),
      options.keyring
        ? `unable to read keyring ${file}: ${(error as Error).message}`
        : `no keyring for ${name}: give -k KEYRING (a local cluster's is ${file}, written by paxmon up)`,
    );
  }
  let entries: KeyringEntry[];
  try {
    entries = parseKeyring(text);
  } catch (error) {
    return fail('EINVAL', `keyring ${file}: ${(error as Error).message}`);
  }
  const entry = entries.find((e) => e.entity === name);
  if (!entry) fail('ENOENT', `keyring ${file} has no key for ${name}`);
  return { name, key: (entry as KeyringEntry).key };
}

/** Monitors to talk to: -m HOST:PORT[,…], else the local cluster's cluster.json. */
export function monitorsFor(options: { monHost?: string; dir: string }): {
  mons: MonAddress[];
  fsid?: string;
} {
  if (options.monHost) {
    const mons = options.monHost
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((addr) => {
        if (!isMonAddr(addr)) fail('EINVAL', `-m '${addr}' is not HOST:PORT (port 1-65535)`);
        return { addr };
      });
    if (mons.length === 0) fail('EINVAL', '-m needs at least one HOST:PORT');
    return { mons };
  }
  const cluster = readClusterFile(options.dir);
  if (!cluster) {
    return fail(
      'EINVAL',
      `no monitor given: use -m HOST:PORT or start a local cluster in ${options.dir} (paxmon up)`,
    );
  }
  return { mons: cluster.mons.map((m) => ({ name: m.name, addr: m.addr })), fsid: cluster.fsid };
}

export function print(value: unknown, format: Format, plain: (v: never) => string) {
  if (format === 'json') process.stdout.write(`${JSON.stringify(value)}\n`);
  else if (format === 'json-pretty') process.stdout.write(`${JSON.stringify(value, null, 4)}\n`);
  else process.stdout.write(`${plain(value as never)}\n`);
}

export interface QuorumStatus {
  election_epoch: number;
  quorum: number[];
  quorum_names: string[];
  quorum_leader_name: string;
  quorum_age: number;
  monmap: { epoch: number; fsid: string; mons: { rank: number; name: string; addr: string }[] };
}

export const plainQuorum = (q: QuorumStatus) =>
  [
    `election epoch ${q.election_epoch}, leader ${q.quorum_leader_name}, quorum ${q.quorum_names.join(',')} (age ${q.quorum_age}s)`,
    `monmap e${q.monmap.epoch} fsid ${q.monmap.fsid}: ${q.monmap.mons.map((m) => `${m.rank}:${m.name}@${m.addr}`).join(' ')}`,
  ].join('\n');

export async function runCommand(words: string[], globals: GlobalOptions, target?: string) {
  const { mons, fsid } = monitorsFor(globals);
  const timeoutMs = Number(globals.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    fail('EINVAL', `--timeout ${globals.timeout} is not a positive number of seconds`);
  let chosen = mons;
  if (target) {
    // `tell mon.X` asks X and no other: given -m addresses only, learn who listens at each.
    const name = target.replace(/^mon\./, '');
    let known = mons;
    if (!mons.some((m) => m.name === name) && !mons.every((m) => m.name)) {
      const lookup = new MonClient({
        mons,
        ...clientCredentials(globals),
        ...(fsid ? { fsid } : {}),
        attemptTimeoutMs: Math.min(2000, timeoutMs),
      });
      known = await lookup.resolveNames().finally(() => lookup.close());
    }
    const found = known.find((m) => m.name === name);
    if (!found)
      fail(
        'ENOENT',
        `mon.${name} is not one of ${known.map((m) => (m.name ? `mon.${m.name}` : `${m.addr} (no answer)`)).join(', ')}`,
      );
    chosen = [found as MonAddress];
    // Ceph's `tell` to a stopped monitor: `Error ENXIO` at once, not a wait for the timeout.
    if (await refusesConnections((found as MonAddress).addr))
      fail(
        'ENXIO',
        `problem getting command descriptions from mon.${name}: connection refused at ${(found as MonAddress).addr}`,
      );
  }
  await refuseWhenNoneRuns(globals, chosen);
  const client = new MonClient({
    mons: chosen,
    ...clientCredentials(globals),
    ...(fsid ? { fsid } : {}),
    timeoutMs,
    attemptTimeoutMs: Math.min(2000, timeoutMs),
  });
  try {
    const reply = await client.command(words);
    if (reply.r < 0) throw new CliError(errnoName(reply.r) as never, reply.rs);
    return JSON.parse(new TextDecoder().decode(reply.data)) as unknown;
  } catch (error) {
    if (error instanceof MonClientError) throw new CliError(error.code as never, error.message);
    throw error;
  } finally {
    await client.close();
  }
}

export interface Raw {
  r: number;
  rs: string;
  data: Uint8Array;
}

/** Send one command and return Ceph's { r, rs, data } (r < 0 is thrown as `Error E<CODE>: rs`). */
export async function runRaw(
  words: string[],
  globals: GlobalOptions,
  inbuf?: Uint8Array,
  target?: string,
): Promise<Raw> {
  const [reply] = await runRawAll([{ words, ...(inbuf ? { inbuf } : {}) }], globals, target);
  return reply as Raw;
}

/** Send commands one after the other over one session (`status` asks for the quorum's age too). */
export async function runRawAll(
  commands: { words: string[]; inbuf?: Uint8Array; optional?: boolean }[],
  globals: GlobalOptions,
  target?: string,
): Promise<Raw[]> {
  const client = await openClient(globals, target);
  try {
    const replies: Raw[] = [];
    for (const { words, inbuf, optional } of commands) {
      const reply = await client.command(words, inbuf);
      if (reply.r < 0 && !optional) throw new CliError(errnoName(reply.r) as never, reply.rs);
      replies.push(reply);
    }
    return replies;
  } catch (error) {
    if (error instanceof MonClientError) throw new CliError(error.code as never, error.message);
    throw error;
  } finally {
    await client.close();
  }
}

/**
 * A MonClient for the monitors of -m, -c or the local cluster (`target`, mon.NAME: that one
 * only, when the list names it), authenticated as -n with -k's key.
 */
async function openClient(globals: GlobalOptions, target?: string): Promise<MonClient> {
  const { mons, fsid } = monitorsFor(globals);
  let chosen = mons;
  if (target) {
    const name = target.replace(/^mon\./, '');
    const found = mons.find((m) => m.name === name);
    chosen = found ? [found] : mons;
  }
  const timeoutMs = Number(globals.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    fail('EINVAL', `--timeout ${globals.timeout} is not a positive number of seconds`);
  await refuseWhenNoneRuns(globals, chosen);
  return new MonClient({
    mons: chosen,
    ...clientCredentials(globals),
    ...(fsid ? { fsid } : {}),
    timeoutMs,
    attemptTimeoutMs: Math.min(2000, timeoutMs),
  });
}

/**
 * A local cluster none of whose monitors runs (no live pid file) is `Error ENXIO` at once, not a
 * wait for the timeout; so is `tell mon.X` to a monitor that refuses connections (Ceph: ENXIO).
 */
async function refuseWhenNoneRuns(globals: GlobalOptions, chosen: MonAddress[]): Promise<void> {
  if (globals.monHost) return;
  const cluster = readClusterFile(globals.dir);
  if (!cluster) return;
  const named = cluster.mons.filter((m) => chosen.some((c) => c.name === m.name));
  if (named.length === 0) return;
  const running = named.some((m) => {
    const pid = pidOf(join(globals.dir, m.name));
    return pid !== null && alive(pid);
  });
  if (!running)
    fail(
      'ENXIO',
      named.length === 1
        ? `mon.${named[0]?.name} is not running in ${globals.dir} (paxmon start ${named[0]?.name})`
        : `no monitor of the cluster in ${globals.dir} is running (paxmon up starts them)`,
    );
}

/** Whether a TCP connection to `addr` is refused at once (nothing listens there). */
export function refusesConnections(addr: string, waitMs = 1000): Promise<boolean> {
  const at = addr.lastIndexOf(':');
  const host = addr.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(addr.slice(at + 1));
  return new Promise((resolvePromise) => {
    const socket = createConnection({ host, port });
    const done = (refused: boolean) => {
      socket.destroy();
      resolvePromise(refused);
    };
    socket.setTimeout(waitMs, () => done(false));
    socket.once('connect', () => done(false));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED'));
  });
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Ceph's CLI habit: the status string on stderr, the data on stdout. */
function emit(reply: Raw, format: Format, plain?: (value: never) => string) {
  if (reply.rs) process.stderr.write(`${reply.rs}\n`);
  if (reply.data.length === 0) return;
  let value: unknown;
  try {
    value = JSON.parse(text(reply.data));
  } catch {
    process.stdout.write(reply.data);
    return;
  }
  print(
    value,
    format === 'plain' && !plain ? 'json-pretty' : format,
    plain ?? ((v) => JSON.stringify(v, null, 4)),
  );
}

/**
 * Read a file's first `bytesMax` bytes at most: `-i /dev/zero` (or any endless or huge input)
 * costs what the limit allows, never the whole input.
 */
export function readAtMost(file: string, bytesMax: number): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const buffer = new Uint8Array(bytesMax);
    let filled = 0;
    while (filled < bytesMax) {
      const read = readSync(fd, buffer, filled, bytesMax - filled, null);
      if (read === 0) break;
      filled += read;
    }
    return buffer.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/**
 * A word of argv that was not UTF-8 reaches us with U+FFFD in place of its bytes: as a key it
 * would silently name the same entry as every other such key ($'\xff' and $'\xfe' both), as a
 * value it would not be the bytes given. Refused before anything is sent.
 */
function refuseReplacedBytes(words: string[]): void {
  const [verb, key, value] = words;
  if (key?.includes(replacementCharacter)) {
    fail(
      'EINVAL',
      `config-key ${verb}: the key is not valid UTF-8 (or contains U+FFFD); keys are UTF-8 text, and two keys that differ only in such bytes would be one`,
    );
  }
  if (value?.includes(replacementCharacter)) {
    fail(
      'EINVAL',
      `config-key ${verb}: the value is not valid UTF-8 (or contains U+FFFD); give a value of any bytes with -i FILE`,
    );
  }
}

export function registerClientCommands(program: Command): void {
  const globals = () => program.opts<GlobalOptions>();

  program
    .command('quorum_status')
    .description("the quorum as the monitors see it (Ceph's quorum_status)")
    .action(async () => {
      const options = globals();
      // JSON by default, as `ceph quorum_status` (scripts pipe it to jq).
      const value = cephQuorumStatus((await runCommand(['quorum_status'], options)) as PaxmonQuorumStatus);
      print(value, options.format === 'plain' ? 'json' : options.format, () => '');
    });

  program
    .command('tell')
    .description('send a command to one monitor: tell mon.NAME mon_status')
    .argument('<target>', 'mon.NAME')
    .argument('<command...>', 'the command (mon_status)')
    .action(async (target: string, words: string[]) => {
      const options = globals();
      if (!/^mon\.[A-Za-z0-9_-]+$/.test(target)) fail('EINVAL', `target '${target}' is not mon.NAME`);
      const value = await runCommand(words, options, target);
      const shaped =
        words.length === 1 && words[0] === 'mon_status' ? cephMonStatus(value as PaxmonMonStatus) : value;
      print(shaped, options.format === 'plain' ? 'json-pretty' : options.format, () => '');
    });

  program
    .command('config-key')
    .description(
      'the config-key store: set K V | set K -i FILE | get K [-o FILE] | rm K | exists K | ls | dump [PREFIX]',
    )
    .argument('<words...>', 'the config-key command')
    .option('-i, --in-file <file>', 'the value of `set`, read from a file (byte-exact)')
    .option('-o, --out-file <file>', 'write the value of `get` to a file')
    .action(async (words: string[], options: { inFile?: string; outFile?: string }) => {
      refuseReplacedBytes(words);
      let inbuf: Uint8Array | undefined;
      if (options.inFile) {
        try {
          inbuf = readAtMost(options.inFile, configKeyMaxEntrySizeDefault + 1);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          fail(
            code === 'EISDIR' || code === 'EPERM' ? code : code === 'EACCES' ? 'EPERM' : 'ENOENT',
            `cannot read ${options.inFile}: ${(error as Error).message}`,
          );
        }
      }
      if (options.inFile && inbuf && inbuf.byteLength > configKeyMaxEntrySizeDefault) {
        // KVMonitor's answer, given before the rest of the input is read or anything is sent;
        // a regular file's size is known without reading it, a stream's (/dev/zero) is not.
        const file = statSync(options.inFile);
        fail(
          'EFBIG',
          `input of ${file.isFile() ? `${file.size} bytes` : `more than ${configKeyMaxEntrySizeDefault} bytes`} exceeds the entry size limit; error: entry size limited to ${configKeyMaxEntrySizeDefault} bytes. Use 'mon config key max entry size' to manually adjust`,
        );
      }
      const reply = await runRaw(['config-key', ...words], globals(), inbuf);
      const verb = words[0];
      if (verb === 'get') {
        if (options.outFile) {
          writeFileSync(options.outFile, reply.data);
          process.stderr.write(`obtained '${words[1]}'\n`);
        } else process.stdout.write(reply.data);
        return;
      }
      emit(reply, globals().format);
    });

  program
    .command('auth')
    .description(
      "entities, keys and caps (Ceph's AuthMonitor): get-or-create ENTITY [TYPE CAPS…] | get ENTITY | ls | del ENTITY | caps ENTITY TYPE CAPS… | print-key ENTITY | add ENTITY [TYPE CAPS…] -i KEYRING | import -i KEYRING | export [ENTITY]",
    )
    .argument('<words...>', 'the auth command')
    .option('-i, --in-file <file>', 'a keyring to read (auth add, auth import)')
    .option('-o, --out-file <file>', 'write what the command prints (a keyring, a key) to a file, mode 0600')
    .action(async (words: string[], options: { inFile?: string; outFile?: string }) => {
      // The auth service's rendering and caps grammar, loaded by this command only.
      const { authInbufBytesMax, renderAuth } = await import('../machines/services/auth.ts');
      let inbuf: Uint8Array | undefined;
      if (options.inFile) {
        try {
          inbuf = readAtMost(options.inFile, authInbufBytesMax + 1);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          fail(errnoOf(code), `cannot read ${options.inFile}: ${(error as Error).message}`);
        }
        if (inbuf && inbuf.byteLength > authInbufBytesMax)
          fail('EFBIG', `${options.inFile} is larger than a keyring (${authInbufBytesMax} bytes at most)`);
      }
      const cmd = ['auth', ...words];
      const reply = await runRaw(cmd, globals(), inbuf);
      const out = renderAuth(cmd, reply, globals().format);
      if (out.stderr) process.stderr.write(out.stderr);
      if (options.outFile) {
        // A keyring holds secrets: written only for its owner (Ceph's ceph-authtool writes 0600 too).
        writeFileSync(options.outFile, out.stdout, { mode: 0o600 });
        chmodSync(options.outFile, 0o600);
      } else process.stdout.write(out.stdout);
    });

  program
    .command('log')
    .description('the cluster log: log MESSAGE… | log last [N]')
    .argument('<words...>', 'the message, or `last [N]`')
    .action(async (words: string[]) => {
      const reply = await runRaw(['log', ...words], globals());
      if (words[0] !== 'last') return emit(reply, globals().format);
      if (reply.rs) process.stderr.write(`${reply.rs}\n`);
      const entries = JSON.parse(text(reply.data)) as PaxmonLogLine[];
      print(cephLog(entries), globals().format, () => plainLog(entries));
    });

  program
    .command('health')
    .description('HEALTH_OK / HEALTH_WARN with the checks (health detail for more)')
    .argument('[detail]', 'detail')
    .action(async (detail?: string) => {
      const reply = await runRaw(detail ? ['health', detail] : ['health'], globals());
      const health = JSON.parse(text(reply.data)) as PaxmonHealth;
      print(cephHealth(health, detail === 'detail'), globals().format, () =>
        plainHealth(health, detail === 'detail'),
      );
    });

  program
    .command('status')
    .description("the cluster's status (like ceph status)")
    .action(async () => {
      const [reply, quorum] = await runRawAll(
        [{ words: ['status'] }, { words: ['quorum_status'], optional: true }],
        globals(),
      );
      printStatus(reply as Raw, quorum, globals().format);
    });

  program
    .command('watch')
    .description("the cluster's status, then its log as it is written, until Ctrl-C (paxmon -w, as ceph -w)")
    .option('--interval <seconds>', 'how often to ask for new log entries', '1')
    .action(async (options: { interval: string }) => {
      const intervalS = Number(options.interval);
      if (!Number.isFinite(intervalS) || intervalS < 0.05 || intervalS > 30)
        fail(
          'EINVAL',
          `--interval ${options.interval} is not a number of seconds from 0.05 to 30 (a monitor closes a client session idle for 60 s)`,
        );
      await watch(globals(), intervalS * 1000);
    });
}

function printStatus(reply: Raw, quorum: Raw | undefined, format: Format): void {
  const status = JSON.parse(text(reply.data)) as PaxmonStatus;
  const q = quorum && quorum.r === 0 ? (JSON.parse(text(quorum.data)) as PaxmonQuorumStatus) : undefined;
  print(cephStatus(status, q?.quorum_age), format, () =>
    plainStatus(
      status,
      q?.quorum_age,
      q?.monmap.mons.map((m) => m.name),
    ),
  );
}

/** Log entries asked for at each poll of `paxmon -w`; more written in between are counted as missed. */
const watchEntriesMax = 1000;

/**
 * `paxmon -w` (Ceph's `ceph -w`): the status, a blank line, then each cluster log entry as the
 * monitors commit it, `STAMP NAME [PRIO] MESSAGE`, until Ctrl-C. Ceph's client subscribes to the
 * log; paxmon's asks for `log last` over one session every `intervalMs` and prints the entries
 * newer than the last it printed. A monitor that stops answering is retried (MonClient's
 * failover), said once on stderr, and the log picks up where it left off.
 */
async function watch(globals: GlobalOptions, intervalMs: number): Promise<void> {
  const client = await openClient(globals);
  let stopping = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopping = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const ask = async (words: string[], optional = false): Promise<Raw | undefined> => {
    const reply = await client.command(words);
    if (reply.r < 0 && !optional) throw new CliError(errnoName(reply.r) as never, reply.rs);
    return reply;
  };
  try {
    const [status, quorum] = [await ask(['status']), await ask(['quorum_status'], true)];
    printStatus(status as Raw, quorum, globals.format);
    if (globals.format === 'plain') process.stdout.write('\n');
    const newest = (reply: Raw | undefined) => JSON.parse(text((reply as Raw).data)) as PaxmonLogLine[];
    let lastSeq = newest(await ask(['log', 'last', '1'])).at(-1)?.seq ?? 0;
    let failing = false;
    while (!stopping) {
      await new Promise<void>((resolveWait) => {
        wake = resolveWait;
        setTimeout(resolveWait, intervalMs).unref();
      });
      if (stopping) break;
      let entries: PaxmonLogLine[];
      try {
        entries = newest(await ask(['log', 'last', String(watchEntriesMax)]));
      } catch (error) {
        if (!failing) process.stderr.write(`watch: ${(error as Error).message}; retrying\n`);
        failing = true;
        continue;
      }
      failing = false;
      const fresh = entries.filter((e) => e.seq > lastSeq);
      const missed = (fresh[0]?.seq ?? lastSeq + 1) - lastSeq - 1;
      if (missed > 0 && lastSeq > 0)
        process.stderr.write(`watch: ${missed} log entries were written faster than shown and are not\n`);
      for (const line of cephLog(fresh)) {
        if (globals.format === 'plain')
          process.stdout.write(`${line.stamp} ${line.name} ${line.priority} ${line.message}\n`);
        else process.stdout.write(`${JSON.stringify(line)}\n`);
      }
      lastSeq = fresh.at(-1)?.seq ?? lastSeq;
    }
  } catch (error) {
    if (error instanceof MonClientError) throw new CliError(error.code as never, error.message);
    throw error;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await client.close();
  }
}

/**
 * `paxmon mon dump|stat|getmap [-o FILE]`: the monmap commands. `paxmon mon` without words is the
 * daemon (cli/main.ts), so main.ts calls this when words follow.
 */
export async function monClientCommand(
  program: Command,
  words: string[],
  options: { outFile?: string; dir?: string },
): Promise<void> {
  // `mon dump --dir DIR`: the mon command's own --dir (the daemon's) names the cluster here.
  const globals = () => ({
    ...program.opts<GlobalOptions>(),
    ...(options.dir ? { dir: options.dir } : {}),
  });
  // `mon dump` shows the quorum too, as Ceph's: asked in the same session.
  const [reply, quorum] = (await runRawAll(
    [
      { words: ['mon', ...words] },
      ...(words[0] === 'dump' ? [{ words: ['quorum_status'], optional: true }] : []),
    ],
    globals(),
  )) as [Raw, Raw | undefined];
  if (words[0] === 'getmap') {
    if (options.outFile) writeFileSync(options.outFile, reply.data);
    else process.stdout.write(reply.data);
    process.stderr.write(`${reply.rs}\n`);
    return;
  }
  if (words[0] === 'stat') {
    const value = JSON.parse(text(reply.data)) as PaxmonMonmap & { quorum: number[]; text?: string };
    print(cephMonStat(value), globals().format, () => plainMonStat(value));
    return;
  }
  if (words[0] === 'dump') {
    // Ceph: the map on stdout, `dumped monmap epoch N` on stderr (so `mon dump > file` is clean).
    const map = JSON.parse(text(reply.data)) as PaxmonMonmap;
    const q = quorum?.r === 0 ? (JSON.parse(text(quorum.data)) as PaxmonQuorumStatus) : undefined;
    print(cephMonDump(map, q?.quorum), globals().format, () => plainMonDump(map));
    process.stderr.write(`${reply.rs || `dumped monmap epoch ${map.epoch}`}\n`);
    return;
  }
  emit(reply, globals().format);
  // The local cluster's file names the monitors `paxmon up` starts: a removed one leaves it, or
  // the next `up` would start a monitor that is no longer in the map.
  const removed = words[0] === 'rm' && reply.r === 0 ? words[1] : undefined;
  const cluster = removed && !globals().monHost ? readClusterFile(globals().dir) : null;
  if (cluster?.mons.some((m) => m.name === removed)) {
    writeClusterFile(globals().dir, { ...cluster, mons: cluster.mons.filter((m) => m.name !== removed) });
    process.stderr.write(
      `mon.${removed} left ${join(globals().dir, 'cluster.json')}; its data stays in ${join(globals().dir, removed as string)}\n`,
    );
  }
}
