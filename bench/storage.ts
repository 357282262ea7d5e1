// Synced applies per second on RocksDBStore, single-put transactions: one writer (every apply
// waits for its own fsync) against 64 concurrent writers (group commit: whatever queues during
// one synced batch goes out in the next). Each phase runs for a bounded time in a temp dir.
//   node --import tsx bench/storage.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RocksDBStore } from '../storage/rocksdb-store.ts';
import { Transaction } from '../storage/transaction.ts';
import { benchArgs } from './harness/args.ts';

benchArgs(
  'bench/storage.ts',
  'node --import tsx bench/storage.ts\nsynced single-put applies of RocksDBStore, 1 writer then 64 concurrent (no options)\n',
  {},
);

const phaseMs = 1500;
const value = new Uint8Array(128).fill(0x61);

async function phase(
  store: RocksDBStore,
  writers: number,
): Promise<{ appliesPerSecond: number; perBatch: number }> {
  const before = store.stats;
  const startMs = performance.now();
  const deadlineMs = startMs + phaseMs;
  let sequence = 0;
  const writer = async (): Promise<void> => {
    while (performance.now() < deadlineMs) {
      const key = `${writers}-${sequence++}`;
      await store.apply(new Transaction().put('bench', key, value));
    }
  };
  await Promise.all(Array.from({ length: writers }, writer));
  const elapsedMs = performance.now() - startMs;
  const after = store.stats;
  const applies = after.transactions - before.transactions;
  const batches = after.batches - before.batches;
  return { appliesPerSecond: (applies * 1000) / elapsedMs, perBatch: applies / Math.max(1, batches) };
}

const dir = await mkdtemp(join(tmpdir(), 'paxmon-bench-storage-'));
try {
  const store = await RocksDBStore.open(join(dir, 'store.db'), { create: true });
  try {
    console.log(`storage bench: synced single-put applies, ${phaseMs} ms per phase, store in ${dir}`);
    for (const writers of [1, 64]) {
      const { appliesPerSecond, perBatch } = await phase(store, writers);
      console.log(
        `  ${String(writers).padStart(2)} writer${writers === 1 ? ' ' : 's'}: ${Math.round(appliesPerSecond)} applies/s` +
          ` (${perBatch.toFixed(1)} transactions per synced batch)`,
      );
    }
  } finally {
    await store.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
