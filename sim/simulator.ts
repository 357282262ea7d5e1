// The deterministic simulator (TigerBeetle's VOPR, FoundationDB's simulation): one seed drives a
// whole paxmon cluster — the real monitor, elector and paxos statecharts and the real I/O actor,
// over the in-memory network and stores — through a safety phase full of faults, then a liveness
// phase in which the faults stop and the cluster must recover. The StateChecker
// (sim/invariants.ts) watches every step; the clients' history must be linearizable.
// The clients' workload (sim/workload.ts) is config-key's get/set/rm by default; paxmon's test
// kit (testing/) runs a user's own PaxosService and workload through this same simulator.
//
// Faults, all drawn from the seed: message delay, loss and duplication (links stay FIFO, as
// Ceph's monitor sessions are ordered: loss is modelled, reordering is not), symmetric partitions,
// one-way blocks, netsplits where one monitor still sees both sides, one-link blocks (two
// monitors cut from each other, both still reaching the rest: what Ceph's connectivity strategy
// is for), crashes (unsynced writes may be lost) with restarts over the same store, pauses (the monitor's timers and deliveries are held,
// then released) and per-monitor clock skew (sim/clock.ts).
//
// Time: the cluster's one SimClock. A step advances it to the next armed timer — at least
// `stepMs`, so events closer than that are handled together — then lets promise continuations
// run and checks the invariants. Nothing is skipped: between two timers nothing can happen. No
// real timer, no Date.now and no Math.random decides anything in a run.
import type { MonitorHandle } from '../actors/monitor.ts';
import type { MonConfig } from '../machines/config.ts';
import { isReadable, type PaxosContext, paxosStateName } from '../machines/paxos.ts';
import type { ServiceDefinition } from '../machines/paxos-service.ts';
import type { NetworkEvent } from '../transport/memory-network.ts';
import type { ElectionStrategy, EntityName, Message } from '../transport/messages.ts';
import type { Transport } from '../transport/transport.ts';
import { Adversary } from './adversary.ts';
import { SimClient } from './clients.ts';
import { drainMicrotasks, MonitorClock, nextDueAt } from './clock.ts';
import { SimCluster } from './cluster.ts';
import { Coverage } from './coverage.ts';
import { InvariantViolation, type LeaderInvariant, StateChecker } from './invariants.ts';
import { checkOperations, describeResult, type Operation } from './linearizability/index.ts';
import type { KvInput, KvOutput } from './linearizability/models.ts';
import { Prng } from './prng.ts';
import { stamp, Trace } from './trace.ts';
import { configKeyWorkload, isConfigKeyRead, type Workload } from './workload.ts';

export interface FaultOptions {
  /** Highest message loss probability; each seed draws its own in [0, this]. */
  dropRate: number;
  /** Highest duplication probability; each seed draws its own in [0, this]. */
  duplicateRate: number;
  /** Highest one-way delay; each seed draws its delay range within [1, this] ms. */
  delayMaxMs: number;
  /** Mean rates of each fault over the safety phase (each seed scales them by 0.25–1.5). */
  partitionsPerMinute: number;
  oneWayBlocksPerMinute: number;
  netsplitsPerMinute: number;
  crashesPerMinute: number;
  pausesPerMinute: number;
  /** Highest clock-rate deviation: each monitor's clock runs at 1 ± [0, this]. */
  clockSkew: number;
  /**
   * Mean rate of client stalls: one client's link to one monitor holds what the client sends for
   * 2–8 s and then delivers it, in order (a TCP connection that hung and recovered, with the
   * client's messenger still holding its queue) — requests arriving after their attempt timed out
   * and the client retried elsewhere.
   */
  clientStallsPerMinute: number;
  /**
   * Mean rate of one-link blocks: the link between two monitors is cut both ways while both still
   * reach every other monitor (Ceph's test_election blocked_connection_* scenarios), 200 ms–10 s.
   */
  linkBlocksPerMinute: number;
  /**
   * The adversary's actions per second in the safety phase (sim/adversary.ts): a keyless node and
   * a read-only insider replaying, reordering, altering and forging monitor messages and sending
   * updates their caps refuse. 0 leaves it out.
   */
  adversaryActionsPerSecond: number;
}

export interface SimulationOptions<Input = KvInput, Output = KvOutput> {
  seed: number;
  monitors: number;
  /** Length of the safety phase (faults on), simulated seconds. */
  seconds: number;
  /** Bound on the liveness phase: quorum, every client answered, final reads. */
  livenessSeconds: number;
  clients: number;
  /** Keys of the default workload (config-key's). */
  keys: number;
  /**
   * What the clients send and the model their history is checked against; default: config-key
   * get/set/rm over `keys` keys (configKeyWorkload).
   */
  workload?: Workload<unknown, Input, Output>;
  /** PaxosServices every monitor runs beside paxmon's own (an app's: paxmon/testing). */
  services?: ServiceDefinition[];
  /** The replay line of a result (default: the `npm run sim` command, replayCommand). */
  replay?: (options: SimulationOptions<Input, Output>) => string;
  /** Raw Paxos proposals per second sent to whoever leads (exercises Paxos without a service). */
  proposalsPerSecond: number;
  /** Events closer together than this are handled in one step (1 = millisecond resolution). */
  stepMs: number;
  faults: FaultOptions;
  /**
   * Monitor options over paxmon's defaults. A small paxos_min (`--paxos-min 30`) makes trimming
   * happen within a run — and with it, monitors that fall behind the trimmed history and need a
   * full store sync, which paxmon does not have yet (they can never rejoin: a liveness failure).
   */
  config?: Partial<MonConfig>;
  /** "One leader per election epoch" as stated, or the form Paxos needs (sim/invariants.ts). */
  leaders: LeaderInvariant;
  /** Trace lines printed for a failing seed. */
  traceLines: number;
  /** The election strategy mkfs writes into the monmap (default classic). */
  strategy?: ElectionStrategy;
  /** Monitors (by name) the monmap disallows as leaders (disallow and connectivity). */
  disallowedLeaders?: string[];
  /** Receives every trace line as it happens (`--verbose`). */
  echo?: (line: string) => void;
  /** Test hooks run at a simulated time (e.g. corrupt a store to prove the checker fires). */
  inject?: { atMs: number; run: (simulation: Simulation<Input, Output>) => void | Promise<void> }[];
}

export const defaultFaults: FaultOptions = {
  dropRate: 0.05,
  duplicateRate: 0.02,
  delayMaxMs: 20,
  partitionsPerMinute: 3,
  oneWayBlocksPerMinute: 2,
  netsplitsPerMinute: 1.5,
  crashesPerMinute: 3,
  pausesPerMinute: 2,
  clockSkew: 0.05,
  clientStallsPerMinute: 2,
  linkBlocksPerMinute: 2,
  adversaryActionsPerSecond: 2,
};

export const defaultSimulationOptions: Omit<SimulationOptions, 'seed'> = {
  monitors: 3,
  seconds: 120,
  livenessSeconds: 30,
  clients: 3,
  keys: 4,
  proposalsPerSecond: 0.5,
  stepMs: 2,
  faults: defaultFaults,
  leaders: 'strict',
  traceLines: 50,
};

export interface SimulationResult {
  seed: number;
  monitors: number;
  ok: boolean;
  /** The first invariant violated, or the simulator's own failure. */
  failure: { invariant: string; message: string; atMs: number } | null;
  hash: string;
  simulatedMs: number;
  steps: number;
  /** Highest last_committed reached. */
  lastCommitted: number;
  operations: number;
  unknownOperations: number;
  livenessMs: number | null;
  coverage: Coverage;
  traceTail: string[];
  replay: string;
  /** Cluster state when the run ended (or failed). */
  finalState: string;
}

type Phase = 'setup' | 'safety' | 'liveness' | 'done';

interface Block {
  from: EntityName;
  to: EntityName;
}

const names = (n: number) => Array.from({ length: n }, (_, i) => 'abcdefghijklmnopqrstuvwxyz'[i] as string);

export class Simulation<Input = KvInput, Output = KvOutput> {
  readonly options: SimulationOptions<Input, Output>;
  readonly cluster: SimCluster;
  readonly trace: Trace;
  readonly coverage = new Coverage();
  readonly checker: StateChecker;
  readonly workload: Workload<unknown, Input, Output>;
  readonly history: Operation<Input, Output>[] = [];
  readonly clocks = new Map<string, MonitorClock>();
  readonly clients: SimClient<Input, Output>[] = [];
  /** Commands the clients issued as reads (`\0`-joined): their answers need a valid lease. */
  readonly #reads = new Set<string>();
  readonly #root: Prng;
  #adversary: Adversary | undefined;
  readonly #faultPrng: Prng;
  readonly #names: string[];
  #phase: Phase = 'setup';
  #steps = 0;
  #actions: (() => void | Promise<void>)[] = [];
  readonly #blocks = new Map<number, Block[]>();
  /** Client links that hold what is sent on them for a while (client stalls), by fault id. */
  readonly #stalls = new Map<number, { from: EntityName; to: EntityName; delayMs: number }>();
  #faultId = 0;
  readonly #pauseToken = new Map<string, number>();
  #proposals = 0;
  #highestLastCommitted = 0;
  /** Detail of the message being sent right now, for the network's `send` line. */
  #sending: string | null = null;
  readonly #drawn: { dropRate: number; duplicateRate: number; delayMs: [number, number]; intensity: number };

  constructor(options: SimulationOptions<Input, Output>) {
    this.options = options;
    this.#names = names(options.monitors);
    this.#root = new Prng(options.seed);
    this.trace = new Trace(Math.max(options.traceLines, 1), options.echo);
    this.workload =
      options.workload ?? (configKeyWorkload(options.keys) as unknown as Workload<unknown, Input, Output>);
    this.checker = new StateChecker(
      () => this.cluster.clock.now(),
      this.coverage,
      options.leaders,
      (cmd) => isConfigKeyRead(cmd) || this.#reads.has(cmd.join('\0')),
    );
    const draw = this.#root.fork('sim.config');
    const f = options.faults;
    // A third of the seeds run with a perfect network, so the other faults are seen on their own.
    const lossy = draw.chance(2 / 3);
    const delayMaxMs = draw.int(1, Math.max(1, f.delayMaxMs));
    this.#drawn = {
      dropRate: lossy ? draw.next() * f.dropRate : 0,
      duplicateRate: lossy ? draw.next() * f.duplicateRate : 0,
      delayMs: [draw.int(0, Math.min(2, delayMaxMs)), delayMaxMs],
      intensity: 0.25 + draw.next() * 1.25,
    };
    const skew = this.#root.fork('sim.skew');
    // Simulated fsync latency: the longer, the more a crash finds unsynced.
    const syncDelayMs = draw.int(0, 10);
    this.#faultPrng = this.#root.fork('sim.faults');
    this.cluster = new SimCluster({
      size: options.monitors,
      seed: options.seed,
      config: options.config ?? {},
      faults: {
        delayMs: this.#drawn.delayMs,
        dropRate: this.#drawn.dropRate,
        duplicateRate: this.#drawn.duplicateRate,
        reorder: false,
      },
      syncDelayMs,
      onNetworkEvent: (event) => this.#onNetworkEvent(event),
      clockFor: (name, base) => {
        const rate = 1 + (skew.next() * 2 - 1) * f.clockSkew;
        const clock = new MonitorClock(name, base, rate);
        this.clocks.set(name, clock);
        return clock;
      },
      wrapTransport: (name, endpoint) => this.#wrap(name, endpoint),
      tap: (from, to, bytes) => this.#adversary?.record(from, to, bytes),
      ...(options.strategy ? { strategy: options.strategy } : {}),
      ...(options.disallowedLeaders ? { disallowedLeaders: options.disallowedLeaders } : {}),
      ...(options.services ? { services: options.services } : {}),
    });
  }

  get phase(): Phase {
    return this.#phase;
  }

  now(): number {
    return this.cluster.clock.now();
  }

  #line(text: string): void {
    this.trace.record(`${stamp(this.now())} ${text}`);
  }

  // --- running ---------------------------------------------------------------------------------

  async run(): Promise<SimulationResult> {
    const options = this.options;
    let failure: SimulationResult['failure'] = null;
    let livenessMs: number | null = null;
    const drawn = this.#drawn;
    this.#line(
      `seed ${options.seed}: ${options.monitors} monitors, delay ${drawn.delayMs[0]}–${drawn.delayMs[1]} ms, ` +
        `drop ${drawn.dropRate.toFixed(3)}, duplicate ${drawn.duplicateRate.toFixed(3)}, fault intensity ${drawn.intensity.toFixed(2)}, ` +
        `clock rates ${[...this.clocks.values()].map((c) => `${c.name}=${c.rate.toFixed(3)}`).join(' ')}`,
    );
    const guard = guardRealTimers();
    try {
      await this.cluster.mkfs();
      for (const name of this.#names) await this.start(name);
      this.#startClients();
      for (const hook of options.inject ?? []) {
        this.cluster.clock.setTimeout(
          () => this.#actions.push(() => hook.run(this)),
          Math.max(0, hook.atMs - this.now()),
        );
      }
      this.#phase = 'safety';
      this.#scheduleFault();
      this.#scheduleStall();
      this.#scheduleLinkBlock();
      this.#startAdversary();
      this.#scheduleProposal();
      const safetyEnd = this.now() + options.seconds * 1000;
      while (this.now() < safetyEnd) await this.#step(safetyEnd);
      livenessMs = await this.#liveness();
      this.#checkHistory();
      const armed = guard.armed();
      if (armed) {
        throw new InvariantViolation(
          'determinism',
          this.now(),
          `a real timer was armed during the run:\n${armed}`,
        );
      }
    } catch (error) {
      if (error instanceof InvariantViolation) {
        failure = { invariant: error.invariant, message: error.message, atMs: error.at };
      } else {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        failure = { invariant: 'simulator', message, atMs: this.now() };
      }
      this.#line(`FAILED ${failure.message.split('\n')[0]}`);
    }
    guard.restore();
    this.#phase = 'done';
    const finalState = this.describe();
    for (const client of this.clients) client.finish();
    await this.cluster.stopAll().catch(() => {});
    const stats = this.cluster.network.stats();
    this.coverage.mark('network: messages dropped (fault)', stats.dropped);
    this.coverage.mark('network: messages duplicated', stats.duplicated);
    this.coverage.mark('network: messages stopped by a block or partition', stats.blocked);
    this.coverage.mark('network: messages lost in a crash', stats.lost);
    this.#line(
      `end: ${failure ? 'FAILED' : 'ok'}, ${this.#steps} steps, highest last_committed ${this.#highestLastCommitted}`,
    );
    return {
      seed: options.seed,
      monitors: options.monitors,
      ok: failure === null,
      failure,
      hash: this.trace.hash(),
      simulatedMs: this.now(),
      steps: this.#steps,
      lastCommitted: this.#highestLastCommitted,
      operations: this.history.length,
      unknownOperations: this.history.filter((op) => op.output === undefined).length,
      livenessMs,
      coverage: this.coverage,
      traceTail: this.trace.last(options.traceLines),
      replay: (options.replay ?? replayCommand)(options),
      finalState,
    };
  }

  /** One step: to the next timer (at least stepMs on), run its effects, check everything. */
  async #step(limit: number): Promise<void> {
    const clock = this.cluster.clock;
    const now = clock.now();
    const due = nextDueAt(clock);
    // The next timer, but at least stepMs on (events closer than that are handled together).
    clock.set(Math.min(limit, Math.max(now + this.options.stepMs, due)));
    while (this.#actions.length) await (this.#actions.shift() as () => void | Promise<void>)();
    await drainMicrotasks();
    this.#steps++;
    this.checker.assertOk();
    for (const node of this.cluster.nodes) {
      if (!node.monitor) continue;
      // Most steps commit nothing: no store to read, and no await (a promise per monitor per step).
      if (!this.checker.scanDue(node.name)) continue;
      // A store being rewritten by a sync is checked once it is whole again (after the reload).
      const state = node.monitor.state();
      if (state === 'synchronizing' || state === 'reloading') continue;
      await this.checker.scan(node.name, node.store);
    }
    this.checker.assertOk();
  }

  /** Faults stop; everything comes back; one quorum of all, every client answered, final reads. */
  /** The adversary (sim/adversary.ts), from its own PRNG fork, for the safety phase. */
  #startAdversary(): void {
    const perSecond = this.options.faults.adversaryActionsPerSecond * this.#drawn.intensity;
    if (!(perSecond > 0)) return;
    this.#adversary = new Adversary({
      network: this.cluster.network,
      clock: this.cluster.clock,
      prng: this.#root.fork('sim.adversary'),
      monitors: this.#names,
      monmap: this.cluster.monmap,
      actionsPerSecond: perSecond,
    });
  }

  /** The adversary leaves at the end of the safety phase; none of its updates may have been allowed. */
  #stopAdversary(): void {
    const adversary = this.#adversary;
    if (!adversary) return;
    adversary.stop();
    const s = adversary.stats;
    this.coverage.mark('adversary: message replayed or forged', s.sentKeyed + s.sentKeyless);
    this.coverage.mark('adversary: command denied (EACCES)', s.commandsDenied);
    this.#line(
      `adversary: ${s.sentKeyed} messages with a client key, ${s.sentKeyless} without a key, ${s.recorded} recorded; ` +
        `${s.commandsDenied} commands denied, ${s.commandsAllowed} allowed (reads)`,
    );
    if (s.updatesAllowed > 0) {
      throw new InvariantViolation(
        'caps',
        this.now(),
        `${s.updatesAllowed} update(s) of the read-only adversary were allowed`,
      );
    }
  }

  async #liveness(): Promise<number> {
    this.#stopAdversary();
    this.#phase = 'liveness';
    const start = this.now();
    const deadline = start + this.options.livenessSeconds * 1000;
    this.#blocks.clear();
    this.#stalls.clear();
    this.cluster.network.heal();
    this.cluster.network.setFaults({ dropRate: 0, duplicateRate: 0 });
    this.#line('liveness: faults stop, the network heals, paused monitors resume, crashed ones restart');
    for (const [name, clock] of this.clocks) {
      if (clock.paused) {
        this.#pauseToken.delete(name);
        this.#resume(name);
      }
    }
    for (const node of this.cluster.nodes) if (!node.monitor) await this.start(node.name);
    for (const client of this.clients) client.stopIssuing();
    let finalReads = false;
    for (;;) {
      const converged = this.#converged();
      const idle = this.clients.every((c) => !c.busy);
      if (converged && idle) {
        if (finalReads) break;
        // Everything read once more: an acknowledged write that was lost shows up here.
        for (const [i, op] of this.workload.finalReads().entries()) {
          this.clients[i % this.clients.length]?.enqueue(op);
        }
        finalReads = true;
        this.#line(
          `liveness: quorum stable, clients answered; ${this.workload.finalReadsLine ?? 'running the final reads'}`,
        );
        if (this.clients.length === 0) break;
      }
      if (this.now() >= deadline) {
        const pending = this.clients.flatMap((c) => c.describePending() ?? []);
        throw new InvariantViolation(
          'liveness',
          this.now(),
          `${this.options.livenessSeconds} s after the faults stopped: ` +
            (converged ? 'the quorum is stable' : 'no stable quorum of every monitor') +
            (pending.length ? `; clients still waiting: ${pending.join('; ')}` : '') +
            (finalReads ? '' : '; final reads not issued') +
            `; ${this.describe()}`,
        );
      }
      await this.#step(deadline);
    }
    const took = this.now() - start;
    this.#line(`liveness: done in ${took} ms`);
    return took;
  }

  /** One quorum of every monitor, led by one leader, everyone active at the same last_committed. */
  #converged(): boolean {
    if (!this.cluster.stableQuorum(this.options.monitors)) return false;
    let lastCommitted: number | undefined;
    for (const node of this.cluster.nodes) {
      const context = paxosContext(node.monitor);
      if (!context) return false;
      if (lastCommitted === undefined) lastCommitted = context.lastCommitted;
      else if (context.lastCommitted !== lastCommitted) return false;
    }
    return true;
  }

  #checkHistory(): void {
    const model = this.workload.model;
    const result = checkOperations(model, this.history);
    this.coverage.mark('history: operations checked', this.history.length);
    if (result.result === 'ok') return;
    const detail = describeResult(model, result);
    throw new InvariantViolation(
      result.result === 'illegal' ? 'linearizable client history' : 'linearizability check inconclusive',
      this.now(),
      detail,
    );
  }

  // --- monitors ------------------------------------------------------------------------------

  /** Start (or restart, over its store) one monitor, watched by the checker. */
  async start(name: string): Promise<void> {
    const monitor = await this.cluster.start(name);
    this.#observe(name, monitor);
  }

  /** kill -9 one monitor: unsynced writes may be lost (MemoryStore.crash). */
  async crash(name: string): Promise<void> {
    const node = this.cluster.node(name);
    if (!node.monitor) return;
    if (node.store.pendingCount > 0) this.coverage.mark('crash with unsynced writes');
    this.#pauseToken.delete(name);
    this.checker.onCrash(name);
    await this.cluster.crash(name);
    this.clocks.get(name)?.clear();
  }

  #observe(name: string, monitor: MonitorHandle, how = 'started'): void {
    const actor = monitor.actor;
    const current = () =>
      this.#phase !== 'done' && monitor.actor === actor && this.cluster.node(name).monitor === monitor;
    const initial = paxosContext(monitor);
    this.checker.onStart(
      name,
      initial?.firstCommitted ?? 0,
      initial?.lastCommitted ?? 0,
      initial?.uncommitted ?? null,
    );
    if (initial?.uncommitted) this.coverage.mark('monitor restarted holding an uncommitted value');
    this.#line(
      `mon.${name} ${how}: first_committed ${initial?.firstCommitted ?? 0}, last_committed ${initial?.lastCommitted ?? 0}`,
    );
    let last = '';
    // What `last` was built from: a snapshot with the same three builds the same line (most
    // snapshots change neither), so it is built only when one of them changed.
    let lastState = '';
    let lastEpoch = -1;
    let lastQuorum: number[] | null = null;
    const onRoot = () => {
      if (!current()) return;
      const snapshot = actor.getSnapshot() as {
        context: { electionEpoch: number; quorum: number[]; lastBootstrapReason: string };
      };
      const state = monitor.state();
      const context = snapshot.context;
      if (state === 'leader') this.checker.onLeader(name, context.electionEpoch);
      // disallow and connectivity: a monitor the monmap disallows never leads (the monmap the
      // simulator wrote; no spec changes it during a run).
      if (state === 'leader' && this.options.disallowedLeaders?.includes(name))
        this.checker.fail(
          'a disallowed monitor never leads',
          `mon.${name} leads epoch ${context.electionEpoch}`,
        );
      if (state === lastState && context.electionEpoch === lastEpoch && context.quorum === lastQuorum) return;
      lastState = state;
      lastEpoch = context.electionEpoch;
      lastQuorum = context.quorum;
      const line = `${state} e${context.electionEpoch} q[${context.quorum.join(',')}]`;
      if (line === last) return;
      last = line;
      if (state === 'probing') {
        this.coverage.mark(`bootstrap: ${context.lastBootstrapReason.replace(/\d+/g, 'N')}`);
        this.#line(`mon.${name} ${line} (${context.lastBootstrapReason})`);
        return;
      }
      if (state === 'leader' && context.quorum.length < this.options.monitors) {
        this.coverage.mark('election won with a partial quorum');
      }
      if (state === 'synchronizing') this.coverage.mark('monitor decided to sync');
      // A full sync's end: the same actor reloads its state from the synced store (Ceph's
      // sync_finish → init_paxos), then bootstraps.
      if (state === 'reloading') this.coverage.mark('monitor reloaded over a synced store');
      this.#line(`mon.${name} ${line}`);
    };
    // A hook that throws (a service's, say) stops the monitor's actor tree: a failure of the run,
    // reported with its stack (without an error listener XState would rethrow it in a real timer).
    const onError = (error: unknown) => {
      if (this.#phase === 'done') return;
      const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
      this.checker.fail(
        "a monitor's actors never fail",
        `mon.${name}'s actor tree stopped on an error: ${stack.split('\n').slice(0, 12).join('\n')}`,
      );
    };
    actor.subscribe({ next: onRoot, error: onError });
    onRoot();
    let lastPaxos = '';
    // What `lastPaxos` was built from (as for `last` above).
    let lastRound = '';
    let lastFirst = -1;
    let lastLast = -1;
    let lastReadable = false;
    const onPaxos = () => {
      if (!current()) return;
      const snapshot = actor.getSnapshot() as Parameters<typeof isReadable>[0] & {
        value: unknown;
        context: { paxos: PaxosContext };
      };
      const context = snapshot.context.paxos;
      const readable = isReadable(snapshot);
      this.checker.onPaxos(name, context.firstCommitted, context.lastCommitted, readable);
      if (context.lastCommitted > this.#highestLastCommitted)
        this.#highestLastCommitted = context.lastCommitted;
      const state = paxosStateName(snapshot);
      if (recoveredStates.has(state) && monitor.state() === 'leader') {
        this.checker.onLeaderRecovered(name, context.electionEpoch);
      }
      if (
        state === lastRound &&
        context.firstCommitted === lastFirst &&
        context.lastCommitted === lastLast &&
        readable === lastReadable
      )
        return;
      lastRound = state;
      lastFirst = context.firstCommitted;
      lastLast = context.lastCommitted;
      lastReadable = readable;
      const line = `${state} fc ${context.firstCommitted} lc ${context.lastCommitted}${readable ? ' readable' : ''}`;
      if (line === lastPaxos) return;
      if (!lastPaxos.startsWith(state)) {
        if (state === 'updating_previous' || state === 'writing_previous')
          this.coverage.mark(`paxos ${state}`);
        if (state === 'recovering' && context.collectAbovePn > 0)
          this.coverage.mark('paxos collect again (higher pn)');
      }
      if (context.firstCommitted > 1 && !lastPaxos.includes(` fc ${context.firstCommitted} `)) {
        this.coverage.mark('paxos trimmed (first_committed moved)');
      }
      lastPaxos = line;
      this.#line(`mon.${name} paxos ${line}`);
    };
    actor.subscribe({ next: onPaxos, error: () => {} });
    onPaxos();
  }

  /** The monitor's endpoint as the monitor sees it: sends are checked and traced; deliveries held while paused. */
  #wrap(name: string, endpoint: Transport): Transport {
    const clock = this.clocks.get(name);
    return {
      name: endpoint.name,
      send: (to, message, addr) => {
        this.checker.onSend(name, to, message);
        this.#sending = summarize(message);
        try {
          endpoint.send(to, message, addr);
        } finally {
          this.#sending = null;
        }
      },
      setHandlers: (handlers) => {
        const run = (fn: () => void) => (clock ? clock.run(fn) : fn());
        endpoint.setHandlers({
          onMessage: (from, message, session) =>
            run(() => {
              if (message.type === 'mon.command') {
                this.checker.onRequest(name, from, message.tid);
              }
              handlers.onMessage(from, message, session);
            }),
          onReset: (peer) => run(() => handlers.onReset?.(peer)),
        });
      },
      close: () => endpoint.close(),
    };
  }

  #onNetworkEvent(event: NetworkEvent): void {
    if (this.#phase === 'done') return; // the shutdown after the run is not part of it
    let line = `${event.kind} ${event.from} → ${event.to}`;
    if (event.kind !== 'reset') {
      line += ` ${event.type}`;
      if (event.kind === 'send' && this.#sending) line += ` ${this.#sending}`;
      if (event.kind === 'drop') line += ` (${event.reason})`;
    }
    this.trace.record(`${stamp(event.at)} ${line}`);
  }

  // --- faults --------------------------------------------------------------------------------

  #scheduleFault(): void {
    const f = this.options.faults;
    const perMinute =
      (f.partitionsPerMinute +
        f.oneWayBlocksPerMinute +
        f.netsplitsPerMinute +
        f.crashesPerMinute +
        f.pausesPerMinute) *
      this.#drawn.intensity;
    if (!(perMinute > 0)) return;
    const meanMs = 60_000 / perMinute;
    this.cluster.clock.setTimeout(
      () => {
        if (this.#phase !== 'safety') return;
        this.#actions.push(() => this.#injectFault());
        this.#scheduleFault();
      },
      this.#faultPrng.int(0, Math.round(2 * meanMs)),
    );
  }

  async #injectFault(): Promise<void> {
    if (this.#phase !== 'safety') return;
    const f = this.options.faults;
    const prng = this.#faultPrng;
    const kinds: [string, number][] = [
      ['partition', f.partitionsPerMinute],
      ['one-way', f.oneWayBlocksPerMinute],
      ['netsplit', this.options.monitors >= 3 ? f.netsplitsPerMinute : 0],
      ['crash', f.crashesPerMinute],
      ['pause', f.pausesPerMinute],
    ];
    const total = kinds.reduce((sum, [, weight]) => sum + weight, 0);
    let draw = prng.next() * total;
    let kind = 'partition';
    for (const [name, weight] of kinds) {
      if (draw < weight) {
        kind = name;
        break;
      }
      draw -= weight;
    }
    const durationMs = prng.int(200, 10_000);
    const mons = this.#names.map((n) => `mon.${n}` as EntityName);
    switch (kind) {
      case 'partition': {
        const shuffled = shuffle(prng, mons);
        const cut = prng.int(1, mons.length - 1);
        const a = shuffled.slice(0, cut);
        const b = shuffled.slice(cut);
        this.#block(both(a, b), `partition ${list(a)} | ${list(b)}`, durationMs);
        return;
      }
      case 'one-way': {
        const from = prng.pick(mons);
        const to = prng.pick(mons.filter((m) => m !== from));
        this.#block([{ from, to }], `one-way block ${from} ↛ ${to}`, durationMs);
        return;
      }
      case 'netsplit': {
        const bridge = prng.pick(mons);
        const rest = shuffle(
          prng,
          mons.filter((m) => m !== bridge),
        );
        const cut = prng.int(1, rest.length - 1);
        const a = rest.slice(0, cut);
        const b = rest.slice(cut);
        this.#block(both(a, b), `netsplit ${list(a)} | ${list(b)}, ${bridge} sees both`, durationMs);
        return;
      }
      case 'crash': {
        const running = this.cluster.nodes.filter((n) => n.monitor).map((n) => n.name);
        if (running.length === 0) return;
        const name = prng.pick(running);
        await this.crash(name);
        this.#line(`fault: crash mon.${name}, restart in ${durationMs} ms`);
        this.cluster.clock.setTimeout(() => {
          this.#actions.push(async () => {
            if (this.#phase !== 'safety' || this.cluster.node(name).monitor) return;
            this.#line(`fault: restart mon.${name}`);
            await this.start(name);
          });
        }, durationMs);
        return;
      }
      case 'pause': {
        const running = this.cluster.nodes
          .filter((n) => n.monitor && !this.clocks.get(n.name)?.paused)
          .map((n) => n.name);
        if (running.length === 0) return;
        const name = prng.pick(running);
        const pauseMs = prng.int(100, 6_000);
        const token = (this.#pauseToken.get(name) ?? 0) + 1;
        this.#pauseToken.set(name, token);
        this.clocks.get(name)?.pause();
        this.#line(`fault: pause mon.${name} for ${pauseMs} ms`);
        this.cluster.clock.setTimeout(() => {
          this.#actions.push(() => {
            if (this.#pauseToken.get(name) !== token) return;
            this.#pauseToken.delete(name);
            this.#resume(name);
          });
        }, pauseMs);
        return;
      }
    }
  }

  #resume(name: string): void {
    const clock = this.clocks.get(name);
    if (!clock?.paused) return;
    const held = clock.heldCount;
    if (held > 0) this.coverage.mark('pause: held timers and messages released on resume');
    this.#line(`fault: resume mon.${name} (${held} held timers and messages)`);
    clock.resume();
  }

  #block(links: Block[], description: string, durationMs: number): void {
    const id = ++this.#faultId;
    this.#blocks.set(id, links);
    this.#applyBlocks();
    this.#line(`fault: ${description} for ${durationMs} ms`);
    this.cluster.clock.setTimeout(() => {
      if (!this.#blocks.delete(id)) return;
      this.#applyBlocks();
      this.#line(`fault: healed ${description}`);
    }, durationMs);
  }

  #applyBlocks(): void {
    const network = this.cluster.network;
    network.heal();
    for (const { from, to, delayMs } of this.#stalls.values())
      network.setLink(from, to, { delayMs: [delayMs, delayMs] });
    for (const links of this.#blocks.values()) {
      for (const { from, to } of links) network.setLink(from, to, { blocked: true });
    }
  }

  /**
   * Client stalls, drawn from their own PRNG and timers so that adding them left the other
   * faults' draws as they were.
   */
  #scheduleStall(): void {
    const perMinute = this.options.faults.clientStallsPerMinute * this.#drawn.intensity;
    if (!(perMinute > 0) || this.options.clients === 0) return;
    const prng = this.#root.fork('sim.stalls');
    const meanMs = 60_000 / perMinute;
    const next = () => {
      this.cluster.clock.setTimeout(
        () => {
          if (this.#phase !== 'safety') return;
          const client = prng.pick(this.clients);
          const to = `mon.${prng.pick(this.#names)}` as EntityName;
          const delayMs = prng.int(2_000, 8_000);
          const durationMs = prng.int(200, 5_000);
          const id = ++this.#faultId;
          this.#stalls.set(id, { from: client.name, to, delayMs });
          this.#applyBlocks();
          const description = `stall ${client.name} → ${to} (${delayMs} ms)`;
          this.#line(`fault: ${description} for ${durationMs} ms`);
          this.coverage.mark('client stall');
          this.cluster.clock.setTimeout(() => {
            if (!this.#stalls.delete(id)) return;
            this.#applyBlocks();
            this.#line(`fault: healed ${description}`);
          }, durationMs);
          next();
        },
        prng.int(0, Math.round(2 * meanMs)),
      );
    };
    next();
  }

  /**
   * One-link blocks, drawn from their own PRNG and timers (as client stalls) so that adding them
   * left the other faults' draws as they were.
   */
  #scheduleLinkBlock(): void {
    const perMinute = this.options.faults.linkBlocksPerMinute * this.#drawn.intensity;
    if (!(perMinute > 0) || this.options.monitors < 3) return;
    const prng = this.#root.fork('sim.links');
    const meanMs = 60_000 / perMinute;
    const next = () => {
      this.cluster.clock.setTimeout(
        () => {
          if (this.#phase !== 'safety') return;
          const mons = this.#names.map((n) => `mon.${n}` as EntityName);
          const a = prng.pick(mons);
          const b = prng.pick(mons.filter((m) => m !== a));
          const durationMs = prng.int(200, 10_000);
          this.coverage.mark('one-link block');
          this.#block(
            [
              { from: a, to: b },
              { from: b, to: a },
            ],
            `link block ${a} ↮ ${b}`,
            durationMs,
          );
          next();
        },
        prng.int(0, Math.round(2 * meanMs)),
      );
    };
    next();
  }

  // --- workload ------------------------------------------------------------------------------

  #startClients(): void {
    for (let id = 1; id <= this.options.clients; id++) {
      const client = new SimClient({
        id,
        network: this.cluster.network,
        clock: this.cluster.clock,
        prng: this.#root.fork(`sim.client.${id}`),
        monitors: this.#names,
        workload: this.workload,
        onRead: (cmd) => this.#reads.add(cmd.join('\0')),
        thinkMs: [100, 1500],
        attemptTimeoutMs: 1_500,
        retryBackoffMs: 100,
        deadlineMs: 30_000,
        history: this.history,
        trace: (text) => this.#line(text),
        coverage: this.coverage,
      });
      this.clients.push(client);
      client.start();
    }
  }

  /** Raw Paxos proposals to whoever leads now: commits to check even without a service. */
  #scheduleProposal(): void {
    const rate = this.options.proposalsPerSecond;
    if (!(rate > 0)) return;
    const prng = this.#root.fork('sim.proposals');
    const tick = () => {
      this.cluster.clock.setTimeout(
        () => {
          if (this.#phase !== 'safety') return;
          this.#propose();
          tick();
        },
        prng.int(0, Math.round(2000 / rate)),
      );
    };
    tick();
  }

  #propose(): void {
    for (const node of this.cluster.nodes) {
      const monitor = node.monitor;
      if (monitor?.state() !== 'leader') continue;
      const n = ++this.#proposals;
      const ops = [
        {
          op: 'put' as const,
          prefix: 'simulator',
          key: `p${n}`,
          value: `proposal ${n} via mon.${node.name}`,
        },
      ];
      this.#line(`propose p${n} at mon.${node.name}`);
      // Held like a message if the leader is paused: a paused process accepts nothing.
      const clock = this.clocks.get(node.name);
      const send = () => monitor.actor.send({ type: 'paxos.propose', id: `sim-p${n}`, ops, replies: [] });
      if (clock) clock.run(send);
      else send();
    }
  }

  // --- reporting -----------------------------------------------------------------------------

  describe(): string {
    const paused = [...this.clocks.values()].filter((c) => c.paused).map((c) => c.name);
    return `${this.cluster.describe()}${paused.length ? `; paused: ${paused.join(',')}` : ''}`;
  }
}

/**
 * Catch a real timer armed while a run is in progress: it would make the run depend on wall time
 * (the timer still runs — the run fails afterwards, naming where it was armed). setImmediate stays
 * free: drainMicrotasks uses it, and it does not depend on time. (XState's scheduler stamps
 * Date.now() on delayed events and may name them with Math.random(); neither decides anything.)
 */
function guardRealTimers(): { armed(): string | null; restore(): void } {
  const original = { setTimeout: globalThis.setTimeout, setInterval: globalThis.setInterval };
  let first: string | null = null;
  const watch = <F extends (...args: never[]) => unknown>(name: string, fn: F): F =>
    ((...args: Parameters<F>) => {
      first ??= `${name}: ${new Error().stack?.split('\n').slice(2, 8).join('\n') ?? ''}`;
      return fn(...args);
    }) as F;
  globalThis.setTimeout = watch('setTimeout', original.setTimeout) as typeof setTimeout;
  globalThis.setInterval = watch('setInterval', original.setInterval) as typeof setInterval;
  return {
    armed: () => first,
    restore() {
      globalThis.setTimeout = original.setTimeout;
      globalThis.setInterval = original.setInterval;
    },
  };
}

/** Paxos states a leader reaches only once every quorum member answered its collect. */
const recoveredStates = new Set(['active', 'updating', 'writing', 'refresh']);

function paxosContext(monitor: MonitorHandle | null): PaxosContext | undefined {
  return (monitor?.actor.getSnapshot() as { context: { paxos: PaxosContext } } | undefined)?.context.paxos;
}

function both(a: EntityName[], b: EntityName[]): Block[] {
  const links: Block[] = [];
  for (const x of a) {
    for (const y of b) {
      links.push({ from: x, to: y }, { from: y, to: x });
    }
  }
  return links;
}

function shuffle<T>(prng: Prng, items: readonly T[]): T[] {
  const copy = items.slice();
  for (let i = copy.length - 1; i > 0; i--) {
    const j = prng.int(0, i);
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

function list(entities: EntityName[]): string {
  return `{${entities.map((e) => e.slice(4)).join(',')}}`;
}

/** A message in a few words for the trace. */
export function summarize(message: Message): string {
  switch (message.type) {
    case 'mon.paxos': {
      const versions = message.values.map((v) => v.version);
      return `${message.op} e${message.electionEpoch} pn ${message.pn} lc ${message.lastCommitted}${versions.length ? ` v[${versions.length > 3 ? `${versions[0]}…${versions[versions.length - 1]}` : versions.join(',')}]` : ''}`;
    }
    case 'mon.election':
      return `${message.op} e${message.epoch}${message.quorum.length ? ` q[${message.quorum.join(',')}]` : ''}`;
    case 'mon.ping':
      return `${message.op} ${message.op === 'ping' ? message.stamp : message.echo}${message.scoring ? ' scores' : ''}`;
    case 'mon.probe':
      return `${message.op} lc ${message.paxosLastVersion} q[${message.quorum.join(',')}]`;
    case 'mon.command_ack':
      return `tid ${message.tid} r=${message.r}`;
    case 'mon.command':
      return `tid ${message.tid} ${message.cmd.join(' ')}`;
    default:
      return '';
  }
}

/** The exact command that replays a run: every option that differs from the defaults. */
export function replayCommand<Input, Output>(options: SimulationOptions<Input, Output>): string {
  const d = defaultSimulationOptions;
  const parts = [`npm run sim -- --seed ${options.seed} --monitors ${options.monitors}`];
  if (options.seconds !== d.seconds) parts.push(`--seconds ${options.seconds}`);
  if (options.livenessSeconds !== d.livenessSeconds)
    parts.push(`--liveness-seconds ${options.livenessSeconds}`);
  if (options.clients !== d.clients) parts.push(`--clients ${options.clients}`);
  if (options.keys !== d.keys) parts.push(`--keys ${options.keys}`);
  if (options.proposalsPerSecond !== d.proposalsPerSecond)
    parts.push(`--proposals-per-second ${options.proposalsPerSecond}`);
  if (options.stepMs !== d.stepMs) parts.push(`--step-ms ${options.stepMs}`);
  if (options.leaders !== d.leaders) parts.push(`--leaders ${options.leaders}`);
  if (options.strategy && options.strategy !== 'classic') parts.push(`--strategy ${options.strategy}`);
  if (options.disallowedLeaders?.length) parts.push(`--disallow ${options.disallowedLeaders.join(',')}`);
  for (const [key, flag] of configFlags) {
    const value = options.config?.[key];
    if (value !== undefined) parts.push(`--${flag} ${value}`);
  }
  for (const [key, flag] of faultFlags) {
    if (options.faults[key] !== d.faults[key]) parts.push(`--${flag} ${options.faults[key]}`);
  }
  return parts.join(' ');
}

/** Monitor options the command line can set (Ceph's names; counts, not times). */
export const configFlags: [keyof MonConfig, string][] = [
  ['paxosMin', 'paxos-min'],
  ['paxosTrimMin', 'paxos-trim-min'],
  ['paxosTrimMax', 'paxos-trim-max'],
  ['monSessionAnswersMax', 'mon-session-answers-max'],
];

/** Fault option ↔ command-line flag. */
export const faultFlags: [keyof FaultOptions, string][] = [
  ['dropRate', 'drop-rate'],
  ['duplicateRate', 'duplicate-rate'],
  ['delayMaxMs', 'delay-max-ms'],
  ['partitionsPerMinute', 'partitions-per-minute'],
  ['oneWayBlocksPerMinute', 'one-way-blocks-per-minute'],
  ['netsplitsPerMinute', 'netsplits-per-minute'],
  ['crashesPerMinute', 'crashes-per-minute'],
  ['pausesPerMinute', 'pauses-per-minute'],
  ['clockSkew', 'clock-skew'],
  ['clientStallsPerMinute', 'client-stalls-per-minute'],
  ['linkBlocksPerMinute', 'link-blocks-per-minute'],
  ['adversaryActionsPerSecond', 'adversary-actions-per-second'],
];

/** One line for a run: ok or FAILED, simulated and wall time, steps, commits, client operations. */
export function summary(result: SimulationResult, wallMs: number): string {
  const liveness = result.livenessMs === null ? '' : `, liveness ${(result.livenessMs / 1000).toFixed(1)} s`;
  return (
    `${result.ok ? 'ok' : 'FAILED'}: ${(result.simulatedMs / 1000).toFixed(1)} simulated s in ${(wallMs / 1000).toFixed(2)} s, ` +
    `${result.steps} steps, last_committed ${result.lastCommitted}, ${result.operations} client ops ` +
    `(${result.unknownOperations} unknown)${liveness}`
  );
}

/** A failed run's report: the invariant and what broke it, the cluster, the replay, the last trace lines. */
export function failureLines(result: SimulationResult): string[] {
  const failure = result.failure;
  if (!failure) return [];
  return [
    `  invariant: ${failure.invariant} (at ${(failure.atMs / 1000).toFixed(3)} s)`,
    ...failure.message.split('\n').map((line) => `  ${line}`),
    `  cluster:   ${result.finalState}`,
    `  replay:    ${result.replay}`,
    `  last ${result.traceTail.length} trace lines:`,
    ...result.traceTail.map((line) => `    ${line}`),
  ];
}

/** Run one seed. */
export function simulate<Input = KvInput, Output = KvOutput>(
  options: SimulationOptions<Input, Output>,
): Promise<SimulationResult> {
  return new Simulation(options).run();
}
