// Helpers for specs that run real paxmon processes: the CLI as a child process, free ports, and
// bounded polling (a check repeated until it holds or a deadline passes — never a fixed sleep).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKey, keySecret } from '../../actors/keyring.ts';
import { anyFsid } from '../../actors/mon-client.ts';
import { spawnMonitor } from '../../cli/cluster.ts';
import { parseKeyring } from '../../machines/keyring-text.ts';
import type { EntityName, LeaderHint, Message } from '../../transport/messages.ts';
import { Messenger } from '../../transport/messenger.ts';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cliMain = join(repoRoot, 'cli/main.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function paxmon(args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', cliMain, ...args],
      { cwd: repoRoot, timeout: timeoutMs },
      (error, stdout, stderr) => {
        const code = error
          ? typeof (error as { code?: unknown }).code === 'number'
            ? (error as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Start `paxmon mon --dir DIR` detached, exactly as `paxmon up` does; returns its pid. */
export const spawnMon = (dir: string): number => spawnMonitor(dir);

/**
 * `paxmon up --detach` of `size` monitors on consecutive ports from `port` (30 s to form), with
 * `extraArgs` for `up` (e.g. `--set paxos_min=20`).
 */
export function upDetached(
  dir: string,
  port: number,
  size = 3,
  extraArgs: string[] = [],
): Promise<CliResult> {
  return paxmon([
    '--timeout',
    '30',
    'up',
    '--dir',
    dir,
    '--size',
    String(size),
    '--port',
    String(port),
    '--detach',
    ...extraArgs,
  ]);
}

/** `paxmon mkfs` of a one-monitor cluster: mon.a of `fsid` at 127.0.0.1:`port`, in `monDir`. */
export function mkfsSingle(monDir: string, port: number, fsid: string): Promise<CliResult> {
  return paxmon(['mkfs', '--dir', monDir, '--name', 'a', '--fsid', fsid, '--mon', `a=127.0.0.1:${port}`]);
}

/**
 * client.admin's key in a keyring directory: a cluster's DIR (paxmon up writes DIR/keyring) or a
 * monitor's data dir (mkfs writes DIR/keyring with mon. and client.admin).
 */
export function adminKey(dir: string): string {
  const entry = parseKeyring(readFileSync(join(dir, 'keyring'), 'utf8')).find(
    (e) => e.entity === 'client.admin',
  );
  if (!entry) throw new Error(`${join(dir, 'keyring')} has no client.admin key`);
  return entry.key;
}

/**
 * A client of the cluster in `dir` (client.admin's key) with a session name of its own choosing,
 * sending raw `mon.command` frames — its own tid and deadline, to the monitor it names — and
 * keeping every answer as it came (MonClient would retry, fail over and hide the hint).
 */
export function rawClient(dir: string, name: EntityName) {
  const messenger = new Messenger({
    name,
    fsid: anyFsid,
    reconnectMs: { initial: 20, max: 200 },
    auth: { entity: 'client.admin', secret: keySecret(adminKey(dir)) },
  });
  const acks: { from: EntityName; tid: number; r: number; rs: string; leader?: LeaderHint }[] = [];
  messenger.setHandlers({
    onMessage: (from: EntityName, message: Message) => {
      if (message.type !== 'mon.command_ack') return;
      const { tid, r, rs, leader } = message;
      acks.push({ from, tid, r, rs, ...(leader ? { leader } : {}) });
    },
  });
  return {
    acks,
    send(to: EntityName, addr: string, tid: number, cmd: string[], deadline: number) {
      messenger.send(to, { type: 'mon.command', tid, cmd, deadline }, addr);
    },
    close: () => messenger.close(),
  };
}

/** A keyring file with a fresh client.admin key no cluster knows: for commands that must fail before or at the handshake. */
export function strangerKeyring(): string {
  const file = join(tempDir('stranger'), 'keyring');
  writeFileSync(file, `[client.admin]\n\tkey = ${generateKey()}\n`, { mode: 0o600 });
  return file;
}

/** Temp dirs this spec process made: removed when it exits, pass or fail. */
const madeDirs = new Set<string>();

export function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `paxmon-${label}-`));
  if (madeDirs.size === 0)
    process.on('exit', () => {
      for (const made of madeDirs) rmSync(made, { recursive: true, force: true });
    });
  madeDirs.add(dir);
  return dir;
}

/**
 * The kernel's ephemeral range (ports it hands to outgoing connections). A port chosen inside it
 * can be taken by any client's connect() between the check and a monitor's listen, so test ports
 * come from below it.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 1024 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** A base port with `count` consecutive free ports on 127.0.0.1, below the ephemeral range. */
export async function freePorts(count: number): Promise<number> {
  const low = 10_000;
  const high = Math.max(low + 1000, ephemeralLow() - count);
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = low + Math.floor(Math.random() * (high - low));
    let ok = true;
    for (let i = 0; i < count && ok; i += 1) ok = await portFree(base + i);
    if (ok) return base;
  }
  throw new Error('no free port range found');
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Repeat `check` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function pollUntil<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  options: { intervalMs?: number; gaveUp?: () => string | undefined } = {},
): Promise<T> {
  const { intervalMs = 200, gaveUp } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    // The thing waited on cannot come any more (say, the process that would answer exited).
    const reason = gaveUp?.();
    if (reason !== undefined) throw new Error(`${what}: never reached: ${reason}`);
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `${what}: not reached within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`,
  );
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface QuorumStatus {
  election_epoch: number;
  quorum: number[];
  quorum_names: string[];
  quorum_leader_name: string;
}

/** Poll `paxmon quorum_status` on the local cluster in `dir` until a quorum of `size` (led by anyone but `notLeader`). */
export function waitForQuorum(
  dir: string,
  size: number,
  options: { notLeader?: string; timeoutMs?: number } = {},
): Promise<QuorumStatus> {
  return pollUntil(`a quorum of ${size}`, options.timeoutMs ?? 30_000, async () => {
    const r = await paxmon(['--dir', dir, '--format', 'json', '--timeout', '3', 'quorum_status']);
    if (r.code !== 0) return undefined;
    const q = JSON.parse(r.stdout) as QuorumStatus;
    if (q.quorum.length !== size || (options.notLeader && q.quorum_leader_name === options.notLeader))
      return undefined;
    return q;
  });
}
