// What a pure machine asks of the world, as plain data. Machines never touch a socket or a disk:
// they send one `io.effects` event to the monitor's I/O actor (systemId 'io'), which applies the
// writes as one durable Transaction and only then sends the messages — etcd-raft's "messages
// after append", Ceph's synchronous apply_transaction before send_message. Messages without
// writes still queue behind earlier writes, so nothing a monitor says can overtake what it
// persisted before saying it — unless an effect says otherwise (`sendBeforeDurable`,
// `durability: 'applied'`), which only Paxos does, for values the quorum already holds.
import type { EntityName, LeaderHint, Message } from '../transport/messages.ts';

export type StoreOp =
  | { op: 'put'; prefix: string; key: string; value: Uint8Array | string }
  | { op: 'put_number'; prefix: string; key: string; value: number }
  | { op: 'erase'; prefix: string; key: string }
  /** Delete keys in [start, end) of a prefix ('' end: to the end of the prefix). */
  | { op: 'erase_range'; prefix: string; start: string; end: string }
  /**
   * Decode an encoded Transaction (the Paxos value of `version`) and append its ops
   * (Paxos::decode_append_transaction). Once durable, the I/O actor reports the applied ops to
   * the monitor as `store.applied` so services can update_from_paxos.
   */
  | { op: 'apply_value'; version: number; value: Uint8Array }
  /** Decode an encoded Transaction (a sync chunk) and append its ops; nothing is reported. */
  | { op: 'apply_encoded'; value: Uint8Array }
  /**
   * A full sync's chunk: decode it and write its puts under the staging prefix of their prefix
   * (machines/sync.ts stagePrefix), for the listed prefixes only; every other op is dropped.
   */
  | { op: 'stage_encoded'; value: Uint8Array; prefixes: string[] }
  /**
   * The switch to a staged copy, atomically with the rest of its transaction: erase the listed
   * prefixes, move every staged key (those already stored, and those staged earlier in this same
   * transaction) into its prefix, erase the staging area.
   */
  | { op: 'commit_stage'; prefixes: string[] };

/** Where a command's answer goes: straight to the client, or back through the peon that forwarded it. */
export interface ReplyTarget {
  client: EntityName;
  tid: number;
  cmd: string[];
  /** Set when a peon forwarded the request: the reply travels as mon.route to that peon. */
  via?: { peer: EntityName; forwardTid: number };
}

export interface CommandReplyData {
  r: number;
  rs: string;
  data?: Uint8Array | string;
  /** Set by a peon on the answer to a request it forwarded: where it went (LeaderHint). */
  leader?: LeaderHint;
}

/**
 * A read a service answers from the store (PaxosService::preprocess_query reading
 * mon->store): the I/O actor performs it after every write queued before it, then replies.
 */
export type ReadPlan =
  /** The raw value of one key; a missing key answers `missing`. */
  | { kind: 'get'; prefix: string; key: string; missing: CommandReplyData; rs?: string }
  /** `exists`: r=0 with `rs` when present, `missing` when not. */
  | { kind: 'exists'; prefix: string; key: string; rs: string; missing: CommandReplyData }
  /** Keys of a prefix starting with `keyPrefix`, as a JSON array (at most `limit`). */
  | { kind: 'keys'; prefix: string; keyPrefix: string; limit: number }
  /** Keys and UTF-8 values of a prefix starting with `keyPrefix`, as a JSON object. */
  | { kind: 'dump'; prefix: string; keyPrefix: string; limit: number }
  /** The last `count` values of a prefix in key order, parsed as JSON, as a JSON array. */
  | { kind: 'tail'; prefix: string; count: number; excludeKeys: string[] };

export interface ServiceRead {
  target: ReplyTarget;
  plan: ReadPlan;
}

/** A committed store change as a service sees it in update_from_paxos. */
export type AppliedOp =
  | { op: 'put'; prefix: string; key: string; value: Uint8Array }
  | { op: 'erase'; prefix: string; key: string }
  | { op: 'erase_range'; prefix: string; start: string; end: string };

export interface Outgoing {
  to: EntityName;
  /** Where to dial a monitor; clients are reached over their own connection. */
  addr?: string;
  msg: Message;
  /**
   * Fill `msg.values` from the store with committed Paxos versions [from, to] before sending
   * (Paxos::share_state): the values live on disk, not in the machine.
   */
  shareValues?: { from: number; to: number };
}

export interface IoEffectsEvent {
  type: 'io.effects';
  writes: StoreOp[];
  messages: Outgoing[];
  /** Report `io.written { token }` to the monitor once the writes are durable. */
  notify?: string;
  /** Command answers (mon.command_ack, or mon.route through the forwarding peon). */
  replies?: { target: ReplyTarget; reply: CommandReplyData }[];
  /** Reads answered from the store. */
  reads?: ServiceRead[];
  /**
   * How far the writes must get before anything after them happens. 'durable' (the default):
   * fsynced. 'applied': applied and visible, made durable by the next fsync — for a committed
   * Paxos value, which every quorum member already holds durably as accepted, so a crash that
   * loses the commit loses nothing chosen: recovery (collect/last) commits the value again.
   */
  durability?: 'durable' | 'applied';
  /**
   * The messages may leave before the writes are durable (the leader's begin: the peons store
   * the value in parallel with the leader, whose own accept counts only at io.written).
   */
  sendBeforeDurable?: boolean;
}

/**
 * The statechart asks the io actor for the wall-clock time, which only the runtime has: when
 * mon_tick_interval has passed (its own delayed event, on XState's clock; the time checks and the
 * services' log stamps need it), and when a quorum forms (quorum_age).
 */
export interface IoClockEvent {
  type: 'io.clock';
  /** The event the io actor answers with, carrying `now`. */
  reply: 'monitor.tick' | 'monitor.quorum_time';
}

/** The I/O actor's report after a committed Paxos value was applied durably. */
export interface StoreAppliedEvent {
  type: 'store.applied';
  version: number;
  ops: AppliedOp[];
  /** On the leader, the proposals this version commits (C_Committed: their services answer). */
  committed?: string[];
}

/**
 * The io actor's report of a record it carried out: the committed Paxos values it applied (their
 * ops, for update_from_paxos) and the token the record asked to be reported. One event per
 * record, and only when it has something to report.
 */
export interface IoWrittenEvent {
  type: 'io.written';
  token?: string;
  applied?: { version: number; ops: AppliedOp[] }[];
}

/** A received message as an event: its type is the message's type. */
export type MessageEvent<M extends Message = Message> = M extends Message
  ? { type: M['type']; from: EntityName; msg: M }
  : never;

export function effects(
  writes: StoreOp[],
  messages: Outgoing[],
  notify?: string,
  options: Pick<IoEffectsEvent, 'durability' | 'sendBeforeDurable'> = {},
): IoEffectsEvent {
  const event: IoEffectsEvent = { type: 'io.effects', writes, messages };
  if (notify) event.notify = notify;
  if (options.durability) event.durability = options.durability;
  if (options.sendBeforeDurable) event.sendBeforeDurable = true;
  return event;
}
