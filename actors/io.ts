// The monitor's I/O actor (systemId 'io'): the one place where the pure machines meet a Store
// and a Transport. It serves both production (RocksDB + TCP) and the simulator (MemoryStore +
// MemoryNetwork), which is what lets the same machines run in both.
//
// Outbound: `io.effects` events are queued in order. Consecutive queued effects are written as
// one Transaction (group commit: one synced batch for everything that arrived during the last
// write), then their messages are sent and their `io.written` notifications delivered, in order.
// A message is therefore never sent before the writes of its own step or of any earlier step are
// durable (DESIGN.md §1, "durability is ordered as data").
//
// Inbound: every validated message from the Transport becomes an event on the monitor, typed by
// the message type; client commands go to `onCommand`.
import { type EventObject, fromCallback } from 'xstate';
import type { IoEffectsEvent, Outgoing, StoreOp } from '../machines/effects.ts';
import type { Store } from '../storage/store.ts';
import { Transaction } from '../storage/transaction.ts';
import type { EntityName, Message, MonCommand, PaxosValue } from '../transport/messages.ts';
import type { Transport } from '../transport/transport.ts';

export interface IoDeps {
  store: Store;
  transport: Transport;
  /** A client command (mon.command), answered by the runtime from the monitor's state. */
  onCommand?: (from: EntityName, msg: MonCommand) => void;
  /** Messages the monitor statechart does not handle (e.g. mon.forward before services exist). */
  onOther?: (from: EntityName, msg: Message) => void;
  /** A durable write failed: the monitor cannot go on consistently and must stop (Ceph asserts). */
  onFatal: (error: Error) => void;
  /** Paxos values shared in one message at most (Ceph: paxos_max_share... keeps messages bounded). */
  shareValuesMax?: number;
}

/** Decode one or more concatenated encoded Transactions (a batched Paxos value). */
export function decodeValue(value: Uint8Array): Transaction {
  return Transaction.decodeAll(value);
}

/** Turn a machine's plain-data writes into one storage Transaction. */
export function toTransaction(ops: StoreOp[], tx = new Transaction()): Transaction {
  for (const op of ops) {
    switch (op.op) {
      case 'put':
        tx.put(op.prefix, op.key, op.value);
        break;
      case 'put_number':
        tx.putNumber(op.prefix, op.key, op.value);
        break;
      case 'erase':
        tx.erase(op.prefix, op.key);
        break;
      case 'apply_value':
        tx.append(decodeValue(op.value));
        break;
    }
  }
  return tx;
}

const routedToMonitor = new Set<Message['type']>([
  'mon.probe',
  'mon.election',
  'mon.paxos',
  'mon.sync',
  'mon.join',
]);

export function ioLogic(deps: IoDeps) {
  return fromCallback<EventObject>(({ sendBack, receive, system }) => {
    const queue: IoEffectsEvent[] = [];
    let pumping = false;
    let stopped = false;

    deps.transport.setHandlers({
      onMessage(from, msg) {
        if (stopped) return;
        if (msg.type === 'mon.command') deps.onCommand?.(from, msg);
        else if (routedToMonitor.has(msg.type)) sendBack({ type: msg.type, from, msg } as never);
        else deps.onOther?.(from, msg);
      },
    });

    async function fill(out: Outgoing): Promise<Message> {
      if (!out.shareValues || out.msg.type !== 'mon.paxos') return out.msg;
      // Paxos::share_state: the committed values the peer lacks, read from the store.
      const values: PaxosValue[] = [];
      const last = Math.min(out.shareValues.to, out.shareValues.from + (deps.shareValuesMax ?? 5000) - 1);
      for (let v = out.shareValues.from; v <= last; v += 1) {
        const value = await deps.store.get('paxos', String(v));
        if (value) values.push({ version: v, value });
      }
      const lastShared = values.length
        ? (values[values.length - 1] as PaxosValue).version
        : out.msg.lastCommitted;
      return {
        ...out.msg,
        values: [...values, ...out.msg.values],
        // What the peer can store now; it asks again (next collect) for the rest.
        lastCommitted: Math.min(out.msg.lastCommitted, lastShared),
      };
    }

    async function pump() {
      if (pumping) return;
      pumping = true;
      try {
        while (queue.length && !stopped) {
          const batch = queue.splice(0, queue.length);
          const tx = new Transaction();
          for (const effect of batch) toTransaction(effect.writes, tx);
          if (!tx.empty) await deps.store.apply(tx);
          for (const effect of batch) {
            for (const out of effect.messages) {
              const msg = await fill(out);
              deps.transport.send(out.to, msg, out.addr);
            }
            if (effect.notify) {
              system.get(effect.notify.systemId)?.send({ type: 'io.written', token: effect.notify.token });
            }
          }
        }
      } catch (error) {
        stopped = true;
        deps.onFatal(error instanceof Error ? error : new Error(String(error)));
      } finally {
        pumping = false;
      }
    }

    receive((event) => {
      if (stopped || event.type !== 'io.effects') return;
      queue.push(event as IoEffectsEvent);
      void pump();
    });

    return () => {
      stopped = true;
    };
  });
}
