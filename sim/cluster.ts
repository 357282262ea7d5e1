// A whole paxmon cluster in one process, deterministic: the real monitor statecharts and the real
// I/O actor over the in-memory network and stores, all driven by one simulated clock (SimClock:
// XState's SimulatedClock, with its timers in a heap) and one seeded PRNG. The specs use it for scenarios; the simulator (issue 5) builds on it.
import type { InspectionEvent } from 'xstate';
import { buildMonMap, mkfsTransaction } from '../actors/mkfs.ts';
import { type Clock, createMonitor, type MonitorHandle } from '../actors/monitor.ts';
import type { MonConfig } from '../machines/config.ts';
import { encodeCryptoKey } from '../machines/crypto-key.ts';
import type { KeyringEntry } from '../machines/keyring-text.ts';
import type { ServiceDefinition } from '../machines/paxos-service.ts';
import { MemoryStore } from '../storage/memory-store.ts';
import { MemoryNetwork, type NetworkEvent, type NetworkFaults } from '../transport/memory-network.ts';
import type { ElectionStrategy, EntityName, MonMap } from '../transport/messages.ts';
import type { Transport } from '../transport/transport.ts';
import { SimClock } from './clock.ts';
import { Prng } from './prng.ts';

export interface SimClusterOptions {
  size: number;
  seed?: number | string;
  config?: Partial<MonConfig>;
  faults?: Partial<NetworkFaults>;
  /** Simulated fsync latency of every store. */
  syncDelayMs?: number;
  onNetworkEvent?: (event: NetworkEvent) => void;
  /**
   * The clock of one monitor's actor tree and store (default: the cluster's SimClock). The
   * simulator passes a MonitorClock (sim/clock.ts) over `clock` for pauses and clock skew.
   */
  clockFor?: (name: string, clock: SimClock) => Clock & { now(): number };
  /** Wraps each incarnation's endpoint before the monitor gets it (the simulator watches and holds messages). */
  wrapTransport?: (name: string, transport: Transport) => Transport;
  /** The election strategy mkfs writes into the monmap (default classic, as `paxmon mkfs`). */
  strategy?: ElectionStrategy;
  /** Monitors (by name) the monmap disallows as leaders from the start. */
  disallowedLeaders?: string[];
  /** Every message delivered, as bytes (MemoryNetworkOptions.tap): the adversary records them. */
  tap?: (from: EntityName, to: EntityName, bytes: Uint8Array) => void;
  /** PaxosServices to run beside paxmon's own on every monitor (an app's own). */
  services?: ServiceDefinition[];
  /** Each monitor's XState inspection observer (the event-budget spec counts a write's events). */
  inspectFor?: (name: string) => ((event: InspectionEvent) => void) | undefined;
}

export interface SimNode {
  name: string;
  store: MemoryStore;
  monitor: MonitorHandle | null;
  transport: Transport | null;
}

export const simFsid = '6f0c4a4e-1d5e-4a51-9f8c-2b7d3e1a0c11';
const names = 'abcdefghijklmnopqrstuvwxyz';

/** Flush every pending promise continuation (the I/O actor's store writes are async). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class SimCluster {
  readonly clock = new SimClock();
  readonly prng: Prng;
  readonly network: MemoryNetwork;
  readonly monmap: MonMap;
  readonly nodes: SimNode[];
  readonly config: Partial<MonConfig>;
  /**
   * The cluster's keyring, as mkfs gives every monitor: `mon.` and `client.admin` (`allow *`).
   * The simulated network does no cryptography — an endpoint is the entity it was opened as
   * (MemoryNetwork.endpoint) — so the keys are fixed bytes; the caps are real.
   */
  readonly keyring: KeyringEntry[] = [
    { entity: 'mon.', key: encodeCryptoKey(new Uint8Array(16).fill(1), 0), caps: { mon: 'allow *' } },
    { entity: 'client.admin', key: encodeCryptoKey(new Uint8Array(16).fill(2), 0), caps: { mon: 'allow *' } },
    // The adversary's insider (sim/adversary.ts): a real client key that may only read.
    { entity: 'client.eve', key: encodeCryptoKey(new Uint8Array(16).fill(3), 0), caps: { mon: 'allow r' } },
  ];
  /** Each monitor's randomness for new keys (`auth get-or-create`), kept across its restarts. */
  readonly #authRandom = new Map<string, Prng>();
  readonly #clocks = new Map<string, Clock & { now(): number }>();
  readonly #wrapTransport: ((name: string, transport: Transport) => Transport) | undefined;
  readonly #inspectFor: SimClusterOptions['inspectFor'];
  readonly #services: ServiceDefinition[];

  constructor(options: SimClusterOptions) {
    this.prng = new Prng(options.seed ?? 1);
    this.config = options.config ?? {};
    this.#wrapTransport = options.wrapTransport;
    this.#inspectFor = options.inspectFor;
    this.#services = options.services ?? [];
    const netRandom = this.prng.fork('network');
    this.network = new MemoryNetwork({
      clock: this.clock,
      random: () => netRandom.next(),
      faults: { delayMs: [1, 3], dropRate: 0, duplicateRate: 0, reorder: false, ...(options.faults ?? {}) },
      ...(options.onNetworkEvent ? { onEvent: options.onNetworkEvent } : {}),
      ...(options.tap ? { tap: options.tap } : {}),
    });
    const mons = Array.from({ length: options.size }, (_, i) => ({
      name: names[i] as string,
      addr: `10.0.0.${i + 1}:6789`,
    }));
    this.monmap = {
      ...buildMonMap(simFsid, mons, 0),
      electionStrategy: options.strategy ?? 'classic',
      disallowedLeaders: options.disallowedLeaders ?? [],
    };
    this.nodes = mons.map((m) => {
      const storeRandom = this.prng.fork(`store.${m.name}`);
      const clock = options.clockFor?.(m.name, this.clock) ?? this.clock;
      this.#clocks.set(m.name, clock);
      return {
        name: m.name,
        store: new MemoryStore({
          clock,
          syncDelayMs: options.syncDelayMs ?? 1,
          random: () => storeRandom.next(),
          name: `mon.${m.name}`,
        }),
        monitor: null,
        transport: null,
      };
    });
  }

  node(name: string): SimNode {
    const node = this.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no monitor ${name}`);
    return node;
  }

  /** mkfs every store (durably) without starting anything. */
  async mkfs(): Promise<void> {
    for (const node of this.nodes) {
      let durable = false;
      const applied = node.store.apply(mkfsTransaction(node.name, this.monmap)).then(() => {
        durable = true;
      });
      // Until the simulated fsync completes, however long the store's sync delay is.
      for (let ms = 0; !durable; ms += 1) {
        if (ms > 60_000) throw new Error(`mkfs of mon.${node.name} not durable after a simulated minute`);
        await this.run(1);
      }
      await applied;
    }
  }

  async start(name: string, opened?: Transport): Promise<MonitorHandle> {
    const node = this.node(name);
    if (node.monitor) throw new Error(`mon.${name} is already running`);
    const endpoint = opened ?? this.network.endpoint(`mon.${name}` as EntityName);
    const transport = this.#wrapTransport ? this.#wrapTransport(name, endpoint) : endpoint;
    const clock = this.#clocks.get(name) ?? this.clock;
    let random = this.#authRandom.get(name);
    if (!random) {
      random = this.prng.fork(`auth.${name}`);
      this.#authRandom.set(name, random);
    }
    const authRandom = random;
    const inspect = this.#inspectFor?.(name);
    const monitor = await createMonitor({
      store: node.store,
      transport,
      config: this.config,
      clock,
      now: () => clock.now(),
      keyring: this.keyring,
      ...(inspect ? { inspect } : {}),
      ...(this.#services.length ? { services: this.#services } : {}),
      randomBytes: (n) => Uint8Array.from({ length: n }, () => Math.floor(authRandom.next() * 256)),
      // The network delivers inside the simulator's steps: batch per microtask checkpoint.
      turn: queueMicrotask,
    });
    node.monitor = monitor;
    node.transport = transport;
    return monitor;
  }

  async startAll(): Promise<void> {
    await this.startMany(this.nodes.filter((n) => !n.monitor).map((n) => n.name));
  }

  /**
   * Start monitors at the same moment: every endpoint is open before the first monitor sends
   * (its first probes reach the others, as processes started together find each other).
   */
  async startMany(names: string[]): Promise<void> {
    const endpoints = names.map((name) => this.network.endpoint(`mon.${name}` as EntityName));
    for (const [i, name] of names.entries()) await this.start(name, endpoints[i]);
  }

  /** kill -9: the actor tree stops, its endpoint closes, unsynced writes may be lost. */
  async crash(name: string): Promise<void> {
    const node = this.node(name);
    if (!node.monitor) return;
    const monitor = node.monitor;
    node.monitor = null;
    monitor.actor.stop();
    await node.transport?.close();
    node.transport = null;
    node.store.crash();
  }

  /** Advance simulated time by `ms`, in small steps so async I/O interleaves as it would. */
  async run(ms: number, stepMs = 1): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      this.clock.increment(Math.min(stepMs, end - this.clock.now()));
      await settle();
    }
  }

  /** Run until `predicate` holds, at most `maxMs` of simulated time; returns the time it took. */
  async runUntil(predicate: () => boolean, maxMs: number, stepMs = 1): Promise<number> {
    const start = this.clock.now();
    while (!predicate()) {
      if (this.clock.now() - start >= maxMs) {
        throw new Error(`condition not reached within ${maxMs} simulated ms; ${this.describe()}`);
      }
      this.clock.increment(stepMs);
      await settle();
    }
    return this.clock.now() - start;
  }

  running(): MonitorHandle[] {
    return this.nodes.flatMap((n) => (n.monitor ? [n.monitor] : []));
  }

  leaders(): MonitorHandle[] {
    return this.running().filter((m) => m.state() === 'leader');
  }

  /** Every running monitor in the quorum named by one leader, all agreeing on it and its epoch. */
  stableQuorum(expectedSize?: number): boolean {
    const leaders = this.leaders();
    if (leaders.length !== 1) return false;
    const leader = leaders[0] as MonitorHandle;
    const q = leader.quorumStatus() as {
      quorum: number[];
      election_epoch: number;
      quorum_leader_name: string;
    };
    if (expectedSize !== undefined && q.quorum.length !== expectedSize) return false;
    if (!leader.isWriteable()) return false;
    for (const rank of q.quorum) {
      const mon = this.nodes[rank]?.monitor;
      if (!mon) return false;
      const s = mon.quorumStatus() as { election_epoch: number; quorum_leader_name: string };
      const state = mon.state();
      if (state !== 'leader' && state !== 'peon') return false;
      if (s.election_epoch !== q.election_epoch || s.quorum_leader_name !== q.quorum_leader_name)
        return false;
      const paxos = (mon.monStatus() as { paxos: { state: string } | null }).paxos;
      if (paxos?.state !== 'active') return false;
    }
    return true;
  }

  describe(): string {
    return this.nodes
      .map((n) => {
        if (!n.monitor) return `${n.name}:down`;
        const s = n.monitor.monStatus() as {
          state: string;
          election_epoch: number;
          quorum: number[];
          paxos: { state: string; last_committed: number } | null;
        };
        return `${n.name}:${s.state}/e${s.election_epoch}/q[${s.quorum.join(',')}]/paxos ${s.paxos?.state}@${s.paxos?.last_committed}`;
      })
      .join(' ');
  }

  async stopAll(): Promise<void> {
    for (const node of this.nodes) {
      if (node.monitor) await node.monitor.stop();
      await node.transport?.close();
      node.monitor = null;
      node.transport = null;
    }
  }
}
