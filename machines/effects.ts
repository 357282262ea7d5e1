// What a pure machine asks of the world, as plain data. Machines never touch a socket or a disk:
// they send one `io.effects` event to the monitor's I/O actor (systemId 'io'), which applies the
// writes as one durable Transaction and only then sends the messages — etcd-raft's "messages
// after append", Ceph's synchronous apply_transaction before send_message. Messages without
// writes still queue behind earlier writes, so nothing a monitor says can overtake what it
// persisted before saying it.
import type { EntityName, Message } from '../transport/messages.ts';

export type StoreOp =
  | { op: 'put'; prefix: string; key: string; value: Uint8Array | string }
  | { op: 'put_number'; prefix: string; key: string; value: number }
  | { op: 'erase'; prefix: string; key: string }
  /** Decode an encoded Transaction (a Paxos value) and append its ops: Paxos::decode_append_transaction. */
  | { op: 'apply_value'; value: Uint8Array };

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
  /** Reply `io.written { token }` to this actor once the writes are durable. */
  notify?: { systemId: string; token: string };
}

export interface IoWrittenEvent {
  type: 'io.written';
  token: string;
}

/** A received message as an event: its type is the message's type. */
export type MessageEvent<M extends Message = Message> = M extends Message
  ? { type: M['type']; from: EntityName; msg: M }
  : never;

export function effects(
  writes: StoreOp[],
  messages: Outgoing[],
  notify?: { systemId: string; token: string },
): IoEffectsEvent {
  return notify ? { type: 'io.effects', writes, messages, notify } : { type: 'io.effects', writes, messages };
}
