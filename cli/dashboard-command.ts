// `paxmon dashboard` (issue 18): the dashboard's page for a running cluster (live) or for a
// recording (`--replay FILE…`), and the pieces `paxmon up --dashboard` shares with it: where the
// page listens, and the read-only key it polls the monitors with.
//
// The dashboard never polls with client.admin: given no other entity (-n), it makes (or finds)
// `client.dashboard` with caps `mon 'allow r'` — Ceph's read-only mon cap — with the admin key,
// once, and polls with that key only.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type MonAddress, MonClient } from '../actors/mon-client.ts';
import type { Dashboard, StatusSource } from '../dashboard/server.ts';
import { parseKeyring } from '../machines/keyring-text.ts';
import { clientCredentials, type GlobalOptions, monitorsFor } from './client-commands.ts';
import { fail } from './errors.ts';

/** The page's port when `--dashboard` / `paxmon dashboard` names none. */
export const dashboardPortDefault = 8090;
/** The entity the dashboard polls with, and its caps (read only). */
export const dashboardEntity = 'client.dashboard';
export const dashboardCaps = ['mon', 'allow r'] as const;
/** A recording larger than this is refused (the page holds it whole). */
const recordingBytesMax = 256 * 1024 * 1024;

/** `--dashboard [[HOST:]PORT]` / `--port`, `--host`: where the page listens (127.0.0.1 unless told). */
export function dashboardListen(value: string | true | undefined): { host: string; port: number } {
  if (value === undefined || value === true) return { host: '127.0.0.1', port: dashboardPortDefault };
  const match = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?([0-9]{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match || !Number.isInteger(port) || port > 65_535)
    return fail('EINVAL', `--dashboard '${value}' is not [HOST:]PORT`);
  return { host: (match[1] ?? '127.0.0.1').replace(/^\[|\]$/g, ''), port };
}

/** Start the dashboard's server, with paxmon's errors for a taken port or an unbuilt page. */
export async function serveDashboard(
  listen: { host: string; port: number },
  recording?: { name: string; records: import('../dashboard/records.ts').DashRecord[] },
): Promise<Dashboard> {
  const { startDashboard } = await import('../dashboard/server.ts');
  try {
    return await startDashboard({ ...listen, ...(recording ? { recording } : {}) });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      return fail(
        'EADDRINUSE',
        `port ${listen.port} on ${listen.host} is in use (the dashboard's; choose another)`,
      );
    if (code === 'ENOENT') return fail('ENOENT', (error as Error).message);
    throw error;
  }
}

/**
 * A read-only key to poll with: `name`'s own when it is not client.admin, else client.dashboard's,
 * made (`auth get-or-create client.dashboard mon 'allow r'`) with the admin key if need be.
 */
export async function readOnlyCredentials(
  mons: MonAddress[],
  fsid: string | undefined,
  given: { name: string; key: string },
): Promise<{ name: string; key: string }> {
  if (given.name !== 'client.admin') return given;
  const admin = new MonClient({
    mons,
    name: given.name,
    key: given.key,
    ...(fsid ? { fsid } : {}),
    timeoutMs: 15_000,
  });
  try {
    const cmd = ['auth', 'get-or-create', dashboardEntity, ...dashboardCaps];
    const reply = await admin.command(cmd);
    if (reply.r < 0)
      return fail('EACCES', `cannot get a read-only key for the dashboard (${cmd.join(' ')}): ${reply.rs}`);
    const { renderAuth } = await import('../machines/services/auth.ts');
    const entry = parseKeyring(renderAuth(cmd, reply, 'plain').stdout).find(
      (e) => e.entity === dashboardEntity,
    );
    if (!entry) return fail('EIO', `auth get-or-create ${dashboardEntity} answered no key`);
    return { name: dashboardEntity, key: entry.key };
  } finally {
    await admin.close();
  }
}

/** Resolve on SIGINT/SIGTERM, after stopping the dashboard. */
function untilStopped(dashboard: Dashboard): Promise<void> {
  return new Promise((done) => {
    const stop = () => {
      void dashboard.stop().then(() => {
        process.stdout.write('dashboard stopped\n');
        done();
        process.exit(0);
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/** Add `paxmon dashboard` to the program. */
export function registerDashboardCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('dashboard')
    .description(
      "a live page of the cluster's statecharts, quorum and messages, served on 127.0.0.1 (or a recording's, --replay FILE)",
    )
    .option('--port <port>', `the page's port (default ${dashboardPortDefault}; 0: any free port)`)
    .option(
      '--host <host>',
      'listen on this address instead of 127.0.0.1 (the page has no login: mind who can reach it)',
    )
    .option(
      '--replay <file...>',
      'open these recordings (paxmon mon/up --record FILE) instead of a live cluster',
    )
    .action(async (options: { port?: string; host?: string; replay?: string[] }) => {
      const listen = dashboardListen(
        options.port === undefined && options.host === undefined
          ? undefined
          : `${options.host ? `${options.host.includes(':') ? `[${options.host}]` : options.host}:` : ''}${options.port ?? dashboardPortDefault}`,
      );
      if (options.replay) {
        const { parseRecording, sortRecords } = await import('../dashboard/records.ts');
        const records = [];
        for (const file of options.replay.map((f) => resolve(f))) {
          if (!existsSync(file))
            fail('ENOENT', `no recording ${file} (make one with paxmon up --record ${file})`);
          if (statSync(file).size > recordingBytesMax)
            fail(
              'EFBIG',
              `${file} is larger than ${recordingBytesMax / 1024 / 1024} MiB: replay a part of it`,
            );
          const found = parseRecording(readFileSync(file, 'utf8'));
          if (found.records.length === 0) fail('EINVAL', `${file} holds no paxmon inspection records`);
          if (found.malformed > 0)
            process.stderr.write(`${file}: skipped ${found.malformed} lines that are not records\n`);
          records.push(...found.records);
        }
        const name = options.replay.map((f) => f.split('/').pop()).join(', ');
        const dashboard = await serveDashboard(listen, { name, records: sortRecords(records) });
        process.stdout.write(
          `dashboard: open ${dashboard.url} (replaying ${records.length} records of ${name}; Ctrl-C stops it)\n`,
        );
        return untilStopped(dashboard);
      }
      const g = globals();
      const { mons, fsid } = monitorsFor(g);
      const credentials = await readOnlyCredentials(mons, fsid, clientCredentials(g));
      const dashboard = await serveDashboard(listen);
      const source: StatusSource = {
        mons,
        name: credentials.name,
        key: credentials.key,
        ...(fsid ? { fsid } : {}),
      };
      dashboard.pollStatus(source);
      process.stdout.write(
        [
          `dashboard: open ${dashboard.url} (status polled as ${credentials.name}; Ctrl-C stops it)`,
          `statecharts and messages: start monitors with --dashboard-feed ${dashboard.feedUrl}`,
          '(paxmon up --dashboard does both for a local cluster)',
          '',
        ].join('\n'),
      );
      return untilStopped(dashboard);
    });
}
