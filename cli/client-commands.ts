// Ceph-style client commands (paxmon [-m HOST:PORT,…] [--format …] COMMAND…): each is a
// mon.command sent by a MonClient to any monitor of the list, answered with Ceph's { r, rs, data }.
import type { Command } from 'commander';
import { type MonAddress, MonClient, MonClientError } from '../actors/mon-client.ts';
import { readClusterFile } from './cluster.ts';
import { CliError, errnoName, fail } from './errors.ts';

export type Format = 'plain' | 'json' | 'json-pretty';

export interface GlobalOptions {
  monHost?: string;
  dir: string;
  format: Format;
  timeout: string;
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
        if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/.test(addr))
          fail('EINVAL', `-m '${addr}' is not HOST:PORT`);
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

export async function runCommand(
  words: string[],
  globals: { monHost?: string; dir: string; format: Format; timeout: string },
  target?: string,
) {
  const { mons, fsid } = monitorsFor(globals);
  let chosen = mons;
  if (target) {
    const name = target.replace(/^mon\./, '');
    const found = mons.find((m) => m.name === name);
    if (!found && mons.every((m) => m.name))
      fail('ENOENT', `mon.${name} is not one of ${mons.map((m) => `mon.${m.name}`).join(', ')}`);
    chosen = found ? [found] : mons;
  }
  const timeoutMs = Number(globals.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    fail('EINVAL', `--timeout ${globals.timeout} is not a positive number of seconds`);
  const client = new MonClient({
    mons: chosen,
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

export function registerClientCommands(program: Command): void {
  program
    .command('quorum_status')
    .description("the quorum as the monitors see it (Ceph's quorum_status)")
    .action(async () => {
      const globals = program.opts<GlobalOptions>();
      print(await runCommand(['quorum_status'], globals), globals.format, plainQuorum);
    });

  program
    .command('tell')
    .description('send a command to one monitor: tell mon.NAME mon_status')
    .argument('<target>', 'mon.NAME')
    .argument('<command...>', 'the command (mon_status)')
    .action(async (target: string, words: string[]) => {
      const globals = program.opts<GlobalOptions>();
      if (!/^mon\.[A-Za-z0-9_-]+$/.test(target)) fail('EINVAL', `target '${target}' is not mon.NAME`);
      const value = await runCommand(words, globals, target);
      print(value, globals.format === 'plain' ? 'json-pretty' : globals.format, () => '');
    });
}
