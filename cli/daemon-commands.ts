// The daemon commands of the paxmon command line (DESIGN.md §6): mkfs, mon (the daemon), up,
// down, start/stop/restart NAME. They open RocksDB stores and run the statecharts, so cli/main.ts
// loads this module only when one of them runs: a client command (quorum_status, config-key…)
// starts without RocksDB or XState.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { startMonitor } from '../actors/daemon.ts';
import {
  combineInspectors,
  connectStatelyInspector,
  createRecorder,
  type FileSink,
  fileSink,
  type InspectorServer,
  type StatelyInspector,
  startInspectorServer,
} from '../actors/inspect.ts';
import { createLogger, type Logger, MonitorLogContext } from '../actors/log.ts';
import { MonClient } from '../actors/mon-client.ts';
import type { SyncProgressReport } from '../actors/monitor.ts';
import { loadMonitorState } from '../actors/monitor-state.ts';
import { applyCephOptions, defaultConfig, type MonConfig } from '../machines/config.ts';
import { RocksDBStore } from '../storage/rocksdb-store.ts';
import { parseAddr, type SessionMode } from '../transport/messenger.ts';
import { inspectPortDefault, logLevels } from './argv.ts';
import { clientCredentials, plainQuorum, type QuorumStatus } from './client-commands.ts';
import {
  addMonitors,
  alive,
  checkPortFree,
  ensureCluster,
  exitedAtStart,
  mkfs,
  mkfsKeyring,
  pidOf,
  readClusterFile,
  readMonArgs,
  spawnMonitor,
  writeMonArgs,
} from './cluster.ts';
import { errno, errnoOf, fail } from './errors.ts';

/**
 * The messenger's options among `--set` ones (Ceph's ms_* options, not the monitor's):
 * `ms_mon_cluster_mode`, the session modes a monitor offers and accepts, in order of preference
 * (Ceph's default "secure crc"; "crc" authenticates frames without encrypting them).
 */
const messengerOptionNames = ['ms_mon_cluster_mode'];

function messengerModes(sets: string[]): SessionMode[] | undefined {
  let modes: SessionMode[] | undefined;
  for (const pair of sets) {
    const name = pair.slice(0, pair.indexOf('=')).replace(/-/g, '_');
    if (!messengerOptionNames.includes(name)) continue;
    const words = pair
      .slice(pair.indexOf('=') + 1)
      .split(/[\s,]+/)
      .filter(Boolean);
    if (
      words.length === 0 ||
      words.some((w) => w !== 'secure' && w !== 'crc') ||
      new Set(words).size !== words.length
    )
      fail('EINVAL', `option '${name}' is a list of session modes: secure, crc (e.g. "secure crc")`);
    modes = words as SessionMode[];
  }
  return modes;
}

function configFrom(sets: string[]): Partial<MonConfig> {
  messengerModes(sets);
  const monitorSets = sets.filter(
    (pair) => !messengerOptionNames.includes(pair.slice(0, pair.indexOf('=')).replace(/-/g, '_')),
  );
  const config = applyCephOptions(defaultConfig, monitorSets);
  if (typeof config === 'string') return fail('EINVAL', config);
  return config;
}

type InspectTarget = { port: number; host?: string } | { url: string };

/**
 * `--inspect [[HOST:]PORT|URL]`: where to serve the inspector bridge (on 127.0.0.1 unless a
 * host is given), or a ws:// URL of one already running.
 */
function inspectTarget(value: string | true | undefined): InspectTarget | undefined {
  if (value === undefined) return undefined;
  if (value === true) return { port: inspectPortDefault };
  if (/^wss?:\/\/\S+$/.test(value)) return { url: value };
  const port = Number(value);
  if (Number.isInteger(port) && port > 0 && port < 65536) return { port };
  const addr = parseAddr(value);
  if (addr && addr.port > 0) return { port: addr.port, host: addr.host };
  return fail('EINVAL', `--inspect '${value}' is neither [HOST:]PORT nor a ws:// URL`);
}

async function serveInspector(
  target: { port: number; host?: string },
  option: string,
): Promise<InspectorServer> {
  const port = target.port;
  try {
    return await startInspectorServer(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE')
      fail('EADDRINUSE', `port ${port} is in use (the inspector's; choose another with ${option} PORT)`);
    throw error;
  }
}

const inspectorNote = (server: InspectorServer) =>
  `inspector: open ${server.httpUrl} in a browser (the Stately inspector UI loads from stately.ai: the browser needs internet)`;

function checkLogLevel(level: string) {
  if (!logLevels.includes(level))
    fail('EINVAL', `--log-level '${level}' is not one of ${logLevels.join(', ')}`);
}

/**
 * Store sync progress for `paxmon mon`: a progress bar on a terminal (cli-progress), a plain
 * line per step otherwise (logs, files, CI).
 */
function syncProgressReporter(name: string, logger: Logger) {
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = 0;
  return (p: SyncProgressReport) => {
    const total = p.totalKeys ?? 0;
    if (process.stderr.isTTY) {
      bar ??= new cliProgress.SingleBar(
        {
          format: `mon.${name} sync from ${p.provider} [{bar}] {value}/{total} keys, {mib} MiB`,
          stream: process.stderr,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
      if (!bar.isActive) bar.start(Math.max(total, p.keys), 0, { mib: '0.0' });
      bar.setTotal(Math.max(total, p.keys));
      bar.update(p.keys, { mib: (p.bytes / 1048576).toFixed(1) });
      if (total > 0 && p.keys >= total) bar.stop();
      return;
    }
    const now = Date.now();
    if (now - lastLine < 1000 && !(total > 0 && p.keys >= total)) return;
    lastLine = now;
    const of = total > 0 ? ` of ${total}` : '';
    logger.info(
      { sync: p },
      `mon.${name} ${p.kind} sync from ${p.provider}: ${p.keys}${of} keys, ${p.bytes} bytes`,
    );
  };
}

/** Name, address and election epoch of the monitor in `dir`, read before it starts. */
async function readIdentity(dir: string): Promise<{ name: string; addr: string; electionEpoch: number }> {
  const store = await RocksDBStore.open(join(dir, 'store.db'));
  try {
    const loaded = await loadMonitorState(store);
    // Its monmap address, or (a monitor joining the cluster) the address it was created with.
    const addr = loaded.input.monmap.mons.find((m) => m.name === loaded.name)?.addr ?? loaded.addr;
    if (addr === undefined)
      return fail(
        'EINVAL',
        `mon.${loaded.name} has no address (not in monmap epoch ${loaded.input.monmap.epoch})`,
      );
    return { name: loaded.name, addr, electionEpoch: loaded.input.electionEpoch };
  } finally {
    await store.close();
  }
}

export interface MonOptions {
  dir: string;
  logLevel: string;
  logFile?: string;
  set: string[];
  bindAddr?: string;
  inspect?: string | true;
  record?: string;
  /** Stream and record users' data (config-key values, command input and replies) too. */
  inspectValues?: boolean;
  /** Stream the inspection records to a paxmon dashboard at this ws:// URL. */
  dashboardFeed?: string;
}

export async function runMon(options: MonOptions): Promise<void> {
  const config = configFrom(options.set);
  const modes = messengerModes(options.set);
  checkLogLevel(options.logLevel);
  const target = inspectTarget(options.inspect);
  if (options.dashboardFeed !== undefined && !/^wss?:\/\/[^\s]+$/.test(options.dashboardFeed))
    fail('EINVAL', `--dashboard-feed '${options.dashboardFeed}' is not a ws:// URL`);
  if (options.bindAddr !== undefined && !parseAddr(options.bindAddr))
    fail('EINVAL', `--bind-addr '${options.bindAddr}' is not HOST:PORT`);
  const dir = resolve(options.dir);
  if (!existsSync(join(dir, 'store.db')))
    fail('ENOENT', `no monitor store in ${dir} (create one with paxmon mkfs)`);
  const identity = await readIdentity(dir);
  // Every log line carries mon, state and election_epoch, read live from the monitor's actor.
  const logContext = new MonitorLogContext({
    mon: identity.name,
    state: 'starting',
    election_epoch: identity.electionEpoch,
  });
  const logger: Logger = createLogger({
    level: options.logLevel,
    fields: logContext.fields,
    ...(options.logFile ? { file: options.logFile } : {}),
  });
  let sink: FileSink | undefined;
  let server: InspectorServer | undefined;
  let stately: StatelyInspector | undefined;
  if (options.record) sink = fileSink(resolve(options.record));
  if (target) {
    if ('port' in target) server = await serveInspector(target, '--inspect');
    stately = await connectStatelyInspector({
      url: server?.wsUrl ?? (target as { url: string }).url,
      values: options.inspectValues === true,
    });
    if (server) process.stderr.write(`${inspectorNote(server)}\n`);
  }
  const recorder = sink
    ? createRecorder({ write: sink.write, mon: identity.name, values: options.inspectValues === true })
    : undefined;
  // The dashboard's feed: the same records as --record's, sent over a WebSocket (dashboard/feed.ts).
  const feed = options.dashboardFeed
    ? (await import('../dashboard/feed.ts')).connectDashboardFeed(options.dashboardFeed)
    : undefined;
  const feedRecorder = feed
    ? createRecorder({ write: feed.write, mon: identity.name, values: options.inspectValues === true })
    : undefined;
  const listenAddr = options.bindAddr ?? identity.addr;
  const inspect = combineInspectors(recorder?.inspect, stately?.inspect, feedRecorder?.inspect);
  let mon: Awaited<ReturnType<typeof startMonitor>>;
  try {
    mon = await startMonitor({
      dir,
      config,
      logger,
      ...(options.bindAddr ? { bindAddr: options.bindAddr } : {}),
      ...(modes ? { modes } : {}),
      // Inspection only when asked for: an observer makes XState build an event for every step
      // of every actor (the log fields come from the monitor's handle instead, below).
      ...(inspect ? { inspect } : {}),
      onFatal: (error: Error) => {
        // The store's own errno (ENOSPC 28 for a full disk), as every paxmon error exits.
        const name = errnoOf((error as { code?: unknown }).code);
        process.stderr.write(
          `Error ${name}: mon.${identity.name} stopped: store write failed: ${error.message}\n`,
        );
        sink?.close();
        rmSync(join(dir, 'pid'), { force: true });
        logger.flush?.();
        // Exit at once, store open: on a full disk RocksDB's close waits for its background
        // error recovery, which waits for space, so closing can hang for good. (Exiting under
        // those threads can, rarely, abort with "pure virtual method called" instead.)
        process.exit(errno[name]);
      },
      onSyncProgress: syncProgressReporter(identity.name, logger),
      onShutdown: (reason: string) => {
        // Ceph's monitor exits when it finds itself removed from the monmap.
        logger.warn({ reason }, `mon.${identity.name} ${reason}; exiting`);
        process.stderr.write(`mon.${identity.name} ${reason}; exiting\n`);
        sink?.close();
        rmSync(join(dir, 'pid'), { force: true });
        logger.flush?.();
        setTimeout(() => process.exit(0), 100).unref();
      },
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL') {
      const parsed = parseAddr(listenAddr);
      const where = parsed ? `port ${parsed.port} on ${parsed.host}` : listenAddr;
      const why = options.bindAddr ? '--bind-addr' : `mon.${identity.name}'s monmap address ${identity.addr}`;
      fail(
        code === 'EADDRINUSE' ? 'EADDRINUSE' : 'EINVAL',
        code === 'EADDRINUSE'
          ? `${where} is in use (${why}); stop what holds it, or listen elsewhere with --bind-addr HOST:PORT`
          : `cannot listen on ${listenAddr} (${why}): not an address of this machine`,
      );
    }
    throw error;
  }
  logContext.follow(mon);
  writeFileSync(join(dir, 'pid'), `${process.pid}\n`);
  logger.info({ addr: mon.addr, fsid: mon.fsid }, `mon.${mon.name} listening on ${mon.addr}`);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `mon.${mon.name} shutting down on ${signal}`);
    void mon.stop().then(() => {
      rmSync(join(dir, 'pid'), { force: true });
      sink?.close();
      stately?.stop();
      server?.stop();
      logger.flush?.();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await new Promise(() => {});
}

function monitorOf(dir: string, name: string) {
  const cluster = readClusterFile(dir);
  if (!cluster) return fail('ENOENT', `no local cluster in ${dir} (paxmon up makes one)`);
  const mon = cluster.mons.find((m) => m.name === name);
  if (!mon)
    return fail(
      'ENOENT',
      `mon.${name} is not a monitor of the cluster in ${dir} (${cluster.mons.map((m) => m.name).join(', ')})`,
    );
  return { cluster, mon };
}

/** `paxmon start NAME`: start one stopped monitor of the local cluster and wait for it to join. */
export async function startOne(dir: string, name: string, timeoutS: number): Promise<void> {
  const { cluster, mon } = monitorOf(dir, name);
  const running = pidOf(join(dir, name));
  if (running !== null && alive(running))
    fail('EBUSY', `mon.${name} is running already (pid ${running}); paxmon restart ${name} restarts it`);
  await checkPortFree(mon.addr, `mon.${name}'s monmap address; stop what holds it`);
  const pid = spawnMonitor(join(dir, name), readMonArgs(dir));
  const deadline = Date.now() + timeoutS * 1000;
  const { MonClient } = await import('../actors/mon-client.ts');
  const client = new MonClient({
    mons: cluster.mons.map((m) => ({ name: m.name, addr: m.addr })),
    fsid: cluster.fsid,
    timeoutMs: 1500,
    attemptTimeoutMs: 500,
    ...clientCredentials({ dir }),
  });
  try {
    for (;;) {
      if (!alive(pid)) throw exitedAtStart(dir, name);
      const reply = await client.command(['quorum_status']).catch(() => null);
      const q = reply?.r === 0 ? (JSON.parse(new TextDecoder().decode(reply.data)) as QuorumStatus) : null;
      // The monitor started here listening (its pid file names it: written once it listens) and
      // in the quorum — a quorum seen just after a stop may still name the monitor that left.
      if (q?.quorum_names.includes(name) && pidOf(join(dir, name)) === pid) {
        process.stdout.write(
          `started mon.${name} (pid ${pid}) in ${dir}; ${quorumLine(q).replace('quorum changed: ', '')}\n`,
        );
        return;
      }
      if (Date.now() >= deadline) {
        process.stdout.write(`started mon.${name} (pid ${pid}) in ${dir}\n`);
        process.stderr.write(
          `mon.${name} is not in the quorum after ${timeoutS}s (${q ? `quorum ${q.quorum_names.join(',')}` : 'no quorum: start more monitors'}); log: ${join(dir, name, 'log')}\n`,
        );
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await client.close();
  }
}

/** `paxmon stop NAME`: stop one monitor of the local cluster. */
export async function stopOne(dir: string, name: string): Promise<void> {
  monitorOf(dir, name);
  const pid = pidOf(join(dir, name));
  if (pid === null || !alive(pid)) {
    process.stderr.write(`mon.${name} is not running in ${dir}\n`);
    return;
  }
  await down(dir, { names: [name], quiet: true });
  process.stdout.write(`stopped mon.${name} (pid ${pid}) in ${dir}\n`);
}

export interface UpOptions {
  size: string;
  port: string;
  detach?: boolean;
  set: string[];
  dir?: string;
  logLevel: string;
  inspect?: string | true;
  record?: string;
  inspectValues?: boolean;
  /** `--dashboard [[HOST:]PORT]`: serve the dashboard's page from this process. */
  dashboard?: string | true;
  /** Options of a new cluster given on the command line (ignored for an existing one). */
  given?: string[];
}

const quorumLine = (q: QuorumStatus | null) =>
  q
    ? `quorum changed: election epoch ${q.election_epoch}, leader ${q.quorum_leader_name}, quorum ${q.quorum_names.join(',')}`
    : 'no quorum reachable';

async function up(dir: string, options: UpOptions, globals: { timeout: string }) {
  configFrom(options.set);
  checkLogLevel(options.logLevel);
  const timeoutMs = Number(globals.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    fail('EINVAL', `--timeout ${globals.timeout} is not a positive number of seconds`);
  if (!/^[0-9]+$/.test(options.size)) fail('EINVAL', `--size '${options.size}' is not a number`);
  if (!/^[0-9]+$/.test(options.port)) fail('EINVAL', `--port '${options.port}' is not a port number`);
  const target = inspectTarget(options.inspect);
  if (options.record && !existsSync(dirname(resolve(options.record))))
    fail('ENOENT', `no directory ${dirname(resolve(options.record))} for --record ${options.record}`);
  if (target && 'port' in target && options.detach)
    fail(
      'EINVAL',
      '--inspect PORT serves the inspector from this process, which --detach ends; give the ws:// URL of a running one',
    );
  const dashboardModule =
    options.dashboard !== undefined ? await import('./dashboard-command.ts') : undefined;
  const dashboardAt = dashboardModule?.dashboardListen(options.dashboard);
  if (dashboardAt && options.detach)
    fail(
      'EINVAL',
      '--dashboard serves the page from this process, which --detach ends; run paxmon dashboard for a detached cluster',
    );
  const existing = readClusterFile(dir);
  // On a running cluster, `up` starts the monitors that are not running (after a kill -9, say).
  const runningAtStart = new Map<string, number>();
  if (existing) {
    for (const m of existing.mons) {
      const pid = pidOf(join(dir, m.name));
      if (pid !== null && alive(pid)) runningAtStart.set(m.name, pid);
    }
    if (runningAtStart.size === existing.mons.length) {
      fail(
        'EBUSY',
        `a cluster is already running in ${dir} (${[...runningAtStart].map(([name, pid]) => `mon.${name} pid ${pid}`).join(', ')}): every monitor runs; restart one with paxmon restart NAME, stop it with: paxmon down --dir ${dir}`,
      );
    }
  }
  const cluster = await ensureCluster(dir, Number(options.size), Number(options.port));
  if (existing && options.given && options.given.length > 0)
    process.stderr.write(
      `note: ${options.given.map((o) => `--${o}`).join(' and ')} only shape a new cluster; the one in ${dir} keeps its ${cluster.mons.length} monitors and ports (another cluster: --dir OTHER)\n`,
    );
  const toStart = cluster.mons.filter((m) => !runningAtStart.has(m.name));
  if (existing) {
    for (const m of toStart)
      await checkPortFree(
        m.addr,
        `mon.${m.name} of the cluster in ${dir} listens there; stop what holds it, or start another cluster with --dir OTHER --port PORT`,
      );
  }
  let server: InspectorServer | undefined;
  if (target && 'port' in target) server = await serveInspector(target, 'paxmon up --inspect');
  // The dashboard listens before the monitors start, so their first election is on its page.
  const dashboard =
    dashboardModule && dashboardAt ? await dashboardModule.serveDashboard(dashboardAt) : undefined;
  const feedArgs = dashboard ? ['--dashboard-feed', dashboard.feedUrl] : [];
  const monArgs = [
    ...options.set.flatMap((s) => ['--set', s]),
    '--log-level',
    options.logLevel,
    ...(target ? ['--inspect', server?.wsUrl ?? (target as { url: string }).url] : []),
    ...(options.record ? ['--record', resolve(options.record)] : []),
    ...(options.inspectValues ? ['--inspect-values'] : []),
    ...feedArgs,
  ];
  // What `paxmon start NAME` gives a monitor later (not the inspector of this process; the
  // dashboard's feed, so a monitor restarted while this process runs is on its page again — one
  // started after it ended tries that address now and then, quietly).
  writeMonArgs(dir, [
    ...options.set.flatMap((s) => ['--set', s]),
    '--log-level',
    options.logLevel,
    ...(options.record ? ['--record', resolve(options.record)] : []),
    ...(options.inspectValues ? ['--inspect-values'] : []),
    ...feedArgs,
  ]);
  // How each monitor this process started ended (its exit event), for the foreground report.
  const exits = new Map<number, string>();
  const pids = toStart.map((m) => {
    const pid: number = spawnMonitor(join(dir, m.name), monArgs, (code, signal) =>
      exits.set(pid, signal ? `killed by ${signal}` : `exit code ${code}`),
    );
    return { name: m.name, pid };
  });
  if (runningAtStart.size > 0)
    process.stdout.write(
      `starting ${toStart.map((m) => `mon.${m.name}`).join(', ')} in ${dir} (not running; ${[...runningAtStart].map(([name, pid]) => `mon.${name} pid ${pid}`).join(', ')} ${runningAtStart.size === 1 ? 'is' : 'are'} running): ${toStart.map((m) => `${m.name}@${m.addr}`).join(' ')}\n`,
    );
  else
    process.stdout.write(
      `starting ${cluster.mons.length} monitors in ${dir}: ${cluster.mons.map((m) => `${m.name}@${m.addr}`).join(' ')}\n`,
    );
  if (server) process.stdout.write(`${inspectorNote(server)}\n`);
  if (dashboard) process.stdout.write(`dashboard: open ${dashboard.url}\n`);
  // Polls are short so a monitor that died at start is noticed at once.
  const client = new MonClient({
    mons: cluster.mons.map((m) => ({ name: m.name, addr: m.addr })),
    fsid: cluster.fsid,
    timeoutMs: 1500,
    attemptTimeoutMs: 500,
    ...clientCredentials({ dir }),
  });
  const poll = async (): Promise<QuorumStatus | null> => {
    try {
      const reply = await client.command(['quorum_status']);
      if (reply.r !== 0) return null;
      return JSON.parse(new TextDecoder().decode(reply.data)) as QuorumStatus;
    } catch {
      return null;
    }
  };
  // Wait for every monitor to join (a first quorum may be a majority only); at the deadline a
  // partial quorum is shown as it is, and none at all is ETIMEDOUT.
  const deadline = Date.now() + timeoutMs;
  let first: QuorumStatus | null = null;
  let seen: QuorumStatus | null = null;
  // Ctrl-C before the first quorum stops what was started, as it does afterwards.
  let interrupted: string | undefined;
  const interrupt = (signal: string) => {
    interrupted = signal;
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const stopIfInterrupted = async () => {
    if (!interrupted) return;
    await client.close();
    await down(dir, { quiet: true, names: pids.map((p) => p.name) });
    server?.stop();
    await dashboard?.stop();
    process.stderr.write(`${interrupted} before the first quorum: stopped the monitors in ${dir}\n`);
    process.exit(interrupted === 'SIGINT' ? 130 : 143);
  };
  while (!first) {
    await stopIfInterrupted();
    const dead = pids.find(({ pid }) => !alive(pid));
    if (dead) {
      await client.close();
      await down(dir, { quiet: true, names: pids.map((p) => p.name) });
      server?.stop();
      await dashboard?.stop();
      throw exitedAtStart(dir, dead.name);
    }
    if (Date.now() >= deadline && seen) {
      first = seen;
      break;
    }
    if (Date.now() >= deadline) {
      await client.close();
      server?.stop();
      await dashboard?.stop();
      fail(
        'ETIMEDOUT',
        `no quorum within ${globals.timeout}s; the monitors keep trying (logs in ${dir}/*/log; stop them with paxmon down --dir ${dir})`,
      );
    }
    const q = await poll();
    if (q) seen = q;
    // Every monitor started here listening (its pid file is written then), and in the quorum: a
    // quorum seen just after a kill -9 may still name the dead monitor.
    const listening = pids.every(({ name, pid }) => pidOf(join(dir, name)) === pid);
    if (q && listening && q.quorum.length === cluster.mons.length) first = q;
    else await new Promise((r) => setTimeout(r, 100));
  }
  // A signal during the last poll: the quorum came, but Ctrl-C was first.
  await stopIfInterrupted();
  process.off('SIGINT', interrupt);
  process.off('SIGTERM', interrupt);
  // The page's status comes from a client with read caps only (client.dashboard, made with the
  // admin key the first time), never from this process's admin client.
  if (dashboard && dashboardModule) {
    try {
      const credentials = await dashboardModule.readOnlyCredentials(
        cluster.mons.map((m) => ({ name: m.name, addr: m.addr })),
        cluster.fsid,
        clientCredentials({ dir }),
      );
      dashboard.pollStatus({
        mons: cluster.mons.map((m) => ({ name: m.name, addr: m.addr })),
        fsid: cluster.fsid,
        ...credentials,
      });
    } catch (error) {
      process.stderr.write(`dashboard: no status (${(error as Error).message}); statecharts only\n`);
    }
  }
  let last = `${first.election_epoch} ${first.quorum_names.join(',')}`;
  process.stdout.write(`${plainQuorum(first)}\n`);
  const leader = first.quorum_leader_name;
  // The commands as typed from here: npx finds the package's bin; --dir only when not the default.
  const shown = relative(process.cwd(), dir);
  const dirArg = dir === resolve('.paxmon') ? '' : ` --dir ${shown && !shown.startsWith('..') ? shown : dir}`;
  const hint = (command: string) =>
    command === 'down' ? `npx paxmon down${dirArg}` : `npx paxmon${dirArg} ${command}`;
  process.stdout.write(
    `next: ${hint('quorum_status')} · ${hint(`tell mon.${leader} mon_status`)} · ${hint('down')}${options.detach ? '' : ' (or Ctrl-C)'}\n`,
  );
  if (options.detach) {
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
    server?.stop();
    await dashboard?.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  // Print quorum changes and monitors that exit or come back as they happen (a UI refresh, not a
  // test wait).
  const known = new Map<string, number | null>(cluster.mons.map((m) => [m.name, null]));
  for (const [name, pid] of runningAtStart) known.set(name, pid);
  for (const { name, pid } of pids) known.set(name, pid);
  while (!stopping) {
    await new Promise((r) => setTimeout(r, 500));
    if (stopping) break;
    let mons = cluster.mons;
    try {
      mons = readClusterFile(dir)?.mons ?? mons;
    } catch {
      // a file being rewritten: the last list
    }
    let runningNow = 0;
    for (const m of mons) {
      const pid = pidOf(join(dir, m.name));
      const now = pid !== null && alive(pid) ? pid : null;
      const before = known.get(m.name) ?? null;
      if (now !== null) runningNow += 1;
      if (before !== null && now !== before && !alive(before)) {
        const how = exits.get(before);
        process.stdout.write(
          `mon.${m.name} (pid ${before}) exited${how ? `: ${how}` : ''}; start it again with: ${hint(`start ${m.name}`)} (log: ${join(dir, m.name, 'log')})\n`,
        );
      }
      if (now !== null && now !== before) {
        if (known.has(m.name)) process.stdout.write(`mon.${m.name} is running (pid ${now})\n`);
      }
      known.set(m.name, now);
    }
    if (runningNow === 0) {
      process.stdout.write(`every monitor in ${dir} has stopped\n`);
      await client.close();
      server?.stop();
      await dashboard?.stop();
      process.exit(0);
    }
    const q = await poll();
    const now = q ? `${q.election_epoch} ${q.quorum_names.join(',')}` : 'no quorum';
    if (now !== last && !stopping) {
      last = now;
      process.stdout.write(`${quorumLine(q)}\n`);
    }
  }
}

export async function down(dir: string, options: { quiet?: boolean; names?: string[] } = {}) {
  const cluster = readClusterFile(dir);
  if (!cluster) return fail('ENOENT', `no local cluster in ${dir}`);
  const names = options.names;
  const pids = cluster.mons.flatMap((m) => {
    if (names && !names.includes(m.name)) return [];
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
  if (!options.quiet)
    process.stdout.write(`stopped ${pids.length} monitor${pids.length === 1 ? '' : 's'} in ${dir}\n`);
}

/** `paxmon mkfs`'s options. */
export interface MkfsOptions {
  dir: string;
  name: string;
  fsid?: string;
  mon: string[];
  monmap?: string;
  addr?: string;
  keyring?: string;
}

/** `paxmon mkfs`: one monitor's store and keyring (ceph-mon --mkfs). */
export async function mkfsCommand(options: MkfsOptions): Promise<void> {
  const keyring = options.keyring ? await mkfsKeyring(options.keyring) : undefined;
  await mkfs({
    dir: options.dir,
    name: options.name,
    mons: options.mon,
    ...(options.fsid ? { fsid: options.fsid } : {}),
    ...(options.monmap ? { monmapFile: options.monmap } : {}),
    ...(options.addr ? { addr: options.addr } : {}),
    ...(keyring ? { keyring } : {}),
  });
  process.stdout.write(`created mon.${options.name} in ${options.dir}\n`);
  if (!keyring)
    process.stderr.write(
      `created ${join(options.dir, 'keyring')} with new keys for mon. and client.admin: give other monitors of this cluster its mon. key (mkfs --keyring), clients the client.admin entry (-k)\n`,
    );
}

/** `paxmon up [--add N]`: start (and first create) the local cluster in `dir`, or grow it. */
export async function upCommand(
  dir: string,
  options: UpOptions & { timeout?: string; add?: string },
  globals: { timeout: string },
): Promise<void> {
  if (options.add !== undefined) {
    // Checked here, before a monitor is added to the map and then dies on them.
    configFrom(options.set);
    checkLogLevel(options.logLevel);
    // A new monitor syncs before it joins: 30 s unless --timeout says otherwise.
    const timeout = Number(options.timeout ?? 30);
    if (!Number.isFinite(timeout) || timeout <= 0)
      fail('EINVAL', `--timeout ${options.timeout} is not a positive number of seconds`);
    const cluster = await addMonitors(
      dir,
      Number(options.add),
      [...options.set.flatMap((s) => ['--set', s]), '--log-level', options.logLevel],
      timeout * 1000,
    );
    process.stdout.write(`monitors now: ${cluster.mons.map((m) => `${m.name}@${m.addr}`).join(' ')}\n`);
    return;
  }
  await up(dir, options, { timeout: options.timeout ?? globals.timeout });
}
