// Ceph's test_election.cc harness (src/test/mon/test_election.cc) on paxmon's simulated cluster:
// the real monitor, elector and paxos statecharts over the in-memory network.
//
// Ceph drives bare ElectionLogic objects in "timesteps" (every queued message is delivered, then
// every timer ticks; an election timer lasts 3 steps). Here a timestep is a third of
// mon_election_timeout of simulated time, and the monitors are whole: they probe before they
// elect, and their quorum must also become a Paxos quorum. Ceph's predicates, translated:
//
//   election_stable()      every monitor is in a quorum (leader or peon) with its elector at rest
//                          (no election timer armed) and no election message in flight
//   quorum_stable(n)       one leader, every member of its quorum agreeing on it, its epoch and its
//                          quorum, Paxos active, and nothing about it changed for the last n
//                          timesteps (Ceph's quorum need not hold every monitor either; `size`
//                          asks for one that does)
//   all_agree_on_leader()  every monitor names the same leader, and it is not disallowed
//   check_epoch_agreement  every elector is at the same election epoch
import * as assert from 'uvu/assert';
import { defaultConfig, type MonConfig } from '../../machines/config.ts';
import type { ConnectionTracker } from '../../machines/connection-tracker.ts';
import { SimCluster } from '../../sim/cluster.ts';
import type { ElectionStrategy, EntityName } from '../../transport/messages.ts';

export const timestepMs = Math.round(defaultConfig.monElectionTimeoutMs / 3);
/** Within a timestep, the cluster advances in slices this long (messages take 1–3 ms). */
const sliceMs = 5;

export interface ElectorView {
  value: string;
  context: { epoch: number; rank: number; tracker: ConnectionTracker };
}

export interface ScenarioOptions {
  size: number;
  seed: number;
  strategy?: ElectionStrategy;
  /** Ranks disallowed as leaders from mkfs on (Ceph's add_disallowed_leader). */
  disallowed?: number[];
  config?: Partial<MonConfig>;
}

export class ElectionScenario {
  readonly cluster: SimCluster;
  size: number;
  readonly disallowed: string[];
  #electionInFlight = 0;
  #lastChangeAt = 0;
  #lastKey = '';
  /** Simulated time the last quorum formed (Ceph's last_quorum_formed), or -1. */
  lastQuorumFormedAt = -1;
  /** The leader of the last quorum that formed (Ceph's last_leader), by name. */
  lastLeader = '';
  /** Stable quorums seen, as leader@epoch, in order. */
  readonly quorums: string[] = [];

  constructor(options: ScenarioOptions) {
    this.size = options.size;
    const names = 'abcdefghijklmnopqrstuvwxyz';
    this.disallowed = (options.disallowed ?? []).map((r) => names[r] as string);
    this.cluster = new SimCluster({
      size: options.size,
      seed: options.seed,
      ...(options.strategy ? { strategy: options.strategy } : {}),
      disallowedLeaders: this.disallowed,
      ...(options.config ? { config: options.config } : {}),
      onNetworkEvent: (event) => {
        if (event.kind === 'reset' || event.type !== 'mon.election') return;
        if (event.kind === 'send' || event.kind === 'duplicate') this.#electionInFlight++;
        else this.#electionInFlight--;
      },
    });
  }

  entity(rank: number): EntityName {
    return `mon.${this.cluster.nodes[rank]?.name}` as EntityName;
  }

  async mkfs(): Promise<void> {
    await this.cluster.mkfs();
  }

  async startOne(rank: number): Promise<void> {
    await this.cluster.start(this.cluster.nodes[rank]?.name ?? '?');
  }

  async startAll(): Promise<void> {
    await this.cluster.startAll();
  }

  blockBidirectional(a: number, b: number): void {
    this.cluster.network.setLink(this.entity(a), this.entity(b), { blocked: true });
    this.cluster.network.setLink(this.entity(b), this.entity(a), { blocked: true });
  }

  unblockBidirectional(a: number, b: number): void {
    this.cluster.network.setLink(this.entity(a), this.entity(b), { blocked: false });
    this.cluster.network.setLink(this.entity(b), this.entity(a), { blocked: false });
  }

  /**
   * A monitor removed from the monmap (`mon rm`) and stopped leaves the scenario: the ranks after
   * it move down one, as in the new map (Ceph's remove_elector).
   */
  removeNode(rank: number): void {
    this.cluster.nodes.splice(rank, 1);
    this.size -= 1;
  }

  /** Every running monitor calls an election (Ceph's trigger_new_election on every elector). */
  callElections(): void {
    for (const m of this.cluster.running()) m.actor.send({ type: 'monitor.start_election' });
  }

  electors(): ElectorView[] {
    return this.cluster.nodes.flatMap((n) =>
      n.monitor ? [n.monitor.actor.system.get('elector').getSnapshot() as ElectorView] : [],
    );
  }

  /** Ceph's election_stable(). */
  electionStable(): boolean {
    const running = this.cluster.running();
    if (running.length < this.size) return false;
    if (!running.every((m) => m.state() === 'leader' || m.state() === 'peon')) return false;
    // Ceph's election_stable() is "nobody has a timer running": a leader whose Paxos is still
    // recovering has one (its collect times out when the peons it won went to another leader).
    const recovering = running.some(
      (m) => (m.monStatus() as { paxos: { state: string } | null }).paxos?.state === 'recovering',
    );
    if (recovering) return false;
    return this.#electionInFlight === 0 && this.electors().every((e) => e.value === 'stable');
  }

  /** A quorum of `size` members (any, with 'any') has formed and held for `timesteps`. */
  quorumHeld(timesteps: number, size: number | 'any' = this.size): boolean {
    if (!this.cluster.stableQuorum(size === 'any' ? undefined : size)) return false;
    return this.cluster.clock.now() - this.#lastChangeAt >= timesteps * timestepMs;
  }

  /**
   * Ceph's quorum_stable(n) exactly: a quorum (of any size) is formed and has not changed for n
   * timesteps — or, if it is younger, the election is stable.
   */
  quorumStable(timesteps: number): boolean {
    if (!this.cluster.stableQuorum()) return false;
    return this.quorumHeld(timesteps, 'any') || this.electionStable();
  }

  /** Ceph's all_agree_on_leader(): one leader named by everyone, and not a disallowed one. */
  allAgreeOnLeader(): boolean {
    const leaders = new Set(
      this.cluster
        .running()
        .map((m) => (m.quorumStatus() as { quorum_leader_name: string }).quorum_leader_name),
    );
    if (leaders.size !== 1 || leaders.has('')) return false;
    return !this.disallowed.includes([...leaders][0] as string);
  }

  /** Ceph's check_epoch_agreement(). */
  epochsAgree(): boolean {
    return new Set(this.electors().map((e) => e.context.epoch)).size === 1;
  }

  leaderName(): string {
    const leaders = this.cluster.leaders();
    const status =
      leaders.length === 1 ? (leaders[0]?.quorumStatus() as { quorum_leader_name: string }) : null;
    return status?.quorum_leader_name ?? '';
  }

  epoch(): number {
    return this.electors()[0]?.context.epoch ?? 0;
  }

  /** What the quorum's members think, as one string: any change restarts the quorum_stable count. */
  #observe(): void {
    const leaders = this.cluster.leaders();
    let key = 'none';
    if (leaders.length === 1) {
      const q = leaders[0]?.quorumStatus() as { quorum: number[] };
      key = q.quorum
        .map((rank) => {
          const m = this.cluster.nodes[rank]?.monitor;
          if (!m) return 'down';
          const s = m.quorumStatus() as {
            election_epoch: number;
            quorum_leader_name: string;
            quorum: number[];
          };
          return `${m.state()}/${s.election_epoch}/${s.quorum_leader_name}/${s.quorum.join(',')}`;
        })
        .join(' ');
    } else if (leaders.length > 1) key = 'several';
    if (key !== this.#lastKey) {
      this.#lastKey = key;
      this.#lastChangeAt = this.cluster.clock.now();
    }
    if (this.cluster.stableQuorum() && this.#lastChangeAt > this.lastQuorumFormedAt) {
      this.lastQuorumFormedAt = this.#lastChangeAt;
      this.lastLeader = this.leaderName();
      this.quorums.push(`${this.lastLeader}@${this.epoch()}`);
    }
  }

  /**
   * Ceph's run_timesteps(max): `max` timesteps, or with 0 until the election is stable and the
   * quorum (of every monitor) has held for 6 timesteps (bounded here: a monitor cluster never
   * "runs out" of timers). Returns the timesteps run. `watch` is called after every slice.
   */
  async runTimesteps(max: number, watch?: () => void): Promise<number> {
    const limit = max === 0 ? 200 : max;
    let steps = 0;
    while (steps < limit) {
      if (max === 0 && this.electionStable() && this.quorumHeld(6)) break;
      for (let t = 0; t < timestepMs; t += sliceMs) {
        await this.cluster.run(sliceMs, sliceMs);
        this.#observe();
        watch?.();
      }
      steps++;
    }
    return steps;
  }

  describe(): string {
    return `${this.cluster.describe()}; electors ${this.electors()
      .map((e) => `${e.value}@${e.context.epoch}`)
      .join(' ')}; quorums ${this.quorums.slice(-6).join(' ')}`;
  }

  assertConverged(what: string): void {
    const state = `${what}: ${this.describe()}`;
    assert.ok(this.electionStable(), `election stable — ${state}`);
    assert.ok(this.quorumHeld(6), `quorum of all held for 6 timesteps — ${state}`);
    assert.ok(this.allAgreeOnLeader(), `all agree on the leader — ${state}`);
    assert.ok(this.epochsAgree(), `epochs agree — ${state}`);
    assert.is(this.epoch() % 2, 0, 'a stable epoch is even');
  }
}

export async function scenario(size: number, seed: number, options: Partial<ScenarioOptions> = {}) {
  const s = new ElectionScenario({ size, seed, ...options });
  await s.mkfs();
  return s;
}
