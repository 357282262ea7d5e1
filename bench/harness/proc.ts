// Processes and temp dirs the bench owns, and what /proc says about a process. Everything the
// bench starts is registered here, and cleanup() kills it (SIGKILL, by pid, only our own
// children) and removes the temp dirs: on normal exit, on an error, and on Ctrl-C / SIGTERM.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Owned {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or the signal's name) when the process has exited. */
  readonly exited: Promise<number | string>;
  exitedAt: number | null;
}

const children = new Set<Owned>();
const tempDirs = new Set<string>();
let installed = false;

/** Kill every live child we started and remove every temp dir; synchronous, idempotent. */
export function cleanup(): void {
  for (const owned of children) {
    if (owned.exitedAt === null) {
      try {
        process.kill(owned.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** Clean up on exit, on an uncaught error and on Ctrl-C / SIGTERM / SIGHUP. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(
        `\nbench: ${signal}, stopping every process it started and removing its temp dirs\n`,
      );
      cleanup();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (error) => {
    process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
    cleanup();
    process.exit(1);
  });
  process.on('unhandledRejection', (error) => {
    process.stderr.write(`bench: unhandled rejection: ${(error as Error)?.stack ?? String(error)}\n`);
    cleanup();
    process.exit(1);
  });
}

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * Start a long-running process with its stdout and stderr appended to `logFile`; with `pipes`,
 * its stdin and stdout are pipes to this process instead (only stderr goes to the file).
 */
export function startProcess(
  name: string,
  command: string,
  args: string[],
  options: { cwd: string; logFile: string; env?: NodeJS.ProcessEnv; pipes?: boolean },
): Owned {
  const log = openSync(options.logFile, 'a');
  const child = spawn(command, args, {
    cwd: options.cwd,
    stdio: options.pipes ? ['pipe', 'pipe', log] : ['ignore', log, log],
    env: options.env ?? process.env,
  });
  closeSync(log);
  if (!child.pid) throw new Error(`could not start ${name} (${command})`);
  const owned: Owned = {
    name,
    child,
    pid: child.pid,
    exitedAt: null,
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        owned.exitedAt = performance.now();
        resolve(code ?? signal ?? 'unknown');
      });
    }),
  };
  children.add(owned);
  return owned;
}

/** SIGTERM, a bounded wait, then SIGKILL; graceMs 0 sends SIGKILL at once. */
export async function stopProcess(owned: Owned, graceMs = 10_000): Promise<void> {
  if (owned.exitedAt === null && graceMs <= 0) {
    try {
      process.kill(owned.pid, 'SIGKILL');
    } catch {
      // gone
    }
    await owned.exited;
  } else if (owned.exitedAt === null) {
    try {
      process.kill(owned.pid, 'SIGTERM');
    } catch {
      // gone
    }
    const timedOut = await Promise.race([
      owned.exited.then(() => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(true), graceMs).unref()),
    ]);
    if (timedOut && owned.exitedAt === null) {
      try {
        process.kill(owned.pid, 'SIGKILL');
      } catch {
        // gone
      }
      await owned.exited;
    }
  }
  children.delete(owned);
}

/** The last lines of a log file (for an error message), or '' when there is none. */
export function tail(file: string, lines = 8): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines);
    return text.map((l) => `      | ${l.length > 300 ? `${l.slice(0, 300)}…` : l}`).join('\n');
  } catch {
    return '';
  }
}

export function killNow(owned: Owned): void {
  process.kill(owned.pid, 'SIGKILL');
}

/** Run a short command to completion (bounded); rejects with its output on a non-zero exit. */
export function runCommand(
  command: string,
  args: string[],
  options: { cwd: string; timeoutMs?: number },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code ?? signal}: ${out.trim()}`));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The full path of `command` on PATH (or in /usr/bin), or null. */
export function which(command: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const file = join(dir, command);
    if (existsSync(file)) return file;
  }
  return existsSync(`/usr/bin/${command}`) ? `/usr/bin/${command}` : null;
}

/**
 * `apt-get install -y` Debian packages (as root, or with passwordless sudo), with `apt-get update`
 * and a second try when the first fails; bounded to 10 minutes a step. Throws when it fails.
 */
export function aptInstall(packages: string[]): void {
  const asRoot = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const run = (args: string[]) => {
    const [command, ...rest] = [...asRoot, ...args] as [string, ...string[]];
    execFileSync(command, rest, {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 600_000,
    });
  };
  try {
    run(['apt-get', 'install', '-y', '-q', ...packages]);
  } catch {
    run(['apt-get', 'update', '-q']);
    run(['apt-get', 'install', '-y', '-q', ...packages]);
  }
}

/** `n` distinct free TCP ports on 127.0.0.1 (held open together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      const address = server.address();
      if (typeof address !== 'object' || address === null) throw new Error('no port');
      ports.push(address.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

// --- /proc ----------------------------------------------------------------------------------

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export interface Memory {
  /** VmRSS, bytes: the process and its live descendants (e.g. tsx's esbuild service). */
  rss: number;
  /** VmHWM, bytes: peak resident set since start, the process's own plus its live descendants'. */
  hwm: number;
}

function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces or parentheses: split after its closing parenthesis.
    // The result's index 0 is field 3 (state), so field N is at N - 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** `pid` and its live descendants (from each process's parent pid in /proc/N/stat). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(Number(entry))?.[1]);
    if (!Number.isInteger(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i] as number) ?? []));
  return out;
}

function ownMemory(pid: number): Memory | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : 0;
    };
    return { rss: field('VmRSS'), hwm: field('VmHWM') };
  } catch {
    return null;
  }
}

/** Resident memory of a live process and its descendants from /proc/PID/status, or null. */
export function memoryOf(pid: number): Memory | null {
  const own = ownMemory(pid);
  if (!own) return null;
  for (const child of processTree(pid).slice(1)) {
    const m = ownMemory(child);
    if (m) {
      own.rss += m.rss;
      own.hwm += m.hwm;
    }
  }
  return own;
}

/** User + system CPU seconds of a live process and its live descendants (utime + stime), or null. */
export function cpuSecondsOf(pid: number): number | null {
  let total = 0;
  for (const p of processTree(pid)) {
    const fields = statFields(p);
    if (!fields) {
      if (p === pid) return null;
      continue;
    }
    // utime is field 14, stime field 15.
    total += (Number(fields[11]) + Number(fields[12])) / clockTicks();
  }
  return total;
}
