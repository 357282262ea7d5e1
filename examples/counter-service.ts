// Your own PaxosService: a replicated counter (examples/counter.ts: the template's hooks), run by
// a 3-monitor cluster in one process. `counter add N` is an update (Paxos); `counter get` a read.
//   node --import tsx examples/counter-service.ts
// The cluster lives in .paxmon-counter (in the current directory): run it again and the monitors
// start from their stores, the counter where it was (43, 45, 84 the second time).
import { type ServiceDefinition, startLocalCluster } from 'paxmon';
import { counter } from './counter.js';

const cluster = await startLocalCluster({
  dir: '.paxmon-counter',
  basePort: 0,
  services: [counter as ServiceDefinition],
});
try {
  await cluster.waitForQuorum();
  const client = cluster.client();
  for (const n of [1, 2, 39]) console.log((await client.command(['counter', 'add', String(n)])).rs);
  console.log(`counter get → ${new TextDecoder().decode((await client.command(['counter', 'get'])).data)}`);
  await client.close();
} finally {
  await cluster.stop();
}
