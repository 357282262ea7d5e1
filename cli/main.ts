// The paxmon command (DESIGN.md §6): daemons (mkfs, mon, up, down), Ceph-style client commands,
// and the inspection commands (replay, statecharts).
//
// A client command must start fast (issue 17 §2: `paxmon quorum_status` in well under `ceph`'s
// time), so this module and what it imports statically load no RocksDB and no XState: the
// daemon commands are in daemon-commands.ts and the inspection ones load the statecharts, each
// with import() when it runs. (No import cycle back to this module either: it may still be
// evaluating — its last line awaits main() — when one of them loads.)
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { inspectPortDefault, logLevels, normalizeArgv } from './argv.ts';
import { type GlobalOptions, monClientCommand, registerClientCommands } from './client-commands.ts';
import { nearestClusterDir, parseConf } from './cluster-file.ts';
// Types only (erased): the module itself loads with the command that needs it, below.
import type { MkfsOptions, MonOptions, UpOptions } from './daemon-commands.ts';
import { dashboardPortDefault, registerDashboardCommand } from './dashboard-command.ts';
import { errno, errnoOf, exitWithError, fail } from './errors.ts';
import { registerInspectCommands } from './inspect-commands.ts';

/** The daemon commands' module, loaded by the command that needs it. */
const daemon = () => import('./daemon-commands.ts');

const collect = (value: string, previous: string[]) => [...previous, value];

/** The paxmon command line: every command and option (commander), errors in Ceph's form. */
export function buildProgram(): Command {
  const program = new Command('paxmon')
    .description(
      "The Ceph monitor's core (Elector, Paxos, PaxosService, MonitorDBStore) as XState statecharts",
    )
    // Ceph's habit for every error, commander's included: `Error EINVAL: …` (exit 22).
    .configureOutput({
      outputError: (text, write) => write(`Error EINVAL: ${text.replace(/^error: /, '')}`),
    })
    .showHelpAfterError('(paxmon --help lists the commands; paxmon COMMAND --help its options)')
    .option(
      '-m, --mon-host <addrs>',
      'monitor addresses HOST:PORT[,HOST:PORT…] (default: the cluster of -c, PAXMON_CONF or the nearest .paxmon/)',
    )
    .option(
      '-c, --conf <file>',
      "a cluster config file in Ceph's format ([global] fsid, mon_host, keyring; paxmon up writes DIR/ceph.conf); default $PAXMON_CONF",
    )
    .option(
      '--dir <dir>',
      'local cluster directory (paxmon up; default: the nearest .paxmon/ here or in a parent directory)',
      '.paxmon',
    )
    .option('-n, --name <entity>', 'authenticate as this client entity (default client.admin)')
    .option('-k, --keyring <file>', "the keyring with its key (default: the local cluster's, DIR/keyring)")
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['plain', 'json', 'json-pretty'])
        .default('plain'),
    )
    .option(
      '--timeout <seconds>',
      'give up on the monitors after this long (also --connect-timeout, as ceph)',
      '10',
    )
    .option('-s, --status', 'the cluster status (paxmon status)')
    .option('-w, --watch', "the cluster's status, then its log as it is written (ceph -w)")
    .version(`paxmon version ${packageVersion()}`, '--version', 'print the version and exit')
    .enablePositionalOptions()
    .exitOverride();

  program
    .command('mkfs')
    .description('create a monitor store with its initial monmap (like ceph-mon --mkfs)')
    .requiredOption('--dir <dir>', "the monitor's data directory (must be empty or absent)")
    .requiredOption('--name <name>', "this monitor's name (e.g. a)")
    .option('--fsid <uuid>', 'the cluster fsid (with --mon)')
    .option('--mon <name=host:port>', 'a monitor of the initial monmap (repeat)', collect, [])
    .option(
      '--monmap <file>',
      'the monmap to start from (paxmon mon getmap -o FILE), like ceph-mon --mkfs --monmap',
    )
    .option(
      '--addr <host:port>',
      "this monitor's address, when it joins a cluster whose map does not name it yet",
    )
    .option(
      '--keyring <file>',
      "the cluster's keyring with the mon. key (and client.admin, imported when the cluster first forms); default: new keys",
    )
    .action(async (options: MkfsOptions) => (await daemon()).mkfsCommand(options));

  program
    .command('mon')
    .description(
      'run one monitor daemon in the foreground (mon --dir DIR); or the monmap commands: mon dump | stat | getmap | add NAME ADDR | rm NAME',
    )
    .argument('[words...]', 'dump | stat | getmap | add NAME HOST:PORT | rm NAME (none: run the daemon)')
    .option('--dir <dir>', "the monitor's data directory (the daemon)")
    .option('-o, --out-file <file>', 'write the map of `mon getmap` to a file')
    .option('--log-level <level>', logLevels.join(', '), 'info')
    .option('--log-file <file>', 'write JSON log lines here instead of the terminal')
    .option('--set <option=value>', "a Ceph option, e.g. mon_lease=5 (seconds, as Ceph's)", collect, [])
    .option('--bind-addr <host:port>', "listen here instead of the monitor's monmap address")
    .option(
      '--inspect [port|url]',
      `stream the actor tree to the Stately inspector: serve it on [HOST:]PORT (default 127.0.0.1:${inspectPortDefault}) or send to a ws:// URL`,
    )
    .option('--record <file>', 'append every inspection event to FILE as JSON lines (see paxmon replay)')
    .option(
      '--inspect-values',
      "with --inspect or --record: include users' data (config-key values, command input and replies); without it, sizes only",
    )
    .option(
      '--dashboard-feed <url>',
      'stream the actor tree to a paxmon dashboard at this ws:// URL (paxmon dashboard prints it)',
    )
    .action(async (words: string[], options: MonOptions & { outFile?: string }) => {
      if (words.length > 0) return monClientCommand(program, words, options);
      if (!options.dir)
        fail('EINVAL', 'paxmon mon needs --dir DIR to run a monitor (or dump | stat | getmap)');
      return (await daemon()).runMon(options);
    });

  program
    .command('up')
    .description('create (if needed) and start a local cluster, one process per monitor')
    .option('--size <n>', 'number of monitors for a new cluster', '3')
    .option('--port <port>', 'first port; monitors use PORT, PORT+1, …', '6789')
    .option('--detach', 'start the monitors and return')
    .option('--dir <dir>', 'cluster directory (default: .paxmon)')
    .option('--set <option=value>', 'a Ceph option passed to every monitor', collect, [])
    .option('--log-level <level>', `every monitor's log level (${logLevels.join(', ')})`, 'info')
    .option(
      '--inspect [port|url]',
      `stream every monitor to the Stately inspector: serve it on [HOST:]PORT (default 127.0.0.1:${inspectPortDefault}) or send to a ws:// URL`,
    )
    .option('--record <file>', "append every monitor's inspection events to FILE (see paxmon replay)")
    .option(
      '--inspect-values',
      "with --inspect or --record: include users' data (config-key values, command input and replies); without it, sizes only",
    )
    .option(
      '--dashboard [port]',
      `serve a live page of the cluster's statecharts, quorum and messages on [HOST:]PORT (default 127.0.0.1:${dashboardPortDefault})`,
    )
    .option('--timeout <seconds>', 'wait this long for the quorum (default: the global --timeout, 10)')
    .option(
      '--add <n>',
      'grow the running cluster by N monitors, one at a time: mon add, mkfs from mon getmap, start, wait until it is in the quorum (--timeout, default 30 s)',
    )
    .action(async (options: UpOptions & { timeout?: string; add?: string }, command: Command) => {
      const dir = resolve(options.dir ?? program.opts<{ dir: string }>().dir);
      options.given = ['size', 'port'].filter((o) => command.getOptionValueSource(o) === 'cli');
      await (await daemon()).upCommand(dir, options, program.opts<{ timeout: string }>());
    });

  program
    .command('down')
    .description('stop the local cluster in --dir')
    .option('--dir <dir>', 'cluster directory (default: .paxmon)')
    .action(async (options: { dir?: string }) => {
      const dir = resolve(options.dir ?? program.opts<{ dir: string }>().dir);
      await (await daemon()).down(dir);
    });

  const oneMonitor = (verb: string, what: string) =>
    program
      .command(verb)
      .description(`${what} one monitor of the local cluster (${verb} NAME, e.g. ${verb} a)`)
      .argument('<name>', 'the monitor: a, b… or mon.a')
      .option('--dir <dir>', 'cluster directory (default: the nearest .paxmon/)')
      .option('--timeout <seconds>', 'wait this long for it to join the quorum (default 30)');
  const clusterDirOf = (options: { dir?: string }) =>
    resolve(options.dir ?? program.opts<{ dir: string }>().dir);
  oneMonitor('start', 'start').action(async (name: string, options: { dir?: string; timeout?: string }) => {
    await (await daemon()).startOne(
      clusterDirOf(options),
      name.replace(/^mon\./, ''),
      seconds(options.timeout ?? '30'),
    );
  });
  oneMonitor('stop', 'stop (SIGTERM, then SIGKILL after 10 s)').action(
    async (name: string, options: { dir?: string }) => {
      await (await daemon()).stopOne(clusterDirOf(options), name.replace(/^mon\./, ''));
    },
  );
  oneMonitor('restart', 'stop and start again').action(
    async (name: string, options: { dir?: string; timeout?: string }) => {
      const dir = clusterDirOf(options);
      const { startOne, stopOne } = await daemon();
      await stopOne(dir, name.replace(/^mon\./, ''));
      await startOne(dir, name.replace(/^mon\./, ''), seconds(options.timeout ?? '30'));
    },
  );

  registerClientCommands(program);
  registerInspectCommands(program);
  registerDashboardCommand(program, () => program.opts<GlobalOptions>());

  // Where the cluster is (Ceph's -c FILE, CEPH_CONF): -c, else $PAXMON_CONF, else --dir, else the
  // nearest .paxmon/ in the working directory or a parent.
  program.hook('preAction', () => {
    const conf = program.opts<{ conf?: string }>().conf ?? process.env.PAXMON_CONF;
    if (program.getOptionValueSource('dir') !== 'cli') {
      program.setOptionValueWithSource('dir', nearestClusterDir(), 'default');
    }
    if (!conf) return;
    let text: string;
    try {
      text = readFileSync(conf, 'utf8');
    } catch (error) {
      return fail(
        errnoOf((error as NodeJS.ErrnoException).code),
        `cannot read config file ${conf}: ${(error as Error).message}`,
      );
    }
    const global = parseConf(text).get('global') ?? new Map<string, string>();
    const confDir = dirname(resolve(conf));
    // A local cluster's own file (DIR/ceph.conf): its directory names the monitors.
    if (existsSync(join(confDir, 'cluster.json')) && program.getOptionValueSource('dir') !== 'cli')
      program.setOptionValueWithSource('dir', confDir, 'config');
    else if (program.opts<{ monHost?: string }>().monHost === undefined) {
      const hosts = [
        ...(global.get('mon_host') ?? '').matchAll(/(?:v[12]:)?(\[[0-9a-fA-F:.]+\]:\d+|[^,;\s[\]/]+:\d+)/g),
      ].map((m) => m[1] as string);
      if (hosts.length === 0) fail('EINVAL', `config file ${conf} has no mon_host in [global]`);
      program.setOptionValueWithSource('monHost', hosts.join(','), 'config');
    }
    const keyring = global.get('keyring');
    if (keyring && program.opts<{ keyring?: string }>().keyring === undefined)
      program.setOptionValueWithSource('keyring', resolve(confDir, keyring), 'config');
  });

  return program;
}

function seconds(value: string): number {
  const s = Number(value);
  if (!Number.isFinite(s) || s <= 0) fail('EINVAL', `--timeout ${value} is not a positive number of seconds`);
  return s;
}

/** This package's version (its package.json). */
function packageVersion(): string {
  // cli/main.ts in the repository; dist/chunks/*.mjs in the build.
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === 'paxmon' && manifest.version) return manifest.version;
    } catch {
      // not there: the next one up
    }
  }
  return 'unknown';
}

/** Run the paxmon command with `argv` (process.argv): exits with the errno of any failure. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const flagsOf = (name: string) =>
    program.commands
      .find((c) => c.name() === name)
      ?.options.flatMap((o) => [o.short, o.long].filter((f): f is string => f !== undefined));
  try {
    await program.parseAsync([...argv.slice(0, 2), ...normalizeArgv(argv.slice(2), { flagsOf })]);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') process.exit(0);
      // No command at all: commander printed the help (to stderr).
      if (error.code === 'commander.help')
        process.stderr.write('Error EINVAL: no command given (paxmon --help lists them)\n');
      // Anything else commander refused was printed by outputError, Ceph's way.
      process.exit(errno.EINVAL);
    }
    exitWithError(error);
  }
}

// Run when this module is the program: `node --import tsx cli/main.ts …` (npm run paxmon, the
// specs). The built command, dist/paxmon.mjs, is cli/paxmon.ts, which calls main() itself.
if (process.argv[1] && isThisModule(process.argv[1])) await main(process.argv);

function isThisModule(script: string): boolean {
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
