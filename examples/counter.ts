// The README's replicated counter as a module of its own: examples/counter-service.ts runs it in a
// cluster, examples/counter.test.ts tests it with paxmon/testing. `counter add N` is an update
// (Paxos); `counter get` a read.
import type { ServiceDefinition } from 'paxmon';

export const counter: ServiceDefinition<{ value: number }, number> = {
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
