// Three monitors in one process: a real paxmon cluster (TCP + RocksDB, one store per monitor)
// started in-process with startLocalCluster, its quorum printed, a command sent through a
// MonClient like any Ceph client, and every monitor stopped.
//
//   node --import tsx examples/three-monitors.ts [DIR]
//
// DIR (default: a temporary directory, removed at the end) is laid out as `paxmon up` lays it
// out, so while the example runs `npx paxmon --dir DIR quorum_status` answers too; run it again
// with the same DIR and the monitors start from their stores.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCluster } from 'paxmon';

const temporary = process.argv[2] === undefined;
const dir = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'paxmon-example-'));

// basePort 0: let the OS pick three free ports (a new cluster only; an existing one keeps its monmap).
const cluster = await startLocalCluster({ dir, size: 3, basePort: 0 });
try {
  console.log(
    `started ${cluster.monitors.length} monitors in ${dir}: ${cluster.mons.map((m) => `${m.name}@${m.addr}`).join(' ')}`,
  );

  // In-process: wait until one leader and a writeable quorum of all three.
  const quorum = await cluster.waitForQuorum({ timeoutMs: 30_000 });
  console.log(
    `quorum: election epoch ${quorum.election_epoch}, leader ${quorum.quorum_leader_name}, quorum ${quorum.quorum_names.join(',')}`,
  );

  // Each monitor's own view, straight from its actor tree.
  for (const mon of cluster.monitors) console.log(`mon.${mon.name}: ${mon.state()}`);

  // Over the wire, as any client would ask: Ceph's quorum_status via a MonClient.
  const client = cluster.client({ timeoutMs: 10_000 });
  try {
    const reply = await client.command(['quorum_status']);
    const status = JSON.parse(new TextDecoder().decode(reply.data)) as { quorum_names: string[] };
    console.log(`quorum_status over TCP: r=${reply.r} quorum_names=${status.quorum_names.join(',')}`);
  } finally {
    await client.close();
  }
} finally {
  await cluster.stop();
  if (temporary) rmSync(dir, { recursive: true, force: true });
  console.log('stopped');
}
