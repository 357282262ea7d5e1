// The workload process: the chaos run's clients as a host of their own. The runner starts it in the
// lab's client network namespace (`ip netns exec pm-cl-… node chaos-workload.mjs`, from the run's
// frozen bundle), so that the monitors see their clients come from another address on the bridge,
// as Jepsen's clients run on a control node of their own, and no partition between monitors cuts
// a client off (the lab's drops match monitors' addresses only: spec/support/netns.ts).
//
// The protocol, JSON lines (chaos/workload-process.ts is the other end):
//   stdin   line 1: the WorkloadConfig; then `stop`: stop starting ops, read every key once more,
//           exit. End of input without `stop` (the runner died or gave up): close and exit 2.
//   stdout  {type:'started', atMs, addresses} once the clients run; {type:'client', process,
//           session} for each client process; {type:'op', op} for each operation as it ends;
//           {type:'stopped', atMs} once no op is in flight; {type:'done', ops} after the final reads.
// Times are on the runner's clock (clockFrom: one CLOCK_MONOTONIC for both processes).
import { networkInterfaces } from 'node:os';
import { createInterface } from 'node:readline';
import { clockFrom, Workload, type WorkloadConfig, type WorkloadMessage } from './workload.ts';

const send = (message: WorkloadMessage): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`);
};

const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
let workload: Workload | undefined;
let config: WorkloadConfig | undefined;
let now: () => number = () => Number.NaN;
let stopping = false;

lines.on('line', (line) => {
  if (config === undefined) {
    config = JSON.parse(line) as WorkloadConfig;
    now = clockFrom(BigInt(config.originNs)).now;
    workload = new Workload({
      mons: config.mons,
      fsid: config.fsid,
      key: config.key,
      clients: config.clients,
      keys: config.keys,
      rate: config.rate,
      seed: config.seed,
      now,
      attemptTimeoutMs: config.attemptTimeoutMs,
      timeoutMs: config.timeoutMs,
      onOp: (op) => send({ type: 'op', op }),
      onClient: (proc, session) => send({ type: 'client', process: proc, session }),
    });
    // The host's own addresses, as its kernel has them: the runner records them in run.json.
    const addresses = Object.values(networkInterfaces())
      .flat()
      .filter((info) => info !== undefined && info.family === 'IPv4' && !info.internal)
      .map((info) => info?.address as string);
    send({ type: 'started', atMs: now(), addresses });
    workload.start();
  } else if (line.trim() === 'stop' && workload && !stopping) {
    stopping = true;
    const running = workload;
    const bound = config.finalReadsBoundMs;
    void (async () => {
      await running.stop();
      send({ type: 'stopped', atMs: now() });
      await running.finalReads(bound);
      send({ type: 'done', ops: running.history.length });
      lines.close();
      process.stdin.destroy();
    })();
  }
});

lines.on('close', () => {
  if (stopping) return;
  // The runner is gone without asking for the final reads: nothing to report to.
  void (async () => {
    await workload?.stop();
    process.exit(2);
  })();
});
