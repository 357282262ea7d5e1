// The simulator's network: every endpoint reaches every other by name, and the only sources of
// delay, loss, duplication and reordering are the injected clock and random function — the same
// seed gives the same delivery order (TigerBeetle's simulated MessageBus, FoundationDB's
// simulated network). Messages travel as bytes through codec.ts, so a message that would be
// rejected on TCP is rejected here too, and no object is ever shared between two monitors.
import { decodeMessage, encodeMessage } from './codec.ts';
import type { EntityName, Message, MessageType } from './messages.ts';
import type { Transport, TransportHandlers } from './transport.ts';

/** The part of the simulated clock the network needs (no real timers, no Date.now). */
export interface NetworkClock {
  setTimeout(fn: () => void, ms: number): unknown;
  now(): number;
}

export interface NetworkFaults {
  /** One-way delay, an integer drawn uniformly from [min, max] milliseconds. */
  delayMs: [min: number, max: number];
  /** Probability a message is lost. */
  dropRate: number;
  /** Probability a message is delivered twice. */
  duplicateRate: number;
  /** Whether messages on one link may overtake each other (false: each link is FIFO, like TCP). */
  reorder: boolean;
}

/** Overrides for one direction of one link; unset fields fall back to the network's faults. */
export interface LinkSettings extends Partial<NetworkFaults> {
  /** Nothing from `from` reaches `to` (messages already in flight on the link are lost too). */
  blocked?: boolean;
}

export type NetworkEvent =
  | {
      kind: 'send' | 'deliver' | 'duplicate';
      at: number;
      from: EntityName;
      to: EntityName;
      type: MessageType;
    }
  | {
      kind: 'drop';
      at: number;
      from: EntityName;
      to: EntityName;
      type: MessageType;
      reason:
        | 'blocked'
        | 'fault'
        | 'unreachable'
        | 'crashed'
        | 'invalid'
        | 'no handlers'
        | 'in flight limit'
        | 'unauthenticated';
    }
  | { kind: 'reset'; at: number; from: EntityName; to: EntityName };

export interface MemoryNetworkOptions {
  clock: NetworkClock;
  /** Uniform in [0, 1): the simulator's seeded PRNG (sim/prng.ts), never Math.random. */
  random: () => number;
  faults?: Partial<NetworkFaults>;
  /** Every send, delivery and drop, in order: golden traces and debugging. */
  onEvent?: (event: NetworkEvent) => void;
  /** Messages in flight before new ones are dropped (default 1,000,000). */
  inFlightMax?: number;
  /**
   * Every message delivered, as the bytes on the wire: what a node on the same network segment
   * could record (the simulator's adversary replays them). Called after the receiver's handler.
   */
  tap?: (from: EntityName, to: EntityName, bytes: Uint8Array) => void;
}

/** How an endpoint authenticates (MemoryNetwork.endpoint). */
export interface EndpointOptions {
  /**
   * The entity whose key the node holds, or null for none. Default: `mon.` for a `mon.*` name,
   * `client.admin` for any other. A `mon.*` name needs `mon.` (as the messenger requires); a node
   * with no key never gets a session: whatever it sends, and whatever is sent to it, is dropped
   * as TCP's handshake would refuse it.
   */
  entity?: string | null;
}

export interface MemoryNetworkStats {
  sent: number;
  delivered: number;
  /** Lost to the drop fault. */
  dropped: number;
  /** Stopped by a block or partition. */
  blocked: number;
  /** Extra copies created by the duplicate fault. */
  duplicated: number;
  /** Sent to a name with no open endpoint. */
  unreachable: number;
  /** In flight when their sender or receiver crashed. */
  lost: number;
  /** Failed validation on receipt (as on TCP). */
  invalid: number;
  /** Arrived before the receiver set handlers, or beyond inFlightMax. */
  discarded: number;
  /** From or to a node with no key (no session could exist). */
  unauthenticated: number;
  inFlight: number;
}

/** FIFO links are keyed by sender id × this + receiver id (ids count endpoints opened: far below it). */
const fifoKeyScale = 2 ** 26;

const defaultFaults: NetworkFaults = { delayMs: [0, 0], dropRate: 0, duplicateRate: 0, reorder: false };

interface InFlight {
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly type: MessageType;
  readonly bytes: Uint8Array;
}

class Endpoint implements Transport {
  readonly name: EntityName;
  /** Unique per incarnation: a restarted monitor is a new endpoint with the same name. */
  readonly id: number;
  open = true;
  handlers: TransportHandlers | undefined;
  /** Peers this incarnation has exchanged messages with: the ones told (onReset) when it crashes. */
  readonly contacts = new Set<EntityName>();
  /** The entity it authenticates as; null: none (EndpointOptions). */
  entity: string | null = null;
  readonly #onSend: (from: Endpoint, to: EntityName, message: Message) => void;
  readonly #onClose: (endpoint: Endpoint) => void;

  constructor(
    name: EntityName,
    id: number,
    onSend: (from: Endpoint, to: EntityName, message: Message) => void,
    onClose: (endpoint: Endpoint) => void,
  ) {
    this.name = name;
    this.id = id;
    this.#onSend = onSend;
    this.#onClose = onClose;
  }

  /** Addresses are ignored: every endpoint reaches every other by name. */
  send(to: EntityName, message: Message, _addr?: string): void {
    this.#onSend(this, to, message);
  }

  setHandlers(handlers: TransportHandlers): void {
    this.handlers = handlers;
  }

  /** A crash as far as the network is concerned: in-flight messages to and from it are lost. */
  close(): Promise<void> {
    this.#onClose(this);
    return Promise.resolve();
  }
}

export class MemoryNetwork {
  readonly #clock: NetworkClock;
  readonly #random: () => number;
  readonly #onEvent: ((event: NetworkEvent) => void) | undefined;
  readonly #tap: MemoryNetworkOptions['tap'];
  readonly #inFlightMax: number;
  #faults: NetworkFaults;
  /** The settings of a link with no overrides (most of them, most of the time), built once. */
  #defaultLink: Readonly<NetworkFaults & { blocked: boolean }>;
  readonly #endpoints = new Map<EntityName, Endpoint>();
  readonly #links = new Map<string, LinkSettings>();
  /** FIFO links (reorder off): messages waiting, keyed by sender and receiver incarnation. */
  readonly #fifo = new Map<number, { queue: InFlight[]; lastAt: number }>();
  #nextEndpointId = 1;
  readonly #stats: MemoryNetworkStats = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    blocked: 0,
    duplicated: 0,
    unreachable: 0,
    lost: 0,
    invalid: 0,
    discarded: 0,
    unauthenticated: 0,
    inFlight: 0,
  };

  constructor(options: MemoryNetworkOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#onEvent = options.onEvent;
    this.#tap = options.tap;
    this.#inFlightMax = options.inFlightMax ?? 1_000_000;
    this.#faults = checkedFaults({ ...defaultFaults, ...options.faults });
    this.#defaultLink = { ...this.#faults, blocked: false };
  }

  /** A transport for `name`. A closed (crashed) endpoint's name may be reused by its restart. */
  endpoint(name: EntityName, options: EndpointOptions = {}): Transport {
    const existing = this.#endpoints.get(name);
    if (existing?.open) throw new Error(`endpoint ${name} is already open; close it before re-creating it`);
    const entity =
      options.entity === undefined ? (name.startsWith('mon.') ? 'mon.' : 'client.admin') : options.entity;
    if (name.startsWith('mon.') && entity !== null && entity !== 'mon.')
      throw new Error(`${entity} may not take the name ${name} (a monitor's name needs the mon. key)`);
    if (this.#nextEndpointId >= fifoKeyScale) throw new Error(`more than ${fifoKeyScale} endpoints opened`);
    const endpoint = new Endpoint(
      name,
      this.#nextEndpointId++,
      (from, to, message) => this.#send(from, to, message),
      (closing) => this.#close(closing),
    );
    endpoint.entity = entity;
    this.#endpoints.set(name, endpoint);
    return endpoint;
  }

  /** Replace the network-wide faults (e.g. a fault-free liveness phase after a safety phase). */
  setFaults(faults: Partial<NetworkFaults>): void {
    this.#faults = checkedFaults({ ...this.#faults, ...faults });
    this.#defaultLink = { ...this.#faults, blocked: false };
  }

  /** Settings for the one-way link from → to, merged into what was set before. */
  setLink(from: EntityName, to: EntityName, settings: LinkSettings): void {
    const key = linkKey(from, to);
    const merged = { ...this.#links.get(key), ...settings };
    checkedFaults({ ...this.#faults, ...merged });
    this.#links.set(key, merged);
  }

  /** Block both directions between every member of groupA and every member of groupB. */
  partition(groupA: readonly EntityName[], groupB: readonly EntityName[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        if (a === b) continue;
        this.setLink(a, b, { blocked: true });
        this.setLink(b, a, { blocked: true });
      }
    }
  }

  /** Remove every block, partition and per-link override. */
  heal(): void {
    this.#links.clear();
  }

  stats(): MemoryNetworkStats {
    return { ...this.#stats };
  }

  #send(from: Endpoint, to: EntityName, message: Message): void {
    if (!from.open) return; // a crashed monitor's late sends go nowhere, like its sockets
    let bytes: Uint8Array;
    try {
      // A copy: an in-flight message must not pin the encoder's shared slab.
      bytes = Uint8Array.prototype.slice.call(encodeMessage(message));
    } catch {
      // Unencodable is a sender bug; on TCP it is dropped and logged at the sender too.
      this.#stats.invalid++;
      this.#emit({
        kind: 'drop',
        at: this.#clock.now(),
        from: from.name,
        to,
        type: message.type,
        reason: 'invalid',
      });
      return;
    }
    const type = message.type;
    const at = this.#clock.now();
    this.#stats.sent++;
    this.#emit({ kind: 'send', at, from: from.name, to, type });
    const destination = this.#endpoints.get(to);
    if (!destination?.open) {
      this.#stats.unreachable++;
      this.#emit({ kind: 'drop', at, from: from.name, to, type, reason: 'unreachable' });
      return;
    }
    const link = this.#link(from.name, to);
    if (link.blocked) {
      this.#stats.blocked++;
      this.#emit({ kind: 'drop', at, from: from.name, to, type, reason: 'blocked' });
      return;
    }
    // Draw only for faults that are on, so turning one fault on does not reshuffle the others.
    if (link.dropRate > 0 && this.#random() < link.dropRate) {
      this.#stats.dropped++;
      this.#emit({ kind: 'drop', at, from: from.name, to, type, reason: 'fault' });
      return;
    }
    const item: InFlight = { from, to: destination, type, bytes };
    this.#schedule(item, link);
    if (link.duplicateRate > 0 && this.#random() < link.duplicateRate) {
      this.#stats.duplicated++;
      this.#emit({ kind: 'duplicate', at, from: from.name, to, type });
      this.#schedule(item, link);
    }
  }

  #schedule(item: InFlight, link: Readonly<NetworkFaults & { blocked: boolean }>): void {
    if (this.#stats.inFlight >= this.#inFlightMax) {
      this.#stats.discarded++;
      this.#emit({
        kind: 'drop',
        at: this.#clock.now(),
        from: item.from.name,
        to: item.to.name,
        type: item.type,
        reason: 'in flight limit',
      });
      return;
    }
    const [delayMin, delayMax] = link.delayMs;
    const delay =
      delayMax > delayMin ? delayMin + Math.floor(this.#random() * (delayMax - delayMin + 1)) : delayMin;
    this.#stats.inFlight++;
    if (link.reorder) {
      this.#clock.setTimeout(() => this.#deliver(item), delay);
      return;
    }
    // FIFO: never deliver before the previous message on this link, and on each timer deliver
    // the link's head rather than "this" message, so the order holds however the clock breaks ties
    // between timers due at the same instant.
    const key = item.from.id * fifoKeyScale + item.to.id;
    let fifo = this.#fifo.get(key);
    if (!fifo) {
      fifo = { queue: [], lastAt: Number.NEGATIVE_INFINITY };
      this.#fifo.set(key, fifo);
    }
    const now = this.#clock.now();
    const deliverAt = Math.max(now + delay, fifo.lastAt);
    fifo.lastAt = deliverAt;
    fifo.queue.push(item);
    const waiting = fifo;
    this.#clock.setTimeout(() => {
      const head = waiting.queue.shift();
      if (waiting.queue.length === 0) this.#fifo.delete(key);
      if (head) this.#deliver(head);
    }, deliverAt - now);
  }

  #deliver(item: InFlight): void {
    this.#stats.inFlight--;
    const { from, to, type } = item;
    const at = this.#clock.now();
    if (!from.open || !to.open) {
      this.#stats.lost++;
      this.#emit({ kind: 'drop', at, from: from.name, to: to.name, type, reason: 'crashed' });
      return;
    }
    if (this.#link(from.name, to.name).blocked) {
      this.#stats.blocked++;
      this.#emit({ kind: 'drop', at, from: from.name, to: to.name, type, reason: 'blocked' });
      return;
    }
    if (from.entity === null || to.entity === null) {
      this.#stats.unauthenticated++;
      this.#emit({ kind: 'drop', at, from: from.name, to: to.name, type, reason: 'unauthenticated' });
      return;
    }
    const decoded = decodeMessage(item.bytes);
    if ('error' in decoded) {
      this.#stats.invalid++;
      this.#emit({ kind: 'drop', at, from: from.name, to: to.name, type, reason: 'invalid' });
      return;
    }
    const handlers = to.handlers;
    if (!handlers) {
      this.#stats.discarded++;
      this.#emit({ kind: 'drop', at, from: from.name, to: to.name, type, reason: 'no handlers' });
      return;
    }
    // A delivered message means a session exists between the two (a TCP connection would).
    from.contacts.add(to.name);
    to.contacts.add(from.name);
    this.#stats.delivered++;
    this.#emit({ kind: 'deliver', at, from: from.name, to: to.name, type });
    // No cryptography here: a node is the entity its endpoint was opened as (a keyless one was
    // dropped above, as the handshake would refuse it).
    handlers.onMessage(from.name, decoded.message, { entity: from.entity });
    this.#tap?.(from.name, to.name, item.bytes);
  }

  #close(endpoint: Endpoint): void {
    if (!endpoint.open) return;
    endpoint.open = false;
    if (this.#endpoints.get(endpoint.name) === endpoint) this.#endpoints.delete(endpoint.name);
    // In-flight messages to and from it are discarded when their timers fire (counted as lost).
    // Peers that talked with it hear of the reset on the next turn, in name order (deterministic),
    // never from inside the crashing monitor's own call stack.
    const peers = [...endpoint.contacts].sort();
    endpoint.contacts.clear();
    for (const name of peers) {
      const peer = this.#endpoints.get(name);
      if (!peer?.open) continue;
      peer.contacts.delete(endpoint.name);
      this.#clock.setTimeout(() => {
        if (!peer.open) return;
        this.#emit({ kind: 'reset', at: this.#clock.now(), from: endpoint.name, to: peer.name });
        peer.handlers?.onReset?.(endpoint.name);
      }, 0);
    }
  }

  #link(from: EntityName, to: EntityName): Readonly<NetworkFaults & { blocked: boolean }> {
    if (this.#links.size === 0) return this.#defaultLink;
    const settings = this.#links.get(linkKey(from, to));
    if (!settings) return this.#defaultLink;
    return {
      delayMs: settings.delayMs ?? this.#faults.delayMs,
      dropRate: settings.dropRate ?? this.#faults.dropRate,
      duplicateRate: settings.duplicateRate ?? this.#faults.duplicateRate,
      reorder: settings.reorder ?? this.#faults.reorder,
      blocked: settings.blocked ?? false,
    };
  }

  #emit(event: NetworkEvent): void {
    this.#onEvent?.(event);
  }
}

function linkKey(from: EntityName, to: EntityName): string {
  return `${from}>${to}`;
}

function checkedFaults(faults: NetworkFaults): NetworkFaults {
  const [min, max] = faults.delayMs;
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < 0 || max < min) {
    throw new RangeError(`delayMs must be integers 0 <= min <= max, got [${min}, ${max}]`);
  }
  for (const [name, rate] of [
    ['dropRate', faults.dropRate],
    ['duplicateRate', faults.duplicateRate],
  ] as const) {
    if (!(rate >= 0 && rate <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${rate}`);
  }
  return {
    delayMs: [min, max],
    dropRate: faults.dropRate,
    duplicateRate: faults.duplicateRate,
    reorder: faults.reorder,
  };
}
