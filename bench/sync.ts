// Sync benchmark (issue 6): a 3-monitor cluster holding ~100 MB of config-key data, a fourth
// monitor added with `paxmon up --add 1`; the time from its start to its sync finishing gives
// MB/s, printed beside this disk's sequential write speed (fsync'd) measured in the same run.
//   node --import tsx bench/sync.ts [--mb 100]
import { execFile } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MonClient } from '../actors/mon-client.ts';
import { clientCredentials } from '../cli/client-commands.ts';
import { benchArgs } from './harness/args.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const { values: args } = benchArgs(
  'bench/sync.ts',
  'node --import tsx bench/sync.ts [--mb 100]\na store of about MB MiB synced to a new monitor\n',
  { mb: { type: 'string', default: '100' } },
);
const targetMb = Number(args.mb);
if (!(targetMb > 0)) {
  process.stderr.write(`bench/sync.ts: --mb ${args.mb}: not a positive number\n`);
  process.exit(2);
}
const valueBytes = 60 * 1024;

function paxmon(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(repo, 'cli/main.ts'), ...args],
      { cwd: repo, timeout: 120_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Sequential write speed of the disk under `dir`: 256 MiB in 4 MiB writes, fsync'd at the end. */
function diskWriteMBs(dir: string): number {
  const file = join(dir, 'seq.bin');
  const block = Buffer.alloc(4 * 1024 * 1024, 0x5a);
  const fd = openSync(file, 'w');
  const start = performance.now();
  for (let i = 0; i < 64; i += 1) writeSync(fd, block);
  fsyncSync(fd);
  const seconds = (performance.now() - start) / 1000;
  closeSync(fd);
  rmSync(file);
  return 256 / seconds;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'paxmon-bench-sync-'));
  const port = 30_000 + Math.floor(Math.random() * 20_000);
  try {
    const disk = diskWriteMBs(dir);
    const up = await paxmon([
      '--timeout',
      '30',
      'up',
      '--dir',
      dir,
      '--size',
      '3',
      '--port',
      String(port),
      '--detach',
    ]);
    if (up.code !== 0) throw new Error(`paxmon up failed: ${up.stderr}`);
    const cluster = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as {
      fsid: string;
      mons: { name: string; addr: string }[];
    };
    const client = new MonClient({
      mons: cluster.mons,
      fsid: cluster.fsid,
      timeoutMs: 60_000,
      key: clientCredentials({ dir }).key,
    });
    const count = Math.ceil((targetMb * 1024 * 1024) / valueBytes);
    const value = 'v'.repeat(valueBytes);
    let next = 0;
    const fillStart = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < count) {
          const i = next++;
          const reply = await client.command([
            'config-key',
            'set',
            `blob${String(i).padStart(6, '0')}`,
            value,
          ]);
          if (reply.r !== 0) throw new Error(reply.rs);
        }
      }),
    );
    const fillSeconds = (performance.now() - fillStart) / 1000;
    await client.close();

    const add = await paxmon(['up', '--dir', dir, '--add', '1']);
    if (add.code !== 0) throw new Error(`paxmon up --add failed: ${add.stderr}`);
    // The new monitor logs "sync finished" with the keys and bytes it copied.
    let finished: { keys: number; bytes: number; time: number } | undefined;
    let syncStart: number | undefined;
    const deadline = Date.now() + 300_000;
    while (!finished && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      let log = '';
      try {
        log = readFileSync(join(dir, 'd', 'log'), 'utf8');
      } catch {
        continue;
      }
      for (const line of log.split('\n')) {
        if (!line) continue;
        const entry = JSON.parse(line) as {
          msg?: string;
          time: number;
          keys?: number;
          bytes?: number;
          state?: string;
        };
        if (
          syncStart === undefined &&
          entry.state === 'synchronizing' &&
          entry.msg?.includes('synchronizing')
        )
          syncStart = entry.time;
        if (entry.msg?.endsWith('sync finished'))
          finished = { keys: entry.keys ?? 0, bytes: entry.bytes ?? 0, time: entry.time };
      }
    }
    if (!finished || syncStart === undefined)
      throw new Error('the new monitor did not finish its sync within 5 minutes');
    const seconds = (finished.time - syncStart) / 1000;
    const mb = finished.bytes / 1024 / 1024;
    console.log(
      `store: ${count} values of ${valueBytes / 1024} KiB (${((count * valueBytes) / 1048576).toFixed(0)} MiB) written in ${fillSeconds.toFixed(1)} s`,
    );
    console.log(
      `sync to a new monitor: ${finished.keys} keys, ${mb.toFixed(1)} MiB in ${seconds.toFixed(2)} s = ${(mb / seconds).toFixed(1)} MiB/s`,
    );
    console.log(`disk sequential write (fsync'd, same run): ${disk.toFixed(0)} MiB/s`);
    console.log(`sync speed / disk speed: ${((mb / seconds / disk) * 100).toFixed(0)}%`);
  } finally {
    await paxmon(['down', '--dir', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
