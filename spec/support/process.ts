// Helpers for specs that run real paxmon processes: the CLI as a child process, free ports, and
// bounded polling (a check repeated until it holds or a deadline passes — never a fixed sleep).
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnMonitor } from '../../cli/cluster.ts';

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

/** `paxmon up --detach` of `size` monitors on consecutive ports from `port` (30 s to form). */
export function upDetached(dir: string, port: number, size = 3): Promise<CliResult> {
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
  ]);
}

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `paxmon-${label}-`));
}

/** A base port with `count` consecutive free ports on 127.0.0.1. */
export async function freePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
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
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
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
