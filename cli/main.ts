// The paxmon command (DESIGN.md §6): daemons (mkfs, mon, up, down) and Ceph-style client commands.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { startMonitor } from '../actors/daemon.ts';
import { createLogger } from '../actors/log.ts';
import { MonClient } from '../actors/mon-client.ts';
import { applyCephOptions, defaultConfig, type MonConfig } from '../machines/config.ts';
import { plainQuorum, type QuorumStatus, registerClientCommands } from './client-commands.ts';
import { alive, ensureCluster, mkfs, pidOf, readClusterFile, spawnMonitor } from './cluster.ts';
import { CliError, exitWithError, fail } from './errors.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

function configFrom(sets: string[]): Partial<MonConfig> {
  const config = applyCephOptions(defaultConfig, sets);
  if (typeof config === 'string') return fail('EINVAL', config);
  return config;
}

export function buildProgram(): Command {
  const program = new Command('paxmon')
    .description(
      "The Ceph monitor's core (Elector, Paxos, PaxosService, MonitorDBStore) as XState statecharts",
    )
    .option(
      '-m, --mon-host <addrs>',
      'monitor addresses HOST:PORT[,HOST:PORT…] (default: the local cluster in --dir)',
    )
    .option('--dir <dir>', 'local cluster directory (paxmon up)', '.paxmon')
    .addOption(
      new Option('--format <format>', 'output format')
        .choices(['plain', 'json', 'json-pretty'])
        .default('plain'),
    )
    .option('--timeout <seconds>', 'give up on the monitors after this long', '10')
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();

  program
    .command('mkfs')
    .description('create a monitor store with its initial monmap (like ceph-mon --mkfs)')
    .requiredOption('--dir <dir>', "the monitor's data directory (must be empty or absent)")
    .requiredOption('--name <name>', "this monitor's name (e.g. a)")
    .requiredOption('--fsid <uuid>', 'the cluster fsid')
    .option('--mon <name=host:port>', 'a monitor of the initial monmap (repeat)', collect, [])
    .action(async (options: { dir: string; name: string; fsid: string; mon: string[] }) => {
      await mkfs({ dir: options.dir, name: options.name, fsid: options.fsid, mons: options.mon });
      process.stdout.write(`created mon.${options.name} in ${options.dir}\n`);
    });

  program
    .command('mon')
    .description('run one monitor daemon in the foreground')
    .requiredOption('--dir <dir>', "the monitor's data directory")
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .option('--log-file <file>', 'write JSON log lines here instead of the terminal')
    .option('--set <option=value>', "a Ceph option, e.g. mon_lease=5 (seconds, as Ceph's)", collect, [])
    .action(async (options: { dir: string; logLevel: string; logFile?: string; set: string[] }) => {
      const config = configFrom(options.set);
      const logger = createLogger({
        level: options.logLevel,
        ...(options.logFile ? { file: options.logFile } : {}),
      });
      const dir = resolve(options.dir);
      if (!existsSync(join(dir, 'store.db')))
        fail('ENOENT', `no monitor store in ${dir} (create one with paxmon mkfs)`);
      const mon = await startMonitor({
        dir,
        config,
        logger,
        onFatal: () => {
          rmSync(join(dir, 'pid'), { force: true });
          process.exit(5);
        },
      });
      writeFileSync(join(dir, 'pid'), `${process.pid}\n`);
      logger.info(
        { mon: mon.name, addr: mon.addr, fsid: mon.fsid },
        `mon.${mon.name} listening on ${mon.addr}`,
      );
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ mon: mon.name, signal }, `mon.${mon.name} shutting down on ${signal}`);
        void mon.stop().then(() => {
          rmSync(join(dir, 'pid'), { force: true });
          logger.flush?.();
          process.exit(0);
        });
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      await new Promise(() => {});
    });

  program
    .command('up')
    .description('create (if needed) and start a local cluster, one process per monitor')
    .option('--size <n>', 'number of monitors for a new cluster', '3')
    .option('--port <port>', 'first port; monitors use PORT, PORT+1, …', '6789')
    .option('--detach', 'start the monitors and return')
    .option('--dir <dir>', 'cluster directory (default: .paxmon)')
    .option('--set <option=value>', 'a Ceph option passed to every monitor', collect, [])
    .action(
      async (options: { size: string; port: string; detach?: boolean; set: string[]; dir?: string }) => {
        const dir = resolve(options.dir ?? program.opts<{ dir: string }>().dir);
        configFrom(options.set);
        await up(
          dir,
          Number(options.size),
          Number(options.port),
          Boolean(options.detach),
          options.set,
          program.opts(),
        );
      },
    );

  program
    .command('down')
    .description('stop the local cluster in --dir')
    .option('--dir <dir>', 'cluster directory (default: .paxmon)')
    .action(async (options: { dir?: string }) => {
      const dir = resolve(options.dir ?? program.opts<{ dir: string }>().dir);
      await down(dir);
    });

  registerClientCommands(program);

  return program;
}

async function up(
  dir: string,
  size: number,
  port: number,
  detach: boolean,
  sets: string[],
  globals: { timeout: string },
) {
  const existing = readClusterFile(dir);
  if (existing) {
    const running = existing.mons.filter((m) => {
      const pid = pidOf(join(dir, m.name));
      return pid !== null && alive(pid);
    });
    if (running.length > 0) {
      fail(
        'EBUSY',
        `a cluster is already running in ${dir} (${running.map((m) => `mon.${m.name} pid ${pidOf(join(dir, m.name))}`).join(', ')}); stop it with: paxmon down --dir ${dir}`,
      );
    }
  }
  const cluster = await ensureCluster(dir, size, port);
  if (existing) {
    const { checkPortFree } = await import('./cluster.ts');
    for (const m of cluster.mons)
      await checkPortFree(m.addr, `--port (or remove ${dir} to create a new cluster)`);
  }
  const setArgs = sets.flatMap((s) => ['--set', s]);
  for (const m of cluster.mons) spawnMonitor(join(dir, m.name), setArgs);
  process.stdout.write(
    `starting ${cluster.mons.length} monitors in ${dir}: ${cluster.mons.map((m) => `${m.name}@${m.addr}`).join(' ')}\n`,
  );
  const client = new MonClient({
    mons: cluster.mons.map((m) => ({ name: m.name, addr: m.addr })),
    fsid: cluster.fsid,
    timeoutMs: Number(globals.timeout) * 1000,
  });
  let last = '';
  const poll = async (): Promise<QuorumStatus | null> => {
    try {
      const reply = await client.command(['quorum_status']);
      if (reply.r !== 0) return null;
      return JSON.parse(new TextDecoder().decode(reply.data)) as QuorumStatus;
    } catch {
      return null;
    }
  };
  const first = await poll();
  if (!first) {
    await client.close();
    fail('ETIMEDOUT', `no quorum within ${globals.timeout}s; see the logs in ${dir}/*/log`);
    return;
  }
  last = `${first.election_epoch} ${first.quorum_names.join(',')}`;
  process.stdout.write(`${plainQuorum(first)}\n`);
  process.stdout.write(
    `next: paxmon --dir ${dir} quorum_status · paxmon --dir ${dir} tell mon.a mon_status · paxmon down --dir ${dir}\n`,
  );
  if (detach) {
    await client.close();
    return;
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping the monitors…\n');
    await client.close();
    await down(dir);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  // Print quorum changes as they happen (a UI refresh, not a test wait).
  while (!stopping) {
    await new Promise((r) => setTimeout(r, 500));
    if (stopping) break;
    const q = await poll();
    const now = q ? `${q.election_epoch} ${q.quorum_names.join(',')}` : 'no quorum';
    if (now !== last) {
      last = now;
      process.stdout.write(
        q
          ? `quorum changed: election epoch ${q.election_epoch}, leader ${q.quorum_leader_name}, quorum ${q.quorum_names.join(',')}\n`
          : 'no quorum reachable\n',
      );
    }
  }
}

async function down(dir: string) {
  const cluster = readClusterFile(dir);
  if (!cluster) fail('ENOENT', `no local cluster in ${dir}`);
  const pids = (cluster as NonNullable<typeof cluster>).mons.flatMap((m) => {
    const pid = pidOf(join(dir, m.name));
    return pid !== null && alive(pid) ? [{ name: m.name, pid }] : [];
  });
  for (const { pid } of pids) process.kill(pid, 'SIGTERM');
  // Bounded wait for a clean exit, then SIGKILL what is left.
  const deadline = Date.now() + 10_000;
  while (pids.some(({ pid }) => alive(pid)) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  for (const { name, pid } of pids) {
    if (alive(pid)) {
      process.kill(pid, 'SIGKILL');
      process.stderr.write(`mon.${name} (pid ${pid}) did not stop in 10 s; killed\n`);
    }
    rmSync(join(dir, name, 'pid'), { force: true });
  }
  process.stdout.write(`stopped ${pids.length} monitor${pids.length === 1 ? '' : 's'} in ${dir}\n`);
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.exitCode === 0
      )
        process.exit(0);
      // commander already printed its message; say it Ceph's way too.
      if (error.code === 'commander.unknownCommand') {
        const valid = program.commands.map((c) => c.name()).join(', ');
        process.stderr.write(`Error EINVAL: unknown command (valid: ${valid})\n`);
      }
      process.exit(22);
    }
    exitWithError(error);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  await main(process.argv);
} else if (process.argv[1]?.endsWith('bin.js')) {
  await main(process.argv);
}
