// Your own PaxosService: a replicated counter, in the template's hooks, run by a 3-monitor
// cluster in one process. `counter add N` is an update (Paxos); `counter get` a read.
//   node --import tsx examples/counter-service.ts
// The cluster lives in .paxmon-counter (in the current directory): run it again and the monitors
// start from their stores, the counter where it was (43, 45, 84 the second time).
import { type ServiceDefinition, startLocalCluster } from 'paxmon';

const counter: ServiceDefinition<{ value: number }, number> = {
  name: 'counter',
  prefix: 'counter', // its versions: counter/first_committed, counter/last_committed, counter/<N>
  handles: (cmd) => cmd[0] === 'counter',
  init: (loaded) => (loaded as { value: number } | null) ?? { value: 0 }, // restarted: its state as it was
  createInitial: () => 0,
  createPending: () => 0,
  preprocessQuery: (state, req) =>
    req.cmd[1] === 'get' ? { reply: { r: 0, rs: '', data: String(state.value) } } : null,
  prepareUpdate: (state, pending, req) => {
    const n = Number(req.cmd[2]);
    if (req.cmd[1] !== 'add' || !Number.isInteger(n))
      return { error: { r: -22, rs: 'usage: counter add N | counter get' } };
    return { pending: pending + n, reply: { r: 0, rs: `counter = ${state.value + pending + n}` } };
  },
  encodePending: (state, pending, version) => [
    { op: 'put', prefix: 'counter', key: String(version), value: String(state.value + pending) },
  ],
  updateFromPaxos: (state, ops, versions) => {
    const put = ops.find(
      (o) => o.op === 'put' && o.prefix === 'counter' && o.key === String(versions.lastCommitted),
    );
    return put?.op === 'put' ? { value: Number(new TextDecoder().decode(put.value)) } : state;
  },
};

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
