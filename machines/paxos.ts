// Paxos, in three parts a reader can take one at a time (see machines/paxos/context.ts):
// core.ts (collect/last/begin/accept/commit), lease.ts (the lease-token protocol) and
// status.ts (readable/writeable as tags). The statechart that runs them is the monitor's
// `inQuorum` state (machines/monitor.ts).
export * from './paxos/context.ts';
export * from './paxos/core.ts';
export * from './paxos/lease.ts';
export * from './paxos/status.ts';
