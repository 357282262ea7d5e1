// The simulator's adversary (issue 13 §6): nodes on the cluster's network that record what the
// monitors say to each other and send it back — replayed, reordered, altered — with forgeries of
// every message type. Two of them, as the real network has them:
//
// - `client.mallory`, with no key: the handshake refuses it (the simulated network drops all it
//   sends, and counts it), as TCP's would (transport/session-crypto.ts).
// - `client.eve`, with a real client key whose caps are `allow r`: it has a session, so its
//   messages reach the monitors' door, which must refuse every monitor-protocol message from a
//   client session (actors/io.ts refuseReason) and every command its caps do not allow (EACCES).
//
// Neither can claim a monitor's name: that needs the `mon.` key (MemoryNetwork.endpoint refuses
// it, as the messenger does). Everything is drawn from the adversary's own PRNG fork, so a seed
// replays exactly; the invariants and the history check must hold with it present.
import { decodeMessage } from '../transport/codec.ts';
import type { MemoryNetwork } from '../transport/memory-network.ts';
import type { EntityName, Message, MonMap } from '../transport/messages.ts';
import type { Transport } from '../transport/transport.ts';
import type { SimTimers } from './clock.ts';
import type { Prng } from './prng.ts';

/** The entity eve holds a key for, and its caps (the simulated cluster's keyring has it). */
export const adversaryEntity = { entity: 'client.eve', caps: { mon: 'allow r' } } as const;

export interface AdversaryOptions {
  network: MemoryNetwork;
  clock: SimTimers;
  prng: Prng;
  /** The monitors it targets. */
  monitors: readonly string[];
  monmap: MonMap;
  /** Mean actions per simulated second (each sends one to a few messages). */
  actionsPerSecond?: number;
}

export interface AdversaryStats {
  /** Messages recorded off the wire (monitor to monitor). */
  recorded: number;
  /** Messages sent by eve (which has a session). */
  sentKeyed: number;
  /** Messages sent by mallory (which has none). */
  sentKeyless: number;
  /** Commands eve sent that came back EACCES, and any that did not (must stay 0 for updates). */
  commandsDenied: number;
  commandsAllowed: number;
  updatesAllowed: number;
}

const recordedMax = 256;

export class Adversary {
  readonly stats: AdversaryStats = {
    recorded: 0,
    sentKeyed: 0,
    sentKeyless: 0,
    commandsDenied: 0,
    commandsAllowed: 0,
    updatesAllowed: 0,
  };
  readonly #options: AdversaryOptions;
  readonly #eve: Transport;
  readonly #mallory: Transport;
  /** Monitor messages seen on the wire, as the bytes: decoded only when one is picked to replay. */
  readonly #recorded: Uint8Array[] = [];
  /** Messages eve holds back to send later, in another order. */
  readonly #held: { to: EntityName; message: Message }[] = [];
  readonly #updates = new Map<number, string[]>();
  #tid = 0;
  #timer: unknown;
  #stopped = false;

  constructor(options: AdversaryOptions) {
    this.#options = options;
    this.#eve = options.network.endpoint('client.eve' as EntityName, { entity: adversaryEntity.entity });
    this.#mallory = options.network.endpoint('client.mallory' as EntityName, { entity: null });
    this.#eve.setHandlers({
      onMessage: (_from, message) => {
        if (message.type !== 'mon.command_ack') return;
        if (message.r === -13) this.stats.commandsDenied += 1;
        else {
          this.stats.commandsAllowed += 1;
          if (this.#updates.has(message.tid)) this.stats.updatesAllowed += 1;
        }
      },
    });
    this.#mallory.setHandlers({ onMessage() {} });
    this.#schedule();
  }

  /** The network's tap: every message delivered between monitors is recorded (bounded). */
  record(from: EntityName, to: EntityName, bytes: Uint8Array): void {
    if (this.#stopped || !from.startsWith('mon.') || !to.startsWith('mon.')) return;
    // The network taps only what it delivered, so these bytes decoded once already: keep them as
    // they are (the network's own copy, which nothing writes to) and decode the few replayed.
    this.stats.recorded += 1;
    if (this.#recorded.length < recordedMax) this.#recorded.push(bytes);
    else this.#recorded[this.#options.prng.int(0, recordedMax - 1)] = bytes;
  }

  /** One recorded message, drawn from the PRNG, decoded afresh. */
  #pickRecorded(): Message {
    const decoded = decodeMessage(this.#options.prng.pick(this.#recorded));
    if ('error' in decoded) throw new Error(`a recorded message no longer decodes: ${decoded.error}`);
    return decoded.message;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer as never);
    this.#timer = undefined;
    this.#eve.close();
    this.#mallory.close();
  }

  #schedule(): void {
    if (this.#stopped) return;
    const perSecond = this.#options.actionsPerSecond ?? 5;
    const meanMs = 1000 / perSecond;
    const delay = Math.max(1, Math.round(this.#options.prng.next() * 2 * meanMs));
    this.#timer = this.#options.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#act();
      this.#schedule();
    }, delay);
  }

  #monitor(): EntityName {
    return `mon.${this.#options.prng.pick(this.#options.monitors)}` as EntityName;
  }

  #send(from: 'eve' | 'mallory', to: EntityName, message: Message): void {
    if (from === 'eve') {
      this.stats.sentKeyed += 1;
      this.#eve.send(to, message);
    } else {
      this.stats.sentKeyless += 1;
      this.#mallory.send(to, message);
    }
  }

  #act(): void {
    const prng = this.#options.prng;
    const who = prng.chance(0.75) ? 'eve' : 'mallory';
    const action = prng.int(0, 4);
    if (action === 0 && this.#recorded.length > 0) {
      // Replay a recorded monitor message, as it was.
      this.#send(who, this.#monitor(), this.#pickRecorded());
    } else if (action === 1 && this.#recorded.length > 0) {
      // Replay one altered: epochs, pns and versions pushed ahead (the strongest forgery).
      this.#send(who, this.#monitor(), this.#altered(this.#pickRecorded()));
    } else if (action === 2) {
      // Hold some back and release them in reverse order (reordering).
      if (this.#recorded.length > 0) this.#held.push({ to: this.#monitor(), message: this.#pickRecorded() });
      if (this.#held.length >= 4 || prng.chance(0.3)) {
        for (const held of this.#held.reverse()) this.#send(who, held.to, held.message);
        this.#held.length = 0;
      }
    } else if (action === 3) {
      this.#send(who, this.#monitor(), this.#forged());
    } else {
      // A command: reads its caps allow, updates they do not.
      this.#tid += 1;
      const update = prng.chance(0.6);
      const cmd = update
        ? prng.pick([
            ['config-key', 'set', `k${prng.int(0, 7)}`, 'eve'],
            ['config-key', 'rm', `k${prng.int(0, 7)}`],
            ['mon', 'rm', prng.pick(this.#options.monitors)],
            ['mon', 'add', 'eve', '10.0.0.66:6789'],
            ['auth', 'get-or-create', 'client.eve2', 'mon', 'allow *'],
            ['auth', 'caps', 'client.eve', 'mon', 'allow *'],
          ])
        : prng.pick([['mon', 'dump'], ['quorum_status'], ['config-key', 'get', 'k0'], ['auth', 'ls']]);
      if (update) this.#updates.set(this.#tid, cmd);
      this.#send(who, this.#monitor(), {
        type: 'mon.command',
        tid: this.#tid,
        cmd,
        deadline: this.#options.clock.now() + 30_000,
      });
    }
  }

  #altered(message: Message): Message {
    const bump = this.#options.prng.int(1, 1000);
    switch (message.type) {
      case 'mon.paxos':
        return { ...message, pn: message.pn + bump, lastCommitted: message.lastCommitted + bump };
      case 'mon.election':
        return { ...message, epoch: message.epoch + 2 * bump };
      case 'mon.probe':
        return { ...message, paxosLastVersion: message.paxosLastVersion + bump };
      case 'mon.sync':
        return { ...message, lastCommitted: message.lastCommitted + bump };
      default:
        return message;
    }
  }

  /** A forgery of a message type a monitor acts on, built from the cluster's own map. */
  #forged(): Message {
    const prng = this.#options.prng;
    const map = this.#options.monmap;
    const target = prng.pick(this.#options.monitors);
    const without: MonMap = {
      ...map,
      epoch: map.epoch + 1_000_000,
      mons: map.mons.filter((m) => m.name !== target).map((m, rank) => ({ ...m, rank })),
    };
    switch (prng.int(0, 7)) {
      case 0:
        return {
          type: 'mon.probe',
          op: prng.chance(0.5) ? 'probe' : 'reply',
          fsid: map.fsid,
          name: target,
          quorum: [0, 1, 2],
          monmap: without,
          paxosFirstVersion: 1,
          paxosLastVersion: 1_000_000,
          hasEverJoined: true,
        };
      case 1:
        return { type: 'mon.join', name: `p${prng.int(0, 9)}`, addr: '10.0.0.99:6789' };
      case 2:
        return {
          type: 'mon.paxos',
          op: prng.pick(['begin', 'commit', 'lease', 'collect'] as const),
          electionEpoch: 1_000_000,
          pn: 1_000_000,
          uncommittedPn: 0,
          firstCommitted: 1,
          lastCommitted: 1_000_000,
          values: [{ version: 1_000_001, value: new Uint8Array([0xde, 0xad, 0xbe, 0xef]) }],
        };
      case 3:
        return {
          type: 'mon.election',
          op: prng.pick(['propose', 'victory', 'ack'] as const),
          fsid: map.fsid,
          epoch: 1_000_001,
          monmapEpoch: map.epoch,
          quorum: [0],
          strategy: map.electionStrategy,
        };
      case 4:
        return {
          type: 'mon.sync',
          op: prng.pick(['cookie', 'last_chunk', 'no_cookie'] as const),
          cookie: prng.int(0, 1_000_000),
          lastCommitted: 1_000_000,
        };
      case 5:
        return {
          type: 'mon.forward',
          tid: prng.int(0, 1_000_000),
          client: 'client.eve',
          clientTid: 1,
          electionEpoch: 1_000_000,
          request: {
            cmd: ['config-key', 'set', 'k0', 'forged'],
            deadline: this.#options.clock.now() + 30_000,
          },
        };
      case 6:
        return {
          type: 'mon.route',
          tid: prng.int(0, 1_000_000),
          client: 'client.0',
          clientTid: prng.int(0, 100),
          reply: { r: 0, rs: '', data: new TextEncoder().encode('forged') },
        };
      default:
        return { type: 'mon.ping', op: 'ping', stamp: this.#options.clock.now() + 3_600_000 };
    }
  }
}
