// What the bench ran on: cores, memory, the disk under the temp dir and its fdatasync rate,
// Node's version, and how busy the machine was.
import { execFileSync } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from './proc.ts';

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  disk: string;
  /** 4 KiB appends, each followed by fdatasync, per second (one writer, 1 s). */
  fdatasyncPerSec: number;
  node: string;
}

function diskOf(dir: string): string {
  try {
    const out = execFileSync('df', ['-T', '-h', dir], { encoding: 'utf8', timeout: 5000 }).trim().split('\n');
    const f = (out[1] ?? '').split(/\s+/);
    return `${f[0]} ${f[1]}, ${f[2]} (${f[5]} used)`;
  } catch {
    return 'unknown';
  }
}

export function fdatasyncRate(ms = 1000): number {
  const dir = makeTempDir('bench-fsync-');
  try {
    const fd = openSync(join(dir, 'wal'), 'w');
    const block = Buffer.alloc(4096, 0x61);
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < ms) {
      writeSync(fd, block);
      fdatasyncSync(fd);
      n++;
    }
    const elapsed = performance.now() - start;
    closeSync(fd);
    return (n * 1000) / elapsed;
  } finally {
    removeTempDir(dir);
  }
}

export function machine(): Machine {
  const list = cpus();
  return {
    cores: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    disk: diskOf(tmpdir()),
    fdatasyncPerSec: Math.round(fdatasyncRate()),
    node: process.version,
  };
}

export function load(): [number, number, number] {
  const [a = 0, b = 0, c = 0] = loadavg();
  return [Math.round(a * 100) / 100, Math.round(b * 100) / 100, Math.round(c * 100) / 100];
}

/** Fraction of the machine's CPU that was busy between two calls (all processes, /proc/stat). */
export function cpuBusySampler(): () => number {
  const read = () => {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.reduce((s, x) => s + x, 0);
    return { idle, total };
  };
  const a = read();
  return () => {
    const b = read();
    const total = b.total - a.total;
    return total > 0 ? 1 - (b.idle - a.idle) / total : Number.NaN;
  };
}
